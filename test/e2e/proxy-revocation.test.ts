// Revocation in mtls proxy against the real CA service: the CA's revocation feed closes a revoked
// peer's open connection and refuses its next request within 2 s; CRL files are re-read when they
// change; failMode closed answers 503 once the feed is stale while failMode open keeps serving.
import { renameSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  enrollClient,
  revokeSerial,
  startCaService,
  type CaService,
  type Enrolled,
} from '../support/ca-service.js';
import { assertBuilt, mtlsOk } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import {
  proxyCurl,
  startEchoUpstream,
  startProxy,
  type EchoUpstream,
  type RunningProxy,
} from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let caDir: string;
let ca: CaService;
let upstream: EchoUpstream;
let proxy: RunningProxy;
let crlFile: string;
const who: Record<string, Enrolled> = {};

async function fetchCrl(dest: string): Promise<void> {
  const r = await call(ca.httpUrl, { path: '/v1/crl/chain' });
  expect(r.status).toBe(200);
  // Written beside and renamed into place, as a rotation tool would.
  writeFileSync(`${dest}.new`, r.body);
  renameSync(`${dest}.new`, dest);
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-revocation');
  caDir = (await initCa(root, 'ca')).dir;
  ca = await startCaService(caDir);
  upstream = await startEchoUpstream();
  for (const name of ['feedpeer', 'crlgone', 'crllive', 'steady', 'late'])
    who[name] = await enrollClient(ca, root, name);
  await revokeSerial(ca, who.crlgone!.serial);
  crlFile = join(root, 'ca.crl.pem');
  await fetchCrl(crlFile);
  await mtlsOk(['issue', 'server', 'localhost', '--dir', caDir, '--out', join(root, 'srv')], { cwd: root });
  const tls = {
    cert: join(root, 'srv', 'localhost.chain.pem'),
    key: join(root, 'srv', 'localhost.key'),
    clientCa: join(caDir, 'ca.pem'),
  };
  const base = { listen: '127.0.0.1:0', tls, upstream: `http://127.0.0.1:${upstream.port}`, allow: 'any' };
  const config = {
    listeners: [
      { name: 'feed', ...base, revocation: { feed: ca.publicUrl, staleAfter: '3s', failMode: 'closed' } },
      { name: 'open', ...base, revocation: { feed: ca.publicUrl, staleAfter: '3s', failMode: 'open' } },
      { name: 'crl', ...base, revocation: { crl: 'ca.crl.pem' } },
    ],
    admin: { listen: '127.0.0.1:0' },
  };
  writeFileSync(join(root, 'proxy.yaml'), stringify(config));
  proxy = await startProxy(join(root, 'proxy.yaml'), root);
}, 90_000);

afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await upstream?.close();
  await ca?.stop();
  await removeTempDir(root);
});

const cacert = (): string => join(caDir, 'ca.pem');

async function get(
  listener: string,
  peer: Enrolled,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await proxyCurl({
    port: proxy.listeners[listener]!,
    path: '/x',
    cacert: cacert(),
    cert: peer.chain,
    key: peer.key,
  });
  expect(r.exitCode, r.stderr).toBe(0);
  return { status: r.status, body: r.status === 200 ? {} : r.json() };
}

function keepAliveGet(agent: Agent, port: number): Promise<{ status: number; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', servername: 'localhost', port, path: '/held', agent }, (res) => {
      const socket = res.socket;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, socket }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function metrics(): Promise<string> {
  const r = await call(`http://127.0.0.1:${proxy.adminPort}`, { path: '/metrics' });
  return r.body.toString();
}

describe('mtls proxy revocation', () => {
  it('the CA feed closes the open connection of a revoked peer and refuses it within 2 s; upstream sees nothing', async () => {
    const peer = who.feedpeer!;
    const agent = new Agent({
      keepAlive: true,
      maxSockets: 1,
      ca: readFileSync(cacert()),
      cert: readFileSync(peer.chain),
      key: readFileSync(peer.key),
    });
    try {
      const first = await keepAliveGet(agent, proxy.listeners.feed!);
      expect(first.status).toBe(200);
      const socket = first.socket;
      const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
      const before = upstream.received.length;
      const revokedAt = Date.now();
      await revokeSerial(ca, peer.serial);
      const closedAt = await closed;
      expect(closedAt - revokedAt).toBeLessThan(2_000);
      const next = await get('feed', peer);
      expect(Date.now() - revokedAt).toBeLessThan(2_000 + 1_000);
      expect(next.status).toBe(401);
      expect(next.body).toMatchObject({ code: 'MTLS_PROXY_UNAUTHENTICATED', reason: 'revoked' });
      expect(upstream.received.length).toBe(before);
      expect(proxy.logs()).toMatch(/"event":"connection_closed".*"reason":"revoked"/);
    } finally {
      agent.destroy();
    }
  });

  it('a CRL file refuses the revoked peer, admits the live one, and is re-read when it changes', async () => {
    const before = upstream.received.length;
    const gone = await get('crl', who.crlgone!);
    expect(gone.status).toBe(401);
    expect(gone.body).toMatchObject({ reason: 'revoked' });
    expect(upstream.received.length).toBe(before);
    expect((await get('crl', who.crllive!)).status).toBe(200);

    await revokeSerial(ca, who.crllive!.serial);
    await fetchCrl(crlFile);
    const deadline = Date.now() + 10_000;
    let status = 200;
    while (Date.now() < deadline && status === 200) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await get('crl', who.crllive!)).status;
    }
    expect(status).toBe(401);
    expect(proxy.logs()).toMatch(/"event":"reloaded"/);
  });

  it('counts the feed age while the CA speaks', async () => {
    const text = await metrics();
    expect(text).toMatch(/mtls_proxy_revocation_feed_age_seconds\{listener="feed"\} \d/);
    expect(text).toMatch(/mtls_proxy_revocation_stale\{listener="feed"\} 0/);
  });

  it('failMode closed answers 503 revocation_unavailable once the feed is stale; failMode open keeps serving', async () => {
    expect((await get('feed', who.steady!)).status).toBe(200);
    expect(await ca.stop()).toBe(0);
    const stoppedAt = Date.now();
    // Within staleAfter (3 s) a silent feed is still trusted.
    expect((await get('feed', who.late!)).status).toBe(200);
    const deadline = Date.now() + 15_000;
    let r = { status: 200, body: {} as Record<string, unknown> };
    while (Date.now() < deadline && r.status === 200) {
      await new Promise((res) => setTimeout(res, 250));
      r = await get('feed', who.late!);
    }
    expect(r.status).toBe(503);
    // Stale counts from the last message (heartbeats every staleAfter/3 = 1 s), not from the stop.
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1_900);
    expect(r.body).toMatchObject({
      code: 'MTLS_PROXY_REVOCATION_UNAVAILABLE',
      reason: 'revocation_unavailable',
    });
    expect((await get('open', who.late!)).status).toBe(200);
    const text = await metrics();
    expect(text).toMatch(/mtls_proxy_revocation_stale\{listener="feed"\} 1/);
    expect(text).toMatch(/mtls_proxy_revocation_stale\{listener="open"\} 1/);
    const ready = await call(`http://127.0.0.1:${proxy.adminPort}`, { path: '/readyz' });
    expect(ready.status).toBe(503);
    expect(ready.body.toString()).toContain('feed');
  });
});
