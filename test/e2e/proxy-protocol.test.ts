// PROXY protocol v2 against a real consumer: a node:tls server terminating mTLS and sending
// encodeProxyV2(tlsFacts(socket)) in front of HAProxy `bind … accept-proxy`, which answers with the
// addresses, authority and unique id it parsed. HAProxy drops a header it cannot parse and checks
// PP2_TYPE_CRC32C, so a 200 with the right facts proves the bytes are right.
//
// The encoder is imported from src (vitest compiles it): `mtls proxy` wires it into `protocol: tcp`
// listeners, and a binary-level test belongs with that wiring.
import { readFile } from 'node:fs/promises';
import { request, type RequestOptions } from 'node:https';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeProxyV2,
  encodeProxyV2,
  tlsFacts,
  type DecodedProxyV2,
  type ProxyHeaderInput,
} from '../../src/proxy/proxy-protocol.js';
import { assertBuilt } from '../support/cli.js';
import { parsePpReport, startHaproxyPp, type PpReport } from '../support/haproxy-pp.js';
import type { Peer } from '../support/peers.js';
import { createPki, type LeafPaths, type Pki } from '../support/pki.js';
import { LOOPBACK } from '../support/ports.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let haproxy: Peer;
let front: Server;
let frontPort: number;
let ipv6 = true;
/** The header sent for each connection, by unique id. */
const sent = new Map<string, DecodedProxyV2>();
let seq = 0;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-protocol');
  pki = await createPki(root);
  haproxy = await startHaproxyPp(root);
  const [cert, key, ca] = await Promise.all([
    readFile(pki.server.chain),
    readFile(pki.server.key),
    readFile(pki.clientCa.bundle),
  ]);
  // What a `protocol: tcp` listener does once the verdict is in: header first, then the bytes.
  front = createServer(
    { cert, key, ca, requestCert: true, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] },
    (sock: TLSSocket) => {
      const uniqueId = `conn-${++seq}`;
      const header = encodeProxyV2({ ...tlsFacts(sock), uniqueId, crc32c: true });
      sent.set(uniqueId, decodeProxyV2(header));
      const up = netConnect({ host: LOOPBACK, port: haproxy.port });
      up.write(header);
      sock.pipe(up).pipe(sock);
      const end = (): void => {
        sock.destroy();
        up.destroy();
      };
      sock.on('error', end);
      up.on('error', end);
    },
  );
  // Dual stack: IPv4 clients show as ::ffff:127.0.0.1, which the header must carry as IPv4.
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject);
    front.listen({ host: '::', port: 0, ipv6Only: false }, resolve);
  }).catch(async () => {
    ipv6 = false;
    await new Promise<void>((resolve) => front.listen({ host: LOOPBACK, port: 0 }, resolve));
  });
  frontPort = (front.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((r) => (front ? front.close(() => r()) : r()));
  await haproxy?.stop();
  await removeTempDir(root);
});

interface Got {
  status: number;
  report: PpReport;
  local: { address: string; port: number };
}

/** GET / over mTLS to the front, with SNI localhost, from `host` (127.0.0.1 or ::1). */
function get(host: string, leaf: LeafPaths): Promise<Got> {
  return Promise.all([readFile(leaf.chain), readFile(leaf.key), readFile(pki.server.ca)]).then(
    ([cert, key, ca]) =>
      new Promise<Got>((resolve, reject) => {
        // ALPNProtocols reaches tls.connect (the https types leave it out).
        const opts: RequestOptions & { ALPNProtocols: string[] } = {
          host,
          port: frontPort,
          path: '/',
          servername: 'localhost',
          ALPNProtocols: ['http/1.1'],
          cert,
          key,
          ca,
          agent: false,
        };
        const req = request(opts, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              report: parsePpReport(body),
              local: { address: req.socket!.localAddress!, port: req.socket!.localPort! },
            }),
          );
        });
        req.on('error', reject);
        req.end();
      }),
  );
}

