// What `mtls doctor connect` reads off the wire, as pure parsers: TLS records (the plaintext part of
// the handshake: TLS 1.2's CertificateRequest with its acceptable CA names, plaintext alerts, the
// client's own flight), alert names (numbers and Node's error codes), and the HTTP answers of nginx
// and mtls proxy.
import { createDecipheriv, createHmac, type DecipherGCM } from 'node:crypto';
import { decodeName, formatName, read } from '../pki/index.js';

export interface TlsRecord {
  type: number;
  version: number;
  /** The record's payload (encrypted for TLS 1.3 after ServerHello, and after ChangeCipherSpec). */
  body: Buffer;
}

export const RECORD = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;
export const HANDSHAKE = { serverHello: 2, certificate: 11, certificateRequest: 13, serverHelloDone: 14 };

/** The complete records in a byte stream (a trailing partial record is ignored). */
export function parseRecords(bytes: Buffer): TlsRecord[] {
  const out: TlsRecord[] = [];
  let o = 0;
  while (o + 5 <= bytes.length) {
    const type = bytes[o]!;
    const len = bytes.readUInt16BE(o + 3);
    if (o + 5 + len > bytes.length) break;
    out.push({ type, version: bytes.readUInt16BE(o + 1), body: bytes.subarray(o + 5, o + 5 + len) });
    o += 5 + len;
  }
  return out;
}

/** True when the bytes cannot be the start of a TLS record stream (plain HTTP, SSH banner, …). */
export function looksLikeTls(bytes: Buffer): boolean {
  if (bytes.length === 0) return true;
  const t = bytes[0]!;
  if (t < 20 || t > 23) return false;
  return bytes.length < 2 || bytes[1] === 3;
}

/** The plaintext handshake messages: everything before the first ChangeCipherSpec / encrypted record. */
export function plaintextHandshake(records: readonly TlsRecord[]): { type: number; body: Buffer }[] {
  const parts: Buffer[] = [];
  for (const r of records) {
    if (r.type === RECORD.changeCipherSpec || r.type === RECORD.applicationData) break;
    if (r.type === RECORD.handshake) parts.push(r.body);
  }
  const buf = Buffer.concat(parts);
  const out: { type: number; body: Buffer }[] = [];
  let o = 0;
  while (o + 4 <= buf.length) {
    const len = buf.readUIntBE(o + 1, 3);
    if (o + 4 + len > buf.length) break;
    out.push({ type: buf[o]!, body: buf.subarray(o + 4, o + 4 + len) });
    o += 4 + len;
  }
  return out;
}

/** The negotiated version from a ServerHello (supported_versions wins over legacy_version). */
export function serverHelloVersion(body: Buffer): string | undefined {
  try {
    let o = 2 + 32; // legacy_version, random
    const sidLen = body[o]!;
    o += 1 + sidLen + 2 + 1; // session id, cipher suite, compression
    let version = body.readUInt16BE(0);
    if (o + 2 <= body.length) {
      const end = o + 2 + body.readUInt16BE(o);
      o += 2;
      while (o + 4 <= end) {
        const type = body.readUInt16BE(o);
        const len = body.readUInt16BE(o + 2);
        if (type === 43 && len === 2) version = body.readUInt16BE(o + 4);
        o += 4 + len;
      }
    }
    return VERSION_NAMES[version];
  } catch {
    return undefined;
  }
}

const VERSION_NAMES: Record<number, string> = {
  0x0301: 'TLSv1',
  0x0302: 'TLSv1.1',
  0x0303: 'TLSv1.2',
  0x0304: 'TLSv1.3',
};

/**
 * TLS 1.2's CertificateRequest (RFC 5246 7.4.4): certificate types, signature algorithms, then the
 * distinguished names of the CAs the server accepts (nginx sends the subjects of
 * ssl_client_certificate; openssl s_client prints them as "Acceptable client certificate CA names").
 */
export function parseCertificateRequest12(body: Buffer): { caNames: string[]; caNamesDer: Buffer[] } {
  let o = 0;
  const typesLen = body[o]!;
  o += 1 + typesLen;
  const sigLen = body.readUInt16BE(o);
  o += 2 + sigLen;
  const listLen = body.readUInt16BE(o);
  o += 2;
  const end = o + listLen;
  if (end > body.length) throw new Error('CertificateRequest: CA name list runs past the message');
  const caNamesDer: Buffer[] = [];
  while (o + 2 <= end) {
    const len = body.readUInt16BE(o);
    if (o + 2 + len > end) throw new Error('CertificateRequest: a CA name runs past the list');
    caNamesDer.push(body.subarray(o + 2, o + 2 + len));
    o += 2 + len;
  }
  return { caNamesDer, caNames: caNamesDer.map((d) => nameText(d)) };
}

