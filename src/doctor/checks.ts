// Checks shared by the modes: one side's presented chain (order, key, lint), and the translation of
// a verification verdict (pki/verify reasons) into findings with a side, evidence and a fix.
import type { KeyObject } from 'node:crypto';
import {
  commonName,
  formatGeneralName,
  isSelfSigned,
  issuerString,
  keyMatchesSpki,
  lintCertificate,
  orderChain,
  subjectString,
  type Certificate,
  type LintCode,
  type VerifyFailure,
} from '../pki/index.js';
import {
  DOCTOR_CODES,
  type DoctorCode,
  type Evidence,
  type Finding,
  type FindingCode,
  type Side,
} from './findings.js';
import { pemName } from './load.js';

export type Role = 'client' | 'server';

/** What one side sends in its handshake: the leaf, then the rest of its certificate and chain files. */
export interface Presented {
  side: Role;
  role: Role;
  leaf: Certificate;
  /** Certificates sent after the leaf, in file order. */
  extra: Certificate[];
  /** The file each certificate came from. */
  fileOf: Map<Certificate, string>;
  certFile: string;
  chainFile?: string;
}

const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

export function certEvidence(cert: Certificate, file?: string): Evidence {
  const sans = cert.subjectAltNames.map(formatGeneralName);
  return {
    ...(file ? { file } : {}),
    subject: subjectString(cert) || '(empty)',
    issuer: issuerString(cert),
    notBefore: iso(cert.notBefore),
    notAfter: iso(cert.notAfter),
    ...(sans.length ? { sans } : {}),
  };
}

export function sameCert(a: Certificate, b: Certificate): boolean {
  return a === b || a.der.equals(b.der);
}

/** `mtls issue <role> <name> [--san …]` that reissues this certificate right (extra SANs added). */
export function reissueCommand(role: Role, cert: Certificate, extraSans: string[] = []): string {
  const cn = commonName(cert.subject);
  const dnsOrIp = cert.subjectAltNames.flatMap((n) =>
    n.type === 'dns' || n.type === 'ip' ? [`${n.type}:${n.value}`] : [],
  );
  const firstSan = cert.subjectAltNames.find((n) => n.type === 'dns' || n.type === 'ip')?.value;
  const name = role === 'server' ? (firstSan ?? cn ?? 'HOST') : (cn ?? firstSan ?? 'NAME');
  const quoted = /^[\w.@:*-]+$/.test(name) ? name : `"${name}"`;
  const sans = [...new Set([...dnsOrIp, ...extraSans])].filter(
    (s) => s.toLowerCase() !== `dns:${name.toLowerCase()}` && s !== `ip:${name}`,
  );
  return `mtls issue ${role} ${quoted}${sans.length ? ` --san ${sans.join(',')}` : ''}`;
}

// ---------------------------------------------------------------- one side's files

/** Orders what a side sends: the certificate file's first certificate is what nginx and curl send as the leaf. */
export function presentedChain(
  side: Role,
  role: Role,
  certFile: string,
  certs: Certificate[],
  chainFile: string | undefined,
  chainCerts: Certificate[],
  findings: Finding[],
): Presented {
  const fileOf = new Map<Certificate, string>();
  for (const c of certs) fileOf.set(c, certFile);
  for (const c of chainCerts) fileOf.set(c, chainFile ?? certFile);
  const all = [...certs, ...chainCerts];
  const ordered = orderChain(all);
  const first = all[0]!;
  const leaf = ordered.chain[0] ?? first;
  if (!sameCert(first, leaf) && first.basicConstraints?.ca && !leaf.basicConstraints?.ca) {
    findings.push({
      code: 'chain_order',
      side,
      severity: 'error',
      message: `${certFile} starts with the CA certificate ${subjectString(first)}, not with the ${role} certificate ${subjectString(leaf)}: ${side === 'server' ? 'nginx' : 'curl'} uses the first certificate of the file as its own, so the key does not match it.`,
      evidence: { ...certEvidence(first, certFile), leaf: subjectString(leaf) },
      fix: `Put the leaf first: write ${certFile} as ${[leaf, ...ordered.chain.slice(1)].map((c) => subjectString(c)).join(' then ')} (e.g. cat leaf.crt intermediate.crt > ${certFile}).`,
    });
  } else {
    for (const p of ordered.problems) {
      findings.push({
        code: 'chain_order',
        side,
        severity: 'warning',
        message: `${chainFile ?? certFile}: ${p.message}`,
        evidence: { file: chainFile ?? certFile, subject: p.subject, problem: p.kind },
        fix:
          p.kind === 'wrong_order'
            ? `Rewrite it leaf first, then each issuer: ${ordered.chain.map((c) => subjectString(c)).join(' -> ')}.`
            : `Remove ${p.subject} from ${chainFile ?? certFile}.`,
      });
    }
  }
  const extra = all.filter((c) => !sameCert(c, leaf));
  return {
    side,
    role,
    leaf,
    extra,
    fileOf,
    certFile,
    ...(chainFile ? { chainFile } : {}),
  };
}

