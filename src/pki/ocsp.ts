// OCSP (RFC 6960): request parsing, CertID matching, and the responder's DER writer (BasicOCSPResponse
// signed by a delegated responder or the CA itself), plus a response parser for tests and clients. Pure.
import { createHash, hash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import {
  isSignedBy,
  parseCertificate,
  publicKeyObject,
  verifySignature,
  type Certificate,
} from './certificate.js';
import { CRL_REASONS, type CrlReason } from './crl.js';
import * as der from './der.js';
import type { Clock } from './issue.js';
import { signatureAlgorithmFor, spkiOf, type SignatureAlgorithm } from './keys.js';
import { decodeName, type DistinguishedName } from './names.js';
import { OID } from './oids.js';

/** id-pkix-ocsp-basic: the only response type there is. */
export const OCSP_BASIC_OID = '1.3.6.1.5.5.7.48.1.1';
/** id-pkix-ocsp-nonce (RFC 6960 4.4.1, RFC 8954). */
export const OCSP_NONCE_OID = '1.3.6.1.5.5.7.48.1.2';

/** Hash algorithms a CertID may use that this module understands. */
export const OCSP_HASHES = ['sha1', 'sha256', 'sha384', 'sha512'] as const;
export type OcspHash = (typeof OCSP_HASHES)[number];

const HASH_OIDS: Record<OcspHash, string> = {
  sha1: OID.sha1,
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
};
const HASH_BY_OID = new Map<string, OcspHash>(OCSP_HASHES.map((h) => [HASH_OIDS[h], h]));

/** RFC 8954: nonces are 1 to 32 octets; a longer one is not echoed (the responder may then cache). */
export const MAX_OCSP_NONCE_OCTETS = 32;

// ---------------------------------------------------------------- model

export interface CertId {
  /** 'sha1', 'sha256', 'sha384', 'sha512', or the dotted OID of an algorithm not understood. */
  hashAlgorithm: OcspHash | (string & {});
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /** Lowercase hex without leading zero bytes: the Certificate.serial convention. */
  serial: string;
  /** The CertID exactly as encoded; responses echo these bytes so clients match them. */
  der: Buffer;
}

export interface OcspRequest {
  der: Buffer;
  /** The CertIDs asked about, in request order (at least one). */
  certIds: CertId[];
  /**
   * The nonce extension's extnValue content, exactly as sent (OpenSSL and RFC 8954 clients put an
   * OCTET STRING TLV there); pass it back unchanged as `nonce` to `respond`. Absent when the request
   * has no nonce or one longer than 32 octets (see `nonceIgnored`).
   */
  nonce?: Buffer;
  /** A nonce was sent but is too long to echo (RFC 8954 lets the responder answer without it). */
  nonceIgnored: boolean;
  /** The request carries optionalSignature. It is not verified: answers are public anyway. */
  signed: boolean;
  /** The request names its requestor ([1] requestorName). */
  hasRequestorName: boolean;
  /** Request extensions marked critical other than the nonce. */
  unknownCritical: string[];
}

export type OcspCertStatus = 'good' | 'unknown' | { revoked: { at: Date; reason?: CrlReason } };

export interface OcspResponseEntry {
  certId: CertId;
  status: OcspCertStatus;
}

export interface OcspRespondOptions {
  thisUpdate: Date;
  /** When clients should fetch a newer answer; also how long a cached response stays usable. */
  nextUpdate: Date;
  /** `OcspRequest.nonce` of the request being answered; echoed in responseExtensions. */
  nonce?: Buffer;
}

export const OCSP_ERROR_STATUSES = ['malformedRequest', 'internalError', 'tryLater', 'unauthorized'] as const;
export type OcspErrorStatus = (typeof OCSP_ERROR_STATUSES)[number];
export type OcspResponseStatus = 'successful' | OcspErrorStatus | 'sigRequired';

const STATUS_CODES: Record<OcspResponseStatus, number> = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
};
const STATUS_BY_CODE = new Map<number, OcspResponseStatus>(
  Object.entries(STATUS_CODES).map(([k, v]) => [v, k as OcspResponseStatus]),
);

// ---------------------------------------------------------------- errors

