// Issuance fast path: TBSCertificate encoded with the small DER writer and signed with node:crypto.
// Everything that depends only on the issuer (name, AKI, signature algorithm) is encoded once.
import { createHash, hash, randomFillSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import type { Certificate, KeyUsage } from './certificate.js';
import { KEY_USAGE_BITS, parseCertificate } from './certificate.js';
import * as der from './der.js';
import { signatureAlgorithmFor, spkiOf, type SignatureAlgorithm } from './keys.js';
import { encodeGeneralNames, encodeName, validateSan, type DistinguishedName, type San } from './names.js';
import { OID } from './oids.js';
import { encodePem } from './pem.js';
import { getProfile, type Profile, type ProfileName } from './profiles.js';
import { describePublicKey } from './spki.js';

export interface IssueRequest {
  profile: ProfileName;
  subject?: DistinguishedName;
  sans?: readonly San[];
  /** SubjectPublicKeyInfo DER of the key being certified. */
  publicKey: Buffer;
  /** Defaults to now minus one minute (clock skew). */
  notBefore?: Date;
  /** Lifetime from "now"; defaults to the profile's. Ignored when notAfter is given. */
  ttlMs?: number;
  notAfter?: Date;
  /** Big-endian serial bytes; defaults to 128 random bits. */
  serial?: Buffer;
  /** CA profiles: overrides the profile's pathLenConstraint. */
  pathLen?: number;
  ocspUrls?: readonly string[];
  caIssuerUrls?: readonly string[];
  crlUrls?: readonly string[];
  /** Skip profile checks (names present, TTL ceiling); only for tests that build broken certificates. */
  unchecked?: boolean;
}

export interface IssuedCertificate {
  der: Buffer;
  pem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

export const CLOCK_SKEW_MS = 60_000;

// ---------------------------------------------------------------- constants

const VERSION_3 = Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]);

function ext(oidStr: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? der.seq(der.oid(oidStr), der.boolean(true), der.octetString(value))
    : der.seq(der.oid(oidStr), der.octetString(value));
}

function keyUsageExt(usages: readonly KeyUsage[]): Buffer {
  return ext(OID.keyUsage, true, der.namedBits(usages.map((u) => KEY_USAGE_BITS.indexOf(u))));
}

function basicConstraintsExt(ca: boolean, pathLen: number | undefined): Buffer {
  const parts: Buffer[] = [];
  if (ca) parts.push(der.boolean(true));
  if (ca && pathLen !== undefined) parts.push(der.integer(pathLen));
  return ext(OID.basicConstraints, true, der.seq(...parts));
}

const staticExtCache = new Map<string, Buffer>();

/** BasicConstraints + KeyUsage + EKU for a profile and key algorithm: the same bytes every time. */
function staticExtensions(profile: Profile, rsa: boolean, pathLen: number | undefined): Buffer {
  const key = `${profile.name}:${rsa}:${pathLen}`;
  let hit = staticExtCache.get(key);
  if (!hit) {
    const usages = rsa ? [...profile.keyUsage, ...profile.rsaKeyUsage] : profile.keyUsage;
    const parts = [basicConstraintsExt(profile.ca, pathLen), keyUsageExt(usages)];
    if (profile.extKeyUsage.length)
      parts.push(ext(OID.extKeyUsage, false, der.seq(...profile.extKeyUsage.map((o) => der.oid(o)))));
    if (profile.ocspNoCheck) parts.push(ext(OID.ocspNoCheck, false, der.NULL));
    hit = Buffer.concat(parts);
    staticExtCache.set(key, hit);
  }
  return hit;
}

// SEQUENCE { OID subjectKeyIdentifier, OCTET STRING { OCTET STRING (20 bytes) } }: only the SHA-1 varies.
const SKI_PREFIX = ext(OID.subjectKeyIdentifier, false, der.octetString(Buffer.alloc(20))).subarray(0, -20);

function skiExt(keyBits: Buffer): Buffer {
  const out = Buffer.allocUnsafe(SKI_PREFIX.length + 20);
  SKI_PREFIX.copy(out, 0);
  hash('sha1', keyBits, 'buffer').copy(out, SKI_PREFIX.length);
  return out;
}

function akiExt(keyId: Buffer): Buffer {
  return ext(OID.authorityKeyIdentifier, false, der.seq(der.ctx(0, keyId, false)));
}

function uriNames(urls: readonly string[]): Buffer {
  return Buffer.concat(urls.map((u) => der.tlv(0x86, Buffer.from(u, 'latin1'))));
}

function aiaExt(ocsp: readonly string[], caIssuers: readonly string[]): Buffer {
  const ads = [
    ...ocsp.map((u) => der.seq(der.oid(OID.ocsp), der.tlv(0x86, Buffer.from(u, 'latin1')))),
    ...caIssuers.map((u) => der.seq(der.oid(OID.caIssuers), der.tlv(0x86, Buffer.from(u, 'latin1')))),
  ];
  return ext(OID.authorityInfoAccess, false, der.seq(...ads));
}

