// OTLP receivers for the proxy interop tests, standing in for an OpenTelemetry Collector behind the
// proxy: an HTTP one for POST /v1/traces (JSON or protobuf) and a gRPC one (h2c, grpc-js) for
// TraceService/Export. Both keep the raw bytes they got; decodeTraceProto/decodeTraceJson read back
// the spans (a protobuf wire-format reader for the few fields asserted on, no generated code).
import {
  Metadata,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type sendUnaryData,
} from '@grpc/grpc-js';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { LOOPBACK } from './ports.js';

export const OTLP_TRACE_EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

export interface ExportedSpan {
  name: string;
  /** Lowercase hex, as SpanContext.traceId. */
  traceId: string;
  spanId: string;
  attributes: Record<string, string | number | boolean>;
}

export interface ExportedTraces {
  resourceAttributes: Record<string, string | number | boolean>[];
  scopes: string[];
  spans: ExportedSpan[];
}

// ---- protobuf wire format -------------------------------------------------------------------

interface Field {
  no: number;
  /** varint (wire type 0) */
  int?: bigint;
  /** length-delimited (wire type 2) */
  bytes?: Buffer;
}

function readVarint(buf: Buffer, at: number): [bigint, number] {
  let v = 0n;
  let shift = 0n;
  for (;;) {
    if (at >= buf.length) throw new Error('truncated varint');
    const b = buf[at++]!;
    v |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [v, at];
    shift += 7n;
  }
}

function fields(buf: Buffer): Field[] {
  const out: Field[] = [];
  let at = 0;
  while (at < buf.length) {
    const [tag, next] = readVarint(buf, at);
    at = next;
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, n] = readVarint(buf, at);
      out.push({ no, int: v });
      at = n;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const [len, n] = readVarint(buf, at);
      const end = n + Number(len);
      if (end > buf.length) throw new Error('truncated length-delimited field');
      out.push({ no, bytes: buf.subarray(n, end) });
      at = end;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
  return out;
}

const sub = (buf: Buffer, no: number): Buffer[] =>
  fields(buf).flatMap((f) => (f.no === no && f.bytes ? [f.bytes] : []));
const str = (buf: Buffer, no: number): string => sub(buf, no)[0]?.toString('utf8') ?? '';

/** opentelemetry.proto.common.v1.KeyValue list (AnyValue: string, bool, int). */
function protoAttributes(kvs: Buffer[]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of kvs) {
    const key = str(kv, 1);
    const any = sub(kv, 2)[0];
    if (!any) continue;
    for (const f of fields(any)) {
      if (f.no === 1 && f.bytes) out[key] = f.bytes.toString('utf8');
      else if (f.no === 2 && f.int !== undefined) out[key] = f.int !== 0n;
      else if (f.no === 3 && f.int !== undefined) out[key] = Number(BigInt.asIntN(64, f.int));
    }
  }
  return out;
}

/** An ExportTraceServiceRequest (OTLP protobuf, gRPC or HTTP) read back. */
export function decodeTraceProto(body: Buffer): ExportedTraces {
  const out: ExportedTraces = { resourceAttributes: [], scopes: [], spans: [] };
  for (const rs of sub(body, 1)) {
    const resource = sub(rs, 1)[0];
    out.resourceAttributes.push(resource ? protoAttributes(sub(resource, 1)) : {});
    for (const ss of sub(rs, 2)) {
      const scope = sub(ss, 1)[0];
      out.scopes.push(scope ? str(scope, 1) : '');
      for (const span of sub(ss, 2))
        out.spans.push({
          traceId: (sub(span, 1)[0] ?? Buffer.alloc(0)).toString('hex'),
          spanId: (sub(span, 2)[0] ?? Buffer.alloc(0)).toString('hex'),
          name: str(span, 5),
          attributes: protoAttributes(sub(span, 9)),
        });
    }
  }
  return out;
}

interface JsonKeyValue {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: string | number };
}

function jsonAttributes(kvs: JsonKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of kvs ?? []) {
    const v = kv.value ?? {};
    if (v.stringValue !== undefined) out[kv.key] = v.stringValue;
    else if (v.boolValue !== undefined) out[kv.key] = v.boolValue;
    else if (v.intValue !== undefined) out[kv.key] = Number(v.intValue);
  }
  return out;
}

/** An ExportTraceServiceRequest in OTLP/JSON (ids as hex strings) read back. */
export function decodeTraceJson(body: Buffer): ExportedTraces {
  const doc = JSON.parse(body.toString('utf8')) as {
    resourceSpans?: {
      resource?: { attributes?: JsonKeyValue[] };
      scopeSpans?: {
        scope?: { name?: string };
        spans?: { traceId: string; spanId: string; name: string; attributes?: JsonKeyValue[] }[];
      }[];
    }[];
  };
  const out: ExportedTraces = { resourceAttributes: [], scopes: [], spans: [] };
  for (const rs of doc.resourceSpans ?? []) {
    out.resourceAttributes.push(jsonAttributes(rs.resource?.attributes));
    for (const ss of rs.scopeSpans ?? []) {
      out.scopes.push(ss.scope?.name ?? '');
      for (const s of ss.spans ?? [])
        out.spans.push({
          traceId: s.traceId.toLowerCase(),
          spanId: s.spanId.toLowerCase(),
          name: s.name,
          attributes: jsonAttributes(s.attributes),
        });
    }
  }
  return out;
}

// ---- receivers ------------------------------------------------------------------------------

export interface OtlpHttpRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface OtlpHttpReceiver {
  port: number;
  received: OtlpHttpRequest[];
  close(): Promise<void>;
}

/** POST /v1/traces answers 200 with an empty ExportTraceServiceResponse in the request's encoding. */
export async function startOtlpHttpReceiver(): Promise<OtlpHttpReceiver> {
  const received: OtlpHttpRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      });
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const json = String(req.headers['content-type']).startsWith('application/json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  await new Promise<void>((r) => server.listen(0, LOOPBACK, r));
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    received,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface OtlpGrpcExport {
  metadata: Record<string, string[]>;
  body: Buffer;
}

export interface OtlpGrpcReceiver {
  port: number;
  received: OtlpGrpcExport[];
  close(): Promise<void>;
}

const raw = (b: Buffer): Buffer => b;

/** TraceService/Export over h2c (insecure credentials); keeps the protobuf bytes as they arrived. */
export async function startOtlpGrpcReceiver(): Promise<OtlpGrpcReceiver> {
  const received: OtlpGrpcExport[] = [];
  const server = new Server();
  const definition = {
    Export: {
      path: OTLP_TRACE_EXPORT_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    },
  } satisfies ServiceDefinition;
  server.addService(definition, {
    Export: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
      const metadata: Record<string, string[]> = {};
      for (const [k, v] of Object.entries(call.metadata.toJSON()))
        metadata[k] = v.map((x) => (typeof x === 'string' ? x : x.toString('base64')));
      received.push({ metadata, body: call.request });
      // An empty ExportTraceServiceResponse: no partial_success, everything accepted.
      cb(null, Buffer.alloc(0), new Metadata());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${LOOPBACK}:0`, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}
