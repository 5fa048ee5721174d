// What HTTP and TCP listeners share: the current configuration and TLS material (swapped whole on
// reload), the verdict per connection, revocation, session ticket keys, the open connections and
// the handshake metrics.
import { performance } from 'node:perf_hooks';
import type { SecureContextOptions, Server as TlsServer, TLSSocket } from 'node:tls';
import { verifyCertificate, type Certificate } from '../pki/index.js';
import { proxyChannels, type Logger } from '../telemetry/index.js';
import type { ListenerConfig } from './config.js';
import type { ListenerMaterial, TicketKeys } from './material.js';
import { RevocationChecker, type LoadedCrl, type RevocationResult } from './revocation.js';
import { classifyPeer, completeChain, parseIntermediates, type Verdict } from './verdict.js';

export interface ListenerState {
  config: ListenerConfig;
  material: ListenerMaterial;
}

/** What a reload hands a listener: prepared completely before anything is swapped. */
export interface PreparedListener extends ListenerState {
  crls: LoadedCrl[];
  feedCa: Buffer | undefined;
}

export interface ConnState {
  verdict: Verdict;
  /** verdict.chain holds everything the peer sent (an accepted peer's starts as the leaf alone). */
  chainComplete: boolean;
  /** Identity headers for the upstream, computed on the first request. */
  identityHeaders?: Record<string, string>;
  identityKey?: string;
  /** The identities allow rules match against, computed on the first request. */
  identities?: string[];
  requests: number;
  active: number;
  peer: string;
  /** Set when the connection was closed by the proxy (revoked, trust removed). */
  closedFor?: string;
}

export const kConn = Symbol('mtls.proxy.conn');
const kStart = Symbol('mtls.proxy.start');
export type TrackedSocket = TLSSocket & { [kConn]?: ConnState; _parent?: { [kStart]?: number } };

export type Admission =
  { ok: true; stale?: boolean } | { ok: false; status: 401 | 503; reason: string; detail: string };

export class ListenerCore {
  state: ListenerState;
  readonly name: string;
  readonly log: Logger;
  readonly revocation: RevocationChecker;
  readonly sockets = new Set<TrackedSocket>();
  readonly #tickets: TicketKeys;
  #server: TlsServer | undefined;
  #ticketTimer: NodeJS.Timeout | undefined;

  constructor(prepared: PreparedListener, tickets: TicketKeys, logger: Logger) {
    this.state = { config: prepared.config, material: prepared.material };
    this.name = prepared.config.name;
    this.log = logger.child({ listener: this.name });
    this.#tickets = tickets;
    this.revocation = new RevocationChecker(this.name, this.log);
    this.revocation.apply(prepared.config.revocation, prepared.crls, prepared.feedCa);
    this.revocation.onChange(() => this.recheckOpen('revoked'));
  }

  /** Options for the TLS server, the current ticket key included. */
  contextOptions(): SecureContextOptions {
    return {
      ...this.state.material.context,
      ticketKeys: this.#tickets.keyFor(this.name),
      sessionTimeout: Math.max(1, Math.floor(this.#tickets.periodMs / 1000)),
    };
  }

  /** Wires the server events every listener needs. Call once, before listen. */
  attach(server: TlsServer): void {
    this.#server = server;
    const l = this.state.config.limits;
    server.maxConnections = l.maxConnections;
    server.on('connection', (raw: { [kStart]?: number }) => {
      raw[kStart] = performance.now();
    });
    server.on('secureConnection', (sock: TrackedSocket) => {
      const s = this.connState(sock);
      this.sockets.add(sock);
      proxyChannels.connection.publish({ listener: this.name, delta: 1 });
      sock.once('close', () => {
        this.sockets.delete(sock);
        proxyChannels.connection.publish({ listener: this.name, delta: -1 });
        if (!s.verdict.accepted && s.requests === 0 && this.state.config.mode === 'strict')
          this.log.warn(
            {
              event: 'connection_refused',
              reason: s.verdict.reason,
              detail: s.verdict.detail,
              peer: s.peer,
              subject: s.verdict.subject,
              issuer: s.verdict.issuer,
            },
            'connection refused without a request',
          );
      });
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, sock: TLSSocket) => {
      const text = `${err.code ?? ''} ${err.message}`;
      const reason =
        /VERSION|NO_SHARED_CIPHER|NO_PROTOCOLS|UNSUPPORTED_PROTOCOL|NO_APPLICATION_PROTOCOL|NO_SUITABLE/.test(
          text,
        )
          ? 'protocol_mismatch'
          : /ECONNRESET|socket hang up|ETIMEDOUT|timed out/i.test(text)
            ? 'handshake_aborted'
            : 'handshake_failed';
      proxyChannels.handshake.publish({ listener: this.name, result: reason });
      this.log.info(
        {
          event: 'handshake_failed',
          reason,
          error: err.code ?? err.message,
          peer: `${sock.remoteAddress}:${sock.remotePort}`,
        },
        'TLS handshake failed',
      );
    });
    this.#scheduleTicketRotation();
  }

  #scheduleTicketRotation(): void {
    this.#ticketTimer = setTimeout(() => {
      this.#server?.setTicketKeys(this.#tickets.keyFor(this.name));
      this.#scheduleTicketRotation();
    }, this.#tickets.msToNext() + 50);
    this.#ticketTimer.unref();
  }

