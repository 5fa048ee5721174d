// Client-side helpers for tests that put load on `mtls ca serve`: in-process CSRs, tokens, bounded
// concurrency, paginated inventory and audit reads, an SSE reader and deadline polling.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  certIdFor,
  createCsr,
  encodeOcspRequest,
  generateKey,
  parseCrl,
  parseOcspResponse,
  readCertificates,
  type Certificate,
  type OcspSingleResponse,
  type San,
} from '../../src/pki/index.js';
import type { AuditRecord } from '../../src/store/index.js';
import { call, type ClientCredential, type HttpAnswer } from './ca-service.js';

/** A fresh P-256 key and a CSR for these identities ("dns:a.example", "spiffe://…"), as PEM. */
export function csrFor(identities: readonly string[]): string {
  const sans: San[] = identities.map((id) => {
    if (id.startsWith('spiffe://')) return { type: 'uri', value: id };
    const i = id.indexOf(':');
    return { type: id.slice(0, i) as 'dns' | 'ip' | 'email' | 'uri', value: id.slice(i + 1) };
  });
  const cn = sans[0]?.value ?? 'workload';
  return createCsr({ key: generateKey('p256'), subject: [[{ oid: '2.5.4.3', value: cn }]], sans }).pem;
}

export interface AdminAccess {
  mtlsUrl: string;
  bundle: string;
  admin: ClientCredential;
}

export interface Token {
  token: string;
  id: string;
}

/** POST /v1/tokens as the admin; throws with the answer when it is not 200. */
export async function createToken(a: AdminAccess, grant: Record<string, unknown>): Promise<Token> {
  const r = await call(a.mtlsUrl, { path: '/v1/tokens', body: grant, ca: a.bundle, client: a.admin });
  if (r.status !== 200) throw new Error(`POST /v1/tokens answered ${r.status}: ${r.body.toString()}`);
  const j = r.json();
  return { token: j.token as string, id: j.id as string };
}

/** POST /v1/sign (public listener). */
export function sign(publicUrl: string, bundle: string, token: string, csr: string): Promise<HttpAnswer> {
  return call(publicUrl, { path: '/v1/sign', body: { token, csr }, ca: bundle });
}

/** Runs `fn` over `items` with at most `concurrency` calls in flight; answers results in item order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return out;
}

export interface InventoryEntry {
  serial: string;
  identity: string;
  profile: string;
  status: string;
}

/** The whole inventory (GET /v1/certificates, keyset pages of 1000). */
export async function listInventory(a: AdminAccess): Promise<InventoryEntry[]> {
  const all: InventoryEntry[] = [];
  for (let page = 0, after = ''; page < 100; page++) {
    const r = await call(a.mtlsUrl, {
      path: `/v1/certificates?limit=1000${after ? `&after=${after}` : ''}`,
      ca: a.bundle,
      client: a.admin,
    });
    if (r.status !== 200) throw new Error(`GET /v1/certificates answered ${r.status}: ${r.body.toString()}`);
    const certs = r.json().certificates as InventoryEntry[];
    all.push(...certs);
    if (certs.length < 1000) return all;
    after = certs[certs.length - 1]!.serial;
  }
  throw new Error('the inventory has more than 100 pages');
}

/** The whole audit log (GET /v1/audit, pages of 1000), with `at` back as a Date as the chain hashes it. */
export async function readAudit(a: AdminAccess): Promise<AuditRecord[]> {
  const all: AuditRecord[] = [];
  for (let page = 0, since = 0; page < 100; page++) {
    const r = await call(a.mtlsUrl, {
      path: `/v1/audit?since=${since}&limit=1000`,
      ca: a.bundle,
      client: a.admin,
    });
    if (r.status !== 200) throw new Error(`GET /v1/audit answered ${r.status}: ${r.body.toString()}`);
    const records = (r.json().records as (Omit<AuditRecord, 'at'> & { at: string })[]).map(
      (rec): AuditRecord => ({ ...rec, at: new Date(rec.at) }),
    );
    all.push(...records);
    if (records.length < 1000) return all;
    since = records[records.length - 1]!.seq;
  }
  throw new Error('the audit log has more than 100 pages');
}

/** The first certificate of a PEM text (a chain's leaf). */
export function leafOf(pem: string): Certificate {
  const [leaf] = readCertificates(Buffer.from(pem), 'chain');
  if (!leaf) throw new Error('no certificate in the PEM text');
  return leaf;
}

