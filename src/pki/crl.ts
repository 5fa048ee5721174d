// Certificate revocation lists (RFC 5280 section 5): parsing into a plain model, signature checks,
// and the DER writer the online CA publishes with (v2, CRL number, AKI, reasonCode entries).
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import type { Certificate } from './certificate.js';
import { publicKeyObject, verifySignature } from './certificate.js';
import * as der from './der.js';
import { signatureAlgorithmFor, spkiOf } from './keys.js';
import {
  decodeGeneralName,
  decodeName,
  formatName,
  type DistinguishedName,
  type GeneralName,
} from './names.js';
import { OID } from './oids.js';
import { decodePem, encodePem, isProbablyPem } from './pem.js';

/** RFC 5280 5.3.1 CRLReason, by name; value 7 is unused. */
export const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  '',
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
] as const;
export type CrlReason = Exclude<(typeof CRL_REASONS)[number], ''>;

export function isCrlReason(s: string): s is CrlReason {
  return s !== '' && (CRL_REASONS as readonly string[]).includes(s);
}

export interface RevokedEntry {
  /** Lowercase hex of the INTEGER bytes without leading zero bytes: the Certificate.serial convention. */
  serial: string;
  revocationDate: Date;
  reason?: CrlReason;
  invalidityDate?: Date;
  /** Entry extensions marked critical that this parser does not understand (certificateIssuer included). */
  unknownCritical: string[];
}

export interface IssuingDistributionPoint {
  critical: boolean;
  /** fullName URIs (and other names) of the distribution point, when given. */
  fullName: GeneralName[];
  onlyContainsUserCerts: boolean;
  onlyContainsCACerts: boolean;
  /** Named reason bits when the CRL covers only some reasons. */
  onlySomeReasons?: string[];
  indirectCrl: boolean;
  onlyContainsAttributeCerts: boolean;
}

export interface CrlExtension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

export interface Crl {
  der: Buffer;
  /** The TBSCertList bytes, what the signature covers. */
  tbs: Buffer;
  /** 1 or 2. */
  version: number;
  issuer: DistinguishedName;
  issuerDer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  /** CRL number as lowercase hex (no leading zeros) and, when it fits, as a number. */
  crlNumber?: string;
  crlNumberCritical: boolean;
  authorityKeyId?: Buffer;
  /** True when the CRL carries a deltaCRLIndicator (this model does not merge deltas). */
  isDelta: boolean;
  revoked: RevokedEntry[];
  signatureAlgorithm: string;
  signatureAlgorithmParams: Buffer | undefined;
  tbsSignatureAlgorithm: string;
  signature: Buffer;
  issuingDistributionPoint?: IssuingDistributionPoint;
  extensions: CrlExtension[];
  /** CRL extensions marked critical that this parser does not understand. */
  unknownCritical: string[];
  /**
   * RFC 5280 violations that do not stop parsing (missing or critical CRL number, extensions in a
   * v1 CRL, duplicate extensions, a mismatched inner signature algorithm). Verifiers reject such CRLs.
   */
  problems: string[];
}

const BAD_CRL_FIX =
  'Check that the file is a CRL (openssl crl -in FILE -noout -text) and was downloaded completely; fetch it again from the CA.';

