// A client for the CA's HTTP API (used by the CLI and, later, the agent): HTTPS that trusts only
// the CA's root, an optional client certificate for the mTLS listener, and server errors turned
// back into MtlsError with the server's code, message, fix and request id.
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ERROR_CODES, MtlsError, type ErrorCode } from '../errors/index.js';
import { readCertificates } from '../pki/index.js';

export interface CaClientOptions {
  /** Base URL of a CA listener: https://host:8443 (public) or https://host:8444 (mTLS). */
  url: string;
  /** The CA's trust bundle (PEM); the only thing the connection trusts. */
  ca?: string | Buffer;
  /** Client certificate chain and key (PEM) for the mTLS listener. */
  cert?: string | Buffer;
  key?: string | Buffer;
  timeoutMs?: number;
}

export interface CaClient {
  get<T>(path: string, accept?: string): Promise<T>;
  getRaw(path: string, accept?: string): Promise<Buffer>;
  post<T>(path: string, body: unknown): Promise<T>;
}

const TLS_HINTS: Record<string, string> = {
  SELF_SIGNED_CERT_IN_CHAIN: 'the CA presented a certificate chain that --ca-file does not trust',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the CA presented a certificate chain that --ca-file does not trust',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the CA presented a certificate chain that --ca-file does not trust',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the CA certificate does not carry the host name of --ca-url',
  CERT_HAS_EXPIRED: 'a certificate in the handshake has expired',
  EPROTO: 'the TLS handshake failed (a client certificate may be required: this is the mTLS listener)',
  ECONNRESET:
    'the CA closed the connection (the mTLS listener refuses clients without a valid certificate of this CA)',
};

function transportError(url: string, e: NodeJS.ErrnoException): MtlsError {
  const code = e.code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'ETIMEDOUT') {
    return new MtlsError('MTLS_CA_UNREACHABLE', `Cannot reach the CA at ${url} (${code}).`, {
      fix: 'Check --ca-url (mtls ca serve prints its URLs) and that the CA is running.',
      cause: e,
    });
  }
  const hint =
    TLS_HINTS[code] ?? (/certificate|ssl|tls/i.test(e.message) ? 'the TLS handshake failed' : undefined);
  if (hint) {
    return new MtlsError('MTLS_CA_TLS', `TLS with the CA at ${url} failed: ${hint} (${code || e.message}).`, {
      fix: "Use the CA's trust bundle as --ca-file (mtls-data/ca.pem, or fetch it with mtls enroll --root-fingerprint), and for renew/revoke/admin the mTLS URL with a certificate from this CA.",
      cause: e,
    });
  }
  return new MtlsError('MTLS_CA_UNREACHABLE', `Request to the CA at ${url} failed: ${e.message}.`, {
    fix: 'Check --ca-url and the network.',
    cause: e,
  });
}

function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.hasOwn(ERROR_CODES, s);
}

export function createCaClient(opts: CaClientOptions): CaClient {
  const base = new URL(opts.url);
  const send = (
    method: string,
    path: string,
    body: Buffer | undefined,
    accept: string,
  ): Promise<{ status: number; body: Buffer }> =>
    new Promise((resolve, reject) => {
      const u = new URL(path, base);
      const headers: Record<string, string | number> = { accept };
      if (body) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = body.length;
      }
      const options = {
        method,
        headers,
        agent: false as const,
        ...(u.protocol === 'https:'
          ? {
              ...(opts.ca ? { ca: opts.ca } : {}),
              ...(opts.cert ? { cert: opts.cert } : {}),
              ...(opts.key ? { key: opts.key } : {}),
            }
          : {}),
      };
      const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(u, options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on('error', (e) => reject(transportError(opts.url, e)));
      });
      req.setTimeout(opts.timeoutMs ?? 15_000, () =>
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
      );
      req.on('error', (e: NodeJS.ErrnoException) => reject(transportError(opts.url, e)));
      if (body) req.write(body);
      req.end();
    });
  const check = (r: { status: number; body: Buffer }): Buffer => {
    if (r.status >= 200 && r.status < 300) return r.body;
    let j: Record<string, unknown> = {};
    try {
      j = JSON.parse(r.body.toString('utf8')) as Record<string, unknown>;
    } catch {
      // not JSON: keep the status
    }
    const code = isErrorCode(j.code) ? j.code : 'MTLS_CA_INTERNAL';
    const message = typeof j.message === 'string' ? j.message : `The CA answered HTTP ${r.status}.`;
    throw new MtlsError(
      code,
      `${message}${typeof j.requestId === 'string' ? ` (request ${j.requestId})` : ''}`,
      {
        ...(typeof j.fix === 'string' ? { fix: j.fix } : {}),
        details: { status: r.status, ...(typeof j.requestId === 'string' ? { requestId: j.requestId } : {}) },
      },
    );
  };
  return {
    getRaw: async (path, accept = '*/*') => check(await send('GET', path, undefined, accept)),
    get: async <T>(path: string, accept = 'application/json') =>
      JSON.parse(check(await send('GET', path, undefined, accept)).toString('utf8')) as T,
    post: async <T>(path: string, body: unknown) =>
      JSON.parse(
        check(await send('POST', path, Buffer.from(JSON.stringify(body)), 'application/json')).toString(
          'utf8',
        ),
      ) as T,
  };
}

export function sha256Fingerprint(der: Buffer): string {
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?!$)/g, '$1:');
}

/** Normalises "AA:BB…", "aabb…" and "SHA256:aabb…" for comparison. */
export function normalizeFingerprint(fp: string): string {
  return fp
    .replace(/^sha256:/i, '')
    .replace(/[:\s]/g, '')
    .toLowerCase();
}

/**
 * Bootstrap trust: fetch the trust bundle from `rootsUrl` (any transport: what makes it trusted is
 * the fingerprint) and keep it only when one of its certificates has the expected SHA-256 fingerprint.
 */
export async function fetchPinnedRoots(rootsUrl: string, fingerprint: string): Promise<string> {
  const client = createCaClient({ url: rootsUrl });
  const pem = (await client.getRaw(new URL(rootsUrl).pathname, 'application/x-pem-file')).toString('latin1');
  const certs = readCertificates(Buffer.from(pem), rootsUrl);
  const want = normalizeFingerprint(fingerprint);
  if (!certs.some((c) => normalizeFingerprint(sha256Fingerprint(c.der)) === want)) {
    throw new MtlsError(
      'MTLS_CA_ROOT_MISMATCH',
      `The trust bundle at ${rootsUrl} does not hold the root with fingerprint ${fingerprint}.`,
      {
        fix: 'Check the fingerprint (mtls ca serve and mtls ca init print it); a mismatch can mean you reached the wrong CA or someone in between.',
        details: { got: certs.map((c) => sha256Fingerprint(c.der)) },
      },
    );
  }
  return pem;
}
