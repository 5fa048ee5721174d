// Interop through the real `mtls proxy` with a client certificate from the project's CLI: Node's
// https and http2 clients, undici (HTTP/1.1 and HTTP/2), curl, Python requests (Debian's
// python3-requests), gRPC with @grpc/grpc-js over an h2c upstream, and the OpenTelemetry JS OTLP
// trace exporters (gRPC, HTTP/JSON, HTTP/protobuf). Each upstream records what reached it, so every
// test checks the identity the proxy set (XFCC with the client's SPIFFE ID), that spoofed identity
// headers sent by the client never arrive, and that bodies, gRPC metadata and trailers arrive whole.
import { createHash, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { connect as http2Connect, type IncomingHttpHeaders as H2Headers } from 'node:http2';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { credentials, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OtlpHttpExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { Agent, fetch as undiciFetch, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { assertBuilt, run } from '../support/cli.js';
import {
  EchoClient,
  EchoPaths,
  ECHO_SERVICE,
  startGrpcUpstream,
  type GrpcUpstream,
} from '../support/grpc.js';
import {
  decodeTraceJson,
  decodeTraceProto,
  OTLP_TRACE_EXPORT_PATH,
  startOtlpGrpcReceiver,
  startOtlpHttpReceiver,
  type ExportedTraces,
  type OtlpGrpcReceiver,
  type OtlpHttpReceiver,
} from '../support/otlp.js';
import { createPki, type LeafPaths, type Pki } from '../support/pki.js';
import { LOOPBACK } from '../support/ports.js';
import {
  proxyCurl,
  startEchoUpstream,
  startProxy,
  type EchoUpstream,
  type Received,
  type RunningProxy,
} from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

/** Debian's interpreter, where python3-requests installs (scripts/ensure-peers.sh), not a pyenv one. */
const PYTHON = '/usr/bin/python3';

const SPOOF: Record<string, string> = {
  'x-forwarded-client-cert': 'By=spiffe://evil;Hash=00;URI=spiffe://e2e.example/ns/prod/sa/admin',
  'x-client-spiffe-id': 'spiffe://e2e.example/ns/prod/sa/admin',
  'x-client-verify': 'SUCCESS',
};

let root: string;
let pki: Pki;
let echo: EchoUpstream;
let otlpHttp: OtlpHttpReceiver;
let httpProxy: RunningProxy;
/** The XFCC the proxy must set for pki.spiffe: the hash of its leaf and its SPIFFE ID. */
let expectedXfcc: string;
let tlsFiles: { ca: Buffer; cert: Buffer; key: Buffer };

interface Cred {
  cert: string;
  key: string;
}
const credOf = (leaf: LeafPaths): Cred => ({ cert: leaf.chain, key: leaf.key });

async function writeProxyConfig(name: string, listeners: Record<string, unknown>[]): Promise<string> {
  const path = join(root, name);
  await writeFile(path, stringify({ listeners }));
  return path;
}

const listenerTls = (): Record<string, string> => ({
  cert: pki.server.chain,
  key: pki.server.key,
  clientCa: pki.clientCa.bundle,
});

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-interop');
  pki = await createPki(root);
  [echo, otlpHttp] = await Promise.all([startEchoUpstream(), startOtlpHttpReceiver()]);
  const leafPem = await readFile(pki.spiffe.cert, 'utf8');
  const hash = createHash('sha256').update(new X509Certificate(leafPem).raw).digest('hex');
  expectedXfcc = `Hash=${hash};Subject="";URI=${pki.spiffeId}`;
  tlsFiles = {
    ca: await readFile(pki.server.ca),
    cert: await readFile(pki.spiffe.chain),
    key: await readFile(pki.spiffe.key),
  };
  const config = await writeProxyConfig('proxy-http.yaml', [
    {
      name: 'api',
      listen: '127.0.0.1:0',
      tls: listenerTls(),
      upstream: `http://127.0.0.1:${echo.port}`,
      identity: { headers: 'xfcc' },
      allow: [
        { identity: 'spiffe://e2e.example/ns/*/sa/worker', paths: ['/api/*'], methods: ['GET', 'POST'] },
      ],
    },
    {
      name: 'otlp-http',
      listen: '127.0.0.1:0',
      tls: listenerTls(),
      upstream: `http://127.0.0.1:${otlpHttp.port}`,
      identity: { headers: 'xfcc' },
      allow: [{ identity: pki.spiffeId, paths: ['/v1/traces'], methods: ['POST'] }],
    },
  ]);
  httpProxy = await startProxy(config, root);
});

afterAll(async () => {
  if (httpProxy) expect(await httpProxy.stop()).toBe(0);
  await Promise.all([echo?.close(), otlpHttp?.close()]);
  await removeTempDir(root);
});

/** The one request that reached the echo upstream with this exact target. */
function reached(url: string): Received {
  const hits = echo.received.filter((r) => r.url === url);
  expect(hits, `requests to ${url} that reached the upstream`).toHaveLength(1);
  return hits[0]!;
}

/** The proxy's identity header and nothing the client claimed. */
function expectIdentity(headers: Record<string, string | string[] | undefined>, rawHeaders?: string[]): void {
  expect(headers['x-forwarded-client-cert']).toBe(expectedXfcc);
  for (const k of Object.keys(headers))
    expect(k.startsWith('x-client-'), `unexpected header ${k}`).toBe(false);
  if (rawHeaders)
    expect(
      rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-forwarded-client-cert'),
    ).toHaveLength(1);
}

/** A text body of about `kib` KiB with non-ASCII characters in it, and its sha256. */
function textBody(kib: number): { text: string; sha256: string } {
  const text = `ünïcødé ✓ ${randomBytes(Math.ceil((kib * 1024 * 3) / 4)).toString('base64')} ✓ end`;
  return { text, sha256: createHash('sha256').update(text).digest('hex') };
}
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

describe('HTTP clients through mtls proxy (HTTP/1.1 and HTTP/2 listener, http:// upstream)', () => {
  const port = (): number => httpProxy.listeners.api!;

  it('Node https.request (HTTP/1.1): GET and a chunked 1 MiB POST arrive with XFCC and without spoofed headers', async () => {
    const send = (
      path: string,
      method: string,
      chunks: string[],
    ): Promise<{ status: number; body: string; headers: Record<string, unknown> }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest(
          {
            host: LOOPBACK,
            port: port(),
            path,
            method,
            ca: tlsFiles.ca,
            cert: tlsFiles.cert,
            key: tlsFiles.key,
            agent: false,
            headers: SPOOF,
          },
          (res) => {
            const parts: Buffer[] = [];
            res.on('data', (c: Buffer) => parts.push(c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                body: Buffer.concat(parts).toString('utf8'),
                headers: res.headers,
              }),
            );
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        // No content-length: Node sends the body chunked, in several writes.
        for (const c of chunks) req.write(c);
        req.end();
      });
    const getPath = `/api/node-h1/${randomUUID()}?q=1`;
    const get = await send(getPath, 'GET', []);
    expect(get.status, get.body).toBe(200);
    expect(get.headers['x-upstream']).toBe('echo');
    const g = reached(getPath);
    expect(g.method).toBe('GET');
    expectIdentity(g.headers, g.rawHeaders);

    const body = textBody(1024);
    const postPath = `/api/node-h1-post/${randomUUID()}`;
    const pieces = [body.text.slice(0, 1000), body.text.slice(1000, 500_000), body.text.slice(500_000)];
    const post = await send(postPath, 'POST', pieces);
    expect(post.status).toBe(200);
    const p = reached(postPath);
    expect(p.method).toBe('POST');
    expect(p.body.length).toBe(body.text.length);
    expect(sha256(p.body)).toBe(body.sha256);
    expectIdentity(p.headers, p.rawHeaders);
  });

  it('Node http2 client (ALPN h2): GET and POST arrive with XFCC, spoofed headers dropped', async () => {
    const session = http2Connect(`https://${LOOPBACK}:${port()}`, {
      ca: tlsFiles.ca,
      cert: tlsFiles.cert,
      key: tlsFiles.key,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
      expect(session.alpnProtocol).toBe('h2');
      const send = (
        path: string,
        method: string,
        body?: string,
      ): Promise<{ headers: H2Headers; body: string }> =>
        new Promise((resolve, reject) => {
          const stream = session.request(
            { ':method': method, ':path': path, ...SPOOF },
            { endStream: !body },
          );
          let headers: H2Headers = {};
          const parts: Buffer[] = [];
          stream.on('response', (h) => (headers = h));
          stream.on('data', (c: Buffer) => parts.push(c));
          stream.on('end', () => resolve({ headers, body: Buffer.concat(parts).toString('utf8') }));
          stream.on('error', reject);
          if (body) stream.end(body);
        });
      const getPath = `/api/node-h2/${randomUUID()}`;
      const get = await send(getPath, 'GET');
      expect(get.headers[':status'], get.body).toBe(200);
      expect(get.headers['x-upstream']).toBe('echo');
      expectIdentity(reached(getPath).headers, reached(getPath).rawHeaders);
      expect(reached(getPath).headers.host).toBe(`${LOOPBACK}:${port()}`);

      const body = textBody(256);
      const postPath = `/api/node-h2-post/${randomUUID()}`;
      const post = await send(postPath, 'POST', body.text);
      expect(post.headers[':status']).toBe(200);
      const p = reached(postPath);
      expect(sha256(p.body)).toBe(body.sha256);
      expectIdentity(p.headers, p.rawHeaders);
    } finally {
      session.close();
    }
  });

  it('undici fetch with new Agent({connect: {cert, key, ca}}) (HTTP/1.1): POST body and identity', async () => {
    const dispatcher = new Agent({ connect: { ca: tlsFiles.ca, cert: tlsFiles.cert, key: tlsFiles.key } });
    try {
      const path = `/api/undici-fetch/${randomUUID()}`;
      const body = JSON.stringify({ order: 42, note: textBody(16).text });
      const res = await undiciFetch(`https://${LOOPBACK}:${port()}${path}`, {
        dispatcher,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...SPOOF },
        body,
      });
      expect(res.status).toBe(200);
      const echoed = (await res.json()) as { body: string; headers: Record<string, string> };
      expect(echoed.body).toBe(body);
      const r = reached(path);
      expect(r.headers['content-type']).toBe('application/json');
      expectIdentity(r.headers, r.rawHeaders);
    } finally {
      await dispatcher.close();
    }
  });

  it('undici request with allowH2 negotiates h2: GET and POST, identity, body intact', async () => {
    const alpn: string[] = [];
    const onConnected = (m: unknown): void => {
      const { socket, connectParams } = m as { socket: TLSSocket; connectParams: { port: string } };
      if (Number(connectParams.port) === port()) alpn.push(String(socket.alpnProtocol));
    };
    subscribe('undici:client:connected', onConnected);
    const dispatcher = new Agent({
      allowH2: true,
      connect: { ca: tlsFiles.ca, cert: tlsFiles.cert, key: tlsFiles.key },
    });
    try {
      const getPath = `/api/undici-h2/${randomUUID()}`;
      const get = await undiciRequest(`https://${LOOPBACK}:${port()}${getPath}`, {
        dispatcher,
        headers: SPOOF,
      });
      expect(get.statusCode).toBe(200);
      await get.body.dump();
      const body = textBody(512);
      const postPath = `/api/undici-h2-post/${randomUUID()}`;
      const post = await undiciRequest(`https://${LOOPBACK}:${port()}${postPath}`, {
        dispatcher,
        method: 'POST',
        headers: { 'content-type': 'text/plain; charset=utf-8', ...SPOOF },
        body: body.text,
      });
      expect(post.statusCode).toBe(200);
      await post.body.dump();
      expect(alpn).toEqual(['h2']); // one connection, both requests on it
      expectIdentity(reached(getPath).headers, reached(getPath).rawHeaders);
      const p = reached(postPath);
      expect(sha256(p.body)).toBe(body.sha256);
      expectIdentity(p.headers, p.rawHeaders);
    } finally {
      unsubscribe('undici:client:connected', onConnected);
      await dispatcher.close();
    }
  });

  it('curl --http2: POST body and identity', async () => {
    const path = `/api/curl-h2/${randomUUID()}`;
    const data = textBody(64).text;
    const r = await proxyCurl({
      port: port(),
      path,
      cacert: pki.server.ca,
      ...credOf(pki.spiffe),
      method: 'POST',
      data,
      http2: true,
      headers: Object.entries(SPOOF).map(([k, v]) => `${k}: ${v}`),
    });
    expect(r.status, r.stderr).toBe(200);
    expect(r.httpVersion).toBe('2');
    const got = reached(path);
    expect(got.body).toBe(data);
    expectIdentity(got.headers, got.rawHeaders);
  });

  describe('Python requests (Debian python3-requests)', () => {
    // requests with cert=(chain, key) and verify=<server CA>; environment proxies ignored.
    const script = `
import json, sys, requests, urllib3
url, ca, cert, key, spoof, body = sys.argv[1:7]
s = requests.Session()
s.trust_env = False
kw = {"verify": ca, "timeout": 10, "headers": json.loads(spoof)}
if cert:
    kw["cert"] = (cert, key)
r = s.post(url, data=body.encode("utf-8"), **kw) if body else s.get(url, **kw)
print(json.dumps({"status": r.status_code, "body": r.text, "requests": requests.__version__,
                  "module": requests.__file__, "urllib3": urllib3.__version__}))
`;
    interface PyResult {
      status: number;
      body: string;
      requests: string;
      module: string;
      urllib3: string;
    }
    async function py(path: string, cred: Cred | undefined, body = ''): Promise<PyResult> {
      const r = await run(
        PYTHON,
        [
          '-I',
          '-c',
          script,
          `https://${LOOPBACK}:${httpProxy.listeners.api}${path}`,
          pki.server.ca,
          cred?.cert ?? '',
          cred?.key ?? '',
          JSON.stringify(SPOOF),
          body,
        ],
        { timeoutMs: 30_000 },
      );
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as PyResult;
    }

    it('GET and POST with a client certificate: 200, XFCC with the SPIFFE ID, spoofed headers dropped', async () => {
      const getPath = `/api/python/${randomUUID()}`;
      const get = await py(getPath, credOf(pki.spiffe));
      // The Debian package, not whatever python3 is first on PATH.
      expect(get.module).toMatch(/^\/usr\/lib\/python3\/dist-packages\/requests\//);
      console.log(`python3-requests ${get.requests}, urllib3 ${get.urllib3}`);
      expect(get.status, get.body).toBe(200);
      expectIdentity(reached(getPath).headers, reached(getPath).rawHeaders);

      const postPath = `/api/python-post/${randomUUID()}`;
      const data = textBody(32).text;
      const post = await py(postPath, credOf(pki.spiffe), data);
      expect(post.status).toBe(200);
      const p = reached(postPath);
      expect(p.body).toBe(data);
      expectIdentity(p.headers, p.rawHeaders);
    });

    it('without a client certificate: 401 JSON with reason no_client_cert, nothing reaches the upstream', async () => {
      const path = `/api/python-refused/${randomUUID()}`;
      const before = echo.received.length;
      const r = await py(path, undefined);
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toEqual({
        code: 'MTLS_PROXY_UNAUTHENTICATED',
        reason: 'no_client_cert',
        requestId: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
      });
      expect(echo.received.length).toBe(before);
    });
  });
});

// ---- OpenTelemetry OTLP ------------------------------------------------------------------------

/** One finished span with a unique name, made by the SDK (the exporter's real input). */
function makeSpan(name: string): ReadableSpan {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
  const span = provider.getTracer('mtlskit-interop', '1.0.0').startSpan(name, {
    attributes: { 'mtlskit.test': name, 'mtlskit.n': 7 },
  });
  span.end();
  const [finished] = memory.getFinishedSpans();
  if (!finished) throw new Error('the SDK did not record the span');
  return finished;
}

async function exportOnce(exporter: SpanExporter, span: ReadableSpan): Promise<ExportResult> {
  try {
    return await new Promise<ExportResult>((resolve) => exporter.export([span], resolve));
  } finally {
    await exporter.shutdown();
  }
}

function expectSpan(traces: ExportedTraces, span: ReadableSpan): void {
  expect(traces.scopes).toContain('mtlskit-interop');
  expect(traces.spans).toHaveLength(1);
  expect(traces.spans[0]).toEqual({
    name: span.name,
    traceId: span.spanContext().traceId,
    spanId: span.spanContext().spanId,
    attributes: { 'mtlskit.test': span.name, 'mtlskit.n': 7 },
  });
}

describe('OpenTelemetry OTLP/HTTP trace exporters through mtls proxy', () => {
  const url = (): string => `https://${LOOPBACK}:${httpProxy.listeners['otlp-http']}/v1/traces`;

  it.each([
    { flavor: 'JSON', Exporter: OtlpHttpExporter, contentType: 'application/json', decode: decodeTraceJson },
    {
      flavor: 'protobuf',
      Exporter: OtlpProtoExporter,
      contentType: 'application/x-protobuf',
      decode: decodeTraceProto,
    },
  ])(
    'exporter-trace-otlp-$flavor with httpAgentOptions {cert, key, ca}: the span and XFCC reach /v1/traces',
    async ({ flavor, Exporter, contentType, decode }) => {
      const span = makeSpan(`otlp-http-${flavor}-${randomUUID()}`);
      const before = otlpHttp.received.length;
      const exporter = new Exporter({
        url: url(),
        httpAgentOptions: { ca: tlsFiles.ca, cert: tlsFiles.cert, key: tlsFiles.key },
        headers: SPOOF,
        timeoutMillis: 10_000,
      });
      const result = await exportOnce(exporter, span);
      expect(result.error?.message).toBeUndefined();
      expect(result.code).toBe(ExportResultCode.SUCCESS);
      expect(otlpHttp.received.length).toBe(before + 1);
      const got = otlpHttp.received.at(-1)!;
      expect(got.method).toBe('POST');
      expect(got.url).toBe('/v1/traces');
      expect(got.headers['content-type']).toBe(contentType);
      expect(got.body.length).toBeGreaterThan(0);
      expect(got.body.includes(Buffer.from(span.name))).toBe(true);
      expectSpan(decode(got.body), span);
      expectIdentity(got.headers);
    },
  );

  it('an exporter without a client certificate is refused (401) and nothing is exported', async () => {
    const before = otlpHttp.received.length;
    const exporter = new OtlpHttpExporter({
      url: url(),
      httpAgentOptions: { ca: tlsFiles.ca },
      timeoutMillis: 10_000,
    });
    const result = await exportOnce(exporter, makeSpan(`otlp-refused-${randomUUID()}`));
    expect(result.code).toBe(ExportResultCode.FAILED);
    // OTLPExporterError: code is the HTTP status, data the body (the proxy's JSON with its reason).
    const error: unknown = result.error;
    const { code, data } = (error ?? {}) as { code?: number; data?: string };
    expect(code).toBe(401);
    expect(JSON.parse(data ?? '{}')).toMatchObject({
      code: 'MTLS_PROXY_UNAUTHENTICATED',
      reason: 'no_client_cert',
    });
    expect(otlpHttp.received.length).toBe(before);
  });
});

// ---- gRPC over HTTP/2 with an h2c upstream ------------------------------------------------------

describe('gRPC through mtls proxy to an h2c upstream', () => {
  let grpcUp: GrpcUpstream;
  let otlpGrpc: OtlpGrpcReceiver;
  let grpcProxy: RunningProxy;
  const clients: EchoClient[] = [];

  beforeAll(async () => {
    [grpcUp, otlpGrpc] = await Promise.all([startGrpcUpstream(), startOtlpGrpcReceiver()]);
    const config = await writeProxyConfig('proxy-grpc.yaml', [
      {
        name: 'grpc',
        listen: '127.0.0.1:0',
        tls: listenerTls(),
        upstream: `h2c://127.0.0.1:${grpcUp.port}`,
        identity: { headers: 'xfcc' },
        allow: [
          {
            identity: 'spiffe://e2e.example/ns/*/sa/worker',
            paths: [`/${ECHO_SERVICE}/*`],
            methods: ['POST'],
          },
        ],
      },
      {
        name: 'otlp-grpc',
        listen: '127.0.0.1:0',
        tls: listenerTls(),
        upstream: `h2c://127.0.0.1:${otlpGrpc.port}`,
        identity: { headers: 'xfcc' },
        allow: [{ identity: pki.spiffeId, paths: [OTLP_TRACE_EXPORT_PATH], methods: ['POST'] }],
      },
    ]);
    grpcProxy = await startProxy(config, root);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    if (grpcProxy) expect(await grpcProxy.stop()).toBe(0);
    await Promise.all([grpcUp?.close(), otlpGrpc?.close()]);
  });

  const client = (leaf: LeafPaths | undefined): EchoClient => {
    const creds = leaf
      ? credentials.createSsl(tlsFiles.ca, readFileSync(leaf.key), readFileSync(leaf.chain))
      : credentials.createSsl(tlsFiles.ca);
    const c = new EchoClient(grpcProxy.listeners.grpc!, creds);
    clients.push(c);
    return c;
  };
  const spoofed = (): Metadata => {
    const m = new Metadata();
    for (const [k, v] of Object.entries(SPOOF)) m.set(k, v);
    m.set('x-request-tag', 'interop');
    return m;
  };
  /** The metadata the upstream saw on its last call: XFCC from the proxy only, no x-client-*. */
  const expectUpstreamIdentity = (): void => {
    const md = grpcUp.received.at(-1)!.metadata;
    expect(md['x-forwarded-client-cert']).toEqual([expectedXfcc]);
    expect(Object.keys(md).filter((k) => k.startsWith('x-client-'))).toEqual([]);
    expect(md['x-request-tag']).toEqual(['interop']);
  };

  it('unary call: OK, the response, response metadata and trailers arrive; the upstream saw XFCC', async () => {
    const before = grpcUp.received.length;
    const r = await client(pki.spiffe).unary(EchoPaths.unary, { text: 'hello over h2c' }, spoofed());
    expect(r.error?.message).toBeUndefined();
    expect(r.status.code).toBe(grpcStatus.OK);
    expect(r.response).toEqual({ text: 'hello over h2c', xfcc: expectedXfcc });
    expect(r.headers?.get('x-upstream')).toEqual(['grpc']);
    expect(r.status.metadata.get('x-trailer')).toEqual(['unary-done']);
    expect(grpcUp.received.length).toBe(before + 1);
    expect(grpcUp.received.at(-1)).toMatchObject({
      path: EchoPaths.unary,
      request: { text: 'hello over h2c' },
    });
    expectUpstreamIdentity();
  });

  it('server-streaming call: every message in order, then OK with the trailer', async () => {
    const r = await client(pki.spiffe).serverStream({ text: 'tick', count: 5 }, spoofed());
    expect(r.status.code).toBe(grpcStatus.OK);
    expect(r.messages.map((m) => m.text)).toEqual(['tick #0', 'tick #1', 'tick #2', 'tick #3', 'tick #4']);
    expect(r.messages.every((m) => m.xfcc === expectedXfcc)).toBe(true);
    expect(r.headers?.get('x-upstream')).toEqual(['grpc']);
    expect(r.status.metadata.get('x-trailer')).toEqual(['stream-done']);
    expectUpstreamIdentity();
  });

  it('an upstream error status and its message travel in the trailers', async () => {
    const r = await client(pki.spiffe).unary(EchoPaths.fail, { text: '42' });
    expect(r.status.code).toBe(grpcStatus.FAILED_PRECONDITION);
    expect(r.status.details).toBe('no order 42');
    expect(r.status.metadata.get('x-trailer')).toEqual(['fail-done']);
  });

  it('a client whose identity no rule allows gets PERMISSION_DENIED (the proxy answers HTTP 403); nothing reaches the upstream', async () => {
    const before = grpcUp.received.length;
    const r = await client(pki.peer).unary(EchoPaths.unary, { text: 'not me' });
    console.log(`not allowed identity → gRPC ${grpcStatus[r.status.code]}: ${r.status.details}`);
    // grpc-js maps a non-200 HTTP status to a gRPC code (gRPC's http-grpc-status-mapping): 403 → 7.
    expect(r.status.code).toBe(grpcStatus.PERMISSION_DENIED);
    expect(r.status.details).toMatch(/403/);
    expect(grpcUp.received.length).toBe(before);
  });

  it('a client without a certificate gets UNAUTHENTICATED (HTTP 401); nothing reaches the upstream', async () => {
    const before = grpcUp.received.length;
    const r = await client(undefined).unary(EchoPaths.unary, { text: 'anonymous' });
    console.log(`no client certificate → gRPC ${grpcStatus[r.status.code]}: ${r.status.details}`);
    expect(r.status.code).toBe(grpcStatus.UNAUTHENTICATED);
    expect(r.status.details).toMatch(/401/);
    expect(grpcUp.received.length).toBe(before);
  });

  it('exporter-trace-otlp-grpc with createSsl(ca, key, cert): the span and XFCC reach TraceService/Export', async () => {
    const span = makeSpan(`otlp-grpc-${randomUUID()}`);
    const metadata = new Metadata();
    metadata.set('x-forwarded-client-cert', SPOOF['x-forwarded-client-cert']!);
    const exporter = new OtlpGrpcExporter({
      url: `https://${LOOPBACK}:${grpcProxy.listeners['otlp-grpc']}`,
      credentials: credentials.createSsl(tlsFiles.ca, tlsFiles.key, tlsFiles.cert),
      metadata,
      timeoutMillis: 10_000,
    });
    const before = otlpGrpc.received.length;
    const result = await exportOnce(exporter, span);
    expect(result.error?.message).toBeUndefined();
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    expect(otlpGrpc.received.length).toBe(before + 1);
    const got = otlpGrpc.received.at(-1)!;
    expect(got.metadata['x-forwarded-client-cert']).toEqual([expectedXfcc]);
    expect(got.metadata['user-agent']?.[0]).toMatch(/OTel-OTLP-Exporter-JavaScript|grpc-node-js/);
    expect(got.body.includes(Buffer.from(span.name))).toBe(true);
    expectSpan(decodeTraceProto(got.body), span);
  });
});