function badRequest(e: unknown): MtlsError {
  if (e instanceof MtlsError && e.code === 'MTLS_PKI_BAD_OCSP_REQUEST') return e;
  const why = e instanceof Error ? e.message : String(e);
  return new MtlsError('MTLS_PKI_BAD_OCSP_REQUEST', `Not a valid OCSP request: ${why}.`, {
    fix: 'Send a DER OCSPRequest (RFC 6960 4.1.1) as the POST body with Content-Type application/ocsp-request, or base64 in the GET path; openssl ocsp -reqout req.der shows a valid one.',
    cause: e,
  });
}

function badResponse(e: unknown): MtlsError {
  if (e instanceof MtlsError && e.code === 'MTLS_PKI_BAD_OCSP_RESPONSE') return e;
  const why = e instanceof Error ? e.message : String(e);
  return new MtlsError('MTLS_PKI_BAD_OCSP_RESPONSE', `Not a valid OCSP response: ${why}.`, {
    fix: 'Check the responder URL answers application/ocsp-response; inspect the bytes with openssl ocsp -respin FILE -resp_text -noverify.',
    cause: e,
  });
}

// ---------------------------------------------------------------- request parsing

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function readCertId(node: der.Node): CertId {
  const [alg, nameHash, keyHash, serial, extra] = der.children(der.expect(node, der.Tag.SEQUENCE, 'CertID'));
  if (extra) throw new der.DerError('CertID has extra fields');
  const [algOid, params, algExtra] = der.children(der.expect(alg, der.Tag.SEQUENCE, 'hashAlgorithm'));
  if (algExtra) throw new der.DerError('hashAlgorithm has extra fields');
  const oid = der.readOid(der.expect(algOid, der.Tag.OID, 'hashAlgorithm OID'));
  if (params && params.tag !== der.Tag.NULL) throw new der.DerError('hashAlgorithm parameters must be NULL');
  const serialBytes = der.readIntegerBytes(der.expect(serial, der.Tag.INTEGER, 'serialNumber'));
  return {
    hashAlgorithm: HASH_BY_OID.get(oid) ?? oid,
    issuerNameHash: der.content(der.expect(nameHash, der.Tag.OCTET_STRING, 'issuerNameHash')),
    issuerKeyHash: der.content(der.expect(keyHash, der.Tag.OCTET_STRING, 'issuerKeyHash')),
    serial: stripZeros(serialBytes).toString('hex'),
    der: der.raw(node),
  };
}

interface RawExtension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

/** The Extensions inside an EXPLICIT [n] wrapper. */
function readExtensions(wrapper: der.Node): RawExtension[] {
  const inner = der.children(wrapper);
  if (inner.length !== 1) throw new der.DerError('bad extensions wrapper');
  const out: RawExtension[] = [];
  for (const e of der.children(der.expect(inner[0], der.Tag.SEQUENCE, 'Extensions'))) {
    const parts = der.children(der.expect(e, der.Tag.SEQUENCE, 'Extension'));
    const oid = der.readOid(der.expect(parts[0], der.Tag.OID, 'extnID'));
    let critical = false;
    let idx = 1;
    if (parts[1]?.tag === der.Tag.BOOLEAN) {
      critical = der.readBoolean(parts[1]);
      idx = 2;
    }
    const value = der.content(der.expect(parts[idx], der.Tag.OCTET_STRING, 'extnValue'));
    if (parts.length !== idx + 1) throw new der.DerError('trailing fields in Extension');
    out.push({ oid, critical, value });
  }
  return out;
}

/** The length of the random part of a nonce extnValue: the inner OCTET STRING's, or the raw length. */
function nonceOctets(value: Buffer): number {
  try {
    const n = der.readOne(value);
    if (n.tag === der.Tag.OCTET_STRING) return n.end - n.contentStart;
  } catch {
    // RFC 2560-style clients send the bytes without the inner OCTET STRING.
  }
  return value.length;
}

/**
 * Parses a DER OCSPRequest (RFC 6960 4.1.1). Anything malformed, however broken, ends in an MtlsError
 * with code MTLS_PKI_BAD_OCSP_REQUEST (answer it with `ocspErrorResponse('malformedRequest')`).
 */
export function parseOcspRequest(input: Buffer): OcspRequest {
  try {
    if (!Buffer.isBuffer(input)) throw new der.DerError('the request is not a byte buffer');
    return parseRequestInner(Buffer.from(input));
  } catch (e) {
    throw badRequest(e);
  }
}

