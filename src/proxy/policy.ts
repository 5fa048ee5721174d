// Authorization: ordered allow rules over identity, method and path; default deny.
import { identityMatches as sharedIdentityMatches } from '../pki/index.js';
import type { AllowRule } from './config.js';

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const cache = new Map<string, RegExp>();

function compiled(key: string, build: () => RegExp): RegExp {
  let re = cache.get(key);
  if (!re) {
    re = build();
    if (cache.size < 10_000) cache.set(key, re);
  }
  return re;
}

/** The shared identity glob (pki/identity.ts); `any` matches every authenticated identity. */
export function identityMatches(pattern: string, identity: string): boolean {
  return pattern === 'any' || sharedIdentityMatches(pattern, identity);
}

export function pathMatches(pattern: string, path: string): boolean {
  if (!pattern.includes('*')) return pattern === path;
  const re = compiled(`p|${pattern}`, () => {
    const tail = pattern.endsWith('/*');
    const head = tail ? pattern.slice(0, -2) : pattern;
    const body = head
      .split('*')
      .map((p) => escapeRe(p))
      .join('[^/]*');
    return new RegExp(`^${body}${tail ? '/.*' : ''}$`);
  });
  return re.test(path);
}

/** The index of the first rule that allows this request, or -1 (`allow: any` is rule 0). */
export function firstAllowed(
  rules: 'any' | readonly AllowRule[],
  identities: readonly string[],
  method: string,
  path: string,
): number {
  if (rules === 'any') return 0;
  return rules.findIndex(
    (r) =>
      identities.some((id) => identityMatches(r.identity, id)) &&
      (r.methods === undefined || r.methods.includes(method as never)) &&
      (r.paths === undefined || r.paths.some((p) => pathMatches(p, path))),
  );
}
