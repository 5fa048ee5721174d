// `pair` mode: both sides' files, offline. Simulates the client verifying the server for a host name
// and the server verifying the client as nginx does (ssl_verify_client on, ssl_verify_depth,
// ssl_crl for every CA, no partial chains), then says which side's files must change.
import {
  isSelfSigned,
  issuerString,
  nameKey,
  subjectString,
  verifyCertificate,
  type Certificate,
  type Crl,
  type VerifyResult,
} from '../pki/index.js';
import {
  certEvidence,
  checkKey,
  findKnownIssuer,
  lintPresented,
  presentedChain,
  sameCert,
  sendChainFix,
  verdictFindings,
  type Presented,
  type VerdictContext,
} from './checks.js';
import { makeReport, type DoctorReport, type Finding } from './findings.js';
import { loadCertificates, loadCrls, loadKey, type InputFile, type LoadContext } from './load.js';
import { dedupeFindings } from './merge.js';

export interface PairInput {
  server: {
    cert: InputFile;
    key?: InputFile;
    chain?: InputFile;
    /** What the CLIENT trusts to verify the server (curl --cacert). */
    ca: InputFile;
  };
  client: {
    /** Absent: the client has no certificate (no_client_cert). */
    cert?: InputFile;
    key?: InputFile;
    chain?: InputFile;
    /** What the SERVER trusts for clients (nginx ssl_client_certificate). */
    ca: InputFile;
  };
  /** The host name (or IP) the client connects to. */
  name: string;
  /** What the server checks revocation with (nginx ssl_crl): a CRL for every CA of the client chain. */
  serverCrl?: InputFile;
  /** nginx ssl_verify_depth: the most intermediates a client chain may have (nginx's default is 1). */
  verifyDepth?: number;
  /** Opens encrypted keys (both sides). */
  passphrase?: string;
  at?: Date;
}

export const DEFAULT_VERIFY_DEPTH = 1;

const TRUST_REASONS = new Set(['unknown_ca', 'self_signed', 'missing_intermediate']);

function trustFailed(r: VerifyResult): boolean {
  return !r.ok && r.reasons.some((x) => TRUST_REASONS.has(x.reason));
}

/** True when `p`'s chain reaches a root of `trust` (purpose and names aside): the bundle is this side's CA. */
function chainsTo(p: Presented, trust: readonly Certificate[], at: Date): boolean {
  if (trust.length === 0) return false;
  const r = verifyCertificate(p.leaf, { trust, intermediates: p.extra, purpose: 'any', at, strict: false });
  return r.ok || !r.reasons.some((x) => TRUST_REASONS.has(x.reason));
}

function rootNames(trust: readonly Certificate[]): string {
  return trust.map((c) => subjectString(c)).join('; ') || '(nothing)';
}

