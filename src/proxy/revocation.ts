// Revocation for a listener: CRL files (re-read when they change, each signature checked against the
// CA that issued it) and the mtlskit CA's revocation feed (a server-sent event stream with catch-up
// by sequence number). Both answer the same question per accepted peer; failMode decides what a
// stale answer means.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'undici';
import { MtlsError } from '../errors/index.js';
import {
  decodePem,
  findRevoked,
  isProbablyPem,
  issuerNameMatches,
  nameKey,
  parseCrl,
  verifyCrlSignature,
  formatName,
  type Certificate,
  type Crl,
} from '../pki/index.js';
import type { Logger } from '../telemetry/index.js';
import type { ListenerConfig } from './config.js';
import { parseIntermediates, type Verdict } from './verdict.js';

export type RevocationConfig = NonNullable<ListenerConfig['revocation']>;

export interface LoadedCrl {
  crl: Crl;
  path: string;
  issuerKey: string;
  /** SHA-256 of issuer certificates whose key verified this CRL's signature. */
  verifiedBy: Set<string>;
  /** …and of those it did not verify with. */
  rejectedBy: Set<string>;
}

export type RevocationResult =
  | { ok: true; stale?: boolean }
  | { ok: false; reason: 'revoked' | 'crl_expired' | 'revocation_unavailable'; detail: string };

function fingerprint(c: Certificate): string {
  return createHash('sha256').update(c.der).digest('hex');
}

/** Reads the CRL files of a listener; a CRL whose issuer is in `trust` must verify with it now. */
export function loadCrlFiles(
  paths: readonly string[],
  trust: readonly Certificate[],
  listener: string,
): LoadedCrl[] {
  const out: LoadedCrl[] = [];
  for (const path of paths) {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (e) {
      throw new MtlsError('MTLS_PROXY_TLS_CONFIG', `Listener ${listener}: cannot read the CRL ${path}.`, {
        cause: e,
        fix: 'Check revocation.crl (relative paths are relative to the config file).',
      });
    }
    let crls: Crl[];
    try {
      crls = isProbablyPem(data)
        ? decodePem(data, path)
            .filter((b) => b.label === 'X509 CRL' || b.label === 'CRL')
            .map((b) => parseCrl(b.der))
        : [parseCrl(data)];
      if (crls.length === 0) throw new Error('the file holds no "X509 CRL" PEM block');
    } catch (e) {
      throw new MtlsError(
        'MTLS_PROXY_TLS_CONFIG',
        `Listener ${listener}: the CRL ${path} cannot be read: ${(e as Error).message}`,
        { cause: e, fix: 'Give a PEM or DER CRL (the CA serves one at /v1/crl/chain).' },
      );
    }
    for (const crl of crls) {
      const loaded: LoadedCrl = {
        crl,
        path,
        issuerKey: nameKey(crl.issuer),
        verifiedBy: new Set(),
        rejectedBy: new Set(),
      };
      const issuers = trust.filter((t) => nameKey(t.subject) === loaded.issuerKey);
      if (issuers.length > 0) {
        const good = issuers.find((t) => verifyCrlSignature(crl, t));
        if (!good)
          throw new MtlsError(
            'MTLS_PROXY_TLS_CONFIG',
            `Listener ${listener}: the CRL ${path} (issuer ${formatName(crl.issuer)}) is not signed by that CA in tls.clientCa.`,
            { fix: 'Fetch the CRL again from the CA that issued the client certificates.' },
          );
        loaded.verifiedBy.add(fingerprint(good));
      }
      out.push(loaded);
    }
  }
  return out;
}

interface FeedEvent {
  seq: number;
  serial: string;
}

/** One subscription to a CA's /v1/revocations stream, reconnecting with catch-up from the last seq. */
export class RevocationFeed {
  readonly url: string;
  readonly revoked = new Set<string>();
  lastSeq = 0;
  /** When anything (event, sync marker or heartbeat) last arrived; 0 before the first. */
  lastMessageAt = 0;
  synced = false;
  readonly #agent: Agent;
  readonly #log: Logger;
  readonly #heartbeatS: number;
  readonly #onRevoked: (serials: string[]) => void;
  #abort = new AbortController();
  #closed = false;
  #syncWaiters: (() => void)[] = [];

  constructor(
    url: string,
    ca: Buffer | undefined,
    staleAfterMs: number,
    log: Logger,
    onRevoked: (serials: string[]) => void,
  ) {
    this.url = url.replace(/\/$/, '');
    this.#agent = new Agent({ connect: ca ? { ca } : {}, bodyTimeout: 0, headersTimeout: 10_000 });
    this.#log = log;
    this.#heartbeatS = Math.max(1, Math.min(15, Math.floor(staleAfterMs / 3_000)));
    this.#onRevoked = onRevoked;
    void this.#run();
  }

