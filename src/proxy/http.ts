// An HTTP listener of mtls proxy: HTTP/2 and HTTP/1.1 (ALPN) over TLS with a client certificate
// requested, a verdict per connection, revocation and allow rules per request, and forwarding with
// undici to an HTTP/1.1, h2c (gRPC) or unix-socket upstream.
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import { performance } from 'node:perf_hooks';
import { MtlsError } from '../errors/index.js';
import { encodePem, formatName } from '../pki/index.js';
import { proxyChannels, type Logger } from '../telemetry/index.js';
import { forwardHeaders, isClientAbort, upstreamFor } from './forward.js';
import type { TicketKeys } from './material.js';
import {
  kConn,
  ListenerCore,
  type ConnState,
  type PreparedListener,
  type TrackedSocket,
} from './listener.js';
import { firstAllowed } from './policy.js';
import { identitiesOf, type Verdict } from './verdict.js';

export interface RunningListener {
  name: string;
  host: string;
  port: number;
  core: ListenerCore;
  /** Swaps in a prepared configuration (see ListenerCore.apply); in-flight requests are not touched. */
  apply(next: PreparedListener): void;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

export interface HttpListenerOptions {
  prepared: PreparedListener;
  tickets: TicketKeys;
  logger: Logger;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

function quoteXfcc(v: string): string {
  return /[,;="\s]/.test(v) ? `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"` : v;
}

/** Envoy's x-forwarded-client-cert element for an accepted peer. */
export function xfccValue(v: Verdict, by: string | undefined): string {
  const parts: string[] = [];
  if (by) parts.push(`By=${quoteXfcc(by)}`);
  if (v.chain[0]) parts.push(`Hash=${createHash('sha256').update(v.chain[0]).digest('hex')}`);
  if (v.subject !== undefined)
    parts.push(`Subject="${v.subject.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`);
  const uri = v.leaf?.subjectAltNames.flatMap((n) => (n.type === 'uri' ? [n.value] : [])).at(0);
  if (uri) parts.push(`URI=${quoteXfcc(uri)}`);
  for (const d of v.dnsNames) parts.push(`DNS=${quoteXfcc(d)}`);
  return parts.join(';');
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  if (!m)
    throw new MtlsError('MTLS_CONFIG_INVALID', `"${listen}" is not host:port.`, {
      fix: 'Write 127.0.0.1:8443.',
    });
  return { host: m[1]!, port: Number(m[2]) };
}

/** Listens on `listen`; rejects with MTLS_PROXY_LISTEN naming the address. */
export async function listenOn(
  server: {
    once: (e: 'error', f: (e: NodeJS.ErrnoException) => void) => unknown;
    off: (e: 'error', f: (e: NodeJS.ErrnoException) => void) => unknown;
    listen: (o: { host: string; port: number }, cb: () => void) => unknown;
    address: () => unknown;
  },
  listen: string,
  what: string,
): Promise<{ host: string; port: number }> {
  const { host, port } = splitHostPort(listen);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void =>
      reject(
        new MtlsError('MTLS_PROXY_LISTEN', `${what} cannot listen on ${listen}: ${e.code ?? e.message}.`, {
          cause: e,
          fix: 'Pick a free port (or stop what uses it); ports below 1024 need privileges.',
        }),
      );
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as { port?: number } | null;
  return { host, port: addr?.port ?? port };
}

/** A path the rules can judge: dot segments resolved; encoded separators refused (throws). */
function authorizablePath(target: string): { path: string; forward: string } {
  if (!target.startsWith('/')) throw new Error('not origin-form');
  // Fast path: nothing to decode or resolve.
  if (!/%|\\|\/\.|\/\//.test(target)) {
    const q = target.indexOf('?');
    return { path: q < 0 ? target : target.slice(0, q), forward: target };
  }
  const u = new URL(target, 'http://upstream.invalid');
  if (/%2f|%5c|\\/i.test(u.pathname)) throw new Error('encoded separator');
  return { path: u.pathname, forward: u.pathname + u.search };
}

/**
 * The identity headers for the upstream, computed once per connection and kind (hashing the leaf for
 * XFCC on every request was a measurable share of the keep-alive profile). `failed` is the reason a
 * peer is not authenticated (permissive mode forwards it as X-Client-Verify: FAILED:<reason>).
 */
function identityHeaders(
  conn: ConnState,
  kind: 'xfcc' | 'simple' | 'none',
  by: string | undefined,
  failed: string | undefined,
): Record<string, string> {
  const key = `${kind}|${by ?? ''}|${failed ?? ''}`;
  if (conn.identityHeaders && conn.identityKey === key) return conn.identityHeaders;
  const v = conn.verdict;
  const out: Record<string, string> = {};
  if (kind === 'xfcc' && failed === undefined) out['x-forwarded-client-cert'] = xfccValue(v, by);
  if (kind === 'simple') {
    out['x-client-verify'] =
      failed === undefined ? 'SUCCESS' : failed === 'no_client_cert' ? 'NONE' : `FAILED:${failed}`;
    if (failed === undefined) {
      if (v.spiffeId) out['x-client-spiffe-id'] = v.spiffeId;
      if (v.leaf) out['x-client-dn'] = formatName(v.leaf.subject);
      if (v.chain[0]) out['x-client-cert'] = encodeURIComponent(encodePem('CERTIFICATE', v.chain[0]));
    }
  }
  conn.identityHeaders = out;
  conn.identityKey = key;
  return out;
}

export async function startHttpListener(opts: HttpListenerOptions): Promise<RunningListener> {
  const core = new ListenerCore(opts.prepared, opts.tickets, opts.logger);
  const log = core.log;
  const limits = opts.prepared.config.limits;
  let upstreamKey = opts.prepared.config.upstream;
  let upstream = upstreamFor(upstreamKey);
  const sessions = new Set<Http2Session>();
  let closing = false;

  const serverOptions = {
    allowHTTP1: true,
    ...core.contextOptions(),
    // The one place the project does this: OpenSSL still verifies; classifyPeer reads its verdict,
    // and nothing reaches the upstream unless that verdict is accepted (strict mode).
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: limits.handshakeTimeout,
    maxSessionMemory: 16,
    settings: { maxHeaderListSize: limits.maxHeaderSize },
  };
  const server = createSecureServer(serverOptions);
  core.attach(server);
  // HTTP/1.1 connections are served by node:http's machinery with these server fields.
  const h1 = server as unknown as {
    connectionsCheckingInterval: number;
    headersTimeout: number;
    requestTimeout: number;
    maxHeaderSize: number;
    keepAliveTimeout: number;
  };
  h1.headersTimeout = limits.headersTimeout;
  // How often node:http looks for requests past headersTimeout (slowloris); read at 'listening', and
  // the constructor's 30 s default ignores the option of that name.
  h1.connectionsCheckingInterval = Math.min(1_000, limits.headersTimeout);
  h1.requestTimeout = 0;
  h1.maxHeaderSize = limits.maxHeaderSize;
  h1.keepAliveTimeout = limits.idleTimeout;
  server.setTimeout(limits.idleTimeout);

  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (closing) session.close();
  });

