// What every command gets: output streams, environment, and the shared rendering of results and
// errors (human text or --json), so that commands only compute.
import type { Command } from 'commander';
import { MtlsError, type ErrorCode } from '../errors/index.js';
import { readPassphraseFile } from '../files/index.js';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** Error codes that mean "the command line was wrong" (exit 2); every other failure exits 1. */
const USAGE_CODES = new Set<ErrorCode>([
  'MTLS_CLI_USAGE',
  'MTLS_CLI_BAD_DURATION',
  'MTLS_CLI_BAD_TIME',
  'MTLS_PKI_UNKNOWN_PROFILE',
  'MTLS_PKI_BAD_SAN',
  'MTLS_PKI_BAD_SPIFFE_ID',
  'MTLS_PKI_BAD_NAME',
  'MTLS_PKI_PROFILE_VIOLATION',
  'MTLS_PKI_UNSUPPORTED_KEY',
  'MTLS_PKI_BAD_VALIDITY',
  'MTLS_CA_PASSPHRASE_REQUIRED',
  'MTLS_CA_PLAINTEXT_KEY',
  'MTLS_FILE_NOT_FOUND',
  'MTLS_CONFIG_INVALID',
]);

export function exitCodeFor(e: MtlsError): number {
  return USAGE_CODES.has(e.code) ? 2 : 1;
}

export function renderError(io: CliIo, e: MtlsError, json: boolean): void {
  if (json) {
    io.stdout(JSON.stringify({ ok: false, error: e.toJSON() }, null, 2) + '\n');
    return;
  }
  io.stderr(`error ${e.code}: ${e.message}\n`);
  if (e.fix) io.stderr(`  fix: ${e.fix}\n`);
  if (io.env.MTLS_DEBUG && e.cause)
    io.stderr(
      `  cause: ${e.cause instanceof Error ? (e.cause.stack ?? e.cause.message) : JSON.stringify(e.cause)}\n`,
    );
}

/** Passphrase for CA keys: --passphrase-file wins over MTLS_CA_PASSPHRASE. */
export function caPassphrase(io: CliIo, file: string | undefined): string | undefined {
  if (file) return readPassphraseFile(file);
  const env = io.env.MTLS_CA_PASSPHRASE;
  return env === undefined || env === '' ? undefined : env;
}

export function usage(message: string, fix: string): MtlsError {
  return new MtlsError('MTLS_CLI_USAGE', message, { fix });
}

/** Parses --at: an ISO 8601 date-time, or "now". */
export function parseTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  if (text === 'now') return new Date();
  const d = new Date(text);
  if (Number.isNaN(d.getTime()) || !/^\d{4}-\d{2}-\d{2}/.test(text)) {
    throw new MtlsError('MTLS_CLI_BAD_TIME', `"${text}" is not a date-time.`, {
      fix: 'Write it as ISO 8601, e.g. 2026-12-31T12:00:00Z.',
    });
  }
  return d;
}

export function defaultCaDir(io: CliIo, flag: string | undefined): string {
  return flag ?? io.env.MTLS_CA_DIR ?? 'mtls-data';
}

/** Collects a repeatable option (--san a --san b). */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The options every command that opens the file CA takes. */
export function withCaOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'CA directory (default $MTLS_CA_DIR or ./mtls-data)')
    .option(
      '--passphrase-file <file>',
      'file whose first line decrypts the CA key (default $MTLS_CA_PASSPHRASE)',
    );
}
