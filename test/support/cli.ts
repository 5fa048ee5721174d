// Runs the built CLI (dist/bin/mtls.js) as a child process, the way a user would.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MTLS_BIN = resolve(REPO_ROOT, 'dist/bin/mtls.js');

/** The CA passphrase the support code uses unless a test passes another. */
export const TEST_PASSPHRASE = 'correct horse battery staple (e2e)';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd: string;
  /** Extra environment; `MTLS_CA_PASSPHRASE` defaults to TEST_PASSPHRASE; set it to undefined to unset it. */
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

/** The environment without any MTLS_* variable of the developer's shell. */
function cleanEnv(extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MTLS_')) env[k] = v;
  env.NO_COLOR = '1';
  env.MTLS_CA_PASSPHRASE = TEST_PASSPHRASE;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export function assertBuilt(): void {
  if (!existsSync(MTLS_BIN)) throw new Error(`${MTLS_BIN} does not exist: run "npm run build" first.`);
}

/** Runs `mtls ...args`; never rejects on a non-zero exit (the code is in the result). */
export function mtls(args: readonly string[], opts: RunOptions): Promise<RunResult> {
  return run(process.execPath, [MTLS_BIN, ...args], { ...opts, env: cleanEnv(opts.env ?? {}) });
}

/** Runs `mtls ...args --json`-style commands and parses stdout as JSON. */
export async function mtlsJson(
  args: readonly string[],
  opts: RunOptions,
): Promise<RunResult & { json: unknown }> {
  const r = await mtls(args, opts);
  let json: unknown;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(
      `mtls ${args.join(' ')} printed no JSON (exit ${r.code}).\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  return { ...r, json };
}

/** Like mtls(), but throws with stdout/stderr when the exit code is not 0. */
export async function mtlsOk(args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const r = await mtls(args, opts);
  if (r.code !== 0)
    throw new Error(`mtls ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

export interface ProcessOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs any program; resolves with its exit code and output, never rejects on a non-zero exit. */
export function run(file: string, args: readonly string[], opts: ProcessOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      file,
      args,
      {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') {
          // Not an exit status: spawn failure, timeout (killed) or output overflow.
          reject(
            new Error(`${file} ${args.join(' ')} failed: ${err.message}\nstderr: ${stderr}`, { cause: err }),
          );
          return;
        }
        resolvePromise({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
    child.stdin?.end(); // like CI: nothing on stdin
  });
}

/** The `MTLS_*` code of a failed command, from `error MTLS_X_Y: ...` on stderr. */
export function errorCode(r: RunResult): string | undefined {
  return /error (MTLS_[A-Z0-9_]+)/.exec(r.stderr)?.[1];
}

/**
 * The full path of a program: PATH first, then the sbin directories (nginx and HAProxy live in
 * /usr/sbin, which a non-root PATH on Debian leaves out). Returns the bare name when not found.
 */
export function program(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return name;
}
