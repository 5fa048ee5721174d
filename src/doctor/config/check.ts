// `config` mode: the files a config names, checked as the server (or client) that reads the config
// would use them, the config's own mTLS mistakes with the file and line as evidence, and, given the
// client's files, the pair simulated with the config's settings (verify depth, CRL, client CA).
import { MtlsError } from '../../errors/index.js';
import {
  formatName,
  isSelfSigned,
  readObjects,
  subjectString,
  verifyCertificate,
  type Certificate,
  type Crl,
} from '../../pki/index.js';
import { certEvidence } from '../checks.js';
import { checkFiles } from '../files.js';
import { makeReport, type DoctorReport, type Evidence, type Finding, type Side } from '../findings.js';
import { loadCertificates, loadCrls, type InputFile, type LoadContext } from '../load.js';
import { dedupeFindings } from '../merge.js';
import { checkPair } from '../pair.js';
import type {
  ConfigFileRef,
  ConfigFormat,
  ConfigLocation,
  ConfigSource,
  ParsedConfig,
  TlsEndpoint,
} from './types.js';

export interface ConfigClientInput {
  /** Absent: the client has no certificate. */
  cert?: InputFile;
  key?: InputFile;
  chain?: InputFile;
  /** What the client trusts to verify the server (curl --cacert). */
  ca: InputFile;
}

export interface ConfigCheckInput {
  parsed: ParsedConfig;
  source: ConfigSource;
  /** Given: the pair is simulated between this client and the listener it reaches for `name`. */
  client?: ConfigClientInput;
  /** The host name the client connects to (required with `client`). */
  name?: string;
  /** Opens encrypted keys (the config's own password file is tried first for the server key). */
  passphrase?: string;
  at?: Date;
}

/** How each server writes the settings the fixes name. */
interface Dialect {
  server: string;
  clientCa(file: string): string;
  verifyOn: string;
  depth(n: number): string | undefined;
  crl(file: string): string;
  cert(file: string): string;
  defaultDepth: number;
  /** OpenSSL-based servers refuse a chain that does not end at a self-signed root; Go accepts it. */
  partialChainIsError: boolean;
}

const DIALECTS: Record<ConfigFormat, Dialect> = {
  nginx: {
    server: 'nginx',
    clientCa: (f) => `ssl_client_certificate ${f};`,
    verifyOn: 'ssl_verify_client on;',
    depth: (n) => `ssl_verify_depth ${n};`,
    crl: (f) => `ssl_crl ${f};`,
    cert: (f) => `ssl_certificate ${f};`,
    defaultDepth: 1,
    partialChainIsError: true,
  },
  haproxy: {
    server: 'HAProxy',
    clientCa: (f) => `ca-file ${f} (on the bind line)`,
    verifyOn: 'verify required (on the bind line, with ca-file)',
    depth: () => undefined,
    crl: (f) => `crl-file ${f} (on the bind line)`,
    cert: (f) => `crt ${f} (chain and key in one PEM)`,
    defaultDepth: 100,
    partialChainIsError: true,
  },
  envoy: {
    server: 'Envoy',
    clientCa: (f) => `validation_context: { trusted_ca: { filename: ${f} } }`,
    verifyOn: 'require_client_certificate: true (in the DownstreamTlsContext, with a validation_context)',
    depth: (n) => `max_verify_depth: ${n} (in the validation_context)`,
    crl: (f) => `crl: { filename: ${f} } (in the validation_context)`,
    cert: (f) => `certificate_chain: { filename: ${f} }`,
    defaultDepth: 100,
    partialChainIsError: true,
  },
  otel: {
    server: 'the Collector',
    clientCa: (f) => `client_ca_file: ${f}`,
    verifyOn: 'client_ca_file: CLIENT-CA.pem (the Collector then requires client certificates)',
    depth: () => undefined,
    crl: (f) => `(the Collector reads no CRL; drop ${f})`,
    cert: (f) => `cert_file: ${f}`,
    defaultDepth: 100,
    partialChainIsError: false,
  },
};

const where = (l: ConfigLocation): string => `${l.file}:${l.line}`;
const cfgEvidence = (l: ConfigLocation): Evidence => ({ config: where(l), directive: l.text });

