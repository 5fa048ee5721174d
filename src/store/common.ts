// Checks and helpers shared by the SQLite and PostgreSQL stores (not exported from the folder).
import { MtlsError } from '../errors/index.js';
import type { CertificateRecord, TokenRecord } from './types.js';

/** listCertificates returns at most this many rows when the filter sets no limit. */
export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 10_000;

const SERIAL = /^[0-9a-f]+$/;

export function checkDate(d: Date, what: string): number {
  const t = d instanceof Date ? d.getTime() : Number.NaN;
  if (!Number.isFinite(t)) throw new MtlsError('MTLS_STORE_BAD_RECORD', `${what} is not a valid date.`);
  return t;
}

export function checkSerial(serial: string): void {
  if (!SERIAL.test(serial)) {
    throw new MtlsError('MTLS_STORE_BAD_RECORD', `Serial "${serial.slice(0, 80)}" is not lowercase hex.`, {
      fix: 'Store serials as Certificate.serial gives them: lowercase hex without leading zeros.',
    });
  }
}

export function checkCertificate(c: CertificateRecord): void {
  checkSerial(c.serial);
  if (c.status !== 'valid') {
    throw new MtlsError(
      'MTLS_STORE_BAD_RECORD',
      'A certificate is recorded as valid; revoke it with recordRevocation.',
    );
  }
  checkDate(c.notBefore, 'notBefore');
  checkDate(c.notAfter, 'notAfter');
  checkDate(c.createdAt, 'createdAt');
  if (c.renewedFrom !== undefined) checkSerial(c.renewedFrom);
}

export function checkToken(t: TokenRecord): void {
  checkDate(t.createdAt, 'Token createdAt');
  checkDate(t.expiresAt, 'Token expiresAt');
  if (t.usedAt !== undefined || t.usedBySerial !== undefined) {
    throw new MtlsError('MTLS_STORE_BAD_RECORD', 'A new token cannot be already used.');
  }
}

export function listLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 0)
    throw new MtlsError('MTLS_STORE_BAD_RECORD', 'limit must be a non-negative integer.');
  return Math.min(limit, MAX_LIST_LIMIT);
}

export function checkSince(since: number): number {
  if (!Number.isInteger(since) || since < 0)
    throw new MtlsError('MTLS_STORE_BAD_RECORD', 'since must be a non-negative integer.');
  return since;
}

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
  }
}