function parseRequestInner(buf: Buffer): OcspRequest {
  const top = der.expect(der.readOne(buf), der.Tag.SEQUENCE, 'OCSPRequest');
  const [tbs, sig, extra] = der.children(top);
  if (extra) throw new der.DerError('OCSPRequest has extra fields');
  if (sig && sig.tag !== 0xa0) throw new der.DerError('unexpected field after tbsRequest');
  const f = der.children(der.expect(tbs, der.Tag.SEQUENCE, 'TBSRequest'));
  let i = 0;
  if (f[i]?.tag === 0xa0) {
    const [v, vExtra] = der.children(f[i++]!);
    if (!v || vExtra || der.readSmallInt(v) !== 0) throw new der.DerError('unknown OCSPRequest version');
  }
  let hasRequestorName = false;
  if (f[i]?.tag === 0xa1) {
    hasRequestorName = true;
    i++;
  }
  const list = der.children(der.expect(f[i++], der.Tag.SEQUENCE, 'requestList'));
  if (list.length === 0) throw new der.DerError('requestList is empty');
  const certIds: CertId[] = new Array<CertId>(list.length);
  for (let k = 0; k < list.length; k++) {
    const [certId, single, rest] = der.children(der.expect(list[k], der.Tag.SEQUENCE, 'Request'));
    if (rest || (single && single.tag !== 0xa0)) throw new der.DerError('Request has unexpected fields');
    certIds[k] = readCertId(certId!);
  }
  const req: OcspRequest = {
    der: buf,
    certIds,
    nonceIgnored: false,
    signed: sig !== undefined,
    hasRequestorName,
    unknownCritical: [],
  };
  if (f[i]?.tag === 0xa2) {
    for (const ext of readExtensions(f[i++]!)) {
      if (ext.oid === OCSP_NONCE_OID) {
        if (req.nonce || req.nonceIgnored) throw new der.DerError('duplicate nonce extension');
        const n = nonceOctets(ext.value);
        if (n >= 1 && n <= MAX_OCSP_NONCE_OCTETS) req.nonce = ext.value;
        else req.nonceIgnored = true;
      } else if (ext.critical) req.unknownCritical.push(ext.oid);
    }
  }
  if (i !== f.length)
    throw new der.DerError(`unexpected field tag 0x${f[i]!.tag.toString(16)} in TBSRequest`);
  return req;
}

/**
 * The DER request carried in an OCSP GET path (RFC 6960 A.1: URL-encoded base64 after the responder
 * URL's path). `encoded` is the part after the responder prefix, e.g. "MEMwQT...%3D".
 */
export function decodeOcspGetPath(encoded: string): Buffer {
  let text: string;
  try {
    text = decodeURIComponent(encoded);
  } catch (e) {
    throw badRequest(
      new der.DerError(`the GET path is not valid percent-encoding (${(e as Error).message})`),
    );
  }
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text) || text.length === 0)
    throw badRequest(new der.DerError('the GET path is not base64'));
  return Buffer.from(text, 'base64');
}

// ---------------------------------------------------------------- CertID matching

export interface CertIdMatcher {
  /** Hash of the issuer's subject name DER, per algorithm. */
  readonly issuerNameHash: Readonly<Record<OcspHash, Buffer>>;
  /** Hash of the issuer's subjectPublicKey bits, per algorithm. */
  readonly issuerKeyHash: Readonly<Record<OcspHash, Buffer>>;
  /** True when `id` names this issuer (either hash algorithm understood; the serial is not looked at). */
  matches(id: CertId): boolean;
}

/** Precomputes the issuer's name and key hashes under every CertID hash so matching is two compares. */
export function certIdMatcher(issuerCert: Certificate): CertIdMatcher {
  const nameHash = {} as Record<OcspHash, Buffer>;
  const keyHash = {} as Record<OcspHash, Buffer>;
  const byAlg = new Map<string, [Buffer, Buffer]>();
  for (const h of OCSP_HASHES) {
    nameHash[h] = hash(h, issuerCert.subjectDer, 'buffer');
    keyHash[h] = hash(h, issuerCert.publicKey.keyBits, 'buffer');
    byAlg.set(h, [nameHash[h], keyHash[h]]);
  }
  return {
    issuerNameHash: nameHash,
    issuerKeyHash: keyHash,
    matches(id: CertId): boolean {
      const pair = byAlg.get(id.hashAlgorithm);
      return pair !== undefined && pair[1].equals(id.issuerKeyHash) && pair[0].equals(id.issuerNameHash);
    },
  };
}

