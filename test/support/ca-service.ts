// Starts the real `mtls ca serve` as a child process on 127.0.0.1 port 0 and gives tests an HTTPS
// client for its public and mTLS listeners.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { MTLS_BIN, mtlsOk, TEST_PASSPHRASE } from './cli.js';

export interface CaService {
  publicUrl: string;
  mtlsUrl: string;
  httpUrl: string;
  rootFingerprint: string;
  dir: string;
  proc: ChildProcess;
  logs: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startCaService(
  dir: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<CaService> {
  const proc = spawn(
    process.execPath,
    [
      MTLS_BIN,
      'ca',
      'serve',
      '--dir',
      dir,
      '--listen',
      '127.0.0.1:0',
      '--mtls-listen',
      '127.0.0.1:0',
      '--http-listen',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      '--json',
      ...extraArgs,
    ],
    {
      env: { ...process.env, MTLS_CA_PASSPHRASE: TEST_PASSPHRASE, NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`mtls ca serve did not become ready in 15 s.\nstdout: ${out}\nstderr: ${err}`)),
      15_000,
    );
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        const parsed = JSON.parse(out) as Record<string, string>;
        clearTimeout(timer);
        resolve(parsed);
      } catch {
        // not complete yet
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mtls ca serve exited with ${code}.\nstdout: ${out}\nstderr: ${err}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    publicUrl: info.publicUrl!,
    mtlsUrl: info.mtlsUrl!,
    httpUrl: info.httpUrl!,
    rootFingerprint: info.rootFingerprint!,
    dir,
    proc,
    logs: () => err,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json: () => Record<string, unknown>;
}

export interface ClientCredential {
  cert: string;
  key: string;
}

/** One HTTPS (or HTTP) request; trusts only the CA's root; optional client certificate files. */
export function call(
  url: string,
  opts: {
    method?: string;
    path: string;
    body?: unknown;
    rawBody?: Buffer | string;
    ca?: string;
    client?: ClientCredential;
    headers?: Record<string, string>;
  },
): Promise<HttpAnswer> {
  const u = new URL(opts.path, url);
  const payload = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const headers: Record<string, string> = {
    ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...opts.headers,
  };
  const send = u.protocol === 'https:' ? request : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: opts.method ?? (payload === undefined ? 'GET' : 'POST'),
        headers,
        ...(u.protocol === 'https:'
          ? {
              ca: opts.ca ? readFileSync(opts.ca) : undefined,
              ...(opts.client
                ? { cert: readFileSync(opts.client.cert), key: readFileSync(opts.client.key) }
                : {}),
              agent: false,
            }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            json: () => JSON.parse(body.toString('utf8')) as Record<string, unknown>,
          });
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`request to ${u.href} timed out`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export function adminCredential(caDir: string): ClientCredential {
  return { cert: join(caDir, 'admin', 'mtls-admin.chain.pem'), key: join(caDir, 'admin', 'mtls-admin.key') };
}

export interface Enrolled {
  chain: string;
  key: string;
  serial: string;
}

/**
 * Enrolls a workload the way an operator does: an admin token for its SANs, a CSR made by the CLI
 * (the key never leaves `outRoot/<name>`), and /v1/sign on the public listener.
 */
export async function enrollClient(
  ca: CaService,
  outRoot: string,
  name: string,
  opts: { sans?: string[]; profile?: string } = {},
): Promise<Enrolled> {
  const bundle = join(ca.dir, 'ca.pem');
  const sans = opts.sans ?? [`dns:${name}.internal`];
  const t = await call(ca.mtlsUrl, {
    path: '/v1/tokens',
    body: { profile: opts.profile ?? 'client', sans },
    ca: bundle,
    client: adminCredential(ca.dir),
  });
  if (t.status !== 200) throw new Error(`token: ${t.status} ${t.body.toString()}`);
  const out = join(outRoot, name);
  await mtlsOk(['csr', name, ...sans.flatMap((s) => ['--san', s]), '--out', out], { cwd: outRoot });
  const r = await call(ca.publicUrl, {
    path: '/v1/sign',
    body: { token: t.json().token, csr: readFileSync(join(out, `${name}.csr`), 'utf8') },
    ca: bundle,
  });
  if (r.status !== 200) throw new Error(`sign: ${r.status} ${r.body.toString()}`);
  const chain = join(out, `${name}.chain.pem`);
  writeFileSync(chain, r.json().chain as string);
  return { chain, key: join(out, `${name}.key`), serial: r.json().serial as string };
}

/** Revokes a serial through the admin API. */
export async function revokeSerial(ca: CaService, serial: string, reason = 'keyCompromise'): Promise<void> {
  const r = await call(ca.mtlsUrl, {
    path: '/v1/revoke',
    body: { serial, reason },
    ca: join(ca.dir, 'ca.pem'),
    client: adminCredential(ca.dir),
  });
  if (r.status !== 200) throw new Error(`revoke: ${r.status} ${r.body.toString()}`);
}