/** key_mismatch (or nothing when the mismatch is the chain_order already reported). */
export function checkKey(p: Presented, key: KeyObject, keyFile: string, findings: Finding[]): void {
  if (keyMatchesSpki(key, p.leaf.spki)) return;
  const other = p.extra.find((c) => keyMatchesSpki(key, c.spki));
  if (other && findings.some((f) => f.code === 'chain_order' && f.side === p.side && f.severity === 'error'))
    return;
  findings.push({
    code: 'key_mismatch',
    side: p.side,
    severity: 'error',
    message: `${keyFile} is not the private key of ${subjectString(p.leaf)} (${p.certFile}): ${p.side === 'server' ? 'nginx refuses to start ("key values mismatch")' : 'curl cannot use the pair'}.`,
    evidence: { ...certEvidence(p.leaf, p.certFile), key: keyFile },
    fix: `Use the key written with ${p.certFile} (mtls issue writes NAME.key next to NAME.crt), or reissue both: ${reissueCommand(p.role, p.leaf)}`,
  });
}

const LINT_AS: Partial<Record<LintCode, DoctorCode>> = {
  missing_eku_for_role: 'wrong_eku',
  missing_digital_signature: 'bad_key_usage',
  path_too_long: 'path_len_exceeded',
};

/** Lint of what a side sends: every error of the leaf for its role; keys, signatures and dates of the rest. */
export function lintPresented(p: Presented, at: Date, findings: Finding[]): void {
  const emit = (
    cert: Certificate,
    code: LintCode,
    message: string,
    fix: string,
    severity: 'error' | 'warning' | 'info',
  ): void => {
    const mapped: FindingCode = LINT_AS[code] ?? code;
    findings.push({
      code: mapped,
      side: p.side,
      severity,
      message,
      evidence: certEvidence(cert, p.fileOf.get(cert)),
      fix,
    });
  };
  for (const f of lintCertificate(p.leaf, { role: p.role, at })) {
    if (f.severity !== 'error') continue;
    emit(p.leaf, f.code, f.message, f.fix, 'error');
  }
  const keep = new Set<LintCode>(['weak_key', 'weak_signature', 'expired', 'not_yet_valid']);
  for (const c of p.extra) {
    const role = c.basicConstraints?.ca ? (isSelfSigned(c) ? 'root' : 'intermediate') : p.role;
    for (const f of lintCertificate(c, { role, at }))
      if (f.severity === 'error' && keep.has(f.code)) emit(c, f.code, f.message, f.fix, 'error');
  }
}

// ---------------------------------------------------------------- verification verdicts

export interface VerdictContext {
  presented: Presented;
  /** The side that verifies (holds the trust bundle). */
  verifier: Role;
  /** How the message names the verifier (default: The server / The client). */
  verifierName?: string;
  trust: Certificate[];
  trustFile: string;
  /** Every certificate of every input, to name the intermediate or root that would fix a chain. */
  known: { cert: Certificate; file: string }[];
  name?: string;
  crlFile?: string;
  /** Input files that hold DER: a fix must convert them before concatenating. */
  derFiles?: ReadonlySet<string>;
}