export function checkPair(input: PairInput): DoctorReport {
  const at = input.at ?? new Date();
  const depth = input.verifyDepth ?? DEFAULT_VERIFY_DEPTH;
  const findings: Finding[] = [];
  const verdicts: Finding[] = [];
  const sctx: LoadContext = { side: 'server', pemOnly: true, findings };
  const cctx: LoadContext = { side: 'client', pemOnly: true, findings };
  const keyOpts = { passphraseFlag: '--passphrase-file', encryptedIsError: true };

  // ---- load: server files are the server's; the server CA file is the client's trust, and so on.
  const sCert = loadCertificates(input.server.cert, 'the server certificate', sctx);
  const sChain = input.server.chain
    ? loadCertificates(input.server.chain, 'the server chain', sctx)
    : undefined;
  const sKey = input.server.key ? loadKey(input.server.key, sctx, input.passphrase, keyOpts) : undefined;
  const serverCa = loadCertificates(input.server.ca, 'the CA bundle the client trusts', cctx);
  const cCert = input.client.cert
    ? loadCertificates(input.client.cert, 'the client certificate', cctx)
    : undefined;
  const cChain = input.client.chain
    ? loadCertificates(input.client.chain, 'the client chain', cctx)
    : undefined;
  const cKey = input.client.key ? loadKey(input.client.key, cctx, input.passphrase, keyOpts) : undefined;
  const clientCa = loadCertificates(input.client.ca, 'the CA bundle the server trusts for clients', sctx);
  const crls: Crl[] = input.serverCrl ? loadCrls(input.serverCrl, sctx) : [];

  const known = [
    ...(sCert?.certs ?? []).map((cert) => ({ cert, file: input.server.cert.path })),
    ...(sChain?.certs ?? []).map((cert) => ({ cert, file: input.server.chain!.path })),
    ...(cCert?.certs ?? []).map((cert) => ({ cert, file: input.client.cert!.path })),
    ...(cChain?.certs ?? []).map((cert) => ({ cert, file: input.client.chain!.path })),
    ...(serverCa?.certs ?? []).map((cert) => ({ cert, file: input.server.ca.path })),
    ...(clientCa?.certs ?? []).map((cert) => ({ cert, file: input.client.ca.path })),
  ];

  const derFiles = new Set(
    [sCert, sChain, serverCa, cCert, cChain, clientCa].flatMap((l) =>
      l?.format === 'der' ? [l.file.path] : [],
    ),
  );

  // ---- each side's own files
  let server: Presented | undefined;
  if (sCert) {
    server = presentedChain(
      'server',
      'server',
      input.server.cert.path,
      sCert.certs,
      input.server.chain?.path,
      sChain?.certs ?? [],
      findings,
    );
    const k = sKey?.key ?? sCert.keys[0];
    if (k) checkKey(server, k, input.server.key?.path ?? input.server.cert.path, findings);
    lintPresented(server, at, findings);
  }
  let client: Presented | undefined;
  if (cCert) {
    client = presentedChain(
      'client',
      'client',
      input.client.cert!.path,
      cCert.certs,
      input.client.chain?.path,
      cChain?.certs ?? [],
      findings,
    );
    const k = cKey?.key ?? cCert.keys[0];
    if (k) checkKey(client, k, input.client.key?.path ?? input.client.cert!.path, findings);
    lintPresented(client, at, findings);
  } else if (!input.client.cert) {
    findings.push({
      code: 'no_client_cert',
      side: 'client',
      severity: 'error',
      message:
        'The client has no certificate, and the server requires one: nginx answers "400 No required SSL certificate was sent".',
      evidence: {
        clientCa: input.client.ca.path,
        trustedForClients: clientCa ? rootNames(clientCa.certs) : '',
      },
      fix: `Issue a client certificate from the CA the server trusts (${clientCa ? rootNames(clientCa.certs) : input.client.ca.path}): mtls issue client NAME --dir CA-DIR, then curl --cert NAME.chain.pem --key NAME.key`,
    });
  }

  // ---- the client verifies the server for the host name
  let sRes: VerifyResult | undefined;
  if (server && serverCa) {
    sRes = verifyCertificate(server.leaf, {
      trust: serverCa.certs,
      intermediates: server.extra,
      purpose: 'server',
      name: input.name,
      at,
      strict: false,
    });
  }
  // ---- the server verifies the client as nginx does
  let cRes: VerifyResult | undefined;
  if (client && clientCa) {
    cRes = verifyCertificate(client.leaf, {
      trust: clientCa.certs,
      intermediates: client.extra,
      purpose: 'client',
      at,
      ...(input.serverCrl ? { crls, requireCrl: true } : {}),
      strict: false,
    });
  }

  // ---- swapped CA files: a side's own verification fails, and its bundle is the other side's CA.
  const serverBundleIsClientCa =
    sRes !== undefined && trustFailed(sRes) && client !== undefined && chainsTo(client, serverCa!.certs, at);
  const clientBundleIsServerCa =
    cRes !== undefined && trustFailed(cRes) && server !== undefined && chainsTo(server, clientCa!.certs, at);
  const swapped: Finding[] = [];
  if (serverBundleIsClientCa && clientBundleIsServerCa) {
    swapped.push({
      code: 'swapped_ca_files',
      side: 'both',
      severity: 'error',
      message: `The CA files are swapped: the client verifies the server with ${input.server.ca.path}, which holds the client CA (${rootNames(serverCa!.certs)}), and the server verifies clients with ${input.client.ca.path}, which holds the server CA (${rootNames(clientCa!.certs)}).`,
      evidence: {
        file: `${input.server.ca.path}, ${input.client.ca.path}`,
        clientTrusts: rootNames(serverCa!.certs),
        serverTrustsForClients: rootNames(clientCa!.certs),
      },
      fix: `Swap them: on the server "ssl_client_certificate ${input.server.ca.path};", on the client curl --cacert ${input.client.ca.path}`,
    });
  } else if (serverBundleIsClientCa) {
    const right = server
      ? known.find(
          (k) => k.file !== input.server.ca.path && isSelfSigned(k.cert) && chainsTo(server, [k.cert], at),
        )
      : undefined;
    swapped.push({
      code: 'swapped_ca_files',
      side: 'client',
      severity: 'error',
      message: `The client verifies the server with ${input.server.ca.path}, which holds the client CA (${rootNames(serverCa!.certs)}), not the CA that issued the server certificate (${server ? issuerString(server.leaf) : '?'}).`,
      evidence: {
        ...certEvidence(server!.leaf, input.server.cert.path),
        clientTrusts: rootNames(serverCa!.certs),
      },
      fix: right
        ? `Give the client the server's CA: curl --cacert ${right.file}`
        : `Give the client the root that issued the server certificate (the server CA's ca.pem): curl --cacert SERVER-CA.pem`,
    });
  } else if (clientBundleIsServerCa) {
    const right = client
      ? known.find(
          (k) => k.file !== input.client.ca.path && isSelfSigned(k.cert) && chainsTo(client, [k.cert], at),
        )
      : undefined;
    swapped.push({
      code: 'swapped_ca_files',
      side: 'server',
      severity: 'error',
      message: `The server verifies clients with ${input.client.ca.path}, which holds the server's own CA (${rootNames(clientCa!.certs)}), not the CA that issued the client certificate (${client ? issuerString(client.leaf) : '?'}).`,
      evidence: {
        ...certEvidence(client!.leaf, input.client.cert!.path),
        serverTrustsForClients: rootNames(clientCa!.certs),
      },
      fix: right
        ? `ssl_client_certificate ${right.file};`
        : 'ssl_client_certificate CLIENT-CA.pem; (the root of the CA that issues client certificates)',
    });
  }
  verdicts.push(...swapped);

  if (server && serverCa && sRes) {
    const ctx: VerdictContext = {
      presented: server,
      verifier: 'client',
      trust: serverCa.certs,
      trustFile: input.server.ca.path,
      known,
      name: input.name,
      derFiles,
    };
    if (sRes.ok) verdicts.push(...partialChain(sRes.chain, ctx, 'warning'));
    else {
      const reasons = serverBundleIsClientCa
        ? sRes.reasons.filter((r) => !TRUST_REASONS.has(r.reason))
        : sRes.reasons;
      verdicts.push(...placeTrustFindings(verdictFindings(reasons, sRes.chain, ctx), ctx));
    }
  }
  if (client && clientCa && cRes) {
    const ctx: VerdictContext = {
      presented: client,
      verifier: 'server',
      trust: clientCa.certs,
      trustFile: input.client.ca.path,
      known,
      derFiles,
      ...(input.serverCrl ? { crlFile: input.serverCrl.path } : {}),
    };
    if (cRes.ok) {
      verdicts.push(...partialChain(cRes.chain, ctx, 'error'));
      const anchor = cRes.chain[cRes.chain.length - 1]!;
      const intermediates = cRes.chain.length - (cRes.chain.length > 1 && isSelfSigned(anchor) ? 2 : 1);
      if (intermediates > depth) {
        verdicts.push({
          code: 'verify_depth_exceeded',
          side: 'server',
          severity: 'error',
          message: `The client chain of ${subjectString(client.leaf)} has ${intermediates} intermediate certificates (${cRes.chain
            .slice(1, 1 + intermediates)
            .map((c) => subjectString(c))
            .join(
              ' -> ',
            )}), but the server allows ${depth} (ssl_verify_depth ${depth}): nginx answers "400 The SSL certificate error" (certificate chain too long).`,
          evidence: {
            ...certEvidence(client.leaf, input.client.cert!.path),
            intermediates,
            verifyDepth: depth,
          },
          fix: `ssl_verify_depth ${intermediates};`,
        });
      }
    } else {
      const reasons = clientBundleIsServerCa
        ? cRes.reasons.filter((r) => !TRUST_REASONS.has(r.reason))
        : cRes.reasons;
      verdicts.push(...placeTrustFindings(verdictFindings(reasons, cRes.chain, ctx), ctx));
    }
  }
  const merged = dedupeFindings([...verdicts, ...findings], server?.leaf, input.name);
  return makeReport(merged);
}

