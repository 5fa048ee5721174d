// The TLS material of a listener, loaded all at once from its files: every check that can fail runs
// here, before anything is swapped in, so a bad rotation (a key that does not match, half a bundle)
// is refused and the old material keeps serving.
import { createHash, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { MtlsError, isMtlsError } from '../errors/index.js';
import {
  encodePem,
  keyMatchesSpki,
  readCertificates,
  readPrivateKey,
  type Certificate,
} from '../pki/index.js';
import type { ListenerConfig, ProxyConfig } from './config.js';

/**
 * TLS 1.2 suites: ECDHE with AEAD only (Mozilla "intermediate" without DHE), so scanners find no CBC
 * or static-RSA suite. TLS 1.3 suites are OpenSSL's defaults.
 */
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export interface ListenerMaterial {
  /** Everything tls.createSecureContext / server.setSecureContext needs (ticket keys added by the caller). */
  context: SecureContextOptions;
  /** The client CA bundle, parsed: verdicts and path validation use it. */
  trust: Certificate[];
  /** The listener's own chain, leaf first. */
  own: Certificate[];
  /** The listener's own URI SAN (the XFCC By= element). */
  by?: string;
  /** Hash of every input file: equal digests mean nothing changed. */
  digest: string;
  /** Hash of the trust bundle alone: a change means open connections are checked again. */
  trustDigest: string;
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

function sha256(...parts: Buffer[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

/** Reads and checks the cert, key and client CA files of one listener. Throws MTLS_PROXY_TLS_CONFIG. */
export function loadListenerMaterial(cfg: ListenerConfig): ListenerMaterial {
  const certPem = readTlsFile(cfg.tls.cert, 'cert', cfg.name);
  const keyPem = readTlsFile(cfg.tls.key, 'key', cfg.name);
  const caPem = readTlsFile(cfg.tls.clientCa, 'clientCa', cfg.name);
  const fail = (message: string, fix: string, cause?: unknown): never => {
    throw new MtlsError('MTLS_PROXY_TLS_CONFIG', `Listener ${cfg.name}: ${message}`, {
      fix,
      ...(cause ? { cause } : {}),
    });
  };
  let own: Certificate[] = [];
  let trust: Certificate[] = [];
  let key: KeyObject | undefined;
  try {
    own = readCertificates(certPem, cfg.tls.cert);
  } catch (e) {
    fail(
      `tls.cert: ${(e as Error).message}`,
      'tls.cert must hold the PEM certificate, then its intermediates.',
      e,
    );
  }
  try {
    trust = readCertificates(caPem, cfg.tls.clientCa);
  } catch (e) {
    fail(
      `tls.clientCa: ${(e as Error).message}`,
      'tls.clientCa must hold the PEM CA certificates clients chain to.',
      e,
    );
  }
  try {
    key = readPrivateKey(keyPem, undefined, cfg.tls.key).key;
  } catch (e) {
    fail(
      `tls.key: ${(e as Error).message}`,
      isMtlsError(e) && e.code === 'MTLS_PKI_KEY_ENCRYPTED'
        ? 'The proxy runs unattended: give it an unencrypted key file readable only by its user (mode 0600).'
        : 'tls.key must hold the PEM private key of tls.cert.',
      e,
    );
  }
  const leaf = own[0]!;
  if (!keyMatchesSpki(key!, leaf.spki))
    fail(
      `tls.key ${cfg.tls.key} is not the key of tls.cert ${cfg.tls.cert}.`,
      'Install the key and the certificate of the same issuance (while a rotation writes them one after the other, the old pair keeps serving).',
    );
  if (trust.some((c) => !c.basicConstraints?.ca))
    fail(
      `tls.clientCa ${cfg.tls.clientCa} holds a certificate that is not a CA.`,
      'Put only CA certificates (the roots, or intermediates, your clients chain to) in tls.clientCa.',
    );
  const context: SecureContextOptions = {
    // The chain in PEM as read (leaf then intermediates), so what is sent is exactly what was checked.
    cert: own.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
    key: keyPem,
    ca: trust.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
    minVersion: cfg.tls.minVersion,
    ciphers: TLS12_CIPHERS,
    honorCipherOrder: true,
    // OpenSSL resumes a session only under the same context id: tying it to the trust bundle means a
    // session verified under an old bundle is never resumed after the bundle changes.
    sessionIdContext: sha256(Buffer.from(cfg.name), caPem).slice(0, 32),
  };
  try {
    createSecureContext(context);
  } catch (e) {
    fail(
      `the TLS material is not usable: ${(e as Error).message}`,
      'tls.key must be the unencrypted key of tls.cert (PEM); tls.clientCa a PEM bundle.',
      e,
    );
  }
  const by = leaf.subjectAltNames.flatMap((n) => (n.type === 'uri' ? [n.value] : [])).at(0);
  return {
    context,
    trust,
    own,
    ...(by ? { by } : {}),
    digest: sha256(certPem, keyPem, caPem, Buffer.from(cfg.tls.minVersion)),
    trustDigest: sha256(caPem),
  };
}

/**
 * Session ticket keys derived per period from a secret: replicas with the same secret file compute
 * the same key for the same period without talking to each other. Node holds one ticket key at a
 * time, so a ticket issued in the previous period falls back to a full handshake.
 */
export class TicketKeys {
  readonly #secret: Buffer;
  readonly periodMs: number;

  constructor(secret: Buffer, periodMs: number) {
    this.#secret = secret;
    this.periodMs = periodMs;
  }

  static fromConfig(sessions: ProxyConfig['sessions']): TicketKeys {
    if (!sessions.ticketKeyFile) return new TicketKeys(randomBytes(32), sessions.rotateEvery);
    let secret: Buffer;
    try {
      secret = readFileSync(sessions.ticketKeyFile);
    } catch (e) {
      throw new MtlsError(
        'MTLS_PROXY_TLS_CONFIG',
        `Cannot read the session ticket secret ${sessions.ticketKeyFile}.`,
        {
          cause: e,
          fix: 'Create it once and share it between replicas: head -c 48 /dev/urandom > ticket.key && chmod 600 ticket.key',
        },
      );
    }
    if (secret.length < 32)
      throw new MtlsError(
        'MTLS_PROXY_TLS_CONFIG',
        `The session ticket secret ${sessions.ticketKeyFile} holds ${secret.length} bytes; it needs at least 32.`,
        { fix: 'head -c 48 /dev/urandom > ticket.key && chmod 600 ticket.key' },
      );
    return new TicketKeys(secret, sessions.rotateEvery);
  }

  period(now = Date.now()): number {
    return Math.floor(now / this.periodMs);
  }

  /** The 48 bytes Node wants (name, HMAC secret, AES key) for a listener in a period. */
  keyFor(listener: string, period = this.period()): Buffer {
    return Buffer.from(hkdfSync('sha256', this.#secret, listener, `mtlskit ticket keys ${period}`, 48));
  }

  /** Milliseconds until the next period starts. */
  msToNext(now = Date.now()): number {
    return (this.period(now) + 1) * this.periodMs - now;
  }
}
