// The running exporter: re-expands file globs and re-reads files on one interval, probes endpoints
// on another (bounded concurrency, per-probe timeout), and serves the state as Prometheus metrics
// computed at scrape time (so the remaining-lifetime ratio is always current).
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { MtlsError } from '../errors/index.js';
import { readCertificates, systemClock, type Certificate, type Clock } from '../pki/index.js';
import { chainFacts, readCertificateFile, remainingRatio, type CertificateFacts } from './certs.js';
import { parseHostPort, type EndpointConfig, type ExporterConfig } from './config.js';
import { expandGlob } from './glob.js';
import { probeEndpoint, type ProbeResult, type ProbeTarget } from './probe.js';

/** The logger surface the exporter uses (pino fits). */
export interface ExporterLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface ExporterOptions {
  clock?: Clock;
  logger?: ExporterLogger;
  /** Process metrics (CPU, memory, event loop); default true. */
  defaultMetrics?: boolean;
}

export interface RunningExporter {
  host: string;
  port: number;
  registry: Registry;
  /** Re-reads files and probes every endpoint now; resolves when both are done. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

interface Source {
  source: string;
  kind: 'file' | 'endpoint';
  certificates: CertificateFacts[];
}

const CERT_LABELS = ['source', 'kind', 'subject', 'serial', 'position'] as const;

/** The exporter's metrics over its state; names are public API (docs/metrics.md). */
export function createExporterMetrics(
  state: { sources: () => Source[]; probes: () => ProbeResult[]; filesMatched: () => number },
  clock: Clock,
  defaultMetrics = true,
): { registry: Registry; fileReadErrors: Counter } {
  const registry = new Registry();
  if (defaultMetrics) collectDefaultMetrics({ register: registry });
  const each = (g: Gauge, value: (f: CertificateFacts, now: Date) => number): void => {
    g.reset();
    const now = clock.now();
    for (const s of state.sources())
      for (const f of s.certificates)
        g.set(
          { source: s.source, kind: s.kind, subject: f.subject, serial: f.serial, position: f.position },
          value(f, now),
        );
  };
  new Gauge({
    name: 'mtls_exporter_certificate_expiry_timestamp_seconds',
    help: 'notAfter of each certificate found in a watched file or presented by a probed endpoint (Unix seconds).',
    labelNames: CERT_LABELS,
    registers: [registry],
    collect() {
      each(this, (f) => f.notAfter.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'mtls_exporter_certificate_not_before_timestamp_seconds',
    help: 'notBefore of each certificate (Unix seconds).',
    labelNames: CERT_LABELS,
    registers: [registry],
    collect() {
      each(this, (f) => f.notBefore.getTime() / 1000);
    },
  });
  new Gauge({
    name: 'mtls_exporter_certificate_lifetime_remaining_ratio',
    help: 'Fraction of the validity period still ahead (1 just issued, 0 expired); alert on this, not on days.',
    labelNames: CERT_LABELS,
    registers: [registry],
    collect() {
      each(this, (f, now) => remainingRatio(f, now));
    },
  });
  new Gauge({
    name: 'mtls_exporter_probe_success',
    help: '1 when the last probe completed the TLS handshake and the presented chain verified, else 0.',
    labelNames: ['endpoint'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of state.probes()) this.set({ endpoint: p.endpoint }, p.success ? 1 : 0);
    },
  });
  new Gauge({
    name: 'mtls_exporter_probe_verified',
    help: "1 when the endpoint's chain verified against the configured trust bundle for its name, else 0.",
    labelNames: ['endpoint'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of state.probes()) this.set({ endpoint: p.endpoint }, p.verified ? 1 : 0);
    },
  });
  new Gauge({
    name: 'mtls_exporter_probe_duration_seconds',
    help: 'Duration of the last probe: TCP connect and TLS handshake.',
    labelNames: ['endpoint'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of state.probes()) this.set({ endpoint: p.endpoint }, p.durationSeconds);
    },
  });
  new Gauge({
    name: 'mtls_exporter_probe_error',
    help: 'Set to 1 with the reason of the last failed probe (shared reason vocabulary); absent when it succeeded.',
    labelNames: ['endpoint', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of state.probes()) if (p.reason) this.set({ endpoint: p.endpoint, reason: p.reason }, 1);
    },
  });
  new Gauge({
    name: 'mtls_exporter_files_matched',
    help: 'Files matched by the file globs at the last scan.',
    registers: [registry],
    collect() {
      this.set(state.filesMatched());
    },
  });
  const fileReadErrors = new Counter({
    name: 'mtls_exporter_files_read_errors_total',
    help: 'Matched files that could not be read or parsed as certificates (counted at each scan).',
    registers: [registry],
  });
  return { registry, fileReadErrors };
}

