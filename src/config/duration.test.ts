import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './duration.js';

describe('parseDuration', () => {
  it.each([
    ['30s', 30_000],
    ['15m', 900_000],
    ['24h', 86_400_000],
    ['7d', 7 * 86_400_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
  ])('%s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', '24', 'h', '-1h', '0s', '1x', '1h 30m'])('rejects %j with MTLS_CLI_BAD_DURATION', (text) => {
    expect(() => parseDuration(text)).toThrow(
      expect.objectContaining({ code: 'MTLS_CLI_BAD_DURATION' }) as Error,
    );
  });

  it('formats', () => {
    expect(formatDuration(86_400_000 * 3)).toBe('3d');
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(-120_000)).toBe('-2m');
  });
});
