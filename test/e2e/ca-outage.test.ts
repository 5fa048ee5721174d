// The database goes away under a running `mtls ca serve` (a real PostgreSQL, stopped and started
// again on the same port): readiness and enrollment answer 503 MTLS_STORE_UNAVAILABLE, nothing
// answers a 500 or crashes, signed objects already cached keep being served, and the CA recovers by
// itself when the database returns, without a restart.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  parseCertificate,
  parseOcspResponse,
  readCertificates,
  certIdFor,
  encodeOcspRequest,
  type Certificate,
} from '../../src/pki/index.js';
import { verifyAuditChain } from '../../src/store/index.js';
import {
  createToken,
  csrFor,
  leafOf,
  listInventory,
  mapLimit,
  ocspStatus,
  pollUntil,
  readAudit,
  sign,
  type AdminAccess,
} from '../support/ca-load.js';
import { adminCredential, call, startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pg: PostgresServer;
let ca: CaService;
let bundle: string;
let intermediate: Certificate;
let admin: AdminAccess;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('mtls-e2e-outage-');
  const paths = await initCa(root, 'ca');
  bundle = paths.bundle;
  intermediate = parseCertificate(
    readCertificates(readFileSync(paths.intermediateCert), 'intermediate')[0]!.der,
  );
  pg = await startPostgres();
  ca = await startCaService(paths.dir, ['--db', await pg.createDatabase('ca_outage')]);
  admin = { mtlsUrl: ca.mtlsUrl, bundle, admin: adminCredential(paths.dir) };
}, 60_000);

afterAll(async () => {
  await ca?.stop();
  await pg?.stop();
  await removeTempDir(root);
});

const ready = (): Promise<{ status: number; body: Record<string, unknown> }> =>
  call(ca.publicUrl, { path: '/v1/ready', ca: bundle }).then((r) => ({ status: r.status, body: r.json() }));

