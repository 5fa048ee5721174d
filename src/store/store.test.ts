// One contract suite for both stores: SQLite on a temp file and a real PostgreSQL server
// (test/support/postgres.ts). PostgreSQL additionally runs as two replicas (two pools) on one database.
import Database from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres, type PostgresServer } from '../../test/support/postgres.js';
import { freePort } from '../../test/support/ports.js';
import { isMtlsError } from '../errors/index.js';
import {
  createPostgresStore,
  openStore,
  parseStoreUrl,
  verifyAuditChain,
  type AuditInput,
  type CertificateRecord,
  type Store,
  type TokenRecord,
} from './index.js';

const T0 = new Date('2030-01-01T00:00:00.000Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

function token(hash: string, over: Partial<TokenRecord> = {}): TokenRecord {
  return {
    id: `tok-${hash}`,
    hash,
    grant: {
      profile: 'spiffe',
      sans: ['uri:spiffe://example.org/ns/prod/*'],
      maxTtlMs: DAY,
      commonName: 'w',
    },
    createdBy: 'admin:ops',
    createdAt: T0,
    expiresAt: at(5 * MIN),
    ...over,
  };
}

function cert(serial: string, over: Partial<CertificateRecord> = {}): CertificateRecord {
  return {
    serial,
    issuerKeyId: 'ab12',
    profile: 'server',
    identity: `svc-${serial}.example.org`,
    subject: `CN=svc-${serial}.example.org`,
    sans: [`dns:svc-${serial}.example.org`],
    notBefore: T0,
    notAfter: at(DAY),
    der: Buffer.from(`der-${serial}`),
    status: 'valid',
    createdAt: T0,
    ...over,
  };
}

function audit(action: string, data: Record<string, unknown> = {}): AuditInput {
  return { at: T0, action, actor: 'admin:ops', outcome: 'ok', data };
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const e: unknown = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isMtlsError(e), `expected an MtlsError ${code}, got ${String(e)}`).toBe(true);
  expect((e as { code: string }).code).toBe(code);
}

interface Fresh {
  store: Store;
  url: string;
  /** Runs raw SQL against the same database, bypassing the store (to tamper with it). */
  exec: (sql: string) => Promise<void>;
  /** Another independent Store on the same database (PostgreSQL: a second pool, i.e. a replica). */
  replica: () => Promise<Store>;
}

interface Harness {
  kind: 'sqlite' | 'postgres';
  fresh(): Promise<Fresh>;
}

const toClose: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of toClose.splice(0)) await close();
});

function sqliteHarness(): Harness & { setup(): Promise<void>; teardown(): Promise<void> } {
  let dir = '';
  let n = 0;
  return {
    kind: 'sqlite',
    async setup() {
      dir = await mkdtemp(join(tmpdir(), 'mtlskit-store-'));
    },
    async teardown() {
      if (dir) await rm(dir, { recursive: true, force: true });
    },
    async fresh() {
      const path = join(dir, `ca-${++n}.db`);
      const url = `sqlite:${path}`;
      const store = await openStore(url);
      toClose.push(() => store.close());
      return {
        store,
        url,
        exec(sql) {
          const db = new Database(path);
          try {
            db.exec(sql);
          } finally {
            db.close();
          }
          return Promise.resolve();
        },
        async replica() {
          const s = await openStore(url);
          toClose.push(() => s.close());
          return s;
        },
      };
    },
  };
}

function postgresHarness(): Harness & {
  setup(): Promise<void>;
  teardown(): Promise<void>;
  server(): PostgresServer;
} {
  let server: PostgresServer | undefined;
  let n = 0;
  return {
    kind: 'postgres',
    server: () => server!,
    async setup() {
      server = await startPostgres();
    },
    async teardown() {
      await server?.stop();
    },
    async fresh() {
      const url = await server!.createDatabase(`store_${++n}`);
      const store = await openStore(url);
      toClose.push(() => store.close());
      return {
        store,
        url,
        async exec(sql) {
          const client = new pg.Client({ connectionString: url });
          await client.connect();
          try {
            await client.query(sql);
          } finally {
            await client.end();
          }
        },
        async replica() {
          const s = await openStore(url);
          toClose.push(() => s.close());
          return s;
        },
      };
    },
  };
}

