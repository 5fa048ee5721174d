// Prometheus metrics of mtls proxy, fed by the proxy's diagnostics channels, plus gauges read from
// the running proxy at scrape time. Names are public API (docs/metrics.md).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MetricsEndpoint } from './ca-metrics.js';
import {
  proxyChannels,
  type ProxyClosedEvent,
  type ProxyConnectionEvent,
  type ProxyHandshakeEvent,
  type ProxyOutboundEvent,
  type ProxyReloadEvent,
  type ProxyRequestEvent,
  type ProxyUpstreamErrorEvent,
} from './channels.js';

/** What the proxy reports at scrape time. */
export interface ProxyMetricSources {
  /** Per listener: its own leaf's notAfter. */
  certificateExpiry(): { listener: string; notAfter: Date }[];
  /** Per listener with a revocation feed: seconds since its last message (undefined: none yet), stale. */
  revocation(): { listener: string; feedAgeSeconds?: number; stale: boolean }[];
}

export function createProxyMetrics(
  opts: { defaultMetrics?: boolean; sources?: ProxyMetricSources } = {},
): MetricsEndpoint {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const handshakes = new Counter({
    name: 'mtls_proxy_handshakes_total',
    help: 'TLS handshakes, by listener and result (accepted, or the reason the peer was not).',
    labelNames: ['listener', 'result'],
    registers: [registry],
  });
  const handshakeSeconds = new Histogram({
    name: 'mtls_proxy_handshake_duration_seconds',
    help: 'From TCP accept to the end of the TLS handshake, by listener and whether the session was resumed.',
    labelNames: ['listener', 'resumed'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const resumed = new Counter({
    name: 'mtls_proxy_sessions_resumed_total',
    help: 'Handshakes that resumed a TLS session (ticket) instead of a full handshake.',
    labelNames: ['listener'],
    registers: [registry],
  });
  const open = new Gauge({
    name: 'mtls_proxy_connections_open',
    help: 'Open client connections (TLS established), by listener.',
    labelNames: ['listener'],
    registers: [registry],
  });
  const closed = new Counter({
    name: 'mtls_proxy_connections_closed_total',
    help: 'Connections the proxy closed or refused after the handshake, by listener and reason.',
    labelNames: ['listener', 'reason'],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'mtls_proxy_requests_total',
    help: 'HTTP requests answered, by listener, status code, decision and allow rule (index).',
    labelNames: ['listener', 'code', 'decision', 'rule'],
    registers: [registry],
  });
  const unauthenticated = new Counter({
    name: 'mtls_proxy_unauthenticated_forwarded_total',
    help: 'Requests forwarded without a verified client identity (permissive listeners).',
    labelNames: ['listener'],
    registers: [registry],
  });
  const upstreamSeconds = new Histogram({
    name: 'mtls_proxy_upstream_duration_seconds',
    help: 'Upstream time to response headers, by listener.',
    labelNames: ['listener'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const upstreamErrors = new Counter({
    name: 'mtls_proxy_upstream_errors_total',
    help: 'Upstream failures (connect refused, reset, timeout), by listener and error code.',
    labelNames: ['listener', 'code'],
    registers: [registry],
  });
  const outboundConns = new Counter({
    name: 'mtls_proxy_outbound_connections_total',
    help: 'Outbound mode: connections to the upstream, by entry, result (ok or a reason) and side at fault.',
    labelNames: ['outbound', 'result', 'side'],
    registers: [registry],
  });
  const reloads = new Counter({
    name: 'mtls_proxy_reloads_total',
    help: 'Reloads of the configuration and the files it names, by result (applied, or rejected: the running ones kept).',
    labelNames: ['result'],
    registers: [registry],
  });
  const sources = opts.sources;
  new Gauge({
    name: 'mtls_proxy_certificate_expiry_timestamp_seconds',
    help: "Unix time at which the listener's own certificate expires.",
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of sources?.certificateExpiry() ?? [])
        this.set({ listener: c.listener }, Math.floor(c.notAfter.getTime() / 1000));
    },
  });
  new Gauge({
    name: 'mtls_proxy_revocation_feed_age_seconds',
    help: "Seconds since the CA's revocation feed last spoke (event or heartbeat); absent before the first.",
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of sources?.revocation() ?? [])
        if (r.feedAgeSeconds !== undefined) this.set({ listener: r.listener }, r.feedAgeSeconds);
    },
  });
  new Gauge({
    name: 'mtls_proxy_revocation_stale',
    help: '1 while revocation status is stale (feed silent or out of sync beyond staleAfter, or a CRL past nextUpdate).',
    labelNames: ['listener'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of sources?.revocation() ?? []) this.set({ listener: r.listener }, r.stale ? 1 : 0);
    },
  });

  const onHandshake = (m: unknown): void => {
    const e = m as ProxyHandshakeEvent;
    handshakes.inc({ listener: e.listener, result: e.result });
    if (e.resumed) resumed.inc({ listener: e.listener });
    if (e.seconds !== undefined)
      handshakeSeconds.observe({ listener: e.listener, resumed: e.resumed ? 'true' : 'false' }, e.seconds);
  };
  const onRequest = (m: unknown): void => {
    const e = m as ProxyRequestEvent;
    requests.inc({
      listener: e.listener,
      code: String(e.status),
      decision: e.decision ?? '',
      rule: e.rule ?? '',
    });
    if (e.unauthenticated) unauthenticated.inc({ listener: e.listener });
    if (e.upstreamSeconds !== undefined) upstreamSeconds.observe({ listener: e.listener }, e.upstreamSeconds);
  };
  const onConnection = (m: unknown): void => {
    const e = m as ProxyConnectionEvent;
    open.inc({ listener: e.listener }, e.delta);
  };
  const onClosed = (m: unknown): void => {
    const e = m as ProxyClosedEvent;
    closed.inc({ listener: e.listener, reason: e.reason });
  };
  const onUpstreamError = (m: unknown): void => {
    const e = m as ProxyUpstreamErrorEvent;
    upstreamErrors.inc({ listener: e.listener, code: e.code });
  };
  const onOutbound = (m: unknown): void => {
    const e = m as ProxyOutboundEvent;
    outboundConns.inc({ outbound: e.outbound, result: e.result, side: e.side ?? '' });
  };
  const onReload = (m: unknown): void => {
    reloads.inc({ result: (m as ProxyReloadEvent).result });
  };
  const subs: [keyof typeof proxyChannels, (m: unknown) => void][] = [
    ['reload', onReload],
    ['outbound', onOutbound],
    ['handshake', onHandshake],
    ['request', onRequest],
    ['connection', onConnection],
    ['closed', onClosed],
    ['upstreamError', onUpstreamError],
  ];
  for (const [ch, fn] of subs) proxyChannels[ch].subscribe(fn);
  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close: () => {
      for (const [ch, fn] of subs) proxyChannels[ch].unsubscribe(fn);
    },
  };
}
