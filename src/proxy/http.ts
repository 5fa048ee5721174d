// An HTTP listener of mtls proxy: HTTP/2 and HTTP/1.1 (ALPN) over TLS with a client certificate
// requested, a verdict per connection, allow rules per request, and forwarding with undici.
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import {
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type Http2Session,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { MtlsError } from '../errors/index.js';
import { encodePem, formatName, readCertificates, type Certificate } from '../pki/index.js';
import { proxyChannels, type Logger } from '../telemetry/index.js';
import type { ListenerConfig } from './config.js';
import { firstAllowed } from './policy.js';
import { classifyPeer, type Verdict } from './verdict.js';

export interface RunningListener {
  name: string;
  host: string;
  port: number;
  /** Stops accepting, lets in-flight requests finish (up to graceMs), then closes the rest. */
  close(graceMs?: number): Promise<void>;
}

export interface HttpListenerOptions {
  config: ListenerConfig;
  logger: Logger;
}

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

interface ConnState {
  verdict: Verdict;
  requests: number;
  active: number;
  peer: string;
}

const kConn = Symbol('mtls.proxy.conn');
type TrackedSocket = TLSSocket & { [kConn]?: ConnState };

/** Hop-by-hop headers (RFC 9110 7.6.1) and those undici or HTTP/2 refuse; never forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'expect',
  'http2-settings',
]);

export function splitHostPort(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(listen);
  if (!m)
    throw new MtlsError('MTLS_CONFIG_INVALID', `"${listen}" is not host:port.`, {
      fix: 'Write 127.0.0.1:8443.',
    });
  return { host: m[1]!, port: Number(m[2]) };
}

function readTlsFile(path: string, what: string, listener: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new MtlsError('MTLS_PROXY_TLS_CONFIG', `Listener ${listener}: cannot read the ${what} ${path}.`, {
      cause: e,
      fix: `Check the tls.${what} path (relative paths are relative to the config file).`,
    });
  }
}

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

/** Every identity a peer can be matched by: its SPIFFE ID, dns: names and cn:. */
function identitiesOf(v: Verdict): string[] {
  const out: string[] = [];
  if (v.spiffeId) out.push(v.spiffeId);
  for (const d of v.dnsNames) out.push(`dns:${d}`);
  for (const rdn of v.leaf?.subject ?? [])
    for (const a of rdn) if (a.oid === '2.5.4.3') out.push(`cn:${a.value}`);
  return out;
}

export async function startHttpListener(opts: HttpListenerOptions): Promise<RunningListener> {
  const cfg = opts.config;
  const log = opts.logger.child({ listener: cfg.name });
  const cert = readTlsFile(cfg.tls.cert, 'cert', cfg.name);
  const key = readTlsFile(cfg.tls.key, 'key', cfg.name);
  const clientCaPem = readTlsFile(cfg.tls.clientCa, 'clientCa', cfg.name);
  let trust: Certificate[];
  let own: Certificate | undefined;
  try {
    trust = readCertificates(clientCaPem, cfg.tls.clientCa);
    own = readCertificates(cert, cfg.tls.cert)[0];
  } catch (e) {
    throw new MtlsError('MTLS_PROXY_TLS_CONFIG', `Listener ${cfg.name}: ${(e as Error).message}`, {
      cause: e,
      fix: 'tls.cert and tls.clientCa must hold PEM certificates.',
    });
  }
  const by = own?.subjectAltNames.flatMap((n) => (n.type === 'uri' ? [n.value] : [])).at(0);
  const pool = new Pool(new URL(cfg.upstream).origin, { connections: 256, keepAliveTimeout: 4_000 });
  const sockets = new Set<TrackedSocket>();
  const sessions = new Set<Http2Session>();
  let closing = false;

  let server;
  try {
    server = createSecureServer({
      allowHTTP1: true,
      cert,
      key,
      ca: clientCaPem,
      // The one place the project does this: OpenSSL still verifies; classifyPeer reads its verdict.
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: cfg.tls.minVersion,
    });
  } catch (e) {
    throw new MtlsError(
      'MTLS_PROXY_TLS_CONFIG',
      `Listener ${cfg.name}: the TLS material is not usable: ${(e as Error).message}`,
      {
        cause: e,
        fix: 'tls.key must be the unencrypted key of tls.cert (PEM); tls.clientCa a PEM bundle.',
      },
    );
  }

  const stateOf = (sock: TrackedSocket): ConnState => {
    let s = sock[kConn];
    if (!s) {
      const verdict = classifyPeer(sock, { trust });
      s = { verdict, requests: 0, active: 0, peer: `${sock.remoteAddress}:${sock.remotePort}` };
      sock[kConn] = s;
      proxyChannels.handshake.publish({
        listener: cfg.name,
        result: verdict.accepted ? 'accepted' : verdict.reason,
      });
    }
    return s;
  };

  server.on('secureConnection', (sock: TrackedSocket) => {
    const s = stateOf(sock);
    sockets.add(sock);
    sock.once('close', () => {
      sockets.delete(sock);
      // A refused peer that never sent a request is logged once here (requests log themselves).
      if (!s.verdict.accepted && s.requests === 0 && cfg.mode === 'strict')
        log.warn(
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
  server.on('session', (session: Http2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    if (closing) session.close();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, sock: TLSSocket) => {
    const protocol =
      /VERSION|NO_SHARED_CIPHER|NO_PROTOCOLS|UNSUPPORTED_PROTOCOL|NO_APPLICATION_PROTOCOL/.test(
        err.code ?? err.message,
      );
    if (protocol) proxyChannels.handshake.publish({ listener: cfg.name, result: 'protocol_mismatch' });
    log.info(
      {
        event: 'handshake_failed',
        reason: protocol ? 'protocol_mismatch' : undefined,
        error: err.code ?? err.message,
        peer: `${sock.remoteAddress}:${sock.remotePort}`,
      },
      'TLS handshake failed',
    );
  });

  const reply = (req: Req, res: Res, status: number, body: Record<string, unknown>): void => {
    const data = JSON.stringify(body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(data),
    };
    // An HTTP/1.1 connection whose verdict is not accepted will never be: do not keep it.
    if (req.httpVersionMajor === 1 && (status === 401 || closing)) headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(data);
    proxyChannels.request.publish({ listener: cfg.name, status });
  };

  const handle = async (req: Req, res: Res): Promise<void> => {
    const sock = req.socket as TrackedSocket;
    const conn = stateOf(sock);
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

    if (!v.accepted && cfg.mode === 'strict') {
      log.warn(
        {
          event: 'request_refused',
          status: 401,
          reason: v.reason,
          detail: v.detail,
          ...facts,
          path: target.split('?')[0],
        },
        'refused: not authenticated',
      );
      reply(req, res, 401, {
        code: 'MTLS_PROXY_UNAUTHENTICATED',
        reason: v.reason,
        requestId,
        ...(cfg.explain ? { detail: v.detail } : {}),
      });
      return;
    }
    // Authorize the path the upstream will see: dot segments resolved, no encoded separators.
    let path: string;
    let forwardPath: string;
    try {
      if (!target.startsWith('/')) throw new Error('not origin-form');
      const u = new URL(target, 'http://upstream.invalid');
      path = u.pathname;
      forwardPath = u.pathname + u.search;
      if (/%2f|%5c|\\/i.test(path)) throw new Error('encoded separator');
    } catch {
      log.warn(
        { event: 'request_refused', status: 400, reason: 'bad_request_target', ...facts },
        'refused: bad request target',
      );
      reply(req, res, 400, {
        code: 'MTLS_PROXY_BAD_REQUEST',
        message: 'The request target cannot be authorized.',
        requestId,
      });
      return;
    }
    if (v.accepted && cfg.allow) {
      const rule = firstAllowed(cfg.allow, identitiesOf(v), method, path);
      if (rule < 0) {
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
        reply(req, res, 403, {
          code: 'MTLS_PROXY_FORBIDDEN',
          reason: 'identity_not_allowed',
          requestId,
          ...(cfg.explain ? { detail } : {}),
        });
        return;
      }
    }
    const headers = forwardHeaders(req.headers, req.httpVersionMajor === 2);
    headers['x-request-id'] = requestId;
    headers['x-forwarded-proto'] = 'https';
    const xff = headers['x-forwarded-for'];
    headers['x-forwarded-for'] = `${typeof xff === 'string' ? `${xff}, ` : ''}${sock.remoteAddress ?? ''}`;
    if (cfg.identity.headers === 'xfcc' && v.accepted) headers['x-forwarded-client-cert'] = xfccValue(v, by);
    if (cfg.identity.headers === 'simple') {
      headers['x-client-verify'] = v.accepted
        ? 'SUCCESS'
        : v.reason === 'no_client_cert'
          ? 'NONE'
          : `FAILED:${v.reason}`;
      if (v.accepted) {
        if (v.spiffeId) headers['x-client-spiffe-id'] = v.spiffeId;
        if (v.leaf) headers['x-client-dn'] = formatName(v.leaf.subject);
        if (v.chain[0]) headers['x-client-cert'] = encodeURIComponent(encodePem('CERTIFICATE', v.chain[0]));
      }
    }
    const hasBody =
      (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0') ||
      req.headers['transfer-encoding'] !== undefined ||
      (req.httpVersionMajor === 2 && !(req as Http2ServerRequest).stream.endAfterHeaders);
    const ac = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) ac.abort();
    });
    try {
      const up = await pool.request({
        path: forwardPath,
        method,
        headers,
        body: hasBody ? req : null,
        signal: ac.signal,
      });
      res.writeHead(up.statusCode, responseHeaders(up.headers));
      proxyChannels.request.publish({
        listener: cfg.name,
        status: up.statusCode,
        unauthenticated: !v.accepted,
      });
      await pipeline(up.body, res);
    } catch (e) {
      if (ac.signal.aborted) return;
      log.error(
        {
          event: 'upstream_error',
          err: (e as Error).message,
          code: (e as NodeJS.ErrnoException).code,
          ...facts,
          path,
        },
        'upstream failed',
      );
      if (!res.headersSent)
        reply(req, res, 502, {
          code: 'MTLS_PROXY_UPSTREAM',
          message: 'The upstream could not be reached.',
          requestId,
        });
      else res.destroy();
    }
  };
  server.on('request', (req: Req, res: Res) => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: (e as Error).message }, 'request handler failed');
      res.destroy();
    });
  });

  const { host, port } = splitHostPort(cfg.listen);
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void =>
      reject(
        new MtlsError(
          'MTLS_PROXY_LISTEN',
          `Listener ${cfg.name} cannot listen on ${cfg.listen}: ${e.code ?? e.message}.`,
          {
            cause: e,
            fix: 'Pick a free port (or stop what uses it); ports below 1024 need privileges.',
          },
        ),
      );
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;

  return {
    name: cfg.name,
    host,
    port: bound,
    close: async (graceMs = 10_000) => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      for (const sock of sockets)
        if (sock.alpnProtocol !== 'h2' && (sock[kConn]?.active ?? 0) === 0) sock.destroy();
      const timer = setTimeout(() => {
        for (const sock of sockets) sock.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
      await pool.close();
    },
  };
}

function forwardHeaders(incoming: IncomingHttpHeaders, h2: boolean): Record<string, string | string[]> {
  const connectionTokens = new Set(
    String(incoming.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(incoming)) {
    if (v === undefined || k.startsWith(':')) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || connectionTokens.has(lk)) continue;
    // Identity headers come only from the proxy: whatever the client sent is dropped.
    if (lk === 'x-forwarded-client-cert' || lk.startsWith('x-client-')) continue;
    out[lk] = v;
  }
  if (h2 && out.host === undefined && typeof incoming[':authority'] === 'string')
    out.host = incoming[':authority'];
  return out;
}

function responseHeaders(
  incoming: Record<string, string | string[] | undefined>,
): Record<string, string | string[]> {
  const connectionTokens = new Set(
    String(incoming.connection ?? '')
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(incoming)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || connectionTokens.has(lk)) continue;
    out[lk] = v;
  }
  return out;
}
