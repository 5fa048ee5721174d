// Lint rules over one certificate (and optionally its issuer) for an intended role. Every rule has a
// stable snake_case code; codes shared with the verification reasons (reasons.ts) mean the same thing.
import { isIP } from 'node:net';
import type { Certificate } from './certificate.js';
import { isSelfIssued, isSignedBy, signatureScheme } from './certificate.js';
import { CLOCK_SKEW_MS } from './issue.js';
import {
  commonName,
  formatGeneralName,
  formatName,
  isPrintableString,
  isValidDnsName,
  spiffeIdProblem,
  validateSan,
} from './names.js';
import { OID, ekuName, extensionName, signatureAlgorithmName } from './oids.js';
import { PROFILES, PROFILE_NAMES, type ProfileName } from './profiles.js';

export type LintSeverity = 'error' | 'warning' | 'info';

export interface LintRule {
  severity: LintSeverity;
  summary: string;
}

/**
 * The lint catalog. Codes are public API (doctor findings, --json output, docs): add entries, never
 * rename one. `error` means a verifier or a peer will reject the certificate for its role (or RFC 5280
 * forbids it); `warning` means it works today but is fragile or against a SHOULD; `info` is advice.
 */
export const LINT_RULES = {
  // ---- identity and names
  missing_eku_for_role: {
    severity: 'error',
    summary:
      'The extendedKeyUsage lacks the purpose the role needs: serverAuth for server, clientAuth for client, both for peer and spiffe, OCSPSigning for ocsp (verification fails with wrong_eku).',
  },
  eku_absent: {
    severity: 'warning',
    summary: 'A leaf certificate has no extendedKeyUsage, so it is accepted for any purpose.',
  },
  no_san: {
    severity: 'error',
    summary:
      'A server or peer certificate has no DNS or IP subject alternative name; TLS clients match host names only against SANs.',
  },
  cn_only: {
    severity: 'error',
    summary:
      'The server identity is only in the subject CN; clients ignore the CN when a SAN is required (RFC 6125, Go, Chrome, curl with modern OpenSSL).',
  },
  cn_not_in_san: {
    severity: 'info',
    summary: 'The subject CN looks like a host name but no SAN carries it; it is not used for matching.',
  },
  no_identity: {
    severity: 'error',
    summary: 'A leaf certificate has neither a subject CN nor any subject alternative name.',
  },
  invalid_san: {
    severity: 'error',
    summary:
      'A subject alternative name is malformed (a DNS name that is not a host name, an IP given as DNS, a URI without scheme) or the SAN extension is empty.',
  },
  wildcard_in_client: {
    severity: 'error',
    summary:
      'A certificate used as a client identity carries a wildcard name; a client identity names one workload.',
  },
  spiffe_violation: {
    severity: 'error',
    summary:
      'The certificate breaks the SPIFFE X509-SVID rules: exactly one URI SAN holding a valid SPIFFE ID with a non-root path, CA:FALSE, digitalSignature, no keyCertSign/cRLSign, no wildcards.',
  },
  san_not_critical_with_empty_subject: {
    severity: 'error',
    summary: 'The subject is empty but the subjectAltName extension is not critical (RFC 5280 4.2.1.6).',
  },
  bad_country: {
    severity: 'warning',
    summary: 'The subject C attribute is not a two-letter country code in a PrintableString.',
  },
  // ---- key usage
  missing_digital_signature: {
    severity: 'error',
    summary:
      'A leaf keyUsage lacks digitalSignature, which TLS 1.3 and ECDHE need to sign the handshake (bad_key_usage).',
  },
  missing_key_usage: {
    severity: 'warning',
    summary: 'A leaf certificate has no keyUsage extension, so its key may be used for anything.',
  },
  key_usage_not_for_key: {
    severity: 'warning',
    summary:
      'keyEncipherment, dataEncipherment or keyAgreement is set for a key type that cannot do it (keyEncipherment on an EC or Ed25519 key).',
  },
  key_cert_sign_without_ca: {
    severity: 'error',
    summary: 'keyCertSign is set but basicConstraints is not CA:TRUE (RFC 5280 4.2.1.3).',
  },
  key_usage_not_critical: {
    severity: 'warning',
    summary: 'The keyUsage extension is not critical (RFC 5280 SHOULD; the X509-SVID spec MUST).',
  },
  // ---- basic constraints and CA shape
  leaf_is_ca: {
    severity: 'error',
    summary:
      'A certificate meant for a leaf role has basicConstraints CA:TRUE: whoever holds its key can issue certificates.',
  },
  not_a_ca: {
    severity: 'error',
    summary: 'A certificate meant as root or intermediate does not have basicConstraints CA:TRUE.',
  },
  basic_constraints_not_critical: {
    severity: 'error',
    summary:
      'A CA certificate has a non-critical basicConstraints extension (RFC 5280 4.2.1.9: MUST be critical).',
  },
  ca_missing_key_cert_sign: {
    severity: 'error',
    summary:
      'A CA certificate has a keyUsage without keyCertSign (it cannot sign certificates), or no keyUsage at all (RFC 5280 requires one; openssl verify -x509_strict refuses it).',
  },
  ca_without_path_len: {
    severity: 'warning',
    summary: 'An intermediate CA has no pathLenConstraint, so it may create further CAs below itself.',
  },
  path_len_on_leaf: {
    severity: 'error',
    summary: 'pathLenConstraint is set on a certificate that is not a CA (RFC 5280 4.2.1.9).',
  },
  root_not_self_signed: {
    severity: 'error',
    summary:
      'A certificate meant as a root is not self-signed (issuer differs from subject, or its own key does not verify it).',
  },
  intermediate_self_signed: {
    severity: 'error',
    summary:
      'A certificate meant as an intermediate is self-signed: it is a root, and verifiers stop the chain there.',
  },
  // ---- cryptography
  weak_key: {
    severity: 'error',
    summary: 'The key is too small (RSA below 2048 bits, EC below P-256) or of an algorithm not accepted.',
  },
  weak_signature: {
    severity: 'error',
    summary: 'The signature algorithm is not accepted (SHA-1, MD5, or unknown).',
  },
  signature_algorithm_mismatch: {
    severity: 'error',
    summary: 'The signature algorithm inside TBSCertificate differs from the outer one (RFC 5280 4.1.1.2).',
  },
  // ---- validity
  expired: {
    severity: 'error',
    summary: 'The certificate has expired (notAfter is before the time checked).',
  },
  not_yet_valid: {
    severity: 'error',
    summary: 'The certificate is not valid yet (notBefore is after the time checked).',
  },
  validity_too_long: {
    severity: 'warning',
    summary: "The validity period is longer than the role's profile allows.",
  },
  // ---- structure
  not_v3: {
    severity: 'warning',
    summary: 'The certificate is not X.509 version 3, so it carries no extensions.',
  },
  negative_or_long_serial: {
    severity: 'error',
    summary: 'The serial number is zero, negative or longer than 20 octets (RFC 5280 4.1.2.2).',
  },
  low_entropy_serial: {
    severity: 'info',
    summary: 'The serial number is shorter than 64 bits, so it is unlikely to be random.',
  },
  missing_ski: {
    severity: 'warning',
    summary: 'The certificate has no subjectKeyIdentifier (RFC 5280: MUST for CAs, SHOULD for leaves).',
  },
  missing_aki: {
    severity: 'warning',
    summary:
      'A certificate that is not self-issued has no authorityKeyIdentifier, so chain building has to guess.',
  },
  unknown_critical_extension: {
    severity: 'error',
    summary:
      'A critical extension is not understood; verifiers must reject the certificate (unsupported_critical_extension).',
  },
  malformed_extension: {
    severity: 'error',
    summary: 'An extension value could not be decoded.',
  },
  duplicate_extension: {
    severity: 'error',
    summary: 'An extension appears more than once (RFC 5280 4.2).',
  },
  // ---- against the issuer (only with opts.issuer)
  issuer_mismatch: {
    severity: 'error',
    summary: "The certificate's issuer name is not the issuer certificate's subject.",
  },
  bad_signature: {
    severity: 'error',
    summary: "The certificate's signature does not verify with the issuer's public key.",
  },
  aki_mismatch: {
    severity: 'error',
    summary: "The authorityKeyIdentifier does not match the issuer's subjectKeyIdentifier.",
  },
  issuer_not_ca: {
    severity: 'error',
    summary: 'The issuer certificate is not a CA (basicConstraints CA:TRUE with keyCertSign).',
  },
  path_too_long: {
    severity: 'error',
    summary: 'The certificate is a CA but its issuer has pathLenConstraint 0, so nothing it signs verifies.',
  },
  outlives_issuer: {
    severity: 'warning',
    summary: 'The certificate stays valid after its issuer expires; it stops verifying at that point.',
  },
} as const satisfies Record<string, LintRule>;

