// The embedded store: one SQLite file in WAL mode (the default `sqlite:DIR/ca.db`). better-sqlite3 is
// synchronous: writes of one event-loop turn share one BEGIN IMMEDIATE transaction (group commit),
// each in its own savepoint, and run to their end without yielding.
import Database from 'better-sqlite3';
import { MtlsError } from '../errors/index.js';
import type { CrlReason, ProfileName } from '../pki/index.js';
import { nextAuditRecord } from './audit.js';
import { checkCertificate, checkDate, checkSerial, checkSince, checkToken, listLimit } from './common.js';
import type {
  AuditInput,
  AuditRecord,
  CertificateFilter,
  CertificateRecord,
  IssuanceOutcome,
  RevocationEvent,
  RevocationOutcome,
  Store,
  TokenRecord,
} from './types.js';

export interface SqliteStoreOptions {
  /**
   * `full` (default): every commit is fsynced before recordIssuance & co. resolve, so a certificate a
   * client received, a consumed token, a revocation and a CRL number survive a power loss, not only a
   * crash of the process. `normal`: WAL is synced only at checkpoints; a process crash (kill -9) loses
   * nothing, a power loss or kernel panic can lose the last commits. See the comment at the pragma.
   */
  durability?: 'full' | 'normal';
  /** How long a write waits for another process holding the write lock (default 5000 ms). */
  busyTimeoutMs?: number;
}

/** Ordered schema versions; never edit one that shipped, append a new one. */
const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE certificates (
  serial TEXT PRIMARY KEY,
  issuer_key_id TEXT NOT NULL,
  profile TEXT NOT NULL,
  identity TEXT NOT NULL,
  subject TEXT NOT NULL,
  sans TEXT NOT NULL,
  not_before INTEGER NOT NULL,
  not_after INTEGER NOT NULL,
  der BLOB NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('valid', 'revoked')),
  revoked_at INTEGER,
  revocation_reason TEXT,
  created_at INTEGER NOT NULL,
  renewed_from TEXT,
  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX certificates_identity ON certificates (identity, serial);
