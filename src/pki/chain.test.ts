import { describe, expect, it } from 'vitest';
import { parseCertificate, type Certificate } from './certificate.js';
import { buildPaths, createBudget, findIssuers, orderChain, searchPaths } from './chain.js';
import { createIssuer, selfSign } from './issue.js';
import { generateKey, spkiOf } from './keys.js';
import { parseName } from './names.js';

const DAY = 86_400_000;
const clock = { now: () => new Date('2026-06-01T00:00:00Z') };

function root(cn: string) {
  const key = generateKey();
  const cert = parseCertificate(
    selfSign(key, { profile: 'root', subject: parseName(`CN=${cn}`), ttlMs: 365 * DAY, pathLen: 3 }, clock)
      .der,
  );
  return { key, cert };
}

function sub(
  issuer: { key: ReturnType<typeof generateKey>; cert: Certificate },
  cn: string,
  key = generateKey(),
) {
  const cert = parseCertificate(
    createIssuer(issuer.cert, issuer.key, clock).issue({
      profile: 'intermediate',
      subject: parseName(`CN=${cn}`),
      publicKey: spkiOf(key),
      ttlMs: 30 * DAY,
      pathLen: 2,
    }).der,
  );
  return { key, cert };
}

function leafOf(issuer: { key: ReturnType<typeof generateKey>; cert: Certificate }, cn = 'leaf') {
  return parseCertificate(
    createIssuer(issuer.cert, issuer.key, clock).issue({
      profile: 'client',
      subject: parseName(`CN=${cn}`),
      publicKey: spkiOf(generateKey()),
    }).der,
  );
}

const r = root('Root');
const ica = sub(r, 'ICA');
const leaf = leafOf(ica);
const cn = (c: Certificate): string => c.subject[0]![0]!.value;

describe('findIssuers', () => {
  it('finds the issuer by name, key identifier and signature', () => {
    expect(findIssuers(leaf, [r.cert, ica.cert])).toEqual([ica.cert]);
    expect(findIssuers(ica.cert, [r.cert, ica.cert])).toEqual([r.cert]);
  });

  it('rejects a certificate of the same name with another key', () => {
    const impostor = sub(r, 'ICA'); // same subject, different key
    expect(findIssuers(leaf, [impostor.cert])).toEqual([]);
    expect(findIssuers(leaf, [impostor.cert, ica.cert])).toEqual([ica.cert]);
  });
});

describe('orderChain', () => {
  it('keeps a correct chain as is', () => {
    const out = orderChain([leaf, ica.cert, r.cert]);
    expect(out.chain.map(cn)).toEqual(['leaf', 'ICA', 'Root']);
    expect(out.problems).toEqual([]);
  });

  it('reorders a reversed chain and says so', () => {
    const out = orderChain([r.cert, ica.cert, leaf]);
    expect(out.chain.map(cn)).toEqual(['leaf', 'ICA', 'Root']);
    expect(out.problems.map((p) => p.kind)).toEqual(['wrong_order']);
    expect(out.problems[0]!.message).toContain('send the leaf');
  });

  it('reports duplicates and unrelated certificates', () => {
    const other = root('Other Root');
    const out = orderChain([leaf, ica.cert, leaf, other.cert]);
    expect(out.chain.map(cn)).toEqual(['leaf', 'ICA']);
    expect(out.unrelated.map(cn)).toEqual(['Other Root']);
    const kinds = out.problems.map((p) => `${p.kind}@${p.index}`);
    expect(kinds).toContain('duplicate@2');
    expect(
      kinds.some((k) => k.endsWith('@3') && (k.startsWith('unrelated') || k.startsWith('multiple_leaves'))),
    ).toBe(true);
  });

  it('reports a second leaf', () => {
    const second = leafOf(ica, 'second');
    const out = orderChain([leaf, second, ica.cert]);
    expect(out.chain.map(cn)).toEqual(['leaf', 'ICA']);
    expect(out.problems.map((p) => p.kind)).toContain('multiple_leaves');
  });

  it('handles an empty input', () => {
    expect(orderChain([])).toEqual({ chain: [], unrelated: [], problems: [] });
  });
});

