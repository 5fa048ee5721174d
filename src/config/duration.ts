import { z } from 'zod';
import { MtlsError } from '../errors/index.js';

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/** "90s", "15m", "24h", "7d", "1h30m" → milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const s = text.trim();
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s))) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (s === '' || matched !== s.length || total <= 0) {
    throw new MtlsError('MTLS_CLI_BAD_DURATION', `The ${what} "${text}" is not a duration.`, {
      fix: 'Write a positive duration such as 30s, 15m, 24h, 7d or 1h30m.',
    });
  }
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  const sign = ms < 0 ? '-' : '';
  if (abs >= 86_400_000 * 2) return `${sign}${Math.round(abs / 86_400_000)}d`;
  if (abs >= 3_600_000) return `${sign}${Math.round(abs / 3_600_000)}h`;
  if (abs >= 60_000) return `${sign}${Math.round(abs / 60_000)}m`;
  return `${sign}${Math.round(abs / 1000)}s`;
}

/** A zod string that must be a duration ("30s", "15m"); parses to milliseconds. */
export const durationSchema = z
  .string()
  .refine((s) => {
    try {
      parseDuration(s);
      return true;
    } catch {
      return false;
    }
  }, 'a duration such as 30s, 15m, 24h or 7d')
  .transform((s) => parseDuration(s));
