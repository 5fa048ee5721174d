// mtls agent: keeps every identity of agent.yaml enrolled and renewed (until SIGTERM, or --once), and
// mtls agent status: each identity's state from its status.json and files.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  lifetimeRemainingRatio,
  loadAgentConfig,
  readStatus,
  runAgentOnce,
  startAgent,
  tryReadAgentFiles,
  type AgentStatus,
} from '../agent/index.js';
import { MtlsError } from '../errors/index.js';
import { createLogger } from '../telemetry/index.js';
import { usage, type CliIo } from './context.js';

type Emit = (human: string[], json: unknown, code?: number) => void;

interface IdentityReport {
  identity: string;
  dir: string;
  serial: string | null;
  notAfter: string | null;
  lifetimeRemaining: number | null;
  nextRenewalAt: string | null;
  lastError: AgentStatus['lastError'] | null;
  expired: boolean;
  problem: string | null;
  roots: number;
}

function configPath(p: string | undefined): string {
  if (!p) throw usage('No agent config.', 'Give --config agent.yaml (docs/agent.md describes the keys).');
  return p;
}

function fmtRatio(r: number | null): string {
  return r === null ? '-' : `${Math.round(r * 100)}%`;
}

export async function registerAgent(program: Command, io: CliIo, emit: Emit): Promise<void> {
  await Promise.resolve();
  const agent = program
    .command('agent')
    .description(
      'keep certificates fresh: enroll with a token, renew over mTLS, write files atomically, run reload hooks',
    )
    .option('--config <file>', 'agent.yaml (CA, identities, hooks; see docs/agent.md)')
    .option('--once', 'do the work that is due now for each identity, then exit (cron, CI)', false)
    .option('--log-level <level>', 'info, warn, error, debug', 'info')
    .option('--json', 'print the result (--once) or the ready line as JSON', false)
    .addHelpText(
      'after',
      `
Example agent.yaml:
  ca: { url: https://ca.internal:8443, mtlsUrl: https://ca.internal:8444, caFile: /etc/mtls/ca-bootstrap.pem }
  identities:
    - name: api
      dir: /var/lib/mtls/api            # key.pem cert.pem chain.pem fullchain.pem ca.pem (symlinks to ..data/)
      sans: [dns:api.internal]
      tokenFile: /etc/mtls/api.token    # first enrollment (and re-enrollment with reenroll: true)
      ttl: 24h                          # renews at 2/3 of the lifetime minus up to 5% jitter
      hooks: [{ signal: HUP, pidFile: /run/nginx.pid }]
  metrics: { listen: 127.0.0.1:9465 }

  mtls agent --config agent.yaml
  mtls agent status --config agent.yaml
Exit codes with --once: 0 every identity holds a valid certificate and nothing failed, 1 otherwise.`,
    )
    .action(async (o: { config?: string; once: boolean; logLevel: string }) => {
      const config = loadAgentConfig(resolve(io.cwd, configPath(o.config)));
      const logger = createLogger({ level: o.logLevel, name: 'mtls-agent' });
      if (o.once) {
        const r = await runAgentOnce(config, { logger });
        emit(
          r.statuses.map(
            (s) =>
              `${s.identity}: ${s.serial ? `serial ${s.serial}, valid until ${s.notAfter}` : 'no certificate'}${s.lastError ? `; last error ${s.lastError.code}: ${s.lastError.message}` : ''}`,
          ),
          { ok: r.ok, identities: r.statuses },
          r.ok ? 0 : 1,
        );
        return;
      }
      const running = await startAgent(config, { logger });
      const stopped = new Promise<void>((done) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void running.stop().finally(done);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
      emit(
        [
          `mtls agent running: ${config.identities.length} identit${config.identities.length === 1 ? 'y' : 'ies'}`,
          ...config.identities.map((i) => `  ${i.name.padEnd(16)} ${i.dir}`),
          ...(running.metricsUrl ? [`  metrics          ${running.metricsUrl}/metrics`] : []),
        ],
        {
          ok: true,
          identities: config.identities.map((i) => ({ name: i.name, dir: i.dir })),
          metricsUrl: running.metricsUrl ?? null,
        },
      );
      logger.info({ event: 'started' }, 'agent started');
      await stopped;
    });

  agent
    .command('status')
    .description("each identity's certificate, lifetime left, next renewal and last error")
    .option('--config <file>', 'agent.yaml')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls agent status --config /etc/mtls/agent.yaml\nExit 1 when an identity has no certificate or an expired one.',
    )
    .action((_o: unknown, cmd: Command) => {
      // --config may land on `agent` or on `agent status` depending on where it is written.
      const o = cmd.optsWithGlobals<{ config?: string }>();
      const config = loadAgentConfig(resolve(io.cwd, configPath(o.config)));
      const now = new Date();
      const reports: IdentityReport[] = config.identities.map((i) => {
        const status = readStatus(i.dir);
        let problem: string | null = null;
        let files;
        try {
          files = tryReadAgentFiles(i.dir);
          if (!files) problem = 'no certificate yet';
        } catch (e) {
          problem = e instanceof MtlsError ? `${e.code}: ${e.message}` : (e as Error).message;
        }
        const c = files?.certificate;
        const expired = c ? now >= c.notAfter : false;
        if (expired) problem = `expired at ${c!.notAfter.toISOString()}`;
        return {
          identity: i.name,
          dir: i.dir,
          serial: c?.serial ?? null,
          notAfter: c?.notAfter.toISOString() ?? null,
          lifetimeRemaining: c
            ? lifetimeRemainingRatio(
                {
                  notBefore: c.notBefore,
                  notAfter: c.notAfter,
                  ...(files?.writtenAt ? { obtainedAt: files.writtenAt } : {}),
                },
                now,
              )
            : null,
          nextRenewalAt: status?.nextRenewalAt ?? null,
          lastError: status?.lastError ?? null,
          expired,
          problem,
          roots: files ? (files.caPem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length : 0,
        };
      });
      const bad = reports.filter((r) => r.problem !== null);
      emit(
        reports.flatMap((r) => [
          `${r.problem ? 'FAIL' : 'ok  '} ${r.identity}  ${r.dir}`,
          `     serial ${r.serial ?? '-'}  notAfter ${r.notAfter ?? '-'}  lifetime left ${fmtRatio(r.lifetimeRemaining)}  trust roots ${r.roots}`,
          `     next renewal ${r.nextRenewalAt ?? '-'}${r.lastError ? `  last error ${r.lastError.code} at ${r.lastError.at}: ${r.lastError.message}` : ''}`,
          ...(r.problem ? [`     problem: ${r.problem}`] : []),
        ]),
        { ok: bad.length === 0, identities: reports },
        bad.length ? 1 : 0,
      );
    });
}
