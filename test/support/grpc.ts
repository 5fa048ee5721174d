// gRPC peers for the proxy interop tests: an upstream grpc-js server on 127.0.0.1 with insecure
// credentials (HTTP/2 cleartext, what the proxy's h2c:// upstream speaks), a small JSON-encoded test
// service (unary, server streaming, and a call that fails with a status), and client helpers that
// return the status, the response headers and the trailers as well as the messages.
import {
  Client,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type ChannelCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type StatusObject,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { LOOPBACK } from './ports.js';

export interface EchoRequest {
  text: string;
  /** For ServerStream: how many messages to send. */
  count?: number;
}

export interface EchoReply {
  text: string;
  index?: number;
  /** The x-forwarded-client-cert metadata the upstream saw. */
  xfcc?: string;
}

const serialize = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), 'utf8');
const deserialize = <T>(b: Buffer): T => JSON.parse(b.toString('utf8')) as T;

const method = <Req, Res>(path: string, responseStream: boolean) => ({
  path,
  requestStream: false,
  responseStream,
  requestSerialize: serialize as (v: Req) => Buffer,
  requestDeserialize: deserialize<Req>,
  responseSerialize: serialize as (v: Res) => Buffer,
  responseDeserialize: deserialize<Res>,
});

export const ECHO_SERVICE = 'mtlskit.test.Echo';
export const EchoPaths = {
  unary: `/${ECHO_SERVICE}/Unary`,
  serverStream: `/${ECHO_SERVICE}/ServerStream`,
  fail: `/${ECHO_SERVICE}/Fail`,
} as const;

const echoDefinition = {
  Unary: method<EchoRequest, EchoReply>(EchoPaths.unary, false),
  ServerStream: method<EchoRequest, EchoReply>(EchoPaths.serverStream, true),
  Fail: method<EchoRequest, EchoReply>(EchoPaths.fail, false),
} satisfies ServiceDefinition;

export interface GrpcReceived {
  path: string;
  request: EchoRequest;
  /** Metadata as the upstream saw it (string values only). */
  metadata: Record<string, string[]>;
}

export interface GrpcUpstream {
  port: number;
  received: GrpcReceived[];
  close(): Promise<void>;
}

function metadataRecord(md: Metadata): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(md.toJSON()))
    out[k] = v.map((x) => (typeof x === 'string' ? x : x.toString('base64')));
  return out;
}

const first = (md: Metadata, key: string): string | undefined => {
  const v = md.get(key)[0];
  return typeof v === 'string' ? v : undefined;
};

/**
 * The upstream: answers Unary with the text and the XFCC it saw, streams `count` messages, and fails
 * Fail with FAILED_PRECONDITION. Every answer carries response metadata `x-upstream: grpc` and a
 * trailer `x-trailer: <method>-done`.
 */
export async function startGrpcUpstream(): Promise<GrpcUpstream> {
  const received: GrpcReceived[] = [];
  const server = new Server();
  const header = (): Metadata => {
    const m = new Metadata();
    m.set('x-upstream', 'grpc');
    return m;
  };
  const trailer = (name: string): Metadata => {
    const m = new Metadata();
    m.set('x-trailer', `${name}-done`);
    return m;
  };
  const record = (path: string, call: { request: EchoRequest; metadata: Metadata }): string | undefined => {
    received.push({ path, request: call.request, metadata: metadataRecord(call.metadata) });
    return first(call.metadata, 'x-forwarded-client-cert');
  };
  server.addService(echoDefinition, {
    Unary: (call: ServerUnaryCall<EchoRequest, EchoReply>, cb: sendUnaryData<EchoReply>) => {
      const xfcc = record(EchoPaths.unary, call);
      call.sendMetadata(header());
      cb(null, { text: call.request.text, ...(xfcc ? { xfcc } : {}) }, trailer('unary'));
    },
    ServerStream: (call: ServerWritableStream<EchoRequest, EchoReply>) => {
      const xfcc = record(EchoPaths.serverStream, call);
      call.sendMetadata(header());
      for (let i = 0; i < (call.request.count ?? 3); i++)
        call.write({ text: `${call.request.text} #${i}`, index: i, ...(xfcc ? { xfcc } : {}) });
      call.end(trailer('stream'));
    },
    Fail: (call: ServerUnaryCall<EchoRequest, EchoReply>, cb: sendUnaryData<EchoReply>) => {
      record(EchoPaths.fail, call);
      call.sendMetadata(header());
      cb({
        code: status.FAILED_PRECONDITION,
        details: `no order ${call.request.text}`,
        metadata: trailer('fail'),
      });
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

export interface UnaryOutcome<T> {
  response?: T;
  error?: ServiceError;
  /** Response headers (initial metadata); absent when none arrived. */
  headers?: Metadata;
  status: StatusObject;
}

export interface StreamOutcome<T> {
  messages: T[];
  headers?: Metadata;
  status: StatusObject;
}

/** A client of the test service at 127.0.0.1:<port> with the given channel credentials. */
export class EchoClient {
  readonly #client: Client;

  constructor(port: number, credentials: ChannelCredentials) {
    this.#client = new Client(`${LOOPBACK}:${port}`, credentials);
  }

  unary(path: string, request: EchoRequest, metadata = new Metadata()): Promise<UnaryOutcome<EchoReply>> {
    return new Promise((resolve) => {
      let headers: Metadata | undefined;
      let result: { response?: EchoReply; error?: ServiceError } | undefined;
      let final: StatusObject | undefined;
      const done = (): void => {
        if (result && final) resolve({ ...result, ...(headers ? { headers } : {}), status: final });
      };
      const call = this.#client.makeUnaryRequest<EchoRequest, EchoReply>(
        path,
        serialize,
        deserialize<EchoReply>,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
        (error, response) => {
          result = error ? { error } : response ? { response } : {};
          done();
        },
      );
      call.on('metadata', (m: Metadata) => (headers = m));
      call.on('status', (s: StatusObject) => {
        final = s;
        done();
      });
    });
  }

  serverStream(request: EchoRequest, metadata = new Metadata()): Promise<StreamOutcome<EchoReply>> {
    return new Promise((resolve) => {
      const messages: EchoReply[] = [];
      let headers: Metadata | undefined;
      const call = this.#client.makeServerStreamRequest<EchoRequest, EchoReply>(
        EchoPaths.serverStream,
        serialize,
        deserialize<EchoReply>,
        request,
        metadata,
        { deadline: Date.now() + 10_000 },
      );
      let ended = false;
      let final: StatusObject | undefined;
      const done = (): void => {
        if (ended && final) resolve({ messages, ...(headers ? { headers } : {}), status: final });
      };
      call.on('metadata', (m: Metadata) => (headers = m));
      call.on('data', (m: EchoReply) => messages.push(m));
      // Every message is read once the stream ended (or failed: 'error'); the status says how.
      call.on('end', () => {
        ended = true;
        done();
      });
      call.on('error', () => {
        ended = true;
        done();
      });
      call.on('status', (s: StatusObject) => {
        final = s;
        done();
      });
    });
  }

  close(): void {
    this.#client.close();
  }
}
