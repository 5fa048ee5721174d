// Forwarding a request to the upstream and streaming the answer back.
//
// HTTP/1.1 and unix-socket upstreams go through undici's dispatch() with a handler that writes into
// the client's response directly (no intermediate Readable, no pipeline: the proxy's hot path).
// h2c upstreams (gRPC) go through node:http2: undici 7.30's HTTP/2 client loses response trailers
// (its 'trailers' handler hands Node's header object to a parser that expects a flat array), and
// gRPC's status lives in the trailers.
import { connect as h2connect, constants as h2c, type ClientHttp2Session } from 'node:http2';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import { parseUpstream } from './config.js';

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

export type HeaderMap = Record<string, string | string[]>;

function connectionTokens(v: string | string[] | undefined): Set<string> | undefined {
  if (v === undefined) return undefined;
  return new Set(
    String(v)
      .split(',')
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean),
  );
}

/**
 * The client's request headers minus hop-by-hop ones and minus every identity header (those come only
 * from the proxy). `te: trailers` stays: gRPC needs it and HTTP/2 allows exactly that value.
 */
export function forwardHeaders(incoming: IncomingHttpHeaders, h2: boolean): HeaderMap {
  const tokens = connectionTokens(incoming.connection);
  const out: HeaderMap = {};
  for (const k in incoming) {
    const v = incoming[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* : */) continue;
    if (HOP_BY_HOP.has(k) || tokens?.has(k)) {
      if (k === 'te' && v === 'trailers') out.te = v;
      continue;
    }
    if (k === 'x-forwarded-client-cert' || k.startsWith('x-client-')) continue;
    out[k] = v;
  }
  if (h2 && out.host === undefined && typeof incoming[':authority'] === 'string')
    out.host = incoming[':authority'];
  return out;
}

/** The upstream's response headers minus hop-by-hop ones and HTTP/2 pseudo-headers. */
export function responseHeaders(incoming: Record<string, string | string[] | number | undefined>): HeaderMap {
  const tokens = connectionTokens(incoming.connection as string | undefined);
  const out: HeaderMap = {};
  for (const k in incoming) {
    const v = incoming[k];
    if (v === undefined || k.charCodeAt(0) === 58) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || tokens?.has(lk)) continue;
    out[lk] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}

/** What the forwarder writes the answer into: node:http's or node:http2's compat response. */
export interface ResponseSink {
  writeHead(status: number, headers: HeaderMap): unknown;
  write(chunk: Buffer): boolean;
  end(): unknown;
  once(event: 'drain' | 'close', cb: () => void): unknown;
  destroy(err?: Error): unknown;
  readonly headersSent: boolean;
  readonly writableFinished: boolean;
  /** HTTP/2 compat responses only. */
  addTrailers?(headers: OutgoingHttpHeaders): void;
}

export interface ForwardRequest {
  path: string;
  method: string;
  headers: HeaderMap;
  body: Readable | null;
  res: ResponseSink;
  /** Pass response trailers on (the client speaks HTTP/2). */
  trailers: boolean;
  /** Called once with the upstream's status, when its headers arrive. */
  onStart(status: number): void;
}

export interface Upstream {
  /** Resolves when the answer is complete; rejects on failure (headersSent tells whether a 502 can still go out). */
  forward(r: ForwardRequest): Promise<void>;
  close(): Promise<void>;
}

class AbortedByClient extends Error {
  constructor() {
    super('the client went away');
    this.name = 'AbortedByClient';
  }
}

export function isClientAbort(e: unknown): boolean {
  return e instanceof AbortedByClient;
}

