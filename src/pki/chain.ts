// Chain building: ordering what a peer sent, finding issuers (name, key identifier, signature) and
// enumerating candidate paths from a leaf to a trust anchor with loop protection and a work bound.
import type { Certificate } from './certificate.js';
import { isSelfIssued, isSignedBy, issuerString, signatureScheme, subjectString } from './certificate.js';
import { signatureAlgorithmName } from './oids.js';
import type { DistinguishedName } from './names.js';

// ---------------------------------------------------------------- names and signatures

function normalizeValue(v: string): string {
  return v.trim().replace(/\s+/g, ' ').toLowerCase();
}

const nameKeyCache = new WeakMap<DistinguishedName, string>();

/** A comparison key for a DN per RFC 5280 7.1 (case-insensitive, whitespace-folded string values). */
export function nameKey(dn: DistinguishedName): string {
  let k = nameKeyCache.get(dn);
  if (k === undefined) {
    k = dn
      .map((rdn) =>
        rdn
          .map((a) => `${a.oid}=${normalizeValue(a.value)}`)
          .sort()
          .join('+'),
      )
      .join(',');
    nameKeyCache.set(dn, k);
  }
  return k;
}

/** True when `cert`'s issuer name is `candidate`'s subject name (byte-equal, else RFC 5280 7.1 comparison). */
export function issuerNameMatches(cert: Certificate, candidate: Certificate): boolean {
  if (cert.issuerDer.equals(candidate.subjectDer)) return true;
  return nameKey(cert.issuer) === nameKey(candidate.subject);
}

/** False only when both key identifiers are present and differ (RFC 5280 4.2.1.1, OpenSSL's check). */
export function keyIdsCompatible(cert: Certificate, candidate: Certificate): boolean {
  const aki = cert.authorityKeyId?.keyId;
  const ski = candidate.subjectKeyId;
  return !aki || !ski || aki.equals(ski);
}

const sigCache = new WeakMap<Certificate, WeakMap<Certificate, boolean>>();

/** isSignedBy with a per-pair cache: certificates are immutable, so a verdict never changes. */
export function signedByCached(cert: Certificate, issuer: Certificate, budget?: WorkBudget): boolean {
  let m = sigCache.get(cert);
  const hit = m?.get(issuer);
  if (hit !== undefined) return hit;
  if (budget) {
    if (budget.signatures <= 0) {
      budget.exhausted = true;
      return false;
    }
    budget.signatures--;
  }
  const ok = isSignedBy(cert, issuer);
  if (!m) {
    m = new WeakMap();
    sigCache.set(cert, m);
  }
  m.set(issuer, ok);
  return ok;
}

export function isSelfSigned(cert: Certificate): boolean {
  return isSelfIssued(cert) && signedByCached(cert, cert);
}

// ---------------------------------------------------------------- issuer lookup

export interface WorkBudget {
  /** Signature verifications left (cached verdicts are free). */
  signatures: number;
  /** Path-extension steps left. */
  steps: number;
  exhausted: boolean;
}

export function createBudget(signatures = 256, steps = 4096): WorkBudget {
  return { signatures, steps, exhausted: false };
}

/** Certificates indexed by normalized subject name; built once per pool array and cached. */
export interface CertIndex {
  bySubject: Map<string, Certificate[]>;
  all: readonly Certificate[];
  ders: Set<string>;
}

const indexCache = new WeakMap<readonly Certificate[], CertIndex>();

export function indexCertificates(pool: readonly Certificate[]): CertIndex {
  let idx = indexCache.get(pool);
  if (idx && idx.all.length === pool.length) return idx;
  const bySubject = new Map<string, Certificate[]>();
  const ders = new Set<string>();
  for (const c of pool) {
    const key = nameKey(c.subject);
    const list = bySubject.get(key);
    if (list) list.push(c);
    else bySubject.set(key, [c]);
    ders.add(derKey(c));
  }
  idx = { bySubject, all: pool, ders };
  indexCache.set(pool, idx);
  return idx;
}

const derKeyCache = new WeakMap<Certificate, string>();

function derKey(c: Certificate): string {
  let k = derKeyCache.get(c);
  if (k === undefined) {
    k = c.der.toString('base64');
    derKeyCache.set(c, k);
  }
  return k;
}

