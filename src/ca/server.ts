// `mtls ca serve`: the CA's HTTP API on three listeners.
//  - public HTTPS (listen): enrollment with tokens, roots, CRL, OCSP, revocation feed, health;
//  - mTLS HTTPS (mtlsListen): requires a client certificate that OpenSSL verified against this CA's
//    root in the handshake (requestCert + rejectUnauthorized): renewal, revocation, admin;
//  - plain HTTP (httpListen, optional): roots, CRL and OCSP, which are signed objects.
// Splitting the listeners keeps verification on everywhere: no endpoint ever sees an unverified
// client certificate.
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import { parseDuration } from '../config/index.js';
import { MtlsError, type ErrorCode } from '../errors/index.js';
import {
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  spkiOf,
  isCrlReason,
  decodeOcspGetPath,
  ocspErrorResponse,
  systemClock,
  type Certificate,
  type Clock,
} from '../pki/index.js';
import type { Store, TokenGrant } from '../store/index.js';
import { caChannels, createCaMetrics, createLogger, type Logger } from '../telemetry/index.js';
import { Authority, type RequestContext } from './authority.js';
import { OcspService } from './ocsp-service.js';
import type { FileCa } from './file-ca.js';
import type { CaConfig } from './policy.js';

export interface CaServerOptions {
  ca: FileCa;
  store: Store;
  config: CaConfig;
  clock?: Clock;
  /** Defaults to JSON logs at info on stderr. */
  logger?: Logger;
  /** How often to look for revocations made by other replicas (default 250 ms). */
  revocationPollMs?: number;
}

export interface RunningCa {
  authority: Authority;
  publicUrl: string;
  mtlsUrl: string;
  httpUrl: string | undefined;
  /**
   * Replaces the published roots and the mTLS listener's trust anchors (root rotation: a staged root
   * is published and trusted before anything is issued under it). Running connections keep theirs.
   */
  reloadTrust(trustPem: string): void;
  close(): Promise<void>;
}

const STATUS: Partial<Record<ErrorCode, number>> = {
  MTLS_CA_BAD_REQUEST: 400,
  MTLS_PKI_BAD_CSR: 400,
  MTLS_PKI_BAD_PEM: 400,
  MTLS_PKI_BAD_DER: 400,
  MTLS_PKI_WRONG_OBJECT: 400,
  MTLS_PKI_CSR_SIGNATURE: 400,
  MTLS_PKI_BAD_SAN: 400,
  MTLS_PKI_BAD_SPIFFE_ID: 400,
  MTLS_PKI_PROFILE_VIOLATION: 400,
  MTLS_PKI_BAD_VALIDITY: 400,
  MTLS_CLI_BAD_DURATION: 400,
  MTLS_CA_UNAUTHENTICATED: 401,
  MTLS_CA_TOKEN_INVALID: 401,
  MTLS_CA_TOKEN_EXPIRED: 401,
  MTLS_CA_TOKEN_USED: 409,
  MTLS_CA_NOT_ADMIN: 403,
  MTLS_CA_NAME_NOT_ALLOWED: 403,
  MTLS_CA_POLICY: 403,
  MTLS_CA_REVOKED: 403,
  MTLS_CA_RENEW_EXPIRED: 403,
  MTLS_CA_UNKNOWN_CERTIFICATE: 404,
  MTLS_CA_NOT_FOUND_ROUTE: 404,
  MTLS_CA_ALREADY_REVOKED: 409,
  MTLS_CA_BODY_TOO_LARGE: 413,
};

function statusFor(code: string): number {
  if (code === 'MTLS_STORE_UNAVAILABLE') return 503;
  return STATUS[code as ErrorCode] ?? 500;
}

function hostPort(listen: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listen);
  if (!m)
    throw new MtlsError('MTLS_CONFIG_INVALID', `"${listen}" is not host:port.`, {
      fix: 'Write it as 127.0.0.1:8443 (port 0 picks a free port).',
    });
  return { host: m[1]!, port: Number(m[2]) };
}

function urlOf(server: FastifyInstance, scheme: 'http' | 'https'): string {
  const a = server.server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${scheme}://${host}:${a.port}`;
}

function body(req: FastifyRequest): Record<string, unknown> {
  const b = req.body;
  if (b === null || typeof b !== 'object' || Array.isArray(b)) {
    throw new MtlsError('MTLS_CA_BAD_REQUEST', 'The request body must be a JSON object.', {
      fix: 'Send Content-Type: application/json with an object body.',
    });
  }
  return b as Record<string, unknown>;
}

