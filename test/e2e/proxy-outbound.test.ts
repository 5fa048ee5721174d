// Outbound mode: plaintext on 127.0.0.1 → mTLS to an upstream with our client certificate. curl and
// node:http2 (h2c) are the apps; nginx, HAProxy and node:https/node:http2 servers requiring client
// certificates are the upstreams; certificates come from the real CLI (test/support/pki.ts).
//
// startOutbound is imported from src (vitest compiles it) rather than run through `mtls proxy`:
// the config wiring is not in the binary yet; a binary-level test comes with it.
import { connect as h2connect } from 'node:http2';
import { get as httpGet } from 'node:http';
import { connect as netConnect } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseOutbound,
  startOutbound,
  type OutboundEvent,
  type OutboundInput,
  type RunningOutbound,
} from '../../src/proxy/outbound.js';
import { createLogger } from '../../src/telemetry/index.js';
import { assertBuilt, run } from '../support/cli.js';
import { startMtlsUpstream, type MtlsUpstream, type Seen } from '../support/mtls-upstream.js';
import { startHaproxy, startNginx, type Peer } from '../support/peers.js';
import { createPki, issue, writeCombinedPem, type LeafPaths, type Pki } from '../support/pki.js';
import { freePort, LOOPBACK } from '../support/ports.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let nginx: Peer;
let haproxy: Peer;
let echo: MtlsUpstream;
let h2: MtlsUpstream;
let banner: MtlsUpstream;
let collector: MtlsUpstream;
/** A client certificate from the server CA: nobody here trusts it as a client. */
let stranger: LeafPaths;
const collectorId = 'spiffe://e2e.example/ns/obs/sa/collector';

const logLines: Record<string, unknown>[] = [];
const logger = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n'))
        if (l.trim()) logLines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  }),
});
const events: OutboundEvent[] = [];
const running: RunningOutbound[] = [];

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-outbound');
  pki = await createPki(root);
  const extra = join(root, 'extra');
  await mkdir(extra);
  stranger = await issue(pki.serverCa, extra, 'client', 'stranger');
  // The collector presents a SPIFFE X509-SVID (serverAuth + clientAuth) from the server CA.
  const collectorLeaf = await issue(pki.serverCa, extra, 'spiffe', collectorId);
  const upstreamTls = { cert: pki.server.chain, key: pki.server.key, ca: pki.clientCa.bundle };
  [nginx, haproxy, echo, h2, banner, collector] = await Promise.all([
    startNginx({
      prefix: join(root, 'nginx'),
      certChain: pki.server.chain,
      key: pki.server.key,
      clientCa: pki.clientCa.bundle,
    }),
    writeCombinedPem(pki.server, join(root, 'haproxy.pem')).then((crt) =>
      startHaproxy({ dir: root, crt, caFile: pki.clientCa.bundle }),
    ),
    startMtlsUpstream({ ...upstreamTls, kind: 'https' }),
    startMtlsUpstream({ ...upstreamTls, kind: 'http2' }),
    startMtlsUpstream({ ...upstreamTls, kind: 'banner' }),
    startMtlsUpstream({ cert: collectorLeaf.chain, key: collectorLeaf.key, ca: pki.clientCa.bundle }),
  ]);
});

afterAll(async () => {
  await Promise.all(running.map((o) => o.close(0)));
  await Promise.all([
    nginx?.stop(),
    haproxy?.stop(),
    echo?.close(),
    h2?.close(),
    banner?.close(),
    collector?.close(),
  ]);
  await removeTempDir(root);
});

/** Starts an outbound on 127.0.0.1:0 with our SPIFFE client certificate unless told otherwise. */
async function outbound(o: Partial<OutboundInput> & { upstream: string }): Promise<RunningOutbound> {
  const cfg = parseOutbound(
    {
      listen: '127.0.0.1:0',
      tls: { cert: pki.spiffe.chain, key: pki.spiffe.key, ca: pki.server.ca },
      ...o,
    },
    root,
  );
  const ob = await startOutbound(cfg, logger, { onEvent: (e) => events.push(e) });
  running.push(ob);
  return ob;
}