/** Candidates in `pool` whose subject is `cert`'s issuer name and whose key identifier does not contradict it. */
export function issuerCandidates(cert: Certificate, pool: readonly Certificate[] | CertIndex): Certificate[] {
  const idx = Array.isArray(pool) ? indexCertificates(pool as readonly Certificate[]) : (pool as CertIndex);
  const named = idx.bySubject.get(nameKey(cert.issuer)) ?? [];
  const out = named.filter((c) => keyIdsCompatible(cert, c));
  // Key identifier matches first: the likely issuer is tried (and its signature checked) first.
  const aki = cert.authorityKeyId?.keyId;
  if (aki && out.length > 1)
    out.sort(
      (a, b) => Number(b.subjectKeyId?.equals(aki) ?? false) - Number(a.subjectKeyId?.equals(aki) ?? false),
    );
  return out;
}

/** The certificates in `pool` that issued `cert`: name, key identifier and signature all agree. */
export function findIssuers(cert: Certificate, pool: readonly Certificate[]): Certificate[] {
  return issuerCandidates(cert, pool).filter((c) => signedByCached(cert, c));
}

// ---------------------------------------------------------------- ordering what a peer sent

export type ChainProblemKind = 'duplicate' | 'unrelated' | 'wrong_order' | 'multiple_leaves';

export interface ChainProblem {
  kind: ChainProblemKind;
  /** Index in the input array. */
  index: number;
  subject: string;
  message: string;
}

export interface OrderedChain {
  /** Leaf first, then each issuer found in the input, in order. */
  chain: Certificate[];
  /** Certificates of the input that are not on the leaf's chain. */
  unrelated: Certificate[];
  problems: ChainProblem[];
}

/**
 * Orders certificates as a TLS peer should send them: leaf, then its issuer, and so on. The leaf is
 * the certificate that issued none of the others (the first such in input order when several).
 */
export function orderChain(certs: readonly Certificate[]): OrderedChain {
  const problems: ChainProblem[] = [];
  const unique: Certificate[] = [];
  const inputIndex = new Map<Certificate, number>();
  const seen = new Map<string, number>();
  certs.forEach((c, i) => {
    const k = derKey(c);
    const first = seen.get(k);
    if (first !== undefined) {
      problems.push({
        kind: 'duplicate',
        index: i,
        subject: subjectString(c),
        message: `Certificate ${i} (${subjectString(c)}) is a duplicate of certificate ${first}; send each certificate once.`,
      });
      return;
    }
    seen.set(k, i);
    unique.push(c);
    inputIndex.set(c, i);
  });
  if (unique.length === 0) return { chain: [], unrelated: [], problems };

  const issuerOf = new Map<Certificate, Certificate | undefined>();
  for (const c of unique) {
    if (isSelfSigned(c)) {
      issuerOf.set(c, undefined);
      continue;
    }
    issuerOf.set(
      c,
      findIssuers(c, unique).find((p) => p !== c),
    );
  }
  const issuesSomething = new Set<Certificate>();
  for (const [c, p] of issuerOf) if (p && p !== c) issuesSomething.add(p);
  const leaves = unique.filter((c) => !issuesSomething.has(c));
  const leaf = leaves[0] ?? unique[0]!;
  const chain: Certificate[] = [leaf];
  const onChain = new Set<Certificate>([leaf]);
  for (let cur = issuerOf.get(leaf); cur && !onChain.has(cur); cur = issuerOf.get(cur)) {
    chain.push(cur);
    onChain.add(cur);
  }
  const unrelated = unique.filter((c) => !onChain.has(c));
  for (const c of unrelated) {
    const i = inputIndex.get(c)!;
    problems.push({
      kind: leaves.includes(c) && c !== leaf ? 'multiple_leaves' : 'unrelated',
      index: i,
      subject: subjectString(c),
      message:
        leaves.includes(c) && c !== leaf
          ? `Certificate ${i} (${subjectString(c)}) is a second end-entity certificate; a chain holds one leaf.`
          : `Certificate ${i} (${subjectString(c)}) is not part of the chain of ${subjectString(leaf)}; remove it.`,
    });
  }
  const inOrder = unique.filter((c) => onChain.has(c));
  if (inOrder.some((c, k) => c !== chain[k])) {
    problems.push({
      kind: 'wrong_order',
      index: inputIndex.get(chain[0]!)!,
      subject: subjectString(leaf),
      message: `The certificates are not in order: send the leaf (${subjectString(leaf)}) first, then each issuer (${chain
        .slice(1)
        .map(subjectString)
        .join(' -> ')}).`,
    });
  }
  return { chain, unrelated, problems };
}