CREATE INDEX certificates_profile ON certificates (profile, serial);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked ON certificates (serial) WHERE status = 'revoked';
CREATE TABLE tokens (
  hash TEXT PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  grant_json TEXT NOT NULL,
  created_by TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  used_at INTEGER,
  used_by_serial TEXT REFERENCES certificates (serial) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE revocations (
  seq INTEGER PRIMARY KEY,
  serial TEXT NOT NULL REFERENCES certificates (serial),
  revoked_at INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX revocations_serial ON revocations (serial);
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  at INTEGER NOT NULL,
  action TEXT NOT NULL,
  actor TEXT NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused')),
  reason TEXT,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TABLE heads (
  name TEXT PRIMARY KEY,
  seq INTEGER NOT NULL,
  hash TEXT NOT NULL DEFAULT ''
);
INSERT INTO heads (name, seq) VALUES ('audit', 0), ('revocation', 0), ('crl_number', 0);
`,
  },
];

interface CertificateRow {
  serial: string;
  issuer_key_id: string;
  profile: string;
  identity: string;
  subject: string;
  sans: string;
  not_before: number;
  not_after: number;
  der: Buffer;
  status: 'valid' | 'revoked';
  revoked_at: number | null;
  revocation_reason: string | null;
  created_at: number;
  renewed_from: string | null;
}

interface TokenRow {
  hash: string;
  id: string;
  grant_json: string;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
  used_by_serial: string | null;
}

interface AuditRow {
  seq: number;
  at: number;
  action: string;
  actor: string;
  outcome: 'ok' | 'refused';
  reason: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

interface RevocationRow {
  seq: number;
  serial: string;
  revoked_at: number;
  reason: string;
}

/** Most writes one group commit takes; the rest go into the next turn's. */
const MAX_GROUP = 256;

/** Thrown inside a transaction to roll it back and answer `value` (an expected outcome, not a failure). */
class Rollback<T> extends Error {
  constructor(readonly value: T) {
    super('rollback');
  }
}

const CERT_COLUMNS =
  'serial, issuer_key_id, profile, identity, subject, sans, not_before, not_after, der, status, revoked_at, revocation_reason, created_at, renewed_from';

function certificateFromRow(r: CertificateRow): CertificateRecord {
  const c: CertificateRecord = {
    serial: r.serial,
    issuerKeyId: r.issuer_key_id,
    profile: r.profile as ProfileName,
    identity: r.identity,
    subject: r.subject,
    sans: JSON.parse(r.sans) as string[],
    notBefore: new Date(r.not_before),
    notAfter: new Date(r.not_after),
    der: r.der,
    status: r.status,
    createdAt: new Date(r.created_at),
  };
  if (r.revoked_at !== null) c.revokedAt = new Date(r.revoked_at);
  if (r.revocation_reason !== null) c.revocationReason = r.revocation_reason as CrlReason;
  if (r.renewed_from !== null) c.renewedFrom = r.renewed_from;
  return c;
}

function tokenFromRow(r: TokenRow): TokenRecord {
  const t: TokenRecord = {
    id: r.id,
    hash: r.hash,
    grant: JSON.parse(r.grant_json) as TokenRecord['grant'],
    createdBy: r.created_by,
    createdAt: new Date(r.created_at),
    expiresAt: new Date(r.expires_at),
  };
  if (r.used_at !== null) t.usedAt = new Date(r.used_at);
  if (r.used_by_serial !== null) t.usedBySerial = r.used_by_serial;
  return t;
}

function auditFromRow(r: AuditRow): AuditRecord {
  const a: AuditRecord = {
    seq: r.seq,
    at: new Date(r.at),
    action: r.action,
    actor: r.actor,
    outcome: r.outcome,
    data: JSON.parse(r.data) as Record<string, unknown>,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
  if (r.reason !== null) a.reason = r.reason;
  return a;
}

function eventFromRow(r: RevocationRow): RevocationEvent {
  return { seq: r.seq, serial: r.serial, revokedAt: new Date(r.revoked_at), reason: r.reason as CrlReason };
}

/** SQLite result codes that mean "cannot use the database now" rather than a bug or bad input. */
const UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|READONLY|PERM|NOTADB|CORRUPT|PROTOCOL)/;

function storeError(e: unknown, path: string): Error {
  if (e instanceof MtlsError || e instanceof Rollback) return e;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && UNAVAILABLE.test(code)) {
    return new MtlsError('MTLS_STORE_UNAVAILABLE', `The SQLite database ${path} cannot be used: ${code}.`, {
      cause: e,
      fix:
        code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')
          ? 'Another process holds the database lock; retry, and run one CA per SQLite file (use PostgreSQL for several replicas).'
          : `Check that ${path} and its directory exist, are writable by the CA and that the disk is not full.`,
      details: { path, sqliteCode: code },
    });
  }
  return e instanceof Error ? e : new Error(String(e));
}

export function createSqliteStore(path: string, opts: SqliteStoreOptions = {}): Store {
  return new SqliteStore(path, opts);
}

class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly #path: string;
  readonly #db: Database.Database;
  #closed = false;
  // Prepared after migrate(): the tables do not exist before.
  #s: ReturnType<typeof prepareStatements> | undefined;
  readonly #listStmts = new Map<string, Database.Statement>();

  constructor(path: string, opts: SqliteStoreOptions) {
    this.#path = path;
    try {
      this.#db = new Database(path, { fileMustExist: false });
    } catch (e) {
      throw new MtlsError('MTLS_STORE_UNAVAILABLE', `Cannot open the SQLite database ${path}.`, {
        cause: e,
        fix: `Check that the directory of ${path} exists and is writable by the CA.`,
        details: { path },
      });
    }
    try {
      const db = this.#db;
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
      db.pragma('journal_mode = WAL');
      // Durability. In WAL mode, synchronous=NORMAL fsyncs only at checkpoints: a commit survives a
      // crash of the CA process (kill -9) but not a power loss or kernel panic. "Store before you
      // answer" is a promise to the client that got a certificate (it is in the inventory and the
      // audit log), and the same commits consume one-time tokens, record revocations and hand out
      // CRL numbers: losing the last commits after a power cut would make a used token usable
      // again, un-revoke a certificate and reuse a CRL number. So the default is FULL (the WAL is
      // fsynced at every commit, about 0.16 ms here); `durability: 'normal'` trades that for speed
      // where the disk or a replicated volume already gives the guarantee.
      db.pragma(`synchronous = ${opts.durability === 'normal' ? 'NORMAL' : 'FULL'}`);
      db.pragma('foreign_keys = ON');
    } catch (e) {
      this.#db.close();
      throw storeError(e, path);
    }
  }

  #run<T>(fn: () => T): Promise<T> {
    if (this.#closed) {
      return Promise.reject(
        new MtlsError('MTLS_STORE_UNAVAILABLE', `The SQLite store ${this.#path} is closed.`),
      );
    }
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(storeError(e, this.#path));
    }
  }

  get #stmts(): ReturnType<typeof prepareStatements> {
    this.#s ??= prepareStatements(this.#db);
    return this.#s;
  }

  /**
   * Group commit: writes requested in one event-loop turn share one BEGIN IMMEDIATE transaction and
   * one fsync. Each runs in its own savepoint (a nested better-sqlite3 transaction), so a failing or
   * Rollback-ed write undoes only itself; every promise settles only after the shared COMMIT, so an
   * answer is never given for something not yet durable ("store before you answer").
   */
  #write<T>(fn: () => T): Promise<T> {
    if (this.#closed) return this.#run(fn);
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #queue: { fn: () => unknown; resolve: (v: unknown) => void; reject: (e: unknown) => void }[] = [];
  #flushScheduled = false;

  #flush(): void {
    this.#flushScheduled = false;
    const batch = this.#queue.splice(0, MAX_GROUP);
    if (this.#queue.length) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
    if (batch.length === 0) return;
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      if (this.#closed)
        throw new MtlsError('MTLS_STORE_UNAVAILABLE', `The SQLite store ${this.#path} is closed.`);
      this.#db
        .transaction(() => {
          for (const op of batch) {
            try {
              outcomes.push({ ok: true, value: this.#db.transaction(op.fn)() });
            } catch (e) {
              outcomes.push(
                e instanceof Rollback ? { ok: true, value: e.value as unknown } : { ok: false, error: e },
              );
            }
          }
        })
        .immediate();
    } catch (e) {
      // The shared transaction (or its COMMIT) failed: nothing of the batch is stored.
      const err = e instanceof MtlsError ? e : storeError(e, this.#path);
      for (const op of batch) op.reject(err);
      return;
    }
    batch.forEach((op, i) => {
      const o = outcomes[i]!;
      if (o.ok) op.resolve(o.value);
      else op.reject(o.error instanceof MtlsError ? o.error : storeError(o.error, this.#path));
    });
  }

  #appendAudit(input: AuditInput): AuditRecord {
    const s = this.#stmts;
    const head = s.bumpHead.get('audit') as { seq: number; hash: string };
    const record = nextAuditRecord({ seq: head.seq - 1, hash: head.hash }, input);
    s.insertAudit.run(
      record.seq,
      record.at.getTime(),
      record.action,
      record.actor,
      record.outcome,
      record.reason ?? null,
      JSON.stringify(record.data),
      record.prevHash,
      record.hash,
    );
    s.setHeadHash.run(record.hash, 'audit');
    return record;
  }

  migrate(): Promise<void> {
    return this.#run(() => {
      const db = this.#db;
      try {
        db.transaction(() => {
          db.exec(
            'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
          );
          const applied = new Set(
            (db.prepare('SELECT version FROM schema_migrations').all() as Array<{ version: number }>).map(
              (r) => r.version,
            ),
          );
          const record = db.prepare(
            'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
          );
          for (const m of MIGRATIONS) {
            if (applied.has(m.version)) continue;
            db.exec(m.sql);
            record.run(m.version, m.name, Date.now());
          }
        }).immediate();
      } catch (e) {
        const mapped = storeError(e, this.#path);
        if (mapped instanceof MtlsError) throw mapped;
        throw new MtlsError('MTLS_STORE_MIGRATION', `Cannot create or upgrade the schema of ${this.#path}.`, {
          cause: e,
          details: { path: this.#path },
        });
      }
      this.#s = undefined;
    });
  }

  ping(): Promise<void> {
    return this.#run(() => {
      this.#db.prepare('SELECT 1').get();
    });
  }

  close(): Promise<void> {
    if (!this.#closed) {
      // Writes already accepted are committed (and answered) before the database closes.
      while (this.#queue.length) this.#flush();
      this.#closed = true;
      this.#db.close();
    }
    return Promise.resolve();
  }

  createToken(token: TokenRecord, audit: AuditInput): Promise<AuditRecord> {
    return this.#write(() => {
      checkToken(token);
      const changes = this.#stmts.insertToken.run(
        token.hash,
        token.id,
        JSON.stringify(token.grant),
        token.createdBy,
        token.createdAt.getTime(),
        token.expiresAt.getTime(),
      ).changes;
      if (changes !== 1) {
        throw new MtlsError(
          'MTLS_STORE_BAD_RECORD',
          `A token with id ${token.id} or the same hash already exists.`,
        );
      }
      return this.#appendAudit(audit);
    });
  }

  getToken(hash: string): Promise<TokenRecord | undefined> {
    return this.#run(() => {
      const row = this.#stmts.getToken.get(hash) as TokenRow | undefined;
      return row && tokenFromRow(row);
    });
  }

  recordIssuance(op: {
    tokenHash?: string;
    now: Date;
    certificate: CertificateRecord;
    audit: AuditInput;
  }): Promise<IssuanceOutcome> {
    return this.#write((): IssuanceOutcome => {
      const now = checkDate(op.now, 'now');
      const c = op.certificate;
      checkCertificate(c);
      const s = this.#stmts;
      // The certificate goes in before the token is consumed: tokens.used_by_serial references
      // certificates(serial) (deferred) and has no index, so inserting a certificate while that
      // reference is still dangling makes SQLite scan the whole tokens table to settle it (about
      // 0.25 ms per issuance at 17,000 tokens, growing with the table). In this order the reference
      // is checked by a primary-key lookup. Either failure rolls the whole transaction back.
      const inserted = s.insertCertificate.run(
        c.serial,
        c.issuerKeyId,
        c.profile,
        c.identity,
        c.subject,
        JSON.stringify(c.sans),
        c.notBefore.getTime(),
        c.notAfter.getTime(),
        c.der,
        c.status,
        c.createdAt.getTime(),
        c.renewedFrom ?? null,
      ).changes;
      if (op.tokenHash !== undefined) {
        // The conditional UPDATE is the single-use check: its change count decides.
        if (s.consumeToken.run(now, c.serial, op.tokenHash, now).changes !== 1) {
          const t = s.tokenState.get(op.tokenHash) as
            { used_at: number | null; expires_at: number } | undefined;
          const reason = !t ? 'token_unknown' : t.used_at !== null ? 'token_used' : 'token_expired';
          throw new Rollback<IssuanceOutcome>({ ok: false, reason });
        }
      }
      if (inserted !== 1) throw new Rollback<IssuanceOutcome>({ ok: false, reason: 'serial_exists' });
      return { ok: true, audit: this.#appendAudit(op.audit) };
    });
  }

  getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    return this.#run(() => {
      const row = this.#stmts.getCertificate.get(serial) as CertificateRow | undefined;
      return row && certificateFromRow(row);
    });
  }

  listCertificates(filter: CertificateFilter): Promise<CertificateRecord[]> {
    return this.#run(() => {
      const where: string[] = [];
      const params: Array<string | number> = [];
      if (filter.identity !== undefined) {
        where.push('identity = ?');
        params.push(filter.identity);
      }
      if (filter.profile !== undefined) {
        where.push('profile = ?');
        params.push(filter.profile);
      }
      if (filter.expiringBefore !== undefined) {
        where.push('not_after < ?');
        params.push(checkDate(filter.expiringBefore, 'expiringBefore'));
      }
      if (filter.now !== undefined) {
        where.push('not_after > ?');
        params.push(checkDate(filter.now, 'now'));
      }
      if (filter.revoked !== undefined)
        where.push(filter.revoked ? "status = 'revoked'" : "status = 'valid'");
      if (filter.afterSerial !== undefined) {
        where.push('serial > ?');
        params.push(filter.afterSerial);
      }
      params.push(listLimit(filter.limit));
      const sql = `SELECT ${CERT_COLUMNS} FROM certificates${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY serial LIMIT ?`;
      // At most 2^6 shapes of query: keep them prepared.
      let stmt = this.#listStmts.get(sql);
      if (!stmt) {
        stmt = this.#db.prepare(sql);
        this.#listStmts.set(sql, stmt);
      }
      return (stmt.all(...params) as CertificateRow[]).map(certificateFromRow);
    });
  }

  recordRevocation(op: {
    serial: string;
    at: Date;
    reason: CrlReason;
    audit: AuditInput;
  }): Promise<RevocationOutcome> {
    return this.#write((): RevocationOutcome => {
      const at = checkDate(op.at, 'Revocation time');
      checkSerial(op.serial);
      const s = this.#stmts;
      if (s.revoke.run(at, op.reason, op.serial).changes !== 1) {
        const exists = s.getStatus.get(op.serial) !== undefined;
        throw new Rollback<RevocationOutcome>({
          ok: false,
          reason: exists ? 'already_revoked' : 'unknown_serial',
        });
      }
      const { seq } = s.bumpHead.get('revocation') as { seq: number };
      s.insertRevocation.run(seq, op.serial, at, op.reason);
      const event: RevocationEvent = { seq, serial: op.serial, revokedAt: new Date(at), reason: op.reason };
      return { ok: true, event, audit: this.#appendAudit(op.audit) };
    });
  }

  revocationsSince(since: number, limit?: number): Promise<RevocationEvent[]> {
    return this.#run(() =>
      (this.#stmts.revocationsSince.all(checkSince(since), listLimit(limit)) as RevocationRow[]).map(
        eventFromRow,
      ),
    );
  }

  lastRevocationSeq(): Promise<number> {
    return this.#run(() => (this.#stmts.getHead.get('revocation') as { seq: number }).seq);
  }

  nextCrlNumber(): Promise<bigint> {
    return this.#write(() => BigInt((this.#stmts.bumpHead.get('crl_number') as { seq: number }).seq));
  }

  appendAudit(input: AuditInput): Promise<AuditRecord> {
    return this.#write(() => this.#appendAudit(input));
  }

  listAudit(since: number, limit?: number): Promise<AuditRecord[]> {
    return this.#run(() =>
      (this.#stmts.listAudit.all(checkSince(since), listLimit(limit)) as AuditRow[]).map(auditFromRow),
    );
  }
}

