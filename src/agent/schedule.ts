// The renewal schedule, pure: when to renew a certificate, how long to back off after a failure.
// Time and randomness come in as arguments so unit tests never sleep.

export interface Lifetime {
  notBefore: Date;
  notAfter: Date;
  /** When the agent received the certificate (from its version directory's name), if known. */
  obtainedAt?: Date;
}

/**
 * Where the lifetime starts. A CA may backdate notBefore for clock skew (mtlskit's CA does, by 60 s);
 * counting from notBefore would then renew a 30 s certificate at once. The lifetime counts from when
 * the agent received the certificate when that is later than notBefore (and not after notAfter).
 */
export function lifetimeStart(l: Lifetime): number {
  const nb = l.notBefore.getTime();
  const got = l.obtainedAt?.getTime();
  if (got === undefined || got <= nb || got >= l.notAfter.getTime()) return nb;
  return got;
}

/** Fraction of the lifetime left at `now` (1 at the start, 0 at notAfter; never below 0). */
export function lifetimeRemainingRatio(l: Lifetime, now: Date): number {
  const start = lifetimeStart(l);
  const total = l.notAfter.getTime() - start;
  if (total <= 0) return 0;
  return Math.min(1, Math.max(0, (l.notAfter.getTime() - now.getTime()) / total));
}

/**
 * The renewal time: start + lifetime × renewAt − random(0..jitter × lifetime).
 * `random` is a number in [0, 1), drawn once per certificate.
 */
export function renewalTime(l: Lifetime, renewAt: number, jitter: number, random: number): Date {
  const start = lifetimeStart(l);
  const total = l.notAfter.getTime() - start;
  return new Date(start + total * renewAt - random * jitter * total);
}

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** The ceiling of the n-th retry delay (n = 0 for the first retry): initial × 2^n, capped at max. */
export function backoffCeiling(b: Backoff, attempt: number): number {
  return Math.min(b.maxMs, b.initialMs * 2 ** Math.min(attempt, 52));
}

/**
 * Exponential backoff with full jitter: a delay drawn uniformly in [floor, ceiling] where the floor is
 * a tenth of the initial delay (so a run of unlucky draws never turns into a busy loop).
 */
export function backoffDelay(b: Backoff, attempt: number, random: number): number {
  const ceiling = backoffCeiling(b, attempt);
  const floor = Math.min(ceiling, b.initialMs / 10);
  return Math.round(floor + random * (ceiling - floor));
}

/**
 * The next retry time after a failure, never later than the certificate's own renewal-critical
 * moments: while the certificate is valid the retry is also kept before notAfter so the last
 * chance to renew is not slept through.
 */
export function retryTime(now: Date, delayMs: number, notAfter: Date | undefined): Date {
  const t = now.getTime() + delayMs;
  if (notAfter && now < notAfter && t > notAfter.getTime()) {
    // One attempt just before expiry, at least 1 s from now.
    return new Date(Math.max(now.getTime() + 1000, notAfter.getTime() - 1000));
  }
  return new Date(t);
}

export type Due =
  | { action: 'enroll'; reason: 'no_certificate' | 'expired' | 'revoked' }
  | { action: 'renew'; reason: 'scheduled' | 'retry' | 'expired' }
  | { action: 'wait'; until: Date };

/** What an identity should do now. */
export function whatIsDue(opts: {
  now: Date;
  hasCertificate: boolean;
  notAfter?: Date;
  renewAt?: Date;
  /** Set after a failure: the earliest next attempt. */
  retryAt?: Date;
  /** Re-enrollment with a token file is configured. */
  reenroll: boolean;
  /** The CA said the current certificate is revoked. */
  revoked?: boolean;
}): Due {
  const { now } = opts;
  if (opts.retryAt && now < opts.retryAt) return { action: 'wait', until: opts.retryAt };
  if (!opts.hasCertificate || !opts.notAfter) return { action: 'enroll', reason: 'no_certificate' };
  const expired = now >= opts.notAfter;
  if (opts.revoked && opts.reenroll) return { action: 'enroll', reason: 'revoked' };
  if (expired)
    return opts.reenroll ? { action: 'enroll', reason: 'expired' } : { action: 'renew', reason: 'expired' };
  if (opts.retryAt) return { action: 'renew', reason: 'retry' };
  if (opts.renewAt && now >= opts.renewAt) return { action: 'renew', reason: 'scheduled' };
  return { action: 'wait', until: opts.renewAt ?? opts.notAfter };
}