function str(b: Record<string, unknown>, key: string, required: true): string;
function str(b: Record<string, unknown>, key: string, required: false): string | undefined;
function str(b: Record<string, unknown>, key: string, required: boolean): string | undefined {
  const v = b[key];
  if (v === undefined && !required) return undefined;
  if (typeof v !== 'string' || v.length === 0) {
    throw new MtlsError('MTLS_CA_BAD_REQUEST', `The field "${key}" must be a non-empty string.`, {
      fix: `Send "${key}" in the JSON body.`,
    });
  }
  return v;
}

function ttlOf(b: Record<string, unknown>): number | undefined {
  const t = str(b, 'ttl', false);
  return t === undefined ? undefined : parseDuration(t, 'ttl');
}

/** The verified client certificate of an mTLS request (OpenSSL already accepted it in the handshake). */
function clientCertOf(req: FastifyRequest): Certificate | undefined {
  const socket = req.raw.socket as TLSSocket;
  if (!socket.authorized) return undefined;
  const peer = socket.getPeerX509Certificate?.();
  return peer ? parseCertificate(peer.raw) : undefined;
}

function installErrorHandling(app: FastifyInstance): void {
  app.addHook('onRequest', (req, _reply, done) => {
    (req as FastifyRequest & { started?: number }).started = performance.now();
    done();
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({
      code: 'MTLS_CA_NOT_FOUND_ROUTE',
      message: `No endpoint ${req.method} ${req.url}.`,
      requestId: req.id,
    });
  });
  app.setErrorHandler((err: unknown, req, reply) => {
    let e: MtlsError;
    if (err instanceof MtlsError) e = err;
    else if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      e = new MtlsError('MTLS_CA_BODY_TOO_LARGE', 'The request body is too large.', {
        fix: 'Send one CSR (a few KiB at most).',
      });
    else if (
      (err as { statusCode?: number }).statusCode === 400 ||
      (err as { code?: string }).code?.startsWith('FST_ERR_CTP')
    ) {
      e = new MtlsError('MTLS_CA_BAD_REQUEST', `The request body cannot be read: ${(err as Error).message}`, {
        fix: 'Send Content-Type: application/json with a valid JSON object.',
        cause: err,
      });
    } else
      e = new MtlsError('MTLS_CA_INTERNAL', 'The CA failed while handling the request.', {
        cause: err,
        fix: `Look for requestId ${req.id} in the CA log.`,
      });
    const status = statusFor(e.code);
    if (e.code === 'MTLS_STORE_UNAVAILABLE' && caChannels.storeError.hasSubscribers)
      caChannels.storeError.publish({ code: e.code });
    if (status >= 500) req.log.error({ err: e.cause ?? e, code: e.code }, e.message);
    else req.log.info({ code: e.code }, e.message);
    void reply
      .code(status)
      .send({ code: e.code, message: e.message, requestId: req.id, ...(e.fix ? { fix: e.fix } : {}) });
  });
}

function grantOf(b: Record<string, unknown>): { grant: TokenGrant; ttlMs?: number } {
  const profile = str(b, 'profile', true);
  const sans = b.sans === undefined ? [] : b.sans;
  if (!Array.isArray(sans) || !sans.every((s) => typeof s === 'string')) {
    throw new MtlsError('MTLS_CA_BAD_REQUEST', 'sans must be an array of identity strings.', {
      fix: 'Send e.g. "sans": ["dns:api.internal", "spiffe://example.org/ns/prod/sa/api"].',
    });
  }
  const commonName = str(b, 'commonName', false);
  const maxTtl = str(b, 'maxTtl', false);
  const ttlMs = ttlOf(b);
  const grant: TokenGrant = {
    profile: profile as TokenGrant['profile'],
    sans: sans,
    maxTtlMs: maxTtl ? parseDuration(maxTtl, 'maxTtl') : 24 * 3_600_000,
    ...(commonName ? { commonName } : {}),
  };
  if (!['client', 'server', 'peer', 'spiffe'].includes(profile)) {
    throw new MtlsError('MTLS_CA_POLICY', `Tokens cannot grant the "${profile}" profile.`, {
      fix: 'Use client, server, peer or spiffe.',
    });
  }
  if (grant.sans.length === 0 && !grant.commonName) {
    throw new MtlsError('MTLS_CA_BAD_REQUEST', 'A token must name what it grants: sans or commonName.', {
      fix: 'Send "sans": ["dns:…"] or "commonName": "…".',
    });
  }
  return { grant, ...(ttlMs !== undefined ? { ttlMs } : {}) };
}

