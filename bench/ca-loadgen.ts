// A small closed-loop HTTP/1.1 load generator for the CA benchmarks: N keep-alive connections (plain
// or TLS) to 127.0.0.1, one request in flight on each, bounded in count and in time, with a warm-up.
//
// It writes requests and parses responses on raw sockets instead of going through node:http's
// client: on this machine a node:http client with a keep-alive Agent (maxSockets 8) tops out near
// 29,000 requests/s on its core against a trivial server that serves 40,000+ to a raw client, so it
// would cap the OCSP figures. The protocol handled is the subset the contenders speak: a status line,
// headers, a Content-Length or chunked body, and Connection: close / HTTP/1.0 without keep-alive
// (the connection is then reopened for the next request, and counted).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface LoadTarget {
  /** http://127.0.0.1:PORT or https://127.0.0.1:PORT; nothing else is accepted. */
  url: string;
  /** Trust anchors for https (PEM). */
  ca?: string | Buffer;
  /** Client certificate and key for mTLS listeners (PEM). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface LoadRequest {
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

export interface LoadResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface LoadPhase {
  /** Stop after this many requests were started … */
  count: number;
  /** … or after this many milliseconds, whichever comes first. */
  ms: number;
}

export interface LoadOptions {
  concurrency: number;
  warmup: LoadPhase;
  run: LoadPhase;
  /** Request number i (numbering runs on from the warm-up into the timed phase; never reused). */
  request: (i: number) => LoadRequest;
  /** Throws when a response is wrong; called for every response (keep it cheap). */
  check?: (res: LoadResponse, i: number) => void;
  /** Per-request timeout (default 10 s). */
  timeoutMs?: number;
}

export interface LoadResult {
  /** Requests completed in the timed phase. */
  ops: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Connections opened in the timed phase (equal to concurrency with working keep-alive). */
  connections: number;
  /** Requests used so far, warm-up included (the next free input index). */
  used: number;
}

interface Pending {
  resolve: (r: LoadResponse) => void;
  reject: (e: Error) => void;
}

/** One HTTP/1.1 connection with at most one request in flight. */
class Connection {
  readonly #socket: Socket;
  #buf: Buffer = Buffer.alloc(0);
  #pending: Pending | undefined;
  #closed = false;
  /** The server said it will close after the current response. */
  reusable = true;
  readonly ready: Promise<void>;

  constructor(target: LoadTarget, u: URL) {
    const port = Number(u.port);
    const socket =
      u.protocol === 'https:'
        ? tlsConnect({
            host: u.hostname,
            port,
            ...(target.ca ? { ca: target.ca } : {}),
            ...(target.cert ? { cert: target.cert, key: target.key } : {}),
          })
        : netConnect({ host: u.hostname, port });
    socket.setNoDelay(true);
    this.#socket = socket;
    this.ready = new Promise((resolve, reject) => {
      socket.once(u.protocol === 'https:' ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
      socket.once('close', () => reject(new Error('the connection closed before it was established')));
    });
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (e: Error) => this.#fail(e));
    socket.on('close', () => {
      this.#closed = true;
      this.#fail(new Error('the server closed the connection'));
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(head: Buffer, body: Buffer | undefined): Promise<LoadResponse> {
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#socket.write(body ? Buffer.concat([head, body]) : head);
    });
  }

  close(): void {
    this.#socket.destroy();
  }

  #fail(e: Error): void {
    const p = this.#pending;
    this.#pending = undefined;
    p?.reject(e);
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length ? Buffer.concat([this.#buf, d]) : d;
    if (!this.#pending) return;
    let res: LoadResponse | undefined;
    try {
      res = this.#parse();
    } catch (e) {
      this.#fail(e as Error);
      this.#socket.destroy();
      return;
    }
    if (!res) return;
    const p = this.#pending;
    this.#pending = undefined;
    p.resolve(res);
  }

  /** One complete response from the buffer, or undefined when more bytes are needed. */
  #parse(): LoadResponse | undefined {
    const buf = this.#buf;
    const headEnd = buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return undefined;
    const lines = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
    const statusLine = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0] ?? '');
    if (!statusLine) throw new Error(`not an HTTP response: ${JSON.stringify(lines[0])}`);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    let body: Buffer;
    let end: number;
    const start = headEnd + 4;
    if ((headers['transfer-encoding'] ?? '').toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let at = start;
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at);
        if (lineEnd < 0) return undefined;
        const size = parseInt(buf.subarray(at, lineEnd).toString('latin1'), 16);
        if (size === 0) {
          // No trailers expected: "0\r\n\r\n".
          if (buf.length < lineEnd + 4) return undefined;
          end = lineEnd + 4;
          break;
        }
        if (buf.length < lineEnd + 2 + size + 2) return undefined;
        parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      end = start + Number(headers['content-length']);
      if (buf.length < end) return undefined;
      body = buf.subarray(start, end);
    } else {
      throw new Error('a response without Content-Length or chunked encoding');
    }
    this.#buf = buf.subarray(end);
    const connection = (headers.connection ?? '').toLowerCase();
    this.reusable = statusLine[1] === '1' ? connection !== 'close' : connection === 'keep-alive';
    return { status: Number(statusLine[2]), headers, body };
  }
}

