// `connect` mode: a live handshake with HOST:PORT from the client's side (connect-probe.ts), read
// together with the client's own files. What the server showed (its chain, the CA names it accepts,
// an alert, nginx's 400 pages, mtls proxy's JSON reasons, or a network failure) becomes findings on
// the side whose files or configuration must change.
import type { KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import {
  encodePem,
  exportPrivateKeyPem,
  isReason,
  isSelfSigned,
  issuerString,
  nameKey,
  decodeName,
  parseCertificate,
  read,
  subjectString,
  verifyCertificate,
  type Certificate,
} from '../pki/index.js';
import {
  certEvidence,
  checkKey,
  lintPresented,
  presentedChain,
  reissueCommand,
  sameCert,
  verdictFindings,
  type Presented,
} from './checks.js';
import { probe, type Observation } from './connect-probe.js';
import { bodyExcerpt, nginxPage, proxyRefusal } from './connect-wire.js';
import {
  DOCTOR_CODES,
  type DoctorCode,
  type Evidence,
  type Finding,
  type FindingCode,
  type Severity,
  type Side,
} from './findings.js';
import { loadCertificates, loadKey, type InputFile, type LoadContext } from './load.js';
import { dedupeFindings } from './merge.js';

/** Connect mode adds `network`: nobody's files, the address, the port or what listens there. */
export type ConnectSide = Side | 'network';

export interface ConnectFinding extends Omit<Finding, 'side'> {
  side: ConnectSide;
}

export interface ConnectReport {
  ok: boolean;
  failingSide: ConnectSide | null;
  findings: ConnectFinding[];
}

export interface ConnectInput {
  host: string;
  port: number;
  /** SNI, Host header and the name the server certificate must match (default: host). */
  servername?: string;
  cert?: InputFile;
  key?: InputFile;
  chain?: InputFile;
  /** What the client trusts to verify the server (curl --cacert). */
  ca?: InputFile;
  passphrase?: string;
  timeoutMs?: number;
  at?: Date;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

/** The client's files, checked on their own, and what can be sent from them. */
export interface LocalClient {
  findings: Finding[];
  presented?: Presented;
  key?: KeyObject;
  /** The certificate and key could be loaded and belong together: they are sent. */
  sendable: boolean;
  certGiven: boolean;
  trust: Certificate[];
  trustFile?: string;
}

export function checkLocalClient(input: ConnectInput, at: Date): LocalClient {
  const findings: Finding[] = [];
  const ctx: LoadContext = { side: 'client', pemOnly: true, findings };
  const cert = input.cert ? loadCertificates(input.cert, 'the client certificate', ctx) : undefined;
  const chain = input.chain ? loadCertificates(input.chain, 'the client chain', ctx) : undefined;
  const key = input.key
    ? loadKey(input.key, ctx, input.passphrase, {
        passphraseFlag: '--passphrase-file',
        encryptedIsError: true,
      })
    : undefined;
  const ca = input.ca ? loadCertificates(input.ca, 'the CA bundle the client trusts', ctx) : undefined;
  const out: LocalClient = {
    findings,
    sendable: false,
    certGiven: input.cert !== undefined,
    trust: ca?.certs ?? [],
    ...(input.ca ? { trustFile: input.ca.path } : {}),
  };
  if (!cert) return out;
  const p = presentedChain(
    'client',
    'client',
    input.cert!.path,
    cert.certs,
    input.chain?.path,
    chain?.certs ?? [],
    findings,
  );
  out.presented = p;
  const k = key?.key ?? cert.keys[0];
  if (k) {
    out.key = k;
    const before = findings.length;
    checkKey(p, k, input.key?.path ?? input.cert!.path, findings);
    out.sendable =
      findings.length === before || !findings.slice(before).some((f) => f.code === 'key_mismatch');
  }
  if (!k && !key)
    findings.push({
      code: 'file_format',
      side: 'client',
      severity: 'error',
      message: `No private key for ${subjectString(p.leaf)}: ${input.cert!.path} holds none and --key was not given, so the certificate cannot be sent.`,
      evidence: { ...certEvidence(p.leaf, input.cert!.path) },
      fix: `Give the key written with the certificate: --key ${input.cert!.path.replace(/(\.chain)?\.(pem|crt)$/, '')}.key`,
    });
  lintPresented(p, at, findings);
  // The chain on its own: signatures, CA flags, path lengths and dates up to the last certificate
  // sent (the server's bundle, which holds the root, is not known here: trust is judged later).
  const top = [p.leaf, ...p.extra].find((c) => isSelfSigned(c)) ?? p.extra[p.extra.length - 1];
  if (top && !sameCert(top, p.leaf)) {
    const res = verifyCertificate(p.leaf, {
      trust: [top],
      intermediates: p.extra.filter((c) => !sameCert(c, top)),
      purpose: 'client',
      at,
      strict: false,
    });
    if (!res.ok) {
      const reasons = res.reasons.filter(
        (r) => !['unknown_ca', 'missing_intermediate', 'self_signed'].includes(r.reason),
      );
      findings.push(
        ...verdictFindings(reasons, res.chain, {
          presented: p,
          verifier: 'server',
          trust: [],
          trustFile: '',
          known: [],
        }),
      );
    }
  }
  for (const f of findings) if (f.side !== 'both') f.side = 'client';
  return out;
}

/** PEM for node:tls: the leaf and the rest as presented (reordered when the file was not), and the key. */
export function credentialsPem(local: LocalClient): { cert: string; key: string } | undefined {
  if (!local.sendable || !local.presented || !local.key) return undefined;
  const p = local.presented;
  return {
    cert: [p.leaf, ...p.extra].map((c) => encodePem('CERTIFICATE', c.der)).join(''),
    key: exportPrivateKeyPem(local.key),
  };
}

// ---------------------------------------------------------------- the verdict

export interface DiagnoseInput {
  input: ConnectInput;
  local: LocalClient;
  obs: Observation;
  /** A second, TLS 1.2 handshake made only to read the CA names a TLS 1.3 server accepts. */
  names?: Observation;
  at: Date;
}

const TRUST_REASONS = new Set(['unknown_ca', 'self_signed', 'missing_intermediate']);

const iso = (d: Date): string => d.toISOString().replace('.000Z', 'Z');

function describeCert(c: Certificate): string {
  return `${subjectString(c) || '(empty subject)'} <- ${issuerString(c)} (until ${iso(c.notAfter)})`;
}

function info(code: FindingCode, side: ConnectSide, message: string, evidence: Evidence): ConnectFinding {
  return { code, side, severity: 'info', message, evidence, fix: 'Nothing to fix.' };
}

export function diagnose(d: DiagnoseInput): ConnectReport {
  const { obs, local, input, at } = d;
  const name = input.servername ?? input.host;
  const target = obs.target;
  const live: ConnectFinding[] = [];
  const serverFindings: Finding[] = [];

  const caNames = obs.caNames ?? d.names?.caNames;
  const caNamesDer = obs.caNamesDer ?? d.names?.caNamesDer;
  const certRequested = obs.certRequested ?? d.names?.certRequested;
  const observed: Evidence = {
    target,
    ...(obs.address && obs.address !== input.host ? { address: obs.address } : {}),
    ...(obs.protocol ? { protocol: obs.protocol } : {}),
    ...(obs.alert
      ? {
          alert: `${obs.alert.name}${obs.alert.code !== undefined ? ` (${obs.alert.code})` : ''}, ${obs.alert.when === 'handshake' ? 'during the handshake' : "after the client's Finished"}`,
        }
      : {}),
    ...(obs.http ? { answer: obs.http.statusLine, body: bodyExcerpt(obs.http.body) } : {}),
    ...(obs.serverVerifyError
      ? { answer: `not asked: the server did not verify (${obs.serverVerifyError.code})` }
      : {}),
    ...(caNames ? { acceptableCaNames: caNames.length ? caNames : ['(none sent)'] } : {}),
  };
  const err = (
    code: FindingCode,
    side: ConnectSide,
    message: string,
    fix: string,
    evidence: Evidence = {},
    severity: Severity = 'error',
  ): void => {
    live.push({ code, side, severity, message, evidence: { ...observed, ...evidence }, fix });
  };

  // ---- the network
  const code = obs.error?.code ?? '';
  if (obs.stage === 'dns' && !obs.timedOut && obs.error) {
    err(
      'connect_failed',
      'network',
      `The name ${input.host} does not resolve (${code}).`,
      `Check the name: getent hosts ${input.host} (or use the IP address with --servername ${name}).`,
      { error: obs.error.message },
    );
  } else if (obs.timedOut && (obs.stage === 'dns' || obs.stage === 'tcp')) {
    err(
      'connect_timeout',
      'network',
      `No TCP connection to ${target} within ${input.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS} ms: a firewall drops the packets, or the host is down.`,
      `Check the route and the firewalls: nc -vz ${input.host} ${input.port}`,
    );
  } else if (obs.stage === 'tcp' && obs.error) {
    if (code === 'ECONNREFUSED')
      err(
        'connect_refused',
        'network',
        `Nothing listens at ${target} (connection refused): the server is not running, failed to start, or listens on another port or address.`,
        `Start the server and read why it stopped (nginx -t; journalctl -u nginx), or check the port: ss -ltnp | grep ${input.port}`,
      );
    else
      err(
        'connect_failed',
        'network',
        `${target} cannot be reached: ${obs.error.message}.`,
        `Check the route and the firewalls: nc -vz ${input.host} ${input.port}`,
      );
  } else if (obs.notTls !== undefined) {
    err(
      'not_tls',
      'network',
      `${target} does not speak TLS: it answered the TLS ClientHello with ${JSON.stringify(obs.notTls)}${/^HTTP\//.test(obs.notTls) ? ' (a plain HTTP server)' : ''}.`,
      `Connect to the TLS port of the server, or enable TLS on that listener (nginx: listen ${input.port} ssl; with ssl_certificate and ssl_verify_client on).`,
      { firstLine: obs.notTls },
    );
  } else if (obs.timedOut && obs.stage === 'handshake') {
    err(
      'connect_timeout',
      'network',
      `TCP connected to ${target}, but no TLS handshake within ${input.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS} ms: the port does not speak TLS (it waits for the client to talk first) or the server hangs.`,
      `Check what listens there (ss -ltnp | grep ${input.port}); try openssl s_client -connect ${target}`,
    );
  } else {
    // ---- the TLS handshake completed, or failed with an alert or an error
    const serverCerts = parseChain(obs.serverChain);
    if (serverCerts.length)
      checkServerChain(serverCerts, target, name, local, at, serverFindings, input.ca?.path);
    const sent = local.presented && local.sendable ? [local.presented.leaf, ...local.presented.extra] : [];
    const rejection = (hint: string, evidence: Evidence): void =>
      explainRejection({ hint, sent, local, caNames, caNamesDer, serverCerts, err, evidence, target });

    const alert = obs.alert;
    const proxy = obs.http ? proxyRefusal(obs.http) : undefined;
    const page = obs.http ? nginxPage(obs.http) : undefined;
    if (alert) {
      const a = alert.name;
      if (
        a === 'certificate_required' ||
        (a === 'handshake_failure' && certRequested && !obs.certSent && sent.length === 0)
      ) {
        noClientCert(local, err, `the server sent the TLS alert ${a}`);
      } else if (
        [
          'unknown_ca',
          'bad_certificate',
          'certificate_unknown',
          'unsupported_certificate',
          'certificate_expired',
          'certificate_revoked',
          'access_denied',
          'decrypt_error',
        ].includes(a)
      ) {
        if (sent.length === 0) noClientCert(local, err, `the server sent the TLS alert ${a}`);
        else rejection(a, {});
      } else if (
        [
          'protocol_version',
          'handshake_failure',
          'insufficient_security',
          'no_application_protocol',
          'illegal_parameter',
          'inappropriate_fallback',
        ].includes(a)
      ) {
        err(
          'protocol_mismatch',
          'both',
          `${target} ended the handshake with the alert ${a}: the two sides share no TLS version, cipher suite or parameter.`,
          `Allow TLS 1.2 and 1.3 on the server (nginx: ssl_protocols TLSv1.2 TLSv1.3;) and check its ciphers with: openssl s_client -connect ${target} -tls1_2`,
        );
      } else {
        err(
          'connect_failed',
          'network',
          `${target} ended the connection with the alert ${a}.`,
          `Read the server's log for the connection, and try openssl s_client -connect ${target} -servername ${name}`,
          { error: obs.error?.message ?? '' },
        );
      }
    } else if (obs.stage === 'handshake' && obs.error) {
      if (
        [
          'ERR_SSL_WRONG_VERSION_NUMBER',
          'ERR_SSL_PACKET_LENGTH_TOO_LONG',
          'ERR_SSL_RECORD_LAYER_FAILURE',
        ].includes(code)
      )
        err(
          'not_tls',
          'network',
          `${target} does not answer in TLS (${code}).`,
          `Connect to the TLS port, or enable TLS on that listener (nginx: listen ${input.port} ssl;).`,
        );
      else if (
        [
          'ERR_SSL_UNSUPPORTED_PROTOCOL',
          'ERR_SSL_NO_PROTOCOLS_AVAILABLE',
          'ERR_SSL_NO_SHARED_CIPHER',
        ].includes(code)
      )
        err(
          'protocol_mismatch',
          'both',
          `${target} and this client share no TLS version or cipher suite (${code}).`,
          'Allow TLS 1.2 and 1.3 on the server: ssl_protocols TLSv1.2 TLSv1.3;',
        );
      else if (certRequested && sent.length > 0)
        rejection('closed', { error: `${code} ${obs.error.message}` });
      else
        err(
          'connect_failed',
          'network',
          `The TLS handshake with ${target} failed: ${obs.error.message} (${code}).`,
          `Read the server's log; compare with: openssl s_client -connect ${target} -servername ${name}`,
        );
    } else if (proxy) {
      proxyFinding(proxy, sent, local, err, rejection, obs);
    } else if (page === 'no_client_cert') {
      noClientCert(local, err, 'nginx answered "400 No required SSL certificate was sent"');
    } else if (page === 'cert_error') {
      rejection('nginx', {});
    } else if (page === 'plain_http_to_https') {
      err(
        'http_to_https_port',
        'server',
        `The TLS handshake with ${target} worked, but the answer is nginx's "400 The plain HTTP request was sent to HTTPS port": what terminates TLS here forwards plain HTTP to an nginx port configured with ssl.`,
        'In the proxy in front, forward with TLS (proxy_pass https://BACKEND;) or to the backend’s plain HTTP port.',
      );
    } else if (obs.closedSilently && certRequested && sent.length > 0) {
      rejection('closed', {});
    } else if (obs.serverVerifyError && certRequested && sent.length > 0 && caNames?.length) {
      // Nothing was asked of a server the client cannot verify; what the server would say of the
      // client's certificate is judged from the CA names it accepts, when they settle it.
      rejection('unverified', {});
    } else if (obs.timedOut) {
      err(
        'connect_timeout',
        'network',
        `The TLS handshake with ${target} completed but no answer came within ${input.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS} ms.`,
        `Check that the server answers HTTP on that port (curl -v https://${name}:${input.port}/ …) or raise --timeout.`,
      );
    }

    // ---- does the server ask for a client certificate at all?
    if (obs.stage === 'answer' && !live.some((f) => f.severity === 'error')) {
      if (certRequested === false)
        err(
          'not_mtls',
          'server',
          `${target} never asked for a client certificate: it is not doing mTLS (or an L7 proxy in front terminates TLS without it).`,
          'Require client certificates: ssl_verify_client on; with ssl_client_certificate CLIENT-CA.pem; (HAProxy: verify required ca-file CLIENT-CA.pem)',
        );
      else if (certRequested && sent.length === 0 && obs.http && obs.http.status < 400)
        err(
          'not_mtls',
          'server',
          `${target} asks for a client certificate but answered ${obs.http.statusLine} without one: client certificates are optional there.`,
          'Require them: ssl_verify_client on; (not optional)',
          {},
          'warning',
        );
    }
    if (obs.stage === 'answer' || serverCerts.length) {
      live.push(
        info('connected', 'client', `What ${target} showed.`, {
          ...observed,
          ...(obs.cipher ? { cipher: obs.cipher } : {}),
          serverChain: serverCerts.map(describeCert),
          clientCertRequested: certRequested === undefined ? 'unknown' : certRequested ? 'yes' : 'no',
          clientCertSent: (obs.certSent ?? sent.length > 0) ? 'yes' : 'no',
          ms: obs.ms,
        }),
      );
    }
  }

  // ---- merge: a live finding with the code of a local one adds its evidence to it
  const localFindings: ConnectFinding[] = dedupeFindings(
    [...local.findings, ...serverFindings],
    undefined,
    name,
  );
  const merged: ConnectFinding[] = [...localFindings];
  for (const f of live) {
    const same = merged.find((m) => m.code === f.code && m.side === f.side && m.severity === 'error');
    if (same && f.severity === 'error') same.evidence = { ...same.evidence, ...f.evidence, ...same.evidence };
    else merged.push(f);
  }
  // The client's and the server's swapped bundles are one finding on both sides.
  const swaps = merged.filter((f) => f.code === 'swapped_ca_files' && f.severity === 'error');
  if (swaps.some((f) => f.side === 'client') && swaps.some((f) => f.side === 'server')) {
    const [a, b] = [swaps.find((f) => f.side === 'client')!, swaps.find((f) => f.side === 'server')!];
    merged.splice(merged.indexOf(b), 1);
    a.side = 'both';
    // Two different CAs, each side trusting the wrong one: the one-CA alternative of the server-side
    // finding does not apply, and one short sentence says the whole story.
    const clientTrusts = (a.evidence.clientTrusts as string[] | undefined)?.join('; ') ?? 'its own CA';
    const serverAccepts = b.evidence.acceptableCaNames ?? b.message.match(/accepts only ([^)]*)\)/)?.[1];
    a.message = `The CA files are swapped: the client verifies the server with its own CA (${clientTrusts}) and the server verifies clients with its own CA (${Array.isArray(serverAccepts) ? serverAccepts.join('; ') : String(serverAccepts ?? 'its own CA')}).`;
    a.fix = `${a.fix}; and on the server: ${b.fix.replace(/ With one CA for both sides, instead: .*$/, '')}`;
    const { file: _sentBy, sans: _sans, ...kept } = a.evidence;
    a.evidence = kept;
  }
  return connectReport(merged);
}

const ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Errors first; failingSide from the errors' sides, `network` when nothing else fails. */
export function connectReport(findings: readonly ConnectFinding[]): ConnectReport {
  const sorted = findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => ORDER[a.f.severity] - ORDER[b.f.severity] || a.i - b.i)
    .map((x) => x.f);
  const sides = new Set(sorted.filter((f) => f.severity === 'error').map((f) => f.side));
  let failingSide: ConnectSide | null = null;
  const files = [...sides].filter((s) => s !== 'network');
  if (files.length === 1) failingSide = files[0]!;
  else if (files.length > 1) failingSide = 'both';
  else if (sides.has('network')) failingSide = 'network';
  return { ok: failingSide === null, failingSide, findings: sorted };
}

function parseChain(ders: readonly Buffer[]): Certificate[] {
  const out: Certificate[] = [];
  for (const d of ders) {
    try {
      out.push(parseCertificate(d));
    } catch {
      // an unparsable certificate from the server: the rest is still judged
    }
  }
  return out;
}

/** The client verifies what the server sent against --ca for the name; lint of the server chain. */
function checkServerChain(
  certs: Certificate[],
  target: string,
  name: string,
  local: LocalClient,
  at: Date,
  findings: Finding[],
  caFile: string | undefined,
): void {
  const file = `(sent by ${target})`;
  const p = presentedChain('server', 'server', file, certs, undefined, [], findings);
  lintPresented(p, at, findings);
  if (!caFile || local.trust.length === 0) return;
  const res = verifyCertificate(p.leaf, {
    trust: local.trust,
    intermediates: p.extra,
    purpose: 'server',
    name,
    at,
    strict: false,
  });
  if (res.ok) return;
  let reasons = res.reasons;
  const trustFailed = reasons.some((r) => TRUST_REASONS.has(r.reason));
  // The client's bundle is its own CA: it verifies the server with the client CA.
  const cp = local.presented;
  const own =
    trustFailed && cp !== undefined
      ? verifyCertificate(cp.leaf, {
          trust: local.trust,
          intermediates: cp.extra,
          purpose: 'any',
          at,
          strict: false,
        })
      : undefined;
  const ownCa = own !== undefined && (own.ok || own.reasons.every((r) => !TRUST_REASONS.has(r.reason)));
  if (ownCa) {
    reasons = reasons.filter((r) => !TRUST_REASONS.has(r.reason));
    findings.push({
      code: 'swapped_ca_files',
      side: 'client',
      severity: 'error',
      message: `The client verifies the server with ${caFile}, which holds the client's own CA (${local.trust.map((c) => subjectString(c)).join('; ')}), not the CA that issued the server certificate (${issuerString(p.leaf)}).`,
      evidence: { ...certEvidence(p.leaf, file), clientTrusts: local.trust.map((c) => subjectString(c)) },
      fix: `Give the client the server's CA (the root above ${issuerString(p.extra[p.extra.length - 1] ?? p.leaf)}): curl --cacert SERVER-CA.pem, mtls doctor connect … --ca SERVER-CA.pem`,
    });
  }
  const verdicts = verdictFindings(reasons, res.chain, {
    presented: p,
    verifier: 'client',
    trust: local.trust,
    trustFile: caFile,
    known: local.trust.map((cert) => ({ cert, file: caFile })),
    name,
  });
  for (const f of verdicts) {
    if (f.code === 'missing_intermediate')
      f.fix = `The server must send its chain: cat server.crt intermediate.crt > server.chain.pem and "ssl_certificate server.chain.pem;" (it sent only ${subjectString(p.leaf)}).`;
    if (f.code === 'unknown_ca')
      f.fix = `Give the client the root of ${issuerString(p.extra[p.extra.length - 1] ?? p.leaf)} (--cacert / --ca), or serve a certificate from a CA the client trusts (${local.trust.map((c) => subjectString(c)).join('; ')}).`;
  }
  findings.push(...verdicts);
}