  /** The connection's verdict, computed once when its handshake completes. */
  connState(sock: TrackedSocket): ConnState {
    let s = sock[kConn];
    if (!s) {
      const verdict = classifyPeer(sock, { trust: this.state.material.trust });
      s = {
        verdict,
        chainComplete: !verdict.accepted,
        requests: 0,
        active: 0,
        peer: `${sock.remoteAddress}:${sock.remotePort}`,
      };
      sock[kConn] = s;
      const start = sock._parent?.[kStart];
      proxyChannels.handshake.publish({
        listener: this.name,
        result: verdict.accepted ? 'accepted' : (verdict.reason ?? 'unknown'),
        resumed: sock.isSessionReused(),
        ...(start !== undefined ? { seconds: (performance.now() - start) / 1000 } : {}),
      });
    }
    return s;
  }

  /** May this connection's requests (or this TCP connection) go on, as of now? */
  admit(s: ConnState, sock: TLSSocket): Admission {
    const v = s.verdict;
    if (!v.accepted) return { ok: false, status: 401, reason: v.reason ?? 'unknown_ca', detail: v.detail };
    if (s.closedFor)
      return { ok: false, status: 401, reason: s.closedFor, detail: 'The connection was closed.' };
    if (!this.revocation.enabled) return { ok: true };
    if (this.revocation.needsChain) this.#completeChain(s, sock);
    const r: RevocationResult = this.revocation.check(v);
    if (r.ok) return r.stale ? { ok: true, stale: true } : { ok: true };
    return { ok: false, status: r.reason === 'revoked' ? 401 : 503, reason: r.reason, detail: r.detail };
  }

  /**
   * Swaps in a prepared configuration. New handshakes use the new material at once; open connections
   * keep theirs, except peers the new trust bundle or revocation data no longer accept.
   */
  apply(next: PreparedListener): void {
    const prev = this.state;
    this.state = { config: next.config, material: next.material };
    if (prev.material.digest !== next.material.digest) this.#server?.setSecureContext(this.contextOptions());
    this.revocation.apply(next.config.revocation, next.crls, next.feedCa);
    if (prev.material.trustDigest !== next.material.trustDigest) this.recheckOpen('trust');
  }

  /** Closes open connections whose peer is now revoked (or no longer chains to the trust bundle). */
  #completeChain(s: ConnState, sock: TLSSocket): void {
    if (s.chainComplete || sock.destroyed) return;
    const chain = completeChain(sock);
    if (chain.length > 0) s.verdict.chain = chain;
    s.chainComplete = true;
  }

  recheckOpen(why: 'revoked' | 'trust'): void {
    const trust = this.state.material.trust;
    for (const sock of this.sockets) {
      const s = sock[kConn];
      if (!s?.verdict.accepted || s.closedFor) continue;
      if (why === 'trust' || this.revocation.needsChain) this.#completeChain(s, sock);
      let reason: string | undefined;
      let detail = '';
      if (why === 'trust' && s.verdict.leaf && !stillTrusted(s.verdict, trust)) {
        reason = 'unknown_ca';
        detail = 'The client CA bundle no longer trusts this peer.';
      } else {
        const r = this.revocation.check(s.verdict);
        if (!r.ok && r.reason === 'revoked') {
          reason = r.reason;
          detail = r.detail;
        }
      }
      if (!reason) continue;
      s.closedFor = reason;
      this.log.warn(
        {
          event: 'connection_closed',
          reason,
          detail,
          peer: s.peer,
          subject: s.verdict.subject,
          identity: s.verdict.identity,
        },
        'open connection closed: the peer is no longer accepted',
      );
      proxyChannels.closed.publish({ listener: this.name, reason });
      sock.destroy();
    }
  }

  async close(): Promise<void> {
    if (this.#ticketTimer) clearTimeout(this.#ticketTimer);
    await this.revocation.close();
  }
}

function stillTrusted(v: Verdict, trust: readonly Certificate[]): boolean {
  return verifyCertificate(v.leaf!, {
    trust,
    intermediates: parseIntermediates(v.chain),
    purpose: 'client',
    strict: false,
  }).ok;
}