export async function startCaServer(opts: CaServerOptions): Promise<RunningCa> {
  const { ca, store, config } = opts;
  // The CA's own HTTPS certificate, issued at start by its intermediate (in memory only).
  const tlsKey = generateKey('p256');
  const hosts = [
    ...new Set([
      hostPort(config.listen).host,
      hostPort(config.mtlsListen).host,
      'localhost',
      ...config.serverNames,
    ]),
  ].filter((h) => h && h !== '0.0.0.0' && h !== '::');
  const tlsCert = ca.issuer.issue({
    profile: 'server',
    subject: [[{ oid: '2.5.4.3', value: `${ca.meta.name} CA API` }]],
    sans: hosts.map((h) =>
      /^[\d.]+$|:/.test(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h },
    ),
    publicKey: spkiOf(tlsKey),
    ttlMs: 30 * 86_400_000,
  });
  const tls = { key: exportPrivateKeyPem(tlsKey), cert: tlsCert.pem + ca.intermediatePem };
  const loggerInstance = opts.logger ?? createLogger({ name: 'mtls-ca' });
  const common = {
    loggerInstance: loggerInstance as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    genReqId: () => randomUUID(),
    requestIdHeader: false as const,
  };

  const httpPort = config.httpListen ? hostPort(config.httpListen) : undefined;
  const publicHost = hostPort(config.listen);
  const listening: { httpUrl?: string } = {};
  const authority = new Authority({
    ca,
    store,
    config,
    ...(opts.clock ? { clock: opts.clock } : {}),
    urls: () => {
      const base = config.publicUrl ?? listening.httpUrl;
      return base ? { ocsp: `${base}/ocsp`, crl: `${base}/v1/crl` } : {};
    },
  });

  const pub = Fastify({ ...common, https: tls });
  const mtls = Fastify({
    ...common,
    https: { ...tls, ca: ca.trustPem, requestCert: true, rejectUnauthorized: true },
  });
  const http = httpPort ? Fastify(common) : undefined;
  for (const app of [pub, mtls, http]) if (app) installErrorHandling(app);

  const ctxOf = (req: FastifyRequest, withCert: boolean): RequestContext => {
    const clientCert = withCert ? clientCertOf(req) : undefined;
    return {
      requestId: req.id,
      started: (req as FastifyRequest & { started?: number }).started ?? performance.now(),
      ...(clientCert ? { clientCert } : {}),
    };
  };
  const auth = (): Authority => authority;
  const ocsp = new OcspService({
    ca,
    store,
    clock: opts.clock ?? systemClock,
    validityMs: config.ocsp.validity,
  });

  // Routes every listener serves: public, signed objects.
  const publicRoutes = (app: FastifyInstance): void => {
    app.get('/v1/health', () => ({ status: 'ok' }));
    app.get('/v1/ready', async (_req, reply) => {
      try {
        await store.ping();
        return { status: 'ready', store: store.kind };
      } catch (e) {
        const err = e instanceof MtlsError ? e : new MtlsError('MTLS_CA_INTERNAL', 'not ready', { cause: e });
        return reply.code(503).send({ status: 'unavailable', code: err.code, message: err.message });
      }
    });
    app.get('/v1/roots', (_req, reply) => reply.type('application/x-pem-file').send(ca.trustPem));
    app.get('/v1/crl', async (req, reply) => {
      const crl = await auth().crl();
      void reply.header(
        'cache-control',
        `max-age=${Math.max(0, Math.floor((crl.nextUpdate.getTime() - Date.now()) / 1000) - 60)}`,
      );
      if ((req.headers.accept ?? '').includes('application/x-pem-file'))
        return reply.type('application/x-pem-file').send(crl.pem);
      return reply.type('application/pkix-crl').send(crl.der);
    });
    // OCSP (RFC 6960 appendix A): POST application/ocsp-request, or GET with the base64 request in the path.
    app.addContentTypeParser('application/ocsp-request', { parseAs: 'buffer' }, (_req, payload, done) =>
      done(null, payload),
    );
    const ocspReply = async (reply: FastifyReply, der: Buffer): Promise<FastifyReply> =>
      reply
        .type('application/ocsp-response')
        .header('cache-control', 'max-age=60, public, no-transform, must-revalidate')
        .send(await ocsp.answer(der));
    app.post('/ocsp', async (req, reply) =>
      ocspReply(reply, Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0)),
    );
    app.get('/ocsp/*', async (req, reply) => {
      let der: Buffer;
      try {
        der = decodeOcspGetPath((req.params as Record<string, string>)['*'] ?? '');
      } catch {
        return reply.type('application/ocsp-response').send(ocspErrorResponse('malformedRequest'));
      }
      return ocspReply(reply, der);
    });
    // nginx (ssl_crl) and HAProxy (crl-file) check a CRL for every CA in the chain: serve both.
    app.get('/v1/crl/chain', async (_req, reply) => {
      const crl = await auth().crl();
      return reply.type('application/x-pem-file').send(crl.pem + (ca.rootCrlPem ?? ''));
    });
    app.get('/v1/revocations', async (req, reply) => {
      const since = Number((req.query as Record<string, string>).since ?? '0');
      if (!Number.isInteger(since) || since < 0)
        throw new MtlsError('MTLS_CA_BAD_REQUEST', 'since must be a non-negative integer.', {
          fix: 'Use /v1/revocations?since=0',
        });
      if ((req.headers.accept ?? '').includes('text/event-stream')) {
        const hb = Number((req.query as Record<string, string>).heartbeat ?? '15');
        return streamRevocations(req, reply, since, Number.isFinite(hb) ? Math.min(60, Math.max(1, hb)) : 15);
      }
      const events = await store.revocationsSince(since, 1000);
      return {
        events: events.map((e) => ({
          seq: e.seq,
          serial: e.serial,
          revokedAt: e.revokedAt.toISOString(),
          reason: e.reason,
        })),
      };
    });
  };

  const sse = new Set<(serials: string[]) => void>();
  // Open revocation streams: ended at shutdown, or the listeners would wait for them forever.
  const streams = new Set<FastifyReply['raw']>();
  const streamRevocations = async (
    req: FastifyRequest,
    reply: FastifyReply,
    since: number,
    heartbeatS: number,
  ): Promise<void> => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    // Send the status line and headers now: without a pending event they would otherwise wait for
    // the first write (up to the 15 s ping), and a subscriber could not tell it is connected.
    res.flushHeaders();
    let cursor = since;
    let sending = false;
    let again = false;
    let synced = false;
    // Writes every event after the cursor, in pages; a notification during a flush runs it again.
    // The first complete catch-up ends with a "synced" event: the subscriber then knows it is current.
    const flush = async (): Promise<void> => {
      if (sending) {
        again = true;
        return;
      }
      sending = true;
      try {
        do {
          again = false;
          for (;;) {
            const page = await store.revocationsSince(cursor, 1000);
            for (const e of page) {
              res.write(
                `id: ${e.seq}\nevent: revocation\ndata: ${JSON.stringify({ seq: e.seq, serial: e.serial, revokedAt: e.revokedAt.toISOString(), reason: e.reason })}\n\n`,
              );
              cursor = e.seq;
            }
            if (page.length < 1000) break;
          }
        } while (again);
        if (!synced) {
          synced = true;
          res.write(`event: synced\ndata: ${JSON.stringify({ seq: cursor })}\n\n`);
        }
      } catch (e) {
        req.log.warn({ err: e }, 'revocation stream read failed');
      } finally {
        sending = false;
      }
    };
    const listener = (): void => void flush();
    sse.add(listener);
    streams.add(res);
    const ping = setInterval(() => res.write(': ping\n\n'), heartbeatS * 1000);
    ping.unref();
    req.raw.on('close', () => {
      sse.delete(listener);
      streams.delete(res);
      clearInterval(ping);
    });
    await flush();
  };

  publicRoutes(pub);
  publicRoutes(mtls);
  if (http) publicRoutes(http);
  const metrics = createCaMetrics();
  const metricsRoute = (app: FastifyInstance): void => {
    app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()));
  };
  metricsRoute(mtls);
  if (http) metricsRoute(http);

  pub.post('/v1/sign', async (req) => {
    const b = body(req);
    const ttlMs = ttlOf(b);
    return auth().enroll(
      { token: str(b, 'token', true), csr: str(b, 'csr', true), ...(ttlMs !== undefined ? { ttlMs } : {}) },
      ctxOf(req, false),
    );
  });
  pub.post('/v1/renew', async (req) => {
    const b = body(req);
    const ttlMs = ttlOf(b);
    const proof = str(b, 'proof', false);
    return auth().renewWithProof(
      {
        certificate: str(b, 'certificate', true),
        csr: str(b, 'csr', true),
        ...(proof ? { proof } : {}),
        ...(ttlMs !== undefined ? { ttlMs } : {}),
      },
      ctxOf(req, false),
    );
  });
  mtls.post('/v1/renew', async (req) => {
    const b = req.body === undefined || req.body === null ? {} : body(req);
    const csr = str(b, 'csr', false);
    const ttlMs = ttlOf(b);
    return auth().renew(
      { ...(csr ? { csr } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}) },
      ctxOf(req, true),
    );
  });
  mtls.post('/v1/revoke', async (req) => {
    const b = body(req);
    const reason = str(b, 'reason', false);
    if (reason !== undefined && !isCrlReason(reason)) {
      throw new MtlsError('MTLS_CA_BAD_REQUEST', `"${reason}" is not an RFC 5280 revocation reason.`, {
        fix: 'Use keyCompromise, superseded, cessationOfOperation, affiliationChanged, … or leave it out.',
      });
    }
    return auth().revoke(
      { serial: str(b, 'serial', true), ...(reason ? { reason: reason } : {}) },
      ctxOf(req, true),
    );
  });
  mtls.post('/v1/tokens', async (req) => {
    return auth().createToken(grantOf(body(req)), ctxOf(req, true));
  });
  mtls.get('/v1/certificates', async (req) => {
    const ctx = ctxOf(req, true);
    await auth().requireAdmin(ctx, 'certificate.list');
    const q = req.query as Record<string, string | undefined>;
    const now = new Date();
    const list = await store.listCertificates({
      ...(q.identity ? { identity: q.identity } : {}),
      ...(q.profile ? { profile: q.profile as TokenGrant['profile'] } : {}),
      ...(q.expiring
        ? { expiringBefore: new Date(now.getTime() + parseDuration(q.expiring, 'expiring')), now }
        : {}),
      ...(q.revoked !== undefined ? { revoked: q.revoked === 'true' } : {}),
      limit: Math.min(Number(q.limit ?? 1000) || 1000, 10_000),
      ...(q.after ? { afterSerial: q.after } : {}),
    });
    return {
      certificates: list.map((c) => ({
        serial: c.serial,
        identity: c.identity,
        profile: c.profile,
        subject: c.subject,
        sans: c.sans,
        notBefore: c.notBefore.toISOString(),
        notAfter: c.notAfter.toISOString(),
        status: c.status,
        ...(c.revokedAt ? { revokedAt: c.revokedAt.toISOString(), reason: c.revocationReason } : {}),
        ...(c.renewedFrom ? { renewedFrom: c.renewedFrom } : {}),
      })),
    };
  });
  mtls.get('/v1/audit', async (req) => {
    const ctx = ctxOf(req, true);
    await auth().requireAdmin(ctx, 'audit.list');
    const q = req.query as Record<string, string | undefined>;
    const records = await store.listAudit(
      Number(q.since ?? 0) || 0,
      Math.min(Number(q.limit ?? 1000) || 1000, 10_000),
    );
    return { records: records.map((r) => ({ ...r, at: r.at.toISOString() })) };
  });

  // Listen, then derive the URLs put into certificates.
  await pub.listen({ host: publicHost.host, port: publicHost.port });
  const mtlsHost = hostPort(config.mtlsListen);
  await mtls.listen({ host: mtlsHost.host, port: mtlsHost.port });
  if (http && httpPort) await http.listen({ host: httpPort.host, port: httpPort.port });
  const httpUrl = http ? urlOf(http, 'http') : undefined;
  if (httpUrl) listening.httpUrl = httpUrl;
  authority.onRevocation = (serials) => {
    ocsp.invalidate(serials);
    for (const l of sse) l(serials);
  };
  const poll = setInterval(() => {
    authority.syncRevocations().catch((e: unknown) => pub.log.warn({ err: e }, 'revocation sync failed'));
  }, opts.revocationPollMs ?? 250);
  poll.unref();

  return {
    authority,
    publicUrl: urlOf(pub, 'https'),
    mtlsUrl: urlOf(mtls, 'https'),
    httpUrl,
    reloadTrust: (trustPem) => {
      (mtls.server as unknown as { setSecureContext(o: object): void }).setSecureContext({
        ...tls,
        ca: trustPem,
      });
      ca.trustPem = trustPem;
    },
    close: async () => {
      clearInterval(poll);
      metrics.close();
      for (const res of streams) res.end();
      await Promise.all([pub.close(), mtls.close(), http?.close()]);
    },
  };
}