type Err = (
  code: FindingCode,
  side: ConnectSide,
  message: string,
  fix: string,
  evidence?: Evidence,
  severity?: Severity,
) => void;

function noClientCert(local: LocalClient, err: Err, what: string): void {
  if (local.certGiven) {
    // The files could not be sent: the local findings say why; this only records what the server did.
    err(
      'no_client_cert',
      'client',
      `The server requires a client certificate and got none (${what}): the certificate given could not be used (see the other findings).`,
      'Fix the client files as the other findings say; the server then receives the certificate.',
    );
    return;
  }
  err(
    'no_client_cert',
    'client',
    `The server requires a client certificate and the client sent none (${what}).`,
    'Give the client its certificate and key: mtls doctor connect … --cert NAME.chain.pem --key NAME.key (curl --cert … --key …); none yet: mtls issue client NAME --dir CA-DIR',
  );
}

interface RejectionInput {
  /** What said no: nginx (its 400 page), an alert name, a proxy reason, or closed. */
  hint: string;
  sent: Certificate[];
  local: LocalClient;
  caNames: string[] | undefined;
  caNamesDer: Buffer[] | undefined;
  serverCerts: Certificate[];
  err: Err;
  evidence: Evidence;
  target: string;
}

function said(hint: string): string {
  if (hint === 'nginx') return 'nginx answered "400 The SSL certificate error"';
  if (hint === 'closed') return 'the server closed the connection after the handshake without an answer';
  if (hint === 'unverified')
    return 'judged from the CA names the server accepts (the doctor sends no request to a server it cannot verify)';
  if (hint.startsWith('proxy:')) return `mtls proxy answered with the reason ${hint.slice(6)}`;
  return `the server sent the TLS alert ${hint}`;
}