// ---------------------------------------------------------------- path building

export type PathProblemReason =
  | 'missing_intermediate'
  | 'unknown_ca'
  | 'self_signed'
  | 'bad_signature'
  | 'weak_signature'
  | 'path_too_long';

export interface PathProblem {
  reason: PathProblemReason;
  message: string;
  /** The certificate whose issuer could not be found. */
  cert: Certificate;
}

export interface BuildPathsOptions {
  trust: readonly Certificate[];
  intermediates?: readonly Certificate[];
  /** Maximum number of intermediates between leaf and anchor, self-issued ones not counted (default 8). */
  maxDepth?: number;
  /** Shared work bound; a fresh default budget when absent. */
  budget?: WorkBudget;
}

export interface PathSearch {
  /** Candidate paths leaf -> anchor, in preference order; the last element of each is a trust anchor. */
  paths: Generator<Certificate[], void, undefined>;
  /** After iterating `paths`: why no (further) path exists, the most telling dead end. */
  problem(): PathProblem | undefined;
  budget: WorkBudget;
}

export const DEFAULT_MAX_DEPTH = 8;

/**
 * Enumerates candidate paths from `leaf` to a trust anchor, depth-first, anchors before
 * intermediates. A certificate, or the same subject and key, never appears twice on a path;
 * the total work is bounded by `budget`. Paths are candidates: signatures link each step, but
 * validity, constraints and usages are for the verifier.
 */
