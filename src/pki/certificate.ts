// Certificate parsing into a plain model (our DER reader; no object tree), plus fingerprints and
// signature checks through node:crypto.
import { createHash, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import * as der from './der.js';
import {
  decodeGeneralName,
  decodeGeneralNames,
  decodeName,
  formatName,
  type DistinguishedName,
  type GeneralName,
} from './names.js';
import { OID } from './oids.js';
import { describePublicKey, importSpki, type PublicKeyInfo } from './spki.js';

export const KEY_USAGE_BITS = [
  'digitalSignature',
  'nonRepudiation',
  'keyEncipherment',
  'dataEncipherment',
  'keyAgreement',
  'keyCertSign',
  'cRLSign',
  'encipherOnly',
  'decipherOnly',
] as const;
export type KeyUsage = (typeof KEY_USAGE_BITS)[number];

export interface Extension {
  oid: string;
  critical: boolean;
  value: Buffer;
}

export interface BasicConstraints {
  ca: boolean;
  pathLen?: number;
}

export interface NameConstraints {
  permitted: GeneralName[];
  excluded: GeneralName[];
}

export interface AuthorityKeyId {
  keyId?: Buffer;
  hasIssuerAndSerial: boolean;
}

export interface PolicyConstraints {
  requireExplicitPolicy?: number;
  inhibitPolicyMapping?: number;
}

export interface Certificate {
  der: Buffer;
  /** The TBSCertificate bytes, what the signature covers. */
  tbs: Buffer;
  version: number;
  /** Lowercase hex of the serial's encoded bytes, without leading zero padding. */
  serial: string;
  serialNegative: boolean;
  serialLength: number;
  /** signatureAlgorithm OID of the outer Certificate. */
  signatureAlgorithm: string;
  signatureAlgorithmParams: Buffer | undefined;
  /** signature OID inside TBSCertificate; must equal the outer one. */
  tbsSignatureAlgorithm: string;
  tbsSignatureAlgorithmRaw: Buffer;
  outerSignatureAlgorithmRaw: Buffer;
  signature: Buffer;
  issuer: DistinguishedName;
  subject: DistinguishedName;
  issuerDer: Buffer;
  subjectDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  spki: Buffer;
  publicKey: PublicKeyInfo;
  extensions: Extension[];
  duplicateExtensions: string[];
  basicConstraints?: BasicConstraints;
  keyUsage?: KeyUsage[];
  extKeyUsage?: string[];
  subjectAltNames: GeneralName[];
  hasSan: boolean;
  sanCritical: boolean;
  subjectKeyId?: Buffer;
  authorityKeyId?: AuthorityKeyId;
  nameConstraints?: NameConstraints;
  crlDistributionPoints: string[];
  ocspUrls: string[];
  caIssuerUrls: string[];
  policies?: string[];
  policyConstraints?: PolicyConstraints;
  inhibitAnyPolicy?: number;
  /** Extensions marked critical that this parser does not understand. */
  unknownCritical: string[];
  /** Problems found while reading extensions (malformed encodings); the certificate still parses. */
  extensionErrors: string[];
}

/** Extensions this parser interprets; a critical one outside this set is unknownCritical. */
export const UNDERSTOOD_EXTENSIONS: ReadonlySet<string> = new Set<string>([
  OID.basicConstraints,
  OID.keyUsage,
  OID.extKeyUsage,
  OID.subjectAltName,
  OID.subjectKeyIdentifier,
  OID.authorityKeyIdentifier,
  OID.nameConstraints,
  OID.crlDistributionPoints,
  OID.authorityInfoAccess,
  OID.certificatePolicies,
  OID.policyConstraints,
  OID.inhibitAnyPolicy,
  OID.policyMappings,
  OID.issuerAltName,
]);

function algorithmOf(node: der.Node): { oid: string; params: Buffer | undefined } {
  const [o, p] = der.children(der.expect(node, der.Tag.SEQUENCE, 'AlgorithmIdentifier'));
  return { oid: der.readOid(o!), params: p ? Buffer.from(der.raw(p)) : undefined };
}

/** Parses one DER certificate. Throws MTLS_PKI_BAD_CERTIFICATE with what was wrong. */
export function parseCertificate(input: Buffer): Certificate {
  const buf = Buffer.from(input);
  try {
    return parseInner(buf);
  } catch (e) {
    if (e instanceof MtlsError) throw e;
    throw new MtlsError(
      'MTLS_PKI_BAD_CERTIFICATE',
      `Not a valid X.509 certificate: ${(e as Error).message}.`,
      {
        fix: 'Check that the file is a certificate (openssl x509 -in FILE -noout -text) and was not truncated.',
        cause: e,
      },
    );
  }
}

function parseInner(buf: Buffer): Certificate {
  const {
    tbs: tbsNode,
    algorithm: sigAlgNode,
    signature: sigNode,
  } = der.readSignedEnvelope(buf, 'Certificate', 'TBSCertificate');
  const fields = der.children(tbsNode);
  let i = 0;
  let version = 1;
  if (fields[0]?.tag === 0xa0) {
    const v = der.children(fields[0]);
    if (v.length !== 1) throw new der.DerError('bad version');
    version = der.readSmallInt(v[0]!) + 1;
    if (version < 1 || version > 3) throw new der.DerError(`unknown version ${version}`);
    if (version === 1) throw new der.DerError('version 1 must not be encoded explicitly (DER default)');
    i++;
  }
  const serialBytes = der.readIntegerBytes(der.expect(fields[i++], der.Tag.INTEGER, 'serialNumber'));
  if (serialBytes.length > 1 && serialBytes[0] === 0 && !(serialBytes[1]! & 0x80))
    throw new der.DerError('non-minimal serial encoding');
  const tbsSigNode = fields[i++]!;
  const tbsAlg = algorithmOf(tbsSigNode);
  const issuerNode = der.expect(fields[i++], der.Tag.SEQUENCE, 'issuer');
  const validity = der.children(der.expect(fields[i++], der.Tag.SEQUENCE, 'validity'));
  if (validity.length !== 2) throw new der.DerError('validity must have two times');
  const subjectNode = der.expect(fields[i++], der.Tag.SEQUENCE, 'subject');
  const spkiNode = der.expect(fields[i++], der.Tag.SEQUENCE, 'subjectPublicKeyInfo');
  let extNode: der.Node | undefined;
  for (; i < fields.length; i++) {
    const f = fields[i]!;
    if (f.tag === 0x81 || f.tag === 0x82) {
      if (version < 2) throw new der.DerError('unique identifiers require version 2 or 3');
      continue;
    }
    if (f.tag === 0xa3) {
      if (version !== 3) throw new der.DerError('extensions require version 3');
      extNode = f;
      continue;
    }
    throw new der.DerError(`unexpected field tag 0x${f.tag.toString(16)} in TBSCertificate`);
  }
  const outer = algorithmOf(sigAlgNode);
  const sig = der.readBitString(sigNode);
  const spki = Buffer.from(der.raw(spkiNode));

  const cert: Certificate = {
    der: buf,
    tbs: der.raw(tbsNode),
    version,
    serial: stripZeros(serialBytes).toString('hex'),
    serialNegative: (serialBytes[0]! & 0x80) !== 0,
    serialLength: serialBytes.length,
    signatureAlgorithm: outer.oid,
    signatureAlgorithmParams: outer.params,
    tbsSignatureAlgorithm: tbsAlg.oid,
    tbsSignatureAlgorithmRaw: der.raw(tbsSigNode),
    outerSignatureAlgorithmRaw: der.raw(sigAlgNode),
    signature: sig.bytes,
    issuer: decodeName(issuerNode),
    subject: decodeName(subjectNode),
    issuerDer: der.raw(issuerNode),
    subjectDer: der.raw(subjectNode),
    notBefore: der.readTime(validity[0]!),
    notAfter: der.readTime(validity[1]!),
    spki,
    publicKey: describePublicKey(spki),
    extensions: [],
    duplicateExtensions: [],
    subjectAltNames: [],
    hasSan: false,
    sanCritical: false,
    crlDistributionPoints: [],
    ocspUrls: [],
    caIssuerUrls: [],
    unknownCritical: [],
    extensionErrors: [],
  };
  if (extNode) readExtensions(cert, extNode);
  return cert;
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function readExtensions(cert: Certificate, wrapper: der.Node): void {
  const inner = der.children(wrapper);
  if (inner.length !== 1) throw new der.DerError('bad extensions wrapper');
  const list = der.children(der.expect(inner[0], der.Tag.SEQUENCE, 'Extensions'));
  if (list.length === 0) throw new der.DerError('Extensions must not be empty');
  const seen = new Set<string>();
  for (const e of list) {
    const parts = der.children(der.expect(e, der.Tag.SEQUENCE, 'Extension'));
    const oid = der.readOid(parts[0]!);
    let critical = false;
    let idx = 1;
    if (parts[1]?.tag === der.Tag.BOOLEAN) {
      critical = der.readBoolean(parts[1]);
      if (!critical) throw new der.DerError('critical=FALSE must be omitted in DER');
      idx = 2;
    }
    const value = der.content(der.expect(parts[idx], der.Tag.OCTET_STRING, 'extnValue'));
    if (seen.has(oid)) cert.duplicateExtensions.push(oid);
    seen.add(oid);
    cert.extensions.push({ oid, critical, value });
    if (critical && !UNDERSTOOD_EXTENSIONS.has(oid)) cert.unknownCritical.push(oid);
    try {
      applyExtension(cert, oid, critical, der.readOne(value));
    } catch (err) {
      cert.extensionErrors.push(`${oid}: ${(err as Error).message}`);
    }
  }
}

function applyExtension(cert: Certificate, oid: string, critical: boolean, v: der.Node): void {
  switch (oid) {
    case OID.basicConstraints: {
      const parts = der.children(der.expect(v, der.Tag.SEQUENCE, 'BasicConstraints'));
      let ca = false;
      let k = 0;
      if (parts[0]?.tag === der.Tag.BOOLEAN) {
        ca = der.readBoolean(parts[0]);
        k = 1;
      }
      const bc: BasicConstraints = { ca };
      if (parts[k]) {
        const n = der.readSmallInt(parts[k]!);
        if (n < 0) throw new der.DerError('negative pathLenConstraint');
        bc.pathLen = n;
      }
      cert.basicConstraints = bc;
      return;
    }
    case OID.keyUsage: {
      const bits = der.readNamedBits(v);
      cert.keyUsage = bits.filter((b) => b < KEY_USAGE_BITS.length).map((b) => KEY_USAGE_BITS[b]!);
      return;
    }
    case OID.extKeyUsage: {
      const list = der.children(der.expect(v, der.Tag.SEQUENCE, 'ExtKeyUsage')).map((n) => der.readOid(n));
      if (list.length === 0) throw new der.DerError('empty ExtKeyUsage');
      cert.extKeyUsage = list;
      return;
    }
    case OID.subjectAltName:
      cert.hasSan = true;
      cert.sanCritical = critical;
      cert.subjectAltNames = decodeGeneralNames(v);
      return;
    case OID.subjectKeyIdentifier:
      cert.subjectKeyId = Buffer.from(
        der.content(der.expect(v, der.Tag.OCTET_STRING, 'SubjectKeyIdentifier')),
      );
      return;
    case OID.authorityKeyIdentifier: {
      const aki: AuthorityKeyId = { hasIssuerAndSerial: false };
      for (const p of der.children(der.expect(v, der.Tag.SEQUENCE, 'AuthorityKeyIdentifier'))) {
        if (p.tag === 0x80) aki.keyId = Buffer.from(der.content(p));
        else aki.hasIssuerAndSerial = true;
      }
      cert.authorityKeyId = aki;
      return;
    }
    case OID.nameConstraints: {
      const nc: NameConstraints = { permitted: [], excluded: [] };
      for (const p of der.children(der.expect(v, der.Tag.SEQUENCE, 'NameConstraints'))) {
        const subtrees = der.children(p).map((st) => {
          const [base] = der.children(der.expect(st, der.Tag.SEQUENCE, 'GeneralSubtree'));
          return decodeGeneralName(base!, true);
        });
        if (p.tag === 0xa0) nc.permitted = subtrees;
        else if (p.tag === 0xa1) nc.excluded = subtrees;
      }
      cert.nameConstraints = nc;
      return;
    }
    case OID.crlDistributionPoints: {
      for (const dp of der.children(der.expect(v, der.Tag.SEQUENCE, 'CRLDistributionPoints'))) {
        for (const f of der.children(dp)) {
          if (f.tag !== 0xa0) continue;
          const [full] = der.children(f);
          if (full?.tag === 0xa0) {
            for (const gn of der.children(full)) {
              const n = decodeGeneralName(gn);
              if (n.type === 'uri') cert.crlDistributionPoints.push(n.value);
            }
          }
        }
      }
      return;
    }
    case OID.authorityInfoAccess: {
      for (const ad of der.children(der.expect(v, der.Tag.SEQUENCE, 'AuthorityInfoAccess'))) {
        const [m, loc] = der.children(ad);
        const method = der.readOid(m!);
        const n = decodeGeneralName(loc!);
        if (n.type !== 'uri') continue;
        if (method === OID.ocsp) cert.ocspUrls.push(n.value);
        else if (method === OID.caIssuers) cert.caIssuerUrls.push(n.value);
      }
      return;
    }
    case OID.certificatePolicies:
      cert.policies = der
        .children(der.expect(v, der.Tag.SEQUENCE, 'CertificatePolicies'))
        .map((pi) => der.readOid(der.children(pi)[0]!));
      return;
    case OID.policyConstraints: {
      const pc: PolicyConstraints = {};
      for (const p of der.children(v)) {
        const n = bytesToInt(der.content(p));
        if (p.tag === 0x80) pc.requireExplicitPolicy = n;
        if (p.tag === 0x81) pc.inhibitPolicyMapping = n;
      }
      cert.policyConstraints = pc;
      return;
    }
    case OID.inhibitAnyPolicy:
      cert.inhibitAnyPolicy = der.readSmallInt(v);
      return;
  }
}

function bytesToInt(b: Buffer): number {
  let n = 0;
  for (const x of b) n = n * 256 + x;
  return n;
}

// ------------------------------------------------------------------ helpers

export function fingerprint256(cert: Certificate): string {
  return createHash('sha256')
    .update(cert.der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

export function isSelfIssued(cert: Certificate): boolean {
  return cert.issuerDer.equals(cert.subjectDer);
}

export function subjectString(cert: Certificate): string {
  return formatName(cert.subject);
}

export function issuerString(cert: Certificate): string {
  return formatName(cert.issuer);
}

const keyCache = new WeakMap<Buffer, KeyObject>();

export function publicKeyObject(cert: Certificate): KeyObject {
  let k = keyCache.get(cert.spki);
  if (!k) {
    k = importSpki(cert.spki);
    keyCache.set(cert.spki, k);
  }
  return k;
}

/** Hash name for node:crypto and padding for a signature algorithm OID; undefined if unsupported. */
export function signatureScheme(
  oid: string,
  params?: Buffer,
): { hash: string | null; pss?: { saltLength: number } } | undefined {
  switch (oid) {
    case OID.sha256WithRSAEncryption:
    case OID.ecdsaWithSHA256:
      return { hash: 'sha256' };
    case OID.sha384WithRSAEncryption:
    case OID.ecdsaWithSHA384:
      return { hash: 'sha384' };
    case OID.sha512WithRSAEncryption:
    case OID.ecdsaWithSHA512:
      return { hash: 'sha512' };
    case OID.sha1WithRSAEncryption:
    case OID.ecdsaWithSHA1:
      return { hash: 'sha1' };
    case OID.ed25519:
    case OID.ed448:
      return { hash: null };
    case OID.rsassaPss:
      return params ? pssScheme(params) : undefined;
    default:
      return undefined;
  }
}

function pssScheme(params: Buffer): { hash: string; pss: { saltLength: number } } | undefined {
  try {
    let hash = 'sha1';
    let saltLength = 20;
    for (const f of der.children(der.readOne(params))) {
      const [inner] = der.children(f);
      if (f.tag === 0xa0) {
        const o = der.readOid(der.children(inner!)[0]!);
        hash =
          (
            {
              [OID.sha256]: 'sha256',
              [OID.sha384]: 'sha384',
              [OID.sha512]: 'sha512',
              [OID.sha1]: 'sha1',
            } as Record<string, string>
          )[o] ?? '';
      } else if (f.tag === 0xa2) saltLength = der.readSmallInt(inner!);
    }
    return hash ? { hash, pss: { saltLength } } : undefined;
  } catch {
    return undefined;
  }
}

/** True when `signature` over `data` verifies with `key` under the algorithm `oid`. */
export function verifySignature(
  data: Buffer,
  signature: Buffer,
  oid: string,
  params: Buffer | undefined,
  key: KeyObject,
): boolean {
  const scheme = signatureScheme(oid, params);
  if (!scheme) return false;
  try {
    if (scheme.pss) {
      return cryptoVerify(
        scheme.hash,
        data,
        { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: scheme.pss.saltLength },
        signature,
      );
    }
    return cryptoVerify(scheme.hash, data, key, signature);
  } catch {
    return false;
  }
}

/** True when `cert`'s signature verifies with `issuer`'s public key. */
export function isSignedBy(cert: Certificate, issuer: Certificate): boolean {
  let key: KeyObject;
  try {
    key = publicKeyObject(issuer);
  } catch {
    return false;
  }
  return verifySignature(
    cert.tbs,
    cert.signature,
    cert.signatureAlgorithm,
    cert.signatureAlgorithmParams,
    key,
  );
}

export function extension(cert: Certificate, oid: string): Extension | undefined {
  return cert.extensions.find((e) => e.oid === oid);
}
