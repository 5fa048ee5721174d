// The CA's state, behind one interface with two implementations: SQLite (embedded default, WAL)
// and PostgreSQL (several CA replicas sharing state). Every operation that changes state also
// appends its audit record in the same transaction: "store before you answer".
import type { CrlReason, ProfileName } from '../pki/index.js';

/** What a one-time enrollment token allows. Stored as JSON; matched by the authority, not here. */
export interface TokenGrant {
  profile: ProfileName;
  /** Exact subject CN the certificate must carry (optional). */
  commonName?: string;
  /** Allowed SANs: exact values or globs (`*.svc.example.org`, `spiffe://example.org/ns/prod/*`), as "dns:…", "ip:…", "uri:…", "email:…". */
  sans: string[];
  /** Upper bound for the certificate's lifetime. */
  maxTtlMs: number;
}

export interface TokenRecord {
  /** Public identifier (shown in audit and lists); never the secret. */
  id: string;
  /** SHA-256 (hex) of the secret part of the token; the secret itself is never stored. */
  hash: string;
  grant: TokenGrant;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt?: Date;
  usedBySerial?: string;
}

export type CertificateStatus = 'valid' | 'revoked';

export interface CertificateRecord {
  /** Lowercase hex without leading zeros, the same convention as Certificate.serial. Unique. */
  serial: string;
  /** Hex SKI of the issuing CA (several intermediates over time). */
  issuerKeyId: string;
  profile: ProfileName;
  /** The primary identity: the SPIFFE ID, else the first DNS SAN, else the CN. */
  identity: string;
  subject: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
  der: Buffer;
  status: CertificateStatus;
  revokedAt?: Date;
  revocationReason?: CrlReason;
  createdAt: Date;
  /** Serial of the certificate this one renewed. */
  renewedFrom?: string;
}

export interface AuditInput {
  at: Date;
  /** token.create, certificate.issue, certificate.renew, certificate.revoke, request.refuse, … */
  action: string;
  /** Who asked: "admin:<identity>", "token:<id>", "cert:<serial>", "anonymous". */
  actor: string;
  outcome: 'ok' | 'refused';
  /** Machine-readable refusal reason (an MTLS_* code or a reason from the catalog). */
  reason?: string;
  /** Facts for the record (serial, identity, request id …); never secrets or keys. */
  data: Record<string, unknown>;
}

export interface AuditRecord extends AuditInput {
  /** 1, 2, 3 … without gaps. */
  seq: number;
  /** SHA-256 hex of the previous record's hash and this record's canonical JSON ("" before the first). */
  prevHash: string;
  hash: string;
}

export interface RevocationEvent {
  /** Increasing, without gaps, shared by all replicas: the feed cursor (`/v1/revocations?since=N`). */
  seq: number;
  serial: string;
  revokedAt: Date;
  reason: CrlReason;
}

export interface CertificateFilter {
  /** Exact identity. */
  identity?: string;
  profile?: ProfileName;
  /** notAfter before this time (and not yet expired when `now` is also given). */
  expiringBefore?: Date;
  now?: Date;
  revoked?: boolean;
  limit?: number;
  /** Keyset pagination: serials after this one, in serial order. */
  afterSerial?: string;
}

export type IssuanceOutcome =
  | { ok: true; audit: AuditRecord }
  | { ok: false; reason: 'token_unknown' | 'token_used' | 'token_expired' | 'serial_exists' };

export type RevocationOutcome =
  | { ok: true; event: RevocationEvent; audit: AuditRecord }
  | { ok: false; reason: 'unknown_serial' | 'already_revoked' };

export interface Store {
  /** "sqlite" or "postgres", for logs and /v1/ready. */
  readonly kind: 'sqlite' | 'postgres';
  /** Creates or upgrades the schema; safe to run concurrently from several replicas. */
  migrate(): Promise<void>;
  /** Throws MTLS_STORE_UNAVAILABLE when the database cannot be reached. */
  ping(): Promise<void>;
  close(): Promise<void>;

  /** Stores a new token and its audit record atomically. */
  createToken(token: TokenRecord, audit: AuditInput): Promise<AuditRecord>;
  getToken(hash: string): Promise<TokenRecord | undefined>;

  /**
   * The issuance commit, in one transaction: if `tokenHash` is given, consume that token (it must
   * exist, be unused and unexpired at `now`: enforced by the database, also across replicas), insert
   * the certificate, append the audit record. Nothing is written when any step fails.
   */
  recordIssuance(op: {
    tokenHash?: string;
    now: Date;
    certificate: CertificateRecord;
    audit: AuditInput;
  }): Promise<IssuanceOutcome>;

  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  listCertificates(filter: CertificateFilter): Promise<CertificateRecord[]>;

  /** Marks the certificate revoked, appends a revocation event and the audit record, atomically. */
  recordRevocation(op: {
    serial: string;
    at: Date;
    reason: CrlReason;
    audit: AuditInput;
  }): Promise<RevocationOutcome>;
  /** Revocation events with seq > since, in order. */
  revocationsSince(since: number, limit?: number): Promise<RevocationEvent[]>;
  /** The highest revocation event seq (0 when none): replicas poll it to notice revocations made elsewhere. */
  lastRevocationSeq(): Promise<number>;

  /** Next CRL number (monotonic across replicas). */
  nextCrlNumber(): Promise<bigint>;

  /** Appends one audit record (refusals and other events that change nothing else). */
  appendAudit(input: AuditInput): Promise<AuditRecord>;
  /** Audit records with seq > since, in order. */
  listAudit(since: number, limit?: number): Promise<AuditRecord[]>;
}