function serialInteger(serial: string | Buffer, negative = false): Buffer {
  let bytes: Buffer;
  if (Buffer.isBuffer(serial)) bytes = serial;
  else {
    const hex = serial.replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]+$/.test(hex))
      throw new MtlsError('MTLS_PKI_BAD_DER', `The serial number "${serial}" is not hex.`, {
        fix: 'Give the serial as printed by "mtls inspect" (lowercase hex, e.g. 3f9a01...).',
      });
    bytes = Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex');
  }
  // A negative serial (non-conforming, but it exists) keeps its two's complement bytes.
  return negative ? der.tlv(der.Tag.INTEGER, bytes) : der.integer(bytes);
}

/**
 * The CertID for a certificate (or a serial) under `issuerCert`: what a client sends, and what a CA
 * uses to precompute responses before anyone asks.
 */
export function certIdFor(
  cert: Certificate | { serial: string | Buffer },
  issuerCert: Certificate,
  hashAlgorithm: OcspHash = 'sha1',
): CertId {
  const negative = 'serialNegative' in cert && cert.serialNegative;
  const serialDer = serialInteger(cert.serial, negative);
  const issuerNameHash = hash(hashAlgorithm, issuerCert.subjectDer, 'buffer');
  const issuerKeyHash = hash(hashAlgorithm, issuerCert.publicKey.keyBits, 'buffer');
  const encoded = der.seq(
    der.seq(der.oid(HASH_OIDS[hashAlgorithm]), der.NULL),
    der.octetString(issuerNameHash),
    der.octetString(issuerKeyHash),
    serialDer,
  );
  return readCertId(der.readOne(encoded));
}

/** Encodes an unsigned OCSPRequest (for tests, load generators and clients). `nonce` is the extnValue content. */
export function encodeOcspRequest(certIds: readonly CertId[], opts: { nonce?: Buffer } = {}): Buffer {
  const list = der.tlv(der.Tag.SEQUENCE, Buffer.concat(certIds.map((c) => der.seq(c.der))));
  const fields = [list];
  if (opts.nonce)
    fields.push(der.ctx(2, der.seq(der.seq(der.oid(OCSP_NONCE_OID), der.octetString(opts.nonce)))));
  return der.seq(der.seq(...fields));
}

// ---------------------------------------------------------------- responder

export interface OcspResponderOptions {
  /** The CA whose certificates this responder answers for. */
  issuerCert: Certificate;
  /** A delegated responder certificate issued by `issuerCert` (profile ocsp), or `issuerCert` itself. */
  responderCert: Certificate;
  responderKey: KeyObject;
  /** Read once per response for producedAt. */
  clock?: Clock;
}

export interface OcspResponder {
  readonly issuerCert: Certificate;
  readonly responderCert: Certificate;
  /** True when the responder certificate is not the CA's own (it then rides in the certs field). */
  readonly delegated: boolean;
  /** True when `certId` names this responder's issuer. */
  matches(certId: CertId): boolean;
  /**
   * A signed, successful OCSPResponse for `entries`. A CertID that does not name this issuer is
   * answered `unknown` whatever status was given, so a mix-up can never vouch for another CA's serial.
   *
   * Caching: without a nonce, the bytes for one CertID stay valid until `nextUpdate` (or a revocation),
   * so a CA can compute them ahead and serve them as they are, keyed by `certId.der` (which fixes the
   * hash algorithm and serial) and invalidated by `certId.serial`. A request with a nonce needs a
   * response echoing it, so it always costs a fresh signature.
   */
  respond(entries: readonly OcspResponseEntry[], opts: OcspRespondOptions): Buffer;
  /** An unsigned error response (no responseBytes). */
  errorResponse(status: OcspErrorStatus): Buffer;
}

const ERROR_RESPONSES = new Map<OcspErrorStatus, Buffer>(
  OCSP_ERROR_STATUSES.map((s) => [
    s,
    Buffer.from([der.Tag.SEQUENCE, 3, der.Tag.ENUMERATED, 1, STATUS_CODES[s]]),
  ]),
);

