import { describe, expect, it } from 'vitest';
import { firstAllowed, identityMatches, pathMatches } from './policy.js';

describe('pathMatches', () => {
  it.each([
    ['/payments/*', '/payments/1', true],
    ['/payments/*', '/payments/1/refunds', true],
    ['/payments/*', '/payments', false],
    ['/payments/*', '/paymentsX/1', false],
    ['/users/*/profile', '/users/42/profile', true],
    ['/users/*/profile', '/users/42/x/profile', false],
    ['/health', '/health', true],
    ['/health', '/health/', false],
  ])('%s ~ %s → %s', (p, path, ok) => expect(pathMatches(p, path)).toBe(ok));
});

describe('identityMatches', () => {
  it.each([
    ['spiffe://e.org/ns/*/sa/pay', 'spiffe://e.org/ns/prod/sa/pay', true],
    ['spiffe://e.org/ns/*/sa/pay', 'spiffe://e.org/ns/a/b/sa/pay', false],
    ['spiffe://e.org/**', 'spiffe://e.org/ns/a/b/sa/pay', true],
    ['dns:*.ops.example.org', 'dns:A.ops.example.org', true],
    ['dns:*.ops.example.org', 'dns:a.b.ops.example.org', false],
    ['cn:admin', 'cn:admin', true],
    ['any', 'cn:whoever', true],
  ])('%s ~ %s → %s', (p, id, ok) => expect(identityMatches(p, id)).toBe(ok));
});

describe('firstAllowed', () => {
  const rules = [
    {
      identity: 'spiffe://e.org/ns/prod/sa/payment',
      paths: ['/payments/*'],
      methods: ['GET' as const, 'POST' as const],
    },
    { identity: 'dns:*.ops.example.org', paths: ['/admin/*'] },
  ];
  it('matches identity, method and path, in order; default deny', () => {
    expect(firstAllowed(rules, ['spiffe://e.org/ns/prod/sa/payment'], 'POST', '/payments/1')).toBe(0);
    expect(firstAllowed(rules, ['spiffe://e.org/ns/prod/sa/payment'], 'DELETE', '/payments/1')).toBe(-1);
    expect(firstAllowed(rules, ['spiffe://e.org/ns/prod/sa/payment'], 'GET', '/admin/x')).toBe(-1);
    expect(firstAllowed(rules, ['cn:x', 'dns:a.ops.example.org'], 'DELETE', '/admin/x')).toBe(1);
    expect(firstAllowed([], ['cn:x'], 'GET', '/')).toBe(-1);
  });
});
