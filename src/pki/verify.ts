// Certificate path validation for mTLS (RFC 5280 section 6 with the certificate-profile checks that
// webpki, Go and OpenSSL apply), answering with reasons from the shared catalog in reasons.ts.
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import type { Certificate } from './certificate.js';
import {
  UNDERSTOOD_EXTENSIONS,
  extension,
  isSelfIssued,
  issuerString,
  publicKeyObject,
  subjectString,
} from './certificate.js';
import { DEFAULT_MAX_DEPTH, createBudget, isSelfSigned, nameKey, searchPaths } from './chain.js';
import type { Crl } from './crl.js';
import { crlIssuerString, findRevoked, verifyCrlSignature } from './crl.js';
import * as der from './der.js';
import type { DistinguishedName, GeneralName } from './names.js';
import { bytesToIp, formatGeneralName, formatName, ipToBytes } from './names.js';
import { OID, ekuName, extensionName, signatureAlgorithmName } from './oids.js';
import type { Reason } from './reasons.js';

export type Purpose = 'client' | 'server' | 'any';

export interface ExpectedName {
  type: 'dns' | 'ip' | 'uri' | 'email';
  value: string;
}

export interface VerifyOptions {
  /** Trust anchors. Any certificate may be one (a root, an intermediate, or a pinned leaf). */
  trust: readonly Certificate[];
  /** Untrusted certificates that may complete the path (what the peer sent after its leaf). */
  intermediates?: readonly Certificate[];
  /** clientAuth or serverAuth required of the leaf (and of CAs that carry an EKU). Default 'any'. */
  purpose?: Purpose;
  /** The identity expected in the leaf's SAN; a string is read as an IP, a URI (scheme://), an email (a@b) or a DNS name. */
  name?: ExpectedName | string;
  /** Validation time; default now. */
  at?: Date;
  crls?: readonly Crl[];
  /** Fail with crl_missing when a certificate of the path has no CRL from its issuer. */
  requireCrl?: boolean;
  /** Maximum number of intermediates between the leaf and the trust anchor (default 8). */
  maxDepth?: number;
  /** Extra EKU OIDs the leaf must allow (in addition to the purpose's). */
  ekus?: readonly string[];
  /**
   * Enforce the RFC 5280 rules on how certificates are issued (v3, key identifiers, criticality,
   * SAN syntax, serial numbers). Default true; false accepts what OpenSSL accepts by default.
   */
  strict?: boolean;
}

export interface VerifyFailure {
  reason: Reason;
  /** One sentence for a human: what is wrong, naming the subject, the issuer or the dates. */
  message: string;
  /** Position in the chain (0 is the leaf) of the certificate at fault, when one is. */
  certIndex?: number;
  subject?: string;
}

export type VerifyResult =
  | { ok: true; chain: Certificate[]; warnings: string[] }
  | { ok: false; reasons: VerifyFailure[]; chain?: Certificate[] };

const PURPOSE_EKU: Record<Purpose, string | undefined> = {
  client: OID.clientAuth,
  server: OID.serverAuth,
  any: undefined,
};

/** Reads an expected peer name; strings are auto-detected (IP, URI, email, else DNS). */
export function parseExpectedName(name: ExpectedName | string): ExpectedName {
  if (typeof name !== 'string') return name;
  const v = name.trim();
  if (isIP(v.replace(/^\[|\]$/g, ''))) return { type: 'ip', value: v.replace(/^\[|\]$/g, '') };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v)) return { type: 'uri', value: v };
  if (v.includes('@')) return { type: 'email', value: v };
  return { type: 'dns', value: v };
}

// ---------------------------------------------------------------- syntax helpers

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/** RFC 1034 preferred name syntax (RFC 5280 4.2.1.6); with `wildcard`, a whole left-most "*" label over at least two labels. */
export function isDnsNameSyntax(name: string, wildcard: boolean): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (i === 0 && wildcard && l === '*') {
      if (labels.length < 3) return false;
      continue;
    }
    if (!LABEL.test(l)) return false;
  }
  return true;
}

function isEmailSyntax(v: string): boolean {
  const at = v.indexOf('@');
  if (at <= 0 || at !== v.lastIndexOf('@')) return false;
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f-\uffff]/.test(v.slice(0, at))) return false;
  return isDnsNameSyntax(v.slice(at + 1), false);
}

function uriHost(uri: string): string | undefined {
  const m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(uri);
  if (!m) return undefined;
  let host = m[1]!;
  const at = host.lastIndexOf('@');
  if (at >= 0) host = host.slice(at + 1);
  if (host.startsWith('[')) return undefined; // IP literal: not a host name
  host = host.replace(/:\d*$/, '');
  return host === '' ? undefined : host.toLowerCase();
}

// ---------------------------------------------------------------- name matching

function dnsMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase().replace(/\.$/, '');
  if (!p.startsWith('*.')) return p === n;
  // Wildcard: the whole left-most label only, never across labels, never over fewer than 3 labels.
  if (!isDnsNameSyntax(p, true)) return false;
  const dot = n.indexOf('.');
  return dot > 0 && n.slice(dot + 1) === p.slice(2);
}

