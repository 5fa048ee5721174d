// The processes the proxy benchmark runs on the server core: the Node backend, `mtls proxy` (the built
// CLI), nginx and HAProxy in front of it, and nginx answering by itself (the load generator's
// ceiling). Certificates are made at run time with the project's own CLI (`mtls ca init`,
// `mtls issue`), in a temporary directory that the caller removes.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MTLS_BIN, SERVER_CORE, canPin, freePort, readRss, which } from './ca-servers.js';

const run = promisify(execFile);

/** The file descriptor limit every server gets (and the generator asks for): 65,536 or the hard limit. */
export const NOFILE = ((): number => {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const hard = r.stdout.trim();
  return hard === 'unlimited' || !/^\d+$/.test(hard) ? 65_536 : Math.min(65_536, Number(hard));
})();

// ---------------------------------------------------------------- certificates

export interface ProxyPki {
  /** Server chain (leaf + intermediate) and key, from the server CA; SANs localhost and 127.0.0.1. */
  serverChain: string;
  serverKey: string;
  /** The server CA's root: what the generator's probe verifies the servers against. */
  serverRoot: string;
  /** Client chain and key, from the client CA. */
  clientChain: string;
  clientKey: string;
  /** The client CA's root: what every contender trusts for client certificates. */
  clientRoot: string;
  /** Server chain and key in one file (HAProxy's `crt`). */
  haproxyPem: string;
}

function cliEnv(passphrase: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('MTLS_') && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, MTLS_CA_PASSPHRASE: passphrase, NO_COLOR: '1' };
}

async function mtls(args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  try {
    await run(process.execPath, [MTLS_BIN, ...args], { env, timeout: 60_000 });
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string };
    throw new Error(
      `mtls ${args.slice(0, 2).join(' ')} failed: ${(err.stderr || err.stdout || err.message).trim()}`,
      { cause: e },
    );
  }
}

/**
 * Two CAs (root + intermediate each) made by `mtls ca init`, as test/support/pki.ts does: one issues
 * the server certificate, the other the client certificate every contender must verify (leaf and
 * intermediate sent by the client, the root trusted: a depth-2 chain).
 */
export async function createProxyPki(dir: string): Promise<ProxyPki> {
  if (!existsSync(MTLS_BIN)) throw new Error('dist/bin/mtls.js is missing: run npm run build first');
  const env = cliEnv(`bench-${randomBytes(12).toString('hex')}`);
  const serverCa = join(dir, 'server-ca');
  const clientCa = join(dir, 'client-ca');
  await Promise.all([
    mtls(['ca', 'init', '--dir', serverCa, '--name', 'mtlskit proxy bench Server CA'], env),
    mtls(['ca', 'init', '--dir', clientCa, '--name', 'mtlskit proxy bench Client CA'], env),
  ]);
  const serverOut = join(dir, 'server');
  const clientOut = join(dir, 'client');
  mkdirSync(serverOut);
  mkdirSync(clientOut);
  await Promise.all([
    mtls(
      [
        'issue',
        'server',
        'localhost',
        '--san',
        'ip:127.0.0.1',
        '--dir',
        serverCa,
        '--out',
        serverOut,
        '--ttl',
        '2h',
      ],
      env,
    ),
    mtls(['issue', 'client', 'bench-client', '--dir', clientCa, '--out', clientOut, '--ttl', '2h'], env),
  ]);
  const pki: ProxyPki = {
    serverChain: join(serverOut, 'localhost.chain.pem'),
    serverKey: join(serverOut, 'localhost.key'),
    serverRoot: join(serverOut, 'ca.pem'),
    clientChain: join(clientOut, 'bench-client.chain.pem'),
    clientKey: join(clientOut, 'bench-client.key'),
    clientRoot: join(clientOut, 'ca.pem'),
    haproxyPem: join(dir, 'haproxy.pem'),
  };
  const chain = readFileSync(pki.serverChain, 'utf8').trimEnd();
  const key = readFileSync(pki.serverKey, 'utf8').trimEnd();
  writeFileSync(pki.haproxyPem, `${chain}\n${key}\n`, { mode: 0o600 });
  return pki;
}

// ---------------------------------------------------------------- processes