/** A trust bundle that ends the path at a CA that is not a self-signed root. */
function partialChain(
  chain: readonly Certificate[],
  ctx: VerdictContext,
  severity: 'error' | 'warning',
): Finding[] {
  const anchor = chain[chain.length - 1]!;
  if (chain.length < 2 || isSelfSigned(anchor)) return [];
  // The root above it in the same bundle: OpenSSL continues the path to it.
  const inBundle = ctx.trust.map((cert) => ({ cert, file: ctx.trustFile }));
  if (findKnownIssuer(anchor, inBundle)) return [];
  const root = findKnownIssuer(anchor, ctx.known);
  const server = ctx.verifier === 'server';
  return [
    {
      code: 'partial_chain',
      side: ctx.verifier,
      severity,
      message: server
        ? `${ctx.trustFile} (the server's client CA bundle) holds ${subjectString(anchor)} but not the root above it (${issuerString(anchor)}): nginx only accepts a chain that ends at a self-signed root in ssl_client_certificate, so it answers "400 The SSL certificate error" (unable to get issuer certificate).`
        : `${ctx.trustFile} (the client's trust bundle) holds ${subjectString(anchor)} but not its root (${issuerString(anchor)}): curl and Go accept that, but OpenSSL-based clients without partial-chain support (Node, Python, openssl s_client) refuse it.`,
      evidence: { ...certEvidence(anchor, ctx.trustFile) },
      fix: root
        ? `Add the root: cat ${ctx.trustFile} ${root.file === ctx.trustFile ? 'ROOT.crt' : root.file} > ${server ? 'client-ca.pem and set "ssl_client_certificate client-ca.pem;"' : 'server-ca.pem'}`
        : `Add the root ${issuerString(anchor)} (the CA's ca.pem) to ${ctx.trustFile}: cat ${ctx.trustFile} root.crt > ca-bundle.pem`,
    },
  ];
}