function sanMatches(cert: Certificate, expected: ExpectedName): boolean {
  switch (expected.type) {
    case 'dns': {
      const n = expected.value.toLowerCase().replace(/\.$/, '');
      if (!isDnsNameSyntax(n, false)) return false;
      return cert.subjectAltNames.some((s) => s.type === 'dns' && dnsMatches(s.value, n));
    }
    case 'ip': {
      if (!isIP(expected.value)) return false;
      const want = ipToBytes(expected.value);
      return cert.subjectAltNames.some(
        (s) => s.type === 'ip' && isIP(s.value) !== 0 && ipToBytes(s.value).equals(want),
      );
    }
    case 'uri':
      return cert.subjectAltNames.some((s) => s.type === 'uri' && s.value === expected.value);
    case 'email': {
      const at = expected.value.lastIndexOf('@');
      const local = expected.value.slice(0, at);
      const domain = expected.value.slice(at + 1).toLowerCase();
      return cert.subjectAltNames.some((s) => {
        if (s.type !== 'email') return false;
        const a = s.value.lastIndexOf('@');
        return s.value.slice(0, a) === local && s.value.slice(a + 1).toLowerCase() === domain;
      });
    }
  }
}

/** The IP address a CN spells, in any common text form (dotted decimal with leading zeros, hex, IPv6). */
function cnAsIp(v: string): Buffer | undefined {
  if (/^0x[0-9a-f]{1,8}$/i.test(v)) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(parseInt(v.slice(2), 16));
    return b;
  }
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(v);
  if (m) {
    const parts = m.slice(1).map(Number);
    return parts.every((x) => x <= 255) ? Buffer.from(parts) : undefined;
  }
  return isIP(v) === 6 ? ipToBytes(v) : undefined;
}

/**
 * A server certificate's CN that names one of its SANs must spell it exactly (CA/B Forum BR 7.1.4.3):
 * the dNSName byte for byte (not another case, not the Unicode form of an A-label), the iPAddress in
 * canonical text (dotted decimal, RFC 5952). Clients that still read the CN would otherwise parse a
 * name the SAN does not say. Returns the offending CN and the SAN it spells.
 */
function cnMisspellsSan(cert: Certificate): { cn: string; why: string } | undefined {
  for (const rdn of cert.subject) {
    for (const a of rdn) {
      if (a.oid !== OID.commonName) continue;
      const v = a.value;
      const ip = cnAsIp(v);
      // A host name in Unicode form can never be a copy of a dNSName (IA5String, A-labels).
      // eslint-disable-next-line no-control-regex
      if (/[^\x00-\x7f]/.test(v) && v.includes('.') && domainToASCII(v).includes('xn--')) {
        return {
          cn: v,
          why: 'is a host name in Unicode form, which no dNSName can copy (SANs hold the xn-- A-label)',
        };
      }
      for (const g of cert.subjectAltNames) {
        if (g.type === 'ip' && ip && isIP(g.value) !== 0) {
          const sanIp = ipToBytes(g.value);
          if (sanIp.equals(ip) && bytesToIp(sanIp) !== v)
            return { cn: v, why: `names the SAN IP:${bytesToIp(sanIp)} but spells it differently` };
        }
        if (g.type === 'dns' && !ip && v !== g.value) {
          const ascii = domainToASCII(v.toLowerCase());
          if (ascii !== '' && ascii === g.value.toLowerCase())
            return { cn: v, why: `names the SAN DNS:${g.value} but spells it differently` };
        }
      }
    }
  }
  return undefined;
}

// ---------------------------------------------------------------- name constraints

interface Subtree {
  type: GeneralName['type'];
  /** dns/email/uri: lowercase base; ip: bytes; dn: RDN keys; other: tag. */
  dns?: string;
  ip?: { addr: Buffer; mask: Buffer };
  rdns?: string[];
  tag?: number;
  label: string;
}

interface ParsedConstraints {
  permitted: Subtree[];
  excluded: Subtree[];
  permittedTypes: Set<string>;
  count: number;
}

function rdnKeys(dn: DistinguishedName): string[] {
  return dn.map((rdn) => nameKey([rdn]));
}

/** Converts a CA's name constraints into comparable form; returns a problem string for malformed ones. */
function parseConstraints(cert: Certificate, strict: boolean): ParsedConstraints | string {
  const nc = cert.nameConstraints!;
  if (nc.permitted.length === 0 && nc.excluded.length === 0)
    return 'its name constraints extension has neither permitted nor excluded subtrees';
  const conv = (g: GeneralName): Subtree | string => {
    const label = formatGeneralName(g);
    switch (g.type) {
      case 'dns': {
        let v = g.value.toLowerCase();
        if (v.startsWith('.') && !strict) v = v.slice(1);
        if (v !== '' && !isDnsNameSyntax(v, false))
          return `the DNS name constraint "${g.value}" is not a valid domain (no wildcards or leading dots)`;
        return { type: 'dns', dns: v, label };
      }
      case 'email': {
        const v = g.value;
        const ok = v.includes('@')
          ? isEmailSyntax(v)
          : isDnsNameSyntax(v.startsWith('.') ? v.slice(1) : v, false);
        if (!ok) return `the email name constraint "${v}" is neither a mailbox nor a domain`;
        return { type: 'email', dns: v, label };
      }
      case 'uri': {
        const v = g.value.toLowerCase();
        if (!isDnsNameSyntax(v.startsWith('.') ? v.slice(1) : v, false))
          return `the URI name constraint "${g.value}" is not a host name`;
        return { type: 'uri', dns: v, label };
      }
      case 'ip': {
        const addr = ipToBytes(g.value);
        const mask = ipToBytes(g.mask ?? '');
        if (!contiguousMask(mask))
          return `the IP name constraint ${g.value}/${g.mask ?? ''} is not a CIDR range`;
        return { type: 'ip', ip: { addr, mask }, label };
      }
      case 'dn':
        return { type: 'dn', rdns: rdnKeys(g.value), label };
      case 'other':
        return { type: 'other', tag: g.tag, label };
    }
  };
  const out: ParsedConstraints = { permitted: [], excluded: [], permittedTypes: new Set(), count: 0 };
  for (const g of nc.permitted) {
    const s = conv(g);
    if (typeof s === 'string') return s;
    out.permitted.push(s);
    out.permittedTypes.add(typeKey(s));
  }
  for (const g of nc.excluded) {
    const s = conv(g);
    if (typeof s === 'string') return s;
    out.excluded.push(s);
  }
  out.count = out.permitted.length + out.excluded.length;
  return out;
}

