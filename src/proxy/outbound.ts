// Outbound mode: a plaintext TCP listener on loopback for apps and SDKs that cannot load
// certificates; every accepted connection is carried over mTLS to one upstream with our client
// certificate. OpenSSL verifies the upstream's chain against tls.ca (never rejectUnauthorized:
// false); its identity is checked against `expect` (a SPIFFE ID, dns: or ip:) or, without it, the
// host name as usual. A refused connection is closed and logged with the side at fault and why, in
// the shared reason vocabulary (pki/reasons.ts) plus the network and peer-refusal reasons below.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  checkServerIdentity as tlsCheckServerIdentity,
  connect as tlsConnect,
  createSecureContext,
  type DetailedPeerCertificate,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
} from 'node:tls';
import { z } from 'zod';
import { MtlsError } from '../errors/index.js';
import {
  OID,
  commonName,
  formatName,
  identityMatches,
  parseCertificate,
  readCertificates,
  REASONS,
  verifyCertificate,
  type Certificate,
  type Reason,
} from '../pki/index.js';
import type { Logger } from '../telemetry/index.js';
import { OPENSSL_REASONS as LISTENER_OPENSSL_REASONS, PATH_CODES, PATH_REASONS } from './verdict.js';

// ---------------------------------------------------------------- config

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/;

/** Loopback: 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return /^::ffff:127\./.test(h);
}

export const OutboundSchema = z
  .strictObject({
    /** Metrics label and log field; default: the listen address as written. */
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.:[\]-]+$/, 'letters, digits, _ . - : [ ]')
      .optional(),
    /** host:port of the plaintext listener; loopback only (see unsafeAllowNonLoopback). Port 0 picks a free port. */
    listen: z.string().regex(HOST_PORT, 'host:port, e.g. 127.0.0.1:15001'),
    /**
     * The listener hands out this proxy's client identity to whoever connects to it, so by default
     * it must be a loopback address. true listens anywhere (then firewall it yourself).
     */
    unsafeAllowNonLoopback: z.boolean().default(false),
    /** host:port of the mTLS upstream. */
    upstream: z.string().regex(HOST_PORT, 'host:port, e.g. collector.example.org:4317'),
    tls: z.strictObject({
      /** Our client certificate chain (leaf first, then intermediates), PEM. */
      cert: z.string().min(1),
      key: z.string().min(1),
      /** The CA bundle the upstream's certificate must chain to (replaces the system roots). */
      ca: z.string().min(1),
      /** SNI, and the name checked when `expect` is absent. Default: the upstream host (unless an IP), or the name of `expect: dns:…`. */
      serverName: z.string().min(1).optional(),
      minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    }),
    /**
     * The upstream's identity: a SPIFFE ID (glob as in allow rules: `*` one path segment, `**`
     * anything), `dns:name` (RFC 6125 matching, wildcard certificates included) or `ip:address`.
     * Absent: the upstream host name (or tls.serverName) is checked as usual.
     */
    expect: z
      .string()
      .regex(
        /^spiffe:\/\/[^/\s]+(\/\S*)?$|^dns:[A-Za-z0-9._-]+$|^ip:[0-9a-fA-F:.]+$/,
        'spiffe://trust.domain/path, dns:name or ip:address',
      )
      .optional(),
    /**
     * ALPN offered to the upstream. auto: from the client's first bytes: the HTTP/2 preface (h2c
     * prior knowledge) means h2, an HTTP/1 request line means http/1.1, anything else, or nothing
     * within 250 ms (server-speaks-first protocols), means no ALPN.
     */
    alpn: z.enum(['auto', 'h2', 'http/1.1', 'none']).default('auto'),
    /** TCP connect plus TLS handshake to the upstream. */
    connectTimeoutMs: z.number().int().min(1).max(300_000).default(10_000),
  })
  .superRefine((o, ctx) => {
    const host = HOST_PORT.exec(o.listen)?.[1];
    if (host !== undefined && !o.unsafeAllowNonLoopback && !isLoopbackHost(host))
      ctx.addIssue({
        code: 'custom',
        path: ['listen'],
        message: `${host} is not a loopback address: this plaintext port lends our client certificate to whoever reaches it; listen on 127.0.0.1 or ::1, or set unsafeAllowNonLoopback: true`,
      });
  });

