// Two `mtls ca serve` replicas of one CA directory on one PostgreSQL database: a token is accepted
// once across both, serials never collide, a revocation made on one replica is served by the other's
// OCSP, CRL and revocation stream within 1 s, and both read back the same gap-free audit chain.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate, readCertificates, type Certificate } from '../../src/pki/index.js';
import { verifyAuditChain } from '../../src/store/index.js';
import {
  createToken,
  crlSerials,
  csrFor,
  leafOf,
  listInventory,
  mapLimit,
  ocspStatus,
  openSse,
  pollUntil,
  readAudit,
  sign,
  type AdminAccess,
} from '../support/ca-load.js';
import { adminCredential, call, startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt } from '../support/cli.js';
import { openssl } from '../support/openssl.js';
import { initCa } from '../support/pki.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pg: PostgresServer;
let a: CaService;
let b: CaService;
let bundle: string;
let intermediatePath: string;
let intermediate: Certificate;
let adminA: AdminAccess;
let adminB: AdminAccess;
/** Every serial this file was answered with a 200 for, in order. */
const issued: string[] = [];
let tokensCreated = 0;

function newToken(access: AdminAccess, grant: Record<string, unknown>): ReturnType<typeof createToken> {
  tokensCreated++;
  return createToken(access, grant);
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('mtls-e2e-replicas-');
  const paths = await initCa(root, 'ca');
  bundle = paths.bundle;
  intermediatePath = paths.intermediateCert;
  intermediate = parseCertificate(readCertificates(readFileSync(intermediatePath), 'intermediate')[0]!.der);
  pg = await startPostgres();
  const db = await pg.createDatabase('ca_replicas');
  // One after the other: the first start writes the admin credential into the shared directory.
  a = await startCaService(paths.dir, ['--db', db]);
  b = await startCaService(paths.dir, ['--db', db]);
  const admin = adminCredential(paths.dir);
  adminA = { mtlsUrl: a.mtlsUrl, bundle, admin };
  adminB = { mtlsUrl: b.mtlsUrl, bundle, admin };
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await pg?.stop();
  await removeTempDir(root);
});