function typeKey(s: { type: string; tag?: number; ip?: { addr: Buffer } }): string {
  if (s.type === 'other') return `other:${s.tag}`;
  if (s.type === 'ip') return `ip:${s.ip!.addr.length}`;
  return s.type;
}

function contiguousMask(mask: Buffer): boolean {
  let zero = false;
  for (const byte of mask) {
    for (let b = 7; b >= 0; b--) {
      const one = (byte >> b) & 1;
      if (one && zero) return false;
      if (!one) zero = true;
    }
  }
  return mask.length === 4 || mask.length === 16;
}

function inDomain(name: string, base: string): boolean {
  return base === '' || name === base || name.endsWith('.' + base);
}

/** A name as the constraint checker sees it. */
interface CheckedName {
  type: GeneralName['type'];
  label: string;
  dns?: string;
  wildcard?: boolean;
  email?: { local: string; domain: string };
  uriHost?: string | undefined;
  ip?: Buffer;
  rdns?: string[];
  tag?: number;
  /** Syntactically invalid: cannot be shown to be inside any subtree. */
  invalid?: boolean;
}

function namesOf(cert: Certificate): CheckedName[] {
  const out: CheckedName[] = [];
  for (const g of cert.subjectAltNames) {
    const label = formatGeneralName(g);
    switch (g.type) {
      case 'dns': {
        const v = g.value.toLowerCase();
        const wildcard = v.startsWith('*.');
        out.push({
          type: 'dns',
          label,
          dns: wildcard ? v.slice(2) : v,
          wildcard,
          invalid: !isDnsNameSyntax(v, true),
        });
        break;
      }
      case 'email': {
        const at = g.value.lastIndexOf('@');
        out.push({
          type: 'email',
          label,
          email: { local: g.value.slice(0, at), domain: g.value.slice(at + 1).toLowerCase() },
          invalid: !isEmailSyntax(g.value),
        });
        break;
      }
      case 'uri':
        out.push({ type: 'uri', label, uriHost: uriHost(g.value) });
        break;
      case 'ip':
        out.push({ type: 'ip', label, ip: ipToBytes(g.value) });
        break;
      case 'dn':
        out.push({ type: 'dn', label, rdns: rdnKeys(g.value) });
        break;
      case 'other':
        out.push({ type: 'other', label, tag: g.tag });
        break;
    }
  }
  if (cert.subject.length > 0)
    out.push({ type: 'dn', label: `subject ${formatName(cert.subject)}`, rdns: rdnKeys(cert.subject) });
  for (const rdn of cert.subject) {
    for (const a of rdn) {
      if (a.oid !== OID.emailAddress) continue;
      const at = a.value.lastIndexOf('@');
      out.push({
        type: 'email',
        label: `subject emailAddress ${a.value}`,
        email: { local: a.value.slice(0, at), domain: a.value.slice(at + 1).toLowerCase() },
        invalid: !isEmailSyntax(a.value),
      });
    }
  }
  return out;
}

function nameTypeKey(n: CheckedName): string {
  if (n.type === 'other') return `other:${n.tag}`;
  if (n.type === 'ip') return `ip:${n.ip!.length}`;
  return n.type;
}

/** 'in': every instance of the name lies in the subtree; 'some': some instance might (wildcards); 'out'. */
function relation(n: CheckedName, s: Subtree): 'in' | 'some' | 'out' {
  switch (s.type) {
    case 'dns': {
      const base = s.dns!;
      if (!n.wildcard) return inDomain(n.dns!, base) ? 'in' : 'out';
      // *.rest: every match is one label under `rest`.
      if (inDomain(n.dns!, base) && n.dns! !== '') return 'in';
      const dot = base.indexOf('.');
      if (dot > 0 && base.slice(dot + 1) === n.dns) return 'some';
      return 'out';
    }
    case 'email': {
      const c = s.dns!;
      const { local, domain } = n.email!;
      if (c.includes('@')) {
        const at = c.lastIndexOf('@');
        return c.slice(0, at) === local && c.slice(at + 1).toLowerCase() === domain ? 'in' : 'out';
      }
      const lc = c.toLowerCase();
      if (lc.startsWith('.')) return domain.endsWith(lc) ? 'in' : 'out';
      return domain === lc ? 'in' : 'out';
    }
    case 'uri': {
      const host = n.uriHost;
      if (host === undefined) return 'out';
      const c = s.dns!;
      if (c.startsWith('.')) return host.endsWith(c) ? 'in' : 'out';
      return host === c ? 'in' : 'out';
    }
    case 'ip': {
      const { addr, mask } = s.ip!;
      const ip = n.ip!;
      if (ip.length !== addr.length) return 'out';
      for (let i = 0; i < ip.length; i++) if ((ip[i]! & mask[i]!) !== (addr[i]! & mask[i]!)) return 'out';
      return 'in';
    }
    case 'dn': {
      const want = s.rdns!;
      const have = n.rdns!;
      if (want.length > have.length) return 'out';
      for (let i = 0; i < want.length; i++) if (want[i] !== have[i]) return 'out';
      return 'in';
    }
    case 'other':
      // otherName and other forms cannot be evaluated: a name of the same form is treated as matching
      // an excluded subtree and as outside a permitted one (RFC 5280 4.2.1.10: reject what cannot be processed).
      return 'some';
  }
}

