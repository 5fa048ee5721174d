// The CA's OCSP responder (RFC 6960): a delegated responder certificate (profile ocsp) issued by the
// intermediate, answers looked up in the store, nonce-less answers cached per CertID until half their
// validity or until a revocation of that serial (here or on another replica) drops them.
import { MtlsError } from '../errors/index.js';
import {
  certIdMatcher,
  createOcspResponder,
  generateKey,
  parseCertificate,
  parseOcspRequest,
  spkiOf,
  type CertIdMatcher,
  type Clock,
  type OcspCertStatus,
  type OcspResponder,
} from '../pki/index.js';
import type { Store } from '../store/index.js';
import { caChannels } from '../telemetry/index.js';
import type { FileCa } from './file-ca.js';

export interface OcspServiceOptions {
  ca: FileCa;
  store: Store;
  clock: Clock;
  /** How long an answer is valid (nextUpdate - thisUpdate). */
  validityMs: number;
  /** Lifetime of the delegated responder certificate (default 7 days); renewed at half-life. */
  responderTtlMs?: number;
}

interface Cached {
  der: Buffer;
  refreshAt: number;
  serial: string;
}

const MAX_CACHE = 100_000;

export class OcspService {
  readonly #opts: OcspServiceOptions;
  readonly #matcher: CertIdMatcher;
  #responder: OcspResponder;
  #responderRenewAt = 0;
  readonly #cache = new Map<string, Cached>();
  readonly #bySerial = new Map<string, Set<string>>();
  /** Bumped by every invalidation: an answer computed across one is not cached (it may predate it). */
  #generation = 0;

  constructor(opts: OcspServiceOptions) {
    this.#opts = opts;
    this.#matcher = certIdMatcher(opts.ca.intermediate);
    this.#responder = this.#newResponder();
  }

  #newResponder(): OcspResponder {
    const { ca, clock } = this.#opts;
    const ttl = this.#opts.responderTtlMs ?? 7 * 86_400_000;
    const key = generateKey('p256');
    const issued = ca.issuer.issue({
      profile: 'ocsp',
      subject: [[{ oid: '2.5.4.3', value: `${ca.meta.name} OCSP responder` }]],
      publicKey: spkiOf(key),
      ttlMs: ttl,
    });
    const now = clock.now().getTime();
    this.#responderRenewAt = now + ttl / 2;
    this.#cache.clear();
    this.#bySerial.clear();
    return createOcspResponder({
      issuerCert: ca.intermediate,
      responderCert: parseCertificate(issued.der),
      responderKey: key,
      clock,
    });
  }

  get responderCertificate(): Buffer {
    return this.#responder.responderCert.der;
  }

  /** Drops cached answers for these serials (called on every revocation this process learns of). */
  invalidate(serials: readonly string[]): void {
    this.#generation++;
    for (const s of serials) {
      const keys = this.#bySerial.get(s);
      if (!keys) continue;
      for (const k of keys) this.#cache.delete(k);
      this.#bySerial.delete(s);
    }
  }

  /** Answers one DER OCSPRequest; never throws: malformed input gets a malformedRequest response. */
  async answer(requestDer: Buffer): Promise<Buffer> {
    if (!caChannels.ocsp.hasSubscribers) return (await this.#answer(requestDer)).der;
    const started = performance.now();
    const r = await this.#answer(requestDer);
    caChannels.ocsp.publish({ result: r.result, seconds: (performance.now() - started) / 1000 });
    return r.der;
  }

  async #answer(
    requestDer: Buffer,
  ): Promise<{ der: Buffer; result: 'cached' | 'signed' | 'malformed' | 'error' }> {
    let req;
    try {
      req = parseOcspRequest(requestDer);
    } catch (e) {
      if (e instanceof MtlsError)
        return { der: this.#responder.errorResponse('malformedRequest'), result: 'malformed' };
      throw e;
    }
    const now = this.#opts.clock.now().getTime();
    if (now >= this.#responderRenewAt) this.#responder = this.#newResponder();
    const single = req.certIds.length === 1 && !req.nonce ? req.certIds[0]! : undefined;
    if (single) {
      const hit = this.#cache.get(single.der.toString('latin1'));
      if (hit && hit.refreshAt > now) return { der: hit.der, result: 'cached' };
    }
    const generation = this.#generation;
    let entries;
    try {
      entries = await Promise.all(
        req.certIds.map(async (certId) => ({
          certId,
          status: await this.#status(certId.serial, this.#matcher.matches(certId)),
        })),
      );
    } catch {
      return { der: this.#responder.errorResponse('tryLater'), result: 'error' };
    }
    const thisUpdate = new Date(Math.floor(now / 1000) * 1000);
    const responderEnd = this.#responder.responderCert.notAfter.getTime();
    const nextUpdate = new Date(Math.min(thisUpdate.getTime() + this.#opts.validityMs, responderEnd));
    const der = this.#responder.respond(entries, {
      thisUpdate,
      nextUpdate,
      ...(req.nonce ? { nonce: req.nonce } : {}),
    });
    // A status read before a revocation committed must not be cached after the revocation dropped
    // the cache: it would be served as "good" until refreshAt (half the OCSP validity).
    if (single && generation === this.#generation)
      this.#remember(
        single.der.toString('latin1'),
        single.serial,
        der,
        now + (nextUpdate.getTime() - thisUpdate.getTime()) / 2,
      );
    return { der, result: 'signed' };
  }

  #remember(key: string, serial: string, der: Buffer, refreshAt: number): void {
    if (this.#cache.size >= MAX_CACHE) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(key, { der, refreshAt, serial });
    let keys = this.#bySerial.get(serial);
    if (!keys) this.#bySerial.set(serial, (keys = new Set()));
    keys.add(key);
  }

  async #status(serial: string, ours: boolean): Promise<OcspCertStatus> {
    if (!ours) return 'unknown';
    const rec = await this.#opts.store.getCertificate(serial);
    if (!rec) return 'unknown';
    if (rec.status === 'revoked')
      return {
        revoked: {
          at: rec.revokedAt ?? new Date(0),
          ...(rec.revocationReason ? { reason: rec.revocationReason } : {}),
        },
      };
    return 'good';
  }
}