export type LintCode = keyof typeof LINT_RULES;

export interface LintFinding {
  code: LintCode;
  severity: LintSeverity;
  /** What was observed: the subject, the values found. */
  message: string;
  /** One concrete action, with the mtls command or openssl flag. */
  fix: string;
}

export interface LintOptions {
  /** The role the certificate is meant for; detected from the certificate when absent. */
  role?: ProfileName;
  /** The issuing certificate: enables the issuer checks (name, signature, AKI, CA, path length, dates). */
  issuer?: Certificate;
  /** The time for expired / not_yet_valid; defaults to now. */
  at?: Date;
}

export function isLintCode(s: string): s is LintCode {
  return Object.hasOwn(LINT_RULES, s);
}

const LEAF_ROLES: ReadonlySet<ProfileName> = new Set(['server', 'client', 'spiffe', 'peer', 'ocsp']);
const DAY_MS = 86_400_000;

// ------------------------------------------------------------------ helpers

function hostSans(cert: Certificate): string[] {
  return cert.subjectAltNames.flatMap((n) => (n.type === 'dns' || n.type === 'ip' ? [n.value] : []));
}

function uriSans(cert: Certificate): string[] {
  return cert.subjectAltNames.flatMap((n) => (n.type === 'uri' ? [n.value] : []));
}

