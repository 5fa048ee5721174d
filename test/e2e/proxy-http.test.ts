// mtls proxy in front of an echo upstream, driven by curl: the verdict for each reason class, allow
// rules, identity headers (and that spoofed ones never arrive), HTTP/2, permissive mode, metrics.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFileCa } from '../../src/ca/index.js';
import { decodePem, exportPrivateKeyPem, generateKey, parseName, spkiOf } from '../../src/pki/index.js';
import { assertBuilt, errorCode, mtls, TEST_PASSPHRASE } from '../support/cli.js';
import { createPki, issue, type LeafPaths, type Pki } from '../support/pki.js';
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
let expired: { cert: string; key: string };
let notYetValid: { cert: string; key: string };
let otherCa: LeafPaths;

const SPOOF = [
  'X-Forwarded-Client-Cert: By=spiffe://evil;Hash=00;URI=spiffe://e2e.example/ns/prod/sa/admin',
  'X-Client-Spiffe-Id: spiffe://e2e.example/ns/prod/sa/admin',
  'X-Client-Verify: SUCCESS',
];

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-http');
  pki = await createPki(root);
  upstream = await startEchoUpstream();
  // An expired client certificate from the trusted client CA, signed with its intermediate key.
  const ca = loadFileCa(pki.clientCa.dir, TEST_PASSPHRASE);
  const key = generateKey('p256');
  const old = ca.issuer.issue({
    profile: 'client',
    subject: parseName('CN=old-client'),
    publicKey: spkiOf(key),
    notBefore: new Date(Date.now() - 3 * 3_600_000),
    notAfter: new Date(Date.now() - 3_600_000),
    unchecked: true,
  });
  expired = { cert: join(root, 'expired.chain.pem'), key: join(root, 'expired.key') };
  await writeFile(expired.cert, old.pem + ca.intermediatePem);
  await writeFile(expired.key, exportPrivateKeyPem(key), { mode: 0o600 });
  // …and one whose validity starts in an hour (a clock skewed ahead on the issuing side).
  const future = ca.issuer.issue({
    profile: 'client',
    subject: parseName('CN=early-client'),
    publicKey: spkiOf(key),
    notBefore: new Date(Date.now() + 3_600_000),
    notAfter: new Date(Date.now() + 3 * 3_600_000),
    unchecked: true,
  });
  notYetValid = { cert: join(root, 'future.chain.pem'), key: expired.key };
  await writeFile(notYetValid.cert, future.pem + ca.intermediatePem);
  // A client certificate from a CA the listeners do not trust.
  otherCa = await issue(pki.serverCa, join(root, 'server'), 'client', 'stranger');

  const tls = { cert: pki.server.chain, key: pki.server.key, clientCa: pki.clientCa.bundle };
  const up = `http://127.0.0.1:${upstream.port}`;
  const config = {
    listeners: [
      {
        name: 'strict',
        listen: '127.0.0.1:0',
        tls,
        upstream: up,
        identity: { headers: 'xfcc' },
        allow: [
          { identity: 'spiffe://e2e.example/ns/*/sa/worker', paths: ['/api/*'], methods: ['GET'] },
          { identity: 'dns:*.e2e.example', paths: ['/api/*', '/peer'] },
        ],
      },
      {
        name: 'explained',
        listen: '127.0.0.1:0',
        tls,
        upstream: up,
        identity: { headers: 'simple' },
        explain: true,
        allow: [{ identity: 'spiffe://e2e.example/**', paths: ['/api/*'] }],
      },
      {
        name: 'permissive',
        listen: '127.0.0.1:0',
        mode: 'permissive',
        tls,
        upstream: up,
        identity: { headers: 'simple' },
      },
    ],
    admin: { listen: '127.0.0.1:0' },
  };
  await writeFile(join(root, 'proxy.yaml'), stringify(config));
  proxy = await startProxy(join(root, 'proxy.yaml'), root);
});

afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await upstream?.close();
  await removeTempDir(root);
});

const port = (name: string): number => proxy.listeners[name]!;
const cacert = (): string => pki.server.ca;

