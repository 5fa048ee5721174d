// Identity strings and the glob patterns over them, shared by the CA's policy and the proxy's allow
// rules: `spiffe://td/path`, `dns:name`, `ip:addr`, `email:addr`, `uri:…`, `cn:name`.

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

const cache = new Map<string, RegExp>();

/**
 * `*` matches within one DNS label (dns:) or one path segment, `**` matches anything; dns: compares
 * case-insensitively. Exact patterns (most tokens' grants) are compared as strings.
 */
export function identityMatches(pattern: string, identity: string): boolean {
  const dns = pattern.startsWith('dns:');
  if (!pattern.includes('*'))
    return dns ? pattern.toLowerCase() === identity.toLowerCase() : pattern === identity;
  let re = cache.get(pattern);
  if (!re) {
    const body = pattern
      .split(/(\*\*|\*)/)
      .map((p) => (p === '**' ? '.*' : p === '*' ? (dns ? '[^.]+' : '[^/]*') : escapeRe(p)))
      .join('');
    re = new RegExp(`^${body}$`, dns ? 'i' : '');
    if (cache.size < 10_000) cache.set(pattern, re);
  }
  return re.test(identity);
}

export function anyIdentityMatches(patterns: readonly string[], identity: string): boolean {
  return patterns.some((p) => identityMatches(p, identity));
}