/**
 * unknown_ca / missing_intermediate refinements: a bundle holding a root of the same name but another
 * key (a re-created CA) is the verifier's to replace; a missing intermediate found among the inputs
 * is named in the fix.
 */
function placeTrustFindings(list: Finding[], ctx: VerdictContext): Finding[] {
  const p = ctx.presented;
  const sentChain = [p.leaf, ...p.extra];
  for (const f of list) {
    if (f.code === 'unknown_ca') {
      const top =
        sentChain.find(
          (c) =>
            !sentChain.some((o) => !sameCert(o, c) && o.subjectDer.equals(c.issuerDer)) && !isSelfSigned(c),
        ) ?? p.leaf;
      const stale = ctx.trust.find((t) => nameKey(t.subject) === nameKey(top.issuer));
      if (stale) {
        const right = findKnownIssuer(
          top,
          ctx.known.filter((k) => k.file !== ctx.trustFile),
        );
        f.side = ctx.verifier;
        f.message = `${ctx.trustFile} holds a root named ${subjectString(stale)}, but not the one that issued ${subjectString(top)} (same name, another key: the CA was re-created or the bundle is stale).`;
        f.evidence = { ...certEvidence(stale, ctx.trustFile), chainIssuer: issuerString(top) };
        f.fix = right
          ? ctx.verifier === 'server'
            ? `ssl_client_certificate ${right.file};`
            : `curl --cacert ${right.file}`
          : `Replace ${ctx.trustFile} with the current root of ${issuerString(top)} (the ca.pem of the CA that issued ${subjectString(top)}).`;
      } else {
        f.fix =
          ctx.verifier === 'server'
            ? `Issue the client certificate from a CA the server trusts (${rootNames(ctx.trust)}): mtls issue client ${p.leaf.subject.length ? subjectString(p.leaf).replace(/^CN=/, '') : 'NAME'} --dir CA-DIR; or, if ${issuerString(top)} should be trusted, add its root to ssl_client_certificate.`
            : `Serve a certificate from a CA the client trusts (${rootNames(ctx.trust)}), or give the client the root of ${issuerString(top)}.`;
        f.evidence = { ...f.evidence, trusted: rootNames(ctx.trust) };
      }
    } else if (f.code === 'missing_intermediate') {
      const inter = findKnownIssuer(p.leaf, ctx.known);
      f.fix = sendChainFix(p, inter, ctx.derFiles ?? new Set(), 'nginx-curl');
    }
  }
  return list;
}