export interface Proc {
  name: string;
  pid: number;
  /** Resident set of the process and its children (nginx: master + worker), KiB. */
  rssKb(): number | undefined;
  /** CPU time (user + system) of the process and its children so far, in clock ticks (1/100 s). */
  cpuTicks(): number;
  logs(): string;
  /** SIGTERM, SIGKILL after 15 s; resolves when the process has exited. Safe to call twice. */
  stop(): Promise<void>;
  exited(): boolean;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** utime + stime of one process, in clock ticks (USER_HZ, 100 on Linux). */
function ticksOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Busy and total clock ticks of one core, from /proc/stat. */
export function coreTicks(core: number): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`cpu${core} `));
    const v = line!.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - v[3]! - v[4]!, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Starts `cmd` on the server core with the NOFILE limit (`prlimit` and `taskset` exec: same pid). */
function startServer(
  name: string,
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
  core = SERVER_CORE,
): Proc {
  const argv: [string, string[]] = canPin()
    ? ['prlimit', [`--nofile=${NOFILE}:${NOFILE}`, 'taskset', '-c', String(core), cmd, ...args]]
    : ['prlimit', [`--nofile=${NOFILE}:${NOFILE}`, cmd, ...args]];
  const child = spawn(argv[0], argv[1], { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
  running.add(child);
  let log = '';
  const add = (d: Buffer): void => {
    if (log.length < 64_000) log += d.toString();
  };
  child.stdout.on('data', add);
  child.stderr.on('data', add);
  child.on('error', (e) => add(Buffer.from(`\nspawn failed: ${e.message}\n`)));
  const gone = new Promise<void>((done) => child.once('exit', () => done()));
  const isExited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  return {
    name,
    pid: child.pid ?? -1,
    rssKb: () => {
      if (isExited() || child.pid === undefined) return undefined;
      const pids = [child.pid, ...childrenOf(child.pid)];
      const parts = pids.map((p) => readRss(p)?.nowKb);
      return parts.every((p) => p !== undefined)
        ? parts.reduce<number>((sum, p) => sum + (p ?? 0), 0)
        : undefined;
    },
    cpuTicks: () =>
      child.pid === undefined ? 0 : [child.pid, ...childrenOf(child.pid)].reduce((a, p) => a + ticksOf(p), 0),
    logs: () => log,
    exited: isExited,
    stop: async () => {
      running.delete(child);
      if (isExited()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

/** Resolves with the stdout text once `parse` accepts it; rejects if the process exits or 15 s pass. */
function readyFromStdout<T>(proc: Proc, parse: (out: string) => T | undefined): Promise<T> {
  const deadline = performance.now() + 15_000;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const got = parse(proc.logs());
      if (got !== undefined) return resolve(got);
      if (proc.exited()) return reject(new Error(`${proc.name} exited: ${proc.logs().trim().slice(0, 400)}`));
      if (performance.now() > deadline) {
        void proc.stop();
        return reject(
          new Error(`${proc.name} was not ready after 15 s: ${proc.logs().trim().slice(0, 400)}`),
        );
      }
      setTimeout(tick, 25);
    };
    tick();
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function waitForPort(proc: Proc, port: number, extra: () => boolean = () => true): Promise<void> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    if (proc.exited()) throw new Error(`${proc.name} exited: ${proc.logs().trim().slice(0, 400)}`);
    if ((await accepts(port)) && extra()) return;
    if (performance.now() > deadline) {
      await proc.stop();
      throw new Error(
        `${proc.name} did not listen on 127.0.0.1:${port} within 15 s: ${proc.logs().trim().slice(0, 400)}`,
      );
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface Listening extends Proc {
  port: number;
}

// ---------------------------------------------------------------- backend

/**
 * The upstream of every proxy: node:http, keep-alive, answers 200 with `body` to any request and
 * counts the requests (and those carrying x-forwarded-client-cert); GET /__bench_stats, sent directly
 * by the bench and not counted, answers the counts.
 */
const BACKEND_SOURCE = `
const http = require('node:http');
const body = Buffer.from(process.env.BENCH_BODY, 'utf8');
const headers = { 'content-type': 'text/plain', 'content-length': body.length };
let total = 0, withIdentity = 0, connections = 0;
const server = http.createServer((req, res) => {
  if (req.url === '/__bench_stats') {
    if (!req.socket.benchStats) {
      req.socket.benchStats = true;
      connections--;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ total, withIdentity, connections }));
    return;
  }
  total++;
  if (req.headers['x-forwarded-client-cert']) withIdentity++;
  res.writeHead(200, headers);
  res.end(body);
});
server.on('connection', () => connections++);
server.keepAliveTimeout = 300000;
server.headersTimeout = 310000;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); });
`;

export interface BackendStats {
  total: number;
  withIdentity: number;
  /** Connections accepted, except those the stats requests came on. */
  connections: number;
}

export interface Backend extends Listening {
  stats(): Promise<BackendStats>;
}

/** `core`: where it runs (the server core, except for the profiled run; see proxy-bench.ts). */
export async function startBackend(body: string, core = SERVER_CORE): Promise<Backend> {
  const proc = startServer(
    'backend',
    process.execPath,
    ['-e', BACKEND_SOURCE],
    { ...process.env, NODE_OPTIONS: '', BENCH_BODY: body },
    core,
  );
  const { port } = await readyFromStdout(proc, (out) => {
    const m = /\{"port":(\d+)\}/.exec(out);
    return m ? { port: Number(m[1]) } : undefined;
  });
  return {
    ...proc,
    port,
    stats: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/__bench_stats`);
      return (await res.json()) as BackendStats;
    },
  };
}

// ---------------------------------------------------------------- node:https by itself

/**
 * What any proxy built on node:tls can reach at best: a bare `node:https` server with the same
 * certificates and the same client verification (requestCert, rejectUnauthorized, the client root,
 * the proxy's TLS 1.2 suites), answering the body itself with no upstream, no verdict, no metrics.
 */
const NODE_DIRECT_SOURCE = `
const https = require('node:https');
const fs = require('node:fs');
const body = Buffer.from(process.env.BENCH_BODY, 'utf8');
const headers = { 'content-type': 'text/plain', 'content-length': body.length };
const server = https.createServer({
  cert: fs.readFileSync(process.env.BENCH_CERT), key: fs.readFileSync(process.env.BENCH_KEY),
  ca: fs.readFileSync(process.env.BENCH_CA), requestCert: true, rejectUnauthorized: true,
  minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-GCM-SHA384',
}, (req, res) => { res.writeHead(200, headers); res.end(body); });
server.keepAliveTimeout = 300000;
server.headersTimeout = 310000;
server.requestTimeout = 0;
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => { server.close(); server.closeAllConnections(); });
`;

export async function startNodeDirect(pki: ProxyPki, body: string): Promise<Listening> {
  const proc = startServer('node-direct', process.execPath, ['-e', NODE_DIRECT_SOURCE], {
    ...process.env,
    NODE_OPTIONS: '',
    BENCH_BODY: body,
    BENCH_CERT: pki.serverChain,
    BENCH_KEY: pki.serverKey,
    BENCH_CA: pki.clientRoot,
  });
  const { port } = await readyFromStdout(proc, (out) => {
    const m = /\{"port":(\d+)\}/.exec(out);
    return m ? { port: Number(m[1]) } : undefined;
  });
  return { ...proc, port };
}

// ---------------------------------------------------------------- mtls proxy

/**
 * `mtls proxy --config proxy.yaml --json`: one strict listener, every authenticated peer allowed
 * (`identity: any`), XFCC identity headers, logs at warn (no line per request; nginx and HAProxy log
 * nothing per request either). `nodeArgs` go before the script (e.g. --cpu-prof).
 */
export async function startMtlsProxy(
  dir: string,
  pki: ProxyPki,
  upstreamPort: number,
  nodeArgs: string[] = [],
  name = 'mtls',
  bin = MTLS_BIN,
): Promise<Listening> {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'proxy.yaml');
  writeFileSync(
    config,
    `listeners:
  - name: bench
    listen: 127.0.0.1:0
    mode: strict
    protocol: http
    tls: { cert: ${pki.serverChain}, key: ${pki.serverKey}, clientCa: ${pki.clientRoot}, minVersion: TLSv1.2 }
    upstream: http://127.0.0.1:${upstreamPort}
    identity: { headers: xfcc }
    allow:
      - { identity: any }
`,
  );
  const env = cliEnv('unused');
  delete env.MTLS_CA_PASSPHRASE;
  const proc = startServer(
    name,
    process.execPath,
    [...nodeArgs, bin, 'proxy', '--config', config, '--json', '--log-level', 'warn'],
    env,
  );
  // The ready line is JSON on stdout (pretty-printed: several lines); logs go to stderr, which the
  // same buffer collects, so take the first {...} that parses.
  const port = await readyFromStdout(proc, (out) => {
    const start = out.indexOf('{\n');
    for (let end = out.indexOf('\n}', start); start >= 0 && end > 0; end = out.indexOf('\n}', end + 1)) {
      try {
        const j = JSON.parse(out.slice(start, end + 2)) as { listeners?: { port: number }[] };
        return j.listeners?.[0]?.port;
      } catch {
        // not the whole object yet
      }
    }
    return undefined;
  });
  return { ...proc, port };
}

// ---------------------------------------------------------------- nginx

function nginxBin(): string {
  return which('nginx') ? 'nginx' : '/usr/sbin/nginx';
}

export function nginxAvailable(): boolean {
  return which('nginx') || existsSync('/usr/sbin/nginx');
}

export function haproxyAvailable(): boolean {
  return which('haproxy') || existsSync('/usr/sbin/haproxy');
}

export function peerVersions(): { nginx?: string; haproxy?: string } {
  const out: { nginx?: string; haproxy?: string } = {};
  if (nginxAvailable()) {
    const r = spawnSync(nginxBin(), ['-v'], { encoding: 'utf8' });
    out.nginx = /nginx\/(\S+)/.exec(r.stderr)?.[1];
  }
  if (haproxyAvailable()) {
    const r = spawnSync(which('haproxy') ? 'haproxy' : '/usr/sbin/haproxy', ['-v'], { encoding: 'utf8' });
    out.haproxy = /version (\S+)/.exec(r.stdout)?.[1];
  }
  return out;
}

/**
 * nginx, one worker, TLS 1.2/1.3 with client verification (depth 2) and session tickets. With
 * `upstreamPort` it proxies over HTTP/1.1 keep-alive connections (upstream keepalive pool, Connection
 * cleared) and sets the same request headers mtls sets: an XFCC-style identity header, X-Request-Id,
 * X-Forwarded-For and X-Forwarded-Proto. Without it, it answers `body` itself (`return 200`).
 */
export async function startNginx(
  dir: string,
  pki: ProxyPki,
  opts: { upstreamPort?: number; body?: string; name: string },
): Promise<Listening> {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  const pid = join(dir, 'nginx.pid');
  const location =
    opts.upstreamPort !== undefined
      ? `proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Client-Cert "Hash=$ssl_client_fingerprint;Subject=\\"$ssl_client_s_dn\\"";
      proxy_set_header X-Request-Id $request_id;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto https;`
      : `return 200 "${opts.body ?? 'ok'}";`;
  writeFileSync(
    conf,
    `worker_processes 1;
worker_rlimit_nofile ${NOFILE};
events { worker_connections ${Math.max(1024, NOFILE - 1000)}; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path ${join(dir, 'tmp/client_body')};
  proxy_temp_path ${join(dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(dir, 'tmp/scgi')};
  keepalive_timeout 300s;
  keepalive_requests 10000000;
${
  opts.upstreamPort !== undefined
    ? `  upstream app {
    server 127.0.0.1:${opts.upstreamPort};
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
`
    : ''
}  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${pki.serverChain};
    ssl_certificate_key ${pki.serverKey};
    ssl_client_certificate ${pki.clientRoot};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    location / {
      ${location}
    }
  }
}
`,
  );
  const proc = startServer(opts.name, nginxBin(), [
    '-p',
    dir,
    '-e',
    'stderr',
    '-c',
    conf,
    '-g',
    `daemon off; pid ${pid}; error_log stderr warn;`,
  ]);
  await waitForPort(proc, port, () => existsSync(pid));
  return { ...proc, port };
}

// ---------------------------------------------------------------- HAProxy

/**
 * HAProxy, one thread, `verify required` against the client root, TLS tickets on (the default),
 * upstream connections reused across clients (`http-reuse always`), the same request headers as the
 * other two. maxconn admits the 10,000 idle connections; HAProxy wants about twice maxconn in file
 * descriptors, which a hard limit of 20,000 does not give, so `no strict-limits` lets it start anyway
 * (the idle connections have no server side).
 */
export async function startHaproxy(dir: string, pki: ProxyPki, upstreamPort: number): Promise<Listening> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(
    conf,
    `global
  nbthread 1
  maxconn 10200
  no strict-limits

defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
  timeout http-request 60s

frontend bench
  bind 127.0.0.1:${port} ssl crt ${pki.haproxyPem} ca-file ${pki.clientRoot} verify required
  option forwardfor
  unique-id-format %[uuid()]
  unique-id-header X-Request-Id
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Client-Cert "Hash=%[ssl_c_sha1,hex];Subject=\\"%[ssl_c_s_dn]\\""
  default_backend app

backend app
  http-reuse always
  server app 127.0.0.1:${upstreamPort}
`,
  );
  const proc = startServer('haproxy', which('haproxy') ? 'haproxy' : '/usr/sbin/haproxy', [
    '-f',
    conf,
    '-db',
  ]);
  await waitForPort(proc, port);
  return { ...proc, port };
}