/**
 * One nonce-less OCSP POST for `leaf` (the cacheable kind, as most clients send), parsed; throws
 * when the response is not `successful` with exactly one answer.
 */
export async function ocspStatus(
  httpUrl: string,
  leaf: Certificate,
  issuer: Certificate,
): Promise<OcspSingleResponse> {
  const r = await call(httpUrl, {
    path: '/ocsp',
    rawBody: encodeOcspRequest([certIdFor(leaf, issuer)]),
    headers: { 'content-type': 'application/ocsp-request' },
  });
  const parsed = parseOcspResponse(r.body);
  if (r.status !== 200 || parsed.status !== 'successful' || parsed.responses.length !== 1)
    throw new Error(`OCSP answered HTTP ${r.status}, ${parsed.status}, ${parsed.responses.length} responses`);
  return parsed.responses[0]!;
}

/** The serials listed in GET /v1/crl (DER). */
export async function crlSerials(httpUrl: string): Promise<Set<string>> {
  const r = await call(httpUrl, { path: '/v1/crl' });
  if (r.status !== 200) throw new Error(`GET /v1/crl answered ${r.status}`);
  return new Set(parseCrl(r.body).revoked.map((e) => e.serial));
}

/**
 * Calls `probe` every `intervalMs` until it answers a value other than undefined or `timeoutMs`
 * passed; answers the value and the elapsed milliseconds (measured from `startedAt`).
 */
export async function pollUntil<T>(
  probe: () => Promise<T | undefined>,
  o: { timeoutMs: number; intervalMs?: number; startedAt?: number },
): Promise<{ value: T | undefined; elapsedMs: number }> {
  const start = o.startedAt ?? performance.now();
  const deadline = start + o.timeoutMs;
  for (let i = 0; i < 10_000; i++) {
    const value = await probe();
    const now = performance.now();
    if (value !== undefined) return { value, elapsedMs: now - start };
    if (now >= deadline) break;
    await sleep(o.intervalMs ?? 10);
  }
  return { value: undefined, elapsedMs: performance.now() - start };
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
  /** performance.now() when the event was parsed. */
  receivedAt: number;
}

export interface SseStream {
  events: SseEvent[];
  /** Resolves with the first event (seen or future) that matches, or undefined after `timeoutMs`. */
  waitFor(match: (e: SseEvent) => boolean, timeoutMs: number): Promise<SseEvent | undefined>;
  close(): void;
}

/** Opens an HTTPS server-sent-events stream and parses events as they arrive. */
export function openSse(baseUrl: string, path: string, bundle: string): Promise<SseStream> {
  const events: SseEvent[] = [];
  const waiters = new Set<() => void>();
  return new Promise((resolve, reject) => {
    const connectTimer = setTimeout(() => {
      req.destroy();
      reject(new Error(`SSE ${path}: no response headers within 5 s`));
    }, 5000);
    const req = request(
      new URL(path, baseUrl),
      { headers: { accept: 'text/event-stream' }, ca: readFileSync(bundle), agent: false },
      (res) => {
        clearTimeout(connectTimer);
        if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('text/event-stream')) {
          reject(new Error(`SSE ${path} answered ${res.statusCode} ${String(res.headers['content-type'])}`));
          res.resume();
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const e: SseEvent = { data: '', receivedAt: performance.now() };
            const data: string[] = [];
            for (const line of block.split('\n')) {
              if (line.startsWith(':') || !line) continue;
              const i = line.indexOf(':');
              const field = i < 0 ? line : line.slice(0, i);
              const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
              if (field === 'data') data.push(value);
              else if (field === 'id') e.id = value;
              else if (field === 'event') e.event = value;
            }
            if (data.length === 0 && e.event === undefined) continue; // a comment-only block (ping)
            e.data = data.join('\n');
            events.push(e);
            for (const w of [...waiters]) w();
          }
        });
        res.on('error', () => undefined);
        resolve({
          events,
          waitFor: (match, timeoutMs) =>
            new Promise((done) => {
              const found = events.find(match);
              if (found) return done(found);
              const check = (): void => {
                const hit = events.find(match);
                if (hit) finish(hit);
              };
              const finish = (v: SseEvent | undefined): void => {
                clearTimeout(timer);
                waiters.delete(check);
                done(v);
              };
              const timer = setTimeout(() => finish(undefined), timeoutMs);
              waiters.add(check);
            }),
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', (e) => {
      clearTimeout(connectTimer);
      reject(e);
    });
    req.end();
  });
}
