// Hot reload of mtls proxy: the listener's certificate and the client CA bundle are replaced 10 times
// while a client keeps sending requests (zero failures, new handshakes see the new certificate), a
// broken configuration is refused with a logged error while the old one keeps serving, SIGHUP
// reloads, and TLS sessions resume (also across two proxies sharing a ticket-key file).
import { randomBytes, X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call } from '../support/ca-service.js';
import { assertBuilt } from '../support/cli.js';
import { createPki, initCa, issue, type LeafPaths, type Pki } from '../support/pki.js';
import { startEchoUpstream, startProxy, type EchoUpstream, type RunningProxy } from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let upstream: EchoUpstream;
let proxy: RunningProxy;
let live: { cert: string; key: string; clientCa: string };
let config: Record<string, unknown>;
const rotations: LeafPaths[] = [];
let extraRoot: string;

/** Replaces a file the way rotation tools do: write beside, then rename over. */
function replace(dest: string, content: Buffer | string): void {
  writeFileSync(`${dest}.tmp`, content, { mode: 0o600 });
  renameSync(`${dest}.tmp`, dest);
}

function writeConfig(c: Record<string, unknown>): void {
  replace(join(root, 'proxy.yaml'), stringify(c));
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-reload');
  pki = await createPki(root);
  upstream = await startEchoUpstream();
  const other = await initCa(root, 'other-ca', { name: 'mtlskit e2e Other CA' });
  extraRoot = readFileSync(other.bundle, 'utf8');
  const out = join(root, 'rotations');
  await mkdir(out);
  for (let i = 0; i < 10; i++)
    rotations.push(
      await issue(pki.serverCa, out, 'server', 'localhost', { san: 'ip:127.0.0.1', fileName: `srv${i}` }),
    );
  const liveDir = join(root, 'live');
  await mkdir(liveDir);
  live = { cert: join(liveDir, 'tls.crt'), key: join(liveDir, 'tls.key'), clientCa: join(liveDir, 'ca.pem') };
  copyFileSync(pki.server.chain, live.cert);
  copyFileSync(pki.server.key, live.key);
  copyFileSync(pki.clientCa.bundle, live.clientCa);
  writeFileSync(join(root, 'ticket.key'), randomBytes(48), { mode: 0o600 });
  config = {
    listeners: [
      {
        name: 'api',
        listen: '127.0.0.1:0',
        tls: { cert: 'live/tls.crt', key: 'live/tls.key', clientCa: 'live/ca.pem', minVersion: 'TLSv1.3' },
        upstream: `http://127.0.0.1:${upstream.port}`,
        allow: [{ identity: 'spiffe://e2e.example/**' }],
      },
    ],
    sessions: { ticketKeyFile: 'ticket.key' },
    admin: { listen: '127.0.0.1:0' },
  };
  writeConfig(config);
  proxy = await startProxy(join(root, 'proxy.yaml'), root);
}, 120_000);

afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await upstream?.close();
  await removeTempDir(root);
});

const reloads = (): number =>
  proxy
    .logs()
    .split('\n')
    .filter((l) => l.includes('"event":"reloaded"')).length;

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function client(): { ca: Buffer; cert: Buffer; key: Buffer } {
  return {
    ca: readFileSync(pki.server.ca),
    cert: readFileSync(pki.spiffe.chain),
    key: readFileSync(pki.spiffe.key),
  };
}

