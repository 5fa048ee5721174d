// The logger factory: pino JSON logs with secrets redacted (tokens, keys, passphrases, auth headers).
import { pino, type Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.token',
  '*.passphrase',
  '*.privateKey',
  '*.key',
  'token',
  'passphrase',
];

export interface LoggerOptions {
  level?: string;
  /** Where JSON lines go; the CLI passes stderr so stdout stays for results. */
  destination?: NodeJS.WritableStream;
  name?: string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      ...(opts.name ? { name: opts.name } : {}),
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    },
    opts.destination ?? process.stderr,
  );
}

export type { Logger };