function curlHttp(port: number, path = '/'): Promise<{ code: number; status: number; body: string }> {
  return run(
    'curl',
    [
      '--silent',
      '--max-time',
      '10',
      '--noproxy',
      '*',
      '--write-out',
      '\n%{http_code}',
      `http://${LOOPBACK}:${port}${path}`,
    ],
    { timeoutMs: 20_000 },
  ).then((r) => {
    const at = r.stdout.lastIndexOf('\n');
    return { code: r.code, status: Number(r.stdout.slice(at + 1)), body: r.stdout.slice(0, at) };
  });
}

function getJson(port: number, path = '/'): Promise<Seen> {
  return new Promise((resolve, reject) => {
    httpGet({ host: LOOPBACK, port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(JSON.parse(body) as Seen));
    }).on('error', reject);
  });
}

/** Waits for the log line of a refused connection on `outbound` (written once the upstream answered). */
async function refusal(name: string, since: number): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const l = logLines.slice(since).find((x) => x.event === 'outbound_refused' && x.outbound === name);
    if (l) return l;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `no outbound_refused line for ${name}:\n${logLines.map((l) => JSON.stringify(l)).join('\n')}`,
  );
}

function eventsOf(ob: RunningOutbound): OutboundEvent['result'][] {
  return events.filter((e) => e.outbound === ob.name).map((e) => e.result);
}

