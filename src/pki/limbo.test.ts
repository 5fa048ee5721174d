// Conformance: runs the x509-limbo path-validation vectors through verifyCertificate and reports
// agreement per id prefix. Non-pedantic cases must all agree, except the documented allow-list below.
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseCertificate, type Certificate } from './certificate.js';
import { parseCrl, type Crl } from './crl.js';
import { decodePem } from './pem.js';
import { verifyCertificate, type ExpectedName, type VerifyOptions } from './verify.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LIMBO_PATH = path.resolve(repoRoot, '../shared/conformance/x509-limbo/limbo.json');

interface LimboCase {
  id: string;
  features: string[];
  validation_kind: 'SERVER' | 'CLIENT';
  trusted_certs: string[];
  untrusted_intermediates: string[];
  peer_certificate: string;
  validation_time: string | null;
  extended_key_usage: string[];
  expected_result: 'SUCCESS' | 'FAILURE';
  expected_peer_name: { kind: 'DNS' | 'IP' | 'RFC822'; value: string } | null;
  max_chain_depth: number | null;
  crls: string[];
}

/**
 * Deliberate disagreements with limbo's expected result, each with its reason. Every entry must
 * still disagree (a test fails on stale entries). Keep this list short: fix the verifier instead.
 */
export const ALLOW_LIST: Record<string, string> = {
  'rfc5280::nc::permitted-dns-match-noncritical':
    'conflicts with webpki::nc::permitted-dns-match-noncritical; like OpenSSL, Go and webpki we honour non-critical name constraints (and warn) rather than reject the CA',
  'rfc5280::ca-as-leaf':
    'the leaf (a CA certificate) has keyUsage without digitalSignature; mTLS needs it to sign the TLS handshake, and OpenSSL rejects it for TLS purposes too',
  'pathlen::validation-ignores-pathlen-in-leaf':
    'same as rfc5280::ca-as-leaf: the CA certificate in leaf position lacks digitalSignature, which mTLS requires (pathLen itself is ignored in the leaf, as expected)',
  'webpki::cn::not-in-san':
    'we do not require the CN to be one of the SANs: the same corpus expects CN=example.com beside other SANs to pass (e.g. rfc5280::nc::permitted-dns-match-more); a CN that spells a SAN differently is rejected',
  'webpki::cn::punycode-not-in-san':
    'same as webpki::cn::not-in-san: the CN names a host that is not among the SANs, and the SAN matches the expected name',
};

const EKU_OIDS: Record<string, string> = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
  anyExtendedKeyUsage: '2.5.29.37.0',
};

function certs(pems: readonly string[]): Certificate[] {
  const out: Certificate[] = [];
  for (const pem of pems) {
    for (const block of decodePem(pem)) {
      try {
        out.push(parseCertificate(block.der));
      } catch {
        // An unparseable CA certificate is left out of the pool, as a trust store loader would.
      }
    }
  }
  return out;
}

function peerName(tc: LimboCase): ExpectedName | undefined {
  const n = tc.expected_peer_name;
  if (!n || tc.validation_kind === 'CLIENT') return undefined;
  return { type: n.kind === 'DNS' ? 'dns' : n.kind === 'IP' ? 'ip' : 'email', value: n.value };
}

interface Outcome {
  ok: boolean;
  reasons: string[];
}

function runCase(tc: LimboCase): Outcome {
  let leaf: Certificate;
  try {
    leaf = parseCertificate(decodePem(tc.peer_certificate)[0]!.der);
  } catch {
    return { ok: false, reasons: ['malformed(parse)'] };
  }
  let crls: Crl[];
  try {
    crls = tc.crls.map((c) => parseCrl(c));
  } catch {
    return { ok: false, reasons: ['crl_invalid(parse)'] };
  }
  const name = peerName(tc);
  const opts: VerifyOptions = {
    trust: certs(tc.trusted_certs),
    intermediates: certs(tc.untrusted_intermediates),
    purpose: tc.validation_kind === 'CLIENT' ? 'client' : 'server',
    at: tc.validation_time ? new Date(tc.validation_time) : new Date(),
    ekus: tc.extended_key_usage.map((e) => EKU_OIDS[e] ?? e),
    crls,
    ...(name ? { name } : {}),
    ...(tc.max_chain_depth !== null ? { maxDepth: tc.max_chain_depth } : {}),
  };
  const r = verifyCertificate(leaf, opts);
  return r.ok ? { ok: true, reasons: [] } : { ok: false, reasons: r.reasons.map((x) => x.reason) };
}

function prefixOf(id: string): string {
  const parts = id.split('::');
  return parts.length > 1 ? parts.slice(0, -1).join('::') : id;
}

const isPedantic = (tc: LimboCase): boolean => tc.features.some((f) => f.startsWith('pedantic-'));