/** True when `name` matches a server_name-style pattern (exact, *.suffix, .suffix, prefix.*). */
function nameMatches(pattern: string, name: string): boolean {
  const p = pattern.toLowerCase();
  const n = name.toLowerCase();
  if (p === n) return true;
  if (p.startsWith('*.')) return n.endsWith(p.slice(1));
  if (p.startsWith('.')) return n === p.slice(1) || n.endsWith(p);
  if (p.endsWith('.*')) return n.startsWith(p.slice(0, -1));
  return false;
}

/** A plain host name among the endpoint's names (for --name when it is not given). */
export function suggestName(parsed: ParsedConfig): string | undefined {
  for (const ep of parsed.endpoints)
    if (ep.role === 'server')
      for (const n of ep.names) if (/^[\w.-]+$/.test(n) && n !== '_' && !n.startsWith('~')) return n;
  return undefined;
}

/** The listener a client reaches for `name`: the server whose names match, else the first (nginx's default). */
export function targetListener(parsed: ParsedConfig, name: string | undefined): TlsEndpoint | undefined {
  const servers = parsed.endpoints.filter((e) => e.role === 'server' && e.tls);
  if (name) {
    const hit = servers.find((s) => s.names.some((p) => nameMatches(p, name)));
    if (hit) return hit;
  }
  return servers[0];
}

export function checkConfig(input: ConfigCheckInput): DoctorReport {
  const at = input.at ?? new Date();
  const { parsed } = input;
  const all: Finding[] = [];
  if (parsed.endpoints.length === 0) {
    all.push({
      code: 'not_mtls',
      side: 'server',
      severity: 'error',
      message: `${parsed.file} (read as ${parsed.format}) declares no TLS listener or TLS client: nothing there does mTLS.`,
      evidence: { config: parsed.file, format: parsed.format },
      fix: NO_TLS_FIX[parsed.format],
    });
    return makeReport(all);
  }
  const target = input.client ? targetListener(parsed, input.name) : undefined;
  if (input.client && !target)
    all.push({
      code: 'not_mtls',
      side: 'server',
      severity: 'error',
      message: `${parsed.file} has no TLS listener, so there is nothing the client could do mTLS with.`,
      evidence: { config: parsed.file, format: parsed.format },
      fix: NO_TLS_FIX[parsed.format],
    });
  for (const ep of parsed.endpoints) all.push(...checkEndpoint(ep, ep === target, input, at));
  return makeReport(dedupeFindings(all));
}

const NO_TLS_FIX: Record<ConfigFormat, string> = {
  nginx:
    'In the server block: listen 443 ssl; ssl_certificate server.chain.pem; ssl_certificate_key server.key; ssl_client_certificate client-ca.pem; ssl_verify_client on;',
  haproxy: 'bind :443 ssl crt /etc/haproxy/server.pem ca-file /etc/haproxy/client-ca.pem verify required',
  envoy:
    'Add a transport_socket with a DownstreamTlsContext (common_tls_context.tls_certificates, validation_context.trusted_ca, require_client_certificate: true).',
  otel: 'Under receivers.otlp.protocols.grpc: tls: { cert_file: server.chain.pem, key_file: server.key, client_ca_file: client-ca.pem }',
};

