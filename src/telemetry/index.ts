// Telemetry: the logger factory with redaction today; the metric registry and names (Prometheus)
// as components start publishing their events.
export * from './logger.js';
