// Prometheus metrics of the CA service, fed by the diagnostics channels. Names are public API:
// mtls_<component>_<what>_<unit>, counters end in _total (docs/metrics.md).
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  caChannels,
  type CaCrlEvent,
  type CaIssuedEvent,
  type CaOcspEvent,
  type CaRefusedEvent,
  type CaTokenEvent,
  type StoreErrorEvent,
} from './channels.js';

export interface MetricsEndpoint {
  contentType: string;
  render(): Promise<string>;
  /** Unsubscribes from the channels. */
  close(): void;
}

export function createCaMetrics(opts: { defaultMetrics?: boolean } = {}): MetricsEndpoint {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const issued = new Counter({
    name: 'mtls_ca_certificates_issued_total',
    help: 'Certificates issued, by action (issue, renew) and profile.',
    labelNames: ['action', 'profile'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'mtls_ca_issuance_duration_seconds',
    help: 'Time from request arrival to the stored certificate, by action and profile.',
    labelNames: ['action', 'profile'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'mtls_ca_requests_refused_total',
    help: 'Refused requests, by action and reason (MTLS_* code).',
    labelNames: ['action', 'reason'],
    registers: [registry],
  });
  const ocspRequests = new Counter({
    name: 'mtls_ca_ocsp_requests_total',
    help: 'OCSP requests, by result (cached, signed, malformed, error).',
    labelNames: ['result'],
    registers: [registry],
  });
  const ocspLatency = new Histogram({
    name: 'mtls_ca_ocsp_response_duration_seconds',
    help: 'Time to answer an OCSP request.',
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
    registers: [registry],
  });
  const tokens = new Counter({
    name: 'mtls_ca_tokens_total',
    help: 'Enrollment tokens created and used.',
    labelNames: ['event'],
    registers: [registry],
  });
  const storeErrors = new Counter({
    name: 'mtls_ca_store_errors_total',
    help: 'Requests that failed because the database was unavailable.',
    labelNames: ['code'],
    registers: [registry],
  });
  let lastCrl: CaCrlEvent | undefined;
  new Gauge({
    name: 'mtls_ca_crl_age_seconds',
    help: 'Age of the CRL currently served (since its thisUpdate).',
    registers: [registry],
    collect() {
      if (lastCrl) this.set((Date.now() - lastCrl.thisUpdate.getTime()) / 1000);
    },
  });
  const crlNumber = new Gauge({
    name: 'mtls_ca_crl_number',
    help: 'CRL number of the CRL currently served.',
    registers: [registry],
  });
  const crlEntries = new Gauge({
    name: 'mtls_ca_crl_entries',
    help: 'Revoked certificates listed in the CRL currently served.',
    registers: [registry],
  });

  const handlers: [keyof typeof caChannels, (m: unknown) => void][] = [
    [
      'issued',
      (m) => {
        const e = m as CaIssuedEvent;
        issued.inc({ action: e.action, profile: e.profile });
        latency.observe({ action: e.action, profile: e.profile }, e.seconds);
      },
    ],
    [
      'refused',
      (m) => {
        const e = m as CaRefusedEvent;
        refused.inc({ action: e.action, reason: e.reason });
      },
    ],
    [
      'ocsp',
      (m) => {
        const e = m as CaOcspEvent;
        ocspRequests.inc({ result: e.result });
        ocspLatency.observe(e.seconds);
      },
    ],
    ['token', (m) => tokens.inc({ event: (m as CaTokenEvent).event })],
    [
      'crl',
      (m) => {
        lastCrl = m as CaCrlEvent;
        crlNumber.set(Number(lastCrl.number));
        crlEntries.set(lastCrl.entries);
      },
    ],
    ['storeError', (m) => storeErrors.inc({ code: (m as StoreErrorEvent).code })],
  ];
  for (const [name, h] of handlers) caChannels[name].subscribe(h);
  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close: () => {
      for (const [name, h] of handlers) caChannels[name].unsubscribe(h);
    },
  };
}
