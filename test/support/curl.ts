// curl as the TLS client: the HTTP status, the body, and curl's own exit code.
import { run } from './cli.js';
import { LOOPBACK } from './ports.js';

export interface CurlOptions {
  port: number;
  host?: string;
  path?: string;
  cacert: string;
  cert?: string;
  key?: string;
}

export interface CurlResult {
  /** curl's exit code: 0 when an HTTP response arrived (any status), 35/56/… on TLS failures. */
  exitCode: number;
  /** 0 when no HTTP response arrived. */
  status: number;
  body: string;
  stderr: string;
}

const MARK = '\n--mtlskit-status:';

export async function curl(o: CurlOptions): Promise<CurlResult> {
  const host = o.host ?? 'localhost';
  const args = [
    '--silent',
    '--show-error',
    '--max-time',
    '15',
    '--noproxy',
    '*',
    '--resolve',
    `${host}:${o.port}:${LOOPBACK}`,
    '--cacert',
    o.cacert,
    '--write-out',
    `${MARK}%{http_code}`,
  ];
  if (o.cert) args.push('--cert', o.cert);
  if (o.key) args.push('--key', o.key);
  args.push(`https://${host}:${o.port}${o.path ?? '/'}`);
  const r = await run('curl', args, { timeoutMs: 30_000 });
  const at = r.stdout.lastIndexOf(MARK);
  const body = at >= 0 ? r.stdout.slice(0, at) : r.stdout;
  const status = at >= 0 ? Number(r.stdout.slice(at + MARK.length).trim()) : 0;
  return { exitCode: r.code, status, body, stderr: r.stderr };
}