function headOf(u: URL, r: LoadRequest): Buffer {
  const lines = [`${r.method} ${r.path} HTTP/1.1`, `Host: ${u.host}`, 'Connection: keep-alive'];
  for (const [k, v] of Object.entries(r.headers ?? {})) lines.push(`${k}: ${v}`);
  if (r.body) lines.push(`Content-Length: ${r.body.length}`);
  return Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1');
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Runs the warm-up, then the timed phase; rejects on the first failed request. */
export async function runLoad(target: LoadTarget, opts: LoadOptions): Promise<LoadResult> {
  const u = new URL(target.url);
  if (u.hostname !== '127.0.0.1')
    throw new Error(`the load generator only talks to 127.0.0.1, not ${u.host}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let next = 0;
  let opened = 0;
  let failed = false;
  const conns: Connection[] = [];
  const open = async (): Promise<Connection> => {
    const c = new Connection(target, u);
    opened++;
    conns.push(c);
    await c.ready;
    return c;
  };

  const phase = async (p: LoadPhase, latencies: Float64Array | undefined): Promise<number> => {
    const stopCount = next + p.count;
    const deadline = performance.now() + p.ms;
    let done = 0;
    const worker = async (): Promise<void> => {
      let conn: Connection | undefined;
      while (!failed && next < stopCount && performance.now() < deadline) {
        const i = next++;
        const r = opts.request(i);
        const t0 = performance.now();
        const exchange = async (): Promise<LoadResponse> => {
          if (!conn || conn.closed || !conn.reusable) {
            conn?.close();
            conn = await open();
          }
          return conn.send(headOf(u, r), r.body);
        };
        let timer: NodeJS.Timeout | undefined;
        // The timeout covers connecting too: nothing in a phase can wait forever.
        const res = await Promise.race([
          exchange(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => {
              conn?.close();
              reject(new Error(`request ${i} to ${u.host}${r.path} got no answer in ${timeoutMs} ms`));
            }, timeoutMs);
          }),
        ]).finally(() => clearTimeout(timer));
        const t1 = performance.now();
        opts.check?.(res, i);
        if (latencies && done < latencies.length) latencies[done] = t1 - t0;
        done++;
      }
      conn?.close();
    };
    await Promise.all(
      Array.from({ length: opts.concurrency }, () =>
        worker().catch((e: unknown) => {
          failed = true; // the other workers stop after their current request
          throw e;
        }),
      ),
    );
    return done;
  };

  try {
    await phase(opts.warmup, undefined);
    opened = 0;
    const latencies = new Float64Array(opts.run.count);
    const t0 = performance.now();
    const ops = await phase(opts.run, latencies);
    const seconds = (performance.now() - t0) / 1000;
    const sorted = latencies.subarray(0, Math.min(ops, latencies.length)).sort();
    return {
      ops,
      seconds,
      opsPerSec: ops / seconds,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      connections: opened,
      used: next,
    };
  } finally {
    for (const c of conns) c.close();
  }
}
