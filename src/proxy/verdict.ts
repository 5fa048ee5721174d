// The peer verdict: OpenSSL verifies the client chain during the handshake (rejectUnauthorized:
// false, see ARCHITECTURE.md), and this module reads the outcome into the shared reason vocabulary,
// refined by pki's own path validation over the chain the peer sent, with a sentence for a human.
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import {
  commonName,
  formatName,
  parseCertificate,
  verifyCertificate,
  type Certificate,
  type Reason,
} from '../pki/index.js';

export interface Verdict {
  accepted: boolean;
  /** Why the peer is not accepted (absent when accepted). */
  reason?: Reason;
  /** One sentence for a human: shown only with explain: true, always logged. */
  detail: string;
  /** OpenSSL's verify code, when it had one. */
  opensslCode?: string;
  /**
   * The leaf the peer sent, then the certificates after it (DER). Node completes the list from the
   * trust store where it can (an accepted peer's list ends with the root).
   */
  leaf?: Certificate;
  chain: Buffer[];
  subject?: string;
  issuer?: string;
  /** SPIFFE ID, else dns:<first DNS SAN>, else cn:<CN>; only for accepted peers. */
  identity?: string;
  spiffeId?: string;
  dnsNames: string[];
}

/** OpenSSL verify codes (as Node reports them) and their reason; the ambiguous ones are refined. */
export const OPENSSL_REASONS: Readonly<Record<string, Reason>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not_yet_valid',
  INVALID_PURPOSE: 'wrong_eku',
  CERT_REVOKED: 'revoked',
  CERT_SIGNATURE_FAILURE: 'bad_signature',
  CRL_SIGNATURE_FAILURE: 'bad_signature',
  PATH_LENGTH_EXCEEDED: 'path_too_long',
  CERT_CHAIN_TOO_LONG: 'path_too_long',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self_signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT: 'unknown_ca',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unknown_ca',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unknown_ca',
  INVALID_CA: 'issuer_not_ca',
  UNABLE_TO_GET_CRL: 'crl_missing',
  CRL_HAS_EXPIRED: 'crl_expired',
  HOSTNAME_MISMATCH: 'name_mismatch',
  ERR_TLS_CERT_ALTNAME_INVALID: 'name_mismatch',
  UNHANDLED_CRITICAL_EXTENSION: 'unsupported_critical_extension',
  PERMITTED_VIOLATION: 'name_constraints',
  EXCLUDED_VIOLATION: 'name_constraints',
  KEYUSAGE_NO_CERTSIGN: 'bad_key_usage',
  CA_KEY_TOO_SMALL: 'weak_key',
  EE_KEY_TOO_SMALL: 'weak_key',
  CA_MD_TOO_WEAK: 'weak_signature',
};

/** Codes where OpenSSL only says "could not build a path": pki tells unknown_ca from missing_intermediate. */
export const PATH_CODES: ReadonlySet<string> = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);
export const PATH_REASONS: ReadonlySet<Reason> = new Set<Reason>([
  'unknown_ca',
  'missing_intermediate',
  'self_signed',
]);

/** The DER certificates the peer sent, leaf first (Node links them through issuerCertificate). */
export function peerChain(peer: DetailedPeerCertificate | undefined): Buffer[] {
  const out: Buffer[] = [];
  let cur: DetailedPeerCertificate | undefined = peer;
  const seen = new Set<string>();
  while (cur?.raw && out.length < 16) {
    const key = cur.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    out.push(cur.raw);
    cur = cur.issuerCertificate;
  }
  return out;
}

export interface ClassifyOptions {
  /** The listener's client CA bundle, parsed. */
  trust: readonly Certificate[];
  now?: () => Date;
}

/**
 * Reads the verdict of a finished handshake. For an accepted peer only the leaf is read (cheap: no JS
 * object per certificate); `completeChain` fetches what the peer sent when revocation needs it.
 */
export function classifyPeer(socket: TLSSocket, opts: ClassifyOptions): Verdict {
  if (socket.authorized) {
    // getPeerCertificate(false) costs a quarter of (true) per fresh connection; getPeerX509Certificate()
    // costs more, and afterwards getPeerCertificate(true) no longer returns the chain (Node 20).
    const leaf = socket.getPeerCertificate(false) as { raw?: Buffer } | undefined;
    if (leaf?.raw) return classify([leaf.raw], true, undefined, opts);
  }
  const peer = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined;
  const chain = peerChain(peer);
  const code = socket.authorizationError as unknown as string | Error | null | undefined;
  const opensslCode =
    code == null
      ? undefined
      : typeof code === 'string'
        ? code
        : ((code as NodeJS.ErrnoException).code ?? code.message);
  return classify(chain, socket.authorized, opensslCode, opts);
}

/** The certificates the peer sent (and Node completed from the trust store), leaf first. */
export function completeChain(socket: TLSSocket): Buffer[] {
  return peerChain(socket.getPeerCertificate(true));
}

/**
 * Parsed certificates by DER: the same clients reconnect with the same certificates all day. Throws
 * as parseCertificate does; bounded (oldest out first).
 */
const parsedCache = new Map<string, Certificate>();
export function parseCertificateCached(der: Buffer): Certificate {
  const key = der.toString('latin1');
  let c = parsedCache.get(key);
  if (!c) {
    c = parseCertificate(der);
    if (parsedCache.size >= 10_000) parsedCache.delete(parsedCache.keys().next().value!);
    parsedCache.set(key, c);
  }
  return c;
}

