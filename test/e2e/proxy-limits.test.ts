// Slow or greedy clients cannot exhaust mtls proxy: a handshake that never finishes, request headers
// that trickle in (slowloris), oversized headers and connections beyond maxConnections are all cut
// off, while a normal client keeps being served. None of it reaches the upstream.
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../support/cli.js';
import { createPki, type Pki } from '../support/pki.js';
import {
  proxyCurl,
  startEchoUpstream,
  startProxy,
  type EchoUpstream,
  type RunningProxy,
} from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let upstream: EchoUpstream;
let proxy: RunningProxy;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-limits');
  pki = await createPki(root);
  upstream = await startEchoUpstream();
  const base = {
    tls: { cert: pki.server.chain, key: pki.server.key, clientCa: pki.clientCa.bundle },
    upstream: `http://127.0.0.1:${upstream.port}`,
    allow: 'any',
  };
  const config = {
    listeners: [
      {
        name: 'tight',
        listen: '127.0.0.1:0',
        ...base,
        limits: { handshakeTimeout: '1s', headersTimeout: '1s', idleTimeout: '3s', maxHeaderSize: 4096 },
      },
      { name: 'few', listen: '127.0.0.1:0', ...base, limits: { maxConnections: 5, handshakeTimeout: '5s' } },
    ],
  };
  writeFileSync(join(root, 'proxy.yaml'), stringify(config));
  proxy = await startProxy(join(root, 'proxy.yaml'), root);
}, 60_000);

afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await upstream?.close();
  await removeTempDir(root);
});

/** Resolves with the ms until the socket closed (or rejects after `ms`). */
function closedWithin(sock: Socket, ms: number): Promise<number> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms);
    sock.once('close', () => {
      clearTimeout(t);
      resolve(Date.now() - start);
    });
    sock.on('error', () => undefined);
  });
}

async function normalRequestWorks(port: number): Promise<void> {
  const r = await proxyCurl({
    port,
    path: '/ok',
    cacert: pki.server.ca,
    cert: pki.spiffe.chain,
    key: pki.spiffe.key,
  });
  expect(r.status, r.stderr).toBe(200);
}

describe('mtls proxy limits', () => {
  it('drops connections that never finish the handshake after handshakeTimeout', async () => {
    const socks = Array.from({ length: 20 }, () =>
      netConnect({ host: '127.0.0.1', port: proxy.listeners.tight! }),
    );
    const waits = socks.map((s) => closedWithin(s, 5_000));
    await normalRequestWorks(proxy.listeners.tight!);
    const times = await Promise.all(waits);
    for (const t of times) expect(t).toBeGreaterThanOrEqual(900);
  });

  it('cuts off slowloris clients after headersTimeout while others are served; the upstream sees none', async () => {
    const before = upstream.received.length;
    const creds = {
      ca: readFileSync(pki.server.ca),
      cert: readFileSync(pki.spiffe.chain),
      key: readFileSync(pki.spiffe.key),
      servername: 'localhost',
    };
    const slow = await Promise.all(
      Array.from(
        { length: 30 },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const s = tlsConnect({ host: '127.0.0.1', port: proxy.listeners.tight!, ...creds }, () => {
              s.write('GET /slow HTTP/1.1\r\nHost: localhost\r\nX-Drip: 1\r\n');
              resolve(s);
            });
            s.once('error', reject);
          }),
      ),
    );
    // Keep dripping header lines: each is well within any per-read timeout, the whole never ends.
    const drip = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write('X-Drip: 1\r\n');
    }, 200);
    try {
      const waits = slow.map((s) => closedWithin(s, 6_000));
      await normalRequestWorks(proxy.listeners.tight!);
      const times = await Promise.all(waits);
      for (const t of times) expect(t).toBeLessThan(6_000);
    } finally {
      clearInterval(drip);
    }
    expect(upstream.received.length - before).toBe(1); // only the normal request
  });

  it('answers 431 to request headers larger than maxHeaderSize', async () => {
    const before = upstream.received.length;
    const r = await proxyCurl({
      port: proxy.listeners.tight!,
      path: '/big',
      cacert: pki.server.ca,
      cert: pki.spiffe.chain,
      key: pki.spiffe.key,
      headers: [`X-Big: ${'a'.repeat(8_000)}`],
    });
    expect(r.status).toBe(431);
    expect(upstream.received.length).toBe(before);
  });

  it('refuses connections beyond maxConnections and serves again once they go', async () => {
    const port = proxy.listeners.few!;
    const held = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<Socket>((resolve, reject) => {
            const s = tlsConnect(
              {
                host: '127.0.0.1',
                port,
                servername: 'localhost',
                ca: readFileSync(pki.server.ca),
                cert: readFileSync(pki.spiffe.chain),
                key: readFileSync(pki.spiffe.key),
              },
              () => resolve(s),
            );
            s.once('error', reject);
          }),
      ),
    );
    const extra = netConnect({ host: '127.0.0.1', port });
    expect(await closedWithin(extra, 3_000)).toBeLessThan(3_000);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    await normalRequestWorks(port);
  });
});