/**
 * The server refused the client's certificate: name the cause from the client's files, the CA names
 * the server accepts, and the server's own chain.
 */
function explainRejection(r: RejectionInput): void {
  const { sent, local, err } = r;
  const why = said(r.hint);
  const p = local.presented!;
  const localErrors = local.findings.filter((f) => f.severity === 'error');
  if (r.hint === 'certificate_revoked' && !localErrors.some((f) => f.code === 'revoked')) {
    err(
      'revoked',
      'client',
      `The server refuses ${subjectString(p.leaf)}: ${why} (its CRL or OCSP lists the certificate).`,
      `Issue a new certificate: ${reissueCommand('client', p.leaf)} (a revoked certificate never works again).`,
      { ...certEvidence(p.leaf, p.certFile), ...r.evidence },
    );
    return;
  }
  if (localErrors.length > 0) {
    // The client's own files explain it; the server's answer is evidence for them.
    for (const f of localErrors) f.evidence = { ...f.evidence, server: why };
    return;
  }
  const names = r.caNamesDer?.map((d) => {
    try {
      return nameKey(decodeName(read(d)));
    } catch {
      return d.toString('hex');
    }
  });
  const ev: Evidence = {
    ...certEvidence(p.leaf, p.certFile),
    sent: sent.map((c) => subjectString(c)),
    ...r.evidence,
  };
  const inNames = (k: string): boolean => names?.includes(k) ?? false;
  if (names && names.length > 0) {
    // The first certificate of the chain sent whose issuer the server names.
    const k = sent.findIndex((c) => inNames(nameKey(c.issuer)) || inNames(nameKey(c.subject)));
    if (k < 0) {
      const own = new Set(r.serverCerts.flatMap((c) => [nameKey(c.subject), nameKey(c.issuer)]));
      if (names.every((n) => own.has(n))) {
        err(
          'swapped_ca_files',
          'server',
          `The server verifies client certificates with the CA that issued its own certificate (it accepts only ${r.caNames!.join('; ')}), not the CA of the client (${issuerString(sent[sent.length - 1]!)}): ${why}. If one CA is meant to issue both sides (mtlskit's default), the client's certificate is the one from the wrong CA.`,
          `Point the server at the client CA: ssl_client_certificate CLIENT-CA.pem; (the root above ${issuerString(sent[sent.length - 1]!)}; HAProxy: ca-file CLIENT-CA.pem). With one CA for both sides, instead: mtls issue client ${subjectString(p.leaf).replace(/^CN=/, '')} --dir CA-DIR (the CA of ${r.caNames!.join('; ')})`,
          ev,
        );
      } else if (sent.length === 1 && isSelfSigned(p.leaf)) {
        err(
          'self_signed',
          'client',
          `${subjectString(p.leaf)} is self-signed and the server accepts only certificates from ${r.caNames!.join('; ')}: ${why}.`,
          `Issue the client certificate from the CA the server trusts: mtls issue client ${subjectString(p.leaf).replace(/^CN=/, '')} --dir CA-DIR`,
          ev,
        );
      } else if (sent.length === 1) {
        err(
          'missing_intermediate',
          'client',
          `The client sends ${subjectString(p.leaf)} alone; its issuer ${issuerString(p.leaf)} is not among the CAs the server names (${r.caNames!.join('; ')}), so the server needs the intermediate to reach its root (or the certificate is from a CA it does not trust): ${why}.`,
          `Send the chain: cat ${p.certFile} intermediate.crt > client.chain.pem, then --cert client.chain.pem (mtls issue writes NAME.chain.pem).`,
          ev,
        );
      } else {
        err(
          'unknown_ca',
          'client',
          `The client certificate ${subjectString(p.leaf)} chains to ${issuerString(sent[sent.length - 1]!)}, which is not among the CAs the server accepts (${r.caNames!.join('; ')}): ${why}.`,
          `Use a client certificate issued by a CA the server trusts (${r.caNames!.join('; ')}): mtls issue client ${subjectString(p.leaf).replace(/^CN=/, '')} --dir CA-DIR; or, if ${issuerString(sent[sent.length - 1]!)} should be trusted, add its root to ssl_client_certificate.`,
          ev,
        );
      }
      return;
    }
    // The chain reaches a name the server accepts: without the server's answer nothing is known.
    if (r.hint === 'unverified') return;
    // The chain reaches a name the server accepts. Does it end at a self-signed root there?
    const named = sent[k]!;
    const anchor = inNames(nameKey(named.issuer))
      ? sent.find((c) => !sameCert(c, named) && nameKey(c.subject) === nameKey(named.issuer))
      : named;
    if (anchor && !isSelfSigned(anchor) && !inNames(nameKey(anchor.issuer))) {
      err(
        'partial_chain',
        'server',
        `The server's client CA bundle holds ${subjectString(anchor)} but not the root above it (${issuerString(anchor)}): nginx and HAProxy only accept a chain that ends at a self-signed root in ssl_client_certificate / ca-file, so the client is refused (${why}).`,
        `Add the root to the server's bundle: cat intermediate.crt root.crt > client-ca.pem and "ssl_client_certificate client-ca.pem;"`,
        { ...ev, serverAccepts: r.caNames! },
      );
      return;
    }
    const intermediates = sent.slice(1).filter((c) => !isSelfSigned(c)).length;
    if (intermediates > 1) {
      err(
        'verify_depth_exceeded',
        'server',
        `The client chain of ${subjectString(p.leaf)} has ${intermediates} intermediates and reaches ${issuerString(sent[sent.length - 1]!)}, a CA the server names; a server with nginx's default ssl_verify_depth 1 refuses it (${why}).`,
        `ssl_verify_depth ${intermediates};`,
        { ...ev, intermediates },
      );
      return;
    }
    err(
      r.hint === 'unknown_ca' ? 'unknown_ca' : 'client_cert_rejected',
      'server',
      `The server refuses ${subjectString(p.leaf)} (${why}) although its chain is sound and reaches ${issuerString(named)}, a CA the server names (${r.caNames!.join('; ')}). The cause is on the server: its ssl_client_certificate holds a root of that name with another key (a re-created CA), or its ssl_crl is past nextUpdate or lacks a CA's CRL${r.hint === 'unknown_ca' ? '' : ', or the certificate is revoked'}.`,
      `On the server, run: openssl verify -crl_check_all -CRLfile SSL_CRL -CAfile SSL_CLIENT_CERTIFICATE -untrusted client.chain.pem client.crt (or mtls doctor config nginx.conf --client-cert client.chain.pem), and replace the file it names.`,
      { ...ev, serverAccepts: r.caNames! },
    );
    return;
  }
  // No CA names to compare with (a TLS 1.3-only server, or one that sends none).
  if (sent.length === 1 && isSelfSigned(p.leaf)) {
    err(
      'self_signed',
      'client',
      `${subjectString(p.leaf)} is self-signed: ${why}.`,
      `Issue the client certificate from the CA the server trusts: mtls issue client NAME --dir CA-DIR`,
      ev,
    );
  } else if (sent.length === 1) {
    err(
      'missing_intermediate',
      'client',
      `The client sends ${subjectString(p.leaf)} without the intermediate that issued it (${issuerString(p.leaf)}): ${why}.`,
      `Send the chain: cat ${p.certFile} intermediate.crt > client.chain.pem, then --cert client.chain.pem`,
      ev,
    );
  } else {
    err(
      r.hint === 'unknown_ca' ? 'unknown_ca' : 'client_cert_rejected',
      'client',
      `The server refuses ${subjectString(p.leaf)} (${why}), and it named no CA to compare with: it does not trust ${issuerString(sent[sent.length - 1]!)}, or its own CA bundle or CRL is wrong.`,
      `Ask for the server's client CA (ssl_client_certificate / ca-file) and check: openssl verify -CAfile SERVER-CLIENT-CA.pem -untrusted ${p.certFile} ${p.certFile}`,
      ev,
    );
  }
}