function constraintViolation(n: CheckedName, c: ParsedConstraints): string | undefined {
  const tk = nameTypeKey(n);
  for (const s of c.excluded) {
    if (typeKey(s) !== tk) continue;
    if (n.invalid)
      return `${n.label} is not a valid name, so it cannot be shown to be outside the excluded subtree ${s.label}`;
    const r = relation(n, s);
    if (r !== 'out')
      return `${n.label} ${r === 'in' ? 'is inside' : 'may match names inside'} the excluded subtree ${s.label}`;
  }
  if (c.permittedTypes.has(tk)) {
    if (n.invalid)
      return `${n.label} is not a valid name, so it cannot be shown to be inside the permitted subtrees`;
    let inside = false;
    for (const s of c.permitted) {
      if (typeKey(s) !== tk) continue;
      if (s.type !== 'other' && relation(n, s) === 'in') {
        inside = true;
        break;
      }
    }
    if (!inside) {
      const allowed = c.permitted.filter((s) => typeKey(s) === tk).map((s) => s.label);
      return `${n.label} is outside the permitted subtrees (${allowed.join(', ')})`;
    }
  }
  return undefined;
}

// OpenSSL's bound (NAME_CHECK_MAX): names x constraints beyond this is refused as a denial of service.
const NAME_CHECK_MAX = 1 << 20;

// ---------------------------------------------------------------- per-certificate checks

type Problem = { reason: Reason; message: string };

const ACCEPTED_CURVES = new Set(['P-256', 'P-384', 'P-521']);
const WEAK_SIG = new Set<string>([
  OID.sha1WithRSAEncryption,
  OID.md5WithRSAEncryption,
  OID.ecdsaWithSHA1,
  '1.2.840.113549.1.1.2',
  '1.2.840.10040.4.3',
]);

const intrinsicCache = new WeakMap<Certificate, { strict: Problem[]; lax: Problem[] }>();

/** Problems of a certificate on its own, whatever its place in a path (cached: certificates are immutable). */
function intrinsicProblems(cert: Certificate, strict: boolean): Problem[] {
  let hit = intrinsicCache.get(cert);
  if (!hit) {
    hit = { strict: computeIntrinsic(cert, true), lax: computeIntrinsic(cert, false) };
    intrinsicCache.set(cert, hit);
  }
  return strict ? hit.strict : hit.lax;
}

