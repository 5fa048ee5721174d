// mtls up: the whole system on embedded defaults, in one process: the CA service on SQLite in
// ./mtls-data, a demo upstream, an mTLS proxy listener in front of it with one allow rule, and the
// agent keeping the proxy's server certificate and a demo client's certificate fresh.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { createCaClient, loadCaConfig, startCaServer, type RunningCa } from '../ca/index.js';
import { parseAgentConfig, startAgent, type AgentChange, type RunningAgent } from '../agent/index.js';
import { writeFileAtomic } from '../files/index.js';
import { loadProxyConfig, startProxy } from '../proxy/index.js';
import { openStore, type Store } from '../store/index.js';
import { createLogger } from '../telemetry/index.js';
import { ensureAdminCredential } from './ca-serve.js';
import type { CliIo } from './context.js';
import { openLocalCa } from './quickstart.js';

type Emit = (human: string[], json: unknown, code?: number) => void;

const TRUST_DOMAIN = 'mtlskit.local';

interface UpOptions {
  dir?: string;
  host: string;
  caPort: string;
  caMtlsPort: string;
  proxyPort: string;
  adminPort: string;
  agentPort: string;
  clientTtl: string;
  serverTtl: string;
  logLevel: string;
}

/** The preferred port when it is free, else one the system picks (so a second `mtls up` still starts). */
async function freePort(host: string, preferred: number): Promise<number> {
  const tryListen = (port: number): Promise<number | undefined> =>
    new Promise((done) => {
      const s = createNetServer();
      s.once('error', () => done(undefined));
      s.listen(port, host, () => {
        const a = s.address();
        const got = typeof a === 'object' && a ? a.port : undefined;
        s.close(() => done(got));
      });
    });
  return (preferred > 0 ? await tryListen(preferred) : undefined) ?? (await tryListen(0)) ?? 0;
}

function port(value: string, name: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new Error(`${name} must be a port number (0 picks a free one), not "${value}"`);
  return n;
}

/** The demo upstream: answers with what the proxy told it about the caller (never seen by clients directly). */
function startDemoUpstream(host: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const identity: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (k.startsWith('x-client-') && k !== 'x-client-cert' && typeof v === 'string') identity[k] = v;
    const body = JSON.stringify(
      {
        hello: 'from the demo upstream behind mtls proxy',
        method: req.method,
        path: req.url,
        identity,
      },
      null,
      2,
    );
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body + '\n');
  });
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : 0 });
    });
  });
}