export type OutboundInput = z.input<typeof OutboundSchema>;
export type OutboundConfig = z.output<typeof OutboundSchema>;

/** The metrics label: `name`, else the listen address as written. */
export function outboundName(cfg: Pick<OutboundConfig, 'name' | 'listen'>): string {
  return cfg.name ?? cfg.listen;
}

/** A copy with tls.cert/key/ca resolved against `baseDir` (the config file's directory). */
export function resolveOutboundPaths(cfg: OutboundConfig, baseDir: string): OutboundConfig {
  return {
    ...cfg,
    tls: {
      ...cfg.tls,
      cert: resolvePath(baseDir, cfg.tls.cert),
      key: resolvePath(baseDir, cfg.tls.key),
      ca: resolvePath(baseDir, cfg.tls.ca),
    },
  };
}

/** Validates one outbound entry (MTLS_CONFIG_INVALID naming the key) and resolves its paths. */
export function parseOutbound(input: unknown, baseDir = process.cwd(), source = 'outbound'): OutboundConfig {
  const r = OutboundSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const path = [...issue.path, ...(keys.length === 1 ? keys : [])].join('.') || '(top level)';
    throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: ${path}: ${issue.message}.`, {
      fix: 'Correct that key (see docs/proxy.md, outbound); unknown keys are errors so typos do not pass silently.',
      details: { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return resolveOutboundPaths(r.data, baseDir);
}

function splitHostPort(s: string): { host: string; port: number } {
  const m = HOST_PORT.exec(s);
  if (!m)
    throw new MtlsError('MTLS_CONFIG_INVALID', `"${s}" is not host:port.`, { fix: 'Write 127.0.0.1:15001.' });
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
}

// ---------------------------------------------------------------- results

/**
 * Results that are not about a certificate, so not in pki/reasons.ts (yet): proposed additions to
 * the shared catalog, used verbatim as the `result` of OutboundEvent and in logs.
 */
/** The reasons only an outbound connection has (they live in the shared catalog, pki/reasons.ts). */
export const OUTBOUND_REASONS = {
  client_cert_rejected: REASONS.client_cert_rejected,
  upstream_closed: REASONS.upstream_closed,
  connect_refused: REASONS.connect_refused,
  connect_timeout: REASONS.connect_timeout,
  connect_failed: REASONS.connect_failed,
} as const;

export type OutboundReason = Reason | keyof typeof OUTBOUND_REASONS;

export type Side = 'client' | 'server' | 'both' | 'network';

export interface OutboundEvent {
  outbound: string;
  /** 'ok' or why the connection was refused. */
  result: 'ok' | OutboundReason;
  /** Whose fault, doctor's vocabulary: server = the upstream's certificate, client = ours, both, network. */
  side?: Side;
}

export interface StartOutboundOptions {
  /** Called once per local connection whose outcome is known ('ok' or a reason); wire it to metrics. */
  onEvent?(e: OutboundEvent): void;
  /** Clock for certificate checks (tests). */
  now?: () => Date;
  /** How long `alpn: auto` waits for the client's first bytes (default 250 ms). */
  sniffMs?: number;
}

export interface RunningOutbound {
  name: string;
  host: string;
  port: number;
  /** New TLS material and settings for new connections; throws (keeping the old ones) if they do not load. */
  reload(newCfg: OutboundConfig): void;
  /** Stops accepting, lets open tunnels run up to graceMs (default 10 s), then closes them. */
  close(graceMs?: number): Promise<void>;
}

// ---------------------------------------------------------------- TLS material

interface Material {
  cfg: OutboundConfig;
  context: SecureContext;
  trust: Certificate[];
  own: Certificate | undefined;
  upstream: { host: string; port: number };
  servername: string | undefined;
}

function readTlsFile(path: string, what: string, name: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new MtlsError('MTLS_PROXY_TLS_CONFIG', `Outbound ${name}: cannot read tls.${what} ${path}.`, {
      cause: e,
      fix: `Check the tls.${what} path (relative paths are relative to the config file).`,
    });
  }
}

function buildMaterial(cfg: OutboundConfig): Material {
  const name = outboundName(cfg);
  const cert = readTlsFile(cfg.tls.cert, 'cert', name);
  const key = readTlsFile(cfg.tls.key, 'key', name);
  const ca = readTlsFile(cfg.tls.ca, 'ca', name);
  let trust: Certificate[];
  let own: Certificate | undefined;
  try {
    trust = readCertificates(ca, cfg.tls.ca);
    own = readCertificates(cert, cfg.tls.cert)[0];
  } catch (e) {
    throw new MtlsError('MTLS_PROXY_TLS_CONFIG', `Outbound ${name}: ${(e as Error).message}`, {
      cause: e,
      fix: 'tls.cert and tls.ca must hold PEM certificates.',
    });
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, ca, minVersion: cfg.tls.minVersion });
  } catch (e) {
    throw new MtlsError(
      'MTLS_PROXY_TLS_CONFIG',
      `Outbound ${name}: the TLS material is not usable: ${(e as Error).message}`,
      { cause: e, fix: 'tls.key must be the unencrypted key of tls.cert (PEM); tls.ca a PEM bundle.' },
    );
  }
  const upstream = splitHostPort(cfg.upstream);
  const expectDns = cfg.expect?.startsWith('dns:') ? cfg.expect.slice(4) : undefined;
  const servername = cfg.tls.serverName ?? expectDns ?? (isIP(upstream.host) ? undefined : upstream.host);
  return { cfg, context, trust, own, upstream, servername };
}

// ---------------------------------------------------------------- identities and reasons

/** Every identity a certificate can be expected as: spiffe/uri SANs, dns:, ip:, and cn: without SANs. */
export function presentedIdentities(cert: Certificate): string[] {
  const out: string[] = [];
  for (const n of cert.subjectAltNames) {
    if (n.type === 'uri') out.push(n.value.startsWith('spiffe://') ? n.value : `uri:${n.value}`);
    else if (n.type === 'dns') out.push(`dns:${n.value.toLowerCase()}`);
    else if (n.type === 'ip') out.push(`ip:${n.value}`);
  }
  const cn = commonName(cert.subject);
  if (cn !== undefined && out.length === 0) out.push(`cn:${cn}`);
  return out;
}

/** Node's view of the peer certificate for checkServerIdentity (the raw DER is what we read). */
function checkExpect(
  expect: string,
  cert: PeerCertificate,
  leaf: Certificate | undefined,
): Error | undefined {
  if (expect.startsWith('spiffe://')) {
    const uris = leaf?.subjectAltNames.flatMap((n) => (n.type === 'uri' ? [n.value] : [])) ?? [];
    if (uris.some((u) => identityMatches(expect, u))) return undefined;
    return Object.assign(new Error(`no URI SAN matches ${expect}`), { code: 'MTLS_EXPECT_MISMATCH' });
  }
  const name = expect.slice(expect.indexOf(':') + 1);
  return tlsCheckServerIdentity(name, cert);
}

/** The listener's map of OpenSSL verify codes, plus what only a client sees. */
const OPENSSL_REASONS: Readonly<Record<string, Reason>> = {
  ...LISTENER_OPENSSL_REASONS,
  CERT_UNTRUSTED: 'unknown_ca',
  MTLS_EXPECT_MISMATCH: 'name_mismatch',
};

/** TLS alerts (Node's ERR_SSL_…_ALERT_<NAME>) by which a server refuses the client's certificate. */
const CERT_ALERTS = new Set([
  'certificate required',
  'unknown ca',
  'bad certificate',
  'unsupported certificate',
  'certificate revoked',
  'certificate expired',
  'certificate unknown',
  'access denied',
  'decrypt error',
]);
const PROTOCOL_ALERTS = new Set([
  'protocol version',
  'handshake failure',
  'no application protocol',
  'insufficient security',
  'illegal parameter',
]);

export interface OutboundFailure {
  reason: OutboundReason;
  side: Side;
  /** One sentence for a human, naming the certificates and what to change. */
  detail: string;
  opensslCode?: string;
  alert?: string;
  expected?: string;
  presented?: string[];
  subject?: string;
  issuer?: string;
}

function alertOf(code: string): string | undefined {
  const m = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)$/.exec(code);
  return m ? m[1]!.toLowerCase().replace(/_/g, ' ') : undefined;
}

export interface ClassifyInput {
  error: NodeJS.ErrnoException;
  /** The handshake had completed on our side (TLS 1.3: the server may still refuse us). */
  secure: boolean;
  /** The certificates the upstream sent, leaf first (DER), when they could be read. */
  chain: Buffer[];
  trust: readonly Certificate[];
  own: Certificate | undefined;
  /** What the identity check expected (expect, or the host name). */
  expected: string;
  tcpConnected: boolean;
  timedOut: boolean;
  now?: () => Date;
  upstream: string;
}

/** Why a connection to the upstream failed, with the side at fault. Exported for unit tests. */
export function classifyOutboundError(i: ClassifyInput): OutboundFailure {
  const code = i.error.code ?? '';
  const ours = i.own
    ? `our certificate (tls.cert: ${formatName(i.own.subject) || presentedIdentities(i.own).join(', ')}, issued by ${formatName(i.own.issuer)})`
    : 'our certificate (tls.cert)';
  if (i.timedOut)
    return {
      reason: 'connect_timeout',
      side: 'network',
      detail: i.tcpConnected
        ? `The TLS handshake with ${i.upstream} did not finish in time (TCP connected); the upstream may not speak TLS on that port.`
        : `No TCP connection to ${i.upstream} in time; check the address and firewalls.`,
    };
  if (code === 'ECONNREFUSED')
    return {
      reason: 'connect_refused',
      side: 'network',
      detail: `Nothing listens at ${i.upstream} (connection refused).`,
    };
  if (['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EADDRNOTAVAIL'].includes(code))
    return { reason: 'connect_failed', side: 'network', detail: `Cannot reach ${i.upstream}: ${code}.` };

  const alert = alertOf(code);
  if (alert && CERT_ALERTS.has(alert))
    return {
      reason: 'client_cert_rejected',
      side: 'client',
      alert,
      opensslCode: code,
      detail:
        `The upstream ${i.upstream} rejected ${ours}: it sent the TLS alert "${alert}"` +
        (alert === 'unknown ca'
          ? '; it does not trust the CA that issued our certificate.'
          : alert === 'certificate required'
            ? '; it requires a client certificate it accepts (is tls.cert the chain it expects?).'
            : alert === 'certificate expired'
              ? `; our certificate ${i.own ? `expires/expired at ${i.own.notAfter.toISOString()}` : 'has expired'}.`
              : '.'),
    };
  if (alert && PROTOCOL_ALERTS.has(alert))
    return {
      reason: 'protocol_mismatch',
      side: 'both',
      alert,
      opensslCode: code,
      detail: `The upstream ${i.upstream} ended the handshake with the alert "${alert}": no common TLS version, cipher suite or ALPN protocol.`,
    };
  if (
    [
      'ERR_SSL_WRONG_VERSION_NUMBER',
      'ERR_SSL_PACKET_LENGTH_TOO_LONG',
      'ERR_SSL_RECORD_LAYER_FAILURE',
    ].includes(code)
  )
    return {
      reason: 'protocol_mismatch',
      side: 'server',
      opensslCode: code,
      detail: `${i.upstream} does not answer in TLS (${code}); is it a plaintext port?`,
    };
  if (
    ['ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'ERR_SSL_NO_SHARED_CIPHER'].includes(
      code,
    )
  )
    return {
      reason: 'protocol_mismatch',
      side: 'server',
      opensslCode: code,
      detail: `${i.upstream} and this proxy share no TLS version or cipher suite (${code}; tls.minVersion is a setting here).`,
    };
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UPSTREAM_EOF')
    return {
      reason: 'upstream_closed',
      side: 'client',
      detail: `The upstream ${i.upstream} closed the connection ${i.secure ? 'right after the TLS handshake, before sending anything' : 'during the TLS handshake'}, without an alert. Servers that refuse a client certificate silently (Node with rejectUnauthorized) do this: check that it trusts the issuer of ${ours}.`,
    };

  // The upstream's certificate, as OpenSSL or the identity check judged it.
  const mapped = OPENSSL_REASONS[code];
  if (!mapped)
    return {
      reason: 'connect_failed',
      side: 'network',
      ...(code ? { opensslCode: code } : {}),
      detail: `The connection to ${i.upstream} failed: ${i.error.message}`,
    };
  let leaf: Certificate | undefined;
  let intermediates: Certificate[] = [];
  try {
    if (i.chain[0]) leaf = parseCertificate(i.chain[0]);
    intermediates = i.chain.slice(1).map((d) => parseCertificate(d));
  } catch {
    // an unparsable certificate: OpenSSL's code stands
  }
  let reason: Reason = mapped;
  let pkiMessage: string | undefined;
  if (leaf && reason !== 'name_mismatch') {
    const r = verifyCertificate(leaf, {
      trust: i.trust,
      intermediates,
      purpose: 'server',
      strict: false,
      ...(i.now ? { at: i.now() } : {}),
    });
    if (!r.ok) {
      const refined = r.reasons.find((f) => PATH_REASONS.has(f.reason));
      if (PATH_CODES.has(code) && refined) reason = refined.reason;
      pkiMessage = r.reasons.find((f) => f.reason === reason)?.message;
    }
  }
  const subject = leaf ? formatName(leaf.subject) : undefined;
  const issuer = leaf ? formatName(leaf.issuer) : undefined;
  const presented = leaf ? presentedIdentities(leaf) : undefined;
  const theirs = `the upstream's certificate${subject !== undefined ? ` (${subject || presented?.join(', ')})` : ''}`;
  const cap = (x: string): string => x.charAt(0).toUpperCase() + x.slice(1);
  let detail: string;
  switch (reason) {
    case 'name_mismatch':
      detail = `${i.upstream} is not who we expect: expected ${i.expected}, it presented ${presented?.length ? presented.join(', ') : 'no matching name'}${issuer !== undefined ? ` (issued by ${issuer})` : ''}.`;
      break;
    case 'unknown_ca':
      detail = `${cap(theirs)} is issued by ${issuer ?? 'a CA'}, which tls.ca does not hold: the upstream is not trusted.`;
      break;
    case 'missing_intermediate':
      detail = `${cap(theirs)} is issued by ${issuer}, which the upstream did not send (${i.chain.length} certificate${i.chain.length === 1 ? '' : 's'} sent); it must send its chain, or add the intermediate to tls.ca.`;
      break;
    case 'expired':
      detail =
        leaf && leaf.notAfter.getTime() < (i.now?.() ?? new Date()).getTime()
          ? `${cap(theirs)} expired at ${leaf.notAfter.toISOString()}.`
          : (pkiMessage ?? `A certificate in the upstream's chain has expired.`);
      break;
    case 'not_yet_valid':
      detail = `${cap(theirs)} is not valid until ${leaf?.notBefore.toISOString() ?? '(unknown)'}; check the clocks.`;
      break;
    case 'wrong_eku':
      detail = `${cap(theirs)} does not allow serverAuth (extended key usage); it must be a server certificate.`;
      break;
    case 'self_signed':
      detail = `${cap(theirs)} is self-signed and not in tls.ca.`;
      break;
    default:
      detail = pkiMessage ?? `${theirs} was not accepted: ${reason} (${code}).`;
  }
  return {
    reason,
    side: 'server',
    opensslCode: code,
    detail,
    ...(reason === 'name_mismatch' ? { expected: i.expected, presented: presented ?? [] } : {}),
    ...(subject !== undefined ? { subject } : {}),
    ...(issuer !== undefined ? { issuer } : {}),
  };
}