function computeIntrinsic(cert: Certificate, strict: boolean): Problem[] {
  const out: Problem[] = [];
  const s = subjectString(cert) || '(empty subject)';
  const malformed = (why: string): void => {
    out.push({ reason: 'malformed', message: `${s}: ${why}.` });
  };
  // Only extensions this verifier reads count: an unknown extension's value is opaque (and, if
  // critical, reported below as unsupported).
  for (const e of cert.extensionErrors) {
    const oid = e.slice(0, e.indexOf(':'));
    if (UNDERSTOOD_EXTENSIONS.has(oid))
      malformed(`the extension ${extensionName(oid)} is malformed (${e.slice(oid.length + 2)})`);
  }
  for (const o of cert.duplicateExtensions)
    malformed(`the extension ${extensionName(o)} appears more than once`);
  for (const o of cert.unknownCritical) {
    out.push({
      reason: 'unsupported_critical_extension',
      message: `${s} has the critical extension ${extensionName(o)}, which is not understood, so the certificate must be rejected.`,
    });
  }
  if (!cert.tbsSignatureAlgorithmRaw.equals(cert.outerSignatureAlgorithmRaw)) {
    malformed('the signature algorithm inside the certificate differs from the outer one');
  }
  // Keys.
  const pk = cert.publicKey;
  if (pk.algorithm === 'RSA' || pk.algorithm === 'RSA-PSS') {
    if (pk.bits < 2048 || pk.bits % 8 !== 0) {
      out.push({
        reason: 'weak_key',
        message: `${s} has an RSA key of ${pk.bits} bits; at least 2048 bits (a multiple of 8) are required.`,
      });
    }
  } else if (pk.algorithm === 'EC') {
    if (!ACCEPTED_CURVES.has(pk.curve ?? '')) {
      out.push({
        reason: 'weak_key',
        message: `${s} has an EC key on ${pk.curve ?? 'an unnamed curve'}; only P-256, P-384 and P-521 named curves are accepted.`,
      });
    }
  } else if (pk.algorithm === 'unknown') {
    out.push({
      reason: 'weak_key',
      message: `${s} has a public key of an unsupported algorithm (${pk.description}).`,
    });
  }
  if (!out.some((p) => p.reason === 'weak_key')) {
    try {
      publicKeyObject(cert);
    } catch {
      malformed('its public key cannot be read');
    }
  }
  // Basic constraints and key usage consistency (RFC 5280 4.2.1.3, 4.2.1.9).
  const bc = cert.basicConstraints;
  const ca = bc?.ca === true;
  const ku = cert.keyUsage;
  if (ku?.includes('keyCertSign') && !ca)
    malformed('keyUsage has keyCertSign but basicConstraints does not say CA:TRUE');
  if (bc && !bc.ca && bc.pathLen !== undefined)
    malformed('basicConstraints has a pathLenConstraint without CA:TRUE');
  if (ca && ku && !ku.includes('keyCertSign'))
    malformed('basicConstraints says CA:TRUE but keyUsage lacks keyCertSign');
  if (cert.nameConstraints && !ca)
    malformed('it has a name constraints extension, which only CA certificates may carry');
  if (cert.hasSan && cert.subjectAltNames.length === 0) malformed('its subjectAltName extension is empty');
  if (!strict) return out;

  // RFC 5280 issuing rules (strict).
  if (cert.version !== 3) malformed(`it is an X.509 v${cert.version} certificate; v3 is required`);
  if (cert.issuer.length === 0) malformed('its issuer name is empty');
  const critical = (oid: string): boolean | undefined => extension(cert, oid)?.critical;
  if (critical(OID.authorityKeyIdentifier)) malformed('its authority key identifier is marked critical');
  if (critical(OID.subjectKeyIdentifier)) malformed('its subject key identifier is marked critical');
  if (critical(OID.authorityInfoAccess))
    malformed('its authority information access extension is marked critical');
  const aia = extension(cert, OID.authorityInfoAccess);
  if (aia && aiaEmpty(aia.value))
    malformed('its authority information access extension holds no access description');
  if (cert.policyConstraints && critical(OID.policyConstraints) === false)
    malformed('its policy constraints extension is not marked critical');
  const selfIssued = isSelfIssued(cert);
  const aki = cert.authorityKeyId;
  if (aki && !aki.keyId) malformed('its authority key identifier has no keyIdentifier');
  if (selfIssued && aki?.hasIssuerAndSerial)
    malformed('as a root, its authority key identifier must not name an issuer and serial');
  if (
    selfIssued &&
    aki?.keyId &&
    cert.subjectKeyId &&
    !aki.keyId.equals(cert.subjectKeyId) &&
    isSelfSigned(cert)
  ) {
    malformed(
      'as a self-signed root, its authority key identifier does not match its subject key identifier',
    );
  }
  if (ca) {
    if (!cert.subjectKeyId) malformed('as a CA certificate, it must have a subject key identifier');
    if (critical(OID.basicConstraints) === false)
      malformed('as a CA certificate, its basicConstraints must be critical');
    if (cert.subject.length === 0) malformed('as a CA certificate, its subject name must not be empty');
  }
  if (cert.subject.length === 0) {
    if (!cert.hasSan) malformed('its subject is empty and it has no subjectAltName');
    else if (!cert.sanCritical) malformed('its subject is empty, so its subjectAltName must be critical');
  } else if (cert.sanCritical) {
    malformed('its subjectAltName is critical although the subject is not empty');
  }
  for (const g of cert.subjectAltNames) {
    if (g.type === 'dns' && !isDnsNameSyntax(g.value, true))
      malformed(`the SAN ${formatGeneralName(g)} is not a valid DNS name`);
    if (g.type === 'email' && !isEmailSyntax(g.value))
      malformed(`the SAN ${formatGeneralName(g)} is not a valid email address`);
  }
  return out;
}

function aiaEmpty(value: Buffer): boolean {
  try {
    return der.children(der.readOne(value)).length === 0;
  } catch {
    return true;
  }
}

/** RFC 5280 rules that bind the issuer of a certificate, so not applied to trust anchors. */
function issuedProblems(cert: Certificate): string | undefined {
  const sp = serialProblem(cert);
  if (sp) return sp;
  if (!isSelfIssued(cert) && !cert.authorityKeyId)
    return 'it has no authority key identifier (required unless self-signed)';
  return undefined;
}

function serialProblem(cert: Certificate): string | undefined {
  if (cert.serialNegative) return 'its serial number is negative';
  if (/^0*$/.test(cert.serial)) return 'its serial number is zero';
  if (cert.serialLength > 20) return `its serial number is ${cert.serialLength} octets long (at most 20)`;
  return undefined;
}

// ---------------------------------------------------------------- CRLs

const crlSigCache = new WeakMap<Crl, WeakMap<Certificate, boolean>>();

function crlSignedBy(crl: Crl, issuer: Certificate): boolean {
  let m = crlSigCache.get(crl);
  let v = m?.get(issuer);
  if (v === undefined) {
    v = verifyCrlSignature(crl, issuer);
    if (!m) {
      m = new WeakMap();
      crlSigCache.set(crl, m);
    }
    m.set(issuer, v);
  }
  return v;
}

// ---------------------------------------------------------------- path validation

interface Ctx {
  atMs: number;
  strict: boolean;
  purposeEku: string | undefined;
  ekus: readonly string[];
  purpose: Purpose;
  expected: ExpectedName | undefined;
  crls: readonly Crl[];
  requireCrl: boolean;
  maxDepth: number;
  /** The leaf itself is a trust anchor (pinned): issuing rules are not applied to it. */
  leafTrusted: boolean;
}