function where(
  cert: Certificate,
  ctx: VerdictContext,
): { side: Side; file: string | undefined; inTrust: boolean } {
  const sent = [ctx.presented.leaf, ...ctx.presented.extra].find((c) => sameCert(c, cert));
  if (sent) return { side: ctx.presented.side, file: ctx.presented.fileOf.get(sent), inTrust: false };
  if (ctx.trust.some((c) => sameCert(c, cert)))
    return { side: ctx.verifier, file: ctx.trustFile, inTrust: true };
  return { side: ctx.presented.side, file: undefined, inTrust: false };
}

/** The certificate that issued `cert`, found in any input file. */
export function findKnownIssuer(
  cert: Certificate,
  known: readonly { cert: Certificate; file: string }[],
): { cert: Certificate; file: string } | undefined {
  return known.find(
    (k) =>
      !sameCert(k.cert, cert) &&
      k.cert.subjectDer.equals(cert.issuerDer) &&
      (!cert.authorityKeyId?.keyId ||
        !k.cert.subjectKeyId ||
        cert.authorityKeyId.keyId.equals(k.cert.subjectKeyId)),
  );
}

function fixFor(
  code: FindingCode,
  cert: Certificate,
  inTrust: boolean,
  file: string | undefined,
  ctx: VerdictContext,
): string {
  const p = ctx.presented;
  const isLeaf = sameCert(cert, p.leaf);
  const reissue = reissueCommand(p.role, p.leaf);
  const replaceIn = file ? ` and replace ${file}` : '';
  switch (code) {
    case 'expired':
    case 'not_yet_valid': {
      const clock =
        code === 'not_yet_valid' ? 'Check the clock of the issuing machine (timedatectl status), then: ' : '';
      if (inTrust)
        return `${clock}Replace ${ctx.trustFile} with the current root of that CA (its ca.pem), which ${ctx.verifier === 'server' ? 'ssl_client_certificate' : 'the client (--cacert)'} must name.`;
      if (isLeaf) return `${clock}${code === 'expired' ? 'Renew' : 'Reissue'} it: ${reissue}${replaceIn}.`;
      return `${clock}Replace ${subjectString(cert)} in ${file ?? p.chainFile ?? p.certFile} with the CA's current certificate (mtls issue writes NAME.chain.pem with it).`;
    }
    case 'wrong_eku':
    case 'bad_key_usage':
      if (!isLeaf)
        return `The CA ${subjectString(cert)} may not issue ${p.role} certificates; issue ${subjectString(p.leaf)} from a CA without that restriction: ${reissue}.`;
      return `Reissue it as a ${p.role} certificate: ${reissue}${replaceIn}.`;
    case 'revoked':
      return `Issue a new certificate: ${reissue}${replaceIn} (a revoked certificate never works again).`;
    case 'self_signed':
      return `Issue the ${p.role} certificate from the CA the ${ctx.verifier} trusts (${ctx.trust.map((c) => subjectString(c)).join('; ') || ctx.trustFile}): ${reissue} --dir CA-DIR.`;
    case 'name_mismatch':
      return `Reissue the server certificate with the name: ${reissueCommand('server', p.leaf, ctx.name ? [sanArg(ctx.name)] : [])}${replaceIn}.`;
    case 'issuer_not_ca':
      return `${subjectString(cert)} is not a CA and cannot issue certificates; issue ${subjectString(p.leaf)} from a real CA: ${reissue} (mtls ca init makes one).`;
    case 'path_len_exceeded':
      return `Issue ${subjectString(p.leaf)} directly from a CA whose pathLenConstraint allows it (the intermediate of mtls ca init): ${reissue}, and send only that intermediate.`;
    case 'weak_key':
      return `Create a new key and certificate: ${reissue} --key-type p256.`;
    case 'weak_signature':
    case 'bad_signature':
    case 'malformed':
    case 'unsupported_critical_extension':
    case 'name_constraints':
    case 'policy_violation':
      return `Reissue it from a CA that signs with SHA-256 or better and the right extensions: ${reissue}${replaceIn}.`;
    case 'crl_expired':
      return `Replace ${ctx.crlFile ?? 'the ssl_crl file'} with a current CRL from ${issuerString(cert)} (the CA's /v1/crl/chain, or mtls ca root-crl for the root's) and reload nginx.`;
    case 'crl_missing': {
      const issuer = issuerString(cert);
      return `Add the CRL of ${issuer} to ${ctx.crlFile ?? 'the ssl_crl file'} (nginx needs one for every CA of the chain): cat intermediate.crl root.crl > ${ctx.crlFile ?? 'crl.pem'} (mtls ca root-crl --dir CA-DIR refreshes root.crl).`;
    }
    case 'crl_invalid':
      return `Replace ${ctx.crlFile ?? 'the CRL file'} with a CRL signed by ${issuerString(cert)}.`;
    default:
      return DOCTOR_CODES[code as DoctorCode]?.fix ?? `Reissue it: ${reissue}.`;
  }
}