// ---------------------------------------------------------------- ALPN sniffing

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HTTP1_LINE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32} /;

/** What the client's first bytes say, or 'more' while they are a strict prefix of something we know. */
export function sniffAlpn(first: Buffer, final: boolean): 'h2' | 'http/1.1' | 'none' | 'more' {
  const n = Math.min(first.length, H2_PREFACE.length);
  if (first.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
    if (first.length >= 14) return 'h2'; // "PRI * HTTP/2.0"
    if (!final) return 'more';
  }
  const text = first.subarray(0, 40).toString('latin1');
  if (HTTP1_LINE.test(text) && !text.startsWith('PRI ')) return 'http/1.1';
  if (!final && first.length < 34 && /^[!#$%&'*+.^_`|~0-9A-Za-z-]*$/.test(text)) return 'more';
  return 'none';
}

// ---------------------------------------------------------------- the listener

interface Tunnel {
  client: Socket;
  up?: TLSSocket;
}

export async function startOutbound(
  cfg: OutboundConfig,
  logger: Logger,
  opts: StartOutboundOptions = {},
): Promise<RunningOutbound> {
  const name = outboundName(cfg);
  const log = logger.child({ outbound: name });
  const now = opts.now ?? (() => new Date());
  const sniffMs = opts.sniffMs ?? 250;
  let current = buildMaterial(cfg);
  warnAboutOwnCertificate(current, log, now);
  const tunnels = new Set<Tunnel>();
  let closing = false;
  const emit = (e: OutboundEvent): void => {
    try {
      opts.onEvent?.(e);
    } catch (err) {
      log.error({ err }, 'outbound onEvent callback failed');
    }
  };

  const handle = (client: Socket): void => {
    const m = current; // the material at accept time; a reload affects only later connections
    const t: Tunnel = { client };
    tunnels.add(t);
    const connId = randomUUID();
    const peer = `${client.remoteAddress}:${client.remotePort}`;
    const upstreamText = `${m.upstream.host}:${m.upstream.port}`;
    client.setNoDelay(true);
    let settled = false;
    let clientEnded = false;
    let clientGone = false;
    const settle = (result: 'ok' | OutboundFailure): void => {
      if (settled) return;
      settled = true;
      if (result === 'ok') {
        emit({ outbound: name, result: 'ok' });
        return;
      }
      emit({ outbound: name, result: result.reason, side: result.side });
      log.warn(
        { event: 'outbound_refused', connId, peer, upstream: upstreamText, ...result },
        `outbound connection closed: ${result.reason} (${result.side}): ${result.detail}`,
      );
    };
    client.on('error', () => undefined);
    client.once('close', () => {
      clientGone = true;
      tunnels.delete(t);
      t.up?.destroy();
    });

    // 1. ALPN: configured, or sniffed from the client's first bytes.
    const chunks: Buffer[] = [];
    let decided = false;
    const decide = (alpn: 'h2' | 'http/1.1' | 'none'): void => {
      if (decided || clientGone) return;
      decided = true;
      clearTimeout(sniffTimer);
      client.off('data', onData);
      client.off('end', onEnd);
      client.pause();
      connect(alpn, Buffer.concat(chunks));
    };
    const onData = (d: Buffer): void => {
      chunks.push(d);
      const s = sniffAlpn(Buffer.concat(chunks), false);
      if (s !== 'more') decide(s);
    };
    const onEnd = (): void => {
      clientEnded = true;
      const s = sniffAlpn(Buffer.concat(chunks), true);
      decide(s === 'more' ? 'none' : s);
    };
    let sniffTimer: NodeJS.Timeout | undefined;
    if (m.cfg.alpn === 'auto') {
      client.on('data', onData);
      client.on('end', onEnd);
      sniffTimer = setTimeout(() => {
        const s = sniffAlpn(Buffer.concat(chunks), true);
        decide(s === 'more' ? 'none' : s);
      }, sniffMs);
    } else {
      // Paused, the socket buffers what the client sends (and its FIN) until the pipe reads it.
      client.pause();
      decided = true;
      connect(m.cfg.alpn, Buffer.alloc(0));
    }

    // Runs from socket callbacks: a throw here must close this connection, not the process.
    function connect(alpn: 'h2' | 'http/1.1' | 'none', prefix: Buffer): void {
      try {
        connectUpstream(alpn, prefix);
      } catch (e) {
        settle({
          reason: 'connect_failed',
          side: 'network',
          detail: `Could not start the connection to ${upstreamText}: ${(e as Error).message}`,
        });
        client.destroy();
        t.up?.destroy();
      }
    }

    // 2. mTLS to the upstream; OpenSSL verifies the chain against tls.ca, we check the identity.
    function connectUpstream(alpn: 'h2' | 'http/1.1' | 'none', prefix: Buffer): void {
      const expected = m.cfg.expect ?? m.servername ?? m.upstream.host;
      let chain: Buffer[] = [];
      let tcpConnected = false;
      let timedOut = false;
      let secure = false;
      let received = false;
      let ticket = false;
      const capture = (pc: PeerCertificate | DetailedPeerCertificate | null | undefined): void => {
        if (chain.length || !pc?.raw?.length) return;
        const out: Buffer[] = [];
        let cur = pc as DetailedPeerCertificate | undefined;
        const seen = new Set<string>();
        while (cur?.raw?.length && out.length < 16 && !seen.has(cur.fingerprint256)) {
          seen.add(cur.fingerprint256);
          out.push(cur.raw);
          cur = cur.issuerCertificate;
        }
        chain = out;
      };
      const up = tlsConnect({
        host: m.upstream.host,
        port: m.upstream.port,
        secureContext: m.context,
        ...(m.servername ? { servername: m.servername } : {}),
        ...(alpn === 'none' ? {} : { ALPNProtocols: [alpn] }),
        rejectUnauthorized: true,
        // Runs only after OpenSSL accepted the chain; `expect` replaces the host name check.
        checkServerIdentity: (host, cert) => {
          capture(cert);
          if (!m.cfg.expect) return tlsCheckServerIdentity(host, cert);
          let leaf: Certificate | undefined;
          try {
            leaf = parseCertificate(cert.raw);
          } catch {
            leaf = undefined;
          }
          return checkExpect(m.cfg.expect, cert, leaf);
        },
      });
      t.up = up;
      // When OpenSSL rejects the upstream's chain, Node destroys the socket before any event where
      // the chain could be read; read it just before (for the reason and the names in the log).
      const destroy = up.destroy.bind(up);
      up.destroy = (err?: Error) => {
        try {
          capture(up.getPeerCertificate(true));
        } catch {
          // no handle any more
        }
        return destroy(err);
      };
      up.setNoDelay(true);
      up.once('connect', () => (tcpConnected = true));
      up.on('session', () => {
        ticket = true;
        if (secure) settle('ok');
      });
      const timer = setTimeout(() => {
        timedOut = true;
        up.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
      }, m.cfg.connectTimeoutMs);
      const fail = (err: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        if (!settled && !clientGone)
          settle(
            classifyOutboundError({
              error: err,
              secure,
              chain,
              trust: m.trust,
              own: m.own,
              expected,
              tcpConnected,
              timedOut,
              now,
              upstream: upstreamText,
            }),
          );
        else if (!settled) log.debug({ event: 'outbound_client_gone', connId, peer }, 'client left first');
        else log.debug({ event: 'outbound_error', connId, err: err.code ?? err.message }, 'tunnel error');
        client.destroy();
        up.destroy();
      };
      up.on('error', fail);
      up.once('secureConnect', () => {
        clearTimeout(timer);
        secure = true;
        if (alpn === 'h2' && up.alpnProtocol !== 'h2') {
          settle({
            reason: 'protocol_mismatch',
            side: 'server',
            detail: `The client speaks HTTP/2 (prior knowledge) but ${upstreamText} did not agree to ALPN h2 (it chose ${up.alpnProtocol || 'nothing'}); set alpn: http/1.1 and use HTTP/1.1, or enable HTTP/2 upstream.`,
          });
          client.destroy();
          up.destroy();
          return;
        }
        // TLS 1.2: the server accepted our certificate before its Finished. TLS 1.3: it judges it
        // after our Finished, so wait for a sign (a session ticket or a byte) or an alert.
        if (up.getProtocol() !== 'TLSv1.3' || ticket) settle('ok');
        log.debug(
          {
            event: 'outbound_connected',
            connId,
            peer,
            alpn: up.alpnProtocol || null,
            protocol: up.getProtocol(),
          },
          'outbound tunnel up',
        );
        if (prefix.length) up.write(prefix);
        if (clientEnded) up.end();
        else client.pipe(up);
        up.pipe(client);
        client.resume();
      });
      up.on('data', () => {
        if (!received) {
          received = true;
          settle('ok');
        }
      });
      up.once('end', () => {
        if (!settled && secure && !received)
          fail(Object.assign(new Error('upstream closed'), { code: 'UPSTREAM_EOF' }));
      });
      up.once('close', () => {
        clearTimeout(timer);
        if (!settled && secure && !clientGone) settle('ok');
        // Nothing the client sends can go anywhere now: flush what came from upstream, then close.
        if (client.destroyed) return;
        if (client.writableFinished) client.destroy();
        else {
          client.once('finish', () => client.destroy());
          client.end();
        }
      });
    }
  };

  const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
    if (closing) {
      sock.destroy();
      return;
    }
    handle(sock);
  });
  const { host, port } = splitHostPort(cfg.listen);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new MtlsError(
          'MTLS_PROXY_LISTEN',
          `Outbound ${name} cannot listen on ${cfg.listen}: ${e.code ?? e.message}.`,
          {
            cause: e,
            fix: 'Pick a free port for outbound listen.',
          },
        ),
      ),
    );
    server.listen({ host, port }, () => resolve());
  });
  const a = server.address();
  const bound = typeof a === 'object' && a ? a.port : port;
  log.info(
    { event: 'outbound_listening', listen: `${host}:${bound}`, upstream: cfg.upstream },
    'outbound listening',
  );

  return {
    name,
    host,
    port: bound,
    reload(newCfg: OutboundConfig): void {
      if (newCfg.listen !== cfg.listen || outboundName(newCfg) !== name)
        throw new MtlsError(
          'MTLS_CONFIG_INVALID',
          `Outbound ${name}: listen and name cannot change on reload (${cfg.listen} → ${newCfg.listen}).`,
          { fix: 'Restart mtls proxy to move an outbound listener.' },
        );
      const next = buildMaterial(newCfg); // throws before anything is replaced
      current = next;
      cfg = newCfg;
      warnAboutOwnCertificate(next, log, now);
      log.info(
        {
          event: 'outbound_reloaded',
          subject: next.own ? formatName(next.own.subject) : undefined,
          notAfter: next.own?.notAfter.toISOString(),
          upstream: newCfg.upstream,
        },
        'outbound reloaded: new connections use the new settings',
      );
    },
    close: async (graceMs = 10_000) => {
      closing = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      if (tunnels.size) {
        const deadline = Date.now() + graceMs;
        while (tunnels.size && Date.now() < deadline) await sleep(Math.min(50, graceMs));
        for (const t of tunnels) {
          t.client.destroy();
          t.up?.destroy();
        }
      }
      await closed;
    },
  };
}

function warnAboutOwnCertificate(m: Material, log: Logger, now: () => Date): void {
  const c = m.own;
  if (!c) return;
  const subject = formatName(c.subject) || presentedIdentities(c).join(', ');
  if (c.notAfter.getTime() < now().getTime())
    log.warn(
      { event: 'outbound_cert_expired', subject, notAfter: c.notAfter.toISOString(), cert: m.cfg.tls.cert },
      `our client certificate (${subject}) expired at ${c.notAfter.toISOString()}; upstreams will refuse it`,
    );
  if (c.extKeyUsage && !c.extKeyUsage.includes(OID.clientAuth))
    log.warn(
      { event: 'outbound_cert_wrong_eku', subject, cert: m.cfg.tls.cert },
      `our client certificate (${subject}) does not allow clientAuth; upstreams will refuse it (issue a client, peer or spiffe certificate)`,
    );
}
