import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { auditHash, canonicalJson, nextAuditRecord, verifyAuditChain } from './audit.js';
import type { AuditInput, AuditRecord } from './types.js';

const input = (i: number): AuditInput => ({
  at: new Date(Date.UTC(2030, 0, 1, 0, 0, i)),
  action: 'certificate.issue',
  actor: `token:t${i}`,
  outcome: 'ok',
  data: { serial: i.toString(16), n: i },
});

function chain(n: number): AuditRecord[] {
  const out: AuditRecord[] = [];
  let head = { seq: 0, hash: '' };
  for (let i = 1; i <= n; i++) {
    const r = nextAuditRecord(head, input(i));
    out.push(r);
    head = { seq: r.seq, hash: r.hash };
  }
  return out;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth, writes dates as ISO strings and drops undefined members', () => {
    expect(
      canonicalJson({ b: 1, a: { d: [3, undefined, { z: 1, y: 2 }], c: new Date(0) }, u: undefined, n: 10n }),
    ).toBe('{"a":{"c":"1970-01-01T00:00:00.000Z","d":[3,null,{"y":2,"z":1}]},"b":1,"n":"10"}');
  });

  it('is a fixed point once parsed (what a database reads back hashes the same)', () => {
    const text = canonicalJson({ x: 'é\u2028"', y: [1.5, -0, 1e21, NaN], when: new Date(1) });
    expect(canonicalJson(JSON.parse(text))).toBe(text);
  });
});

describe('auditHash', () => {
  it('is SHA-256 over the previous hash followed by the canonical record including seq', () => {
    const i = input(1);
    const canonical =
      '{"action":"certificate.issue","actor":"token:t1","at":"2030-01-01T00:00:01.000Z","data":{"n":1,"serial":"1"},"outcome":"ok","seq":1}';
    expect(auditHash('', i, 1)).toBe(createHash('sha256').update(canonical).digest('hex'));
    expect(auditHash('ab', i, 1)).toBe(createHash('sha256').update(`ab${canonical}`).digest('hex'));
    expect(auditHash('', i, 2)).not.toBe(auditHash('', i, 1));
  });
});

describe('verifyAuditChain', () => {
  it('accepts an empty chain and a well-formed one', () => {
    expect(verifyAuditChain([])).toEqual({ ok: true, count: 0, lastSeq: 0, lastHash: '' });
    const c = chain(5);
    expect(verifyAuditChain(c)).toEqual({ ok: true, count: 5, lastSeq: 5, lastHash: c[4]!.hash });
  });

  it('names the first record that was modified, re-linked, removed or reordered', () => {
    const c = chain(5);
    expect(
      verifyAuditChain(c.map((r) => (r.seq === 3 ? { ...r, data: { ...r.data, n: 99 } } : r))),
    ).toMatchObject({
      ok: false,
      seq: 3,
      problem: 'hash_mismatch',
    });
    expect(verifyAuditChain(c.map((r) => (r.seq === 4 ? { ...r, prevHash: 'x' } : r)))).toMatchObject({
      ok: false,
      seq: 4,
      problem: 'prev_hash_mismatch',
    });
    expect(verifyAuditChain(c.filter((r) => r.seq !== 2))).toMatchObject({
      ok: false,
      seq: 3,
      problem: 'seq_gap',
    });
    expect(verifyAuditChain([c[1]!, c[0]!])).toMatchObject({ ok: false, seq: 2, problem: 'seq_gap' });
    expect(
      verifyAuditChain(c.map((r) => (r.seq === 5 ? { ...r, at: new Date(Number.NaN) } : r))),
    ).toMatchObject({
      ok: false,
      seq: 5,
      problem: 'hash_mismatch',
    });
  });
});