function badCrl(why: string, cause?: unknown): MtlsError {
  return new MtlsError('MTLS_PKI_BAD_CRL', `Not a valid certificate revocation list: ${why}.`, {
    fix: BAD_CRL_FIX,
    ...(cause === undefined ? {} : { cause }),
  });
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

/**
 * Parses a CRL given as PEM ("X509 CRL") or DER. Structural errors throw MTLS_PKI_BAD_CRL; RFC 5280
 * violations that leave the structure readable are listed in `problems`.
 */
export function parseCrl(input: Buffer | string): Crl {
  let buf: Buffer;
  if (typeof input === 'string' || isProbablyPem(input)) {
    if (!isProbablyPem(input)) throw badCrl('the text holds no PEM block');
    const blocks = decodePem(input, 'CRL');
    const block = blocks.find((b) => b.label === 'X509 CRL') ?? blocks.find((b) => b.label === 'CRL');
    if (!block) {
      throw new MtlsError(
        'MTLS_PKI_WRONG_OBJECT',
        `Expected a CRL ("X509 CRL"), found ${blocks.map((b) => b.label).join(', ')}.`,
        {
          fix: 'Pass the CRL file ("-----BEGIN X509 CRL-----"); run "mtls inspect FILE" to see what a file holds.',
        },
      );
    }
    buf = block.der;
  } else {
    buf = Buffer.from(input);
  }
  try {
    return parseInner(buf);
  } catch (e) {
    if (e instanceof MtlsError) throw e;
    throw badCrl((e as Error).message, e);
  }
}

function algorithmOf(node: der.Node): { oid: string; params: Buffer | undefined; raw: Buffer } {
  const [o, p] = der.children(der.expect(node, der.Tag.SEQUENCE, 'AlgorithmIdentifier'));
  return { oid: der.readOid(o!), params: p ? Buffer.from(der.raw(p)) : undefined, raw: der.raw(node) };
}

function isTime(n: der.Node | undefined): n is der.Node {
  return n !== undefined && (n.tag === der.Tag.UTC_TIME || n.tag === der.Tag.GENERALIZED_TIME);
}

function parseInner(buf: Buffer): Crl {
  const {
    tbs: tbsNode,
    algorithm: sigAlgNode,
    signature: sigNode,
  } = der.readSignedEnvelope(buf, 'CertificateList', 'TBSCertList');
  const f = der.children(tbsNode);
  let i = 0;
  let version = 1;
  if (f[0]?.tag === der.Tag.INTEGER) {
    const v = der.readSmallInt(f[0]);
    if (v !== 1) throw new der.DerError(`unknown CRL version ${v + 1}`);
    version = 2;
    i++;
  }
  const tbsAlg = algorithmOf(der.expect(f[i++], der.Tag.SEQUENCE, 'signature'));
  const issuerNode = der.expect(f[i++], der.Tag.SEQUENCE, 'issuer');
  const thisNode = f[i++];
  if (!isTime(thisNode)) throw new der.DerError('thisUpdate is missing or not a time');
  const thisUpdate = der.readTime(thisNode);
  let nextUpdate: Date | undefined;
  if (isTime(f[i])) nextUpdate = der.readTime(f[i++]!);
  const problems: string[] = [];
  const revoked: RevokedEntry[] = [];
  if (f[i]?.tag === der.Tag.SEQUENCE) {
    const list = der.children(f[i++]!);
    if (list.length === 0) problems.push('revokedCertificates is present but empty (it must be omitted)');
    for (const entry of list) revoked.push(readEntry(entry, version, problems));
  }
  let extWrapper: der.Node | undefined;
  if (f[i]?.tag === 0xa0) extWrapper = f[i++];
  if (i !== f.length)
    throw new der.DerError(`unexpected field tag 0x${f[i]!.tag.toString(16)} in TBSCertList`);
  const outer = algorithmOf(sigAlgNode);
  if (!outer.raw.equals(tbsAlg.raw))
    problems.push('the signature algorithm inside TBSCertList differs from the outer one');
  const sig = der.readBitString(sigNode);
  if (sig.unusedBits !== 0) throw new der.DerError('signature BIT STRING has unused bits');

  const crl: Crl = {
    der: buf,
    tbs: der.raw(tbsNode),
    version,
    issuer: decodeName(issuerNode),
    issuerDer: der.raw(issuerNode),
    thisUpdate,
    ...(nextUpdate ? { nextUpdate } : {}),
    crlNumberCritical: false,
    isDelta: false,
    revoked,
    signatureAlgorithm: outer.oid,
    signatureAlgorithmParams: outer.params,
    tbsSignatureAlgorithm: tbsAlg.oid,
    signature: sig.bytes,
    extensions: [],
    unknownCritical: [],
    problems,
  };
  if (crl.issuer.length === 0) problems.push('the issuer name is empty');
  if (!nextUpdate) problems.push('nextUpdate is missing (conforming CAs must include it)');
  if (extWrapper) {
    if (version !== 2) problems.push('crlExtensions require version 2');
    readCrlExtensions(crl, extWrapper);
  }
  if (crl.crlNumber === undefined)
    problems.push('the CRL number extension is missing (RFC 5280 5.2.3: it is mandatory)');
  if (crl.crlNumberCritical)
    problems.push('the CRL number extension is marked critical (RFC 5280 5.2.3: it must be non-critical)');
  return crl;
}

function readExtensionList(wrapper: der.Node): CrlExtension[] {
  const out: CrlExtension[] = [];
  for (const e of der.children(der.expect(wrapper, der.Tag.SEQUENCE, 'Extensions'))) {
    const parts = der.children(der.expect(e, der.Tag.SEQUENCE, 'Extension'));
    const oid = der.readOid(parts[0]!);
    let critical = false;
    let idx = 1;
    if (parts[1]?.tag === der.Tag.BOOLEAN) {
      critical = der.readBoolean(parts[1]);
      if (!critical) throw new der.DerError('critical=FALSE must be omitted in DER');
      idx = 2;
    }
    const value = Buffer.from(der.content(der.expect(parts[idx], der.Tag.OCTET_STRING, 'extnValue')));
    if (parts.length !== idx + 1) throw new der.DerError('trailing fields in Extension');
    out.push({ oid, critical, value });
  }
  if (out.length === 0) throw new der.DerError('Extensions must not be empty');
  return out;
}

function readEntry(node: der.Node, version: number, problems: string[]): RevokedEntry {
  const [serialNode, dateNode, extNode, extra] = der.children(
    der.expect(node, der.Tag.SEQUENCE, 'revoked entry'),
  );
  if (extra) throw new der.DerError('revoked entry has extra fields');
  const serialBytes = der.readIntegerBytes(der.expect(serialNode, der.Tag.INTEGER, 'userCertificate'));
  if (!isTime(dateNode)) throw new der.DerError('revocationDate is missing or not a time');
  const entry: RevokedEntry = {
    serial: stripZeros(serialBytes).toString('hex'),
    revocationDate: der.readTime(dateNode),
    unknownCritical: [],
  };
  if (extNode) {
    if (version !== 2) problems.push('crlEntryExtensions require version 2');
    for (const ext of readExtensionList(extNode)) {
      switch (ext.oid) {
        case OID.crlReason: {
          const v = der.readOne(ext.value);
          der.expect(v, der.Tag.ENUMERATED, 'CRLReason');
          const c = der.content(v);
          const code = c.length === 1 ? c[0]! : -1;
          const name = CRL_REASONS[code];
          if (name === undefined || name === '') throw new der.DerError(`unknown CRLReason ${code}`);
          entry.reason = name;
          break;
        }
        case OID.invalidityDate:
          entry.invalidityDate = der.readTime(der.readOne(ext.value));
          break;
        default:
          // certificateIssuer (indirect CRLs) changes whose entry this is: not supported, so it must not be ignored.
          if (ext.critical || ext.oid === OID.certificateIssuer) entry.unknownCritical.push(ext.oid);
      }
    }
  }
  return entry;
}

const IDP_REASON_BITS = [
  'unused',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  'privilegeWithdrawn',
  'aACompromise',
];

function readCrlExtensions(crl: Crl, wrapper: der.Node): void {
  const inner = der.children(wrapper);
  if (inner.length !== 1) throw new der.DerError('bad crlExtensions wrapper');
  const seen = new Set<string>();
  for (const ext of readExtensionList(inner[0]!)) {
    if (seen.has(ext.oid)) crl.problems.push(`duplicate extension ${ext.oid}`);
    seen.add(ext.oid);
    crl.extensions.push(ext);
    switch (ext.oid) {
      case OID.crlNumber: {
        const n = der.readIntegerBytes(der.readOne(ext.value));
        if (n[0]! & 0x80) crl.problems.push('the CRL number is negative');
        if (n.length > 21) crl.problems.push('the CRL number is longer than 20 octets');
        crl.crlNumber = stripZeros(n).toString('hex');
        crl.crlNumberCritical = ext.critical;
        break;
      }
      case OID.authorityKeyIdentifier:
        for (const p of der.children(
          der.expect(der.readOne(ext.value), der.Tag.SEQUENCE, 'AuthorityKeyIdentifier'),
        )) {
          if (p.tag === 0x80) crl.authorityKeyId = Buffer.from(der.content(p));
        }
        if (ext.critical) crl.problems.push('the authority key identifier is marked critical');
        break;
      case OID.deltaCrlIndicator:
        crl.isDelta = true;
        break;
      case OID.issuingDistributionPoint:
        crl.issuingDistributionPoint = readIdp(ext);
        break;
      case OID.issuerAltName:
      case OID.freshestCrl:
      case OID.authorityInfoAccess:
        break;
      default:
        if (ext.critical) crl.unknownCritical.push(ext.oid);
    }
  }
}

function readIdp(ext: CrlExtension): IssuingDistributionPoint {
  const idp: IssuingDistributionPoint = {
    critical: ext.critical,
    fullName: [],
    onlyContainsUserCerts: false,
    onlyContainsCACerts: false,
    indirectCrl: false,
    onlyContainsAttributeCerts: false,
  };
  for (const p of der.children(
    der.expect(der.readOne(ext.value), der.Tag.SEQUENCE, 'IssuingDistributionPoint'),
  )) {
    const flag = (): boolean => {
      const c = der.content(p);
      if (c.length !== 1 || (c[0] !== 0 && c[0] !== 0xff))
        throw new der.DerError('bad BOOLEAN in IssuingDistributionPoint');
      return c[0] === 0xff;
    };
    switch (p.tag) {
      case 0xa0: {
        const [name] = der.children(p);
        if (name?.tag === 0xa0) idp.fullName = der.children(name).map((n) => decodeGeneralName(n));
        break;
      }
      case 0x81:
        idp.onlyContainsUserCerts = flag();
        break;
      case 0x82:
        idp.onlyContainsCACerts = flag();
        break;
      case 0x83: {
        const c = der.content(p);
        const unused = c[0] ?? 0;
        const bits: string[] = [];
        for (let b = 0; b < (c.length - 1) * 8 - unused; b++)
          if (c[1 + (b >> 3)]! & (0x80 >> (b & 7))) bits.push(IDP_REASON_BITS[b] ?? String(b));
        idp.onlySomeReasons = bits;
        break;
      }
      case 0x84:
        idp.indirectCrl = flag();
        break;
      case 0x85:
        idp.onlyContainsAttributeCerts = flag();
        break;
      default:
        throw new der.DerError(`unexpected field 0x${p.tag.toString(16)} in IssuingDistributionPoint`);
    }
  }
  return idp;
}

/** The CRL issuer's name as text, for messages. */
export function crlIssuerString(crl: Crl): string {
  return formatName(crl.issuer);
}

/** True when `crl`'s signature verifies with `issuerCert`'s public key (names are not compared). */
export function verifyCrlSignature(crl: Crl, issuerCert: Certificate): boolean {
  if (crl.signatureAlgorithm !== crl.tbsSignatureAlgorithm) return false;
  let key: KeyObject;
  try {
    key = publicKeyObject(issuerCert);
  } catch {
    return false;
  }
  return verifySignature(crl.tbs, crl.signature, crl.signatureAlgorithm, crl.signatureAlgorithmParams, key);
}

/** True when `serial` (lowercase hex, the Certificate.serial convention) is listed, ignoring removeFromCRL entries. */
export function findRevoked(crl: Crl, serial: string): RevokedEntry | undefined {
  let index = revokedIndex.get(crl);
  if (!index) {
    index = new Map(crl.revoked.map((e) => [e.serial, e]));
    revokedIndex.set(crl, index);
  }
  const hit = index.get(serial);
  return hit && hit.reason !== 'removeFromCRL' ? hit : undefined;
}

const revokedIndex = new WeakMap<Crl, Map<string, RevokedEntry>>();

// ---------------------------------------------------------------- writer

export interface CrlEntryInput {
  /** Lowercase or uppercase hex (colons allowed), big-endian bytes, or a bigint. */
  serial: string | Buffer | bigint;
  revokedAt: Date;
  /** Omitted or 'unspecified': no reasonCode extension (RFC 5280 5.3.1 recommends omitting it). */
  reason?: CrlReason;
}

export interface CreateCrlOptions {
  issuerCert: Certificate;
  issuerKey: KeyObject;
  entries: readonly CrlEntryInput[];
  thisUpdate: Date;
  nextUpdate: Date;
  /** Monotonically increasing CRL number (RFC 5280 5.2.3), at most 20 octets. */
  crlNumber: number | bigint;
}

export interface CreatedCrl {
  der: Buffer;
  pem: string;
}

interface CrlIssuerParts {
  alg: ReturnType<typeof signatureAlgorithmFor>;
  akiExt: Buffer;
}

const issuerPartsCache = new WeakMap<Certificate, WeakMap<KeyObject, CrlIssuerParts>>();
const VERSION_2 = Buffer.from([der.Tag.INTEGER, 1, 1]);
const REASON_EXT_PREFIX = der.oid(OID.crlReason);

function issuerParts(cert: Certificate, key: KeyObject): CrlIssuerParts {
  let byKey = issuerPartsCache.get(cert);
  let hit = byKey?.get(key);
  if (hit) return hit;
  if (!spkiOf(key).equals(cert.spki)) {
    throw new MtlsError(
      'MTLS_PKI_KEY_MISMATCH',
      'The CRL signing key does not belong to the issuer certificate.',
      {
        fix: 'Sign the CRL with the private key of the CA whose certificate is given.',
      },
    );
  }
  if (cert.keyUsage && !cert.keyUsage.includes('cRLSign')) {
    throw new MtlsError(
      'MTLS_PKI_PROFILE_VIOLATION',
      'The issuer certificate does not allow CRL signing (keyUsage lacks cRLSign).',
      {
        fix: 'Issue CRLs from a CA whose certificate has keyUsage cRLSign (mtls CA profiles set it).',
      },
    );
  }
  const keyId = cert.subjectKeyId ?? createHash('sha1').update(cert.publicKey.keyBits).digest();
  hit = {
    alg: signatureAlgorithmFor(key),
    akiExt: der.seq(der.oid(OID.authorityKeyIdentifier), der.octetString(der.seq(der.ctx(0, keyId, false)))),
  };
  if (!byKey) {
    byKey = new WeakMap();
    issuerPartsCache.set(cert, byKey);
  }
  byKey.set(key, hit);
  return hit;
}

function serialBytes(s: CrlEntryInput['serial']): Buffer {
  if (typeof s === 'bigint') {
    if (s <= 0n) throw badSerial(s.toString());
    return der.integer(s);
  }
  let bytes: Buffer;
  if (Buffer.isBuffer(s)) bytes = s;
  else {
    const hex = s.replace(/:/g, '').toLowerCase();
    if (!/^[0-9a-f]+$/.test(hex)) throw badSerial(s);
    bytes = Buffer.from(hex.length % 2 ? '0' + hex : hex, 'hex');
  }
  const enc = der.integer(bytes);
  if (enc.length - 2 > 21) throw badSerial(Buffer.isBuffer(s) ? s.toString('hex') : s);
  return enc;
}

function badSerial(s: string): MtlsError {
  return new MtlsError(
    'MTLS_PKI_BAD_DER',
    `The serial number "${s}" cannot go on a CRL (not positive hex of at most 20 octets).`,
    {
      fix: 'Give the serial as printed by "mtls inspect" (lowercase hex, e.g. 3f9a01...).',
    },
  );
}

/**
 * Encodes and signs a v2 CRL (RFC 5280 section 5) with the CRL number and authority key identifier
 * extensions and a reasonCode entry extension where a reason other than unspecified is given.
 */
export function createCrl(opts: CreateCrlOptions): CreatedCrl {
  const { issuerCert, issuerKey } = opts;
  const parts = issuerParts(issuerCert, issuerKey);
  const t = opts.thisUpdate.getTime();
  const n = opts.nextUpdate.getTime();
  if (!Number.isFinite(t) || !Number.isFinite(n) || n <= t) {
    throw new MtlsError('MTLS_PKI_BAD_VALIDITY', 'The CRL nextUpdate must be after thisUpdate.', {
      fix: 'Give a positive CRL lifetime such as 24h.',
    });
  }
  const crlNumber = BigInt(opts.crlNumber);
  if (crlNumber < 0n || crlNumber >= 1n << 159n) {
    throw new MtlsError('MTLS_PKI_BAD_DER', `The CRL number ${crlNumber} is out of range (0 to 2^159-1).`, {
      fix: 'Use the next number after the last published CRL.',
    });
  }
  const entries: Buffer[] = new Array<Buffer>(opts.entries.length);
  for (let k = 0; k < opts.entries.length; k++) {
    const e = opts.entries[k]!;
    const fields = [serialBytes(e.serial), der.time(e.revokedAt)];
    if (e.reason !== undefined && e.reason !== 'unspecified') {
      const code = CRL_REASONS.indexOf(e.reason);
      if (code < 0)
        throw new MtlsError('MTLS_PKI_BAD_DER', `Unknown revocation reason "${String(e.reason)}".`, {
          fix: `Use one of: ${CRL_REASONS.filter(Boolean).join(', ')}.`,
        });
      const reasonExt = der.seq(
        REASON_EXT_PREFIX,
        der.octetString(Buffer.from([der.Tag.ENUMERATED, 1, code])),
      );
      fields.push(der.seq(reasonExt));
    }
    entries[k] = der.seq(...fields);
  }
  const numberExt = der.seq(der.oid(OID.crlNumber), der.octetString(der.integer(crlNumber)));
  const tbsFields = [
    VERSION_2,
    parts.alg.identifier,
    issuerCert.subjectDer,
    der.time(opts.thisUpdate),
    der.time(opts.nextUpdate),
  ];
  // RFC 5280 5.1.2.6: when there are no revoked certificates the list is absent, not empty.
  if (entries.length > 0) tbsFields.push(der.tlv(der.Tag.SEQUENCE, Buffer.concat(entries)));
  tbsFields.push(der.ctx(0, der.seq(parts.akiExt, numberExt)));
  const tbs = der.seq(...tbsFields);
  const signature = cryptoSign(parts.alg.hash, tbs, issuerKey);
  const out = der.seq(tbs, parts.alg.identifier, der.bitString(signature));
  return { der: out, pem: encodePem('X509 CRL', out) };
}