function contract(h: Harness): void {
  describe('schema', () => {
    it('migrate() is idempotent and reports its kind', async () => {
      const { store } = await h.fresh();
      await store.migrate();
      await store.migrate();
      expect(store.kind).toBe(h.kind);
      await store.ping();
      expect(await store.lastRevocationSeq()).toBe(0);
      expect(await store.listAudit(0)).toEqual([]);
    });
  });

  describe('tokens', () => {
    it('stores a token with its audit record and reads it back by hash', async () => {
      const { store } = await h.fresh();
      const rec = await store.createToken(token('h1'), audit('token.create', { tokenId: 'tok-h1' }));
      expect(rec).toMatchObject({
        seq: 1,
        prevHash: '',
        action: 'token.create',
        data: { tokenId: 'tok-h1' },
      });
      expect(await store.getToken('h1')).toEqual(token('h1'));
      expect(await store.getToken('nope')).toBeUndefined();
      await expectCode(
        store.createToken(token('h1', { id: 'other' }), audit('token.create')),
        'MTLS_STORE_BAD_RECORD',
      );
      await expectCode(
        store.createToken(token('h2', { id: 'tok-h1' }), audit('token.create')),
        'MTLS_STORE_BAD_RECORD',
      );
      expect(await store.listAudit(0)).toHaveLength(1);
    });

    it('is single use: the second issuance with the same token is refused and stores nothing', async () => {
      const { store } = await h.fresh();
      await store.createToken(token('h1'), audit('token.create'));
      const first = await store.recordIssuance({
        tokenHash: 'h1',
        now: at(MIN),
        certificate: cert('0a'),
        audit: audit('certificate.issue', { serial: '0a' }),
      });
      expect(first).toMatchObject({ ok: true, audit: { seq: 2, action: 'certificate.issue' } });
      expect(await store.getToken('h1')).toEqual({ ...token('h1'), usedAt: at(MIN), usedBySerial: '0a' });
      const second = await store.recordIssuance({
        tokenHash: 'h1',
        now: at(2 * MIN),
        certificate: cert('0b'),
        audit: audit('certificate.issue'),
      });
      expect(second).toEqual({ ok: false, reason: 'token_used' });
      expect(await store.getCertificate('0b')).toBeUndefined();
      expect(await store.listAudit(0)).toHaveLength(2);
    });

    it('refuses an expired token (expiry is exclusive) and an unknown one', async () => {
      const { store } = await h.fresh();
      await store.createToken(token('h1'), audit('token.create'));
      const expired = await store.recordIssuance({
        tokenHash: 'h1',
        now: at(5 * MIN),
        certificate: cert('0a'),
        audit: audit('certificate.issue'),
      });
      expect(expired).toEqual({ ok: false, reason: 'token_expired' });
      const unknown = await store.recordIssuance({
        tokenHash: 'h2',
        now: at(MIN),
        certificate: cert('0a'),
        audit: audit('certificate.issue'),
      });
      expect(unknown).toEqual({ ok: false, reason: 'token_unknown' });
      expect((await store.getToken('h1'))?.usedAt).toBeUndefined();
      expect(await store.getCertificate('0a')).toBeUndefined();
      expect(await store.listAudit(0)).toHaveLength(1);
    });

    it('lets exactly one of 20 concurrent issuances consume a token', async () => {
      const { store } = await h.fresh();
      await store.createToken(token('h1'), audit('token.create'));
      const serials = Array.from({ length: 20 }, (_, i) => (0x100 + i).toString(16));
      const outcomes = await Promise.all(
        serials.map((s) =>
          store.recordIssuance({
            tokenHash: 'h1',
            now: at(MIN),
            certificate: cert(s),
            audit: audit('certificate.issue'),
          }),
        ),
      );
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok && o.reason === 'token_used')).toHaveLength(19);
      const stored = await store.listCertificates({});
      expect(stored).toHaveLength(1);
      expect((await store.getToken('h1'))?.usedBySerial).toBe(stored[0]!.serial);
      expect(verifyAuditChain(await store.listAudit(0))).toMatchObject({ ok: true, count: 2 });
    });
  });

  describe('certificates', () => {
    it('stores and reads back every field', async () => {
      const { store } = await h.fresh();
      const c = cert('7f01', {
        profile: 'spiffe',
        identity: 'spiffe://example.org/ns/prod/api',
        sans: ['uri:spiffe://example.org/ns/prod/api', 'dns:api.prod'],
        der: Buffer.from([0x30, 0x82, 0x00, 0xff, 0x00]),
        renewedFrom: '7f00',
      });
      expect(
        await store.recordIssuance({ now: T0, certificate: c, audit: audit('certificate.renew') }),
      ).toMatchObject({
        ok: true,
      });
      const got = await store.getCertificate('7f01');
      expect(got).toEqual(c);
      expect(Buffer.isBuffer(got?.der)).toBe(true);
      expect(await store.getCertificate('7f02')).toBeUndefined();
    });

    it("refuses a serial that exists ('serial_exists') and keeps the first certificate", async () => {
      const { store } = await h.fresh();
      await store.recordIssuance({ now: T0, certificate: cert('aa'), audit: audit('certificate.issue') });
      const dup = await store.recordIssuance({
        now: T0,
        certificate: cert('aa', { identity: 'other' }),
        audit: audit('certificate.issue'),
      });
      expect(dup).toEqual({ ok: false, reason: 'serial_exists' });
      expect((await store.getCertificate('aa'))?.identity).toBe('svc-aa.example.org');
      expect(await store.listAudit(0)).toHaveLength(1);
    });

    it('rejects malformed records before touching the database', async () => {
      const { store } = await h.fresh();
      await expectCode(
        store.recordIssuance({ now: T0, certificate: cert('AB'), audit: audit('x') }),
        'MTLS_STORE_BAD_RECORD',
      );
      await expectCode(
        store.recordIssuance({
          now: T0,
          certificate: cert('ab', { notAfter: new Date(Number.NaN) }),
          audit: audit('x'),
        }),
        'MTLS_STORE_BAD_RECORD',
      );
      await expectCode(store.appendAudit({ ...audit('x'), at: new Date('nope') }), 'MTLS_STORE_BAD_RECORD');
      expect(await store.listCertificates({})).toEqual([]);
    });

    it('filters the inventory by identity, profile, expiry and revocation, with keyset pagination', async () => {
      const { store } = await h.fresh();
      const certs = [
        cert('01', { identity: 'a', profile: 'server', notAfter: at(1 * DAY) }),
        cert('02', { identity: 'a', profile: 'client', notAfter: at(2 * DAY) }),
        cert('03', { identity: 'b', profile: 'server', notAfter: at(3 * DAY) }),
        cert('10', { identity: 'b', profile: 'spiffe', notAfter: at(-1 * DAY) }),
        cert('ff', { identity: 'c', profile: 'server', notAfter: at(10 * DAY) }),
        cert('1a', { identity: 'c', profile: 'server', notAfter: at(4 * DAY) }),
      ];
      for (const c of certs)
        await store.recordIssuance({ now: T0, certificate: c, audit: audit('certificate.issue') });
      await store.recordRevocation({
        serial: '03',
        at: at(MIN),
        reason: 'keyCompromise',
        audit: audit('certificate.revoke'),
      });
      const serials = async (f: Parameters<Store['listCertificates']>[0]): Promise<string[]> =>
        (await store.listCertificates(f)).map((c) => c.serial);

      expect(await serials({})).toEqual(['01', '02', '03', '10', '1a', 'ff']);
      expect(await serials({ identity: 'a' })).toEqual(['01', '02']);
      expect(await serials({ profile: 'server' })).toEqual(['01', '03', '1a', 'ff']);
      expect(await serials({ expiringBefore: at(3 * DAY + 1) })).toEqual(['01', '02', '03', '10']);
      expect(await serials({ expiringBefore: at(3 * DAY + 1), now: T0 })).toEqual(['01', '02', '03']);
      expect(await serials({ revoked: true })).toEqual(['03']);
      expect(await serials({ revoked: false, profile: 'server' })).toEqual(['01', '1a', 'ff']);
      expect(await serials({ identity: 'c', revoked: false, expiringBefore: at(5 * DAY) })).toEqual(['1a']);

      const pages: string[][] = [];
      let after: string | undefined;
      for (;;) {
        const page = await serials({ limit: 4, ...(after ? { afterSerial: after } : {}) });
        if (page.length === 0) break;
        pages.push(page);
        after = page.at(-1);
      }
      expect(pages).toEqual([
        ['01', '02', '03', '10'],
        ['1a', 'ff'],
      ]);
      expect(await serials({ limit: 0 })).toEqual([]);
      const revoked = await store.getCertificate('03');
      expect(revoked).toMatchObject({
        status: 'revoked',
        revokedAt: at(MIN),
        revocationReason: 'keyCompromise',
      });
    });
  });

  describe('atomicity', () => {
    it('a failing issuance (duplicate serial) leaves the token unused and writes no audit record', async () => {
      const { store } = await h.fresh();
      await store.recordIssuance({ now: T0, certificate: cert('aa'), audit: audit('certificate.issue') });
      await store.createToken(token('h1'), audit('token.create'));
      const before = await store.listAudit(0);
      const dup = await store.recordIssuance({
        tokenHash: 'h1',
        now: at(MIN),
        certificate: cert('aa', { identity: 'dup' }),
        audit: audit('certificate.issue'),
      });
      expect(dup).toEqual({ ok: false, reason: 'serial_exists' });
      expect(await store.getToken('h1')).toEqual(token('h1'));
      expect(await store.listAudit(0)).toEqual(before);
      // The token is still good for a fresh serial.
      const retry = await store.recordIssuance({
        tokenHash: 'h1',
        now: at(MIN),
        certificate: cert('ab'),
        audit: audit('certificate.issue'),
      });
      expect(retry).toMatchObject({ ok: true, audit: { seq: 3 } });
    });
  });

  describe('revocation', () => {
    it('records events with gap-free seq, refuses unknown and already revoked serials', async () => {
      const { store } = await h.fresh();
      for (const s of ['01', '02', '03']) {
        await store.recordIssuance({ now: T0, certificate: cert(s), audit: audit('certificate.issue') });
      }
      expect(await store.lastRevocationSeq()).toBe(0);
      const r1 = await store.recordRevocation({
        serial: '02',
        at: at(MIN),
        reason: 'superseded',
        audit: audit('certificate.revoke'),
      });
      expect(r1).toMatchObject({
        ok: true,
        event: { seq: 1, serial: '02', revokedAt: at(MIN), reason: 'superseded' },
        audit: { seq: 4, action: 'certificate.revoke' },
      });
      expect(
        await store.recordRevocation({
          serial: '02',
          at: at(2 * MIN),
          reason: 'keyCompromise',
          audit: audit('x'),
        }),
      ).toEqual({
        ok: false,
        reason: 'already_revoked',
      });
      expect(
        await store.recordRevocation({
          serial: '99',
          at: at(2 * MIN),
          reason: 'keyCompromise',
          audit: audit('x'),
        }),
      ).toEqual({
        ok: false,
        reason: 'unknown_serial',
      });
      const r2 = await store.recordRevocation({
        serial: '03',
        at: at(3 * MIN),
        reason: 'keyCompromise',
        audit: audit('x'),
      });
      const r3 = await store.recordRevocation({
        serial: '01',
        at: at(4 * MIN),
        reason: 'cessationOfOperation',
        audit: audit('x'),
      });
      expect([r2, r3].map((r) => r.ok && r.event.seq)).toEqual([2, 3]);
      expect(await store.lastRevocationSeq()).toBe(3);
      expect(await store.revocationsSince(0)).toEqual([
        { seq: 1, serial: '02', revokedAt: at(MIN), reason: 'superseded' },
        { seq: 2, serial: '03', revokedAt: at(3 * MIN), reason: 'keyCompromise' },
        { seq: 3, serial: '01', revokedAt: at(4 * MIN), reason: 'cessationOfOperation' },
      ]);
      expect((await store.revocationsSince(1, 1)).map((e) => e.seq)).toEqual([2]);
      expect(await store.revocationsSince(3)).toEqual([]);
      // The refused revocations wrote nothing: the first revocation kept its reason and time.
      expect(await store.getCertificate('02')).toMatchObject({
        revokedAt: at(MIN),
        revocationReason: 'superseded',
      });
      expect(verifyAuditChain(await store.listAudit(0))).toMatchObject({ ok: true, count: 6 });
    });
  });

  describe('CRL numbers', () => {
    it('increase monotonically from 1', async () => {
      const { store } = await h.fresh();
      const numbers: bigint[] = [];
      for (let i = 0; i < 5; i++) numbers.push(await store.nextCrlNumber());
      expect(numbers[0]).toBe(1n);
      for (let i = 1; i < numbers.length; i++) expect(numbers[i]! > numbers[i - 1]!).toBe(true);
      const concurrent = await Promise.all(Array.from({ length: 10 }, () => store.nextCrlNumber()));
      expect(new Set(concurrent).size).toBe(10);
      expect(concurrent.every((n) => n > numbers.at(-1)!)).toBe(true);
    });
  });

  describe('audit chain', () => {
    async function populated(): Promise<Fresh> {
      const f = await h.fresh();
      const { store } = f;
      await store.createToken(token('h1'), audit('token.create', { tokenId: 'tok-h1' }));
      await store.recordIssuance({
        tokenHash: 'h1',
        now: at(MIN),
        certificate: cert('0a'),
        audit: { ...audit('certificate.issue', { serial: '0a', sans: ['dns:a'] }), actor: 'token:tok-h1' },
      });
      await store.appendAudit({
        at: at(2 * MIN),
        action: 'request.refuse',
        actor: 'anonymous',
        outcome: 'refused',
        reason: 'MTLS_CA_TOKEN_USED',
        data: { z: 1, a: { y: [1, 'two', null], b: at(3 * MIN) }, skipped: undefined, requestId: 'r-1' },
      });
      await store.recordRevocation({
        serial: '0a',
        at: at(4 * MIN),
        reason: 'keyCompromise',
        audit: audit('certificate.revoke'),
      });
      return f;
    }

    it('verifies, reads back exactly what was appended, and pages', async () => {
      const { store } = await populated();
      const records = await store.listAudit(0);
      expect(records.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
      expect(records[2]).toMatchObject({
        outcome: 'refused',
        reason: 'MTLS_CA_TOKEN_USED',
        data: { z: 1, a: { y: [1, 'two', null], b: at(3 * MIN).toISOString() }, requestId: 'r-1' },
      });
      expect(records[2]!.data).not.toHaveProperty('skipped');
      expect(records[0]).not.toHaveProperty('reason');
      expect(verifyAuditChain(records)).toEqual({
        ok: true,
        count: 4,
        lastSeq: 4,
        lastHash: records[3]!.hash,
      });
      const first = await store.listAudit(0, 2);
      const rest = await store.listAudit(2);
      const v1 = verifyAuditChain(first);
      expect(v1).toMatchObject({ ok: true, count: 2 });
      if (!v1.ok) return;
      expect(verifyAuditChain(rest, { seq: v1.lastSeq, hash: v1.lastHash })).toMatchObject({
        ok: true,
        count: 2,
      });
      expect(verifyAuditChain(rest)).toMatchObject({ ok: false, seq: 3, problem: 'seq_gap' });
    });

    it('detects a record modified in the database', async () => {
      const { store, exec } = await populated();
      await exec("UPDATE audit SET actor = 'admin:mallory' WHERE seq = 2");
      expect(verifyAuditChain(await store.listAudit(0))).toMatchObject({
        ok: false,
        seq: 2,
        problem: 'hash_mismatch',
      });
    });

    it('detects modified data, a rewritten hash and a deleted record', async () => {
      const { store, exec } = await populated();
      await exec(`UPDATE audit SET data = '{"requestId":"r-2"}' WHERE seq = 3`);
      expect(verifyAuditChain(await store.listAudit(0))).toMatchObject({
        ok: false,
        seq: 3,
        problem: 'hash_mismatch',
      });
      // Re-hashing the modified record breaks the link to the next one.
      await exec(`UPDATE audit SET hash = '${'0'.repeat(64)}' WHERE seq = 3`);
      expect(verifyAuditChain(await store.listAudit(0))).toMatchObject({
        ok: false,
        seq: 3,
        problem: 'hash_mismatch',
      });
      await exec('DELETE FROM audit WHERE seq = 3');
      expect(verifyAuditChain(await store.listAudit(0))).toMatchObject({
        ok: false,
        seq: 4,
        problem: 'seq_gap',
      });
      // The head still counts the deleted record: the next append leaves the gap visible.
      const next = await store.appendAudit(audit('after'));
      expect(next.seq).toBe(5);
    });
  });

  describe('availability', () => {
    it('ping and every operation fail with MTLS_STORE_UNAVAILABLE once the store is closed', async () => {
      const { store } = await h.fresh();
      await store.ping();
      await store.close();
      await store.close();
      await expectCode(store.ping(), 'MTLS_STORE_UNAVAILABLE');
      await expectCode(store.getCertificate('01'), 'MTLS_STORE_UNAVAILABLE');
      await expectCode(store.appendAudit(audit('x')), 'MTLS_STORE_UNAVAILABLE');
    });
  });
}

