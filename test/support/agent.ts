// Runs the real `mtls agent` (dist/bin/mtls.js) against a real `mtls ca serve`: tokens from the CA's
// admin API, agent.yaml written at test time, the agent as a child process with its JSON logs, and
// bounded polling helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { adminCredential, call, type CaService } from './ca-service.js';
import { MTLS_BIN } from './cli.js';

/** A one-time enrollment token for `sans` from the CA's admin API. */
export async function agentToken(ca: CaService, sans: string[], maxTtl = '1h'): Promise<string> {
  const r = await call(ca.mtlsUrl, {
    path: '/v1/tokens',
    body: { profile: 'client', sans, maxTtl, ttl: '10m' },
    ca: join(ca.dir, 'ca.pem'),
    client: adminCredential(ca.dir),
  });
  if (r.status !== 200) throw new Error(`token: ${r.status} ${r.body.toString()}`);
  return r.json().token as string;
}

/** Writes agent.yaml into `dir` and returns its path. */
export function writeAgentConfig(dir: string, config: Record<string, unknown>, name = 'agent.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, stringify(config));
  return path;
}

/** The `ca` section for a CA started by startCaService (trust from its ca.pem file). */
export function caSection(ca: CaService): Record<string, string> {
  return { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(ca.dir, 'ca.pem') };
}

export interface AgentProcess {
  proc: ChildProcess;
  /** From the ready line (when metrics.listen is configured). */
  metricsUrl: string | undefined;
  /** The agent's JSON log lines so far. */
  logs(): string;
  /** Parsed log records so far. */
  records(): Record<string, unknown>[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `mtls agent --config FILE --json` and waits for its ready line. */
export async function startAgentProcess(configPath: string, logLevel = 'info'): Promise<AgentProcess> {
  const proc = spawn(
    process.execPath,
    [MTLS_BIN, 'agent', '--config', configPath, '--json', '--log-level', logLevel],
    {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`mtls agent did not start in 15 s.\nstdout: ${out}\nstderr: ${err}`)),
      15_000,
    );
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        const parsed = JSON.parse(out) as Record<string, unknown>;
        clearTimeout(timer);
        resolve(parsed);
      } catch {
        // not complete yet
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mtls agent exited with ${code}.\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  return {
    proc,
    metricsUrl: typeof info.metricsUrl === 'string' ? info.metricsUrl : undefined,
    logs: () => err,
    records: () =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

/** Polls `check` every `intervalMs` until it returns a value other than undefined/false, at most `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
      );
    await sleep(intervalMs);
  }
}

/** GET a metrics page as text. */
export async function scrape(url: string): Promise<string> {
  const r = await call(url, { path: '/metrics' });
  return r.body.toString('utf8');
}

/** The value of one sample (`name{labels}`), or undefined. */
export function sample(text: string, nameAndLabels: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(nameAndLabels + ' ')) return Number(line.slice(nameAndLabels.length + 1));
  }
  return undefined;
}