  /** Resolves when the catch-up is done, or after `ms`. */
  waitSynced(ms: number): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(this.synced), ms);
      this.#syncWaiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }

  ageMs(now = Date.now()): number | undefined {
    return this.lastMessageAt === 0 ? undefined : now - this.lastMessageAt;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    await this.#agent.close().catch(() => undefined);
  }

  async #run(): Promise<void> {
    let backoff = 250;
    while (!this.#closed) {
      this.#abort = new AbortController();
      try {
        await this.#stream(this.#abort.signal);
        backoff = 250;
      } catch (e) {
        if (this.#closed) return;
        this.#log.warn(
          { event: 'revocation_feed_error', feed: this.url, err: (e as Error).message },
          'revocation feed disconnected; reconnecting',
        );
      }
      // `synced` stays true after the first catch-up: a disconnect is judged by the feed's age
      // (staleAfter), and the reconnect catches up from lastSeq.
      if (this.#closed) return;
      await new Promise((r) => setTimeout(r, backoff).unref());
      backoff = Math.min(backoff * 2, 5_000);
    }
  }

  async #stream(signal: AbortSignal): Promise<void> {
    const res = await request(
      `${this.url}/v1/revocations?since=${this.lastSeq}&heartbeat=${this.#heartbeatS}`,
      {
        dispatcher: this.#agent,
        headers: { accept: 'text/event-stream' },
        signal,
      },
    );
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`the CA answered ${res.statusCode}`);
    }
    // A watchdog: a silent stream (half-open TCP) is dropped after three missed heartbeats.
    let watchdog = setTimeout(() => this.#abort.abort(), this.#heartbeatS * 3_000);
    let buf = '';
    let event = 'message';
    let data = '';
    try {
      for await (const chunk of res.body) {
        this.lastMessageAt = Date.now();
        clearTimeout(watchdog);
        watchdog = setTimeout(() => this.#abort.abort(), this.#heartbeatS * 3_000);
        buf += (chunk as Buffer).toString('utf8');
        let nl: number;
        const batch: string[] = [];
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line === '') {
            if (data) this.#dispatch(event, data, batch);
            event = 'message';
            data = '';
          } else if (line.startsWith('event:')) event = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (batch.length) this.#onRevoked(batch);
      }
    } finally {
      clearTimeout(watchdog);
    }
    throw new Error('the CA closed the stream');
  }

  #dispatch(event: string, data: string, batch: string[]): void {
    let parsed: Partial<FeedEvent>;
    try {
      parsed = JSON.parse(data) as Partial<FeedEvent>;
    } catch {
      return;
    }
    if (event === 'revocation' && typeof parsed.serial === 'string' && typeof parsed.seq === 'number') {
      if (!this.revoked.has(parsed.serial)) {
        this.revoked.add(parsed.serial);
        batch.push(parsed.serial);
      }
      this.lastSeq = Math.max(this.lastSeq, parsed.seq);
    } else if (event === 'synced') {
      if (typeof parsed.seq === 'number') this.lastSeq = Math.max(this.lastSeq, parsed.seq);
      if (!this.synced) {
        this.synced = true;
        this.#log.info(
          { event: 'revocation_feed_synced', feed: this.url, seq: this.lastSeq, revoked: this.revoked.size },
          'revocation feed in sync',
        );
      }
      for (const w of this.#syncWaiters.splice(0)) w();
    }
  }
}

/**
 * The revocation state of one listener. `apply` swaps in new CRLs and (re)starts the feed only when
 * its address changed, so a reload keeps the feed's connection and catch-up position.
 */
export class RevocationChecker {
  #cfg: RevocationConfig | undefined;
  #crls: LoadedCrl[] = [];
  #feed: RevocationFeed | undefined;
  #feedKey = '';
  readonly #listener: string;
  readonly #log: Logger;
  readonly #changed = new Set<() => void>();

  constructor(listener: string, log: Logger) {
    this.#listener = listener;
    this.#log = log;
  }

  get enabled(): boolean {
    return this.#cfg !== undefined;
  }

  /** CRLs are loaded: intermediates of the peer's chain are checked too. */
  get needsChain(): boolean {
    return this.#crls.length > 0;
  }

  get feed(): RevocationFeed | undefined {
    return this.#feed;
  }

  /** Called when revocations arrive or CRLs change: open connections should be checked again. */
  onChange(cb: () => void): () => void {
    this.#changed.add(cb);
    return () => this.#changed.delete(cb);
  }

  #emit(): void {
    for (const cb of this.#changed) cb();
  }