/** undici dispatch handler that streams straight into the client's response with backpressure. */
class ResponseWriter implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #started = false;

  constructor(
    private readonly r: ForwardRequest,
    private readonly done: (err?: Error) => void,
  ) {
    r.res.once('close', () => {
      if (!r.res.writableFinished && this.#controller && !this.#controller.aborted)
        this.#controller.abort(new AbortedByClient());
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200 || this.#started) return;
    this.#started = true;
    this.r.res.writeHead(statusCode, responseHeaders(headers));
    this.r.onStart(statusCode);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.r.res.write(chunk)) {
      controller.pause();
      this.r.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    if (this.r.trailers && this.r.res.addTrailers) {
      const t = responseHeaders(trailers);
      if (Object.keys(t).length) this.r.res.addTrailers(t);
    }
    this.r.res.end();
    this.done();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.done(err);
  }
}

class UndiciUpstream implements Upstream {
  constructor(private readonly pool: Dispatcher) {}

  forward(r: ForwardRequest): Promise<void> {
    return new Promise((resolve, reject) => {
      const handler = new ResponseWriter(r, (err) => (err ? reject(err) : resolve()));
      this.pool.dispatch({ path: r.path, method: r.method, headers: r.headers, body: r.body }, handler);
    });
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** HTTP/2 cleartext with prior knowledge over node:http2: one multiplexed session, reopened when it ends. */
class H2cUpstream implements Upstream {
  #session: ClientHttp2Session | undefined;
  #closed = false;

  constructor(
    private readonly origin: string,
    private readonly authority: string,
  ) {}

  #get(): ClientHttp2Session {
    const s = this.#session;
    if (s && !s.closed && !s.destroyed) return s;
    const next = h2connect(this.origin);
    next.on('error', () => undefined);
    next.once('close', () => {
      if (this.#session === next) this.#session = undefined;
    });
    next.once('goaway', () => {
      if (this.#session === next) this.#session = undefined;
    });
    this.#session = next;
    return next;
  }

  forward(r: ForwardRequest): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('upstream closed'));
    return new Promise((resolve, reject) => {
      const headers: OutgoingHttpHeaders = {
        ...r.headers,
        [h2c.HTTP2_HEADER_METHOD]: r.method,
        [h2c.HTTP2_HEADER_PATH]: r.path,
        [h2c.HTTP2_HEADER_AUTHORITY]: typeof r.headers.host === 'string' ? r.headers.host : this.authority,
      };
      delete headers.host;
      const stream = this.#get().request(headers, { endStream: r.body === null });
      let started = false;
      let trailers: HeaderMap = {};
      r.res.once('close', () => {
        if (!r.res.writableFinished && !stream.destroyed) stream.close(h2c.NGHTTP2_CANCEL);
      });
      stream.once('response', (h) => {
        started = true;
        const status = Number(h[h2c.HTTP2_HEADER_STATUS]);
        r.res.writeHead(status, responseHeaders(h));
        r.onStart(status);
      });
      stream.once('trailers', (t: IncomingHttpHeaders) => (trailers = responseHeaders(t)));
      stream.on('data', (chunk: Buffer) => {
        if (!r.res.write(chunk)) {
          stream.pause();
          r.res.once('drain', () => stream.resume());
        }
      });
      stream.once('end', () => {
        if (!started) return reject(new Error('the upstream ended the stream without a response'));
        if (r.trailers && r.res.addTrailers && Object.keys(trailers).length) r.res.addTrailers(trailers);
        r.res.end();
        resolve();
      });
      stream.once('error', (e: Error) => reject(e));
      stream.once('close', () => {
        if (!started) reject(new Error(`the upstream closed the stream (code ${stream.rstCode})`));
      });
      if (r.body) r.body.pipe(stream);
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    const s = this.#session;
    this.#session = undefined;
    if (!s || s.closed) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }
}

/** The upstream of an HTTP listener, by its URL. */
export function upstreamFor(upstream: string): Upstream {
  const u = parseUpstream({ protocol: 'http', upstream });
  switch (u.kind) {
    case 'h2c':
      return new H2cUpstream(u.origin, new URL(u.origin).host);
    case 'unix':
      return new UndiciUpstream(
        new Pool('http://localhost', { socketPath: u.socketPath, connections: 256, keepAliveTimeout: 4_000 }),
      );
    case 'http':
      return new UndiciUpstream(new Pool(u.origin, { connections: 256, keepAliveTimeout: 4_000 }));
    default:
      throw new Error(`an HTTP listener cannot forward to ${upstream}`);
  }
}
