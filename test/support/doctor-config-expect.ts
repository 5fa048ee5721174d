// What `mtls doctor config` must say for each corpus scenario where it differs from `pair` mode, keyed
// by scenario name (test/support/doctor-corpus.ts), each with the reason it differs.
import type { Side } from './doctor-corpus.js';

export interface ConfigExpectation {
  failingSide: Side | null;
  /** Error codes that must be reported. */
  codes: string[];
  /** Why config mode differs from pair mode here. */
  why: string;
}

/**
 * Overrides of the corpus' expectations in config mode. Empty means config mode agrees with pair
 * mode on every scenario: the nginx config carries exactly the files and settings pair is given
 * (the server chain concatenated into ssl_certificate, as nginx reads it).
 */
export const CONFIG_EXPECT: Record<string, ConfigExpectation> = {};

export function expectationFor(s: {
  name: string;
  failingSide: Side | null;
  codes: string[];
}): Omit<ConfigExpectation, 'why'> {
  const o = CONFIG_EXPECT[s.name];
  return o ? { failingSide: o.failingSide, codes: o.codes } : { failingSide: s.failingSide, codes: s.codes };
}