  apply(cfg: RevocationConfig | undefined, crls: LoadedCrl[], feedCa: Buffer | undefined): void {
    this.#cfg = cfg;
    this.#crls = crls;
    const key = cfg?.feed
      ? `${cfg.feed}|${feedCa ? createHash('sha256').update(feedCa).digest('hex') : ''}|${cfg.staleAfter}`
      : '';
    if (key !== this.#feedKey) {
      const old = this.#feed;
      this.#feed = undefined;
      this.#feedKey = key;
      if (old) void old.close();
      if (cfg?.feed)
        this.#feed = new RevocationFeed(cfg.feed, feedCa, cfg.staleAfter, this.#log, (serials) => {
          this.#log.info(
            { event: 'revocations_received', feed: cfg.feed, serials },
            'revocations received from the CA',
          );
          this.#emit();
        });
    }
    this.#emit();
  }

  /** Waits (bounded) for the feed's first catch-up so the first requests are judged with it. */
  async ready(ms = 5_000): Promise<boolean> {
    return this.#feed ? this.#feed.waitSynced(ms) : true;
  }

  /** True when the answer for new peers would be stale (feed silent or behind, or a CRL past nextUpdate). */
  stale(now = Date.now()): boolean {
    if (!this.#cfg) return false;
    if (this.#feedStale(now)) return true;
    return this.#crls.some((c) => c.crl.nextUpdate !== undefined && c.crl.nextUpdate.getTime() < now);
  }

  #feedStale(now: number): boolean {
    const f = this.#feed;
    if (!f || !this.#cfg) return false;
    const age = f.ageMs(now);
    return !f.synced || age === undefined || age > this.#cfg.staleAfter;
  }

  /** The revocation answer for an accepted peer. */
  check(v: Verdict, now = Date.now()): RevocationResult {
    const cfg = this.#cfg;
    if (!cfg || !v.leaf) return { ok: true };
    let stale = false;
    if (this.#feed) {
      if (this.#feed.revoked.has(v.leaf.serial))
        return {
          ok: false,
          reason: 'revoked',
          detail: `Your certificate (serial ${v.leaf.serial}, ${v.subject ?? ''}) was revoked at the CA.`,
        };
      if (this.#feedStale(now)) {
        if (cfg.failMode === 'closed')
          return {
            ok: false,
            reason: 'revocation_unavailable',
            detail: `The CA's revocation feed ${cfg.feed} has been silent or out of sync for longer than ${cfg.staleAfter / 1000}s; this listener fails closed.`,
          };
        stale = true;
      }
    }
    if (this.#crls.length) {
      const chain: Certificate[] = [v.leaf, ...parseIntermediates(v.chain)];
      for (let i = 0; i < chain.length; i++) {
        const cert = chain[i]!;
        const issuerKey = nameKey(cert.issuer);
        const issuer = chain[i + 1];
        for (const l of this.#crls) {
          if (l.issuerKey !== issuerKey) continue;
          if (!this.#verified(l, issuer && issuerNameMatches(cert, issuer) ? issuer : undefined)) continue;
          if (findRevoked(l.crl, cert.serial))
            return {
              ok: false,
              reason: 'revoked',
              detail:
                i === 0
                  ? `Your certificate (serial ${cert.serial}, ${v.subject ?? ''}) is revoked by ${formatName(l.crl.issuer)} (CRL ${l.path}).`
                  : `The intermediate ${formatName(cert.subject)} in your chain is revoked (CRL ${l.path}).`,
            };
          if (l.crl.nextUpdate && l.crl.nextUpdate.getTime() < now) {
            if (cfg.failMode === 'closed')
              return {
                ok: false,
                reason: 'crl_expired',
                detail: `The CRL ${l.path} of ${formatName(l.crl.issuer)} expired at ${l.crl.nextUpdate.toISOString()}; this listener fails closed until a fresh one is installed.`,
              };
            stale = true;
          }
        }
      }
    }
    return stale ? { ok: true, stale } : { ok: true };
  }

  #verified(l: LoadedCrl, issuer: Certificate | undefined): boolean {
    if (!issuer) return l.verifiedBy.size > 0;
    const fp = fingerprint(issuer);
    if (l.verifiedBy.has(fp)) return true;
    if (l.rejectedBy.has(fp)) return false;
    if (verifyCrlSignature(l.crl, issuer)) {
      l.verifiedBy.add(fp);
      return true;
    }
    l.rejectedBy.add(fp);
    this.#log.warn(
      {
        event: 'crl_signature_mismatch',
        listener: this.#listener,
        crl: l.path,
        issuer: formatName(issuer.subject),
      },
      'a CRL does not verify with the issuer a peer presented; it is ignored for that issuer',
    );
    return false;
  }

  async close(): Promise<void> {
    this.#changed.clear();
    const f = this.#feed;
    this.#feed = undefined;
    if (f) await f.close();
  }
}