function checkEndpoint(ep: TlsEndpoint, isTarget: boolean, input: ConfigCheckInput, at: Date): Finding[] {
  const side: Side = ep.role;
  const d = DIALECTS[ep.format];
  const out: Finding[] = [];
  const cfg: Finding[] = [];
  const mtlsIntended = input.client !== undefined || ep.ca.length > 0 || ep.verify.at !== undefined;

  const load = (r: ConfigFileRef | undefined, what: string): InputFile | undefined => {
    if (!r) return undefined;
    if (r.inline) return { path: r.path, data: r.inline };
    const data = input.source.read(r.path);
    if (data) return { path: r.path, data };
    const haproxyKey = ep.format === 'haproxy' && what === 'private key' && r.path.endsWith('.key');
    cfg.push({
      code: 'config_file_missing',
      side,
      severity: 'error',
      message: haproxyKey
        ? `${r.path.slice(0, -4)} (crt at ${where(r.at)}) holds no private key, and ${r.path} does not exist: HAProxy refuses to start.`
        : `${r.path} (the ${what} named at ${where(r.at)}) does not exist or cannot be read: ${ep.role === 'server' ? `${d.server} refuses to start` : 'the connection cannot be made'}.`,
      evidence: { file: r.path, ...cfgEvidence(r.at) },
      fix: haproxyKey
        ? `Append the key to the crt file (cat server.chain.pem server.key > ${r.path.slice(0, -4)}) or write it to ${r.path}.`
        : `Write the ${what} to ${r.path}, or fix the path at ${where(r.at)} ("${r.at.text}"); relative paths start from the config's directory.`,
    });
    return undefined;
  };

  for (const u of ep.unresolved)
    cfg.push({
      code: 'config_file_missing',
      side,
      severity: 'info',
      message: `${where(u)} names a file through a variable or secret service the doctor cannot resolve; it was not checked.`,
      evidence: cfgEvidence(u),
      fix: `Rerun with a copy of the config where "${u.text}" names the file itself, or check that file with mtls doctor files.`,
    });

  // ---- the config's own mTLS settings
  if (ep.role === 'server') {
    if (!ep.tls) {
      cfg.push({
        code: 'not_mtls',
        side,
        severity: 'error',
        message: `${ep.label} has no tls section: it accepts plaintext, so there is no TLS and no client certificate at all.`,
        evidence: cfgEvidence(ep.at),
        fix: `Add under ${ep.label.split(' (')[0]}: tls: { cert_file: server.chain.pem, key_file: server.key, client_ca_file: client-ca.pem }`,
      });
      return cfg;
    }
    if (ep.verify.mode !== 'required') {
      const optional = ep.verify.mode === 'optional';
      const line = ep.verify.at ?? ep.at;
      const fix =
        ep.format === 'otel' && ep.misplacedCa
          ? `At ${where(ep.misplacedCa.at)}: rename ca_file to client_ca_file ("client_ca_file: ${ep.misplacedCa.written}"): for a receiver, ca_file does not verify clients.`
          : ep.verify.at && ep.format === 'haproxy'
            ? `At ${where(line)}: on the bind line, replace "verify ${ep.verify.mode}" with "verify required"${ep.ca.length ? '' : ' and add "ca-file client-ca.pem"'}.`
            : ep.verify.at && ep.format === 'envoy'
              ? `At ${where(line)}: replace "${line.text}" with "require_client_certificate: true"${ep.ca.length ? '' : ` and add "${d.clientCa('client-ca.pem')}"`}.`
              : ep.verify.at
                ? `At ${where(line)}: replace "${line.text}" with "${d.verifyOn}"${ep.ca.length ? '' : ` and add "${d.clientCa('client-ca.pem')}"`}.`
                : `Add "${d.verifyOn}"${ep.ca.length ? '' : ` and "${d.clientCa('client-ca.pem')}"`} to ${ep.label} (${where(ep.at)}).`;
      cfg.push({
        code: 'not_mtls',
        side,
        severity: mtlsIntended ? 'error' : 'warning',
        message: optional
          ? `${ep.label} asks for a client certificate but does not require one (${ep.verify.at?.text ?? 'no require_client_certificate'}): a client without a certificate gets in${ep.format === 'nginx' ? ' unless the application checks $ssl_client_verify' : ''}.`
          : ep.format === 'otel' && ep.misplacedCa
            ? `${ep.label} has ca_file but no client_ca_file: the Collector neither asks for nor verifies client certificates.`
            : `${ep.label} does not ask for client certificates${ep.verify.at ? ` (${ep.verify.at.text})` : ''}: this is TLS, not mTLS.`,
        evidence: { ...cfgEvidence(line), verify: ep.verify.mode },
        fix,
      });
    } else if (ep.ca.length === 0) {
      cfg.push({
        code: 'config_file_missing',
        side,
        severity: 'error',
        message: `${ep.label} requires client certificates but names no CA bundle to verify them with: ${ep.format === 'envoy' ? 'Envoy can verify no client certificate' : `${d.server} refuses to start`}.`,
        evidence: cfgEvidence(ep.verify.at ?? ep.at),
        fix: `Add "${d.clientCa('client-ca.pem')}" with the root of the CA that issues the client certificates.`,
      });
    }
    if (!ep.cert)
      cfg.push({
        code: 'config_file_missing',
        side,
        severity: 'error',
        message: `${ep.label} names no server certificate: the TLS handshake cannot complete.`,
        evidence: cfgEvidence(ep.at),
        fix: `Add "${d.cert('server.chain.pem')}" (leaf first, then the intermediates).`,
      });
  } else {
    if (ep.plaintext && (ep.cert || ep.ca.length))
      cfg.push({
        code: 'tls_disabled',
        side,
        severity: 'error',
        message: `${ep.label} has TLS turned off (${ep.plaintext.text}) although it names certificate files: it sends plaintext and never presents its certificate.`,
        evidence: cfgEvidence(ep.plaintext),
        fix: `At ${where(ep.plaintext)}: remove "${ep.plaintext.text}" (or set insecure: false) and use an https:// endpoint.`,
      });
    if (ep.skipVerify)
      cfg.push({
        code: 'server_not_verified',
        side,
        severity: 'warning',
        message: `${ep.label} does not verify the server's certificate (${ep.skipVerify.text}): anyone on the path can impersonate the server and receive the data.`,
        evidence: cfgEvidence(ep.skipVerify),
        fix:
          ep.format === 'otel'
            ? `At ${where(ep.skipVerify)}: remove "insecure_skip_verify: true" and set "ca_file: server-ca.pem" (the root of the server's CA).`
            : ep.format === 'haproxy'
              ? `At ${where(ep.skipVerify)}: replace "verify none" with "verify required ca-file server-ca.pem".`
              : ep.format === 'nginx'
                ? `${ep.skipVerify.text.includes('_verify') ? `At ${where(ep.skipVerify)} replace "${ep.skipVerify.text}" with` : `Next to ${where(ep.skipVerify)} add`} "${upstreamPrefix(ep)}verify on; ${upstreamPrefix(ep)}trusted_certificate server-ca.pem;${ep.names.length ? '' : ` ${upstreamPrefix(ep)}name HOST;`}"`
                : `Add validation_context: { trusted_ca: { filename: server-ca.pem } } to the UpstreamTlsContext at ${where(ep.skipVerify)}.`,
      });
    if (
      ep.verify.mode === 'required' &&
      ep.ca.length === 0 &&
      (ep.format === 'nginx' || ep.format === 'haproxy')
    )
      cfg.push({
        code: 'config_file_missing',
        side,
        severity: 'error',
        message: `${ep.label} verifies the server but names no CA bundle to verify it with: ${DIALECTS[ep.format].server} refuses to start.`,
        evidence: cfgEvidence(ep.verify.at ?? ep.at),
        fix:
          ep.format === 'nginx'
            ? `Add "${upstreamPrefix(ep)}trusted_certificate server-ca.pem;" (the root of the server's CA).`
            : `Add "ca-file server-ca.pem" to ${ep.label.split(' in ')[0]} (the root of the server's CA).`,
      });
  }

  // ---- the files
  const cert = load(ep.cert, 'certificate');
  const key = ep.key && ep.cert && ep.key.path === ep.cert.path ? cert : load(ep.key, 'private key');
  const caInputs = ep.ca.map((r) => load(r, ep.role === 'server' ? 'client CA bundle' : 'CA bundle'));
  const crlInput = load(ep.crl, 'CRL');
  const passwordInput = load(ep.passwordFile, 'password file');
  const caFiles = caInputs.filter((x): x is InputFile => x !== undefined);
  const trustInput: InputFile | undefined =
    caFiles.length === 0
      ? undefined
      : caFiles.length === 1
        ? caFiles[0]
        : {
            path: caFiles.map((f) => f.path).join(' + '),
            data: Buffer.concat(caFiles.flatMap((f) => [f.data, Buffer.from('\n')])),
          };
  const passphrase = serverPassphrase(key, passwordInput, input.passphrase);
  // What the server itself can open: only its own password source counts (the user's --passphrase-file
  // lets the doctor check the key, but nginx started as a daemon has no one to ask).
  const serverOpens =
    key && isEncrypted(key) && passwordInput ? serverPassphrase(key, passwordInput, undefined) : undefined;
  if (key && isEncrypted(key) && serverOpens === undefined) {
    const keyAt = ep.key ? cfgEvidence(ep.key.at) : {};
    const decrypt = `openssl pkey -in ${key.path} -out ${key.path}.plain && chmod 600 ${key.path}.plain, then name ${key.path}.plain`;
    if (ep.passwordFile && passwordInput)
      cfg.push({
        code: 'encrypted_key',
        side,
        severity: 'error',
        message: `No line of ${passwordInput.path} (${ep.format === 'nginx' ? 'ssl_password_file' : 'password'}) opens ${key.path}: ${d.server} cannot load the key.`,
        evidence: { file: key.path, ...cfgEvidence(ep.passwordFile.at) },
        fix: `Put the key's passphrase on a line of ${passwordInput.path}, or use the key that belongs to the certificate.`,
      });
    else
      cfg.push({
        code: 'encrypted_key',
        side,
        severity: 'error',
        message:
          ep.format === 'nginx'
            ? `${key.path} is encrypted and ${ep.label} has no ssl_password_file: nginx asks for the passphrase on a terminal and fails to start as a service.`
            : ep.format === 'envoy'
              ? `${key.path} is encrypted and its tls_certificate has no password: Envoy cannot load it.`
              : `${key.path} is encrypted: ${d.server} cannot load encrypted keys.`,
        evidence: { file: key.path, ...keyAt },
        fix:
          ep.format === 'nginx'
            ? `Add "ssl_password_file /etc/nginx/key.pass;" (a 0600 file holding the passphrase) to ${ep.label}, or decrypt it: ${decrypt}.`
            : ep.format === 'envoy'
              ? `Add "password: { filename: key.pass }" (holding the passphrase) next to private_key, or decrypt it: ${decrypt}.`
              : ep.format === 'haproxy'
                ? `Decrypt it into the crt PEM: openssl pkey -in ${key.path} -out server.key.plain && cat server.chain.pem server.key.plain > ${ep.cert?.path ?? 'server.pem'} (mode 0600).`
                : `Decrypt it: ${decrypt}.`,
      });
  }

  let simulated = false;
  if (isTarget && input.client && cert) {
    const name = input.name ?? ep.names[0] ?? 'localhost';
    if (trustInput && ep.verify.mode !== 'none') {
      simulated = true;
      const pair = checkPair({
        server: { cert, ...(key ? { key } : {}), ca: input.client.ca },
        client: {
          ...(input.client.cert ? { cert: input.client.cert } : {}),
          ...(input.client.key ? { key: input.client.key } : {}),
          ...(input.client.chain ? { chain: input.client.chain } : {}),
          ca: trustInput,
        },
        name,
        ...(crlInput && ep.format !== 'otel' ? { serverCrl: crlInput } : {}),
        verifyDepth: ep.verifyDepth?.value ?? d.defaultDepth,
        ...(passphrase ? { passphrase } : input.passphrase ? { passphrase: input.passphrase } : {}),
        at,
      });
      const leafSubject = ep.crlLeafOnly ? firstSubject(input.client.cert) : undefined;
      out.push(
        ...pair.findings.filter(
          (f) =>
            !(f.code === 'no_client_cert' && ep.verify.mode === 'optional') &&
            // Envoy only_verify_leaf_cert_crl: only the leaf's issuer needs a CRL.
            !(ep.crlLeafOnly && f.code === 'crl_missing' && f.evidence.subject !== leafSubject),
        ),
      );
    } else {
      // Client certificates are not verified: only the client's check of the server, and the client's own files.
      out.push(
        ...checkFiles({
          cert,
          ...(key ? { key } : {}),
          ca: input.client.ca,
          role: 'server',
          name,
          ...(passphrase ? { passphrase } : {}),
          at,
        }).findings,
      );
      if (input.client.cert)
        out.push(
          ...checkFiles({
            cert: input.client.cert,
            ...(input.client.key ? { key: input.client.key } : {}),
            ...(input.client.chain ? { chain: input.client.chain } : {}),
            role: 'client',
            ...(input.passphrase ? { passphrase: input.passphrase } : {}),
            at,
          }).findings,
        );
    }
  } else if (cert) {
    const plainName = ep.names.find((n) => /^[\w.-]+$/.test(n) && n !== '_');
    out.push(
      ...checkFiles({
        cert,
        ...(key ? { key } : {}),
        role: ep.role,
        ...(ep.role === 'server' && plainName ? { name: plainName } : {}),
        ...(passphrase ? { passphrase } : {}),
        at,
      }).findings.map((f) =>
        // The config's own name for the server: clients may use another, so a warning.
        f.code === 'name_mismatch' || f.code === 'cn_only'
          ? {
              ...f,
              severity: 'warning' as const,
              message: `${f.message} (${plainName} is a name ${ep.label} answers to)`,
            }
          : f,
      ),
    );
  }
  // ---- the trust bundle and CRLs on their own (what the simulation covers otherwise)
  if (!simulated && trustInput) {
    const findings: Finding[] = [];
    const ctx: LoadContext = { side, pemOnly: true, findings };
    const trust = loadCertificates(trustInput, 'a CA bundle', ctx)?.certs ?? [];
    if (ep.role === 'server' && cert && trust.length)
      swappedWarning(cert, trust, trustInput.path, ep, d, findings, at);
    if (ep.role === 'server' && crlInput && ep.format !== 'otel') {
      const crls = loadCrls(crlInput, ctx);
      crlFindings(crls, trust, crlInput.path, ep, d, findings, at);
    }
    out.push(...findings);
  }

  // ---- place the findings in the config: evidence and fixes in the server's own syntax
  for (const f of out) if (f.side === side || f.side === 'both') placeInConfig(f, ep, d);
  return [...cfg, ...out];
}

