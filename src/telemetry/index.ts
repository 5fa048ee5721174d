// Telemetry: the logger factory with redaction, the event channels components publish on
// (node:diagnostics_channel), and the Prometheus metrics built from them.
export * from './logger.js';
export * from './channels.js';
export * from './ca-metrics.js';
export * from './proxy-metrics.js';