const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

function validityProblem(cert: Certificate, atMs: number): Problem | undefined {
  const s = subjectString(cert) || '(empty subject)';
  if (atMs < cert.notBefore.getTime()) {
    return {
      reason: 'not_yet_valid',
      message: `${s} is not valid until ${iso(cert.notBefore)} (checked at ${iso(new Date(atMs))}); check the clocks of the issuer and of this host.`,
    };
  }
  if (atMs > cert.notAfter.getTime()) {
    return {
      reason: 'expired',
      message: `${s} expired at ${iso(cert.notAfter)} (checked at ${iso(new Date(atMs))}); renew it (mtls agent renews before expiry).`,
    };
  }
  return undefined;
}

/** Checks on the leaf that do not depend on the path: validity, usage, name. */
function leafProblems(leaf: Certificate, ctx: Ctx): Problem[] {
  const out: Problem[] = [...intrinsicProblems(leaf, ctx.strict)];
  const s = subjectString(leaf) || '(empty subject)';
  if (ctx.strict && !ctx.leafTrusted) {
    const sp = issuedProblems(leaf);
    if (sp) out.push({ reason: 'malformed', message: `${s}: ${sp}.` });
  }
  const v = validityProblem(leaf, ctx.atMs);
  if (v) out.push(v);
  const required = [...(ctx.purposeEku ? [ctx.purposeEku] : []), ...ctx.ekus];
  if (leaf.extKeyUsage && required.length) {
    const missing = required.filter((o) => !leaf.extKeyUsage!.includes(o));
    if (missing.length) {
      out.push({
        reason: 'wrong_eku',
        message: `${s} has extendedKeyUsage ${leaf.extKeyUsage.map(ekuName).join(', ')}, which lacks ${missing.map(ekuName).join(', ')}; reissue it with the ${ctx.purpose === 'server' ? 'server' : ctx.purpose === 'client' ? 'client' : 'right'} profile.`,
      });
    }
  }
  if (ctx.purpose !== 'any' && leaf.keyUsage && !leaf.keyUsage.includes('digitalSignature')) {
    out.push({
      reason: 'bad_key_usage',
      message: `${s} has keyUsage ${leaf.keyUsage.join(', ')} without digitalSignature, which a TLS ${ctx.purpose} key needs to sign the handshake.`,
    });
  }
  if (ctx.strict && ctx.purpose === 'server') {
    const bad = cnMisspellsSan(leaf);
    if (bad) {
      out.push({
        reason: 'name_mismatch',
        message: `${s}: the common name "${bad.cn}" ${bad.why} (CA/B Forum BR 7.1.4.3 requires an exact copy of a SAN); clients that read the CN would parse another name.`,
      });
    }
  }
  if (ctx.expected && !sanMatches(leaf, ctx.expected)) {
    const have = leaf.subjectAltNames.map(formatGeneralName);
    out.push({
      reason: 'name_mismatch',
      message: `${s} is not valid for ${ctx.expected.type.toUpperCase()}:${ctx.expected.value}: its SANs are ${have.length ? have.join(', ') : 'absent'} (the CN is not used).`,
    });
  }
  return out;
}

