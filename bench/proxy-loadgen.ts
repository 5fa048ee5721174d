// Builds and drives the proxy benchmark's load generator, bench/loadgen/loadgen.c: a C program (one
// thread, epoll, OpenSSL) compiled at bench time into a temporary directory and run on the client core.
// A Node client on one core cannot produce the keep-alive load nginx serves (about 26,000 requests/s
// through a proxy, over 100,000 answering by itself), so the generator is not written in TypeScript.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIENT_CORE, canPin, which } from './ca-servers.js';

const SOURCE = resolve(dirname(fileURLToPath(import.meta.url)), 'loadgen/loadgen.c');

export type LoadgenBuild = { bin: string; note?: string } | { skip: string };

function compile(out: string): { ok: boolean; stderr: string } {
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', out, SOURCE, '-lssl', '-lcrypto'], { encoding: 'utf8' });
  return { ok: r.status === 0, stderr: `${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

/**
 * Compiles the generator into `dir`. When gcc or the OpenSSL headers are missing and this is root on
 * Debian (apt-get), installs gcc and libssl-dev first; otherwise returns why the section is skipped.
 */
export function buildLoadgen(dir: string): LoadgenBuild {
  const bin = join(dir, 'loadgen');
  let note: string | undefined;
  const missing = (): string[] => [
    ...(which('gcc') ? [] : ['gcc']),
    ...(existsSync('/usr/include/openssl/ssl.h') ? [] : ['libssl-dev']),
  ];
  let need = missing();
  if (need.length) {
    const root = process.getuid?.() === 0;
    if (!root || !which('apt-get'))
      return {
        skip: `the load generator needs ${need.join(' and ')} (Debian/Ubuntu: apt-get install gcc libssl-dev)`,
      };
    process.stderr.write(`  … installing ${need.join(', ')} for the load generator (apt-get)\n`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env, timeout: 300_000 });
    spawnSync(
      'apt-get',
      ['install', '-y', '-qq', '--no-install-recommends', 'gcc', 'libc6-dev', 'libssl-dev'],
      {
        stdio: 'ignore',
        env,
        timeout: 600_000,
      },
    );
    need = missing();
    if (need.length) return { skip: `could not install ${need.join(' and ')} with apt-get` };
    note = 'installed gcc and libssl-dev with apt-get';
  }
  const c = compile(bin);
  if (!c.ok) return { skip: `the load generator did not compile: ${c.stderr.trim().split('\n')[0]}` };
  return { bin, ...(note ? { note } : {}) };
}

export interface LoadgenTarget {
  port: number;
  cert: string;
  key: string;
  body: string;
}

export interface LoadgenRun {
  mode: 'ka' | 'hs' | 'resume';
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  maxRequests: number;
  timeoutMs?: number;
  /** Verify the server's certificate against this root (PEM file); the probe does, load runs do not. */
  ca?: string;
  /** resume: use every ticket once, as browsers and OpenSSL's own session handling do. */
  singleUseTickets?: boolean;
}

export interface LoadgenResult {
  mode: string;
  concurrency: number;
  /** Correct responses completed in the measured window. */
  ok: number;
  seconds: number;
  rate: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  maxUs: number;
  /** Connections opened, handshakes finished and handshakes resumed, in the measured window. */
  connections: number;
  handshakes: number;
  resumed: number;
  /** Keep-alive connections the server closed (Connection: close) and the generator reopened. */
  reconnects: number;
  /** Correct responses over the whole run (warm-up and drain included). */
  okTotal: number;
  /** New session tickets received on resumed connections (resume mode). */
  ticketsOnResumed: number;
  cpuSeconds: number;
  /** The generator's CPU use over the measured window, % of its one core. */
  cpuPct: number;
  aborted: boolean;
  errors: number;
  errorKinds: Record<string, number>;
  firstError: string;
}

function baseArgs(t: LoadgenTarget): string[] {
  return ['--port', String(t.port), '--cert', t.cert, '--key', t.key, '--body', t.body];
}

function pinned(bin: string, args: string[]): [string, string[]] {
  return canPin() ? ['taskset', ['-c', String(CLIENT_CORE), bin, ...args]] : [bin, args];
}

function lastJson<T>(stdout: string): T | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const l of lines) {
    try {
      return JSON.parse(l) as T;
    } catch {
      // not JSON
    }
  }
  return undefined;
}

/** One closed-loop run on the client core; resolves with the generator's report. */
export function runLoadgen(bin: string, t: LoadgenTarget, r: LoadgenRun): Promise<LoadgenResult> {
  const timeoutMs = r.timeoutMs ?? 10_000;
  const args = [
    ...baseArgs(t),
    '--mode',
    r.mode,
    '--concurrency',
    String(r.concurrency),
    '--warmup-ms',
    String(r.warmupMs),
    '--duration-ms',
    String(r.durationMs),
    '--max-requests',
    String(r.maxRequests),
    '--timeout-ms',
    String(timeoutMs),
    ...(r.ca ? ['--ca', r.ca] : []),
    ...(r.singleUseTickets ? ['--single-use-tickets'] : []),
  ];
  const [file, argv] = pinned(bin, args);
  // The generator bounds itself (warm-up + measurement + 2 s drain + timeouts); this is the backstop.
  const killAfter = r.warmupMs + r.durationMs + timeoutMs + 15_000;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfter);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const res = lastJson<LoadgenResult>(out);
      if (res && typeof res.rate === 'number') resolvePromise(res);
      else
        reject(
          new Error(`load generator ended with ${code ?? signal}: ${(err || out).trim().slice(0, 300)}`),
        );
    });
  });
}

export interface IdleOpened {
  /** Connections established (handshake + one checked request) and now idle. */
  held: number;
  target: number;
  openMs: number;
  droppedWhileOpening: number;
  errors: number;
  errorKinds: Record<string, number>;
  firstError: string;
}

export interface IdleResult<T> {
  opened: IdleOpened;
  /** What `whileHeld` returned. */
  measured: T;
  heldAtEnd: number;
  droppedWhileHeld: number;
}

/**
 * Opens `conns` mTLS connections (full handshake and one checked keep-alive request each,
 * `concurrency` at a time), calls `whileHeld` while they sit idle, then closes them all.
 */
export function runIdle<T>(
  bin: string,
  t: LoadgenTarget,
  o: { conns: number; concurrency: number; openMs: number; holdMs: number },
  whileHeld: (opened: IdleOpened) => Promise<T>,
): Promise<IdleResult<T>> {
  const args = [
    ...baseArgs(t),
    '--mode',
    'idle',
    '--conns',
    String(o.conns),
    '--concurrency',
    String(o.concurrency),
    '--open-ms',
    String(o.openMs),
    '--hold-ms',
    String(o.holdMs),
  ];
  const [file, argv] = pinned(bin, args);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let opened: IdleOpened | undefined;
    let measured: { value: T } | undefined;
    let failure: Error | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), o.openMs + o.holdMs + 30_000);
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (opened || !out.includes('\n')) return;
      try {
        opened = JSON.parse(out.slice(0, out.indexOf('\n'))) as IdleOpened;
      } catch (e) {
        failure = e as Error;
        child.kill('SIGKILL');
        return;
      }
      whileHeld(opened).then(
        (m) => {
          measured = { value: m };
          child.stdin.end('\n');
        },
        (e: unknown) => {
          failure = e as Error;
          child.stdin.end('\n');
        },
      );
    });
    child.stdin.on('error', () => {
      // the generator may already be gone
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const end = lastJson<{ heldAtEnd: number; droppedWhileHeld: number }>(out);
      if (failure) return reject(failure);
      if (!opened || !end || measured === undefined || end.heldAtEnd === undefined)
        return reject(
          new Error(`idle load generator ended with ${code ?? signal}: ${(err || out).trim().slice(0, 300)}`),
        );
      resolvePromise({
        opened,
        measured: measured.value,
        heldAtEnd: end.heldAtEnd,
        droppedWhileHeld: end.droppedWhileHeld,
      });
    });
  });
}