function prepareStatements(db: Database.Database) {
  return {
    insertToken: db.prepare(
      'INSERT INTO tokens (hash, id, grant_json, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    ),
    getToken: db.prepare('SELECT * FROM tokens WHERE hash = ?'),
    consumeToken: db.prepare(
      'UPDATE tokens SET used_at = ?, used_by_serial = ? WHERE hash = ? AND used_at IS NULL AND expires_at > ?',
    ),
    tokenState: db.prepare('SELECT used_at, expires_at FROM tokens WHERE hash = ?'),
    insertCertificate: db.prepare(
      `INSERT INTO certificates (${CERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?) ON CONFLICT (serial) DO NOTHING`,
    ),
    getCertificate: db.prepare(`SELECT ${CERT_COLUMNS} FROM certificates WHERE serial = ?`),
    getStatus: db.prepare('SELECT status FROM certificates WHERE serial = ?'),
    revoke: db.prepare(
      "UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ? WHERE serial = ? AND status = 'valid'",
    ),
    insertRevocation: db.prepare(
      'INSERT INTO revocations (seq, serial, revoked_at, reason) VALUES (?, ?, ?, ?)',
    ),
    revocationsSince: db.prepare('SELECT * FROM revocations WHERE seq > ? ORDER BY seq LIMIT ?'),
    getHead: db.prepare('SELECT seq, hash FROM heads WHERE name = ?'),
    /** Increments a head and answers the new seq with the hash it had (the previous record's). */
    bumpHead: db.prepare('UPDATE heads SET seq = seq + 1 WHERE name = ? RETURNING seq, hash'),
    setHeadHash: db.prepare('UPDATE heads SET hash = ? WHERE name = ?'),
    insertAudit: db.prepare(
      'INSERT INTO audit (seq, at, action, actor, outcome, reason, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    ),
    listAudit: db.prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?'),
  };
}