/** The bytes of an unsuccessful OCSPResponse (RFC 6960 4.2.1): SEQUENCE { ENUMERATED status }. */
export function ocspErrorResponse(status: OcspErrorStatus): Buffer {
  const hit = ERROR_RESPONSES.get(status);
  if (!hit)
    throw new MtlsError('MTLS_PKI_BAD_OCSP_RESPONSE', `"${String(status)}" is not an OCSP error status.`, {
      fix: `Use one of: ${OCSP_ERROR_STATUSES.join(', ')}.`,
    });
  return Buffer.from(hit);
}

const GOOD = Buffer.from([0x80, 0]);
const UNKNOWN = Buffer.from([0x82, 0]);
const SUCCESSFUL = Buffer.from([der.Tag.ENUMERATED, 1, 0]);
const BASIC_OID = der.oid(OCSP_BASIC_OID);
const NONCE_OID = der.oid(OCSP_NONCE_OID);

interface ResponderParts {
  alg: SignatureAlgorithm;
  /** ResponderID byKey: [2] EXPLICIT OCTET STRING (SHA-1 of the responder's subjectPublicKey). */
  responderId: Buffer;
  /** The certs field ([0] EXPLICIT SEQUENCE OF Certificate) when delegated. */
  certs: Buffer | undefined;
}

function headerLength(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : len < 0x1000000 ? 5 : 6;
}

function putHeader(out: Buffer, p: number, tag: number, len: number): number {
  out[p++] = tag;
  if (len < 0x80) {
    out[p++] = len;
    return p;
  }
  const n = headerLength(len) - 2;
  out[p++] = 0x80 | n;
  for (let i = n - 1; i >= 0; i--) out[p++] = Math.floor(len / 2 ** (8 * i)) & 0xff;
  return p;
}

/**
 * OCSPResponse { successful, [0] { SEQUENCE { id-pkix-ocsp-basic, OCTET STRING { BasicOCSPResponse {
 * tbs, algorithm, BIT STRING signature, certs } } } } } written into one buffer: no nested copies.
 */
function assembleResponse(tbs: Buffer, alg: Buffer, signature: Buffer, certs: Buffer | undefined): Buffer {
  const sigContent = signature.length + 1;
  const basicContent =
    tbs.length + alg.length + headerLength(sigContent) + sigContent + (certs ? certs.length : 0);
  const basicLen = headerLength(basicContent) + basicContent;
  const rbContent = BASIC_OID.length + headerLength(basicLen) + basicLen;
  const rbLen = headerLength(rbContent) + rbContent;
  const topContent = SUCCESSFUL.length + headerLength(rbLen) + rbLen;
  const out = Buffer.allocUnsafe(headerLength(topContent) + topContent);
  let p = putHeader(out, 0, der.Tag.SEQUENCE, topContent);
  p += SUCCESSFUL.copy(out, p);
  p = putHeader(out, p, 0xa0, rbLen);
  p = putHeader(out, p, der.Tag.SEQUENCE, rbContent);
  p += BASIC_OID.copy(out, p);
  p = putHeader(out, p, der.Tag.OCTET_STRING, basicLen);
  p = putHeader(out, p, der.Tag.SEQUENCE, basicContent);
  p += tbs.copy(out, p);
  p += alg.copy(out, p);
  p = putHeader(out, p, der.Tag.BIT_STRING, sigContent);
  out[p++] = 0;
  p += signature.copy(out, p);
  if (certs) p += certs.copy(out, p);
  if (p !== out.length) throw new Error('OCSP response length mismatch'); // unreachable: sizes above
  return out;
}

function revokedStatus(at: Date, reason: CrlReason | undefined): Buffer {
  const time = der.generalizedTime(at);
  if (reason === undefined) return der.tlv(0xa1, time);
  const code = CRL_REASONS.indexOf(reason);
  if (code < 0 || reason === ('' as CrlReason))
    throw new MtlsError('MTLS_PKI_BAD_DER', `Unknown revocation reason "${String(reason)}".`, {
      fix: `Use one of: ${CRL_REASONS.filter(Boolean).join(', ')}.`,
    });
  return der.tlv(0xa1, Buffer.concat([time, Buffer.from([0xa0, 3, der.Tag.ENUMERATED, 1, code])]));
}

function checkDate(d: Date, what: string): void {
  if (!(d instanceof Date) || !Number.isFinite(d.getTime()))
    throw new MtlsError('MTLS_PKI_BAD_VALIDITY', `The OCSP ${what} is not a valid date.`, {
      fix: 'Pass Date objects for thisUpdate and nextUpdate.',
    });
}

