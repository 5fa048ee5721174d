// The engine against a real CA service started in-process (SQLite in memory), and against a real
// HTTPS server that answers a renewal with a certificate for another key.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initFileCa, loadFileCa, parseCaConfig, startCaServer, type RunningCa } from '../ca/index.js';
import { exportPrivateKeyPem, generateKey, spkiOf } from '../pki/index.js';
import { openStore, type Store } from '../store/index.js';
import { createLogger } from '../telemetry/index.js';
import { runAgentOnce } from './agent.js';
import { parseAgentConfig } from './config.js';
import { readAgentFiles, readStatus } from './files.js';
import { createAgentMetrics } from './metrics.js';

const root = mkdtempSync(join(tmpdir(), 'mtls-agent-engine-'));
let ca: RunningCa;
let store: Store;
const logs: string[] = [];
const logger = createLogger({
  level: 'debug',
  destination: new Writable({
    write(chunk: Buffer, _e, cb) {
      logs.push(chunk.toString());
      cb();
    },
  }),
});

async function token(sans: string[], profile = 'client'): Promise<string> {
  const admin = join(root, 'ca', 'admin');
  const { createCaClient } = await import('../ca/index.js');
  const r = await createCaClient({
    url: ca.mtlsUrl,
    ca: readFileSync(join(root, 'ca', 'ca.pem')),
    cert: readFileSync(join(admin, 'chain.pem')),
    key: readFileSync(join(admin, 'key.pem')),
  }).post<{ token: string }>('/v1/tokens', { profile, sans, maxTtl: '1h' });
  return r.token;
}

beforeAll(async () => {
  const dir = join(root, 'ca');
  initFileCa({ dir, name: 'agent engine test', keyType: 'p256', insecurePlaintextKey: true });
  const fileCa = loadFileCa(dir, undefined);
  // An admin credential, issued offline, to create tokens.
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const key = generateKey('p256');
  const admin = fileCa.issuer.issue({
    profile: 'client',
    subject: [[{ oid: '2.5.4.3', value: 'mtls-admin' }]],
    publicKey: spkiOf(key),
    ttlMs: 3_600_000,
  });
  mkdirSync(join(dir, 'admin'));
  writeFileSync(join(dir, 'admin', 'chain.pem'), admin.pem + fileCa.intermediatePem);
  writeFileSync(join(dir, 'admin', 'key.pem'), exportPrivateKeyPem(key));
  store = await openStore('sqlite::memory:');
  ca = await startCaServer({
    ca: fileCa,
    store,
    config: parseCaConfig({ listen: '127.0.0.1:0', mtlsListen: '127.0.0.1:0', httpListen: '127.0.0.1:0' }),
    logger: createLogger({ level: 'silent' }),
  });
});

afterAll(async () => {
  await ca.close();
  await store.close();
  rmSync(root, { recursive: true, force: true });
});