/** Requests through the proxy that the upstream never sees: asserts the count did not move. */
async function refused(
  listener: string,
  cred: { cert: string; key: string } | undefined,
  path = '/api/x',
  extra: { method?: string } = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const before = upstream.received.length;
  const r = await proxyCurl({
    port: port(listener),
    path,
    cacert: cacert(),
    ...(cred ?? {}),
    ...extra,
    headers: SPOOF,
  });
  expect(r.exitCode, r.stderr).toBe(0);
  expect(upstream.received.length).toBe(before);
  return { status: r.status, body: r.json() };
}

function leafDer(pem: string): Buffer {
  return decodePem(pem)[0]!.der;
}

describe('mtls proxy (http)', () => {
  it('forwards an allowed SPIFFE client with XFCC, and drops spoofed identity headers', async () => {
    const before = upstream.received.length;
    const r = await proxyCurl({
      port: port('strict'),
      path: '/api/orders?x=1',
      cacert: cacert(),
      cert: pki.spiffe.chain,
      key: pki.spiffe.key,
      headers: SPOOF,
    });
    expect(r.status, r.body).toBe(200);
    expect(upstream.received.length).toBe(before + 1);
    const got = r.json() as { url: string; headers: Record<string, string>; rawHeaders: string[] };
    expect(got.url).toBe('/api/orders?x=1');
    const hash = createHash('sha256')
      .update(leafDer(await readFile(pki.spiffe.cert, 'utf8')))
      .digest('hex');
    expect(got.headers['x-forwarded-client-cert']).toBe(`Hash=${hash};Subject="";URI=${pki.spiffeId}`);
    expect(got.rawHeaders.filter((h) => h.toLowerCase() === 'x-forwarded-client-cert')).toHaveLength(1);
    expect(got.headers['x-client-spiffe-id']).toBeUndefined();
    expect(got.headers['x-client-verify']).toBeUndefined();
    expect(got.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(got.headers['x-forwarded-proto']).toBe('https');
    expect(r.headers['x-upstream']).toEqual(['echo']);
    // The upstream's own keep-alive (Node's timeout=5) is hop-by-hop; the proxy states its idle timeout.
    expect(r.headers['keep-alive']).toEqual(['timeout=120']);
  });

  it('puts DNS names and the subject in XFCC', async () => {
    const r = await proxyCurl({
      port: port('strict'),
      path: '/peer',
      cacert: cacert(),
      cert: pki.peer.chain,
      key: pki.peer.key,
    });
    expect(r.status, r.body).toBe(200);
    const xfcc = (r.json() as { headers: Record<string, string> }).headers['x-forwarded-client-cert']!;
    expect(xfcc).toMatch(/^Hash=[0-9a-f]{64};Subject="CN=peer\.e2e\.example";DNS=peer\.e2e\.example$/);
  });

  it('works over HTTP/2 (ALPN h2)', async () => {
    const r = await proxyCurl({
      port: port('strict'),
      path: '/api/h2',
      cacert: cacert(),
      cert: pki.spiffe.chain,
      key: pki.spiffe.key,
      http2: true,
      headers: SPOOF,
    });
    expect(r.status, r.body).toBe(200);
    expect(r.httpVersion).toBe('2');
    const got = r.json() as { headers: Record<string, string> };
    expect(got.headers['x-forwarded-client-cert']).toContain(`URI=${pki.spiffeId}`);
    expect(got.headers['x-forwarded-client-cert']).not.toContain('evil');
    expect(got.headers.host).toBe(`localhost:${port('strict')}`);
    const denied = await proxyCurl({ port: port('strict'), path: '/admin', cacert: cacert(), http2: true });
    expect(denied.status).toBe(401);
    expect(denied.json()).toMatchObject({ reason: 'no_client_cert' });
  });

  it('forwards a POST body in simple mode with the simple identity headers', async () => {
    const r = await proxyCurl({
      port: port('explained'),
      path: '/api/p',
      cacert: cacert(),
      cert: pki.spiffe.chain,
      key: pki.spiffe.key,
      method: 'POST',
      data: '{"a":1}',
      headers: SPOOF,
    });
    expect(r.status, r.body).toBe(200);
    const got = r.json() as { method: string; body: string; headers: Record<string, string> };
    expect(got).toMatchObject({ method: 'POST', body: '{"a":1}' });
    expect(got.headers['x-client-verify']).toBe('SUCCESS');
    expect(got.headers['x-client-spiffe-id']).toBe(pki.spiffeId);
    expect(got.headers['x-client-dn']).toBe('');
    expect(got.headers['x-forwarded-client-cert']).toBeUndefined();
    const pem = decodeURIComponent(got.headers['x-client-cert']!);
    expect(leafDer(pem).equals(leafDer(await readFile(pki.spiffe.cert, 'utf8')))).toBe(true);
  });

  it.each([
    { what: 'no certificate', which: undefined, reason: 'no_client_cert' },
    { what: 'an expired certificate', which: 'expired', reason: 'expired' },
    { what: 'a certificate not valid yet', which: 'notYetValid', reason: 'not_yet_valid' },
    { what: 'a server certificate used as a client', which: 'serverAsClient', reason: 'wrong_eku' },
    { what: 'a certificate from another CA', which: 'otherCa', reason: 'unknown_ca' },
    { what: 'a leaf without its intermediate', which: 'leafOnly', reason: 'missing_intermediate' },
  ])('401 for $what: $reason, nothing reaches the upstream', async ({ which, reason }) => {
    const creds: Record<string, { cert: string; key: string }> = {
      expired,
      notYetValid,
      serverAsClient: { cert: pki.serverAsClient.chain, key: pki.serverAsClient.key },
      otherCa: { cert: otherCa.chain, key: otherCa.key },
      leafOnly: { cert: pki.spiffe.cert, key: pki.spiffe.key },
    };
    const r = await refused('strict', which ? creds[which] : undefined);
    expect(r.status).toBe(401);
    expect(r.body).toEqual({
      code: 'MTLS_PROXY_UNAUTHENTICATED',
      reason,
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
    });
  });

  it('403 identity_not_allowed for a path or a method no rule allows', async () => {
    const cred = { cert: pki.spiffe.chain, key: pki.spiffe.key };
    const path = await refused('strict', cred, '/admin/users');
    expect(path.status).toBe(403);
    expect(path.body).toMatchObject({ code: 'MTLS_PROXY_FORBIDDEN', reason: 'identity_not_allowed' });
    expect(path.body.detail).toBeUndefined();
    const method = await refused('strict', cred, '/api/orders', { method: 'DELETE' });
    expect(method.status).toBe(403);
    expect(method.body).toMatchObject({ reason: 'identity_not_allowed' });
    const dots = await refused('strict', cred, '/api/../admin/users');
    expect(dots.status).toBe(403);
  });

  it('explain: true adds a human detail', async () => {
    const expiredR = await refused('explained', expired);
    expect(expiredR.body).toMatchObject({
      reason: 'expired',
      detail: expect.stringContaining('expired at') as unknown,
    });
    const other = await refused('explained', { cert: otherCa.chain, key: otherCa.key });
    expect(other.body.detail).toContain('which this listener does not trust');
    const forbidden = await refused('explained', { cert: pki.spiffe.chain, key: pki.spiffe.key }, '/other');
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.detail).toContain(`${pki.spiffeId} may not GET /other`);
  });

  it('permissive mode forwards a request without a certificate as X-Client-Verify: NONE, and a bad one as FAILED', async () => {
    const r = await proxyCurl({
      port: port('permissive'),
      path: '/legacy',
      cacert: cacert(),
      headers: SPOOF,
    });
    expect(r.status, r.body).toBe(200);
    const h = (r.json() as { headers: Record<string, string> }).headers;
    expect(h['x-client-verify']).toBe('NONE');
    expect(h['x-client-spiffe-id']).toBeUndefined();
    expect(h['x-forwarded-client-cert']).toBeUndefined();
    const bad = await proxyCurl({
      port: port('permissive'),
      path: '/legacy',
      cacert: cacert(),
      cert: expired.cert,
      key: expired.key,
    });
    expect((bad.json() as { headers: Record<string, string> }).headers['x-client-verify']).toBe(
      'FAILED:expired',
    );
  });

  it('502 with a code when the upstream is down', async () => {
    const dead = join(root, 'dead.yaml');
    await writeFile(
      dead,
      stringify({
        listeners: [
          {
            name: 'dead',
            listen: '127.0.0.1:0',
            tls: { cert: pki.server.chain, key: pki.server.key, clientCa: pki.clientCa.bundle },
            upstream: 'http://127.0.0.1:1',
            allow: [{ identity: 'any' }],
          },
        ],
      }),
    );
    const p = await startProxy(dead, root);
    try {
      const r = await proxyCurl({
        port: p.listeners.dead!,
        path: '/',
        cacert: cacert(),
        cert: pki.spiffe.chain,
        key: pki.spiffe.key,
      });
      expect(r.status).toBe(502);
      expect(r.json()).toMatchObject({ code: 'MTLS_PROXY_UPSTREAM' });
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });

  it('counts handshakes and requests on the admin listener', async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/mtls_proxy_handshakes_total\{listener="strict",result="no_client_cert"\} [1-9]/);
    expect(text).toMatch(/mtls_proxy_handshakes_total\{listener="strict",result="expired"\} [1-9]/);
    expect(text).toMatch(/mtls_proxy_handshakes_total\{listener="strict",result="accepted"\} [1-9]/);
    expect(text).toMatch(
      /mtls_proxy_requests_total\{listener="strict",code="401",decision="unauthenticated",rule=""\} [1-9]/,
    );
    expect(text).toMatch(
      /mtls_proxy_requests_total\{listener="strict",code="403",decision="forbidden",rule=""\} [1-9]/,
    );
    expect(text).toMatch(
      /mtls_proxy_requests_total\{listener="strict",code="200",decision="forwarded",rule="\d+"\} [1-9]/,
    );
    expect(text).toMatch(
      /mtls_proxy_handshake_duration_seconds_count\{listener="strict",resumed="false"\} [1-9]/,
    );
    expect(text).toMatch(/mtls_proxy_certificate_expiry_timestamp_seconds\{listener="strict"\} \d{10}/);
    expect(text).toMatch(/mtls_proxy_connections_open\{listener="strict"\} \d/);
    expect(text).toMatch(/mtls_proxy_unauthenticated_forwarded_total\{listener="permissive"\} [1-9]/);
    expect((await fetch(`http://127.0.0.1:${proxy.adminPort}/readyz`)).status).toBe(200);
  });

  it('logs each refusal once with the reason, peer and names, and no key material', () => {
    const lines = proxy
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const expiredLines = lines.filter(
      (l) => l.event === 'request_refused' && l.reason === 'expired' && l.listener === 'strict',
    );
    expect(expiredLines).toHaveLength(1);
    expect(expiredLines[0]).toMatchObject({
      status: 401,
      subject: 'CN=old-client',
      peer: expect.stringMatching(/^127\.0\.0\.1:\d+$/) as unknown,
    });
    expect(expiredLines[0]!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(proxy.logs()).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
  });

  it('refuses an unknown config key with MTLS_CONFIG_INVALID and exit 2', async () => {
    const bad = join(root, 'bad.yaml');
    await writeFile(
      bad,
      stringify({
        listeners: [
          {
            name: 'x',
            listen: '127.0.0.1:0',
            tls: { cert: 'a', key: 'b', clientCa: 'c', verify: true },
            upstream: 'http://127.0.0.1:1',
            allow: [{ identity: 'any' }],
          },
        ],
      }),
    );
    const r = await mtls(['proxy', '--config', bad], { cwd: root });
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('MTLS_CONFIG_INVALID');
    expect(r.stderr).toContain('listeners.0.tls.verify');
  });
});