function dnsSans(cert: Certificate): string[] {
  return cert.subjectAltNames.flatMap((n) => (n.type === 'dns' ? [n.value] : []));
}

function isCa(cert: Certificate): boolean {
  return cert.basicConstraints?.ca === true;
}

function looksLikeHost(name: string): boolean {
  if (isIP(name)) return true;
  const v = name.toLowerCase().replace(/\.$/, '');
  return isValidDnsName(v, true) && (v.includes('.') || v === 'localhost');
}

/** `pattern` (a SAN, maybe *.wildcard) covers `name`, case-insensitively. */
function hostMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase().replace(/\.$/, '');
  const n = name.toLowerCase().replace(/\.$/, '');
  if (p === n) return true;
  if (!p.startsWith('*.')) return false;
  const dot = n.indexOf('.');
  return dot > 0 && n.slice(dot) === p.slice(1);
}

function hasEku(cert: Certificate, oid: string): boolean {
  return cert.extKeyUsage?.includes(oid) ?? false;
}

/** True when the certificate is self-issued and its own key verifies its signature. */
function isSelfSigned(cert: Certificate): boolean {
  return isSelfIssued(cert) && isSignedBy(cert, cert);
}

/** The subject (or the SANs, when the subject is empty) and the serial: how a finding names the certificate. */
function who(cert: Certificate): string {
  const subject = formatName(cert.subject);
  const sans = cert.subjectAltNames.map(formatGeneralName).join(', ');
  const name = subject
    ? `"${subject}"`
    : sans
      ? `with empty subject and SAN ${sans}`
      : 'with empty subject and no SAN';
  const serial = cert.serial.length > 16 ? `${cert.serial.slice(0, 16)}…` : cert.serial;
  return `Certificate ${name} (serial ${serial})`;
}

function sanList(cert: Certificate): string {
  return cert.hasSan ? `[${cert.subjectAltNames.map(formatGeneralName).join(', ')}]` : 'none';
}

/** A short name for --name / the positional NAME of `mtls issue`. */
function nameArg(cert: Certificate): string {
  const cn = commonName(cert.subject);
  if (cn) return /^[\w.@:-]+$/.test(cn) ? cn : `"${cn}"`;
  return 'NAME';
}

function sanArgs(cert: Certificate, extra: string[] = []): string {
  const existing = cert.subjectAltNames.flatMap((n) =>
    n.type === 'dns' || n.type === 'ip' || n.type === 'uri' || n.type === 'email'
      ? [`${n.type}:${n.value}`]
      : [],
  );
  const all = [...new Set([...existing, ...extra])];
  return all.length ? ` --san ${all.join(',')}` : '';
}

function reissue(role: ProfileName, cert: Certificate, extraSans: string[] = []): string {
  if (role === 'spiffe') {
    const id = uriSans(cert).find((u) => u.startsWith('spiffe://')) ?? 'spiffe://TRUST-DOMAIN/PATH';
    return `mtls issue spiffe ${id}`;
  }
  return `mtls issue ${role} ${nameArg(cert)}${sanArgs(cert, extraSans)}`;
}

const ROLE_EKU: Record<ProfileName, string[]> = {
  server: [OID.serverAuth],
  client: [OID.clientAuth],
  peer: [OID.serverAuth, OID.clientAuth],
  spiffe: [OID.serverAuth, OID.clientAuth],
  intermediate: [],
  root: [],
  ocsp: [OID.ocspSigning],
};

const MD5_OR_MD2 = new Set(['1.2.840.113549.1.1.4', '1.2.840.113549.1.1.2']);

// ------------------------------------------------------------------ role

/**
 * The role a certificate looks made for: CA:TRUE → root when self-signed, else intermediate; a
 * spiffe:// URI SAN → spiffe; then by extendedKeyUsage (both → peer, OCSPSigning alone → ocsp); no
 * EKU → server when it has a DNS/IP SAN, else client.
 */
export function detectRole(cert: Certificate): ProfileName {
  if (isCa(cert)) return isSelfSigned(cert) ? 'root' : 'intermediate';
  if (uriSans(cert).some((u) => u.toLowerCase().startsWith('spiffe://'))) return 'spiffe';
  const server = hasEku(cert, OID.serverAuth);
  const client = hasEku(cert, OID.clientAuth);
  if (!server && !client && hasEku(cert, OID.ocspSigning)) return 'ocsp';
  if (server && client) return 'peer';
  if (server) return 'server';
  if (client) return 'client';
  return hostSans(cert).length > 0 ? 'server' : 'client';
}

const FITNESS_IGNORES: ReadonlySet<LintCode> = new Set(['expired', 'not_yet_valid']);

/**
 * The profiles this certificate can serve as: those whose lint has no error, leaving out the clock
 * (expired / not_yet_valid). Warnings do not disqualify.
 */
export function fitProfiles(cert: Certificate): ProfileName[] {
  return PROFILE_NAMES.filter((role) =>
    lintCertificate(cert, { role }).every((f) => f.severity !== 'error' || FITNESS_IGNORES.has(f.code)),
  );
}

// ------------------------------------------------------------------ lint