describe('parseStoreUrl / openStore', () => {
  it('reads sqlite:PATH relative to the working directory, sqlite::memory: and postgres URLs', async () => {
    expect(parseStoreUrl('sqlite:data/ca.db')).toEqual({ kind: 'sqlite', path: resolve('data/ca.db') });
    expect(parseStoreUrl('sqlite:/var/lib/mtls/ca.db')).toEqual({
      kind: 'sqlite',
      path: '/var/lib/mtls/ca.db',
    });
    expect(parseStoreUrl('postgresql://u:p@db:5432/ca')).toEqual({
      kind: 'postgres',
      url: 'postgresql://u:p@db:5432/ca',
    });
    const mem = await openStore('sqlite::memory:');
    try {
      expect(mem.kind).toBe('sqlite');
      expect(await mem.nextCrlNumber()).toBe(1n);
    } finally {
      await mem.close();
    }
  });

  it.each(['mysql://db/ca', 'sqlite:', 'sqlite://host/ca.db', 'ca.db', 'postgres://', 'postgres://:5432/x'])(
    'refuses %s with MTLS_STORE_BAD_URL',
    async (url) => {
      await expectCode(openStore(url), 'MTLS_STORE_BAD_URL');
    },
  );

  it('does not put the password of a bad URL in the message', async () => {
    const e: unknown = await openStore('postgres://user:s3cret@/x').catch((err: unknown) => err);
    expect(isMtlsError(e, 'MTLS_STORE_BAD_URL')).toBe(true);
    expect(String((e as Error).message)).not.toContain('s3cret');
  });
});