function cdpExt(urls: readonly string[]): Buffer {
  // DistributionPoint { distributionPoint [0] { fullName [0] GeneralNames } }
  return ext(OID.crlDistributionPoints, false, der.seq(der.seq(der.ctx(0, der.ctx(0, uriNames(urls))))));
}

/** A caller's serial as minimal positive INTEGER content; RFC 5280 4.1.2.2: positive, at most 20 octets. */
function checkedSerial(serial: Buffer): Buffer {
  let i = 0;
  while (i < serial.length && serial[i] === 0) i++;
  const s = serial.subarray(i);
  if (s.length === 0 || s.length > 20) {
    throw new MtlsError(
      'MTLS_PKI_PROFILE_VIOLATION',
      'A certificate serial must be a positive number of at most 20 octets.',
      {
        fix: 'Leave the serial to mtlskit (128 random bits) or give 1 to 20 bytes with a non-zero value.',
      },
    );
  }
  return s;
}

// A pool of random bytes for serials: one getrandom call per 256 certificates.
const serialPool = Buffer.alloc(16 * 256);
let serialPos = serialPool.length;

/** 128 random bits as a positive INTEGER's content bytes (a leading 0x00 when the top bit is set). */
export function randomSerial(): Buffer {
  if (serialPos >= serialPool.length) {
    randomFillSync(serialPool);
    serialPos = 0;
  }
  const s = Buffer.from(serialPool.subarray(serialPos, serialPos + 16));
  serialPos += 16;
  if (s[0] === 0) s[0] = 1; // keep 16 significant bytes: minimal encoding, fixed size
  return s;
}

// ---------------------------------------------------------------- checks

function checkNames(profile: Profile, subject: DistinguishedName, sans: readonly San[]): void {
  const violation = (msg: string, fix: string): never => {
    throw new MtlsError('MTLS_PKI_PROFILE_VIOLATION', `The ${profile.name} profile ${msg}.`, { fix });
  };
  for (const s of sans) validateSan(s, { allowWildcard: profile.allowWildcard });
  const hostSans = sans.filter((s) => s.type === 'dns' || s.type === 'ip');
  const uris = sans.filter((s) => s.type === 'uri');
  if (profile.needsHostSan && hostSans.length === 0) {
    violation(
      'needs at least one DNS or IP subject alternative name (clients ignore the CN)',
      'Add --san dns:<host name clients use> (and ip:<address> if clients connect by IP).',
    );
  }
  if (profile.needsSpiffeId) {
    if (uris.length !== 1 || !uris[0]!.value.startsWith('spiffe://')) {
      violation(
        'needs exactly one URI SAN, a SPIFFE ID (X509-SVID rule)',
        'Give the identity as spiffe://<trust domain>/<path>, e.g. mtls issue spiffe spiffe://example.org/ns/prod/sa/api.',
      );
    }
  }
  if (profile.ca && sans.length > 0)
    violation('takes no subject alternative names', 'Drop --san for CA certificates.');
  if (!profile.ca && !profile.needsSpiffeId && subject.length === 0 && sans.length === 0) {
    violation(
      'needs an identity: a subject CN or a SAN',
      'Give a name (mtls issue client payments) or --san.',
    );
  }
  if (profile.ca && subject.length === 0) violation('needs a subject name', 'Give --name "Example Root CA".');
  if (profile.needsSubject && subject.length === 0)
    violation('needs a subject name', 'Give a subject such as CN=Example OCSP Responder.');
}

// ---------------------------------------------------------------- issuer

export interface CertificateIssuer {
  /** The issuing CA's certificate (undefined only for the self-signing issuer). */
  readonly certificate: Certificate | undefined;
  issue(req: IssueRequest): IssuedCertificate;
}

interface IssuerParts {
  name: Buffer;
  keyId: Buffer | undefined;
  notAfter: Date | undefined;
  key: KeyObject;
  alg: SignatureAlgorithm;
  /** The AuthorityKeyIdentifier extension, encoded on first use. */
  aki?: Buffer;
}