/**
 * missing_intermediate: concatenate the leaf and its intermediate into one PEM chain file. DER files
 * cannot be concatenated: the fix converts them first. `peer` says who reads the result: nginx/curl
 * (pair mode) or any program (files mode: "use it as the certificate file").
 */
export function sendChainFix(
  p: Presented,
  inter: { cert: Certificate; file: string } | undefined,
  derFiles: ReadonlySet<string>,
  peer: 'nginx-curl' | 'any',
): string {
  const out =
    peer === 'any'
      ? `${p.certFile.replace(/(\.chain)?\.(der|cer|crt|pem)$/i, '')}.chain.pem`
      : p.side === 'server'
        ? 'server.chain.pem'
        : 'client.chain.pem';
  const convert: string[] = [];
  const asPem = (file: string): string => {
    if (!derFiles.has(file)) return file;
    const pem = pemName(file);
    convert.push(`openssl x509 -inform DER -in ${file} -out ${pem}`);
    return pem;
  };
  const leaf = asPem(p.certFile);
  const interFile = inter ? asPem(inter.file) : 'intermediate.crt';
  const use =
    peer === 'any'
      ? `use ${out} as the certificate file`
      : p.side === 'server'
        ? `"ssl_certificate ${out};"`
        : `curl --cert ${out}`;
  const cat = `cat ${leaf} ${interFile} > ${out}`;
  const head = convert.length
    ? `${convert.length > 1 ? 'These files are DER, which cannot' : `${p.certFile} is DER, which cannot`} be concatenated; convert, then send the chain: ${[...convert, cat].join(' && ')}`
    : `Send the chain: ${cat}`;
  return `${head}, then ${use}${inter ? ` (${inter.file} holds ${subjectString(inter.cert)})` : ''}.`;
}

export function sanArg(name: string): string {
  return /^[\d.]+$|:/.test(name) ? `ip:${name}` : `dns:${name}`;
}

/** Findings for a failed verification, each placed on the side whose files must change. */
export function verdictFindings(
  reasons: readonly VerifyFailure[],
  chain: readonly Certificate[] | undefined,
  ctx: VerdictContext,
): Finding[] {
  const out: Finding[] = [];
  const p = ctx.presented;
  for (const r of reasons) {
    const cert =
      (r.certIndex !== undefined ? chain?.[r.certIndex] : undefined) ??
      [p.leaf, ...p.extra, ...ctx.trust].find((c) => subjectString(c) === r.subject) ??
      p.leaf;
    const code: FindingCode = r.reason === 'path_too_long' ? 'path_len_exceeded' : (r.reason as FindingCode);
    const w = where(cert, ctx);
    let side: Side = w.side;
    if (code === 'crl_expired' || code === 'crl_missing' || code === 'crl_invalid') side = ctx.verifier;
    if (code === 'name_mismatch') side = 'server';
    out.push({
      code,
      side,
      severity: 'error',
      message: `${ctx.verifierName ?? (ctx.verifier === 'server' ? 'The server' : 'The client')} refuses ${subjectString(p.leaf) || 'the certificate'}: ${r.message}`,
      evidence: { ...certEvidence(cert, w.file) },
      fix: fixFor(code, cert, w.inTrust, w.file, ctx),
    });
  }
  return out;
}