/** proxy_ssl_ or grpc_ssl_: the directive family of an nginx upstream endpoint. */
function upstreamPrefix(ep: TlsEndpoint): string {
  return ep.label.startsWith('grpc_pass') ? 'grpc_ssl_' : 'proxy_ssl_';
}

function firstSubject(file: InputFile | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const c = readObjects(file.data, file.path).find((o) => o.kind === 'certificate');
    return c?.kind === 'certificate' ? subjectString(c.cert) || '(empty)' : undefined;
  } catch {
    return undefined;
  }
}

function isEncrypted(key: InputFile): boolean {
  return /ENCRYPTED/.test(key.data.subarray(0, 8192).toString('latin1'));
}

/** The line of the password file that opens the key (nginx tries each), else the user's passphrase. */
function serverPassphrase(
  key: InputFile | undefined,
  passwords: InputFile | undefined,
  fallback: string | undefined,
): string | undefined {
  if (!key || !isEncrypted(key)) return fallback;
  const candidates = [
    ...(passwords ? passwords.data.toString('utf8').split(/\r?\n/).filter(Boolean) : []),
    ...(fallback ? [fallback] : []),
  ];
  for (const p of candidates) {
    try {
      readObjects(key.data, key.path, p);
      return p;
    } catch (e) {
      if (!(e instanceof MtlsError)) throw e;
    }
  }
  return undefined;
}