function proxyFinding(
  proxy: NonNullable<ReturnType<typeof proxyRefusal>>,
  sent: Certificate[],
  local: LocalClient,
  err: Err,
  rejection: (hint: string, evidence: Evidence) => void,
  obs: Observation,
): void {
  const ev: Evidence = {
    proxyCode: proxy.code,
    reason: proxy.reason,
    ...(proxy.requestId ? { requestId: proxy.requestId } : {}),
    ...(proxy.detail ? { detail: proxy.detail } : {}),
  };
  const r = proxy.reason;
  const status = obs.http?.statusLine ?? '';
  if (r === 'no_client_cert') {
    noClientCert(local, err, `mtls proxy answered ${status} with the reason no_client_cert`);
    return;
  }
  if (r === 'identity_not_allowed') {
    const p = local.presented;
    err(
      'identity_not_allowed',
      'server',
      `mtls proxy authenticated ${p ? subjectString(p.leaf) : 'the client'} but no allow rule admits its identity (${status}).`,
      `Add an allow rule for the identity to the listener's allow list (e.g. "- { identity: ${p ? identityOf(p.leaf) : 'IDENTITY'}, paths: ['/*'] }"), or use a certificate whose identity is allowed.`,
      ev,
    );
    return;
  }
  if (r === 'revocation_unavailable' || r === 'crl_expired' || r === 'crl_missing' || r === 'crl_invalid') {
    err(
      r,
      'server',
      `mtls proxy cannot establish the revocation status of the client certificate (${status}, reason ${r}).`,
      r === 'revocation_unavailable'
        ? "Bring the CA's revocation feed back (mtls ca serve) or check the listener's revocation settings (feed, staleAfter, failMode)."
        : "Replace the listener's revocation.crl file with a current CRL from the CA (its /v1/crl/chain).",
      ev,
    );
    return;
  }
  if (sent.length === 0) {
    noClientCert(local, err, `mtls proxy answered ${status} with the reason ${r}`);
    return;
  }
  if (r === 'unknown_ca' || r === 'missing_intermediate' || r === 'self_signed') {
    rejection(r === 'unknown_ca' ? 'unknown_ca' : `proxy:${r}`, ev);
    return;
  }
  const code: FindingCode =
    r === 'path_too_long' ? 'path_len_exceeded' : isDoctorCode(r) ? r : 'client_cert_rejected';
  const p = local.presented!;
  const errors = local.findings.filter((f) => f.severity === 'error' && f.code === code);
  if (errors.length) {
    for (const f of errors) f.evidence = { ...f.evidence, ...ev };
    return;
  }
  err(
    code,
    'client',
    `mtls proxy refuses ${subjectString(p.leaf)} with the reason ${r} (${status}): ${isReason(r) ? reasonText(r) : ''}`,
    code === 'revoked'
      ? `Issue a new certificate: ${reissueCommand('client', p.leaf)} (a revoked certificate never works again).`
      : code === 'client_cert_rejected'
        ? DOCTOR_CODES.client_cert_rejected.fix
        : `${DOCTOR_CODES[code as DoctorCode]?.fix ?? ''} (${reissueCommand('client', p.leaf)})`,
    { ...certEvidence(p.leaf, p.certFile), ...ev },
  );
}