/**
 * An OCSP responder bound to one issuer and one signing certificate. Everything that depends only on
 * them (signature algorithm, ResponderID, certs field, issuer hashes) is encoded here, once; a response
 * then costs one signature and a few small copies.
 */
export function createOcspResponder(opts: OcspResponderOptions): OcspResponder {
  const { issuerCert, responderCert, responderKey } = opts;
  const clock = opts.clock ?? { now: () => new Date() };
  if (!spkiOf(responderKey).equals(responderCert.spki)) {
    throw new MtlsError(
      'MTLS_PKI_KEY_MISMATCH',
      'The OCSP signing key does not belong to the responder certificate.',
      { fix: 'Give the key that was created with the OCSP responder certificate.' },
    );
  }
  const delegated = !responderCert.der.equals(issuerCert.der);
  if (delegated) {
    if (!responderCert.issuerDer.equals(issuerCert.subjectDer) || !isSignedBy(responderCert, issuerCert)) {
      throw new MtlsError(
        'MTLS_PKI_PROFILE_VIOLATION',
        'The OCSP responder certificate was not issued by the CA it answers for (RFC 6960 4.2.2.2).',
        { fix: 'Issue the responder certificate from that CA with the ocsp profile.' },
      );
    }
    if (!responderCert.extKeyUsage?.includes(OID.ocspSigning)) {
      throw new MtlsError(
        'MTLS_PKI_PROFILE_VIOLATION',
        'The OCSP responder certificate lacks extendedKeyUsage OCSPSigning; clients reject its responses.',
        { fix: 'Issue the responder certificate with the ocsp profile.' },
      );
    }
  }
  const alg = signatureAlgorithmFor(responderKey);
  const parts: ResponderParts = {
    alg,
    responderId: der.ctx(2, der.octetString(hash('sha1', responderCert.publicKey.keyBits, 'buffer'))),
    certs: delegated ? der.ctx(0, der.seq(responderCert.der)) : undefined,
  };
  const matcher = certIdMatcher(issuerCert);
  // producedAt has whole seconds: encode it once per second.
  let producedSec = NaN;
  let producedAt: Buffer = Buffer.alloc(0);
  // thisUpdate + [0] nextUpdate, encoded once per distinct window (a CA reuses one window for a while).
  let timesKey: [number, number] = [NaN, NaN];
  let times: Buffer = Buffer.alloc(0);

  const respond = (entries: readonly OcspResponseEntry[], o: OcspRespondOptions): Buffer => {
    if (entries.length === 0) {
      throw new MtlsError('MTLS_PKI_BAD_OCSP_REQUEST', 'An OCSP response needs at least one CertID.', {
        fix: 'Answer each CertID of the parsed request.',
      });
    }
    checkDate(o.thisUpdate, 'thisUpdate');
    checkDate(o.nextUpdate, 'nextUpdate');
    if (o.nextUpdate.getTime() <= o.thisUpdate.getTime()) {
      throw new MtlsError('MTLS_PKI_BAD_VALIDITY', 'The OCSP nextUpdate must be after thisUpdate.', {
        fix: 'Give a positive response lifetime such as 1h.',
      });
    }
    const t = o.thisUpdate.getTime();
    const n = o.nextUpdate.getTime();
    if (t !== timesKey[0] || n !== timesKey[1]) {
      timesKey = [t, n];
      times = Buffer.concat([
        der.generalizedTime(o.thisUpdate),
        der.ctx(0, der.generalizedTime(o.nextUpdate)),
      ]);
    }
    const singles: Buffer[] = new Array<Buffer>(entries.length);
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k]!;
      const s = e.status;
      const status = !matcher.matches(e.certId)
        ? UNKNOWN
        : s === 'good'
          ? GOOD
          : s === 'unknown'
            ? UNKNOWN
            : revokedStatus(s.revoked.at, s.revoked.reason);
      singles[k] = der.seq(e.certId.der, status, times);
    }
    const nowSec = Math.floor(clock.now().getTime() / 1000);
    if (nowSec !== producedSec) {
      producedSec = nowSec;
      producedAt = der.generalizedTime(new Date(nowSec * 1000));
    }
    const tbsFields = [
      parts.responderId,
      producedAt,
      singles.length === 1 ? der.seq(singles[0]!) : der.tlv(der.Tag.SEQUENCE, Buffer.concat(singles)),
    ];
    if (o.nonce) tbsFields.push(der.ctx(1, der.seq(der.seq(NONCE_OID, der.octetString(o.nonce)))));
    const tbs = der.seq(...tbsFields);
    const signature = cryptoSign(alg.hash, tbs, responderKey);
    return assembleResponse(tbs, alg.identifier, signature, parts.certs);
  };

  return {
    issuerCert,
    responderCert,
    delegated,
    matches: (id) => matcher.matches(id),
    respond,
    errorResponse: ocspErrorResponse,
  };
}

