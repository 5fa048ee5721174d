// The audit hash chain, shared by both stores: the canonical JSON a record is hashed over, the hash
// itself, and the verifier behind `mtls ca audit verify`.
import { createHash } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import type { AuditInput, AuditRecord } from './types.js';

/**
 * JSON with object keys sorted (by UTF-16 code unit, recursively), Dates as ISO 8601 strings,
 * `undefined` members left out (as JSON.stringify does), bigints as decimal strings, and no
 * whitespace. Parsing the result and canonicalizing again gives the same text, so a record read
 * back from either database hashes exactly as it did when it was appended.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(normalize(value, new Set())) ?? 'null';
}

function normalize(value: unknown, seen: Set<object>): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return isoDate(value);
  if (typeof value !== 'object') return undefined; // functions, symbols, undefined
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (seen.has(value)) throw new MtlsError('MTLS_STORE_BAD_RECORD', 'Audit data contains a cycle.');
  seen.add(value);
  let out: unknown;
  if (Array.isArray(value)) {
    out = value.map((v) => normalize(v, seen) ?? null);
  } else {
    const obj: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = normalize((value as Record<string, unknown>)[key], seen);
      if (v !== undefined) obj[key] = v;
    }
    out = obj;
  }
  seen.delete(value);
  return out;
}

function isoDate(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new MtlsError('MTLS_STORE_BAD_RECORD', 'An audit date is invalid.');
  return d.toISOString();
}

/** The audit data as it will be stored and read back: plain JSON values only. */
export function normalizeAuditData(data: Record<string, unknown>): Record<string, unknown> {
  return JSON.parse(canonicalJson(data)) as Record<string, unknown>;
}

/** The canonical JSON of the hashed part of a record: seq and every AuditInput field. */
export function canonicalAuditJson(input: AuditInput, seq: number): string {
  return canonicalJson({
    seq,
    at: input.at,
    action: input.action,
    actor: input.actor,
    outcome: input.outcome,
    reason: input.reason ?? undefined,
    data: input.data,
  });
}

/** SHA-256 hex over the previous hash ("" before the first record; otherwise 64 hex) followed by the canonical JSON. */
export function auditHash(prevHash: string, input: AuditInput, seq: number): string {
  return createHash('sha256').update(prevHash).update(canonicalAuditJson(input, seq)).digest('hex');
}

/** The record to append after the chain head `{ seq, hash }` (`{ 0, "" }` for an empty log). */
export function nextAuditRecord(head: { seq: number; hash: string }, input: AuditInput): AuditRecord {
  const seq = head.seq + 1;
  const record: AuditRecord = {
    seq,
    at: new Date(input.at.getTime()),
    action: input.action,
    actor: input.actor,
    outcome: input.outcome,
    data: normalizeAuditData(input.data),
    prevHash: head.hash,
    hash: '',
  };
  if (input.reason !== undefined) record.reason = input.reason;
  isoDate(record.at);
  record.hash = auditHash(head.hash, record, seq);
  return record;
}

export type AuditChainProblem =
  /** The record's seq is not the one after its predecessor (a record was deleted or inserted). */
  | 'seq_gap'
  /** The record's prevHash is not its predecessor's hash. */
  | 'prev_hash_mismatch'
  /** The record's content does not hash to its stored hash (the record was modified). */
  | 'hash_mismatch';

export type AuditChainVerdict =
  | { ok: true; count: number; lastSeq: number; lastHash: string }
  | { ok: false; seq: number; problem: AuditChainProblem; message: string };

/**
 * Checks records in order. By default the chain must start at seq 1 with prevHash "". To verify page
 * by page, pass the previous page's `{ lastSeq, lastHash }` as `after`.
 * A chain cannot show that records were cut off its end: compare `lastSeq` with a count kept
 * elsewhere (a revocation feed, an exported checkpoint) when that matters.
 */
export function verifyAuditChain(
  records: readonly AuditRecord[],
  after: { seq: number; hash: string } = { seq: 0, hash: '' },
): AuditChainVerdict {
  let prevSeq = after.seq;
  let prevHash = after.hash;
  for (const r of records) {
    if (r.seq !== prevSeq + 1) {
      return {
        ok: false,
        seq: r.seq,
        problem: 'seq_gap',
        message: `record ${r.seq} follows record ${prevSeq}: ${prevSeq + 1} is missing or out of order`,
      };
    }
    if (r.prevHash !== prevHash) {
      return {
        ok: false,
        seq: r.seq,
        problem: 'prev_hash_mismatch',
        message: `record ${r.seq} does not carry the hash of record ${prevSeq}`,
      };
    }
    let expected: string;
    try {
      expected = auditHash(prevHash, r, r.seq);
    } catch {
      expected = '';
    }
    if (r.hash !== expected) {
      return {
        ok: false,
        seq: r.seq,
        problem: 'hash_mismatch',
        message: `record ${r.seq} was modified after it was written (its content does not match its hash)`,
      };
    }
    prevSeq = r.seq;
    prevHash = r.hash;
  }
  return { ok: true, count: records.length, lastSeq: prevSeq, lastHash: prevHash };
}