  const reply = (
    req: Req,
    res: Res,
    status: number,
    body: Record<string, unknown>,
    decision: string,
  ): void => {
    const data = JSON.stringify(body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(data),
      // The proxy's own answers: not to be cached, sniffed or fetched over plain HTTP.
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      'strict-transport-security': 'max-age=31536000',
    };
    if (status === 503) headers['retry-after'] = 5;
    // An HTTP/1.1 connection whose verdict is not accepted will never be: do not keep it.
    if (req.httpVersionMajor === 1 && (status === 401 || closing)) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(data);
    proxyChannels.request.publish({ listener: core.name, status, decision, rule: '' });
  };

  const handle = async (req: Req, res: Res): Promise<void> => {
    const sock = req.socket as TrackedSocket;
    const conn = core.connState(sock);
    const { config: cfg, material } = core.state;
    conn.requests++;
    conn.active++;
    res.once('close', () => {
      conn.active--;
      if (closing && req.httpVersionMajor === 1 && conn.active === 0) sock.destroy();
    });
    const requestId = randomUUID();
    const v = conn.verdict;
    const method = (req.method ?? 'GET').toUpperCase();
    const target = req.url ?? '/';
    const facts = { requestId, peer: conn.peer, method, subject: v.subject, issuer: v.issuer };

    const admission = core.admit(conn, sock);
    const authenticated = admission.ok;
    if (!admission.ok && (cfg.mode === 'strict' || admission.status === 503)) {
      const unauth = admission.status === 401;
      log.warn(
        {
          event: 'request_refused',
          status: admission.status,
          reason: admission.reason,
          detail: admission.detail,
          ...facts,
          path: target.split('?')[0],
        },
        unauth ? 'refused: not authenticated' : 'refused: revocation status unavailable',
      );
      reply(
        req,
        res,
        admission.status,
        {
          code: unauth ? 'MTLS_PROXY_UNAUTHENTICATED' : 'MTLS_PROXY_REVOCATION_UNAVAILABLE',
          reason: admission.reason,
          requestId,
          ...(cfg.explain ? { detail: admission.detail } : {}),
        },
        unauth ? 'unauthenticated' : 'revocation_unavailable',
      );
      return;
    }
    // Authorize the path the upstream will see: dot segments resolved, no encoded separators.
    let path: string;
    let forwardPath: string;
    try {
      ({ path, forward: forwardPath } = authorizablePath(target));
    } catch {
      log.warn(
        { event: 'request_refused', status: 400, reason: 'bad_request_target', ...facts },
        'refused: bad request target',
      );
      reply(
        req,
        res,
        400,
        { code: 'MTLS_PROXY_BAD_REQUEST', message: 'The request target cannot be authorized.', requestId },
        'bad_request',
      );
      return;
    }
    let rule = '';
    if (authenticated && cfg.allow) {
      const i = firstAllowed(cfg.allow, (conn.identities ??= identitiesOf(v)), method, path);
      if (i < 0) {
        const detail = `${v.identity ?? v.subject} may not ${method} ${path} on this listener (no allow rule matches).`;
        log.warn(
          {
            event: 'request_refused',
            status: 403,
            reason: 'identity_not_allowed',
            detail,
            identity: v.identity,
            ...facts,
            path,
          },
          'refused: not allowed',
        );
        reply(
          req,
          res,
          403,
          {
            code: 'MTLS_PROXY_FORBIDDEN',
            reason: 'identity_not_allowed',
            requestId,
            ...(cfg.explain ? { detail } : {}),
          },
          'forbidden',
        );
        return;
      }
      rule = cfg.allow === 'any' ? 'any' : String(i);
    }
    const h2 = req.httpVersionMajor === 2;
    const headers = forwardHeaders(req.headers, h2);
    headers['x-request-id'] = requestId;
    headers['x-forwarded-proto'] = 'https';
    const xff = headers['x-forwarded-for'];
    headers['x-forwarded-for'] = `${typeof xff === 'string' ? `${xff}, ` : ''}${sock.remoteAddress ?? ''}`;
    Object.assign(
      headers,
      identityHeaders(conn, cfg.identity.headers, material.by, admission.ok ? undefined : admission.reason),
    );
    const hasBody =
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') ||
      req.headers['transfer-encoding'] !== undefined ||
      (h2 && !(req as Http2ServerRequest).stream.endAfterHeaders);
    const started = performance.now();
    try {
      await upstream.forward({
        path: forwardPath,
        method,
        headers,
        body: hasBody ? req : null,
        res: res,
        trailers: h2,
        onStart: (status) =>
          proxyChannels.request.publish({
            listener: core.name,
            status,
            decision: 'forwarded',
            rule,
            unauthenticated: !authenticated,
            upstreamSeconds: (performance.now() - started) / 1000,
          }),
      });
    } catch (e) {
      // The client went away first: nothing to answer, not an upstream failure.
      if (isClientAbort(e) || res.destroyed) return;
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      proxyChannels.upstreamError.publish({ listener: core.name, code });
      log.error(
        { event: 'upstream_error', err: (e as Error).message, code, ...facts, path },
        'upstream failed',
      );
      if (!res.headersSent)
        reply(
          req,
          res,
          502,
          { code: 'MTLS_PROXY_UPSTREAM', message: 'The upstream could not be reached.', requestId },
          'upstream_error',
        );
      else res.destroy();
    }
  };
  server.on('request', (req: Req, res: Res) => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: (e as Error).message }, 'request handler failed');
      res.destroy();
    });
  });

  let bound: { host: string; port: number };
  try {
    bound = await listenOn(server, opts.prepared.config.listen, `Listener ${core.name}`);
  } catch (e) {
    await core.close();
    await upstream.close();
    throw e;
  }

  return {
    name: core.name,
    host: bound.host,
    port: bound.port,
    core,
    apply(next) {
      core.apply(next);
      if (next.config.upstream !== upstreamKey) {
        const old = upstream;
        upstream = upstreamFor(next.config.upstream);
        upstreamKey = next.config.upstream;
        // In-flight requests on the old upstream finish; then its connections close.
        void old.close().catch(() => undefined);
      }
    },
    close: async (graceMs = 10_000) => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      for (const sock of core.sockets)
        if (sock.alpnProtocol !== 'h2' && (sock[kConn]?.active ?? 0) === 0) sock.destroy();
      const timer = setTimeout(() => {
        for (const sock of core.sockets) sock.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      await core.close();
      await upstream.close();
    },
  };
}