/** The certificates after the leaf that parse (an unparsable extra certificate is skipped). */
export function parseIntermediates(chain: readonly Buffer[]): Certificate[] {
  const out: Certificate[] = [];
  for (const der of chain.slice(1)) {
    try {
      out.push(parseCertificateCached(der));
    } catch {
      // OpenSSL's verdict on the chain stands
    }
  }
  return out;
}

/** The same, from the raw facts (unit-testable without a socket). */
export function classify(
  chain: Buffer[],
  authorized: boolean,
  opensslCode: string | undefined,
  opts: ClassifyOptions,
): Verdict {
  if (chain.length === 0)
    return {
      accepted: false,
      reason: 'no_client_cert',
      detail: 'No client certificate was sent; this listener requires one issued by a CA it trusts.',
      chain,
      dnsNames: [],
    };
  let leaf: Certificate;
  try {
    leaf = parseCertificateCached(chain[0]!);
  } catch {
    return {
      accepted: false,
      reason: 'malformed',
      detail: 'The client certificate could not be parsed.',
      ...(opensslCode ? { opensslCode } : {}),
      chain,
      dnsNames: [],
    };
  }
  const subject = formatName(leaf.subject);
  const issuer = formatName(leaf.issuer);
  const spiffeId = leaf.subjectAltNames
    .flatMap((n) => (n.type === 'uri' && n.value.startsWith('spiffe://') ? [n.value] : []))
    .at(0);
  const dnsNames = leaf.subjectAltNames.flatMap((n) => (n.type === 'dns' ? [n.value.toLowerCase()] : []));
  const base = { leaf, chain, subject, issuer, dnsNames, ...(spiffeId ? { spiffeId } : {}) };
  if (authorized) {
    const cn = commonName(leaf.subject);
    const identity =
      spiffeId ?? (dnsNames[0] ? `dns:${dnsNames[0]}` : cn !== undefined ? `cn:${cn}` : undefined);
    return { accepted: true, detail: 'accepted', ...base, ...(identity ? { identity } : {}) };
  }
  const mapped: Reason = (opensslCode && OPENSSL_REASONS[opensslCode]) || 'unknown_ca';
  let reason = mapped;
  let detail: string | undefined;
  // pki's path validation over what the peer sent: a precise reason and a sentence naming names.
  let intermediates: Certificate[] = [];
  try {
    intermediates = chain.slice(1).map((d) => parseCertificate(d));
  } catch {
    // an unparsable extra certificate: OpenSSL's code stands
  }
  const r = verifyCertificate(leaf, {
    trust: opts.trust,
    intermediates,
    purpose: 'client',
    strict: false,
    ...(opts.now ? { at: opts.now() } : {}),
  });
  if (!r.ok) {
    const refined = r.reasons.find((f) => PATH_REASONS.has(f.reason));
    if (opensslCode && PATH_CODES.has(opensslCode) && refined) reason = refined.reason;
    else if (!opensslCode && r.reasons[0]) reason = r.reasons[0].reason;
    const same = r.reasons.find((f) => f.reason === reason);
    if (same) detail = same.message;
  }
  detail = humanDetail(reason, leaf, chain.length, detail);
  return { accepted: false, reason, detail, ...(opensslCode ? { opensslCode } : {}), ...base };
}

function humanDetail(
  reason: Reason,
  leaf: Certificate,
  sent: number,
  pkiMessage: string | undefined,
): string {
  const subject = formatName(leaf.subject);
  const issuer = formatName(leaf.issuer);
  switch (reason) {
    case 'expired':
      return leaf.notAfter.getTime() < Date.now()
        ? `Your certificate (${subject}) expired at ${leaf.notAfter.toISOString()}; renew it.`
        : (pkiMessage ?? `A certificate in the chain of ${subject} has expired.`);
    case 'not_yet_valid':
      return `Your certificate (${subject}) is not valid until ${leaf.notBefore.toISOString()}; check the clocks of both hosts.`;
    case 'wrong_eku':
      return `Your certificate (${subject}) does not allow client authentication (extended key usage clientAuth); issue a client certificate.`;
    case 'unknown_ca':
      return `Your certificate (${subject}) is issued by ${issuer}, which this listener does not trust.`;
    case 'missing_intermediate':
      return `Your certificate (${subject}) is issued by ${issuer}, which was not sent (${sent} certificate${sent === 1 ? '' : 's'} sent); send the full chain (leaf and intermediates).`;
    case 'self_signed':
      return `Your certificate (${subject}) is self-signed and not trusted by this listener.`;
    default:
      return pkiMessage ?? `Your certificate (${subject}) was not accepted: ${reason}.`;
  }
}

/** Every identity a peer can be matched by: its SPIFFE ID, dns: names and cn:. */
export function identitiesOf(v: Verdict): string[] {
  const out: string[] = [];
  if (v.spiffeId) out.push(v.spiffeId);
  for (const d of v.dnsNames) out.push(`dns:${d}`);
  for (const rdn of v.leaf?.subject ?? [])
    for (const a of rdn) if (a.oid === '2.5.4.3') out.push(`cn:${a.value}`);
  return out;
}
