// One endpoint probe: a TLS handshake (with our client certificate when one is configured) that
// reads the chain the server presents, then closes without sending a byte. The chain is read even
// when it does not verify (rejectUnauthorized: false is used for that alone; no data is ever sent
// on the connection) and verified here, against the configured bundle, with the shared reasons.
import { isIP } from 'node:net';
import * as tls from 'node:tls';
import type { Clock } from '../pki/index.js';
import { parseCertificate, verifyCertificate, type Certificate, type Reason } from '../pki/index.js';

export interface ProbeTarget {
  /** The label value: the configured name or host:port. */
  endpoint: string;
  host: string;
  port: number;
  /** SNI and the name verified; default the host (no SNI for an IP address). */
  servername?: string;
  /** Our client certificate chain and key (PEM), for endpoints that require mTLS. */
  cert?: Buffer;
  key?: Buffer;
  /** Trust anchors for our verification; default Node's bundled public roots. */
  trust?: readonly Certificate[];
}

export interface ProbeResult {
  endpoint: string;
  /** The handshake completed and the chain verified. */
  success: boolean;
  /** The chain verified against the trust anchors, for the expected name, now. */
  verified: boolean;
  /** Why the probe failed (connection, handshake or verification), from the shared vocabulary. */
  reason?: Reason;
  message?: string;
  durationSeconds: number;
  /** What the server presented, leaf first (empty when the handshake failed). */
  chain: Certificate[];
  protocol?: string;
}

let publicRoots: Certificate[] | undefined;

/** Node's bundled Mozilla roots, parsed once on first use. */
export function defaultTrust(): Certificate[] {
  if (!publicRoots) {
    publicRoots = [];
    for (const pem of tls.rootCertificates) {
      try {
        const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
        publicRoots.push(parseCertificate(Buffer.from(b64, 'base64')));
      } catch {
        // a root our strict parser refuses is simply not a trust anchor here
      }
    }
  }
  return publicRoots;
}

/** Maps a connection or handshake error to the shared reason vocabulary. */
export function reasonForError(e: NodeJS.ErrnoException): Reason {
  const code = e.code ?? '';
  const text = `${code} ${e.message}`.toUpperCase();
  if (code === 'ECONNREFUSED') return 'connect_refused';
  if (code === 'ETIMEDOUT' || code === 'MTLS_PROBE_TIMEOUT') return 'connect_timeout';
  if (
    /ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_REQUIRED|CERTIFICATE_EXPIRED|CERTIFICATE_REVOKED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_UNKNOWN|ACCESS_DENIED)/.test(
      text,
    )
  )
    return 'client_cert_rejected';
  if (
    /(UNSUPPORTED_PROTOCOL|WRONG_VERSION_NUMBER|NO_PROTOCOLS_AVAILABLE|ALERT_PROTOCOL_VERSION|NO_SHARED_CIPHER|ALERT_HANDSHAKE_FAILURE|NO_CIPHERS_AVAILABLE)/.test(
      text,
    )
  )
    return 'protocol_mismatch';
  if (code === 'ECONNRESET' || code === 'EPIPE' || /SOCKET DISCONNECTED|SOCKET HANG UP/.test(text))
    return 'upstream_closed';
  return 'connect_failed';
}

/** The chain the server presented, leaf first, without repeats (a root's issuer is itself). */
function presentedChain(socket: tls.TLSSocket): Certificate[] {
  const out: Certificate[] = [];
  const seen = new Set<string>();
  let c: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
  for (let i = 0; c && c.raw && i < 16; i++) {
    const fp = c.fingerprint256;
    if (seen.has(fp)) break;
    seen.add(fp);
    try {
      out.push(parseCertificate(c.raw));
    } catch {
      break;
    }
    c = c.issuerCertificate;
  }
  return out;
}

/** Probes one endpoint; never throws (a failure is a result with a reason). */
export function probeEndpoint(
  target: ProbeTarget,
  opts: { timeoutMs: number; clock: Clock },
): Promise<ProbeResult> {
  const started = process.hrtime.bigint();
  const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  const name = target.servername ?? target.host;
  return new Promise<ProbeResult>((resolve) => {
    let done = false;
    const socket = tls.connect({
      host: target.host,
      port: target.port,
      ...(isIP(name) ? {} : { servername: name }),
      ...(target.cert && target.key ? { cert: target.cert, key: target.key } : {}),
      // Read the chain whatever it is; it is verified below and no byte is sent on this socket.
      rejectUnauthorized: false,
    });
    // The duration is connect + handshake; the wait for a late TLS 1.3 alert is not part of it.
    let handshakeSeconds: number | undefined;
    const finish = (r: Omit<ProbeResult, 'endpoint' | 'durationSeconds'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ endpoint: target.endpoint, durationSeconds: handshakeSeconds ?? seconds(), ...r });
    };
    const fail = (e: NodeJS.ErrnoException, chain: Certificate[] = []): void =>
      finish({ success: false, verified: false, reason: reasonForError(e), message: e.message, chain });
    const timer = setTimeout(() => {
      const e: NodeJS.ErrnoException = new Error(`no TLS handshake within ${opts.timeoutMs} ms`);
      e.code = 'MTLS_PROBE_TIMEOUT';
      fail(e);
    }, opts.timeoutMs);
    socket.on('error', (e: NodeJS.ErrnoException) => fail(e));
    socket.once('close', () => {
      const e: NodeJS.ErrnoException = new Error('the server closed the connection during the handshake');
      e.code = 'ECONNRESET';
      fail(e);
    });
    socket.once('secureConnect', () => {
      handshakeSeconds = seconds();
      const chain = presentedChain(socket);
      const protocol = socket.getProtocol() ?? undefined;
      const judge = (): void => {
        const [leaf, ...rest] = chain;
        if (!leaf) {
          finish({
            success: false,
            verified: false,
            reason: 'malformed',
            message: 'no certificate',
            chain,
            protocol,
          });
          return;
        }
        const v = verifyCertificate(leaf, {
          trust: target.trust ?? defaultTrust(),
          intermediates: rest,
          purpose: 'server',
          name,
          at: opts.clock.now(),
          strict: false,
        });
        if (v.ok) finish({ success: true, verified: true, chain, protocol });
        else {
          const first = v.reasons[0];
          finish({
            success: false,
            verified: false,
            reason: first?.reason ?? 'unknown_ca',
            message: first?.message,
            chain,
            protocol,
          });
        }
      };
      // TLS 1.3: a server refuses our client certificate (or its absence) after our side of the
      // handshake is done. Give its alert a moment to arrive before calling the probe good.
      if (protocol === 'TLSv1.3') {
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        socket.on('error', (e: NodeJS.ErrnoException) => fail(e, chain));
        socket.once('close', () => {
          const e: NodeJS.ErrnoException = new Error('the server closed the connection after the handshake');
          e.code = 'ECONNRESET';
          fail(e, chain);
        });
        const wait = setTimeout(judge, Math.min(150, Math.max(0, opts.timeoutMs - seconds() * 1000)));
        socket.once('close', () => clearTimeout(wait));
      } else judge();
    });
  });
}
