// Merging findings from verification and lint: one finding per code, side and certificate, and no
// name_mismatch next to cn_only when the CN is the very name asked for.
import { commonName, type Certificate } from '../pki/index.js';
import type { Finding } from './findings.js';

export function dedupeFindings(findings: readonly Finding[], leaf?: Certificate, name?: string): Finding[] {
  const seen = new Set<string>();
  const cn = leaf ? commonName(leaf.subject)?.toLowerCase() : undefined;
  const cnOnly = findings.some((f) => f.code === 'cn_only');
  return findings.filter((f) => {
    if (f.code === 'name_mismatch' && cnOnly && name !== undefined && cn === name.toLowerCase()) return false;
    const k = `${f.code}|${f.side}|${f.evidence.subject ?? ''}|${f.evidence.file ?? ''}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