/** The client CA bundle verifies the server's own certificate: a swap, unless one CA issues both. */
function swappedWarning(
  cert: InputFile,
  trust: readonly Certificate[],
  trustPath: string,
  ep: TlsEndpoint,
  d: Dialect,
  findings: Finding[],
  at: Date,
): void {
  let certs: Certificate[];
  try {
    certs = readObjects(cert.data, cert.path).flatMap((o) => (o.kind === 'certificate' ? [o.cert] : []));
  } catch {
    return;
  }
  const leaf = certs[0];
  if (!leaf) return;
  const r = verifyCertificate(leaf, {
    trust,
    intermediates: certs.slice(1),
    purpose: 'any',
    at,
    strict: false,
  });
  if (!r.ok) return;
  const root = r.chain[r.chain.length - 1]!;
  findings.push({
    code: 'swapped_ca_files',
    side: 'server',
    severity: 'warning',
    message: `${trustPath}, the bundle that ${ep.label} trusts for client certificates, holds the CA that issued the server's own certificate (${subjectString(root)}): right only if that CA also issues your client certificates; otherwise clients are refused with "unknown CA".`,
    evidence: { ...certEvidence(root, trustPath) },
    fix: `If client certificates come from another CA: "${d.clientCa('client-ca.pem')}" with that CA's root (rerun with --client-cert to check a real client).`,
  });
}

