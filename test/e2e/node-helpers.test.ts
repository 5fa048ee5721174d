// The package's Node helpers, imported from the built package entry (dist/index.js), used the way
// docs/node.md shows: the OpenTelemetry OTLP/HTTP exporter with createMtlsAgent, fetch with
// createMtlsDispatcher, and the OTLP/gRPC exporter with createMtlsCertificateProvider, against
// mTLS receivers on 127.0.0.1 that record the serial of the client certificate they received.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import {
  experimental,
  Server as GrpcServer,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpGrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OtlpHttpExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
  type ReadableSpan,
  type SpanExporter,
} from '@opentelemetry/sdk-trace';
import { fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  selfSign,
  spkiOf,
  type CertificateIssuer,
} from '../../src/pki/index.js';
import type * as PackageApi from '../../src/index.js';
import { REPO_ROOT, assertBuilt } from '../support/cli.js';
import { OTLP_TRACE_EXPORT_PATH } from '../support/otlp.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

type Package = typeof PackageApi;
let pkg: Package;
let root: string;
let clientIssuer: CertificateIssuer;
let clientRootPem: string;
let serverRootPem: string;
let serverKeyPem: string;
let serverCertPem: string;

/** Publishes a new version of an identity directory the way mtls agent does; returns the serial. */
function publish(dir: string): string {
  const key = generateKey('p256');
  const cert = clientIssuer.issue({
    profile: 'client',
    subject: parseName('CN=otel-exporter'),
    publicKey: spkiOf(key),
    ttlMs: 3_600_000,
  });
  const version = `..v-${new Date().toISOString().replaceAll(':', '-')}-${randomBytes(3).toString('hex')}`;
  const staging = join(dir, `.tmp-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging);
  writeFileSync(join(staging, 'key.pem'), exportPrivateKeyPem(key), { mode: 0o600 });
  for (const [f, data] of [
    ['cert.pem', cert.pem],
    ['chain.pem', ''],
    ['fullchain.pem', cert.pem],
    ['ca.pem', serverRootPem],
  ] as const)
    writeFileSync(join(staging, f), data);
  renameSync(staging, join(dir, version));
  const tmp = join(dir, `..data.tmp-${randomBytes(4).toString('hex')}`);
  symlinkSync(version, tmp);
  renameSync(tmp, join(dir, '..data'));
  const versions = readdirSync(dir)
    .filter((n) => n.startsWith('..v-'))
    .sort();
  for (const old of versions.slice(0, -2)) rmSync(join(dir, old), { recursive: true, force: true });
  return cert.serial;
}

const norm = (s: string): string => s.toLowerCase().replace(/^0+/, '');

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function makeSpan(name: string): ReadableSpan {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
  provider.getTracer('mtlskit-node-helpers').startSpan(name).end();
  const [span] = memory.getFinishedSpans();
  if (!span) throw new Error('no span');
  return span;
}

function exportOnce(exporter: SpanExporter, span: ReadableSpan): Promise<ExportResult> {
  return new Promise<ExportResult>((resolve) => exporter.export([span], resolve));
}

beforeAll(async () => {
  assertBuilt();
  pkg = (await import(pathToFileURL(join(REPO_ROOT, 'dist/index.js')).href)) as Package;
  root = await makeTempDir('node-helpers');
  const clientRootKey = generateKey('p256');
  const clientRoot = selfSign(clientRootKey, {
    profile: 'root',
    subject: parseName('CN=helpers client root'),
  });
  clientIssuer = createIssuer(parseCertificate(clientRoot.der), clientRootKey);
  clientRootPem = clientRoot.pem;
  const serverRootKey = generateKey('p256');
  const serverRoot = selfSign(serverRootKey, {
    profile: 'root',
    subject: parseName('CN=helpers server root'),
  });
  serverRootPem = serverRoot.pem;
  const serverKey = generateKey('p256');
  serverKeyPem = exportPrivateKeyPem(serverKey);
  serverCertPem = createIssuer(parseCertificate(serverRoot.der), serverRootKey).issue({
    profile: 'server',
    subject: parseName('CN=localhost'),
    sans: [
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ],
    publicKey: spkiOf(serverKey),
    ttlMs: 3_600_000,
  }).pem;
});

afterAll(async () => {
  await removeTempDir(root);
});

describe('package entry', () => {
  it('exports the helpers and the error type', () => {
    expect(typeof pkg.createMtlsAgent).toBe('function');
    expect(typeof pkg.createMtlsDispatcher).toBe('function');
    expect(typeof pkg.createMtlsCertificateProvider).toBe('function');
    expect(new pkg.MtlsError('MTLS_NODE_FILES', 'x')).toBeInstanceOf(Error);
    expect(pkg.ERROR_CODES.MTLS_NODE_FILES).toMatch(/identity/);
  });
});

describe('OpenTelemetry OTLP/HTTP exporter and fetch over the helpers', () => {
  let server: Server;
  let port: number;
  const seen: { url: string; serial: string }[] = [];

  beforeAll(async () => {
    server = createServer(
      {
        key: serverKeyPem,
        cert: serverCertPem,
        ca: clientRootPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        req.resume();
        req.on('end', () => {
          seen.push({
            url: req.url ?? '',
            serial: (req.socket as TLSSocket).getPeerCertificate().serialNumber,
          });
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        });
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('exports spans with the current certificate, and with the new one after a rotation', async () => {
    const dir = join(root, 'otel-http');
    mkdirSync(dir);
    const first = publish(dir);
    // As in docs/node.md: one agent for the process, handed to the exporter through a factory.
    const agent = pkg.createMtlsAgent({ dir });
    const exporter = new OtlpHttpExporter({
      url: `https://localhost:${port}/v1/traces`,
      httpAgentOptions: () => agent,
      timeoutMillis: 10_000,
    });
    try {
      const r1 = await exportOnce(exporter, makeSpan(`before-${randomUUID()}`));
      expect(r1.error?.message).toBeUndefined();
      expect(r1.code).toBe(ExportResultCode.SUCCESS);
      expect(norm(seen.at(-1)!.serial)).toBe(norm(first));
      const second = publish(dir);
      await until(() => agent.material.serial === second);
      const r2 = await exportOnce(exporter, makeSpan(`after-${randomUUID()}`));
      expect(r2.code).toBe(ExportResultCode.SUCCESS);
      expect(seen.at(-1)!.url).toBe('/v1/traces');
      expect(norm(seen.at(-1)!.serial)).toBe(norm(second));
    } finally {
      await exporter.shutdown();
      agent.close();
    }
  });

  it('fetch with createMtlsDispatcher follows a rotation too', async () => {
    const dir = join(root, 'fetch');
    mkdirSync(dir);
    const first = publish(dir);
    const dispatcher = pkg.createMtlsDispatcher({ dir });
    try {
      const r1 = await undiciFetch(`https://localhost:${port}/hello`, { dispatcher });
      expect(r1.status).toBe(200);
      await r1.text();
      expect(norm(seen.at(-1)!.serial)).toBe(norm(first));
      const second = publish(dir);
      await until(() => dispatcher.material.serial === second);
      const r2 = await undiciFetch(`https://localhost:${port}/hello`, { dispatcher });
      await r2.text();
      expect(norm(seen.at(-1)!.serial)).toBe(norm(second));
    } finally {
      await dispatcher.close();
    }
  });
});

