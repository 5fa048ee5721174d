// Prometheus metrics of mtls proxy, fed by the proxy's diagnostics channels. Names are public API.
import { collectDefaultMetrics, Counter, Registry } from 'prom-client';
import type { MetricsEndpoint } from './ca-metrics.js';
import { proxyChannels, type ProxyHandshakeEvent, type ProxyRequestEvent } from './channels.js';

export function createProxyMetrics(opts: { defaultMetrics?: boolean } = {}): MetricsEndpoint {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const handshakes = new Counter({
    name: 'mtls_proxy_handshakes_total',
    help: 'Completed TLS handshakes, by listener and result (accepted, or the reason the peer was not).',
    labelNames: ['listener', 'result'],
    registers: [registry],
  });
  const requests = new Counter({
    name: 'mtls_proxy_requests_total',
    help: 'HTTP requests answered, by listener and status code.',
    labelNames: ['listener', 'code'],
    registers: [registry],
  });
  const unauthenticated = new Counter({
    name: 'mtls_proxy_unauthenticated_forwarded_total',
    help: 'Requests forwarded without a verified client identity (permissive listeners).',
    labelNames: ['listener'],
    registers: [registry],
  });
  const onHandshake = (m: unknown): void => {
    const e = m as ProxyHandshakeEvent;
    handshakes.inc({ listener: e.listener, result: e.result });
  };
  const onRequest = (m: unknown): void => {
    const e = m as ProxyRequestEvent;
    requests.inc({ listener: e.listener, code: String(e.status) });
    if (e.unauthenticated) unauthenticated.inc({ listener: e.listener });
  };
  proxyChannels.handshake.subscribe(onHandshake);
  proxyChannels.request.subscribe(onRequest);
  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close: () => {
      proxyChannels.handshake.unsubscribe(onHandshake);
      proxyChannels.request.unsubscribe(onRequest);
    },
  };
}
