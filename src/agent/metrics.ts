// Prometheus metrics of mtls agent. Names are public API (docs/metrics.md, "agent").
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

import type { HookKind } from './hooks.js';

/** The small fixed set of failure results (the `result` label next to `ok`). */
export const AGENT_FAILURES = [
  'unreachable',
  'tls',
  'refused',
  'revoked',
  'expired',
  'bad_answer',
  'no_token',
  'files',
  'error',
] as const;
export type AgentFailure = (typeof AGENT_FAILURES)[number];

/** Maps an error code to its failure result. */
export function failureOf(code: string): AgentFailure {
  switch (code) {
    case 'MTLS_CA_UNREACHABLE':
    case 'MTLS_STORE_UNAVAILABLE':
      return 'unreachable';
    case 'MTLS_CA_TLS':
    case 'MTLS_CA_ROOT_MISMATCH':
      return 'tls';
    case 'MTLS_CA_REVOKED':
      return 'revoked';
    case 'MTLS_CA_RENEW_EXPIRED':
    case 'MTLS_AGENT_EXPIRED':
      return 'expired';
    case 'MTLS_AGENT_BAD_ANSWER':
      return 'bad_answer';
    case 'MTLS_AGENT_NO_TOKEN':
      return 'no_token';
    case 'MTLS_AGENT_FILES':
    case 'MTLS_FILE_WRITE':
      return 'files';
    default:
      return code.startsWith('MTLS_CA_') ? 'refused' : 'error';
  }
}

export interface AgentMetrics {
  registry: Registry;
  contentType: string;
  render(): Promise<string>;
  certificate(identity: string, notAfter: Date | undefined, ratio: number | undefined): void;
  nextRenewal(identity: string, at: Date | undefined): void;
  renewal(identity: string, action: 'enroll' | 'renew', result: 'ok' | AgentFailure): void;
  lastError(identity: string, at: Date): void;
  backoff(identity: string, seconds: number): void;
  hook(identity: string, kind: HookKind, ok: boolean): void;
  trustRoots(identity: string, count: number): void;
}

export function createAgentMetrics(opts: { defaultMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const r = [registry];
  const expiry = new Gauge({
    name: 'mtls_agent_certificate_expiry_timestamp_seconds',
    help: "The identity's current certificate notAfter (Unix seconds).",
    labelNames: ['identity'],
    registers: r,
  });
  const ratio = new Gauge({
    name: 'mtls_agent_certificate_lifetime_remaining_ratio',
    help: 'Fraction of the current certificate lifetime left (1 new, 0 expired); alert on this, not on days.',
    labelNames: ['identity'],
    registers: r,
  });
  const renewals = new Counter({
    name: 'mtls_agent_renewals_total',
    help: 'Renewal attempts over mTLS, by identity and result (ok, unreachable, tls, refused, revoked, expired, bad_answer, no_token, files, error).',
    labelNames: ['identity', 'result'],
    registers: r,
  });
  const enrollments = new Counter({
    name: 'mtls_agent_enrollments_total',
    help: 'Enrollment attempts with a token (first certificate, or re-enrollment after expiry or revocation), by identity and result.',
    labelNames: ['identity', 'result'],
    registers: r,
  });
  const next = new Gauge({
    name: 'mtls_agent_next_renewal_timestamp_seconds',
    help: 'When the agent will next try to renew or enroll this identity (Unix seconds).',
    labelNames: ['identity'],
    registers: r,
  });
  const lastError = new Gauge({
    name: 'mtls_agent_last_error_timestamp_seconds',
    help: 'When the last failed attempt for this identity happened (Unix seconds; absent if none).',
    labelNames: ['identity'],
    registers: r,
  });
  const backoff = new Gauge({
    name: 'mtls_agent_retry_backoff_seconds',
    help: 'The current retry delay after consecutive failures (0 when the last attempt succeeded).',
    labelNames: ['identity'],
    registers: r,
  });
  const hooks = new Counter({
    name: 'mtls_agent_hook_runs_total',
    help: 'Reload hook runs, by identity, kind (signal, command, url) and result (ok, failed).',
    labelNames: ['identity', 'kind', 'result'],
    registers: r,
  });
  const roots = new Gauge({
    name: 'mtls_agent_trust_roots',
    help: "Roots in the identity's trust bundle (2 during a root rotation).",
    labelNames: ['identity'],
    registers: r,
  });
  return {
    registry,
    contentType: registry.contentType,
    render: () => registry.metrics(),
    certificate: (identity, notAfter, rr) => {
      if (notAfter) expiry.set({ identity }, notAfter.getTime() / 1000);
      if (rr !== undefined) ratio.set({ identity }, rr);
    },
    nextRenewal: (identity, at) => {
      if (at) next.set({ identity }, at.getTime() / 1000);
    },
    renewal: (identity, action, result) =>
      (action === 'renew' ? renewals : enrollments).inc({ identity, result }),
    lastError: (identity, at) => lastError.set({ identity }, at.getTime() / 1000),
    backoff: (identity, seconds) => backoff.set({ identity }, seconds),
    hook: (identity, kind, ok) => hooks.inc({ identity, kind, result: ok ? 'ok' : 'failed' }),
    trustRoots: (identity, count) => roots.set({ identity }, count),
  };
}