function build(req: IssueRequest, issuer: IssuerParts, clock: Clock, selfSigned: boolean): IssuedCertificate {
  const profile = getProfile(req.profile);
  const subject = req.subject ?? [];
  const sans = req.sans ?? [];
  if (!req.unchecked) checkNames(profile, subject, sans);
  const now = clock.now();
  // Certificates carry whole seconds: truncate here so the returned dates are the encoded ones.
  const notBefore = floorToSecond(req.notBefore ?? new Date(now.getTime() - CLOCK_SKEW_MS));
  const ttl = req.ttlMs ?? profile.defaultTtlMs;
  const notAfter = floorToSecond(req.notAfter ?? new Date(now.getTime() + ttl));
  if (
    !(notAfter.getTime() > notBefore.getTime()) ||
    !Number.isFinite(notAfter.getTime()) ||
    (req.notAfter === undefined && !(ttl > 0))
  ) {
    throw new MtlsError('MTLS_PKI_BAD_VALIDITY', 'The certificate would expire before it becomes valid.', {
      fix: 'Give a positive --ttl such as 24h.',
    });
  }
  if (!req.unchecked && notAfter.getTime() - now.getTime() > profile.maxTtlMs) {
    throw new MtlsError(
      'MTLS_PKI_BAD_VALIDITY',
      `The ${profile.name} profile allows at most ${Math.floor(profile.maxTtlMs / 86_400_000)} days.`,
      {
        fix: `Use a shorter --ttl; short-lived certificates with automatic renewal (mtls agent) are safer.`,
      },
    );
  }
  if (!req.unchecked && issuer.notAfter && notAfter > issuer.notAfter) {
    throw new MtlsError(
      'MTLS_PKI_BAD_VALIDITY',
      `The certificate would outlive its issuer, which expires ${issuer.notAfter.toISOString()}.`,
      {
        fix: 'Use a shorter --ttl, or renew the issuing CA first.',
      },
    );
  }
  let spkiInfo;
  try {
    spkiInfo = describePublicKey(req.publicKey);
  } catch (e) {
    throw new MtlsError(
      'MTLS_PKI_BAD_KEY',
      'The public key to certify is not a valid SubjectPublicKeyInfo.',
      { cause: e, fix: 'Pass the public key in SPKI DER form.' },
    );
  }
  const pathLen = profile.ca ? (req.pathLen ?? profile.pathLen) : undefined;
  const exts: Buffer[] = [
    staticExtensions(profile, spkiInfo.algorithm === 'RSA', pathLen),
    skiExt(spkiInfo.keyBits),
  ];
  if (issuer.keyId && !selfSigned) exts.push((issuer.aki ??= akiExt(issuer.keyId)));
  if (sans.length) exts.push(ext(OID.subjectAltName, subject.length === 0, encodeGeneralNames(sans)));
  if (req.ocspUrls?.length || req.caIssuerUrls?.length)
    exts.push(aiaExt(req.ocspUrls ?? [], req.caIssuerUrls ?? []));
  if (req.crlUrls?.length) exts.push(cdpExt(req.crlUrls));

  const serial = req.serial ? checkedSerial(req.serial) : randomSerial();
  const subjectDer = selfSigned ? issuer.name : encodeName(subject);
  const tbs = der.seq(
    VERSION_3,
    der.integer(serial),
    issuer.alg.identifier,
    issuer.name,
    der.seq(der.time(notBefore), der.time(notAfter)),
    subjectDer,
    req.publicKey,
    der.ctx(3, der.seq(...exts)),
  );
  const signature = signTbs(tbs, issuer);
  const certDer = der.seq(tbs, issuer.alg.identifier, der.bitString(signature));
  return {
    der: certDer,
    pem: encodePem('CERTIFICATE', certDer),
    serial: serial.toString('hex'),
    notBefore,
    notAfter,
  };
}

function floorToSecond(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function signTbs(tbs: Buffer, issuer: IssuerParts): Buffer {
  return cryptoSign(issuer.alg.hash, tbs, issuer.key);
}

/** An issuer bound to a CA certificate and its key; reuse it: the per-issuer encoding is done once. */
export function createIssuer(
  caCert: Certificate,
  caKey: KeyObject,
  clock: Clock = systemClock,
): CertificateIssuer {
  if (!spkiOf(caKey).equals(caCert.spki)) {
    throw new MtlsError(
      'MTLS_PKI_KEY_MISMATCH',
      'The CA private key does not belong to the CA certificate.',
      {
        fix: 'Use the key file that was created with this CA certificate.',
      },
    );
  }
  const parts: IssuerParts = {
    name: caCert.subjectDer,
    keyId: caCert.subjectKeyId ?? createHash('sha1').update(caCert.publicKey.keyBits).digest(),
    notAfter: caCert.notAfter,
    key: caKey,
    alg: signatureAlgorithmFor(caKey),
  };
  return { certificate: caCert, issue: (req) => build(req, parts, clock, false) };
}

/** Self-signs a root certificate for `key`. */
export function selfSign(
  key: KeyObject,
  req: Omit<IssueRequest, 'publicKey'> & { subject: DistinguishedName },
  clock: Clock = systemClock,
): IssuedCertificate {
  const spki = spkiOf(key);
  const parts: IssuerParts = {
    name: encodeName(req.subject),
    keyId: undefined,
    notAfter: undefined,
    key,
    alg: signatureAlgorithmFor(key),
  };
  return build({ ...req, publicKey: spki }, parts, clock, true);
}

/** Convenience: issue and parse back (used where a Certificate model is needed right away). */
export function issueParsed(
  issuer: CertificateIssuer,
  req: IssueRequest,
): { issued: IssuedCertificate; cert: Certificate } {
  const issued = issuer.issue(req);
  return { issued, cert: parseCertificate(issued.der) };
}
