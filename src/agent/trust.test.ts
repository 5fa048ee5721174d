import { describe, expect, it } from 'vitest';
import { fingerprint256, generateKey, parseCertificate, selfSign } from '../pki/index.js';
import { mergeTrust } from './trust.js';

const T0 = new Date('2026-06-01T00:00:00Z');
const DAY = 86_400_000;
function root(name: string, notBefore: Date, ttlMs: number): { pem: string; fp: string } {
  const r = selfSign(
    generateKey('p256'),
    {
      profile: 'root',
      subject: [[{ oid: '2.5.4.3', value: name }]],
      notBefore,
      ttlMs,
    },
    { now: () => notBefore },
  );
  return { pem: r.pem, fp: fingerprint256(parseCertificate(r.der)) };
}

describe('mergeTrust', () => {
  const oldRoot = root('old root', new Date(T0.getTime() - 100 * DAY), 200 * DAY);
  const newRoot = root('new root', new Date(T0.getTime() - DAY), 400 * DAY);
  const base = { now: T0, retainUnpublishedMs: 7 * DAY };

  it('adds a newly published root beside the old one (rotation staged)', () => {
    const m = mergeTrust({ ...base, currentPem: oldRoot.pem, publishedPem: oldRoot.pem + newRoot.pem });
    expect(m.roots.map((r) => r.fingerprint)).toEqual([oldRoot.fp, newRoot.fp]);
    expect(m.added).toEqual([newRoot.fp]);
    expect(m.removed).toEqual([]);
  });

  it('keeps the old root when the CA stops publishing it, within the retention period', () => {
    const last = new Map([[oldRoot.fp, new Date(T0.getTime() - DAY)]]);
    const m = mergeTrust({
      ...base,
      currentPem: oldRoot.pem + newRoot.pem,
      publishedPem: newRoot.pem,
      lastPublished: last,
    });
    expect(m.roots.map((r) => r.fingerprint)).toEqual([newRoot.fp, oldRoot.fp]);
    expect(m.pem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('drops an unpublished root after the retention period', () => {
    const last = new Map([[oldRoot.fp, new Date(T0.getTime() - 8 * DAY)]]);
    const m = mergeTrust({
      ...base,
      currentPem: oldRoot.pem + newRoot.pem,
      publishedPem: newRoot.pem,
      lastPublished: last,
    });
    expect(m.roots.map((r) => r.fingerprint)).toEqual([newRoot.fp]);
    expect(m.removed).toEqual([oldRoot.fp]);
  });

  it('a root with no record of when it was last published counts as published now', () => {
    const m = mergeTrust({ ...base, currentPem: oldRoot.pem, publishedPem: newRoot.pem });
    expect(m.roots).toHaveLength(2);
  });

  it('drops expired roots even when the CA still publishes them', () => {
    const expired = root('expired root', new Date(T0.getTime() - 10 * DAY), 5 * DAY);
    const m = mergeTrust({ ...base, currentPem: expired.pem, publishedPem: expired.pem + newRoot.pem });
    expect(m.roots.map((r) => r.fingerprint)).toEqual([newRoot.fp]);
  });

  it('deduplicates and survives an empty answer', () => {
    const m = mergeTrust({ ...base, currentPem: newRoot.pem, publishedPem: newRoot.pem + newRoot.pem });
    expect(m.roots).toHaveLength(1);
    expect(mergeTrust({ ...base, currentPem: newRoot.pem, publishedPem: '' }).roots).toHaveLength(1);
  });
});
