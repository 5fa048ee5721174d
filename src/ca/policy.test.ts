import { describe, expect, it } from 'vitest';
import { identityMatches, parseCaConfig } from './policy.js';

describe('identityMatches', () => {
  it.each([
    ['dns:api.internal', 'dns:api.internal', true],
    ['dns:API.internal', 'dns:api.INTERNAL', true],
    ['dns:*.svc.example.org', 'dns:web.svc.example.org', true],
    ['dns:*.svc.example.org', 'dns:a.b.svc.example.org', false],
    ['dns:*.svc.example.org', 'dns:svc.example.org', false],
    ['spiffe://example.org/ns/*/sa/api', 'spiffe://example.org/ns/prod/sa/api', true],
    ['spiffe://example.org/ns/*/sa/api', 'spiffe://example.org/ns/prod/x/sa/api', false],
    ['spiffe://example.org/**', 'spiffe://example.org/ns/prod/sa/api', true],
    ['spiffe://example.org/ns/prod', 'spiffe://example.org/ns/PROD', false],
    ['cn:mtls-admin', 'cn:mtls-admin', true],
    ['cn:mtls-admin', 'cn:mtls-admin2', false],
  ])('%s ~ %s → %s', (pattern, identity, want) => expect(identityMatches(pattern, identity)).toBe(want));
});

describe('parseCaConfig', () => {
  it('applies defaults and parses durations', () => {
    const c = parseCaConfig({ tokens: { ttl: '10m' } });
    expect(c.tokens.ttl).toBe(600_000);
    expect(c.admins).toEqual(['cn:mtls-admin']);
    expect(c.renewAfterExpiry).toBe(false);
  });

  it.each([
    [{ listn: '127.0.0.1:1' }, /listn|Unrecognized/],
    [{ tokens: { ttl: 'soon' } }, /tokens\.ttl/],
    [{ admins: ['admin'] }, /admins/],
    [{ provisioners: [{ name: 'x', type: 'token', identities: [] }] }, /identities/],
  ])('refuses %j with MTLS_CONFIG_INVALID naming the key', (input, where) => {
    let err: unknown;
    try {
      parseCaConfig(input);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'MTLS_CONFIG_INVALID' });
    expect((err as Error).message).toMatch(where);
  });
});