/** One raw connection to HAProxy: header bytes + a request; resolves with what came back. */
function raw(header: Buffer): Promise<{ text: string; local: number }> {
  return new Promise((resolve, reject) => {
    const s: Socket = netConnect({ host: LOOPBACK, port: haproxy.port }, () => {
      s.write(Buffer.concat([header, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')]));
    });
    let text = '';
    let local = 0;
    s.once('connect', () => (local = s.localPort ?? 0));
    s.on('data', (d: Buffer) => (text += d.toString('utf8')));
    s.on('close', () => resolve({ text, local }));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    s.setTimeout(10_000, () => s.destroy(new Error('HAProxy did not answer in 10 s')));
  });
}

describe('PROXY protocol v2 → HAProxy accept-proxy', () => {
  it('IPv4 client: HAProxy sees its address and port, the SNI as authority and our unique id', async () => {
    const r = await get('127.0.0.1', pki.client);
    expect(r.status, JSON.stringify(r.report) + haproxy.log()).toBe(200);
    expect(r.report.src).toBe('127.0.0.1');
    expect(r.report.src_port).toBe(String(r.local.port));
    expect(r.report.dst).toBe('127.0.0.1');
    expect(r.report.dst_port).toBe(String(frontPort));
    expect(r.report.authority).toBe('localhost');
    expect(r.report.unique_id).toMatch(/^conn-\d+$/);
    // What we sent for that connection, read back with our decoder: the TLS facts.
    const h = sent.get(r.report.unique_id)!;
    expect(h.family).toBe('inet'); // ::ffff:127.0.0.1 on the dual-stack socket went as IPv4
    expect(h.alpn).toBe('http/1.1');
    expect(h.crc32c).toBeTypeOf('number');
    expect(h.ssl).toMatchObject({
      clientSsl: true,
      certConn: true,
      certSess: true,
      verify: 0,
      version: 'TLSv1.3',
      cn: 'alice',
      cipher: 'TLS_AES_256_GCM_SHA384',
      sigAlg: 'ecdsa-with-SHA256',
      keyAlg: 'EC256',
    });
    expect(h.spiffeId).toBeUndefined();
  });

  it('carries the SPIFFE ID of the client certificate in TLV 0xE0', async () => {
    const r = await get('127.0.0.1', pki.spiffe);
    expect(r.status).toBe(200);
    const h = sent.get(r.report.unique_id)!;
    expect(h.spiffeId).toBe(pki.spiffeId);
    expect(h.tlvs.map((t) => t.type)).toEqual([0x01, 0x02, 0x05, 0x20, 0xe0, 0x03]);
  });

  it('IPv6 client: family 0x21, HAProxy sees ::1', async (ctx) => {
    if (!ipv6) ctx.skip();
    const r = await get('::1', pki.client);
    expect(r.status).toBe(200);
    expect(r.report.src).toBe('::1');
    expect(r.report.src_port).toBe(String(r.local.port));
    expect(r.report.dst).toBe('::1');
    expect(r.report.dst_port).toBe(String(frontPort));
    expect(sent.get(r.report.unique_id)!.family).toBe('inet6');
  });

  const spoofed: ProxyHeaderInput = {
    source: { address: '203.0.113.9', port: 40001 },
    destination: { address: '198.51.100.1', port: 443 },
    authority: 'orders.example.org',
    uniqueId: 'raw-1',
  };

  it('a hand-built header with a CRC32C is accepted as sent', async () => {
    const r = await raw(encodeProxyV2({ ...spoofed, crc32c: true }));
    expect(r.text).toMatch(/^HTTP\/1\.1 200/);
    expect(parsePpReport(r.text.slice(r.text.indexOf('\r\n\r\n') + 4))).toEqual({
      src: '203.0.113.9',
      src_port: '40001',
      dst: '198.51.100.1',
      dst_port: '443',
      authority: 'orders.example.org',
      unique_id: 'raw-1',
    });
  });

  it('HAProxy drops a header whose CRC32C does not match', async () => {
    const bad = encodeProxyV2({ ...spoofed, crc32c: true });
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 0xff;
    const r = await raw(bad);
    expect(r.text).not.toMatch(/200/);
  });

  it('LOCAL: HAProxy uses the real connection endpoints', async () => {
    const r = await raw(encodeProxyV2({ command: 'LOCAL' }));
    expect(r.text).toMatch(/^HTTP\/1\.1 200/);
    const rep = parsePpReport(r.text.slice(r.text.indexOf('\r\n\r\n') + 4));
    expect(rep.src).toBe('127.0.0.1');
    expect(rep.src_port).toBe(String(r.local));
    expect(rep.dst_port).toBe(String(haproxy.port));
    expect(rep.authority).toBe('');
  });
});