export function searchPaths(leaf: Certificate, opts: BuildPathsOptions): PathSearch {
  const trustIdx = indexCertificates(opts.trust);
  const interIdx = indexCertificates(opts.intermediates ?? []);
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  const budget = opts.budget ?? createBudget();
  let best: { problem: PathProblem; rank: number } | undefined;
  const note = (problem: PathProblem, rank: number): void => {
    if (!best || rank > best.rank) best = { problem, rank };
  };

  function* extend(
    path: Certificate[],
    logical: Set<string>,
    depth: number,
  ): Generator<Certificate[], void, undefined> {
    const cur = path[path.length - 1]!;
    if (budget.steps-- <= 0) {
      budget.exhausted = true;
      return;
    }
    let foundAny = false;
    let namedAny = false;
    let akiNamed = false;
    let looped = false;
    // 1. A trust anchor that issued `cur` ends the path.
    for (const anchor of issuerCandidates(cur, trustIdx)) {
      if (path.includes(anchor)) continue;
      namedAny = true;
      if (cur.authorityKeyId?.keyId && anchor.subjectKeyId?.equals(cur.authorityKeyId.keyId)) akiNamed = true;
      if (!signedByCached(cur, anchor, budget)) continue;
      foundAny = true;
      yield [...path, anchor];
      if (budget.exhausted) return;
    }
    // 2. Otherwise (and as alternatives), untrusted intermediates, within the depth bound.
    const inters = issuerCandidates(cur, interIdx);
    for (const ica of inters) {
      if (path.includes(ica)) {
        if (ica !== cur) looped = true;
        continue;
      }
      if (trustIdx.ders.has(derKey(ica))) continue;
      namedAny = true;
      if (cur.authorityKeyId?.keyId && ica.subjectKeyId?.equals(cur.authorityKeyId.keyId)) akiNamed = true;
      const lk = logicalKey(ica);
      if (logical.has(lk)) {
        looped = true;
        continue;
      }
      if (!signedByCached(cur, ica, budget)) {
        if (budget.exhausted) return;
        continue;
      }
      foundAny = true;
      // Self-issued intermediates (key rollover) do not count against the depth (RFC 5280 6.1.4 (l)),
      // but the path length stays bounded.
      const nextDepth = isSelfIssued(ica) ? depth : depth + 1;
      if (nextDepth > maxDepth || path.length > 2 * maxDepth + 2) {
        note(
          {
            reason: 'path_too_long',
            cert: cur,
            message: `Continuing the chain of ${subjectString(path[0]!)} past ${subjectString(cur)} would need more than ${maxDepth} intermediate certificate(s) (the limit); no shorter path reaches a trusted root.`,
          },
          3,
        );
        continue;
      }
      logical.add(lk);
      yield* extend([...path, ica], logical, nextDepth);
      logical.delete(lk);
      if (budget.exhausted) return;
    }
    if (foundAny) return;
    // Dead end: say why, ranked by how close it came.
    const subject = subjectString(cur);
    const issuer = issuerString(cur);
    // Certificates of the issuer's name whose key identifier contradicts it are still "named".
    const issuerKey = nameKey(cur.issuer);
    if (!namedAny) {
      namedAny = [
        ...(trustIdx.bySubject.get(issuerKey) ?? []),
        ...(interIdx.bySubject.get(issuerKey) ?? []),
      ].some((c) => !path.includes(c));
    }
    if (looped && !foundAny) {
      note(
        {
          reason: 'unknown_ca',
          cert: cur,
          message: `The issuers of ${subject} only lead back into the chain (a loop of cross-signed CAs); none reaches a trusted root.`,
        },
        2,
      );
      return;
    }
    if (namedAny) {
      note(
        signatureScheme(cur.signatureAlgorithm, cur.signatureAlgorithmParams) === undefined
          ? {
              reason: 'weak_signature',
              cert: cur,
              message: `${subject} is signed with ${signatureAlgorithmName(cur.signatureAlgorithm)}, which is not accepted (use SHA-256 or better with ECDSA, RSA or Ed25519).`,
            }
          : akiNamed
            ? {
                reason: 'bad_signature',
                cert: cur,
                message: `The signature of ${subject} does not verify with the key of its issuer ${issuer}, although the key identifiers match: the certificate is corrupt or was altered.`,
              }
            : {
                reason: 'unknown_ca',
                cert: cur,
                message: `${subject} names ${issuer} as its issuer, but no trusted or given certificate of that name holds the key that signed it (the CA was re-created or is a different CA with the same name).`,
              },
        2,
      );
      return;
    }
    if (isSelfIssued(cur) && signedByCached(cur, cur)) {
      if (path.length === 1) {
        note(
          {
            reason: 'self_signed',
            cert: cur,
            message: `${subject} is self-signed and is not in the trust bundle.`,
          },
          1,
        );
      } else {
        note(
          {
            reason: 'unknown_ca',
            cert: cur,
            message: `The chain of ${subjectString(path[0]!)} ends at the root ${subject}, which is not trusted.`,
          },
          1,
        );
      }
      return;
    }
    if (path.length > 1 && cur.basicConstraints?.ca) {
      // The peer sent its intermediate(s); what is missing is the anchor above them. Far more often
      // a trust bundle without the right root (or the CA files swapped) than a second missing
      // intermediate, so it is unknown_ca, and the message names both remedies.
      note(
        {
          reason: 'unknown_ca',
          cert: cur,
          message: `The chain of ${subjectString(path[0]!)} reaches ${subject}, issued by ${issuer}, which is not in the trust bundle. Add that root to the CA bundle (or, if it is an intermediate, send it with the chain).`,
        },
        1,
      );
      return;
    }
    note(
      {
        reason: 'missing_intermediate',
        cert: cur,
        message: `No certificate for ${issuer}, the issuer of ${subject}, was sent or given, and it is not a trusted root.`,
      },
      1,
    );
  }

  const paths = (function* (): Generator<Certificate[], void, undefined> {
    // A leaf that is itself trusted (a pinned certificate) is a complete path on its own.
    if (trustIdx.ders.has(derKey(leaf))) yield [leaf];
    yield* extend([leaf], new Set([logicalKey(leaf)]), 0);
  })();
  return {
    paths,
    budget,
    problem: () => {
      if (budget.exhausted && !best) {
        return {
          reason: 'path_too_long',
          cert: leaf,
          message: `Path building for ${subjectString(leaf)} gave up after too many candidate issuers (a pathological or looping set of intermediates).`,
        };
      }
      return best?.problem;
    },
  };
}

function logicalKey(c: Certificate): string {
  return `${nameKey(c.subject)}|${c.spki.toString('base64')}`;
}

export interface BuiltPaths {
  paths: Certificate[][];
  problem?: PathProblem;
  exhausted: boolean;
}

/** All candidate paths (up to `limit`) from `leaf` to a trust anchor, and the dead end when there are none. */
export function buildPaths(leaf: Certificate, opts: BuildPathsOptions & { limit?: number }): BuiltPaths {
  const search = searchPaths(leaf, opts);
  const paths: Certificate[][] = [];
  const limit = opts.limit ?? 16;
  for (const p of search.paths) {
    paths.push(p);
    if (paths.length >= limit) break;
  }
  const problem = paths.length === 0 ? search.problem() : undefined;
  return { paths, ...(problem ? { problem } : {}), exhausted: search.budget.exhausted };
}