describe('mtls ca serve when its PostgreSQL database goes down and comes back', () => {
  it('answers 503 MTLS_STORE_UNAVAILABLE while the database is down, keeps cached signed objects, and recovers without a restart', async () => {
    expect((await ready()).status).toBe(200);
    // Before the outage: a token for later, a live certificate whose OCSP answer and the CRL are cached.
    const id = 'dns:later.outage.test';
    const kept = await createToken(admin, { profile: 'client', sans: [id] });
    const t0 = await createToken(admin, { profile: 'client', sans: ['dns:before.outage.test'] });
    const before = await sign(ca.publicUrl, bundle, t0.token, csrFor(['dns:before.outage.test']));
    expect(before.status).toBe(200);
    const liveLeaf = leafOf(before.json().certificate as string);
    expect((await ocspStatus(ca.httpUrl, liveLeaf, intermediate)).status).toBe('good');
    const crlBefore = await call(ca.httpUrl, { path: '/v1/crl' });
    expect(crlBefore.status).toBe(200);

    const pid = ca.proc.pid;
    await pg.pause();

    // Readiness says so, with the code, within a bounded wait (at once in practice).
    const notReady = await pollUntil(
      async () => {
        const r = await ready();
        return r.status === 503 ? r : undefined;
      },
      { timeoutMs: 5000, intervalMs: 50 },
    );
    expect(notReady.value?.body).toMatchObject({ status: 'unavailable', code: 'MTLS_STORE_UNAVAILABLE' });

    // Enrollment: 503 with code and requestId, the same for a token that exists and one that does not.
    const csr = csrFor([id]);
    const refused = await sign(ca.publicUrl, bundle, kept.token, csr);
    expect(refused.status, refused.body.toString()).toBe(503);
    expect(refused.json().code).toBe('MTLS_STORE_UNAVAILABLE');
    expect(refused.json().requestId).toEqual(expect.any(String));
    expect(refused.json().message).toEqual(expect.any(String));
    const unknown = await sign(ca.publicUrl, bundle, `mtls_AAAAAAAAAAAA.${'B'.repeat(43)}`, csr);
    expect(unknown.status).toBe(503);
    expect(unknown.json().code).toBe('MTLS_STORE_UNAVAILABLE');
    // Admin endpoints too, and the answer never looks like a bug (500) or leaks a stack.
    const tokenDown = await call(ca.mtlsUrl, {
      path: '/v1/tokens',
      body: { profile: 'client', sans: ['dns:x.outage.test'] },
      ca: bundle,
      client: admin.admin,
    });
    expect(tokenDown.status).toBe(503);
    expect(tokenDown.json().code).toBe('MTLS_STORE_UNAVAILABLE');
    expect(tokenDown.body.toString()).not.toMatch(/ECONNREFUSED|\bat \w+ \(/);

    // Liveness is not readiness; signed objects already made keep being served.
    expect((await call(ca.publicUrl, { path: '/v1/health', ca: bundle })).status).toBe(200);
    expect((await ocspStatus(ca.httpUrl, liveLeaf, intermediate)).status).toBe('good');
    const crlDown = await call(ca.httpUrl, { path: '/v1/crl' });
    expect(crlDown.status).toBe(200);
    expect(crlDown.body.equals(crlBefore.body)).toBe(true);
    // An OCSP question it cannot answer from cache gets "tryLater", never a wrong "good".
    const fresh = await call(ca.httpUrl, {
      path: '/ocsp',
      rawBody: encodeOcspRequest([certIdFor({ serial: '0badc0ffee' }, intermediate)], {
        nonce: Buffer.from('outage-nonce-123'),
      }),
      headers: { 'content-type': 'application/ocsp-request' },
    });
    expect(fresh.status).toBe(200);
    expect(parseOcspResponse(fresh.body).status).toBe('tryLater');

    // Several revocation polls fail while it is down (the CA only logs them): it stays up.
    await new Promise((r) => setTimeout(r, 800));
    expect(ca.proc.exitCode).toBeNull();
    expect((await ready()).status).toBe(503);

    await pg.resume();
    const upAt = performance.now();
    const back = await pollUntil(async () => ((await ready()).status === 200 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    expect(back.value).toBe(true);
    // Same process, no restart; the token the failed request carried was not consumed.
    expect(ca.proc.pid).toBe(pid);
    expect(ca.proc.exitCode).toBeNull();
    const recovered = await sign(ca.publicUrl, bundle, kept.token, csr);
    expect(recovered.status, recovered.body.toString()).toBe(200);
    const fresh2 = await createToken(admin, { profile: 'client', sans: ['dns:after.outage.test'] });
    expect((await sign(ca.publicUrl, bundle, fresh2.token, csrFor(['dns:after.outage.test']))).status).toBe(
      200,
    );
    const chain = verifyAuditChain(await readAudit(admin));
    expect(chain.ok).toBe(true);
    console.info(
      `database outage: ready→503 after ${notReady.elapsedMs.toFixed(0)} ms; ready→200 ${(performance.now() - upAt).toFixed(0)} ms after PostgreSQL accepted connections again`,
    );
  }, 60_000);

  it('answers every enrollment of a load cut by the outage with 200 or 503 (never 500), and keeps every 200', async () => {
    const n = 160;
    const tokens = await mapLimit(
      Array.from({ length: n }, (_, i) => i),
      8,
      (i) => createToken(admin, { profile: 'client', sans: [`dns:load${i}.outage.test`] }),
    );
    const csrs = tokens.map((_, i) => csrFor([`dns:load${i}.outage.test`]));
    const pausing = new Promise<void>((done) => setTimeout(done, 80)).then(() => pg.pause());
    const outcomes = await mapLimit(tokens, 8, async (t, i) => {
      try {
        const r = await sign(ca.publicUrl, bundle, t.token, csrs[i]!);
        return { status: r.status, body: r.json() };
      } catch (e) {
        return { status: 0, body: { code: (e as Error).message } };
      }
    });
    await pausing;
    // Every request got an HTTP answer (no connection dropped, the process is still up).
    expect(
      outcomes.filter((o) => o.status === 0).map((o) => o.body.code),
      `exit ${ca.proc.exitCode} ${ca.proc.signalCode}\n${ca.logs().slice(-4000)}`,
    ).toEqual([]);
    expect(ca.proc.exitCode).toBeNull();
    const statuses = new Map<string, number>();
    for (const o of outcomes) {
      const key = o.status === 200 ? '200' : `${o.status} ${String(o.body.code)}`;
      statuses.set(key, (statuses.get(key) ?? 0) + 1);
    }
    expect([...statuses.keys()].sort(), JSON.stringify([...statuses])).toEqual(
      ['200', '503 MTLS_STORE_UNAVAILABLE'].filter((k) => statuses.has(k)),
    );
    expect(statuses.get('503 MTLS_STORE_UNAVAILABLE') ?? 0).toBeGreaterThan(0);
    for (const o of outcomes) if (o.status === 503) expect(o.body.requestId).toEqual(expect.any(String));

    await pg.resume();
    const back = await pollUntil(async () => ((await ready()).status === 200 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 50,
    });
    expect(back.value).toBe(true);
    const inv = new Set((await listInventory(admin)).map((c) => c.serial));
    const ok = outcomes.filter((o) => o.status === 200).map((o) => o.body.serial as string);
    expect(ok.filter((s) => !inv.has(s))).toEqual([]);
    // Tokens whose request was cut off are either unused (so they still work now) or were consumed by a
    // stored certificate whose answer was lost with the connection: 200 or 409, nothing else.
    const retried = await mapLimit(
      outcomes.map((o, i) => ({ o, i })).filter(({ o }) => o.status !== 200),
      8,
      async ({ i }) => (await sign(ca.publicUrl, bundle, tokens[i]!.token, csrs[i]!)).status,
    );
    expect(retried.every((s) => s === 200 || s === 409)).toBe(true);
    expect(verifyAuditChain(await readAudit(admin)).ok).toBe(true);
    console.info(
      `outage under load: ${JSON.stringify([...statuses])}; retried after recovery: ${JSON.stringify(retried.reduce<Record<number, number>>((m, s) => ((m[s] = (m[s] ?? 0) + 1), m), {}))}`,
    );
  }, 60_000);
});