/** TLS 1.2's Certificate message: a 3-byte list length, then each certificate with a 3-byte length. */
export function certificateList12(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  if (body.length < 3) return out;
  const end = Math.min(body.length, 3 + body.readUIntBE(0, 3));
  let o = 3;
  while (o + 3 <= end) {
    const len = body.readUIntBE(o, 3);
    if (o + 3 + len > end) break;
    out.push(body.subarray(o + 3, o + 3 + len));
    o += 3 + len;
  }
  return out;
}

const TLS13_SUITE_NAMES: Record<number, string> = {
  0x1301: 'TLS_AES_128_GCM_SHA256',
  0x1302: 'TLS_AES_256_GCM_SHA384',
  0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
};

/**
 * The TLS 1.3 cipher suite a ServerHello chose (its name as node:tls reports it), or undefined for
 * another suite or a malformed message. Needed when node:tls ended the connection before saying it.
 */
export function serverHelloCipher13(body: Buffer): string | undefined {
  try {
    const o = 2 + 32 + 1 + body[2 + 32]!;
    return TLS13_SUITE_NAMES[body.readUInt16BE(o)];
  } catch {
    return undefined;
  }
}

/**
 * TLS 1.3's Certificate message (RFC 8446 4.4.2): a request context, then a 3-byte list length and
 * each entry as a 3-byte DER length, the DER, and a 2-byte length of its extensions.
 */
export function certificateList13(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  if (body.length < 1) return out;
  let o = 1 + body[0]!;
  if (o + 3 > body.length) return out;
  const end = Math.min(body.length, o + 3 + body.readUIntBE(o, 3));
  o += 3;
  while (o + 3 <= end) {
    const len = body.readUIntBE(o, 3);
    if (o + 3 + len + 2 > end) break;
    out.push(body.subarray(o + 3, o + 3 + len));
    o += 3 + len;
    o += 2 + body.readUInt16BE(o);
  }
  return out;
}

/** A DER Name as text (CN=…, O=…), or its hex when it does not decode. */
export function nameText(d: Buffer): string {
  try {
    return formatName(decodeName(read(d)));
  } catch {
    return `(undecodable name ${d.toString('hex').slice(0, 40)})`;
  }
}

// ---------------------------------------------------------------- alerts

/** TLS alert descriptions (RFC 8446 6, RFC 5246 7.2) by number. */
export const ALERTS: Record<number, string> = {
  0: 'close_notify',
  10: 'unexpected_message',
  20: 'bad_record_mac',
  22: 'record_overflow',
  40: 'handshake_failure',
  42: 'bad_certificate',
  43: 'unsupported_certificate',
  44: 'certificate_revoked',
  45: 'certificate_expired',
  46: 'certificate_unknown',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  49: 'access_denied',
  50: 'decode_error',
  51: 'decrypt_error',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  86: 'inappropriate_fallback',
  90: 'user_canceled',
  109: 'missing_extension',
  110: 'unsupported_extension',
  112: 'unrecognized_name',
  113: 'bad_certificate_status_response',
  115: 'unknown_psk_identity',
  116: 'certificate_required',
  120: 'no_application_protocol',
};

export interface Alert {
  /** RFC name, e.g. certificate_required. */
  name: string;
  /** The number, when known. */
  code?: number;
  fatal: boolean;
}

/** Plaintext alert records (TLS 1.2 during the handshake; a TLS 1.3 alert before encryption). */
export function plaintextAlerts(records: readonly TlsRecord[]): Alert[] {
  const out: Alert[] = [];
  for (const r of records) {
    if (r.type === RECORD.changeCipherSpec || r.type === RECORD.applicationData) break;
    if (r.type !== RECORD.alert || r.body.length < 2) continue;
    const code = r.body[1]!;
    out.push({ name: ALERTS[code] ?? `alert_${code}`, code, fatal: r.body[0] === 2 });
  }
  return out;
}

/** Node's ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED and friends → the alert. */
export function alertFromErrorCode(code: string | undefined): Alert | undefined {
  const m = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z0-9_]+)$/.exec(code ?? '');
  if (!m) return undefined;
  const name = m[1]!.toLowerCase();
  const num = Object.entries(ALERTS).find(([, v]) => v === name)?.[0];
  return { name, ...(num !== undefined ? { code: Number(num) } : {}), fatal: true };
}