describe('SQLite store', () => {
  const h = sqliteHarness();
  beforeAll(() => h.setup());
  afterAll(() => h.teardown());
  contract(h);

  it('answers MTLS_STORE_UNAVAILABLE when the file cannot be opened', async () => {
    await expectCode(openStore('sqlite:/nonexistent-mtlskit-dir/sub/ca.db'), 'MTLS_STORE_UNAVAILABLE');
  });

  it('runs in WAL mode, and two handles on one file share one audit chain and one token', async () => {
    const { store: a, url, replica } = await h.fresh();
    const db = new Database(url.slice('sqlite:'.length), { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
    }
    const b = await replica();
    await a.createToken(token('h1'), audit('token.create'));
    const outcomes = await Promise.all(
      ['01', '02', '03', '04'].map((s, i) =>
        (i % 2 ? a : b).recordIssuance({
          tokenHash: 'h1',
          now: at(MIN),
          certificate: cert(s),
          audit: audit('x'),
        }),
      ),
    );
    expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
    await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).appendAudit(audit('y'))));
    expect(verifyAuditChain(await a.listAudit(0))).toMatchObject({ ok: true, count: 12 });
  });
});

describe('PostgreSQL store', () => {
  const h = postgresHarness();
  beforeAll(() => h.setup(), 60_000);
  afterAll(() => h.teardown(), 30_000);
  contract(h);

  describe('two replicas on one database', () => {
    it('accept a token once when both consume it concurrently', async () => {
      const { store: a, replica } = await h.fresh();
      const b = await replica();
      await a.createToken(token('h1'), audit('token.create'));
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? a : b).recordIssuance({
            tokenHash: 'h1',
            now: at(MIN),
            certificate: cert((0x200 + i).toString(16)),
            audit: audit('certificate.issue'),
          }),
        ),
      );
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok && o.reason === 'token_used')).toHaveLength(19);
      expect(await b.listCertificates({})).toHaveLength(1);
    });

    it('never both store one serial', async () => {
      const { store: a, replica } = await h.fresh();
      const b = await replica();
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? a : b).recordIssuance({
            now: T0,
            certificate: cert('abc'),
            audit: audit('certificate.issue'),
          }),
        ),
      );
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok && o.reason === 'serial_exists')).toHaveLength(9);
      expect(await a.listAudit(0)).toHaveLength(1);
    });

    it('keep one gap-free audit chain and one revocation feed while appending concurrently', async () => {
      const { store: a, replica } = await h.fresh();
      const b = await replica();
      const serials = Array.from({ length: 30 }, (_, i) => (0x300 + i).toString(16));
      await Promise.all(
        serials.map((s, i) =>
          (i % 2 ? a : b).recordIssuance({
            now: T0,
            certificate: cert(s),
            audit: audit('certificate.issue'),
          }),
        ),
      );
      await Promise.all([
        ...serials.map((s, i) =>
          (i % 2 ? b : a).recordRevocation({
            serial: s,
            at: at(i),
            reason: 'superseded',
            audit: audit('certificate.revoke'),
          }),
        ),
        ...Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).appendAudit(audit('request.refuse', { i }))),
      ]);
      const records = await b.listAudit(0);
      expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      expect(verifyAuditChain(records)).toMatchObject({ ok: true, count: 100 });
      const events = await a.revocationsSince(0);
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      expect(new Set(events.map((e) => e.serial)).size).toBe(30);
      expect(await a.lastRevocationSeq()).toBe(30);
      expect(await b.lastRevocationSeq()).toBe(30);
    });

    it('hand out distinct, per-replica increasing CRL numbers', async () => {
      const { store: a, replica } = await h.fresh();
      const b = await replica();
      const fromA: bigint[] = [];
      const fromB: bigint[] = [];
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          fromA.push(await a.nextCrlNumber());
          fromB.push(await b.nextCrlNumber());
        }),
      );
      expect(new Set([...fromA, ...fromB]).size).toBe(20);
      const last = [...fromA, ...fromB].reduce((m, n) => (n > m ? n : m), 0n);
      expect(await a.nextCrlNumber()).toBeGreaterThan(last);
    });

    it('migrate concurrently on an empty database', async () => {
      const url = await h.server().createDatabase('concurrent_migrate');
      const stores = [createPostgresStore(url), createPostgresStore(url), createPostgresStore(url)];
      for (const s of stores) toClose.push(() => s.close());
      await Promise.all(stores.map((s) => s.migrate()));
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        const { rows } = await client.query<{ version: number }>(
          'SELECT version FROM schema_migrations ORDER BY version',
        );
        expect(rows.map((r) => r.version)).toEqual([1]);
      } finally {
        await client.end();
      }
      expect(await stores[2]!.nextCrlNumber()).toBe(1n);
    });
  });

  describe('database outage', () => {
    it('answers MTLS_STORE_UNAVAILABLE for a server that is not there', async () => {
      const port = await freePort();
      const store = createPostgresStore(`postgres://postgres:pw@127.0.0.1:${port}/none`, {
        connectionTimeoutMs: 2000,
      });
      toClose.push(() => store.close());
      const e: unknown = await store.ping().catch((err: unknown) => err);
      expect(isMtlsError(e, 'MTLS_STORE_UNAVAILABLE')).toBe(true);
      expect((e as Error).message).not.toContain(':pw@');
      await expectCode(openStore(`postgres://127.0.0.1:${port}/none`), 'MTLS_STORE_UNAVAILABLE');
    });

    it('fails with MTLS_STORE_UNAVAILABLE while the server is down and recovers when it returns', async () => {
      const { store } = await h.fresh();
      await store.createToken(token('h1'), audit('token.create'));
      await h.server().pause();
      try {
        await expectCode(store.ping(), 'MTLS_STORE_UNAVAILABLE');
        await expectCode(
          store.recordIssuance({ tokenHash: 'h1', now: at(MIN), certificate: cert('01'), audit: audit('x') }),
          'MTLS_STORE_UNAVAILABLE',
        );
      } finally {
        await h.server().resume();
      }
      await store.ping();
      const ok = await store.recordIssuance({
        tokenHash: 'h1',
        now: at(MIN),
        certificate: cert('01'),
        audit: audit('x'),
      });
      expect(ok).toMatchObject({ ok: true, audit: { seq: 2 } });
    });
  });
});