// ---------------------------------------------------------------- response parsing

export interface OcspSingleResponse {
  certId: CertId;
  status: 'good' | 'revoked' | 'unknown';
  revokedAt?: Date;
  reason?: CrlReason;
  thisUpdate: Date;
  nextUpdate?: Date;
}

export type OcspResponderId = { byKey: Buffer } | { byName: DistinguishedName; nameDer: Buffer };

export interface OcspResponse {
  der: Buffer;
  status: OcspResponseStatus;
  /** The rest is present only for a successful response. */
  tbs?: Buffer;
  responderId?: OcspResponderId;
  producedAt?: Date;
  responses: OcspSingleResponse[];
  /** The nonce extnValue content, as echoed. */
  nonce?: Buffer;
  signatureAlgorithm?: string;
  signatureAlgorithmParams?: Buffer;
  signature?: Buffer;
  /** The certs field: normally the delegated responder certificate. */
  certs: Certificate[];
}

/** Parses an OCSPResponse; throws MTLS_PKI_BAD_OCSP_RESPONSE on anything malformed. */
export function parseOcspResponse(input: Buffer): OcspResponse {
  try {
    if (!Buffer.isBuffer(input)) throw new der.DerError('the response is not a byte buffer');
    return parseResponseInner(Buffer.from(input));
  } catch (e) {
    throw badResponse(e);
  }
}

function readGeneralizedTime(node: der.Node | undefined, what: string): Date {
  return der.readTime(der.expect(node, der.Tag.GENERALIZED_TIME, what));
}

function parseResponseInner(buf: Buffer): OcspResponse {
  const top = der.expect(der.readOne(buf), der.Tag.SEQUENCE, 'OCSPResponse');
  const [statusNode, bytesNode, extra] = der.children(top);
  if (extra) throw new der.DerError('OCSPResponse has extra fields');
  const sc = der.content(der.expect(statusNode, der.Tag.ENUMERATED, 'responseStatus'));
  const status = sc.length === 1 ? STATUS_BY_CODE.get(sc[0]!) : undefined;
  if (!status) throw new der.DerError('unknown responseStatus');
  const resp: OcspResponse = { der: buf, status, responses: [], certs: [] };
  if (status !== 'successful') {
    if (bytesNode) throw new der.DerError('an unsuccessful response carries responseBytes');
    return resp;
  }
  const [rb, rbExtra] = der.children(der.expect(bytesNode, 0xa0, 'responseBytes'));
  if (rbExtra) throw new der.DerError('bad responseBytes wrapper');
  const [typeNode, octets] = der.children(der.expect(rb, der.Tag.SEQUENCE, 'ResponseBytes'));
  const type = der.readOid(der.expect(typeNode, der.Tag.OID, 'responseType'));
  if (type !== OCSP_BASIC_OID) throw new der.DerError(`unsupported responseType ${type}`);
  const basicBuf = der.content(der.expect(octets, der.Tag.OCTET_STRING, 'response'));
  const basic = der.expect(der.readOne(basicBuf), der.Tag.SEQUENCE, 'BasicOCSPResponse');
  const [tbsNode, algNode, sigNode, certsNode, bExtra] = der.children(basic);
  if (bExtra) throw new der.DerError('BasicOCSPResponse has extra fields');
  const [algOid, algParams] = der.children(der.expect(algNode, der.Tag.SEQUENCE, 'signatureAlgorithm'));
  resp.signatureAlgorithm = der.readOid(der.expect(algOid, der.Tag.OID, 'signatureAlgorithm OID'));
  if (algParams) resp.signatureAlgorithmParams = Buffer.from(der.raw(algParams));
  resp.signature = der.readBitString(der.expect(sigNode, der.Tag.BIT_STRING, 'signature')).bytes;
  if (certsNode) {
    const [list] = der.children(der.expect(certsNode, 0xa0, 'certs'));
    for (const c of der.children(der.expect(list, der.Tag.SEQUENCE, 'certs'))) {
      resp.certs.push(parseCertificate(der.raw(c)));
    }
  }
  resp.tbs = der.raw(der.expect(tbsNode, der.Tag.SEQUENCE, 'ResponseData'));
  const f = der.children(tbsNode!);
  let i = 0;
  if (f[i]?.tag === 0xa0) {
    const [v] = der.children(f[i++]!);
    if (!v || der.readSmallInt(v) !== 0) throw new der.DerError('unknown ResponseData version');
  }
  const rid = f[i++];
  if (rid?.tag === 0xa1) {
    const [name] = der.children(rid);
    const n = der.expect(name, der.Tag.SEQUENCE, 'responderID byName');
    resp.responderId = { byName: decodeName(n), nameDer: der.raw(n) };
  } else if (rid?.tag === 0xa2) {
    const [k] = der.children(rid);
    resp.responderId = { byKey: der.content(der.expect(k, der.Tag.OCTET_STRING, 'responderID byKey')) };
  } else throw new der.DerError('missing responderID');
  resp.producedAt = readGeneralizedTime(f[i++], 'producedAt');
  for (const sr of der.children(der.expect(f[i++], der.Tag.SEQUENCE, 'responses'))) {
    resp.responses.push(readSingleResponse(sr));
  }
  if (f[i]?.tag === 0xa1) {
    for (const ext of readExtensions(f[i++]!)) if (ext.oid === OCSP_NONCE_OID) resp.nonce = ext.value;
  }
  if (i !== f.length) throw new der.DerError('unexpected fields in ResponseData');
  return resp;
}