/** CRLs past nextUpdate, and CAs of the client CA bundle without a CRL (nginx, HAProxy and Envoy need one per CA). */
function crlFindings(
  crls: readonly Crl[],
  trust: readonly Certificate[],
  crlPath: string,
  ep: TlsEndpoint,
  d: Dialect,
  findings: Finding[],
  at: Date,
): void {
  for (const c of crls) {
    if (c.nextUpdate && c.nextUpdate.getTime() < at.getTime())
      findings.push({
        code: 'crl_expired',
        side: 'server',
        severity: 'error',
        message: `The CRL of ${formatName(c.issuer)} in ${crlPath} expired at ${c.nextUpdate.toISOString()}: ${d.server} refuses every client of that CA.`,
        evidence: {
          file: crlPath,
          issuer: formatName(c.issuer),
          nextUpdate: c.nextUpdate.toISOString(),
        },
        fix: `Replace ${crlPath} with a current CRL of that CA (its /v1/crl/chain, or mtls ca root-crl for a root's), then reload.`,
      });
  }
  if (ep.crlLeafOnly || crls.length === 0) return;
  for (const ca of trust) {
    if (!ca.basicConstraints?.ca) continue;
    if (crls.some((c) => c.issuerDer.equals(ca.subjectDer))) continue;
    const leafOnly = crls.every(
      (c) => !trust.some((t) => isSelfSigned(t) && t.subjectDer.equals(c.issuerDer)),
    );
    findings.push({
      code: 'crl_missing',
      side: 'server',
      severity: 'error',
      message: `${crlPath} has no CRL of ${subjectString(ca)}, a CA of the client CA bundle${leafOnly ? ' (it covers only the CA that issues the leaves)' : ''}: ${d.server} checks a CRL for every CA of a client's chain, so every client under ${subjectString(ca)} is refused ("unable to get certificate CRL").`,
      evidence: { ...certEvidence(ca), file: crlPath },
      fix: `Add the CRL of ${subjectString(ca)}: cat ${crlPath} ROOT.crl > crl.pem (mtls ca root-crl --dir CA-DIR writes root.crl), then "${d.crl('crl.pem')}".`,
    });
  }
}