/** Runs every rule for `opts.role` (or the detected role); findings in catalog order of discovery. */
export function lintCertificate(cert: Certificate, opts: LintOptions = {}): LintFinding[] {
  const role = opts.role ?? detectRole(cert);
  const at = opts.at ?? new Date();
  const out: LintFinding[] = [];
  const add = (code: LintCode, message: string, fix: string): void => {
    out.push({ code, severity: LINT_RULES[code].severity, message, fix });
  };
  const w = who(cert);
  const leaf = LEAF_ROLES.has(role);

  structure(cert, w, add);
  cryptoRules(cert, role, w, add);
  validity(cert, role, at, w, add);
  if (leaf) leafRules(cert, role, w, add);
  else caRules(cert, role, w, add);
  names(cert, role, w, add);
  if (role === 'spiffe') spiffeRules(cert, w, add);
  if (opts.issuer) issuerRules(cert, opts.issuer, w, add);
  return out;
}

type Add = (code: LintCode, message: string, fix: string) => void;

function structure(cert: Certificate, w: string, add: Add): void {
  if (cert.version < 3) {
    add(
      'not_v3',
      `${w} is X.509 version ${cert.version}; it carries no extensions.`,
      'Reissue it with mtls issue, which always writes version 3 (openssl: pass -extfile or -addext so x509 writes v3).',
    );
  }
  const zero = /^0*$/.test(cert.serial);
  if (cert.serialNegative || zero || cert.serialLength > 20) {
    const why = cert.serialNegative ? 'negative' : zero ? 'zero' : `${cert.serialLength} octets long`;
    add(
      'negative_or_long_serial',
      `${w} has a serial number that is ${why} (0x${cert.serial}).`,
      'Reissue it with mtls issue (128-bit positive random serials), or with openssl x509 -req -set_serial 0x$(openssl rand -hex 16 | sed "s/^./7/").',
    );
  } else if (cert.serialLength < 8) {
    add(
      'low_entropy_serial',
      `${w} has a ${cert.serialLength * 8}-bit serial number (0x${cert.serial}).`,
      'Issue with random serials of at least 64 bits: mtls issue does it; with openssl use -CAcreateserial or -set_serial 0x$(openssl rand -hex 16).',
    );
  }
  if (cert.version === 3 && !cert.subjectKeyId) {
    add(
      'missing_ski',
      `${w} has no subjectKeyIdentifier extension.`,
      'Reissue it with mtls issue, or with openssl -addext "subjectKeyIdentifier=hash".',
    );
  }
  if (cert.version === 3 && !cert.authorityKeyId && !isSelfIssued(cert)) {
    add(
      'missing_aki',
      `${w} (issuer "${formatName(cert.issuer)}") has no authorityKeyIdentifier extension.`,
      'Reissue it with mtls issue, or with openssl -extfile holding "authorityKeyIdentifier=keyid:always".',
    );
  }
  for (const oid of cert.unknownCritical) {
    add(
      'unknown_critical_extension',
      `${w} has the critical extension ${extensionName(oid)} (${oid}), which verifiers do not understand and must reject.`,
      `Reissue it without that extension, or with it marked non-critical (openssl -addext "${oid}=..." without "critical,").`,
    );
  }
  for (const problem of cert.extensionErrors) {
    const oid = problem.slice(0, problem.indexOf(':'));
    add(
      'malformed_extension',
      `${w} has a malformed ${extensionName(oid)} extension: ${problem}.`,
      'Reissue it with mtls issue; if another CA made it, report the encoding bug to that CA (check with openssl asn1parse -in FILE -i).',
    );
  }
  for (const oid of new Set(cert.duplicateExtensions)) {
    add(
      'duplicate_extension',
      `${w} has the extension ${extensionName(oid)} (${oid}) more than once.`,
      'Reissue it with each extension once (do not give both -addext and an -extfile section for the same extension).',
    );
  }
}

function cryptoRules(cert: Certificate, role: ProfileName, w: string, add: Add): void {
  const pk = cert.publicKey;
  const newKey =
    'Create a new key and reissue: mtls issue ... --key-type p256 (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256).';
  if (pk.algorithm === 'RSA' || pk.algorithm === 'RSA-PSS') {
    if (pk.bits < 2048)
      add('weak_key', `${w} has a ${pk.description}-bit key; at least 2048 bits are required.`, newKey);
  } else if (pk.algorithm === 'EC') {
    if (pk.bits < 256)
      add('weak_key', `${w} has an ${pk.description} key; P-256 or larger is required.`, newKey);
  } else if (pk.algorithm === 'unknown') {
    add('weak_key', `${w} has a key of an algorithm that is not accepted: ${pk.description}.`, newKey);
  }
  const sigName = signatureAlgorithmName(cert.signatureAlgorithm);
  // The signature on a self-signed root is not checked by verifiers: its algorithm does not matter.
  const skipSig = role === 'root' && isSelfSigned(cert);
  if (!skipSig) {
    const scheme = signatureScheme(cert.signatureAlgorithm, cert.signatureAlgorithmParams);
    const reissueFix =
      'Reissue it from a CA that signs with SHA-256 or better: mtls issue does; with openssl pass -sha256 to x509 -req or ca.';
    if (MD5_OR_MD2.has(cert.signatureAlgorithm)) {
      add('weak_signature', `${w} is signed with ${sigName} (MD5/MD2), which is broken.`, reissueFix);
    } else if (scheme?.hash === 'sha1') {
      add(
        'weak_signature',
        `${w} is signed with ${sigName} (SHA-1), which is rejected by OpenSSL 3 at security level 1+ and by browsers.`,
        reissueFix,
      );
    } else if (!scheme) {
      add('weak_signature', `${w} is signed with ${sigName}, an algorithm not accepted.`, reissueFix);
    }
  }
  if (!cert.tbsSignatureAlgorithmRaw.equals(cert.outerSignatureAlgorithmRaw)) {
    add(
      'signature_algorithm_mismatch',
      `${w} names ${signatureAlgorithmName(cert.tbsSignatureAlgorithm)} inside TBSCertificate but ${sigName} outside.`,
      'Reissue it with mtls issue; the certificate was altered or made by a broken encoder.',
    );
  }
}