/**
 * Whether the server asked for a client certificate in TLS 1.3, read from the client's own flight:
 * OpenSSL (which node:tls is) writes each handshake message in its own record, so after its
 * ChangeCipherSpec the client sends [Certificate, (CertificateVerify,)] Finished when asked, and
 * Finished alone when not. Returns undefined when the flight is not there yet.
 */
export function clientFlightTls13(
  out: readonly TlsRecord[],
  hashLen: number,
): { certRequested: boolean; certSent: boolean } | undefined {
  const ccs = out.findIndex((r) => r.type === RECORD.changeCipherSpec);
  const after = ccs < 0 ? [] : out.slice(ccs + 1).filter((r) => r.type === RECORD.applicationData);
  // Finished: 4 bytes of header and the verify data (the hash length), plus the inner content type
  // (1) and the AEAD tag (16). The flight is complete once it is there.
  const fin = after.findIndex((r) => r.body.length === 4 + hashLen + 17);
  if (fin < 0) return undefined;
  // An empty Certificate message is 8 bytes (type, length, context, list length) + 17.
  const certRequested = fin >= 1;
  const certSent = fin >= 2 || (certRequested && after[0]!.body.length > 25);
  return { certRequested, certSent };
}

/** The hash length of a TLS 1.3 cipher suite (SHA384 suites: 48, the others: 32). */
export function tls13HashLength(cipher: string | undefined): number {
  return /SHA384/i.test(cipher ?? '') ? 48 : 32;
}

// ---------------------------------------------------------------- HTTP answers

export interface HttpAnswer {
  statusLine: string;
  status: number;
  headers: Record<string, string>;
  /** The body as text, at most 2 KiB. */
  body: string;
}

/** The first HTTP/1.x response in `bytes`, or undefined when it does not start like one. */
export function parseHttpAnswer(bytes: Buffer): HttpAnswer | undefined {
  const text = bytes.subarray(0, 64 * 1024).toString('latin1');
  const m = /^HTTP\/\d(?:\.\d)? (\d{3})[^\r\n]*/.exec(text);
  if (!m) return undefined;
  const headEnd = text.indexOf('\r\n\r\n');
  const head = headEnd >= 0 ? text.slice(0, headEnd) : text;
  const headers: Record<string, string> = {};
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const body =
    headEnd >= 0
      ? bytes
          .subarray(headEnd + 4)
          .toString('utf8')
          .slice(0, 2048)
      : '';
  return { statusLine: m[0], status: Number(m[1]), headers, body };
}

export type NginxPage = 'no_client_cert' | 'cert_error' | 'plain_http_to_https' | 'cert_other';

/** nginx's own 400 pages for client certificates (ngx_http_request.c / ngx_http_special_response.c). */
export function nginxPage(a: HttpAnswer): NginxPage | undefined {
  if (a.status !== 400 && a.status !== 495 && a.status !== 496 && a.status !== 497) return undefined;
  if (/No required SSL certificate was sent/i.test(a.body) || a.status === 496) return 'no_client_cert';
  if (/The SSL certificate error/i.test(a.body) || a.status === 495) return 'cert_error';
  if (/The plain HTTP request was sent to HTTPS port/i.test(a.body) || a.status === 497)
    return 'plain_http_to_https';
  return undefined;
}

export interface ProxyRefusal {
  code: string;
  reason: string;
  requestId?: string;
  detail?: string;
}

/** mtls proxy's own answers: JSON {code: "MTLS_PROXY_…", reason, requestId, detail?}. */
export function proxyRefusal(a: HttpAnswer): ProxyRefusal | undefined {
  if (!/json/i.test(a.headers['content-type'] ?? '')) return undefined;
  try {
    const j = JSON.parse(a.body) as Record<string, unknown>;
    if (typeof j.code !== 'string' || !j.code.startsWith('MTLS_PROXY_') || typeof j.reason !== 'string')
      return undefined;
    return {
      code: j.code,
      reason: j.reason,
      ...(typeof j.requestId === 'string' ? { requestId: j.requestId } : {}),
      ...(typeof j.detail === 'string' ? { detail: j.detail } : {}),
    };
  } catch {
    return undefined;
  }
}

/** A short excerpt of a body for evidence: tags removed, whitespace folded, at most 160 characters. */
export function bodyExcerpt(body: string): string {
  return body
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 160);
}

// ---------------------------------------------------------------- TLS 1.3: the encrypted CertificateRequest