function get(port: number, agent: Agent | false): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', servername: 'localhost', port, path: '/load', agent, ...(agent ? {} : client()) },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** One fresh TLS connection: the serial of the certificate the listener presents. */
function presentedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'localhost', ...client() }, () => {
      const serial = s.getPeerCertificate().serialNumber.toLowerCase().replace(/^0+/, '');
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

function serialOf(chainFile: string): string {
  return new X509Certificate(readFileSync(chainFile)).serialNumber.toLowerCase().replace(/^0+/, '');
}

describe('mtls proxy hot reload', () => {
  it('rotates the certificate and the CA bundle 10 times under continuous requests with zero failures', async () => {
    const port = proxy.listeners.api!;
    const agent = new Agent({ keepAlive: true, maxSockets: 4, ...client() });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    // Keep-alive requests on 4 connections plus a new connection (full handshake) each round.
    const loops = [0, 1, 2, 3].map(async (i) => {
      let n = 0;
      while (running && n < 20_000) {
        n++;
        try {
          const status = await get(port, i === 0 ? false : agent);
          if (status === 200) ok++;
          else failures.push(`status ${status}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
      }
    });
    try {
      for (let i = 0; i < rotations.length; i++) {
        const before = reloads();
        const next = rotations[i]!;
        replace(live.key, readFileSync(next.key));
        replace(live.cert, readFileSync(next.chain));
        // Every other rotation the bundle gains or loses an unrelated root; the client's CA stays.
        const bundle = readFileSync(pki.clientCa.bundle, 'utf8') + (i % 2 === 0 ? extraRoot : '');
        replace(live.clientCa, bundle);
        await waitFor(() => reloads() > before);
        const okBefore = ok;
        await waitFor(() => ok > okBefore + 5);
        expect(await presentedSerial(port)).toBe(serialOf(next.chain));
      }
    } finally {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(proxy.logs()).not.toMatch(/"event":"reload_rejected"/);
  }, 120_000);

  it('refuses a broken configuration with a logged error and keeps serving the old one', async () => {
    const port = proxy.listeners.api!;
    writeConfig({ ...config, listeners: [{ ...(config.listeners as object[])[0], tsl: {} }] });
    await waitFor(() => /"event":"reload_rejected".*listeners\.0\.tsl/.test(proxy.logs()));
    expect(await get(port, false)).toBe(200);
    // A key that does not match the certificate: refused as a whole, the old pair serves.
    writeConfig(config);
    const rejected = (): number =>
      proxy
        .logs()
        .split('\n')
        .filter((l) => l.includes('reload_rejected')).length;
    const before = rejected();
    replace(live.key, readFileSync(pki.client.key));
    await waitFor(() => rejected() > before);
    expect(proxy.logs()).toMatch(/is not the key of tls.cert/);
    expect(await get(port, false)).toBe(200);
    replace(live.key, readFileSync(rotations.at(-1)!.key));
  });

  it('reloads on SIGHUP', async () => {
    const before = proxy
      .logs()
      .split('\n')
      .filter((l) => l.includes('"why":"SIGHUP"')).length;
    proxy.proc.kill('SIGHUP');
    await waitFor(
      () =>
        proxy
          .logs()
          .split('\n')
          .filter((l) => l.includes('"why":"SIGHUP"')).length > before,
    );
    expect(await get(proxy.listeners.api!, false)).toBe(200);
    // Every reload is counted by result: the rotations and SIGHUP applied, the broken configs rejected.
    const m = (await call(`http://127.0.0.1:${proxy.adminPort}`, { path: '/metrics' })).body.toString();
    const count = (result: string): number =>
      Number(new RegExp(`mtls_proxy_reloads_total\\{result="${result}"\\} (\\d+)`).exec(m)?.[1] ?? 0);
    expect(count('applied')).toBeGreaterThanOrEqual(11);
    expect(count('rejected')).toBeGreaterThanOrEqual(2);
  });

  it('resumes TLS 1.3 sessions, also on a second proxy that shares the ticket-key file', async () => {
    const second = await startProxy(join(root, 'proxy.yaml'), root);
    try {
      const first = await handshake(proxy.listeners.api!);
      expect(first.reused).toBe(false);
      const again = await handshake(proxy.listeners.api!, first.session);
      expect(again.reused).toBe(true);
      const elsewhere = await handshake(second.listeners.api!, first.session);
      expect(elsewhere.reused).toBe(true);
      const m = await call(`http://127.0.0.1:${proxy.adminPort}`, { path: '/metrics' });
      expect(m.body.toString()).toMatch(/mtls_proxy_sessions_resumed_total\{listener="api"\} [1-9]/);
      expect(m.body.toString()).toMatch(
        /mtls_proxy_handshake_duration_seconds_count\{listener="api",resumed="true"\} [1-9]/,
      );
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });
});

/** A TLS 1.3 handshake and one request; returns the ticket to resume with and whether it resumed. */
function handshake(port: number, session?: Buffer): Promise<{ reused: boolean; session: Buffer }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    const s = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ...client(),
      ...(session ? { session } : {}),
    });
    s.on('session', (t: Buffer) => (ticket = t));
    s.once('secureConnect', () => {
      s.write('GET /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    let body = '';
    s.on('data', (d: Buffer) => (body += d.toString()));
    s.on('end', () => {
      if (!body.startsWith('HTTP/1.1 200'))
        return reject(new Error(`unexpected answer: ${body.slice(0, 80)}`));
      // A resumed TLS 1.3 session may come without a new ticket: the old one stays usable.
      const next = ticket ?? (s.isSessionReused() ? session : undefined);
      if (!next) return reject(new Error('the listener sent no session ticket'));
      resolve({ reused: s.isSessionReused(), session: next });
    });
    s.on('error', reject);
  });
}