function validity(cert: Certificate, role: ProfileName, at: Date, w: string, add: Add): void {
  const nb = cert.notBefore.toISOString();
  const na = cert.notAfter.toISOString();
  if (at.getTime() > cert.notAfter.getTime()) {
    add(
      'expired',
      `${w} expired at ${na} (checked at ${at.toISOString()}).`,
      role === 'root' || role === 'intermediate'
        ? `Create a new CA certificate (mtls issue ${role} ${nameArg(cert)}) and distribute it.`
        : `Renew it: ${reissue(role, cert)} (or run mtls agent to renew automatically).`,
    );
  }
  if (at.getTime() < cert.notBefore.getTime()) {
    add(
      'not_yet_valid',
      `${w} is valid only from ${nb} (checked at ${at.toISOString()}).`,
      'Check the clock of the machine that issued it and of this one (timedatectl status); mtls issue backdates notBefore by one minute for skew.',
    );
  }
  const profile = PROFILES[role];
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  if (lifetime > profile.maxTtlMs + CLOCK_SKEW_MS) {
    const days = (ms: number): string => `${Math.round(ms / DAY_MS)} days`;
    add(
      'validity_too_long',
      `${w} is valid for ${days(lifetime)} (${nb} to ${na}); the ${role} profile allows at most ${days(profile.maxTtlMs)}.`,
      `Reissue it with a shorter lifetime: ${reissue(role, cert)} --ttl ${Math.floor(profile.defaultTtlMs / 3_600_000)}h (openssl: -days ${Math.floor(profile.maxTtlMs / DAY_MS)} or less).`,
    );
  }
}

function leafRules(cert: Certificate, role: ProfileName, w: string, add: Add): void {
  const bc = cert.basicConstraints;
  const ku = cert.keyUsage;
  if (bc?.ca && role !== 'spiffe') {
    add(
      'leaf_is_ca',
      `${w} has basicConstraints CA:TRUE but is meant as a ${role} certificate.`,
      `Reissue it as a leaf: ${reissue(role, cert)} (openssl -addext "basicConstraints=critical,CA:FALSE").`,
    );
  }
  if (bc && !bc.ca && bc.pathLen !== undefined) {
    add(
      'path_len_on_leaf',
      `${w} has pathLenConstraint ${bc.pathLen} with CA:FALSE.`,
      `Reissue it without pathlen: ${reissue(role, cert)} (openssl -addext "basicConstraints=critical,CA:FALSE").`,
    );
  }
  // Required purposes: an EKU extension that lacks them (anyExtendedKeyUsage does not satisfy OpenSSL).
  const needed = ROLE_EKU[role];
  if (cert.extKeyUsage) {
    const missing = needed.filter((o) => !cert.extKeyUsage!.includes(o));
    if (missing.length) {
      add(
        'missing_eku_for_role',
        `${w} has extendedKeyUsage [${cert.extKeyUsage.map(ekuName).join(', ')}] but a ${role} certificate needs ${needed.map(ekuName).join(' and ')}; verification fails with wrong_eku.`,
        `Reissue it with the ${role} profile: ${reissue(role, cert)} (openssl -addext "extendedKeyUsage=${needed.map(ekuName).join(',')}").`,
      );
    }
  } else if (role === 'ocsp') {
    // RFC 6960 4.2.2.2: a delegated responder is recognised only by id-kp-OCSPSigning in its EKU.
    add(
      'missing_eku_for_role',
      `${w} has no extendedKeyUsage; a delegated OCSP responder certificate needs OCSPSigning.`,
      `Reissue it with the ocsp profile: ${reissue(role, cert)} (openssl -addext "extendedKeyUsage=OCSPSigning").`,
    );
  } else if (cert.version === 3) {
    add(
      'eku_absent',
      `${w} has no extendedKeyUsage extension; it is accepted for any purpose, including as a ${role === 'client' ? 'server' : 'client'}.`,
      `Reissue it with the ${role} profile: ${reissue(role, cert)} (openssl -addext "extendedKeyUsage=${needed.map(ekuName).join(',')}").`,
    );
  }
  if (ku) {
    if (!ku.includes('digitalSignature')) {
      add(
        'missing_digital_signature',
        `${w} has keyUsage [${ku.join(', ')}] without digitalSignature; TLS 1.3 and ECDHE handshakes fail (bad_key_usage).`,
        `Reissue it: ${reissue(role, cert)} (openssl -addext "keyUsage=critical,digitalSignature").`,
      );
    }
    if (ku.includes('keyCertSign') && !bc?.ca && role !== 'spiffe') {
      add(
        'key_cert_sign_without_ca',
        `${w} has keyUsage keyCertSign but is not a CA.`,
        `Reissue it without keyCertSign: ${reissue(role, cert)} (openssl -addext "keyUsage=critical,digitalSignature").`,
      );
    }
  } else if (cert.version === 3 && role !== 'spiffe') {
    add(
      'missing_key_usage',
      `${w} has no keyUsage extension.`,
      `Reissue it with the ${role} profile: ${reissue(role, cert)} (openssl -addext "keyUsage=critical,digitalSignature").`,
    );
  }
  keyUsageCommon(cert, role, w, add);
}

