// mtls exporter: certificate expiry and remaining-lifetime metrics for watched files and probed TLS
// endpoints, served to Prometheus, so alerts fire on the fraction of lifetime left.
export * from './config.js';
export * from './glob.js';
export * from './certs.js';
export * from './probe.js';
export * from './exporter.js';