function validatePath(
  path: Certificate[],
  leafIssues: Problem[],
  ctx: Ctx,
  warnings: string[],
): VerifyFailure[] {
  const failures: VerifyFailure[] = leafIssues.map((p) => ({
    ...p,
    certIndex: 0,
    subject: subjectString(path[0]!),
  }));
  const n = path.length - 1; // index of the trust anchor
  const fail = (i: number, p: Problem): void => {
    failures.push({ ...p, certIndex: i, subject: subjectString(path[i]!) });
  };
  // Depth: intermediates between leaf and anchor, self-issued ones excepted (RFC 5280 6.1.4 (l) counts them out too).
  let intermediates = 0;
  for (let i = 1; i < n; i++) if (!isSelfIssued(path[i]!)) intermediates++;
  if (intermediates > ctx.maxDepth) {
    fail(0, {
      reason: 'path_too_long',
      message: `The chain of ${subjectString(path[0]!)} has ${intermediates} intermediate certificates; at most ${ctx.maxDepth} are allowed here.`,
    });
  }
  // Every certificate above the leaf (intermediates and the anchor itself).
  for (let i = 1; i <= n; i++) {
    const c = path[i]!;
    const s = subjectString(c) || '(empty subject)';
    const anchor = i === n;
    for (const p of intrinsicProblems(c, ctx.strict)) fail(i, p);
    if (!anchor && ctx.strict) {
      const sp = issuedProblems(c);
      if (sp) fail(i, { reason: 'malformed', message: `${s}: ${sp}.` });
    }
    const v = validityProblem(c, ctx.atMs);
    if (v) fail(i, v);
    const lenientV1Root = anchor && !ctx.strict && c.version === 1 && isSelfIssued(c);
    if (!c.basicConstraints?.ca && !lenientV1Root) {
      fail(i, {
        reason: 'issuer_not_ca',
        message: `${s} issued ${subjectString(path[i - 1]!)} but is not a CA (${c.basicConstraints ? 'basicConstraints CA:FALSE' : 'no basicConstraints extension'}).`,
      });
    }
    if (c.keyUsage && !c.keyUsage.includes('keyCertSign')) {
      fail(i, {
        reason: 'bad_key_usage',
        message: `${s} is used as a CA but its keyUsage (${c.keyUsage.join(', ')}) lacks keyCertSign.`,
      });
    }
    // EKU on CAs: like OpenSSL and Go, an EKU on a CA restricts what it may issue for (anyExtendedKeyUsage allows all).
    const required = [...(ctx.purposeEku ? [ctx.purposeEku] : []), ...ctx.ekus];
    if (c.extKeyUsage && required.length && !c.extKeyUsage.includes(OID.anyExtendedKeyUsage)) {
      const missing = required.filter((o) => !c.extKeyUsage!.includes(o));
      if (missing.length) {
        fail(i, {
          reason: 'wrong_eku',
          message: `The CA ${s} restricts its extendedKeyUsage to ${c.extKeyUsage.map(ekuName).join(', ')}, which excludes ${missing.map(ekuName).join(', ')}.`,
        });
      }
    }
    if (!anchor && WEAK_SIG.has(c.signatureAlgorithm)) {
      fail(i, {
        reason: 'weak_signature',
        message: `${s} is signed with ${signatureAlgorithmName(c.signatureAlgorithm)}, which is no longer accepted.`,
      });
    }
  }
  if (path.length > 1 && WEAK_SIG.has(path[0]!.signatureAlgorithm)) {
    fail(0, {
      reason: 'weak_signature',
      message: `${subjectString(path[0]!)} is signed with ${signatureAlgorithmName(path[0]!.signatureAlgorithm)}, which is no longer accepted.`,
    });
  }
  // pathLenConstraint (RFC 5280 6.1.4 (l), (m)), the anchor's own constraint included.
  let maxPath = path[n]!.basicConstraints?.pathLen ?? Infinity;
  for (let i = n - 1; i >= 1; i--) {
    const c = path[i]!;
    if (!isSelfIssued(c)) {
      if (maxPath <= 0) {
        fail(i, {
          reason: 'path_too_long',
          message: `${subjectString(c)} is an intermediate CA below a CA whose pathLenConstraint allows no further CA certificates.`,
        });
      }
      maxPath--;
    }
    const pl = c.basicConstraints?.pathLen;
    if (pl !== undefined && pl < maxPath) maxPath = pl;
  }
  // Name constraints: each CA's constraints apply to every certificate below it (self-issued intermediates excepted).
  let work = 0;
  for (let j = 1; j <= n; j++) {
    const ca = path[j]!;
    if (!ca.nameConstraints) continue;
    const parsed = parseConstraints(ca, ctx.strict);
    if (typeof parsed === 'string') {
      fail(j, { reason: 'malformed', message: `${subjectString(ca)}: ${parsed}.` });
      continue;
    }
    if (!extension(ca, OID.nameConstraints)?.critical)
      warnings.push(
        `${subjectString(ca)}: the name constraints extension is not marked critical (RFC 5280 requires it).`,
      );
    for (let i = j - 1; i >= 0; i--) {
      const c = path[i]!;
      if (i > 0 && isSelfIssued(c)) continue;
      const names = namesOf(c);
      work += names.length * parsed.count;
      if (work > NAME_CHECK_MAX) {
        fail(i, {
          reason: 'name_constraints',
          message: `Checking the names of ${subjectString(c) || '(empty subject)'} against the name constraints of ${subjectString(ca)} needs too much work (${names.length} names x ${parsed.count} constraints); refused as a denial of service.`,
        });
        return failures;
      }
      for (const nm of names) {
        const v = constraintViolation(nm, parsed);
        if (v) {
          fail(i, {
            reason: 'name_constraints',
            message: `${subjectString(c) || '(empty subject)'}: ${v}, set by ${subjectString(ca)}.`,
          });
          break;
        }
      }
    }
  }
  // Revocation.
  if (ctx.crls.length > 0 || ctx.requireCrl) checkCrls(path, ctx, fail, warnings);
  return failures;
}