function keyUsageCommon(cert: Certificate, role: ProfileName, w: string, add: Add): void {
  const ku = cert.keyUsage;
  if (!ku) return;
  const alg = cert.publicKey.algorithm;
  const rsa = alg === 'RSA' || alg === 'RSA-PSS';
  const bad = ku.filter(
    (u) =>
      ((u === 'keyEncipherment' || u === 'dataEncipherment') && !rsa) ||
      (u === 'keyAgreement' && alg !== 'EC' && alg !== 'unknown'),
  );
  if (bad.length) {
    add(
      'key_usage_not_for_key',
      `${w} has keyUsage [${bad.join(', ')}] on ${cert.publicKey.description} key, which cannot do that.`,
      `Reissue it: ${reissue(role, cert)} (openssl -addext "keyUsage=critical,digitalSignature").`,
    );
  }
  const kuExt = cert.extensions.find((e) => e.oid === OID.keyUsage);
  if (kuExt && !kuExt.critical) {
    add(
      'key_usage_not_critical',
      `${w} has a non-critical keyUsage extension [${ku.join(', ')}]${role === 'spiffe' ? '; the X509-SVID spec requires it critical' : ''}.`,
      `Reissue it: ${role === 'root' || role === 'intermediate' ? `mtls issue ${role} ${nameArg(cert)}` : reissue(role, cert)} (openssl -addext "keyUsage=critical,...").`,
    );
  }
}

function caRules(cert: Certificate, role: ProfileName, w: string, add: Add): void {
  const bc = cert.basicConstraints;
  const ku = cert.keyUsage;
  const fix = `mtls issue ${role} ${nameArg(cert)}`;
  if (!bc?.ca) {
    add(
      'not_a_ca',
      `${w} is meant as a${role === 'intermediate' ? 'n' : ''} ${role} CA but has ${bc ? 'basicConstraints CA:FALSE' : 'no basicConstraints extension'}.`,
      `Create it as a CA: ${fix} (openssl -addext "basicConstraints=critical,CA:TRUE${role === 'intermediate' ? ',pathlen:0' : ''}").`,
    );
  } else {
    const bcExt = cert.extensions.find((e) => e.oid === OID.basicConstraints);
    if (bcExt && !bcExt.critical) {
      add(
        'basic_constraints_not_critical',
        `${w} is a CA with a non-critical basicConstraints extension.`,
        `Reissue it: ${fix} (openssl -addext "basicConstraints=critical,CA:TRUE${role === 'intermediate' ? ',pathlen:0' : ''}").`,
      );
    }
    if (role === 'intermediate' && bc.pathLen === undefined) {
      add(
        'ca_without_path_len',
        `${w} is an intermediate CA without pathLenConstraint; it may create sub-CAs.`,
        `Reissue it with pathlen 0: ${fix} (openssl -addext "basicConstraints=critical,CA:TRUE,pathlen:0").`,
      );
    }
  }
  if (!ku?.includes('keyCertSign')) {
    add(
      'ca_missing_key_cert_sign',
      ku
        ? `${w} is a CA with keyUsage [${ku.join(', ')}]: keyCertSign is missing, so certificates it signs do not verify.`
        : `${w} is a CA without a keyUsage extension; RFC 5280 requires one with keyCertSign, and strict verifiers (openssl verify -x509_strict) refuse the chain.`,
      `Reissue it: ${fix} (openssl -addext "keyUsage=critical,keyCertSign,cRLSign").`,
    );
  }
  keyUsageCommon(cert, role, w, add);
  const selfSigned = isSelfSigned(cert);
  if (role === 'root' && !selfSigned) {
    add(
      'root_not_self_signed',
      `${w} is meant as a root but ${isSelfIssued(cert) ? 'its own key does not verify its signature' : `is issued by "${formatName(cert.issuer)}"`}.`,
      isSelfIssued(cert)
        ? `Create the root again: ${fix}.`
        : `Use it as an intermediate (its issuer is the root), or create a root: ${fix}.`,
    );
  }
  if (role === 'intermediate' && selfSigned) {
    add(
      'intermediate_self_signed',
      `${w} is meant as an intermediate but is self-signed, so it is a root.`,
      'Trust it as a root (put it in the CA bundle), or issue an intermediate from it: mtls issue intermediate NAME.',
    );
  }
}