/** Adds the config line to a server-side finding and rewrites nginx-worded fixes into this server's syntax. */
function placeInConfig(f: Finding, ep: TlsEndpoint, d: Dialect): void {
  const file = f.evidence.file;
  const refs = [ep.cert, ep.key, ...ep.ca, ep.crl, ep.passwordFile].filter(
    (r): r is ConfigFileRef => r !== undefined,
  );
  let loc: ConfigLocation | undefined;
  if (f.code.startsWith('crl_')) loc = ep.crl?.at;
  else if (f.code === 'verify_depth_exceeded') loc = ep.verifyDepth?.at ?? ep.at;
  else if (f.code === 'swapped_ca_files' || f.code === 'partial_chain') loc = ep.ca[0]?.at;
  if (!loc && typeof file === 'string') loc = refs.find((r) => r.path === file || file.includes(r.path))?.at;
  loc ??= ep.at;
  if (f.evidence.config === undefined) Object.assign(f.evidence, cfgEvidence(loc), { endpoint: ep.label });

  if (f.code === 'partial_chain' && !d.partialChainIsError && f.severity === 'error') f.severity = 'warning';
  if (f.code === 'verify_depth_exceeded') {
    const n = typeof f.evidence.intermediates === 'number' ? f.evidence.intermediates : undefined;
    const line = n !== undefined ? d.depth(n) : undefined;
    if (line)
      f.fix = ep.verifyDepth
        ? `At ${where(ep.verifyDepth.at)}: replace "${ep.verifyDepth.at.text}" with "${line}".`
        : `Add "${line}" to ${ep.label} (${where(ep.at)}).`;
    return;
  }
  let fix = f.fix;
  if (f.code === 'crl_missing' && ep.crl)
    fix = `Give ${d.server} a CRL for every CA of the chain: ${f.evidence.issuer ? `get the CRL of ${String(f.evidence.issuer)} (mtls ca root-crl --dir CA-DIR writes root.crl for a root), ` : ''}cat ${ep.crl.path} THAT.crl > crl-chain.pem, then "${d.crl('crl-chain.pem')}".`;
  if (ep.format !== 'nginx') {
    fix = fix
      .replace(/ssl_client_certificate ([^\s;]+);/g, (_m, p: string) => d.clientCa(p))
      .replace(/"ssl_certificate ([^\s;"]+);"/g, (_m, p: string) => `"${d.cert(p)}"`)
      .replace(/ssl_verify_client on;/g, d.verifyOn);
  }
  if (
    (f.code === 'swapped_ca_files' ||
      f.code === 'unknown_ca' ||
      f.code === 'partial_chain' ||
      f.code.startsWith('crl_')) &&
    loc !== ep.at
  )
    fix = `At ${where(loc)} ("${loc.text}"): ${fix}`;
  f.fix = fix;
}
