// mtls proxy: runs the listeners of proxy.yaml until SIGTERM or Ctrl-C.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadProxyConfig, startProxy } from '../proxy/index.js';
import { createLogger } from '../telemetry/index.js';
import type { CliIo } from './context.js';

export function registerProxy(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown) => void,
): void {
  program
    .command('proxy')
    .description(
      'run mTLS listeners in front of HTTP services: verdict per peer, allow rules, identity headers',
    )
    .requiredOption('--config <file>', 'proxy.yaml (listeners, allow rules, admin listener)')
    .option('--log-level <level>', 'info, warn, error, debug', 'info')
    .option('--json', 'print the bound addresses as JSON once ready', false)
    .addHelpText(
      'after',
      `
Example proxy.yaml:
  listeners:
    - name: orders-api
      listen: 127.0.0.1:8443          # port 0 picks a free port (shown in the ready line)
      mode: strict                    # strict | permissive
      tls: { cert: certs/orders.chain.pem, key: certs/orders.key, clientCa: certs/ca.pem }
      upstream: http://127.0.0.1:8080
      identity: { headers: xfcc }     # xfcc | simple | none
      allow:
        - { identity: "spiffe://example.org/ns/prod/sa/payment", paths: ["/payments/*"], methods: [GET, POST] }
  admin: { listen: 127.0.0.1:9090 }   # /metrics, /healthz, /readyz

  mtls proxy --config proxy.yaml --json
Reloads certificates, keys, CA bundles, CRLs and rules when their files change or on SIGHUP;
a bad new configuration is logged and the running one kept. Stops cleanly on SIGTERM or Ctrl-C.`,
    )
    .action(async (o: { config: string; logLevel: string }) => {
      const configPath = resolve(io.cwd, o.config);
      const config = loadProxyConfig(configPath);
      const logger = createLogger({ level: o.logLevel, name: 'mtls-proxy' });
      const running = await startProxy(config, logger, { configPath });
      // SIGHUP re-reads the config and every file it names (files are also watched).
      const hup = (): void => void running.reload('SIGHUP');
      process.on('SIGHUP', hup);
      // Signal handlers go in before "ready" is printed: a supervisor may stop us right after.
      const stopped = new Promise<void>((done) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          process.off('SIGHUP', hup);
          void running.close().finally(done);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      const listeners = running.listeners.map((l) => ({ name: l.name, host: l.host, port: l.port }));
      const outbound = running.outbound.map((o) => ({ name: o.name, host: o.host, port: o.port }));
      emit(
        [
          'mtls proxy ready',
          ...listeners.map((l) => `  ${l.name.padEnd(16)} https://${l.host}:${l.port}`),
          ...outbound.map(
            (o) => `  ${o.name.padEnd(16)} ${o.host}:${o.port} (outbound, plaintext in, mTLS out)`,
          ),
          ...(running.admin
            ? [`  admin            http://${running.admin.host}:${running.admin.port}/metrics`]
            : []),
        ],
        { ok: true, listeners, outbound, admin: running.admin ?? null },
      );
      logger.info({ event: 'ready', listeners }, 'proxy ready');
      await stopped;
    });
}
