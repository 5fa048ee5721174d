// `files` mode: one side's certificate, key, chain, trust bundle and CRL, checked on their own.
import {
  detectRole,
  isSelfSigned,
  issuerString,
  nameKey,
  subjectString,
  verifyCertificate,
  type Certificate,
  type Crl,
} from '../pki/index.js';
import {
  certEvidence,
  checkKey,
  findKnownIssuer,
  lintPresented,
  presentedChain,
  reissueCommand,
  sendChainFix,
  verdictFindings,
  type Presented,
  type Role,
} from './checks.js';
import { makeReport, type DoctorReport, type Finding } from './findings.js';
import { loadCertificates, loadCrls, loadKey, type InputFile, type LoadContext } from './load.js';
import { dedupeFindings } from './merge.js';

export interface FilesInput {
  cert: InputFile;
  key?: InputFile;
  chain?: InputFile;
  /** The bundle the peer verifies this certificate with (the CA that should have issued it). */
  ca?: InputFile;
  crl?: InputFile;
  /** Detected from the certificate when absent (clientAuth only: client, otherwise server). */
  role?: Role;
  /** The name the certificate must be valid for (a host name or IP for a server). */
  name?: string;
  passphrase?: string;
  at?: Date;
}

export function checkFiles(input: FilesInput): DoctorReport {
  const at = input.at ?? new Date();
  const findings: Finding[] = [];
  const ctx: LoadContext = { side: input.role ?? 'server', pemOnly: false, findings };
  const loaded = loadCertificates(input.cert, 'a certificate', ctx);
  const leafGuess = loaded?.certs.find((c) => !c.basicConstraints?.ca) ?? loaded?.certs[0];
  const role: Role = input.role ?? (leafGuess && detectRole(leafGuess) === 'client' ? 'client' : 'server');
  ctx.side = role;
  for (const f of findings) f.side = role;
  const chain = input.chain ? loadCertificates(input.chain, 'a certificate chain', ctx) : undefined;
  const key = input.key
    ? loadKey(input.key, ctx, input.passphrase, {
        passphraseFlag: '--passphrase-file',
        encryptedIsError: false,
      })
    : undefined;
  const ca = input.ca ? loadCertificates(input.ca, 'a CA bundle', ctx) : undefined;
  const crls: Crl[] = input.crl ? loadCrls(input.crl, ctx) : [];
  if (!loaded) return makeReport(findings);

  const verdicts: Finding[] = [];
  const p = presentedChain(
    role,
    role,
    input.cert.path,
    loaded.certs,
    input.chain?.path,
    chain?.certs ?? [],
    findings,
  );
  const keyObj = key?.key ?? loaded.keys[0];
  if (keyObj) checkKey(p, keyObj, input.key?.path ?? input.cert.path, findings);
  lintPresented(p, at, findings);

  const known = [
    ...loaded.certs.map((cert) => ({ cert, file: input.cert.path })),
    ...(chain?.certs ?? []).map((cert) => ({ cert, file: input.chain!.path })),
    ...(ca?.certs ?? []).map((cert) => ({ cert, file: input.ca!.path })),
  ];
  if (ca) {
    const res = verifyCertificate(p.leaf, {
      trust: ca.certs,
      intermediates: p.extra,
      purpose: role,
      ...(input.name ? { name: input.name } : {}),
      at,
      ...(crls.length || input.crl ? { crls, requireCrl: true } : {}),
      strict: false,
    });
    if (res.ok) {
      const anchor = res.chain[res.chain.length - 1]!;
      const inBundle = ca.certs.map((cert) => ({ cert, file: input.ca!.path }));
      if (res.chain.length > 1 && !isSelfSigned(anchor) && !findKnownIssuer(anchor, inBundle)) {
        const root = findKnownIssuer(anchor, known);
        findings.push({
          code: 'partial_chain',
          side: role,
          severity: 'warning',
          message: `${input.ca!.path} holds ${subjectString(anchor)} but not the root that issued it: OpenSSL-based peers (nginx, HAProxy, Node) need the self-signed root in the bundle; curl and Go accept it.`,
          evidence: certEvidence(anchor, input.ca!.path),
          fix: `Add the root ${issuerString(anchor)} to the bundle: cat ${input.ca!.path} ${root?.file ?? 'root.crt'} > ca-bundle.pem`,
        });
      }
    } else {
      verdicts.push(
        ...verdictFindings(res.reasons, res.chain, {
          presented: p,
          verifier: role,
          verifierName: 'The peer',
          trust: ca.certs,
          trustFile: input.ca!.path,
          known,
          ...(input.name ? { name: input.name } : {}),
          ...(input.crl ? { crlFile: input.crl.path } : {}),
        }),
      );
    }
  } else if (input.name) {
    // No bundle: check the name alone (the leaf as its own anchor).
    const res = verifyCertificate(p.leaf, {
      trust: [p.leaf],
      purpose: 'any',
      name: input.name,
      at,
      strict: false,
    });
    if (!res.ok) {
      const names = res.reasons.filter((r) => r.reason === 'name_mismatch');
      verdicts.push(
        ...verdictFindings(names, [p.leaf], {
          presented: p,
          verifier: role,
          verifierName: 'The peer',
          trust: [],
          trustFile: '',
          known,
          name: input.name,
        }),
      );
    }
  }
  for (const f of verdicts) if (f.side !== 'both') f.side = role;
  const derFiles = new Set([loaded, chain, ca].flatMap((l) => (l?.format === 'der' ? [l.file.path] : [])));
  for (const f of verdicts) {
    if (f.code === 'missing_intermediate')
      f.fix = sendChainFix(p, findKnownIssuer(p.leaf, known), derFiles, 'any');
    else if (f.code === 'unknown_ca' && ca) f.fix = unknownCaFix(p, ca.certs, input.ca!.path);
  }
  return makeReport(dedupeFindings([...verdicts, ...findings], p.leaf, input.name));
}

/**
 * unknown_ca in files mode: reissue from a CA the peer trusts, or extend the peer's bundle; a bundle
 * holding a root of the same name with another key (a re-created CA) is named as such.
 */
function unknownCaFix(p: Presented, trust: readonly Certificate[], caFile: string): string {
  const sent = [p.leaf, ...p.extra];
  const top =
    sent.find((c) => !isSelfSigned(c) && !sent.some((o) => o !== c && o.subjectDer.equals(c.issuerDer))) ??
    p.leaf;
  const reissue = `${reissueCommand(p.role, p.leaf)} --dir CA-DIR`;
  if (trust.some((t) => nameKey(t.subject) === nameKey(top.issuer)))
    return `${caFile} holds a root named ${issuerString(top)} with another key (the CA was re-created): replace ${caFile} with that CA's current ca.pem, or reissue this certificate from the CA in ${caFile}: ${reissue}`;
  const roots = trust.map((c) => subjectString(c)).join('; ') || '(nothing)';
  return `Issue it from a CA the peer trusts (${roots}): ${reissue}; or, if ${issuerString(top)} should be trusted, add its root to the peer's bundle: cat ${caFile} ROOT.crt > ca-bundle.pem`;
}

export type { Certificate };