export async function registerUp(program: Command, io: CliIo, emit: Emit): Promise<void> {
  await Promise.resolve();
  program
    .command('up')
    .description(
      'run the whole system locally: CA service (SQLite), demo upstream, mTLS proxy, agent with short-lived certificates',
    )
    .option('--dir <dir>', 'data directory (default $MTLS_CA_DIR or ./mtls-data); reused on the next run')
    .option('--host <ip>', 'address every listener binds', '127.0.0.1')
    .option('--ca-port <n>', 'CA enrollment listener (HTTPS); 0 picks a free port', '8443')
    .option('--ca-mtls-port <n>', 'CA renewal/admin listener (HTTPS + client certificate)', '8444')
    .option('--proxy-port <n>', 'the mTLS proxy listener in front of the demo upstream', '9443')
    .option('--admin-port <n>', "the proxy's /metrics, /healthz, /readyz", '9090')
    .option('--agent-port <n>', "the agent's /metrics", '9091')
    .option('--client-ttl <duration>', "lifetime of the demo client's certificates (renewed at 2/3)", '5m')
    .option('--server-ttl <duration>', "lifetime of the proxy's server certificates", '1h')
    .option('--log-level <level>', 'info, warn, error, debug', 'warn')
    .option('--json', 'print the URLs and commands as JSON once ready', false)
    .addHelpText(
      'after',
      `
Example:
  mtls up            # then run the two printed curl commands; Ctrl-C stops everything
A port that is taken is replaced by a free one (the ready lines show the ports in use).`,
    )
    .action(async (o: UpOptions) => {
      const logger = createLogger({ level: o.logLevel, name: 'mtls-up' });
      const local = openLocalCa(io, o.dir, 'mtlskit', TRUST_DOMAIN);
      const { dir, ca: fileCa } = local;
      const r = (p: string): string => relative(io.cwd, p) || '.';
      const upDir = join(dir, 'up');
      mkdirSync(upDir, { recursive: true });
      const host = o.host;
      const [caPort, caMtlsPort, proxyPort, adminPort, agentPort] = await Promise.all([
        freePort(host, port(o.caPort, '--ca-port')),
        freePort(host, port(o.caMtlsPort, '--ca-mtls-port')),
        freePort(host, port(o.proxyPort, '--proxy-port')),
        freePort(host, port(o.adminPort, '--admin-port')),
        freePort(host, port(o.agentPort, '--agent-port')),
      ]);

      const stack: (() => Promise<void>)[] = [];
      const closeAll = async (): Promise<void> => {
        for (const close of stack.reverse()) await close().catch(() => undefined);
        stack.length = 0;
      };
      try {
        // 1. The CA service (SQLite in DIR/ca.db).
        const store: Store = await openStore(`sqlite:${join(dir, 'ca.db')}`);
        stack.push(() => store.close());
        const running: RunningCa = await startCaServer({
          ca: fileCa,
          store,
          config: loadCaConfig(undefined, {
            listen: `${host}:${caPort}`,
            mtlsListen: `${host}:${caMtlsPort}`,
          }),
          logger: logger.child({ component: 'ca' }),
        });
        stack.push(() => running.close());
        const bundle = join(dir, 'ca.pem');
        const adminDir = ensureAdminCredential(fileCa, dir);
        const admin = createCaClient({
          url: running.mtlsUrl,
          ca: readFileSync(bundle),
          cert: readFileSync(join(adminDir, 'mtls-admin.chain.pem')),
          key: readFileSync(join(adminDir, 'mtls-admin.key')),
        });

        // 2. One-time tokens for the agent's identities, fresh on every run (the agent uses one only
        //    when it has no valid certificate: first run, or after the system was down past expiry).
        const td = fileCa.meta.trustDomain;
        const clientId = td ? `spiffe://${td}/demo/client` : 'dns:demo-client.mtls.local';
        const agentDir = join(dir, 'agent');
        const identities = [
          {
            name: 'proxy',
            profile: 'server' as const,
            commonName: 'localhost',
            sans: ['dns:localhost', `ip:${host === '0.0.0.0' ? '127.0.0.1' : host}`],
            ttl: o.serverTtl,
          },
          {
            name: 'demo-client',
            profile: td ? ('spiffe' as const) : ('client' as const),
            commonName: 'demo-client',
            sans: [clientId],
            ttl: o.clientTtl,
          },
        ];
        for (const id of identities) {
          const t = await admin.post<{ token: string }>('/v1/tokens', {
            profile: id.profile,
            sans: id.sans,
            commonName: id.commonName,
            maxTtl: id.ttl,
          });
          writeFileAtomic(join(upDir, `${id.name}.token`), t.token + '\n', 0o600);
        }

        // 3. The demo upstream.
        const upstream = await startDemoUpstream(host);
        stack.push(
          () =>
            new Promise<void>((done) => {
              upstream.server.close(() => done());
              upstream.server.closeAllConnections();
            }),
        );

        // 4. The agent: both identities' files in DIR/agent/<name>/, renewed at 2/3 of their lifetime.
        // Set once the proxy runs (it starts after the agent has its first certificate).
        const late: { reloadProxy?: (why: string) => Promise<unknown> } = {};
        const agentConfig = parseAgentConfig(
          {
            ca: { url: running.publicUrl, mtlsUrl: running.mtlsUrl, caFile: bundle },
            identities: identities.map((id) => ({
              name: id.name,
              dir: join(agentDir, id.name),
              profile: id.profile,
              commonName: id.commonName,
              sans: id.sans,
              tokenFile: join(upDir, `${id.name}.token`),
              reenroll: true,
              ttl: id.ttl,
            })),
            metrics: { listen: `${host}:${agentPort}` },
          },
          'mtls up agent config',
          dir,
        );
        const agent: RunningAgent = await startAgent(agentConfig, {
          logger: logger.child({ component: 'agent' }),
          onChange: async (change: AgentChange) => {
            // The proxy also watches its files; this makes the reload immediate and logged with the cause.
            if (change.identity === 'proxy' && late.reloadProxy)
              await late.reloadProxy(`agent: ${change.reason} (serial ${change.serial})`);
          },
        });
        stack.push(() => agent.stop());
        await agent.ready;

        // 5. The proxy: strict, one allow rule for the demo client, identity headers, live revocation.
        const proxyYaml = join(upDir, 'proxy.yaml');
        const proxyDoc = {
          listeners: [
            {
              name: 'demo',
              listen: `${host}:${proxyPort}`,
              mode: 'strict',
              protocol: 'http',
              tls: {
                cert: join(agentDir, 'proxy', 'fullchain.pem'),
                key: join(agentDir, 'proxy', 'key.pem'),
                // The agent's trust bundle: it keeps old and new roots side by side during a rotation.
                clientCa: join(agentDir, 'proxy', 'ca.pem'),
              },
              upstream: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${upstream.port}`,
              identity: { headers: 'simple' },
              revocation: {
                feed: running.publicUrl,
                feedCa: join(agentDir, 'proxy', 'ca.pem'),
                failMode: 'closed',
              },
              explain: true,
              allow: [{ identity: clientId }],
            },
          ],
          admin: { listen: `${host}:${adminPort}` },
        };
        writeFileSync(
          proxyYaml,
          '# Written by `mtls up` at every start (edit a copy and run `mtls proxy --config` to experiment).\n' +
            toYaml(proxyDoc),
        );
        const proxy = await startProxy(loadProxyConfig(proxyYaml), logger.child({ component: 'proxy' }), {
          configPath: proxyYaml,
        });
        stack.push(() => proxy.close());
        late.reloadProxy = (why) => proxy.reload(why);

        // Signal handlers go in before "ready" is printed: a supervisor may stop us right after.
        const stopped = new Promise<void>((done) => {
          const stop = (): void => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            void closeAll().finally(done);
          };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });

        const listener = proxy.listeners[0]!;
        const url = `https://localhost:${listener.port}/hello`;
        const client = join(agentDir, 'demo-client');
        const okCurl = `curl --cacert ${r(bundle)} --cert ${r(join(client, 'fullchain.pem'))} --key ${r(join(client, 'key.pem'))} ${url}`;
        const failCurl = `curl --cacert ${r(bundle)} ${url}`;
        const adminUrl = proxy.admin ? `http://${proxy.admin.host}:${proxy.admin.port}` : undefined;
        const agentMetrics = `${agent.metricsUrl ?? `http://${host}:${agentPort}`}/metrics`;
        const caMetrics = `curl --cacert ${r(bundle)} --cert ${r(join(adminDir, 'mtls-admin.chain.pem'))} --key ${r(join(adminDir, 'mtls-admin.key'))} ${running.mtlsUrl}/metrics`;
        emit(
          [
            `mtls up: ready (data in ${r(dir)}${local.created ? ', created now' : ', reused'})`,
            ...local.notes.map((n) => `note: ${n}`),
            `  CA            ${running.publicUrl}   (enrollment, roots, CRL, OCSP, revocation feed)`,
            `  CA mTLS API   ${running.mtlsUrl}   (renewal, revocation, admin)`,
            `  root sha256   ${fileCa.meta.rootFingerprint}`,
            `  proxy         https://${listener.host}:${listener.port} → demo upstream on port ${upstream.port}`,
            `  allow rule    ${clientId} (everything else: 401 or 403 with the reason)`,
            `  agent         ${r(agentDir)}/{proxy,demo-client}: client certificates live ${o.clientTtl}, renewed at 2/3`,
            '',
            'metrics:',
            ...(adminUrl ? [`  proxy   ${adminUrl}/metrics   (and /healthz, /readyz)`] : []),
            `  agent   ${agentMetrics}`,
            `  CA      ${caMetrics}`,
            '',
            'this succeeds (the demo upstream echoes the identity the proxy passed on):',
            `  ${okCurl}`,
            'this fails with the proxy’s explained reason (401, no client certificate):',
            `  ${failCurl}`,
            '',
            'Ctrl-C stops everything; running `mtls up` again reuses the data.',
          ],
          {
            ok: true,
            ready: true,
            dir,
            created: local.created,
            ca: {
              publicUrl: running.publicUrl,
              mtlsUrl: running.mtlsUrl,
              rootFingerprint: fileCa.meta.rootFingerprint,
              bundle,
            },
            proxy: { url: `https://${listener.host}:${listener.port}`, admin: adminUrl ?? null },
            agent: { dir: agentDir, metrics: agentMetrics },
            upstream: { port: upstream.port },
            identity: clientId,
            curl: { ok: okCurl, fail: failCurl },
            notes: local.notes,
          },
        );
        logger.info({ event: 'ready' }, 'mtls up ready');
        await stopped;
        io.stderr('mtls up: stopped\n');
      } catch (e) {
        await closeAll();
        throw e;
      }
    });
}