describe('outbound: plaintext in, mTLS out', () => {
  it('(a) curl → outbound → nginx with ssl_verify_client on: 200 (nginx verified our certificate)', async () => {
    const ob = await outbound({ name: 'to-nginx', upstream: `${LOOPBACK}:${nginx.port}` });
    const r = await curlHttp(ob.port);
    expect(r.code).toBe(0);
    // ssl_verify_client on answers 400 "No required SSL certificate was sent" without one.
    expect(r.status, r.body + nginx.log()).toBe(200);
    expect(r.body).toBe('ok');
    expect(eventsOf(ob)).toEqual(['ok']);
  });

  it('(a) the upstream sees our client certificate and the sniffed ALPN http/1.1', async () => {
    const ob = await outbound({ upstream: `localhost:${echo.port}` });
    expect(ob.name).toBe('127.0.0.1:0');
    const seen = await getJson(ob.port, '/hello');
    expect(seen).toMatchObject({
      uri: pki.spiffeId,
      alpn: 'http/1.1',
      protocol: 'TLSv1.3',
      servername: 'localhost',
      path: '/hello',
    });
  });

  it('(b) h2c client → outbound → HTTP/2 upstream: ALPN h2 from the connection preface', async () => {
    const ob = await outbound({ name: 'to-h2', upstream: `${LOOPBACK}:${h2.port}` });
    const session = h2connect(`http://${LOOPBACK}:${ob.port}`);
    try {
      const seen = await new Promise<Seen>((resolve, reject) => {
        const req = session.request({ ':path': '/grpc.like/Method' });
        let body = '';
        req.setEncoding('utf8');
        req.on('response', (h) => expect(h[':status']).toBe(200));
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve(JSON.parse(body) as Seen));
        req.on('error', reject);
        req.end();
      });
      expect(seen).toMatchObject({ alpn: 'h2', uri: pki.spiffeId, path: '/grpc.like/Method' });
    } finally {
      session.close();
    }
    expect(eventsOf(ob)).toEqual(['ok']);
  });

  it('alpn fixed to h2 works without sniffing; http/1.1 to an HTTP/2-only upstream is protocol_mismatch', async () => {
    const ob = await outbound({ name: 'fixed-h2', upstream: `${LOOPBACK}:${h2.port}`, alpn: 'h2' });
    const session = h2connect(`http://${LOOPBACK}:${ob.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    const wrong = await outbound({ name: 'fixed-h1', upstream: `${LOOPBACK}:${h2.port}`, alpn: 'http/1.1' });
    const since = logLines.length;
    expect((await curlHttp(wrong.port)).status).toBe(0);
    expect(await refusal('fixed-h1', since)).toMatchObject({ reason: 'protocol_mismatch' });
  });

  it('a server-speaks-first protocol: nothing sent for 250 ms → connected without ALPN', async () => {
    const ob = await outbound({ name: 'to-banner', upstream: `${LOOPBACK}:${banner.port}` });
    const text = await new Promise<string>((resolve, reject) => {
      const s = netConnect({ host: LOOPBACK, port: ob.port });
      let got = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => {
        got += d;
        if (got.startsWith('220 ') && got.endsWith('\r\n') && !got.includes('250')) s.write('HELO me\r\n');
      });
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(text).toMatch(/^220 banner /);
    const seen = JSON.parse(text.slice('220 banner '.length, text.indexOf('\r\n'))) as Seen;
    expect(seen.alpn).toBe(false);
    expect(seen.uri).toBe(pki.spiffeId);
    expect(text).toContain('250 got HELO me');
  });

  it('(c) expect matches the SPIFFE ID the upstream presents: connected', async () => {
    const ob = await outbound({
      name: 'collector-ok',
      upstream: `${LOOPBACK}:${collector.port}`,
      expect: collectorId,
    });
    expect((await getJson(ob.port)).uri).toBe(pki.spiffeId);
    const glob = await outbound({
      name: 'collector-glob',
      upstream: `${LOOPBACK}:${collector.port}`,
      expect: 'spiffe://e2e.example/ns/obs/sa/*',
    });
    expect((await getJson(glob.port)).uri).toBe(pki.spiffeId);
  });

  it('(c) expect mismatch: the local connection is closed, the log names both identities', async () => {
    const other = 'spiffe://e2e.example/ns/obs/sa/other';
    const ob = await outbound({
      name: 'collector-wrong',
      upstream: `${LOOPBACK}:${collector.port}`,
      expect: other,
    });
    const since = logLines.length;
    const before = collector.seen.length;
    const r = await curlHttp(ob.port);
    expect(r.status).toBe(0);
    expect([52, 56]).toContain(r.code); // empty reply / connection reset: closed, no bytes
    const l = await refusal('collector-wrong', since);
    expect(l).toMatchObject({
      reason: 'name_mismatch',
      side: 'server',
      expected: other,
      presented: [collectorId],
      opensslCode: 'MTLS_EXPECT_MISMATCH',
    });
    expect(String(l.detail)).toContain(`expected ${other}, it presented ${collectorId}`);
    expect(collector.seen.length).toBe(before); // no request reached the upstream
    expect(eventsOf(ob)).toEqual(['name_mismatch']);
  });

  it('without expect, the host name is checked as usual: the collector is not "127.0.0.1"', async () => {
    const ob = await outbound({ name: 'collector-host', upstream: `${LOOPBACK}:${collector.port}` });
    const since = logLines.length;
    expect((await curlHttp(ob.port)).status).toBe(0);
    const l = await refusal('collector-host', since);
    expect(l).toMatchObject({ reason: 'name_mismatch', expected: '127.0.0.1', presented: [collectorId] });
  });

  it('(d) an upstream whose CA is not in tls.ca: unknown_ca, naming its issuer', async () => {
    const ob = await outbound({
      name: 'untrusted',
      upstream: `${LOOPBACK}:${echo.port}`,
      tls: { cert: pki.spiffe.chain, key: pki.spiffe.key, ca: pki.clientCa.bundle },
    });
    const since = logLines.length;
    const r = await curlHttp(ob.port);
    expect(r.status).toBe(0);
    const l = await refusal('untrusted', since);
    expect(l).toMatchObject({
      reason: 'unknown_ca',
      side: 'server',
      opensslCode: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
      subject: 'CN=localhost',
    });
    expect(String(l.issuer)).toContain('Server CA');
    expect(String(l.detail)).toMatch(
      /^The upstream's certificate \(CN=localhost\) is issued by .*Server CA.*, which tls\.ca does not hold/,
    );
    expect(eventsOf(ob)).toEqual(['unknown_ca']);
  });

  it('the upstream rejects OUR certificate (HAProxy verify required, alert "unknown ca")', async () => {
    const ob = await outbound({
      name: 'rejected',
      upstream: `localhost:${haproxy.port}`,
      tls: { cert: stranger.chain, key: stranger.key, ca: pki.server.ca },
    });
    const since = logLines.length;
    expect((await curlHttp(ob.port)).status).toBe(0);
    const l = await refusal('rejected', since);
    expect(l).toMatchObject({ reason: 'client_cert_rejected', side: 'client', alert: 'unknown ca' });
    expect(String(l.detail)).toMatch(
      /rejected our certificate \(tls\.cert: CN=stranger, issued by .*Server CA/,
    );
    expect(events.filter((e) => e.outbound === 'rejected')).toEqual([
      { outbound: 'rejected', result: 'client_cert_rejected', side: 'client' },
    ]);
  });

  it('a Node upstream refusing our certificate silently: upstream_closed, with the hint', async () => {
    const ob = await outbound({
      name: 'silent',
      upstream: `localhost:${echo.port}`,
      tls: { cert: stranger.chain, key: stranger.key, ca: pki.server.ca },
    });
    const since = logLines.length;
    expect((await curlHttp(ob.port)).status).toBe(0);
    const l = await refusal('silent', since);
    expect(l).toMatchObject({ reason: 'upstream_closed', side: 'client' });
    expect(String(l.detail)).toContain('CN=stranger');
  });

  it('nothing listening upstream: connect_refused', async () => {
    const ob = await outbound({ name: 'refused', upstream: `${LOOPBACK}:${await freePort()}` });
    const since = logLines.length;
    expect((await curlHttp(ob.port)).status).toBe(0);
    expect(await refusal('refused', since)).toMatchObject({ reason: 'connect_refused', side: 'network' });
  });

  it('(e) reload with a new client certificate: new connections present it; a broken reload changes nothing', async () => {
    const ob = await outbound({ name: 'reload', upstream: `localhost:${echo.port}` });
    expect((await getJson(ob.port)).uri).toBe(pki.spiffeId);
    const base = { listen: '127.0.0.1:0', name: 'reload', upstream: `localhost:${echo.port}` };
    ob.reload(
      parseOutbound(
        { ...base, tls: { cert: pki.client.chain, key: pki.client.key, ca: pki.server.ca } },
        root,
      ),
    );
    const after = await getJson(ob.port);
    expect(after.uri).toBeUndefined();
    expect(after.cn).toBe('alice');
    // A key that does not belong to the certificate: throws, the old material stays.
    expect(() =>
      ob.reload(
        parseOutbound(
          { ...base, tls: { cert: pki.spiffe.chain, key: pki.client.key, ca: pki.server.ca } },
          root,
        ),
      ),
    ).toThrow(expect.objectContaining({ code: 'MTLS_PROXY_TLS_CONFIG' }) as Error);
    expect(() =>
      ob.reload(
        parseOutbound(
          { ...base, tls: { cert: 'missing.pem', key: pki.client.key, ca: pki.server.ca } },
          root,
        ),
      ),
    ).toThrow(/cannot read tls\.cert/);
    expect((await getJson(ob.port)).cn).toBe('alice');
    expect(logLines.some((l) => l.event === 'outbound_reloaded' && l.outbound === 'reload')).toBe(true);
  });

  it('close(graceMs) stops accepting, then closes tunnels still open after the grace period', async () => {
    const ob = await outbound({ name: 'closing', upstream: `${LOOPBACK}:${banner.port}` });
    const s = netConnect({ host: LOOPBACK, port: ob.port });
    const banner220 = new Promise<void>((r) => s.once('data', () => r()));
    const closedAt = new Promise<number>((r) => s.once('close', () => r(Date.now())));
    s.on('error', () => undefined);
    await banner220; // the tunnel is up (server-speaks-first, after the 250 ms sniff)
    const t0 = Date.now();
    await ob.close(300);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3_000);
    expect((await closedAt) - t0).toBeLessThan(3_000);
    await expect(curlHttp(ob.port)).resolves.toMatchObject({ status: 0, code: 7 }); // refused
  });

  it('refuses to listen beyond loopback unless unsafeAllowNonLoopback is set', () => {
    const tls = { cert: 'a', key: 'b', ca: 'c' };
    expect(() => parseOutbound({ listen: '0.0.0.0:15001', upstream: 'x:1', tls })).toThrow(
      /listen: 0\.0\.0\.0 is not a loopback address/,
    );
    expect(
      parseOutbound({ listen: '0.0.0.0:15001', upstream: 'x:1', tls, unsafeAllowNonLoopback: true }).listen,
    ).toBe('0.0.0.0:15001');
  });
});
