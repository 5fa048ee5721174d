// A TCP listener of mtls proxy: TLS terminated with a client certificate requested, the same verdict,
// revocation and identity rules as HTTP listeners, then a plaintext TCP connection to the upstream,
// optionally opened with a PROXY protocol v2 header that carries the client's address and identity.
import { randomUUID } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { createServer } from 'node:tls';
import type { Certificate } from '../pki/index.js';
import type { Logger } from '../telemetry/index.js';
import { proxyChannels } from '../telemetry/index.js';
import { parseUpstream } from './config.js';
import { listenOn, type RunningListener } from './http.js';
import { ListenerCore, type PreparedListener, type TrackedSocket } from './listener.js';
import type { TicketKeys } from './material.js';
import { firstAllowed } from './policy.js';
import { identitiesOf } from './verdict.js';

export interface TcpListenerOptions {
  prepared: PreparedListener;
  tickets: TicketKeys;
  logger: Logger;
  /** Builds the PROXY v2 header for an admitted connection (identity.proxyProtocol: v2). */
  proxyHeader?: (
    sock: TrackedSocket,
    connectionId: string,
    known: { leaf: Certificate | undefined; own: Certificate | undefined },
  ) => Buffer;
}

export async function startTcpListener(opts: TcpListenerOptions): Promise<RunningListener> {
  const core = new ListenerCore(opts.prepared, opts.tickets, opts.logger);
  const log = core.log;
  const limits = opts.prepared.config.limits;
  const upstreams = new Set<Socket>();
  const server = createServer({
    ...core.contextOptions(),
    // OpenSSL verifies; the verdict is read by ListenerCore and nothing is connected upstream unless
    // it is accepted (strict mode).
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: limits.handshakeTimeout,
  });
  core.attach(server);

  server.on('secureConnection', (sock: TrackedSocket) => {
    const conn = core.connState(sock);
    const { config: cfg } = core.state;
    const id = randomUUID();
    const v = conn.verdict;
    const facts = { connectionId: id, peer: conn.peer, subject: v.subject, issuer: v.issuer };
    sock.setTimeout(limits.idleTimeout, () => sock.destroy());
    sock.on('error', () => undefined);
    const admission = core.admit(conn, sock);
    const refuse = (reason: string, detail: string): void => {
      log.warn(
        { event: 'connection_refused', reason, detail, identity: v.identity, ...facts },
        'connection refused',
      );
      proxyChannels.closed.publish({ listener: core.name, reason });
      conn.requests++; // logged here, not again at close
      sock.destroy();
    };
    if (!admission.ok && (cfg.mode === 'strict' || admission.status === 503)) {
      refuse(admission.reason, admission.detail);
      return;
    }
    if (admission.ok && cfg.allow && firstAllowed(cfg.allow, identitiesOf(v), 'GET', '/') < 0) {
      refuse(
        'identity_not_allowed',
        `${v.identity ?? v.subject} may not connect to this listener (no allow rule matches).`,
      );
      return;
    }
    conn.requests++;
    const target = parseUpstream(cfg);
    if (target.kind !== 'tcp') return void sock.destroy();
    sock.pause();
    const up = connect({ host: target.host, port: target.port });
    upstreams.add(up);
    up.setNoDelay(true);
    up.once('connect', () => {
      if (cfg.identity.proxyProtocol === 'v2' && opts.proxyHeader)
        up.write(opts.proxyHeader(sock, id, { leaf: v.leaf, own: core.state.material.own[0] }));
      sock.pipe(up);
      up.pipe(sock);
      sock.resume();
      log.info({ event: 'connection_forwarded', identity: v.identity, ...facts }, 'connection forwarded');
    });
    up.on('error', (e: NodeJS.ErrnoException) => {
      proxyChannels.upstreamError.publish({ listener: core.name, code: e.code ?? 'error' });
      log.error({ event: 'upstream_error', err: e.message, code: e.code, ...facts }, 'upstream failed');
      sock.destroy();
    });
    up.once('close', () => {
      upstreams.delete(up);
      sock.destroy();
    });
    sock.once('close', () => up.destroy());
  });

  let bound: { host: string; port: number };
  try {
    bound = await listenOn(server, opts.prepared.config.listen, `Listener ${core.name}`);
  } catch (e) {
    await core.close();
    throw e;
  }
  return {
    name: core.name,
    host: bound.host,
    port: bound.port,
    core,
    apply: (next) => core.apply(next),
    close: async (graceMs = 10_000) => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => {
        for (const s of core.sockets) s.destroy();
        for (const u of upstreams) u.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      await core.close();
    },
  };
}
