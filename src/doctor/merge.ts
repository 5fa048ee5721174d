// Merging findings from verification and lint: one finding per code, side and certificate, no
// name_mismatch next to cn_only when the CN is the very name asked for, and no consequences of a
// certificate that is not a CA being used as one (its keyUsage, the path length above it).
import { commonName, type Certificate } from '../pki/index.js';
import type { Finding } from './findings.js';

export function dedupeFindings(findings: readonly Finding[], leaf?: Certificate, name?: string): Finding[] {
  const seen = new Set<string>();
  const cn = leaf ? commonName(leaf.subject)?.toLowerCase() : undefined;
  const cnOnly = findings.some((f) => f.code === 'cn_only');
  // One cause, one finding: the fix of issuer_not_ca (issue from a real CA) also ends these.
  const notCa = new Set(
    findings.filter((f) => f.code === 'issuer_not_ca').map((f) => `${f.side}|${f.evidence.subject ?? ''}`),
  );
  return findings.filter((f) => {
    if (f.code === 'name_mismatch' && cnOnly && name !== undefined && cn === name.toLowerCase()) return false;
    if (
      (f.code === 'bad_key_usage' || f.code === 'path_len_exceeded') &&
      notCa.has(`${f.side}|${f.evidence.subject ?? ''}`)
    )
      return false;
    const k = `${f.code}|${f.side}|${f.evidence.subject ?? ''}|${f.evidence.file ?? ''}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
