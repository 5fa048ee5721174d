// mtls exporter: serves certificate expiry and remaining-lifetime metrics for watched files and
// probed endpoints until SIGTERM or Ctrl-C.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { parseDuration } from '../config/index.js';
import {
  loadExporterConfig,
  parseExporterConfig,
  parseHostPort,
  startExporter,
  type ExporterConfig,
} from '../exporter/index.js';
import { createLogger } from '../telemetry/index.js';
import { usage, type CliIo } from './context.js';

interface ExporterFlags {
  config?: string;
  files?: string[];
  endpoint?: string[];
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  listen?: string;
  interval?: string;
  timeout?: string;
  fileInterval?: string;
  concurrency?: string;
  logLevel: string;
  json: boolean;
}

/** The configuration from --config or from --files/--endpoint, with flag overrides (flag > file > default). */
export function exporterConfigFromFlags(o: ExporterFlags, cwd: string): ExporterConfig {
  const fromFlags = (o.files?.length ?? 0) > 0 || (o.endpoint?.length ?? 0) > 0;
  if (o.config && fromFlags)
    throw usage(
      '--config and --files/--endpoint cannot be combined.',
      'Put the files and endpoints in exporter.yaml, or drop --config and give them as flags.',
    );
  if (!o.config && !fromFlags)
    throw usage(
      'Nothing to watch: give --config exporter.yaml, or --files GLOB... and/or --endpoint HOST:PORT...',
      'Example: mtls exporter --files "/etc/mtls/*/cert.pem" --endpoint api.example.org:443',
    );
  const overrides = {
    ...(o.listen !== undefined ? { listen: o.listen } : {}),
    ...(o.interval !== undefined ? { interval: o.interval } : {}),
    ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
    ...(o.fileInterval !== undefined ? { fileInterval: o.fileInterval } : {}),
    ...(o.concurrency !== undefined ? { concurrency: Number(o.concurrency) } : {}),
  };
  if (!o.config) {
    const doc = {
      ...overrides,
      files: o.files ?? [],
      endpoints: (o.endpoint ?? []).map((address) => ({
        address,
        ...(o.servername ? { servername: o.servername } : {}),
        ...(o.ca ? { ca: o.ca } : {}),
        ...(o.cert ? { cert: o.cert } : {}),
        ...(o.key ? { key: o.key } : {}),
      })),
    };
    return parseExporterConfig(doc, 'command line', cwd);
  }
  if (o.ca || o.cert || o.key || o.servername)
    throw usage(
      '--ca, --cert, --key and --servername apply to --endpoint flags, not to --config.',
      'Set ca, cert, key and servername per endpoint in exporter.yaml.',
    );
  const file = loadExporterConfig(resolve(cwd, o.config));
  if (overrides.listen !== undefined && !parseHostPort(overrides.listen, true))
    throw usage(`--listen ${overrides.listen} is not HOST:PORT.`, 'Example: --listen 127.0.0.1:9102');
  const c = overrides.concurrency;
  if (c !== undefined && !(Number.isInteger(c) && c >= 1 && c <= 64))
    throw usage('--concurrency must be a whole number from 1 to 64.', 'Example: --concurrency 8');
  return Object.freeze({
    ...file,
    ...(overrides.listen !== undefined ? { listen: overrides.listen } : {}),
    ...(o.interval !== undefined ? { interval: parseDuration(o.interval, '--interval') } : {}),
    ...(o.timeout !== undefined ? { timeout: parseDuration(o.timeout, '--timeout') } : {}),
    ...(o.fileInterval !== undefined
      ? { fileInterval: parseDuration(o.fileInterval, '--file-interval') }
      : {}),
    ...(c !== undefined ? { concurrency: c } : {}),
  });
}

export async function registerExporter(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown, code?: number) => void,
): Promise<void> {
  await Promise.resolve();
  program
    .command('exporter')
    .description(
      'Prometheus metrics for certificate expiry and lifetime left: watched files and probed TLS endpoints',
    )
    .option('--config <file>', 'exporter.yaml (files, endpoints, listen, intervals)')
    .option(
      '--files <glob...>',
      'certificate files to watch (*, ?, [..], **); expanded again every --file-interval',
    )
    .option('--endpoint <host:port...>', 'TLS endpoints to probe')
    .option('--ca <file>', 'trust bundle for verifying --endpoint servers (default: the public roots)')
    .option('--cert <file>', 'client certificate (chain) for --endpoint servers that require mTLS')
    .option('--key <file>', 'client key for --cert')
    .option('--servername <name>', 'SNI and expected name for --endpoint (default: the host)')
    .option(
      '--listen <host:port>',
      'where /metrics and /healthz are served (default 127.0.0.1:9102; port 0 picks one)',
    )
    .option('--interval <duration>', 'probe interval (default 60s)')
    .option('--timeout <duration>', 'timeout of one probe (default 5s)')
    .option('--file-interval <duration>', 'how often globs are expanded and files re-read (default 30s)')
    .option('--concurrency <n>', 'probes at once (default 8)')
    .option('--log-level <level>', 'info, warn, error, debug', 'info')
    .option('--json', 'print the bound address as JSON once ready', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls exporter --files "/etc/mtls/*/cert.pem" --endpoint api.example.org:443
  mtls exporter --endpoint 10.0.0.5:8443 --ca ca.pem --cert client.pem --key client.key --listen 127.0.0.1:0 --json
  mtls exporter --config exporter.yaml

Example exporter.yaml:
  listen: 127.0.0.1:9102
  interval: 60s            # probes
  fileInterval: 30s        # globs expanded again, files re-read
  timeout: 5s
  files: ["/etc/mtls/*/cert.pem", "/etc/ssl/private/**/*.crt"]
  endpoints:
    - address: orders.internal:8443
      ca: /etc/mtls/orders-client/ca.pem
      cert: /etc/mtls/orders-client/fullchain.pem   # for endpoints that require mTLS
      key: /etc/mtls/orders-client/key.pem

Alert on mtls_exporter_certificate_lifetime_remaining_ratio < 1/3 (docs/exporter.md has the rules).`,
    )
    .action(async (o: ExporterFlags) => {
      const config = exporterConfigFromFlags(o, io.cwd);
      const logger = createLogger({ level: o.logLevel, name: 'mtls-exporter' });
      const running = await startExporter(config, { logger });
      const stopped = new Promise<void>((done) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void running.close().finally(done);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      const url = `http://${running.host.includes(':') ? `[${running.host}]` : running.host}:${running.port}`;
      emit(
        [
          'mtls exporter ready',
          `  metrics   ${url}/metrics`,
          `  health    ${url}/healthz`,
          `  files     ${config.files.length} glob(s), every ${Math.round(config.fileInterval / 1000)} s`,
          `  endpoints ${config.endpoints.length}, every ${Math.round(config.interval / 1000)} s`,
        ],
        {
          ok: true,
          listen: { host: running.host, port: running.port },
          metrics: `${url}/metrics`,
          files: config.files,
          endpoints: config.endpoints.map((e) => e.name ?? e.address),
        },
      );
      await stopped;
    });
}
