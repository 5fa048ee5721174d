// The trust bundle across a root rotation: the union of the roots the CA publishes now and the roots
// the bundle already had that are still valid and were published recently enough. A root is never
// dropped because one fetch did not list it: it leaves the bundle when it expires, or when the CA
// has not published it for `retainUnpublishedMs`.
import { encodePem, fingerprint256, formatName, readCertificates, type Certificate } from '../pki/index.js';

export interface TrustRoot {
  cert: Certificate;
  fingerprint: string;
  /** When the CA was last seen publishing this root. */
  lastPublishedAt: Date;
}

export interface TrustUnion {
  roots: TrustRoot[];
  pem: string;
  /** Fingerprints added by this merge, and dropped by it. */
  added: string[];
  removed: string[];
}

function certsOf(pem: string | undefined, source: string): Certificate[] {
  if (!pem || !pem.includes('-----BEGIN')) return [];
  return readCertificates(Buffer.from(pem), source);
}

/**
 * Merges the published roots into the current bundle. `lastPublished` maps fingerprints of roots in
 * the current bundle to when they were last published (from status.json); unknown ones count as
 * published now (a restart never shortens a root's stay).
 */
export function mergeTrust(opts: {
  currentPem: string | undefined;
  publishedPem: string | undefined;
  lastPublished?: ReadonlyMap<string, Date>;
  now: Date;
  retainUnpublishedMs: number;
}): TrustUnion {
  const { now } = opts;
  const published = certsOf(opts.publishedPem, 'published roots');
  const current = certsOf(opts.currentPem, 'current trust bundle');
  const out = new Map<string, TrustRoot>();
  const seen = new Set<string>();
  for (const c of current) {
    const fp = fingerprint256(c);
    seen.add(fp);
    if (c.notAfter <= now) continue;
    const last = opts.lastPublished?.get(fp) ?? now;
    if (now.getTime() - last.getTime() > opts.retainUnpublishedMs) continue;
    out.set(fp, { cert: c, fingerprint: fp, lastPublishedAt: last });
  }
  for (const c of published) {
    const fp = fingerprint256(c);
    if (c.notAfter <= now) continue;
    out.set(fp, { cert: c, fingerprint: fp, lastPublishedAt: now });
  }
  // Published roots first, in the CA's order; then retained ones, in the bundle's order.
  const publishedFps = published.map(fingerprint256);
  const roots = [
    ...publishedFps
      .filter((fp, i) => out.has(fp) && publishedFps.indexOf(fp) === i)
      .map((fp) => out.get(fp)!),
    ...[...out.values()].filter((r) => !publishedFps.includes(r.fingerprint)),
  ];
  const added = roots.filter((r) => !seen.has(r.fingerprint)).map((r) => r.fingerprint);
  const kept = new Set(roots.map((r) => r.fingerprint));
  const removed = [...seen].filter((fp) => !kept.has(fp));
  return { roots, pem: roots.map((r) => encodePem('CERTIFICATE', r.cert.der)).join(''), added, removed };
}

export function describeRoots(roots: readonly TrustRoot[]): {
  subject: string;
  fingerprint: string;
  notAfter: string;
  lastPublishedAt: string;
}[] {
  return roots.map((r) => ({
    subject: formatName(r.cert.subject),
    fingerprint: r.fingerprint,
    notAfter: r.cert.notAfter.toISOString(),
    lastPublishedAt: r.lastPublishedAt.toISOString(),
  }));
}
