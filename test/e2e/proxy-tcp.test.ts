// `protocol: tcp` listeners and outbound mode through the real `mtls proxy` binary: a TCP upstream
// receives a correct PROXY v2 header (checked by HAProxy's accept-proxy and by the decoder, TLS TLVs
// included) and nothing at all from a refused peer; an outbound entry wraps a plaintext client in
// mTLS towards a listener of the same proxy and the identity arrives at the upstream.
import { createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeProxyV2, proxyV2HeaderLength } from '../../src/proxy/proxy-protocol.js';
import { call } from '../support/ca-service.js';
import { assertBuilt } from '../support/cli.js';
import { curl } from '../support/curl.js';
import { startHaproxyPp, parsePpReport } from '../support/haproxy-pp.js';
import type { Peer } from '../support/peers.js';
import { createPki, type Pki } from '../support/pki.js';
import { startEchoUpstream, startProxy, type EchoUpstream, type RunningProxy } from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let haproxy: Peer;
let recorder: { server: Server; port: number; received: Buffer[] };
let echo: EchoUpstream;
let proxy: RunningProxy;
let outboundPort: number;

/** A TCP upstream that keeps every byte each connection sent, and answers "pong". */
async function startRecorder(): Promise<typeof recorder> {
  const received: Buffer[] = [];
  const server = createServer((s: Socket) => {
    const i = received.push(Buffer.alloc(0)) - 1;
    s.on('data', (d: Buffer) => {
      received[i] = Buffer.concat([received[i]!, d]);
      if (received[i].includes('ping')) s.end('pong');
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, received };
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-tcp');
  pki = await createPki(root);
  haproxy = await startHaproxyPp(root);
  recorder = await startRecorder();
  echo = await startEchoUpstream();
  const tls = { cert: pki.server.chain, key: pki.server.key, clientCa: pki.clientCa.bundle };
  const config = {
    listeners: [
      {
        name: 'to-haproxy',
        listen: '127.0.0.1:0',
        protocol: 'tcp',
        tls,
        upstream: `tcp://127.0.0.1:${haproxy.port}`,
        identity: { proxyProtocol: 'v2' },
        allow: [{ identity: 'spiffe://e2e.example/ns/*/sa/worker' }],
      },
      {
        name: 'to-recorder',
        listen: '127.0.0.1:0',
        protocol: 'tcp',
        tls,
        upstream: `tcp://127.0.0.1:${recorder.port}`,
        identity: { proxyProtocol: 'v2' },
        allow: [{ identity: 'spiffe://e2e.example/ns/*/sa/worker' }],
      },
      {
        name: 'http-in',
        listen: '127.0.0.1:0',
        tls,
        upstream: `http://127.0.0.1:${echo.port}`,
        allow: [{ identity: 'spiffe://e2e.example/**' }],
      },
    ],
    outbound: [
      {
        name: 'to-http-in',
        listen: '127.0.0.1:0',
        // Filled in below once the http-in port is known: a second proxy process runs the outbound.
        upstream: 'localhost:1',
        tls: { cert: pki.spiffe.chain, key: pki.spiffe.key, ca: pki.server.ca },
        expect: 'dns:localhost',
      },
    ],
    admin: { listen: '127.0.0.1:0' },
  };
  // The inbound listeners first (ports are picked at start), then a second process for outbound.
  writeFileSync(join(root, 'in.yaml'), stringify({ ...config, outbound: undefined }));
  proxy = await startProxy(join(root, 'in.yaml'), root);
  const out = {
    listeners: [
      {
        name: 'unused',
        listen: '127.0.0.1:0',
        tls,
        upstream: `http://127.0.0.1:${echo.port}`,
        allow: 'any',
      },
    ],
    outbound: [{ ...config.outbound[0], upstream: `localhost:${proxy.listeners['http-in']}` }],
    admin: { listen: '127.0.0.1:0' },
  };
  writeFileSync(join(root, 'out.yaml'), stringify(out));
  outboundProxy = await startProxy(join(root, 'out.yaml'), root);
  outboundPort = outboundProxy.outbound['to-http-in']!;
}, 90_000);

let outboundProxy: RunningProxy;

afterAll(async () => {
  if (outboundProxy) expect(await outboundProxy.stop()).toBe(0);
  if (proxy) expect(await proxy.stop()).toBe(0);
  await haproxy?.stop();
  recorder?.server.close();
  await echo?.close();
  await removeTempDir(root);
});

function tlsExchange(
  port: number,
  cert: string,
  key: string,
  send: string,
): Promise<{ got: string; local: number }> {
  return new Promise((resolve, reject) => {
    let got = '';
    let local = 0;
    const s = tlsConnect(
      {
        host: '127.0.0.1',
        port,
        servername: 'localhost',
        ca: readFileSync(pki.server.ca),
        cert: readFileSync(cert),
        key: readFileSync(key),
      },
      () => {
        local = s.localPort ?? 0;
        s.write(send);
      },
    );
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('close', () => resolve({ got, local }));
    s.on('error', reject);
  });
}

describe('mtls proxy tcp listeners and outbound mode', () => {
  it('HAProxy (accept-proxy) reads our PROXY v2 header: the client address, SNI and connection id', async () => {
    const r = await curl({
      port: proxy.listeners['to-haproxy']!,
      cacert: pki.server.ca,
      cert: pki.spiffe.chain,
      key: pki.spiffe.key,
    });
    expect(r.status, r.stderr).toBe(200);
    const report = parsePpReport(r.body);
    expect(report.src).toBe('127.0.0.1');
    expect(Number(report.src_port)).toBeGreaterThan(0);
    expect(report.dst).toBe('127.0.0.1');
    expect(Number(report.dst_port)).toBe(proxy.listeners['to-haproxy']);
    expect(report.authority).toBe('localhost');
    expect(report.unique_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(proxy.logs()).toContain(report.unique_id);
  });

  it('the upstream gets the TLS facts and the SPIFFE ID in the header, then the bytes', async () => {
    const before = recorder.received.length;
    const r = await tlsExchange(proxy.listeners['to-recorder']!, pki.spiffe.chain, pki.spiffe.key, 'ping');
    expect(r.got).toBe('pong');
    const bytes = recorder.received[before]!;
    const h = decodeProxyV2(bytes);
    expect(h.command).toBe('PROXY');
    expect(h.source).toEqual({ address: '127.0.0.1', port: r.local });
    expect(h.spiffeId).toBe(pki.spiffeId);
    expect(h.authority).toBe('localhost');
    expect(h.ssl).toMatchObject({ clientSsl: true, certConn: true, verify: 0, version: 'TLSv1.3' });
    expect(h.crc32c).toBeDefined();
    expect(bytes.subarray(proxyV2HeaderLength(bytes)).toString()).toBe('ping');
  });

  it.each([
    { what: 'an identity no rule allows', cert: 'client', reason: 'identity_not_allowed' },
    { what: 'a server certificate', cert: 'serverAsClient', reason: 'wrong_eku' },
  ])('closes the connection of $what and the upstream receives zero bytes', async ({ cert, reason }) => {
    const before = recorder.received.length;
    const leaf = cert === 'client' ? pki.client : pki.serverAsClient;
    const r = await tlsExchange(proxy.listeners['to-recorder']!, leaf.chain, leaf.key, 'ping');
    expect(r.got).toBe('');
    await new Promise((res) => setTimeout(res, 100));
    expect(recorder.received.length).toBe(before);
    expect(proxy.logs()).toMatch(new RegExp(`"event":"connection_refused".*"reason":"${reason}"`));
  });

  it('outbound: a plaintext client reaches an mTLS listener with our identity, checked against expect', async () => {
    const before = echo.received.length;
    const r = await call(`http://127.0.0.1:${outboundPort}`, { path: '/via-outbound' });
    expect(r.status, r.body.toString()).toBe(200);
    const got = echo.received[before]!;
    expect(got.url).toBe('/via-outbound');
    expect(got.headers['x-forwarded-client-cert']).toContain(`URI=${pki.spiffeId}`);
    const m = await call(`http://127.0.0.1:${outboundProxy.adminPort}`, { path: '/metrics' });
    expect(m.body.toString()).toMatch(
      /mtls_proxy_outbound_connections_total\{outbound="to-http-in",result="ok"/,
    );
  });
});