describe('OpenTelemetry OTLP/gRPC exporter with createMtlsCertificateProvider', () => {
  it('exports over mTLS with the identity of the directory', async () => {
    const received: string[] = [];
    const server = new GrpcServer();
    const raw = (b: Buffer): Buffer => b;
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
        const peer = call.getAuthContext().sslPeerCertificate;
        received.push(peer?.serialNumber ?? 'none');
        cb(null, Buffer.alloc(0));
      },
    });
    const creds = ServerCredentials.createSsl(
      Buffer.from(clientRootPem),
      [{ cert_chain: Buffer.from(serverCertPem), private_key: Buffer.from(serverKeyPem) }],
      true,
    );
    const grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))),
    );
    const dir = join(root, 'otel-grpc');
    mkdirSync(dir);
    const serial = publish(dir);
    const provider = pkg.createMtlsCertificateProvider({ dir });
    const exporter = new OtlpGrpcExporter({
      url: `https://localhost:${grpcPort}`,
      credentials: experimental.createCertificateProviderChannelCredentials(provider, provider),
      timeoutMillis: 10_000,
    });
    try {
      const r = await exportOnce(exporter, makeSpan(`grpc-${randomUUID()}`));
      expect(r.error?.message).toBeUndefined();
      expect(r.code).toBe(ExportResultCode.SUCCESS);
      expect(received.map(norm)).toEqual([norm(serial)]);
    } finally {
      await exporter.shutdown();
      provider.close();
      server.forceShutdown();
    }
  });
});