describe('two mtls ca serve replicas on one PostgreSQL database', () => {
  it('are two processes on distinct ports that both report the postgres store', async () => {
    expect(a.proc.pid).not.toBe(b.proc.pid);
    expect(a.publicUrl).not.toBe(b.publicUrl);
    for (const r of [a, b]) {
      const ready = await call(r.publicUrl, { path: '/v1/ready', ca: bundle });
      expect(ready.status).toBe(200);
      expect(ready.json().store).toBe('postgres');
    }
  });

  it('accept a token exactly once: 10 concurrent /v1/sign split across both replicas → one 200, nine 409 MTLS_CA_TOKEN_USED', async () => {
    const t = await newToken(adminA, { profile: 'peer', sans: ['dns:once.replicas.test'] });
    const csrs = Array.from({ length: 10 }, () => csrFor(['dns:once.replicas.test']));
    const answers = await Promise.all(
      csrs.map((csr, i) => sign((i % 2 ? b : a).publicUrl, bundle, t.token, csr)),
    );
    const ok = answers.filter((r) => r.status === 200);
    const refused = answers.filter((r) => r.status !== 200);
    expect(
      answers.map((r) => r.status),
      answers.map((r) => r.body.toString().slice(0, 200)).join('\n'),
    ).toHaveLength(10);
    expect(ok).toHaveLength(1);
    expect(refused.map((r) => [r.status, r.json().code])).toEqual(
      Array.from({ length: 9 }, () => [409, 'MTLS_CA_TOKEN_USED']),
    );
    for (const r of refused) expect(r.json().requestId).toEqual(expect.any(String));
    const serial = ok[0]!.json().serial as string;
    issued.push(serial);
    // The store agrees: one certificate for the identity, one issuance and nine refusals for the token.
    const inv = (await listInventory(adminB)).filter((c) => c.identity === 'dns:once.replicas.test');
    expect(inv.map((c) => c.serial)).toEqual([serial]);
    const audit = (await readAudit(adminB)).filter((r) => r.actor === `token:${t.id}`);
    expect(audit.filter((r) => r.outcome === 'ok').map((r) => r.data.serial)).toEqual([serial]);
    expect(audit.filter((r) => r.outcome === 'refused').map((r) => r.reason)).toEqual(
      Array.from({ length: 9 }, () => 'MTLS_CA_TOKEN_USED'),
    );
  });

  it('never collide serials: 200 enrollments over both replicas, 8 at a time, all distinct and all in the inventory', async () => {
    const before = (await listInventory(adminA)).length;
    const n = 200;
    const results = await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      8,
      async (i) => {
        const id = `dns:w${i}.replicas.test`;
        // Token from one replica, enrollment on the other or the same: all state is in the database.
        const t = await newToken(i % 3 ? adminA : adminB, { profile: 'client', sans: [id] });
        const r = await sign((i % 2 ? b : a).publicUrl, bundle, t.token, csrFor([id]));
        return { id, status: r.status, body: r.status === 200 ? r.json() : r.body.toString() };
      },
    );
    const failed = results.filter((r) => r.status !== 200);
    expect(failed, JSON.stringify(failed.slice(0, 3))).toEqual([]);
    const serials = results.map((r) => (r.body as Record<string, unknown>).serial as string);
    expect(new Set(serials).size).toBe(n);
    // Every answered certificate is what it says: its serial is the one in the JSON.
    for (const r of results.slice(0, 20)) {
      const body = r.body as Record<string, string>;
      expect(leafOf(body.certificate!).serial).toBe(body.serial);
    }
    issued.push(...serials);
    const inv = await listInventory(adminB);
    expect(inv.length).toBe(before + n);
    const inInventory = new Set(inv.map((c) => c.serial));
    expect(serials.filter((s) => !inInventory.has(s))).toEqual([]);
    expect(new Set(inv.map((c) => c.serial)).size).toBe(inv.length);
  }, 60_000);

  it('propagate a revocation made on one replica to the other: OCSP revoked, CRL lists it, SSE event, each within 1 s', async () => {
    const timings: string[] = [];
    // Both directions: A revokes and B must serve it, then B revokes and A must serve it.
    for (const [from, to, fromAdmin, name] of [
      [a, b, adminA, 'a-to-b'],
      [b, a, adminB, 'b-to-a'],
      [a, b, adminA, 'a-to-b-2'],
    ] as const) {
      const id = `dns:${name}.revoke.replicas.test`;
      const t = await newToken(fromAdmin, { profile: 'peer', sans: [id] });
      const enrolled = await sign(from.publicUrl, bundle, t.token, csrFor([id]));
      expect(enrolled.status).toBe(200);
      const leafPem = enrolled.json().certificate as string;
      const serial = enrolled.json().serial as string;
      issued.push(serial);
      const leaf = leafOf(leafPem);

      // The other replica has answered "good" (and cached that answer) and built a CRL without it.
      expect((await ocspStatus(to.httpUrl, leaf, intermediate)).status).toBe('good');
      expect((await crlSerials(to.httpUrl)).has(serial)).toBe(false);
      const feed = await call(to.publicUrl, { path: '/v1/revocations?since=0', ca: bundle });
      const events = feed.json().events as { seq: number }[];
      const cursor = events.length ? events[events.length - 1]!.seq : 0;
      const stream = await openSse(to.publicUrl, `/v1/revocations?since=${cursor}`, bundle);
      try {
        const start = performance.now();
        const rv = await call(from.mtlsUrl, {
          path: '/v1/revoke',
          body: { serial, reason: 'keyCompromise' },
          ca: bundle,
          client: fromAdmin.admin,
        });
        expect(rv.status, rv.body.toString()).toBe(200);
        const [ocsp, crl, sse] = await Promise.all([
          pollUntil(
            async () => {
              const s = await ocspStatus(to.httpUrl, leaf, intermediate);
              return s.status === 'revoked' ? s : undefined;
            },
            { timeoutMs: 1500, startedAt: start },
          ),
          pollUntil(async () => ((await crlSerials(to.httpUrl)).has(serial) ? true : undefined), {
            timeoutMs: 1500,
            startedAt: start,
          }),
          stream
            .waitFor((e) => e.event === 'revocation' && e.data.includes(`"${serial}"`), 1500)
            .then((e) => ({ value: e, elapsedMs: e ? e.receivedAt - start : Infinity })),
        ]);
        timings.push(
          `${name}: ocsp ${ocsp.elapsedMs.toFixed(0)} ms, crl ${crl.elapsedMs.toFixed(0)} ms, sse ${sse.elapsedMs.toFixed(0)} ms`,
        );
        expect(ocsp.value?.reason).toBe('keyCompromise');
        expect(ocsp.elapsedMs).toBeLessThan(1000);
        expect(crl.value).toBe(true);
        expect(crl.elapsedMs).toBeLessThan(1000);
        expect(sse.value).toBeDefined();
        expect(sse.elapsedMs).toBeLessThan(1000);
        const ev = JSON.parse(sse.value!.data) as { seq: number; serial: string; reason: string };
        expect(ev).toMatchObject({ serial, reason: 'keyCompromise', seq: cursor + 1 });
        expect(sse.value!.id).toBe(String(cursor + 1));
      } finally {
        stream.close();
      }

      // openssl agrees with the other replica's answer, and the answer verifies against the root.
      const leafFile = join(root, `${name}.pem`);
      writeFileSync(leafFile, leafPem);
      const o = await openssl([
        'ocsp',
        '-issuer',
        intermediatePath,
        '-cert',
        leafFile,
        '-CAfile',
        bundle,
        '-url',
        `${to.httpUrl}/ocsp`,
      ]);
      expect(o.stderr + o.stdout).toContain('Response verify OK');
      expect(o.stdout).toMatch(new RegExp(`${name}\\.pem: revoked`));
    }
    console.info(`revocation propagation between replicas: ${timings.join('; ')}`);
  }, 30_000);

  it('notify OCSP and SSE of a revocation even when the other replica rebuilt its CRL before it polled', async () => {
    const misses: string[] = [];
    for (let round = 0; round < 3; round++) {
      const ids = [`dns:first${round}.crl.replicas.test`, `dns:second${round}.crl.replicas.test`];
      const certs = [];
      for (const id of ids) {
        const t = await newToken(adminA, { profile: 'peer', sans: [id] });
        const r = await sign(a.publicUrl, bundle, t.token, csrFor([id]));
        expect(r.status).toBe(200);
        issued.push(r.json().serial as string);
        certs.push({ serial: r.json().serial as string, leaf: leafOf(r.json().certificate as string) });
      }
      const [first, second] = certs as [(typeof certs)[0], (typeof certs)[0]];
      // 1. A revokes `first`; B notices it by polling (its cached "good" for `first` turns into
      // "revoked") and drops its CRL, which no one asks B for until step 3.
      expect((await ocspStatus(b.httpUrl, first.leaf, intermediate)).status).toBe('good');
      const revoke = async (serial: string): Promise<void> => {
        const rv = await call(a.mtlsUrl, {
          path: '/v1/revoke',
          body: { serial, reason: 'cessationOfOperation' },
          ca: bundle,
          client: adminA.admin,
        });
        expect(rv.status, rv.body.toString()).toBe(200);
      };
      await revoke(first.serial);
      const seen = await pollUntil(
        async () =>
          (await ocspStatus(b.httpUrl, first.leaf, intermediate)).status === 'revoked' ? true : undefined,
        { timeoutMs: 1500 },
      );
      expect(seen.value).toBe(true);
      // 2. B answers (and caches) "good" for `second`; a subscriber listens on B.
      expect((await ocspStatus(b.httpUrl, second.leaf, intermediate)).status).toBe('good');
      const feed = await call(b.publicUrl, { path: '/v1/revocations?since=0', ca: bundle });
      const events = feed.json().events as { seq: number }[];
      const stream = await openSse(b.publicUrl, `/v1/revocations?since=${events.at(-1)?.seq ?? 0}`, bundle);
      try {
        // 3. A revokes `second`, and B is asked for its CRL right away, before its next poll.
        await revoke(second.serial);
        const crl = await crlSerials(b.httpUrl);
        expect(crl.has(second.serial)).toBe(true);
        // 4. B's OCSP and SSE must still learn of it.
        const ocsp = await pollUntil(
          async () =>
            (await ocspStatus(b.httpUrl, second.leaf, intermediate)).status === 'revoked' ? true : undefined,
          { timeoutMs: 1000, intervalMs: 50 },
        );
        if (!ocsp.value) misses.push(`round ${round}: B's OCSP still answers good for ${second.serial}`);
        const ev = await stream.waitFor((e) => e.data.includes(`"${second.serial}"`), 1000);
        if (!ev) misses.push(`round ${round}: B's revocation stream did not deliver ${second.serial}`);
      } finally {
        stream.close();
      }
    }
    expect(misses).toEqual([]);
  }, 30_000);

  it('leave no stale cached "good" behind a revocation made while both replicas answer OCSP for that certificate', async () => {
    const stale: string[] = [];
    for (let round = 0; round < 3; round++) {
      const id = `dns:busy${round}.revoke.replicas.test`;
      const t = await newToken(adminA, { profile: 'peer', sans: [id] });
      const enrolled = await sign(a.publicUrl, bundle, t.token, csrFor([id]));
      expect(enrolled.status).toBe(200);
      const serial = enrolled.json().serial as string;
      issued.push(serial);
      const leaf = leafOf(enrolled.json().certificate as string);
      // Nonce-less requests (the cached kind) on both replicas, 4 in flight each, until the revocation
      // has been answered and has had time to reach the other replica.
      let stop = false;
      const hammer = async (url: string): Promise<number> => {
        let n = 0;
        for (; !stop && n < 5000; n++) await ocspStatus(url, leaf, intermediate);
        return n;
      };
      const load = Promise.all(
        [a.httpUrl, a.httpUrl, a.httpUrl, a.httpUrl, b.httpUrl, b.httpUrl, b.httpUrl, b.httpUrl].map(hammer),
      );
      await new Promise((r) => setTimeout(r, 100));
      const rv = await call(a.mtlsUrl, {
        path: '/v1/revoke',
        body: { serial, reason: 'superseded' },
        ca: bundle,
        client: adminA.admin,
      });
      expect(rv.status, rv.body.toString()).toBe(200);
      await new Promise((r) => setTimeout(r, 600));
      stop = true;
      const sent = await load;
      expect(sent.every((n) => n > 0 && n < 5000)).toBe(true);
      // Now every answer, cached or not, must say revoked.
      for (const [name, url] of [
        ['a', a.httpUrl],
        ['b', b.httpUrl],
      ] as const) {
        for (let i = 0; i < 5; i++) {
          const s = await ocspStatus(url, leaf, intermediate);
          if (s.status !== 'revoked') stale.push(`round ${round} replica ${name}: ${s.status}`);
        }
      }
    }
    expect(stale).toEqual([]);
  }, 30_000);

  it('keep one audit chain: read from either replica it verifies, has no gaps, and records every issuance', async () => {
    const [fromA, fromB] = await Promise.all([readAudit(adminA), readAudit(adminB)]);
    const va = verifyAuditChain(fromA);
    const vb = verifyAuditChain(fromB);
    expect(va).toMatchObject({ ok: true });
    expect(vb).toEqual(va);
    expect(fromA.map((r) => r.seq)).toEqual(Array.from({ length: fromA.length }, (_, i) => i + 1));
    const issuedInAudit = new Set(
      fromB
        .filter((r) => r.action === 'certificate.issue' && r.outcome === 'ok')
        .map((r) => r.data.serial as string),
    );
    expect(issued.length).toBeGreaterThan(200);
    expect(issued.filter((s) => !issuedInAudit.has(s))).toEqual([]);
    // Writes from both replicas, all in the one chain: every token, issuance and revocation.
    expect(issuedInAudit.size).toBe(issued.length);
    expect(fromB.filter((r) => r.action === 'token.create' && r.outcome === 'ok')).toHaveLength(
      tokensCreated,
    );
    expect(fromB.filter((r) => r.action === 'certificate.revoke' && r.outcome === 'ok')).toHaveLength(12);
  });
});