function checkCrls(
  path: Certificate[],
  ctx: Ctx,
  fail: (i: number, p: Problem) => void,
  warnings: string[],
): void {
  const n = path.length - 1;
  for (let i = 0; i < n; i++) {
    const cert = path[i]!;
    const issuer = path[i + 1]!;
    const s = subjectString(cert);
    const isCa = cert.basicConstraints?.ca === true;
    const issuerKey = nameKey(cert.issuer);
    let covered = false;
    for (const crl of ctx.crls) {
      if (nameKey(crl.issuer) !== issuerKey) continue;
      if (!crlSignedBy(crl, issuer)) continue;
      const idp = crl.issuingDistributionPoint;
      if (
        idp &&
        ((idp.onlyContainsUserCerts && isCa) ||
          (idp.onlyContainsCACerts && !isCa) ||
          idp.onlyContainsAttributeCerts ||
          idp.indirectCrl)
      )
        continue;
      if (idp && idp.fullName.length > 0 && cert.crlDistributionPoints.length > 0) {
        const uris = new Set(idp.fullName.filter((g) => g.type === 'uri').map((g) => g.value));
        if (uris.size > 0 && !cert.crlDistributionPoints.some((u) => uris.has(u))) continue;
      }
      if (crl.isDelta) {
        warnings.push(`A delta CRL from ${crlIssuerString(crl)} was ignored (delta CRLs are not supported).`);
        continue;
      }
      const who = crlIssuerString(crl);
      const problems = [
        ...crl.problems,
        ...crl.unknownCritical.map((o) => `it has the unsupported critical extension ${o}`),
      ];
      if (issuer.keyUsage && !issuer.keyUsage.includes('cRLSign'))
        problems.push(`its issuer's keyUsage (${issuer.keyUsage.join(', ')}) lacks cRLSign`);
      if (problems.length) {
        fail(i, {
          reason: 'crl_invalid',
          message: `The CRL from ${who} cannot be used to check ${s}: ${problems.join('; ')}.`,
        });
        covered = true;
        continue;
      }
      if (crl.thisUpdate.getTime() > ctx.atMs) {
        fail(i, {
          reason: 'crl_invalid',
          message: `The CRL from ${who} is not valid until ${iso(crl.thisUpdate)} (checked at ${iso(new Date(ctx.atMs))}).`,
        });
        covered = true;
        continue;
      }
      if (crl.nextUpdate && crl.nextUpdate.getTime() < ctx.atMs) {
        fail(i, {
          reason: 'crl_expired',
          message: `The CRL from ${who} expired at ${iso(crl.nextUpdate)} (nextUpdate); fetch a fresh one.`,
        });
        covered = true;
        continue;
      }
      const entry = findRevoked(crl, cert.serial);
      if (entry) {
        if (entry.unknownCritical.length) {
          fail(i, {
            reason: 'crl_invalid',
            message: `The CRL from ${who} lists ${s} with an unsupported critical entry extension.`,
          });
        } else {
          fail(i, {
            reason: 'revoked',
            message: `${s} (serial ${cert.serial}) was revoked by ${who} on ${iso(entry.revocationDate)}${entry.reason ? ` (${entry.reason})` : ''}.`,
          });
        }
      }
      if (!idp?.onlySomeReasons) covered = true;
    }
    if (!covered && ctx.requireCrl) {
      fail(i, {
        reason: 'crl_missing',
        message: `No CRL from ${issuerString(cert)} covers ${s}, and revocation checking is required; provide a current CRL for that CA.`,
      });
    }
  }
}

// ---------------------------------------------------------------- entry point

/**
 * Validates `leaf` against the trust anchors: builds every candidate path (bounded), validates each
 * as RFC 5280 section 6 says and returns the first that passes, else the most telling failure.
 */
export function verifyCertificate(leaf: Certificate, opts: VerifyOptions): VerifyResult {
  const at = opts.at ?? new Date();
  const ctx: Ctx = {
    // Validity has one-second granularity (RFC 5280 4.1.2.5): compare at whole seconds.
    atMs: Math.floor(at.getTime() / 1000) * 1000,
    strict: opts.strict ?? true,
    purpose: opts.purpose ?? 'any',
    purposeEku: PURPOSE_EKU[opts.purpose ?? 'any'],
    ekus: opts.ekus ?? [],
    expected: opts.name === undefined ? undefined : parseExpectedName(opts.name),
    crls: opts.crls ?? [],
    requireCrl: opts.requireCrl ?? false,
    maxDepth: opts.maxDepth ?? DEFAULT_MAX_DEPTH,
    leafTrusted: opts.trust.some((t) => t === leaf || t.der.equals(leaf.der)),
  };
  const leafIssues = leafProblems(leaf, ctx);
  const budget = createBudget();
  const search = searchPaths(leaf, {
    trust: opts.trust,
    intermediates: opts.intermediates ?? [],
    maxDepth: ctx.maxDepth,
    budget,
  });
  let best: { failures: VerifyFailure[]; chain: Certificate[] } | undefined;
  let tried = 0;
  for (const path of search.paths) {
    tried++;
    const warnings: string[] = [];
    const failures = validatePath(path, leafIssues, ctx, warnings);
    if (failures.length === 0) {
      if (path.length > 1 && !isSelfSigned(path[path.length - 1]!)) {
        warnings.push(
          `The trust anchor ${subjectString(path[path.length - 1]!)} is not a self-signed root; the chain was accepted at that anchor.`,
        );
      }
      if (ctx.crls.length > 0 && !ctx.requireCrl) {
        for (let i = 0; i + 1 < path.length; i++) {
          const k = nameKey(path[i]!.issuer);
          if (!ctx.crls.some((c) => nameKey(c.issuer) === k))
            warnings.push(
              `No CRL from ${issuerString(path[i]!)} was given; ${subjectString(path[i]!)} was not checked for revocation.`,
            );
        }
      }
      return { ok: true, chain: path, warnings: [...new Set(warnings)] };
    }
    if (!best || failures.length < best.failures.length) best = { failures, chain: path };
    if (tried >= 64) break;
  }
  if (best) return { ok: false, reasons: dedupe(best.failures), chain: best.chain };
  const problem = search.problem() ?? {
    reason: 'unknown_ca' as const,
    cert: leaf,
    message: `${subjectString(leaf)} does not chain to a trusted root.`,
  };
  const reasons: VerifyFailure[] = [
    { reason: problem.reason, message: problem.message, subject: subjectString(problem.cert) },
    ...leafIssues.map((p) => ({ ...p, certIndex: 0, subject: subjectString(leaf) })),
  ];
  return { ok: false, reasons: dedupe(reasons) };
}

function dedupe(list: VerifyFailure[]): VerifyFailure[] {
  const seen = new Set<string>();
  return list.filter((f) => {
    const k = `${f.reason}|${f.certIndex ?? ''}|${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