describe('agent engine with a real CA', () => {
  it('renews a server certificate (no clientAuth, so no mTLS) at the public endpoint with a proof of possession', async () => {
    const dir = join(root, 'server-id');
    const config = parseAgentConfig({
      ca: { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(root, 'ca', 'ca.pem') },
      identities: [
        {
          name: 'api',
          dir,
          profile: 'server',
          sans: ['dns:api.internal'],
          token: await token(['dns:api.internal'], 'server'),
          ttl: '1h',
        },
      ],
    });
    let now = new Date();
    const clock = { now: () => now };
    const metrics = createAgentMetrics({ defaultMetrics: false });
    expect((await runAgentOnce(config, { logger, clock, metrics, random: () => 0 })).ok).toBe(true);
    const a = readAgentFiles(dir);
    expect(a.certificate.extKeyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    now = new Date(now.getTime() + 41 * 60_000);
    const renewed = await runAgentOnce(config, { logger, clock, metrics, random: () => 0 });
    expect(renewed.ok, JSON.stringify(renewed.statuses[0]?.lastError)).toBe(true);
    const b = readAgentFiles(dir);
    expect(b.certificate.serial).not.toBe(a.certificate.serial);
    expect(b.certificate.spki.equals(a.certificate.spki)).toBe(false);
    expect(b.certificate.subjectAltNames).toEqual([{ type: 'dns', value: 'api.internal' }]);
  });

  it('enrolls with the token, renews over mTLS with a fresh key when due, and runs the hooks', async () => {
    const dir = join(root, 'id1');
    const marker = join(root, 'marker');
    const config = parseAgentConfig({
      ca: { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(root, 'ca', 'ca.pem') },
      identities: [
        {
          name: 'web',
          dir,
          sans: ['dns:web.internal'],
          token: await token(['dns:web.internal']),
          ttl: '1h',
          hooks: [{ command: ['sh', '-c', `echo "$MTLS_AGENT_IDENTITY" >> ${marker}`] }],
        },
      ],
    });
    let now = new Date();
    const clock = { now: () => now };
    const metrics = createAgentMetrics({ defaultMetrics: false });
    const first = await runAgentOnce(config, { logger, clock, metrics, random: () => 0 });
    expect(first.ok).toBe(true);
    const a = readAgentFiles(dir);
    expect(a.certificate.subjectAltNames).toEqual([{ type: 'dns', value: 'web.internal' }]);
    // Not due yet: nothing happens.
    const idle = await runAgentOnce(config, { logger, clock, metrics, random: () => 0 });
    expect(idle.ok).toBe(true);
    expect(readAgentFiles(dir).version).toBe(a.version);
    // 2/3 of the hour later (the certificate is still valid in real time for the TLS handshake).
    now = new Date(now.getTime() + 41 * 60_000);
    const second = await runAgentOnce(config, { logger, clock, metrics, random: () => 0 });
    expect(second.ok).toBe(true);
    const b = readAgentFiles(dir);
    expect(b.certificate.serial).not.toBe(a.certificate.serial);
    expect(b.certificate.spki.equals(a.certificate.spki)).toBe(false);
    expect(readFileSync(marker, 'utf8')).toBe('web\nweb\n');
    const status = readStatus(dir)!;
    expect(status.renewals).toEqual({ ok: 2, failed: 0 });
    expect(status.serial).toBe(b.certificate.serial);
    expect(status.trustBundle.roots).toHaveLength(1);
    const text = await metrics.render();
    expect(text).toMatch(/mtls_agent_renewals_total\{identity="web",result="ok"\} 1/);
    expect(text).toMatch(/mtls_agent_enrollments_total\{identity="web",result="ok"\} 1/);
    expect(text).toMatch(/mtls_agent_hook_runs_total\{identity="web",kind="command",result="ok"\} 2/);
  });

  it('without a token says so and writes status.json with the error', async () => {
    const dir = join(root, 'id2');
    const config = parseAgentConfig({
      ca: { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(root, 'ca', 'ca.pem') },
      identities: [{ name: 'tokenless', dir, tokenFile: join(root, 'missing.token') }],
    });
    const r = await runAgentOnce(config, { logger, metrics: createAgentMetrics({ defaultMetrics: false }) });
    expect(r.ok).toBe(false);
    expect(readStatus(dir)?.lastError?.code).toBe('MTLS_FILE_NOT_FOUND');
    expect(existsSync(join(dir, '..data'))).toBe(false);
  });
});

describe('trust by a pinned root fingerprint', () => {
  it('bootstraps from the roots URL when the fingerprint matches, and refuses another one', async () => {
    const fp = loadFileCa(join(root, 'ca'), undefined).meta.rootFingerprint;
    const pinned = (name: string, fingerprint: string, tok: string) =>
      parseAgentConfig({
        ca: {
          url: ca.publicUrl,
          mtlsUrl: ca.mtlsUrl,
          rootFingerprint: fingerprint,
          rootsUrl: `${ca.httpUrl!}/v1/roots`,
        },
        identities: [{ name, dir: join(root, name), sans: [`dns:${name}.internal`], token: tok, ttl: '1h' }],
      });
    const ok = await runAgentOnce(pinned('pinned', fp, await token(['dns:pinned.internal'])), { logger });
    expect(ok.ok).toBe(true);
    expect(readAgentFiles(join(root, 'pinned')).caPem).toContain('BEGIN CERTIFICATE');
    const wrong = 'AA:'.repeat(31) + 'AA';
    const bad = await runAgentOnce(pinned('wrongpin', wrong, await token(['dns:wrongpin.internal'])), {
      logger,
    });
    expect(bad.ok).toBe(false);
    expect(readStatus(join(root, 'wrongpin'))?.lastError?.code).toBe('MTLS_CA_ROOT_MISMATCH');
    expect(existsSync(join(root, 'wrongpin', '..data'))).toBe(false);
  });
});

describe('after expiry (the agent clock is past notAfter)', () => {
  function enrolled(name: string, extra: Record<string, unknown> = {}) {
    const dir = join(root, name);
    const config = parseAgentConfig({
      ca: { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(root, 'ca', 'ca.pem') },
      identities: [{ name, dir, sans: [`dns:${name}.internal`], ttl: '1h', ...extra }],
    });
    return { dir, config };
  }

  it('says loudly that it runs on an expired certificate and renews with a proof of possession', async () => {
    const tok = await token(['dns:late.internal']);
    const { dir, config } = enrolled('late', { token: tok });
    expect((await runAgentOnce(config, { logger })).ok).toBe(true);
    const before = readAgentFiles(dir);
    const clock = { now: () => new Date(before.certificate.notAfter.getTime() + 1000) };
    const mark = logs.length;
    // (r.ok judges validity by the fake clock, which is about as far as the new notAfter.)
    const r = await runAgentOnce(config, { logger, clock });
    expect(r.statuses[0]!.renewals).toEqual({ ok: 2, failed: 0 });
    const records = logs
      .slice(mark)
      .map((l) => JSON.parse(l) as { level: number; msg: string; event?: string });
    const loud = records.find((x) => x.event === 'expired');
    expect(loud?.level).toBe(50);
    expect(loud?.msg).toMatch(/RUNNING ON AN EXPIRED CERTIFICATE/);
    expect(readAgentFiles(dir).certificate.serial).not.toBe(before.certificate.serial);
  });

  it('re-enrolls with tokenFile when reenroll is set', async () => {
    const tokenFile = join(root, 'late2.token');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(tokenFile, await token(['dns:late2.internal']));
    const { dir, config } = enrolled('late2', { tokenFile, reenroll: true });
    expect((await runAgentOnce(config, { logger })).ok).toBe(true);
    const before = readAgentFiles(dir);
    writeFileSync(tokenFile, await token(['dns:late2.internal']));
    const metrics = createAgentMetrics({ defaultMetrics: false });
    const clock = { now: () => new Date(before.certificate.notAfter.getTime() + 1000) };
    const r = await runAgentOnce(config, { logger, clock, metrics });
    expect(r.statuses[0]!.renewals).toEqual({ ok: 2, failed: 0 });
    expect(readAgentFiles(dir).certificate.serial).not.toBe(before.certificate.serial);
    expect(await metrics.render()).toMatch(/mtls_agent_enrollments_total\{identity="late2",result="ok"\} 1/);
  });
});

describe('a bad answer from the CA', () => {
  it('changes nothing on disk and is retried with backoff', async () => {
    const dir = join(root, 'id3');
    const identities = [
      {
        name: 'victim',
        dir,
        sans: ['dns:victim.internal'],
        token: await token(['dns:victim.internal']),
        ttl: '1h',
      },
    ];
    const config = parseAgentConfig({
      ca: { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(root, 'ca', 'ca.pem') },
      identities,
    });
    let now = new Date();
    const clock = { now: () => now };
    expect((await runAgentOnce(config, { logger, clock, random: () => 0 })).ok).toBe(true);
    const before = readAgentFiles(dir);
    // A real HTTPS server with a certificate of this CA that answers renewals with a certificate for
    // another key (what a confused or malicious CA could do).
    const fileCa = loadFileCa(join(root, 'ca'), undefined);
    const tlsKey = generateKey('p256');
    const tlsCert = fileCa.issuer.issue({
      profile: 'server',
      sans: [{ type: 'ip', value: '127.0.0.1' }],
      publicKey: spkiOf(tlsKey),
      ttlMs: 3_600_000,
    });
    const other = fileCa.issuer.issue({
      profile: 'client',
      sans: [{ type: 'dns', value: 'victim.internal' }],
      publicKey: spkiOf(generateKey('p256')),
      ttlMs: 3_600_000,
    });
    const bad = createServer(
      { key: exportPrivateKeyPem(tlsKey), cert: tlsCert.pem + fileCa.intermediatePem },
      (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          req.url === '/v1/roots'
            ? fileCa.rootPem
            : JSON.stringify({
                serial: other.serial,
                certificate: other.pem,
                chain: other.pem + fileCa.intermediatePem,
                ca: fileCa.rootPem,
                notAfter: other.notAfter.toISOString(),
              }),
        );
      },
    );
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(bad.address() as AddressInfo).port}`;
    try {
      const badConfig = parseAgentConfig({
        ca: { url, mtlsUrl: url, caFile: join(root, 'ca', 'ca.pem') },
        identities,
      });
      now = new Date(now.getTime() + 50 * 60_000);
      const r = await runAgentOnce(badConfig, { logger, clock, random: () => 0.5 });
      expect(r.ok).toBe(false);
      const after = readAgentFiles(dir);
      expect(after.version).toBe(before.version);
      expect(after.keyPem).toBe(before.keyPem);
      const status = readStatus(dir)!;
      expect(status.lastError?.code).toBe('MTLS_AGENT_BAD_ANSWER');
      expect(status.retryBackoffSeconds).toBeGreaterThan(0);
      expect(logs.join('')).toMatch(/another key; nothing was written/);
    } finally {
      await new Promise<void>((r) => bad.close(() => r()));
    }
  });
});