const TLS13_SUITES: Record<string, { alg: string; keyLen: number; hash: 'sha256' | 'sha384' }> = {
  TLS_AES_128_GCM_SHA256: { alg: 'aes-128-gcm', keyLen: 16, hash: 'sha256' },
  TLS_AES_256_GCM_SHA384: { alg: 'aes-256-gcm', keyLen: 32, hash: 'sha384' },
  TLS_CHACHA20_POLY1305_SHA256: { alg: 'chacha20-poly1305', keyLen: 32, hash: 'sha256' },
};

/** HKDF-Expand-Label (RFC 8446 7.1) for outputs no longer than one hash block (keys and IVs). */
export function hkdfExpandLabel(hash: string, secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`);
  const info = Buffer.concat([
    Buffer.from([length >> 8, length & 0xff, full.length]),
    full,
    Buffer.from([0]),
  ]);
  return createHmac(hash, secret)
    .update(Buffer.concat([info, Buffer.from([1])]))
    .digest()
    .subarray(0, length);
}

/**
 * The server's TLS 1.3 handshake messages after ServerHello (EncryptedExtensions, CertificateRequest,
 * Certificate, CertificateVerify, Finished), decrypted with the server handshake traffic secret that
 * node:tls hands out on its `keylog` event. Undefined when the suite is unknown or a record does not
 * decrypt (then the caller falls back to reading the client's own flight).
 */
export function decryptServerHandshake13(
  records: readonly TlsRecord[],
  secret: Buffer,
  cipher: string,
): { type: number; body: Buffer }[] | undefined {
  const suite = TLS13_SUITES[cipher];
  if (!suite) return undefined;
  const key = hkdfExpandLabel(suite.hash, secret, 'key', suite.keyLen);
  const iv = hkdfExpandLabel(suite.hash, secret, 'iv', 12);
  const parts: Buffer[] = [];
  let seq = 0n;
  for (const r of records) {
    if (r.type !== RECORD.applicationData) continue;
    if (r.body.length < 17) return undefined;
    const nonce = Buffer.from(iv);
    const s = Buffer.alloc(8);
    s.writeBigUInt64BE(seq++);
    for (let i = 0; i < 8; i++) nonce[4 + i]! ^= s[i]!;
    const header = Buffer.from([RECORD.applicationData, 3, 3, r.body.length >> 8, r.body.length & 0xff]);
    let plain: Buffer;
    try {
      const d = createDecipheriv(suite.alg, key, nonce, { authTagLength: 16 } as never) as DecipherGCM;
      d.setAAD(header);
      d.setAuthTag(r.body.subarray(r.body.length - 16));
      plain = Buffer.concat([d.update(r.body.subarray(0, r.body.length - 16)), d.final()]);
    } catch {
      break; // past the handshake: application traffic keys
    }
    let end = plain.length;
    while (end > 0 && plain[end - 1] === 0) end--;
    if (end === 0) return undefined;
    if (plain[end - 1] === RECORD.handshake) parts.push(plain.subarray(0, end - 1));
  }
  const buf = Buffer.concat(parts);
  const out: { type: number; body: Buffer }[] = [];
  let o = 0;
  while (o + 4 <= buf.length) {
    const len = buf.readUIntBE(o + 1, 3);
    if (o + 4 + len > buf.length) break;
    out.push({ type: buf[o]!, body: buf.subarray(o + 4, o + 4 + len) });
    o += 4 + len;
    if (buf[o - 4 - len] === 20) break; // Finished
  }
  return out.length ? out : undefined;
}

/** TLS 1.3's CertificateRequest (RFC 8446 4.3.2): the certificate_authorities extension (47), if sent. */
export function parseCertificateRequest13(
  body: Buffer,
): { caNames: string[]; caNamesDer: Buffer[] } | undefined {
  let o = 1 + body[0]!; // certificate_request_context
  const end = o + 2 + body.readUInt16BE(o);
  o += 2;
  while (o + 4 <= end && o + 4 <= body.length) {
    const type = body.readUInt16BE(o);
    const len = body.readUInt16BE(o + 2);
    if (type === 47) {
      const list = body.subarray(o + 4, o + 4 + len);
      const n = list.readUInt16BE(0);
      const caNamesDer: Buffer[] = [];
      let p = 2;
      while (p + 2 <= 2 + n) {
        const l = list.readUInt16BE(p);
        caNamesDer.push(list.subarray(p + 2, p + 2 + l));
        p += 2 + l;
      }
      return { caNamesDer, caNames: caNamesDer.map((d) => nameText(d)) };
    }
    o += 4 + len;
  }
  return undefined;
}
