// Starts the real `mtls proxy` on 127.0.0.1 port 0, an echo upstream that counts what reaches it,
// and a curl wrapper that can send headers, pick the HTTP version and a method.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { MTLS_BIN, run } from './cli.js';
import { LOOPBACK } from './ports.js';

export interface RunningProxy {
  listeners: Record<string, number>;
  /** Outbound entries by name: their local plaintext port. */
  outbound: Record<string, number>;
  adminPort: number | undefined;
  proc: ChildProcess;
  logs: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startProxy(configPath: string, cwd: string): Promise<RunningProxy> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const k of Object.keys(env)) if (k.startsWith('MTLS_')) delete env[k];
  const proc = spawn(
    process.execPath,
    [MTLS_BIN, 'proxy', '--config', configPath, '--json', '--log-level', 'info'],
    {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const info = await new Promise<{
    listeners: { name: string; port: number }[];
    outbound?: { name: string; port: number }[];
    admin: { port: number } | null;
  }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`mtls proxy did not become ready in 15 s.\nstdout: ${out}\nstderr: ${err}`)),
      15_000,
    );
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        const parsed = JSON.parse(out) as {
          listeners: { name: string; port: number }[];
          outbound?: { name: string; port: number }[];
          admin: { port: number } | null;
        };
        clearTimeout(timer);
        resolve(parsed);
      } catch {
        // not complete yet
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mtls proxy exited with ${code}.\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    listeners: Object.fromEntries(info.listeners.map((l) => [l.name, l.port])),
    outbound: Object.fromEntries((info.outbound ?? []).map((o) => [o.name, o.port])),
    adminPort: info.admin?.port,
    proc,
    logs: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface EchoUpstream {
  port: number;
  /** Every request that reached the upstream, in order. */
  received: Received[];
  close(): Promise<void>;
}

/** A plain HTTP upstream that answers every request with what it received, as JSON. */
export async function startEchoUpstream(): Promise<EchoUpstream> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      received.push(r);
      const data = JSON.stringify(r);
      res.writeHead(200, {
        'content-type': 'application/json',
        'x-upstream': 'echo',
        'keep-alive': 'timeout=5',
      });
      res.end(data);
    });
  });
  await new Promise<void>((r) => server.listen(0, LOOPBACK, r));
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface ProxyCurlOptions {
  port: number;
  path?: string;
  cacert: string;
  cert?: string;
  key?: string;
  method?: string;
  headers?: string[];
  data?: string;
  http2?: boolean;
}

export interface ProxyCurlResult {
  exitCode: number;
  status: number;
  httpVersion: string;
  body: string;
  /** Response headers, lowercase names (curl's %{header_json}). */
  headers: Record<string, string[]>;
  stderr: string;
  json: () => Record<string, unknown>;
}

const MARK = '\n--mtlskit:';

/** curl to https://localhost:<port> (resolved to 127.0.0.1), with the response headers kept. */
export async function proxyCurl(o: ProxyCurlOptions): Promise<ProxyCurlResult> {
  const args = [
    '--silent',
    '--show-error',
    '--max-time',
    '15',
    '--noproxy',
    '*',
    '--resolve',
    `localhost:${o.port}:${LOOPBACK}`,
    '--cacert',
    o.cacert,
    '--write-out',
    `${MARK}%{http_code} %{http_version} %{header_json}`,
    o.http2 ? '--http2' : '--http1.1',
  ];
  if (o.cert) args.push('--cert', o.cert);
  if (o.key) args.push('--key', o.key);
  if (o.method) args.push('--request', o.method);
  if (o.data !== undefined) args.push('--data-binary', o.data);
  for (const h of o.headers ?? []) args.push('--header', h);
  args.push(`https://localhost:${o.port}${o.path ?? '/'}`);
  const r = await run('curl', args, { timeoutMs: 30_000 });
  const at = r.stdout.lastIndexOf(MARK);
  const body = at >= 0 ? r.stdout.slice(0, at) : r.stdout;
  // The trailer is "<status> <version> <headers as JSON>" (curl's %{header_json}).
  const trailer = at >= 0 ? r.stdout.slice(at + MARK.length).trim() : '0  {}';
  const [status = '0', httpVersion = ''] = trailer.split(' ', 2);
  const headersJson = trailer.slice(status.length + httpVersion.length + 2) || '{}';
  return {
    exitCode: r.code,
    status: Number(status),
    httpVersion: httpVersion ?? '',
    body,
    headers: JSON.parse(headersJson) as Record<string, string[]>,
    stderr: r.stderr,
    json: () => JSON.parse(body) as Record<string, unknown>,
  };
}