describe('buildPaths', () => {
  it('builds leaf -> intermediate -> anchor', () => {
    const out = buildPaths(leaf, { trust: [r.cert], intermediates: [ica.cert] });
    expect(out.paths.map((p) => p.map(cn))).toEqual([['leaf', 'ICA', 'Root']]);
    expect(out.problem).toBeUndefined();
  });

  it('finds every path through cross-signed CAs, anchors first', () => {
    const r2 = root('Root 2');
    // ICA cross-signed by Root 2 (same subject and key as ica).
    const cross = parseCertificate(
      createIssuer(r2.cert, r2.key, clock).issue({
        profile: 'intermediate',
        subject: ica.cert.subject,
        publicKey: ica.cert.spki,
        ttlMs: 30 * DAY,
      }).der,
    );
    const out = buildPaths(leaf, { trust: [r.cert, r2.cert], intermediates: [ica.cert, cross] });
    expect(out.paths.map((p) => p.map(cn)).sort()).toEqual([
      ['leaf', 'ICA', 'Root'],
      ['leaf', 'ICA', 'Root 2'],
    ]);
  });

  it('reports missing_intermediate, unknown_ca and self_signed', () => {
    const missing = buildPaths(leaf, { trust: [r.cert] });
    expect(missing.paths).toEqual([]);
    expect(missing.problem?.reason).toBe('missing_intermediate');
    expect(missing.problem?.message).toContain('CN=ICA');

    const other = root('Other');
    const unknown = buildPaths(leaf, { trust: [other.cert], intermediates: [ica.cert, r.cert] });
    expect(unknown.problem?.reason).toBe('unknown_ca');
    expect(unknown.problem?.message).toContain('CN=Root');

    const selfSigned = buildPaths(r.cert, { trust: [other.cert] });
    expect(selfSigned.problem?.reason).toBe('self_signed');
  });

  it('does not loop on CAs that sign each other, and bounds the work', () => {
    const a = root('Loop A');
    const b = root('Loop B');
    const aByB = parseCertificate(
      createIssuer(b.cert, b.key, clock).issue({
        profile: 'intermediate',
        subject: a.cert.subject,
        publicKey: a.cert.spki,
        ttlMs: DAY,
      }).der,
    );
    const bByA = parseCertificate(
      createIssuer(a.cert, a.key, clock).issue({
        profile: 'intermediate',
        subject: b.cert.subject,
        publicKey: b.cert.spki,
        ttlMs: DAY,
      }).der,
    );
    const l = leafOf(a, 'looped');
    const out = buildPaths(l, { trust: [r.cert], intermediates: [aByB, bByA] });
    expect(out.paths).toEqual([]);
    expect(out.problem?.reason).toBe('unknown_ca');
    expect(out.problem?.message).toMatch(/loop/);

    // A tight budget stops the search (and says so) instead of walking on.
    const deep = sub(ica, 'Budget');
    const deepLeaf = leafOf(deep, 'budget-leaf');
    const budget = createBudget(256, 2);
    const search = searchPaths(deepLeaf, { trust: [r.cert], intermediates: [ica.cert, deep.cert], budget });
    expect([...search.paths]).toEqual([]);
    expect(budget.exhausted).toBe(true);
    expect(search.problem()?.reason).toBe('path_too_long');
    expect(
      buildPaths(deepLeaf, { trust: [r.cert], intermediates: [ica.cert, deep.cert] }).paths,
    ).toHaveLength(1);
  });

  it('respects maxDepth', () => {
    const deep = sub(ica, 'Deep');
    const l = leafOf(deep, 'deep-leaf');
    expect(
      buildPaths(l, { trust: [r.cert], intermediates: [ica.cert, deep.cert], maxDepth: 2 }).paths,
    ).toHaveLength(1);
    const cut = buildPaths(l, { trust: [r.cert], intermediates: [ica.cert, deep.cert], maxDepth: 1 });
    expect(cut.paths).toEqual([]);
    expect(cut.problem?.reason).toBe('path_too_long');
  });
});