function names(cert: Certificate, role: ProfileName, w: string, add: Add): void {
  const cn = commonName(cert.subject);
  const leaf = LEAF_ROLES.has(role);
  // SAN syntax
  if (cert.hasSan && cert.subjectAltNames.length === 0) {
    add(
      'invalid_san',
      `${w} has an empty subjectAltName extension.`,
      `Reissue it with at least one name: ${reissue(role, cert)}.`,
    );
  }
  for (const n of cert.subjectAltNames) {
    if (n.type !== 'dns' && n.type !== 'ip' && n.type !== 'uri' && n.type !== 'email') continue;
    try {
      validateSan(n, { allowWildcard: true });
    } catch (e) {
      add(
        'invalid_san',
        `${w} has an invalid SAN ${formatGeneralName(n)}: ${(e as Error).message}`,
        `Reissue it with valid names: ${reissue(role, cert)}; ${(e as { fix?: string }).fix ?? ''}`.trim(),
      );
    }
  }
  if (cert.subject.length === 0 && cert.hasSan && !cert.sanCritical) {
    add(
      'san_not_critical_with_empty_subject',
      `${w} has an empty subject and a non-critical subjectAltName.`,
      'Reissue it with mtls issue (it marks the SAN critical when the subject is empty), or give a subject (openssl -subj "/CN=NAME").',
    );
  }
  for (const rdn of cert.subject) {
    for (const a of rdn) {
      if (a.oid !== OID.countryName) continue;
      if (
        !/^[A-Z]{2}$/.test(a.value) ||
        (a.tag !== undefined && a.tag !== 0x13) ||
        !isPrintableString(a.value)
      ) {
        add(
          'bad_country',
          `${w} has C=${a.value}${a.tag !== undefined && a.tag !== 0x13 ? ` encoded as tag 0x${a.tag.toString(16)}` : ''}; it must be a two-letter ISO 3166 code in a PrintableString.`,
          'Reissue it with C=XX (two capital letters), e.g. --name "CN=api,O=Example,C=DE" (openssl -subj "/C=DE/O=Example/CN=api").',
        );
      }
    }
  }
  if (!leaf) return;
  const hosts = hostSans(cert);
  if (!cn && cert.subjectAltNames.length === 0) {
    add(
      'no_identity',
      `${w} names nothing: no subject CN and no subject alternative name.`,
      `Reissue it with a name: ${reissue(role, cert)}.`,
    );
  }
  if ((role === 'server' || role === 'peer') && hosts.length === 0) {
    if (cn && looksLikeHost(cn)) {
      const san = isIP(cn) ? `ip:${cn}` : `dns:${cn.toLowerCase()}`;
      add(
        'cn_only',
        `${w} carries its host name "${cn}" only in the subject CN (SANs: ${sanList(cert)}); clients ignore the CN.`,
        `Reissue it with the name as a SAN: ${reissue(role, cert, [san])} (openssl -addext "subjectAltName=${isIP(cn) ? 'IP' : 'DNS'}:${cn}").`,
      );
    } else {
      add(
        'no_san',
        `${w} is a ${role} certificate without a DNS or IP subject alternative name (SANs: ${sanList(cert)}).`,
        `Reissue it with the host name clients connect to: ${reissue(role, cert, ['dns:HOST'])} (openssl -addext "subjectAltName=DNS:HOST").`,
      );
    }
  } else if (cn && looksLikeHost(cn) && hosts.length > 0 && !hosts.some((h) => hostMatches(h, cn))) {
    add(
      'cn_not_in_san',
      `${w} has CN "${cn}", which looks like a host name, but its SANs are ${sanList(cert)}.`,
      `Add it if clients use it: ${reissue(role, cert, [isIP(cn) ? `ip:${cn}` : `dns:${cn.toLowerCase()}`])}.`,
    );
  }
  if (role === 'client' || role === 'peer') {
    const wild = [
      ...dnsSans(cert)
        .filter((d) => d.includes('*'))
        .map((d) => `DNS:${d}`),
      ...(cn?.includes('*') ? [`CN=${cn}`] : []),
    ];
    if (wild.length) {
      const sans = cert.subjectAltNames.flatMap((n) =>
        n.type === 'dns' && n.value.includes('*')
          ? []
          : n.type === 'dns' || n.type === 'ip' || n.type === 'uri' || n.type === 'email'
            ? [`${n.type}:${n.value}`]
            : [],
      );
      add(
        'wildcard_in_client',
        `${w} is a ${role} identity with the wildcard name ${wild.join(', ')}.`,
        `Reissue it for one workload: mtls issue ${role} ${cn && !cn.includes('*') ? nameArg(cert) : 'NAME'} --san ${sans.length ? sans.join(',') : 'dns:EXACT-HOST'}.`,
      );
    }
  }
}

