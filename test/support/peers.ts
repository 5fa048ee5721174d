// Real TLS peers as child processes on 127.0.0.1: nginx and HAProxy, each on a free port, with a
// retry when another process grabs the port between freePort() and the peer's bind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { program } from './cli.js';
import { LOOPBACK, freePort, waitForPort } from './ports.js';

export interface Peer {
  name: string;
  port: number;
  /** stdout + stderr so far (for failure messages). */
  log(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process has exited. Safe to call twice. */
  stop(): Promise<void>;
}

interface SpawnSpec {
  command: string;
  args: string[];
  cwd: string;
  /** Extra readiness condition besides "the port accepts" (nginx: its pid file exists). */
  ready?: () => boolean;
}

const BIND_FAILURE = /address already in use|cannot bind|bind\(\) to .* failed/i;

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

// Peers still running when the test process exits (a crash, a killed worker) get SIGTERM, so that
// nginx also stops its workers and no listener outlives the run.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

async function stopChild(child: ChildProcess): Promise<void> {
  running.delete(child);
  if (exited(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await gone;
  clearTimeout(timer);
}

/**
 * Starts a peer on a free port: `spec(port)` writes the config and says how to run it.
 * Retries with a new port when the peer reports that the port is taken.
 */
export async function startPeer(
  name: string,
  spec: (port: number) => Promise<SpawnSpec>,
  attempts = 5,
): Promise<Peer> {
  let lastLog = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = await freePort();
    const s = await spec(port);
    const child = spawn(s.command, s.args, { cwd: s.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    let log = '';
    let spawnError: Error | undefined;
    child.on('error', (e) => (spawnError = e));
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const dead = (): boolean => exited(child) || spawnError !== undefined;
    const up = await waitForPort(port, dead);
    // The port accepts but our peer never gets ready (or dies): someone else holds the port.
    const ready = up && (await waitUntil(() => dead() || (s.ready?.() ?? true), 5_000)) && !dead();
    if (ready) {
      return { name, port, log: () => log, stop: () => stopChild(child) };
    }
    await stopChild(child);
    if (spawnError) throw new Error(`${name}: could not start ${s.command}: ${spawnError.message}`);
    lastLog = log;
    if (!BIND_FAILURE.test(log) && !up) {
      throw new Error(
        `${name} did not start on ${LOOPBACK}:${port} (exit ${child.exitCode ?? child.signalCode}):\n${log}`,
      );
    }
    await sleep(100 * attempt);
  }
  throw new Error(`${name} could not bind a free port after ${attempts} attempts:\n${lastLog}`);
}

// ---------------------------------------------------------------- nginx

export interface NginxOptions {
  /** Directory for the config, pid file and temp paths (created if missing). */
  prefix: string;
  /** The server's chain (leaf + intermediate) and key. */
  certChain: string;
  key: string;
  /** Trust bundle for client certificates. */
  clientCa: string;
  verifyDepth?: number;
  /** CRL file (PEM; nginx needs one for every CA in the chain). */
  crl?: string;
}

export function nginxConfig(o: NginxOptions, port: number): string {
  const p = o.prefix;
  return `worker_processes 1;
events { worker_connections 64; }
http {
  access_log ${join(p, 'access.log')};
  client_body_temp_path ${join(p, 'tmp/client_body')};
  proxy_temp_path ${join(p, 'tmp/proxy')};
  fastcgi_temp_path ${join(p, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(p, 'tmp/uwsgi')};
  scgi_temp_path ${join(p, 'tmp/scgi')};
  default_type text/plain;
  server {
    listen ${LOOPBACK}:${port} ssl;
    server_name localhost;
    ssl_certificate ${o.certChain};
    ssl_certificate_key ${o.key};
    ssl_client_certificate ${o.clientCa};
    ssl_verify_client on;
    ssl_verify_depth ${o.verifyDepth ?? 2};${o.crl ? `\n    ssl_crl ${o.crl};` : ''}
    location / {
      return 200 "ok";
    }
  }
}
`;
}

export async function startNginx(o: NginxOptions): Promise<Peer> {
  await mkdir(join(o.prefix, 'tmp'), { recursive: true });
  await mkdir(join(o.prefix, 'logs'), { recursive: true });
  const conf = join(o.prefix, 'nginx.conf');
  const pid = join(o.prefix, 'nginx.pid');
  return startPeer('nginx', async (port) => {
    await writeFile(conf, nginxConfig(o, port));
    return {
      command: program('nginx'),
      // -e stderr: do not try to open the compiled-in error log before the config is read.
      // Level info: nginx logs why it refused a client certificate at that level.
      args: [
        '-p',
        o.prefix,
        '-e',
        'stderr',
        '-c',
        conf,
        '-g',
        `daemon off; pid ${pid}; error_log stderr info;`,
      ],
      cwd: o.prefix,
      ready: () => existsSync(pid),
    };
  });
}

// ---------------------------------------------------------------- HAProxy

export interface HaproxyOptions {
  dir: string;
  /** One PEM with the server chain and its key. */
  crt: string;
  caFile: string;
}

export function haproxyConfig(o: HaproxyOptions, port: number): string {
  return `global
  maxconn 64

defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s

frontend e2e
  bind ${LOOPBACK}:${port} ssl crt ${o.crt} ca-file ${o.caFile} verify required
  http-request return status 200 content-type text/plain string ok
`;
}

export async function startHaproxy(o: HaproxyOptions): Promise<Peer> {
  const conf = join(o.dir, 'haproxy.cfg');
  return startPeer('haproxy', async (port) => {
    await writeFile(conf, haproxyConfig(o, port));
    return { command: program('haproxy'), args: ['-f', conf, '-db'], cwd: o.dir };
  });
}