function isDoctorCode(s: string): s is DoctorCode {
  return Object.hasOwn(DOCTOR_CODES, s);
}

function reasonText(r: string): string {
  return isDoctorCode(r) ? DOCTOR_CODES[r].meaning : '';
}

function identityOf(c: Certificate): string {
  const uri = c.subjectAltNames.find((n) => n.type === 'uri');
  if (uri) return uri.value;
  const dns = c.subjectAltNames.find((n) => n.type === 'dns');
  if (dns) return `dns:${dns.value}`;
  return `cn:${subjectString(c).replace(/^CN=/, '')}`;
}

// ---------------------------------------------------------------- the mode

/** Runs the probe(s) and the diagnosis. */
export async function checkConnect(input: ConnectInput): Promise<ConnectReport> {
  const at = input.at ?? new Date();
  const local = checkLocalClient(input, at);
  let creds = credentialsPem(local);
  if (creds) {
    try {
      createSecureContext(creds);
    } catch (e) {
      // The client's TLS library (OpenSSL, as in curl and nginx) will not even load it.
      const err = e as NodeJS.ErrnoException;
      const p = local.presented!;
      const code: FindingCode =
        err.code === 'ERR_SSL_CA_MD_TOO_WEAK'
          ? 'weak_signature'
          : err.code === 'ERR_SSL_EE_KEY_TOO_SMALL' || err.code === 'ERR_SSL_CA_KEY_TOO_SMALL'
            ? 'weak_key'
            : err.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH'
              ? 'key_mismatch'
              : 'file_format';
      local.findings.push({
        code,
        side: 'client',
        severity: 'error',
        message: `OpenSSL refuses to load ${subjectString(p.leaf)} as the client certificate (${err.message.trim()}), so it was not sent.`,
        evidence: { ...certEvidence(p.leaf, p.certFile), openssl: err.code ?? err.message },
        fix: `New key and certificate from a CA that signs with SHA-256: ${reissueCommand('client', p.leaf)} --key-type p256`,
      });
      local.sendable = false;
      creds = undefined;
    }
  }
  const timeoutMs = input.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const base = {
    host: input.host,
    port: input.port,
    ...(input.servername ? { servername: input.servername } : {}),
    timeoutMs,
  };
  // The server is verified against the client's bundle by node:tls itself (as curl would); when
  // it does not verify, the probe sends nothing and the chain read from the handshake is judged here.
  const trust = local.trust.map((c) => encodePem('CERTIFICATE', c.der)).join('');
  const base2 = { ...base, ...(trust ? { ca: trust } : {}) };
  const obs = await probe({ ...base2, http: true, ...(creds ?? {}) });
  let names: Observation | undefined;
  // TLS 1.3 encrypts the CertificateRequest: when the server refused the client, a second
  // handshake limited to TLS 1.2 (no certificate, no request) reads the CA names it accepts.
  const refused =
    obs.serverVerifyError !== undefined ||
    obs.alert !== undefined ||
    obs.closedSilently === true ||
    (obs.http !== undefined && (nginxPage(obs.http) !== undefined || proxyRefusal(obs.http) !== undefined));
  if (obs.protocol === 'TLSv1.3' && obs.caNames === undefined && refused) {
    names = await probe({ ...base2, http: false, maxVersion: 'TLSv1.2' });
    if (names.protocol !== 'TLSv1.2') names = undefined;
  }
  return diagnose({ input, local, obs, ...(names ? { names } : {}), at });
}