function spiffeRules(cert: Certificate, w: string, add: Add): void {
  const fixId = uriSans(cert).find((u) => u.startsWith('spiffe://') && !spiffeIdProblem(u));
  const fix = `Reissue it as an X509-SVID: mtls issue spiffe ${fixId ?? 'spiffe://TRUST-DOMAIN/PATH'}.`;
  const uris = uriSans(cert);
  if (uris.length !== 1) {
    add(
      'spiffe_violation',
      `${w} has ${uris.length} URI SANs${uris.length ? ` (${uris.join(', ')})` : ''}; an X509-SVID has exactly one, its SPIFFE ID.`,
      fix,
    );
  }
  for (const u of uris) {
    if (!u.startsWith('spiffe://')) {
      if (uris.length === 1)
        add(
          'spiffe_violation',
          `${w} has the URI SAN ${u}, which is not a SPIFFE ID (spiffe://trust-domain/path).`,
          fix,
        );
      continue;
    }
    const problem = u.includes('*') ? 'a SPIFFE ID cannot hold a wildcard' : spiffeIdProblem(u);
    if (problem) add('spiffe_violation', `${w} has the invalid SPIFFE ID ${u}: ${problem}.`, fix);
    else if (u.slice('spiffe://'.length).indexOf('/') < 0) {
      add(
        'spiffe_violation',
        `${w} has the SPIFFE ID ${u}, which names the trust domain itself; a leaf SVID needs a path (spiffe://td/workload).`,
        'Reissue it with a workload path: mtls issue spiffe ' + u + '/ns/NAMESPACE/sa/SERVICE.',
      );
    }
  }
  if (cert.basicConstraints?.ca)
    add('spiffe_violation', `${w} is a leaf X509-SVID with basicConstraints CA:TRUE.`, fix);
  const ku = cert.keyUsage;
  if (!ku)
    add(
      'spiffe_violation',
      `${w} has no keyUsage extension; a leaf X509-SVID must have keyUsage with digitalSignature.`,
      fix,
    );
  else {
    const signing = ku.filter((u) => u === 'keyCertSign' || u === 'cRLSign');
    if (signing.length)
      add('spiffe_violation', `${w} is a leaf X509-SVID with keyUsage ${signing.join(' and ')}.`, fix);
  }
  const wild = dnsSans(cert).filter((d) => d.includes('*'));
  if (wild.length)
    add(
      'spiffe_violation',
      `${w} is an X509-SVID with the wildcard DNS SAN ${wild.join(', ')}; an SVID names one workload.`,
      fix,
    );
}

function issuerRules(cert: Certificate, issuer: Certificate, w: string, add: Add): void {
  const issuerName = formatName(issuer.subject);
  if (
    !cert.issuerDer.equals(issuer.subjectDer) &&
    formatName(cert.issuer).toLowerCase() !== issuerName.toLowerCase()
  ) {
    add(
      'issuer_mismatch',
      `${w} names its issuer "${formatName(cert.issuer)}" but the issuer given is "${issuerName}".`,
      'Give the CA certificate that issued it (mtls inspect FILE shows the issuer; openssl x509 -noout -issuer -in FILE).',
    );
  } else if (!isSignedBy(cert, issuer)) {
    add(
      'bad_signature',
      `${w}'s signature does not verify with the public key of "${issuerName}" (${issuer.publicKey.description}).`,
      'Use the CA certificate whose key signed it, or reissue it from this CA (openssl verify -CAfile CA.pem FILE shows the same).',
    );
  }
  const akid = cert.authorityKeyId?.keyId;
  if (akid && issuer.subjectKeyId && !akid.equals(issuer.subjectKeyId)) {
    add(
      'aki_mismatch',
      `${w} has authorityKeyIdentifier ${akid.toString('hex')} but "${issuerName}" has subjectKeyIdentifier ${issuer.subjectKeyId.toString('hex')}.`,
      'Give the CA certificate that issued it (same name, different key: the CA was recreated), or reissue from this CA.',
    );
  }
  if (!issuer.basicConstraints?.ca || (issuer.keyUsage && !issuer.keyUsage.includes('keyCertSign'))) {
    add(
      'issuer_not_ca',
      `The issuer "${issuerName}" of ${w} is not a CA (${issuer.basicConstraints?.ca ? 'keyUsage without keyCertSign' : 'basicConstraints CA:TRUE missing'}).`,
      'Issue it from a CA: mtls issue intermediate NAME (or create the CA with mtls issue root NAME).',
    );
  }
  if (isCa(cert) && !isSelfIssued(cert) && issuer.basicConstraints?.pathLen === 0) {
    add(
      'path_too_long',
      `${w} is a CA issued by "${issuerName}", whose pathLenConstraint is 0.`,
      'Issue the intermediate from the root (pathlen 1 or more), not from another intermediate: mtls issue intermediate NAME.',
    );
  }
  if (cert.notAfter.getTime() > issuer.notAfter.getTime()) {
    add(
      'outlives_issuer',
      `${w} is valid until ${cert.notAfter.toISOString()} but its issuer "${issuerName}" expires ${issuer.notAfter.toISOString()}.`,
      'Reissue it with a shorter --ttl, or renew the CA first.',
    );
  }
}