function readSingleResponse(node: der.Node): OcspSingleResponse {
  const f = der.children(der.expect(node, der.Tag.SEQUENCE, 'SingleResponse'));
  const certId = readCertId(f[0]!);
  const st = f[1];
  let out: OcspSingleResponse;
  const thisUpdate = readGeneralizedTime(f[2], 'thisUpdate');
  if (st?.tag === 0x80) out = { certId, status: 'good', thisUpdate };
  else if (st?.tag === 0x82) out = { certId, status: 'unknown', thisUpdate };
  else if (st?.tag === 0xa1) {
    const [t, r] = der.children(st);
    out = { certId, status: 'revoked', revokedAt: readGeneralizedTime(t, 'revocationTime'), thisUpdate };
    if (r) {
      const [e] = der.children(der.expect(r, 0xa0, 'revocationReason'));
      const c = der.content(der.expect(e, der.Tag.ENUMERATED, 'CRLReason'));
      const name = c.length === 1 ? CRL_REASONS[c[0]!] : undefined;
      if (!name) throw new der.DerError('unknown CRLReason');
      out.reason = name;
    }
  } else throw new der.DerError('bad certStatus');
  let i = 3;
  if (f[i]?.tag === 0xa0) {
    const [t] = der.children(f[i++]!);
    out.nextUpdate = readGeneralizedTime(t, 'nextUpdate');
  }
  if (f[i]?.tag === 0xa1) i++;
  if (i !== f.length) throw new der.DerError('unexpected fields in SingleResponse');
  return out;
}

/**
 * True when `resp` is signed by `signerCert`'s key and names it as responder (byKey or byName). Whether
 * the signer may speak for the issuer (it is the CA, or holds OCSPSigning from it) is the caller's check.
 */
export function verifyOcspResponseSignature(resp: OcspResponse, signerCert: Certificate): boolean {
  if (!resp.tbs || !resp.signature || !resp.signatureAlgorithm || !resp.responderId) return false;
  const id = resp.responderId;
  const named =
    'byKey' in id
      ? id.byKey.equals(createHash('sha1').update(signerCert.publicKey.keyBits).digest())
      : id.nameDer.equals(signerCert.subjectDer);
  if (!named) return false;
  let key: KeyObject;
  try {
    key = publicKeyObject(signerCert);
  } catch {
    return false;
  }
  return verifySignature(
    resp.tbs,
    resp.signature,
    resp.signatureAlgorithm,
    resp.signatureAlgorithmParams,
    key,
  );
}