function readTrust(path: string): Certificate[] {
  try {
    return readCertificates(readFileSync(path), path);
  } catch (e) {
    throw new MtlsError('MTLS_FILE_READ', `Cannot read the trust bundle ${path}: ${(e as Error).message}`, {
      cause: e,
      fix: 'Point ca: at a PEM file of CA certificates.',
    });
  }
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new MtlsError('MTLS_FILE_NOT_FOUND', `Cannot read the ${what} ${path}.`, {
      cause: e,
      fix: `Check the ${what} path in the endpoint's entry.`,
    });
  }
}

/** The probe target for a configured endpoint; client cert and key are read again before each probe. */
function targetOf(e: EndpointConfig): ProbeTarget {
  const hp = parseHostPort(e.address)!;
  return {
    endpoint: e.name ?? e.address,
    host: hp.host,
    port: hp.port,
    ...(e.servername ? { servername: e.servername } : {}),
    ...(e.ca ? { trust: readTrust(e.ca) } : {}),
    ...(e.cert && e.key
      ? { cert: readPem(e.cert, 'client certificate'), key: readPem(e.key, 'client key') }
      : {}),
  };
}

/** Runs `tasks` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function startExporter(
  config: ExporterConfig,
  opts: ExporterOptions = {},
): Promise<RunningExporter> {
  const clock = opts.clock ?? systemClock;
  const log = opts.logger;
  const targets = config.endpoints.map((e) => ({ config: e, target: targetOf(e) }));
  let files: Source[] = [];
  let filesMatched = 0;
  const probes = new Map<string, ProbeResult>();
  const lastFileErrors = new Map<string, string>();
  const { registry, fileReadErrors } = createExporterMetrics(
    {
      sources: () => [
        ...files,
        ...[...probes.values()].map((p) => ({
          source: p.endpoint,
          kind: 'endpoint' as const,
          certificates: chainFacts(p.chain),
        })),
      ],
      probes: () => [...probes.values()],
      filesMatched: () => filesMatched,
    },
    clock,
    opts.defaultMetrics ?? true,
  );

  const scanFiles = async (): Promise<void> => {
    const paths = new Set<string>();
    for (const g of config.files) for (const p of expandGlob(g)) paths.add(p);
    const next: Source[] = [];
    for (const path of [...paths].sort()) {
      const r = await readCertificateFile(path);
      if (!r.ok) {
        fileReadErrors.inc();
        if (lastFileErrors.get(path) !== r.error)
          log?.warn({ event: 'file_error', file: path, error: r.error }, 'cannot read certificate file');
        lastFileErrors.set(path, r.error);
        continue;
      }
      lastFileErrors.delete(path);
      if (r.certificates.length) next.push({ source: path, kind: 'file', certificates: r.certificates });
    }
    files = next;
    filesMatched = paths.size;
  };

  const probeAll = async (): Promise<void> => {
    await pool(targets, config.concurrency, async (t) => {
      if (t.config.cert && t.config.key) {
        // Follow a rotated client certificate; keep the last good one when a read fails.
        try {
          t.target = { ...t.target, cert: readFileSync(t.config.cert), key: readFileSync(t.config.key) };
        } catch {
          // keep the previous material
        }
      }
      const r = await probeEndpoint(t.target, { timeoutMs: config.timeout, clock });
      const prev = probes.get(r.endpoint);
      if (prev?.reason !== r.reason)
        log?.[r.success ? 'info' : 'warn'](
          { event: 'probe', endpoint: r.endpoint, success: r.success, reason: r.reason, message: r.message },
          r.success ? 'probe ok' : 'probe failed',
        );
      probes.set(r.endpoint, r);
    });
  };

  // First round before the server answers, so the first scrape is complete.
  await Promise.all([scanFiles(), probeAll()]);

  let closed = false;
  const timers = new Set<NodeJS.Timeout>();
  const loop = (every: number, work: () => Promise<void>): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      void work().finally(() => {
        if (!closed) loop(every, work);
      });
    }, every);
    timers.add(t);
  };
  loop(config.fileInterval, scanFiles);
  loop(config.interval, probeAll);

  const server: Server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end('metrics failed\n'),
      );
      return;
    }
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  const listen = parseHostPort(config.listen, true)!;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        new MtlsError('MTLS_EXPORTER_LISTEN', `Cannot listen on ${config.listen}: ${e.code ?? e.message}.`, {
          cause: e,
          fix: 'Pick a free port with --listen 127.0.0.1:PORT (0 picks one), or stop what holds it.',
        }),
      ),
    );
    server.listen(listen.port, listen.host, () => resolve());
  }).catch((e: unknown) => {
    closed = true;
    for (const t of timers) clearTimeout(t);
    throw e;
  });
  const address = server.address() as AddressInfo;
  log?.info({ event: 'ready', host: address.address, port: address.port }, 'exporter ready');
  return {
    host: address.address,
    port: address.port,
    registry,
    refresh: async () => {
      await Promise.all([scanFiles(), probeAll()]);
    },
    close: async () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
