// The shared store for several CA replicas: PostgreSQL through a pg Pool. Every write is one
// transaction on one client; what must be unique or gap-free across replicas is decided by row locks.
import pg from 'pg';
import { MtlsError } from '../errors/index.js';
import type { CrlReason, ProfileName } from '../pki/index.js';
import { nextAuditRecord } from './audit.js';
import {
  checkCertificate,
  checkDate,
  checkSerial,
  checkSince,
  checkToken,
  listLimit,
  redactUrl,
} from './common.js';
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

export interface PostgresStoreOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Give up connecting after this long (default 5000 ms): an unreachable host must not hang a request. */
  connectionTimeoutMs?: number;
  /** Close idle connections after this long (default 30 000 ms). */
  idleTimeoutMs?: number;
  /** Client-side limit for one query (default: none). */
  queryTimeoutMs?: number;
  /** Receives errors of idle pooled connections (the server restarted, the network dropped). */
  onIdleError?: (e: Error) => void;
}

/** Ordered schema versions; never edit one that shipped, append a new one. */
const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE certificates (
  serial text COLLATE "C" PRIMARY KEY,
  issuer_key_id text NOT NULL,
  profile text NOT NULL,
  identity text NOT NULL,
  subject text NOT NULL,
  sans text[] NOT NULL,
  not_before timestamptz NOT NULL,
  not_after timestamptz NOT NULL,
  der bytea NOT NULL,
  status text NOT NULL CHECK (status IN ('valid', 'revoked')),
  revoked_at timestamptz,
  revocation_reason text,
  created_at timestamptz NOT NULL,
  renewed_from text COLLATE "C",
  CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX certificates_identity ON certificates (identity, serial);
CREATE INDEX certificates_profile ON certificates (profile, serial);
CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked ON certificates (serial) WHERE status = 'revoked';
CREATE TABLE tokens (
  hash text PRIMARY KEY,
  id text NOT NULL UNIQUE,
  grant_json jsonb NOT NULL,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  used_by_serial text COLLATE "C" REFERENCES certificates (serial) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE revocations (
  seq bigint PRIMARY KEY,
  serial text COLLATE "C" NOT NULL REFERENCES certificates (serial),
  revoked_at timestamptz NOT NULL,
  reason text NOT NULL
);
CREATE INDEX revocations_serial ON revocations (serial);
CREATE TABLE audit (
  seq bigint PRIMARY KEY,
  at timestamptz NOT NULL,
  action text NOT NULL,
  actor text NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('ok', 'refused')),
  reason text,
  data text NOT NULL,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
-- One row per gap-free counter. Appending takes the row lock (UPDATE … RETURNING) and keeps it to
-- COMMIT, so replicas append one after the other and a rollback gives the number back.
CREATE TABLE heads (
  name text PRIMARY KEY,
  seq bigint NOT NULL,
  hash text NOT NULL DEFAULT ''
);
INSERT INTO heads (name, seq) VALUES ('audit', 0), ('revocation', 0);
-- CRL numbers need to increase, not to be gap-free: a sequence never blocks a writer.
CREATE SEQUENCE crl_number AS bigint START 1;
`,
  },
];

/** Key of the session advisory lock that serializes migrations across replicas ("mtlskit" in ASCII). */
const MIGRATION_LOCK = 0x6d746c736b6974n;

interface CertificateRow {
  serial: string;
  issuer_key_id: string;
  profile: string;
  identity: string;
  subject: string;
  sans: string[];
  not_before: Date;
  not_after: Date;
  der: Buffer;
  status: 'valid' | 'revoked';
  revoked_at: Date | null;
  revocation_reason: string | null;
  created_at: Date;
  renewed_from: string | null;
}

interface TokenRow {
  hash: string;
  id: string;
  grant_json: TokenRecord['grant'];
  created_by: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
  used_by_serial: string | null;
}

interface AuditRow {
  seq: string;
  at: Date;
  action: string;
  actor: string;
  outcome: 'ok' | 'refused';
  reason: string | null;
  data: string;
  prev_hash: string;
  hash: string;
}

interface RevocationRow {
  seq: string;
  serial: string;
  revoked_at: Date;
  reason: string;
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
    sans: r.sans,
    notBefore: r.not_before,
    notAfter: r.not_after,
    der: r.der,
    status: r.status,
    createdAt: r.created_at,
  };
  if (r.revoked_at !== null) c.revokedAt = r.revoked_at;
  if (r.revocation_reason !== null) c.revocationReason = r.revocation_reason as CrlReason;
  if (r.renewed_from !== null) c.renewedFrom = r.renewed_from;
  return c;
}

function tokenFromRow(r: TokenRow): TokenRecord {
  const t: TokenRecord = {
    id: r.id,
    hash: r.hash,
    grant: r.grant_json,
    createdBy: r.created_by,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  };
  if (r.used_at !== null) t.usedAt = r.used_at;
  if (r.used_by_serial !== null) t.usedBySerial = r.used_by_serial;
  return t;
}

function auditFromRow(r: AuditRow): AuditRecord {
  const a: AuditRecord = {
    seq: Number(r.seq),
    at: r.at,
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
  return { seq: Number(r.seq), serial: r.serial, revokedAt: r.revoked_at, reason: r.reason as CrlReason };
}

/** Thrown inside a transaction to roll it back and answer `value` (an expected outcome, not a failure). */
class Rollback<T> extends Error {
  constructor(readonly value: T) {
    super('rollback');
  }
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/**
 * True for failures of the connection or the server rather than of the statement: socket errors,
 * pg's "Connection terminated" / connection timeout, SQLSTATE class 08 (connection exception),
 * 57P01-57P03 (shutdown, crash, starting up), 53300 (too many connections), 3D000 (no such database)
 * and 28xxx (authentication).
 */
function isConnectionError(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return true;
    if (/^(08|28)/.test(code) || ['57P01', '57P02', '57P03', '53300', '3D000'].includes(code)) return true;
  }
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/i.test(
    e.message,
  );
}

/** Deadlock or serialization failure: the whole transaction can be run again. */
function isRetryable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === '40001' || code === '40P01';
}

export function createPostgresStore(url: string, opts: PostgresStoreOptions = {}): Store {
  return new PostgresStore(url, opts);
}

class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #where: string;
  #closed = false;

  constructor(url: string, opts: PostgresStoreOptions) {
    this.#where = redactUrl(url);
    this.#pool = new pg.Pool({
      connectionString: url,
      max: opts.max ?? 10,
      connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5000,
      idleTimeoutMillis: opts.idleTimeoutMs ?? 30_000,
      ...(opts.queryTimeoutMs ? { query_timeout: opts.queryTimeoutMs } : {}),
      keepAlive: true,
      application_name: 'mtlskit-ca',
    });
    // An idle pooled connection that breaks (server restart, network drop) is reported here; without
    // a listener the pool would throw it as an uncaught 'error' event. The pool drops that client
    // and opens a fresh one on the next request, which is how the store recovers.
    this.#pool.on('error', (e) => opts.onIdleError?.(e));
  }

  #error(e: unknown): unknown {
    if (e instanceof MtlsError || e instanceof Rollback) return e;
    if (isConnectionError(e)) {
      const code = (e as { code?: unknown }).code;
      return new MtlsError(
        'MTLS_STORE_UNAVAILABLE',
        `The PostgreSQL database at ${this.#where} cannot be reached.`,
        {
          cause: e,
          fix:
            code === '3D000' || (typeof code === 'string' && code.startsWith('28'))
              ? 'Check the database name, user and password in the --db URL.'
              : 'Check that PostgreSQL is running and reachable from the CA; the CA reconnects by itself when it is back.',
          details: { url: this.#where, ...(typeof code === 'string' ? { pgCode: code } : {}) },
        },
      );
    }
    return e;
  }

  #unavailableIfClosed(): void {
    if (this.#closed)
      throw new MtlsError('MTLS_STORE_UNAVAILABLE', `The PostgreSQL store for ${this.#where} is closed.`);
  }

  async #query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> {
    this.#unavailableIfClosed();
    try {
      return (await this.#pool.query<R>(sql, params)).rows;
    } catch (e) {
      throw this.#error(e);
    }
  }

  /** BEGIN … COMMIT on one client; a Rollback answers its value; deadlocks are retried. */
  async #tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    this.#unavailableIfClosed();
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient;
      try {
        client = await this.#pool.connect();
      } catch (e) {
        throw this.#error(e);
      }
      let broken = false;
      // A checked-out client has no listener of the pool: an error the server sends between two
      // statements (57P01 on shutdown) or a dropped socket would be an uncaught 'error' event that
      // kills the CA. Note it instead; the next statement fails with it and the client is destroyed.
      const onError = (): void => {
        broken = true;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const value = await fn(client);
        await client.query('COMMIT');
        return value;
      } catch (e) {
        if (isConnectionError(e)) {
          broken = true;
        } else {
          try {
            await client.query('ROLLBACK');
          } catch {
            broken = true;
          }
        }
        if (e instanceof Rollback) return e.value as T;
        if (!broken && isRetryable(e) && attempt < 3) continue;
        throw this.#error(e);
      } finally {
        client.removeListener('error', onError);
        // A broken client is destroyed instead of going back to the pool.
        client.release(broken);
      }
    }
  }

  async #appendAudit(c: pg.PoolClient, input: AuditInput): Promise<AuditRecord> {
    // The row lock on the 'audit' head, held until COMMIT, orders appends across replicas: the next
    // appender waits here and then reads the head this transaction wrote. Taken last in every
    // transaction (after token, certificate and revocation rows) so the lock order never cycles.
    const head = (
      await c.query<{ seq: string; hash: string }>(
        "UPDATE heads SET seq = seq + 1 WHERE name = 'audit' RETURNING seq, hash",
      )
    ).rows[0]!;
    const record = nextAuditRecord({ seq: Number(head.seq) - 1, hash: head.hash }, input);
    await c.query(
      `WITH appended AS (
         INSERT INTO audit (seq, at, action, actor, outcome, reason, data, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       )
       UPDATE heads SET hash = $9 WHERE name = 'audit'`,
      [
        record.seq,
        record.at,
        record.action,
        record.actor,
        record.outcome,
        record.reason ?? null,
        JSON.stringify(record.data),
        record.prevHash,
        record.hash,
      ],
    );
    return record;
  }

  async migrate(): Promise<void> {
    this.#unavailableIfClosed();
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw this.#error(e);
    }
    let broken = false;
    const onError = (): void => {
      broken = true; // as in #tx: an error between statements must not be an uncaught 'error' event
    };
    client.on('error', onError);
    try {
      // A session advisory lock: a second replica starting at the same moment waits here, then finds
      // every version applied. Each version is applied in its own transaction with its bookkeeping row.
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
      try {
        await client.query(
          'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
        );
        const applied = new Set(
          (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
            (r) => r.version,
          ),
        );
        for (const m of MIGRATIONS) {
          if (applied.has(m.version)) continue;
          await client.query('BEGIN');
          try {
            await client.query(m.sql);
            await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
              m.version,
              m.name,
            ]);
            await client.query('COMMIT');
          } catch (e) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw e;
          }
        }
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]).catch(() => {
          broken = true; // the session ends with the client, which releases the lock
        });
      }
    } catch (e) {
      if (isConnectionError(e)) {
        broken = true;
        throw this.#error(e);
      }
      throw new MtlsError('MTLS_STORE_MIGRATION', `Cannot create or upgrade the schema at ${this.#where}.`, {
        cause: e,
        fix: 'Check that the database user may create tables and sequences in the schema of the --db URL.',
        details: { url: this.#where },
      });
    } finally {
      client.removeListener('error', onError);
      client.release(broken);
    }
  }

  async ping(): Promise<void> {
    await this.#query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  async createToken(token: TokenRecord, audit: AuditInput): Promise<AuditRecord> {
    checkToken(token);
    checkDate(audit.at, 'Audit time');
    return this.#tx(async (c) => {
      const r = await c.query(
        `INSERT INTO tokens (hash, id, grant_json, created_by, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        [
          token.hash,
          token.id,
          JSON.stringify(token.grant),
          token.createdBy,
          token.createdAt,
          token.expiresAt,
        ],
      );
      if (r.rowCount !== 1) {
        throw new MtlsError(
          'MTLS_STORE_BAD_RECORD',
          `A token with id ${token.id} or the same hash already exists.`,
        );
      }
      return this.#appendAudit(c, audit);
    });
  }

  async getToken(hash: string): Promise<TokenRecord | undefined> {
    const [row] = await this.#query<TokenRow>('SELECT * FROM tokens WHERE hash = $1', [hash]);
    return row && tokenFromRow(row);
  }

  async recordIssuance(op: {
    tokenHash?: string;
    now: Date;
    certificate: CertificateRecord;
    audit: AuditInput;
  }): Promise<IssuanceOutcome> {
    checkDate(op.now, 'now');
    checkDate(op.audit.at, 'Audit time');
    const cert = op.certificate;
    checkCertificate(cert);
    return this.#tx(async (c): Promise<IssuanceOutcome> => {
      if (op.tokenHash !== undefined) {
        // Single use across replicas: a concurrent consumer blocks on the row lock, then re-checks
        // `used_at IS NULL` against the committed row and updates nothing.
        const used = await c.query(
          'UPDATE tokens SET used_at = $1, used_by_serial = $2 WHERE hash = $3 AND used_at IS NULL AND expires_at > $1',
          [op.now, cert.serial, op.tokenHash],
        );
        if (used.rowCount !== 1) {
          const [t] = (
            await c.query<{ used: boolean }>(
              'SELECT used_at IS NOT NULL AS used FROM tokens WHERE hash = $1',
              [op.tokenHash],
            )
          ).rows;
          throw new Rollback<IssuanceOutcome>({
            ok: false,
            reason: !t ? 'token_unknown' : t.used ? 'token_used' : 'token_expired',
          });
        }
      }
      const inserted = await c.query(
        `INSERT INTO certificates (${CERT_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, NULL, $11, $12) ON CONFLICT (serial) DO NOTHING`,
        [
          cert.serial,
          cert.issuerKeyId,
          cert.profile,
          cert.identity,
          cert.subject,
          cert.sans,
          cert.notBefore,
          cert.notAfter,
          cert.der,
          cert.status,
          cert.createdAt,
          cert.renewedFrom ?? null,
        ],
      );
      if (inserted.rowCount !== 1)
        throw new Rollback<IssuanceOutcome>({ ok: false, reason: 'serial_exists' });
      return { ok: true, audit: await this.#appendAudit(c, op.audit) };
    });
  }

  async getCertificate(serial: string): Promise<CertificateRecord | undefined> {
    const [row] = await this.#query<CertificateRow>(
      `SELECT ${CERT_COLUMNS} FROM certificates WHERE serial = $1`,
      [serial],
    );
    return row && certificateFromRow(row);
  }

  async listCertificates(filter: CertificateFilter): Promise<CertificateRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    const param = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    if (filter.identity !== undefined) where.push(`identity = ${param(filter.identity)}`);
    if (filter.profile !== undefined) where.push(`profile = ${param(filter.profile)}`);
    if (filter.expiringBefore !== undefined) {
      checkDate(filter.expiringBefore, 'expiringBefore');
      where.push(`not_after < ${param(filter.expiringBefore)}`);
    }
    if (filter.now !== undefined) {
      checkDate(filter.now, 'now');
      where.push(`not_after > ${param(filter.now)}`);
    }
    if (filter.revoked !== undefined) where.push(filter.revoked ? "status = 'revoked'" : "status = 'valid'");
    if (filter.afterSerial !== undefined) where.push(`serial > ${param(filter.afterSerial)}`);
    const limit = param(listLimit(filter.limit));
    const rows = await this.#query<CertificateRow>(
      `SELECT ${CERT_COLUMNS} FROM certificates${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY serial LIMIT ${limit}`,
      params,
    );
    return rows.map(certificateFromRow);
  }

  async recordRevocation(op: {
    serial: string;
    at: Date;
    reason: CrlReason;
    audit: AuditInput;
  }): Promise<RevocationOutcome> {
    checkDate(op.at, 'Revocation time');
    checkDate(op.audit.at, 'Audit time');
    checkSerial(op.serial);
    return this.#tx(async (c): Promise<RevocationOutcome> => {
      const revoked = await c.query(
        "UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 WHERE serial = $3 AND status = 'valid'",
        [op.at, op.reason, op.serial],
      );
      if (revoked.rowCount !== 1) {
        const exists =
          (await c.query('SELECT 1 FROM certificates WHERE serial = $1', [op.serial])).rowCount === 1;
        throw new Rollback<RevocationOutcome>({
          ok: false,
          reason: exists ? 'already_revoked' : 'unknown_serial',
        });
      }
      // Gap-free and shared: the 'revocation' head row is locked to COMMIT, so event n+1 cannot
      // become visible before event n.
      const head = (
        await c.query<{ seq: string }>(
          "UPDATE heads SET seq = seq + 1 WHERE name = 'revocation' RETURNING seq",
        )
      ).rows[0]!;
      const seq = Number(head.seq);
      await c.query('INSERT INTO revocations (seq, serial, revoked_at, reason) VALUES ($1, $2, $3, $4)', [
        seq,
        op.serial,
        op.at,
        op.reason,
      ]);
      const event: RevocationEvent = {
        seq,
        serial: op.serial,
        revokedAt: new Date(op.at.getTime()),
        reason: op.reason,
      };
      return { ok: true, event, audit: await this.#appendAudit(c, op.audit) };
    });
  }

  async revocationsSince(since: number, limit?: number): Promise<RevocationEvent[]> {
    const rows = await this.#query<RevocationRow>(
      'SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2',
      [checkSince(since), listLimit(limit)],
    );
    return rows.map(eventFromRow);
  }

  async lastRevocationSeq(): Promise<number> {
    const [row] = await this.#query<{ seq: string }>("SELECT seq FROM heads WHERE name = 'revocation'");
    return Number(row?.seq ?? 0);
  }

  async nextCrlNumber(): Promise<bigint> {
    const [row] = await this.#query<{ n: string }>("SELECT nextval('crl_number') AS n");
    return BigInt(row!.n);
  }

  async appendAudit(input: AuditInput): Promise<AuditRecord> {
    checkDate(input.at, 'Audit time');
    return this.#tx((c) => this.#appendAudit(c, input));
  }

  async listAudit(since: number, limit?: number): Promise<AuditRecord[]> {
    const rows = await this.#query<AuditRow>('SELECT * FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2', [
      checkSince(since),
      listLimit(limit),
    ]);
    return rows.map(auditFromRow);
  }
}