describe.skipIf(!existsSync(LIMBO_PATH))('x509-limbo conformance', () => {
  if (!existsSync(LIMBO_PATH)) {
    console.warn(`x509-limbo: ${LIMBO_PATH} is absent; conformance run skipped.`);
    return;
  }
  const limbo = JSON.parse(readFileSync(LIMBO_PATH, 'utf8')) as { version: number; testcases: LimboCase[] };
  const results = limbo.testcases.map((tc) => {
    const t0 = performance.now();
    const out = runCase(tc);
    return { tc, out, agree: out.ok === (tc.expected_result === 'SUCCESS'), ms: performance.now() - t0 };
  });

  it('reads the suite', () => {
    expect(limbo.version).toBe(1);
    expect(limbo.testcases.length).toBeGreaterThan(100);
  });

  it('prints agreement per id prefix (pedantic cases separately)', () => {
    const rows = new Map<string, { n: number; agree: number; pn: number; pagree: number }>();
    for (const r of results) {
      const p = prefixOf(r.tc.id);
      const row = rows.get(p) ?? { n: 0, agree: 0, pn: 0, pagree: 0 };
      if (isPedantic(r.tc)) {
        row.pn++;
        if (r.agree) row.pagree++;
      } else {
        row.n++;
        if (r.agree) row.agree++;
      }
      rows.set(p, row);
    }
    const lines = ['prefix                 agree/cases   pedantic agree/cases'];
    let n = 0;
    let a = 0;
    let pn = 0;
    let pa = 0;
    for (const [p, r] of [...rows].sort(([x], [y]) => x.localeCompare(y))) {
      lines.push(
        `${p.padEnd(22)} ${`${r.agree}/${r.n}`.padStart(11)}   ${r.pn ? `${r.pagree}/${r.pn}`.padStart(20) : ''.padStart(20)}`,
      );
      n += r.n;
      a += r.agree;
      pn += r.pn;
      pa += r.pagree;
    }
    lines.push(`${'total'.padEnd(22)} ${`${a}/${n}`.padStart(11)}   ${`${pa}/${pn}`.padStart(20)}`);
    const pedanticMisses = results
      .filter((r) => isPedantic(r.tc) && !r.agree)
      .map((r) => `${r.tc.id} (expected ${r.tc.expected_result})`);
    if (pedanticMisses.length) lines.push(`pedantic disagreements: ${pedanticMisses.join(', ')}`);
    const slowest = results.reduce((m, r) => (r.ms > m.ms ? r : m));
    lines.push(`slowest case: ${slowest.tc.id} ${slowest.ms.toFixed(1)} ms`);
    console.log(lines.join('\n'));
    expect(rows.size).toBeGreaterThan(5);
  });

  it('agrees on every non-pedantic case outside the allow-list', () => {
    const misses = results
      .filter((r) => !isPedantic(r.tc) && !r.agree && !(r.tc.id in ALLOW_LIST))
      .map(
        (r) =>
          `${r.tc.id}: expected ${r.tc.expected_result}, got ${r.out.ok ? 'SUCCESS' : `FAILURE [${r.out.reasons.join(', ')}]`}`,
      );
    expect(misses).toEqual([]);
  });

  it('has no stale allow-list entries', () => {
    const byId = new Map(results.map((r) => [r.tc.id, r]));
    const stale = Object.keys(ALLOW_LIST).filter((id) => {
      const r = byId.get(id);
      return !r || r.agree || isPedantic(r.tc);
    });
    expect(stale).toEqual([]);
  });

  it('fails for the reasons the case is about (spot checks)', () => {
    const reasonsOf = (id: string): string[] => results.find((r) => r.tc.id === id)?.out.reasons ?? [];
    expect(reasonsOf('crl::revoked-certificate-with-crl')).toContain('revoked');
    expect(reasonsOf('rfc5280::validity::expired-leaf')).toContain('expired');
    expect(reasonsOf('rfc5280::validity::not-yet-valid-1-second')).toContain('not_yet_valid');
    expect(reasonsOf('rfc5280::eku::ee-wrong-eku')).toContain('wrong_eku');
    expect(reasonsOf('rfc5280::nc::excluded-dns-match')).toContain('name_constraints');
    expect(reasonsOf('pathlen::intermediate-violates-pathlen-0')).toContain('path_too_long');
    expect(reasonsOf('webpki::cryptographydotio-chain-missing-intermediate')).toContain(
      'missing_intermediate',
    );
    expect(reasonsOf('rfc5280::unknown-critical-extension-ee')).toContain('unsupported_critical_extension');
    expect(reasonsOf('webpki::san::mismatch-domain-san')).toContain('name_mismatch');
    expect(reasonsOf('webpki::forbidden-weak-rsa-key-in-root')).toContain('weak_key');
  });
});
