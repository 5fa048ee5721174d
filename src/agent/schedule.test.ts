import { describe, expect, it } from 'vitest';
import {
  backoffCeiling,
  backoffDelay,
  lifetimeRemainingRatio,
  lifetimeStart,
  renewalTime,
  retryTime,
  whatIsDue,
} from './schedule.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const at = (ms: number): Date => new Date(T0 + ms);
const H = 3_600_000;

describe('renewal time', () => {
  const l = { notBefore: at(0), notAfter: at(24 * H) };
  it('is 2/3 of the lifetime with no jitter drawn', () => {
    expect(renewalTime(l, 2 / 3, 0.05, 0).getTime()).toBe(T0 + 16 * H);
  });
  it('subtracts at most jitter × lifetime', () => {
    expect(renewalTime(l, 2 / 3, 0.05, 0.999999).getTime()).toBeGreaterThan(T0 + 16 * H - 0.05 * 24 * H);
    expect(renewalTime(l, 2 / 3, 0.05, 0.5).getTime()).toBe(T0 + 16 * H - 0.025 * 24 * H);
    // Bounded sweep of the random draw: always inside [renewAt - jitter, renewAt].
    for (let i = 0; i < 100; i++) {
      const t = renewalTime(l, 0.7, 0.1, i / 100).getTime();
      expect(t).toBeLessThanOrEqual(T0 + 0.7 * 24 * H);
      expect(t).toBeGreaterThanOrEqual(T0 + 0.6 * 24 * H);
    }
  });
  it('counts the lifetime from when the certificate arrived when notBefore is backdated', () => {
    // The CA backdates notBefore by 60 s: a 30 s certificate has notBefore = now - 60 s.
    const short = { notBefore: at(-60_000), notAfter: at(30_000), obtainedAt: at(0) };
    expect(lifetimeStart(short)).toBe(T0);
    expect(renewalTime(short, 2 / 3, 0, 0).getTime()).toBe(T0 + 20_000);
    // Without obtainedAt it falls back to notBefore; an obtainedAt after notAfter is ignored.
    expect(lifetimeStart({ ...short, obtainedAt: at(40_000) })).toBe(T0 - 60_000);
  });
  it('reports the fraction of the lifetime left, clamped to [0, 1]', () => {
    expect(lifetimeRemainingRatio(l, at(6 * H))).toBeCloseTo(0.75);
    expect(lifetimeRemainingRatio(l, at(30 * H))).toBe(0);
    expect(lifetimeRemainingRatio(l, at(-H))).toBe(1);
  });
});

describe('backoff', () => {
  const b = { initialMs: 1000, maxMs: 300_000 };
  it('doubles from initial and stops at max', () => {
    const ceilings = Array.from({ length: 12 }, (_, n) => backoffCeiling(b, n));
    expect(ceilings).toEqual([
      1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000, 300_000,
    ]);
    expect(backoffCeiling(b, 10_000)).toBe(300_000);
  });
  it('draws the delay with full jitter between a floor and the ceiling', () => {
    expect(backoffDelay(b, 3, 0)).toBe(100);
    expect(backoffDelay(b, 3, 1)).toBe(8000);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(b, 20, i / 50);
      expect(d).toBeGreaterThanOrEqual(100);
      expect(d).toBeLessThanOrEqual(300_000);
    }
  });
  it('keeps one retry before expiry while the certificate is valid', () => {
    const now = at(0);
    expect(retryTime(now, 5000, at(60_000)).getTime()).toBe(T0 + 5000);
    expect(retryTime(now, 300_000, at(60_000)).getTime()).toBe(T0 + 59_000);
    // Already expired: the delay as drawn.
    expect(retryTime(at(70_000), 300_000, at(60_000)).getTime()).toBe(T0 + 370_000);
  });
});

describe('what is due', () => {
  const base = { notAfter: at(30_000), renewAt: at(20_000), hasCertificate: true, reenroll: false };
  it('enrolls without a certificate', () => {
    expect(whatIsDue({ now: at(0), hasCertificate: false, reenroll: false })).toEqual({
      action: 'enroll',
      reason: 'no_certificate',
    });
  });
  it('waits until the renewal time, then renews', () => {
    expect(whatIsDue({ ...base, now: at(10_000) })).toEqual({ action: 'wait', until: at(20_000) });
    expect(whatIsDue({ ...base, now: at(20_000) })).toEqual({ action: 'renew', reason: 'scheduled' });
  });
  it('waits for the retry time after a failure, then retries', () => {
    expect(whatIsDue({ ...base, now: at(21_000), retryAt: at(23_000) })).toEqual({
      action: 'wait',
      until: at(23_000),
    });
    expect(whatIsDue({ ...base, now: at(23_000), retryAt: at(23_000) })).toEqual({
      action: 'renew',
      reason: 'retry',
    });
  });
  it('after expiry: re-enrolls when configured, otherwise keeps trying to renew', () => {
    expect(whatIsDue({ ...base, now: at(31_000) })).toEqual({ action: 'renew', reason: 'expired' });
    expect(whatIsDue({ ...base, reenroll: true, now: at(31_000) })).toEqual({
      action: 'enroll',
      reason: 'expired',
    });
  });
  it('re-enrolls at once after a revocation when configured', () => {
    expect(whatIsDue({ ...base, reenroll: true, revoked: true, now: at(5000) })).toEqual({
      action: 'enroll',
      reason: 'revoked',
    });
    expect(whatIsDue({ ...base, revoked: true, now: at(5000) })).toEqual({
      action: 'wait',
      until: at(20_000),
    });
  });
});
