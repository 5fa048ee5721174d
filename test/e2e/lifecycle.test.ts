// The whole lifecycle with real processes: `mtls ca serve`, `mtls agent` (30 s certificates for the
// proxy's server identity and a client identity), `mtls proxy` reloaded by the agent's SIGHUP hook,
// and a Node client using createMtlsAgent that keeps sending requests for 3 minutes. Then the
// client's certificate is revoked at the CA: the proxy refuses it within 2 s, and the agent's next
// renewal is refused with a clear error.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request, type Agent } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { assertBuilt, MTLS_BIN, REPO_ROOT } from '../support/cli.js';
import {
  adminCredential,
  call,
  revokeSerial,
  startCaService,
  type CaService,
} from '../support/ca-service.js';
import { initCa } from '../support/pki.js';
import { freePort } from '../support/ports.js';
import { startEchoUpstream, startProxy, type EchoUpstream, type RunningProxy } from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();

const RUN_MS = 180_000;
const TTL = '30s';
const CLIENT_ID = 'dns:payments.lifecycle.internal';

interface Pkg {
  createMtlsAgent(o: { dir: string; keepAlive?: boolean }): Agent & { close(): void };
}

let root: string;
let ca: CaService;
let upstream: EchoUpstream;
let proxy: RunningProxy;
let agent: ChildProcess;
let agentLogs = '';
let agentMetricsPort: number;
const pidFile = (): string => join(root, 'proxy.pid');

async function token(profile: string, sans: string[]): Promise<string> {
  const t = await call(ca.mtlsUrl, {
    path: '/v1/tokens',
    body: { profile, sans, maxTtl: '1h' },
    ca: join(ca.dir, 'ca.pem'),
    client: adminCredential(ca.dir),
  });
  expect(t.status, t.body.toString()).toBe(200);
  return t.json().token as string;
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}\nagent logs:\n${agentLogs.slice(-3000)}`);
}

async function metric(port: number, name: string, labels: string): Promise<number> {
  const m = await call(`http://127.0.0.1:${port}`, { path: '/metrics' });
  const line = m.body
    .toString()
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

beforeAll(async () => {
  root = await makeTempDir('lifecycle');
  const paths = await initCa(root, 'ca', { name: 'lifecycle CA' });
  ca = await startCaService(paths.dir);
  upstream = await startEchoUpstream();
  agentMetricsPort = await freePort();
  const config = {
    ca: { url: ca.publicUrl, mtlsUrl: ca.mtlsUrl, caFile: join(ca.dir, 'ca.pem') },
    identities: [
      {
        name: 'proxy',
        dir: join(root, 'ids', 'proxy'),
        profile: 'server',
        sans: ['dns:localhost', 'ip:127.0.0.1'],
        token: await token('server', ['dns:localhost', 'ip:127.0.0.1']),
        ttl: TTL,
        hooks: [{ signal: 'HUP', pidFile: pidFile() }],
      },
      {
        name: 'client',
        dir: join(root, 'ids', 'client'),
        profile: 'client',
        sans: [CLIENT_ID],
        token: await token('client', [CLIENT_ID]),
        ttl: TTL,
      },
    ],
    retry: { initial: '500ms', max: '5s' },
    metrics: { listen: `127.0.0.1:${agentMetricsPort}` },
  };
  writeFileSync(join(root, 'agent.yaml'), toYaml(config));
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const k of Object.keys(env)) if (k.startsWith('MTLS_')) delete env[k];
  agent = spawn(process.execPath, [MTLS_BIN, 'agent', '--config', join(root, 'agent.yaml')], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  agent.stdout!.on('data', (d: Buffer) => (agentLogs += d.toString()));
  agent.stderr!.on('data', (d: Buffer) => (agentLogs += d.toString()));
  await waitFor('the first certificates', () =>
    ['proxy', 'client'].every((n) => existsSync(join(root, 'ids', n, 'fullchain.pem'))),
  );
  writeFileSync(
    join(root, 'proxy.yaml'),
    toYaml({
      listeners: [
        {
          name: 'api',
          listen: '127.0.0.1:0',
          mode: 'strict',
          tls: {
            cert: join(root, 'ids', 'proxy', 'fullchain.pem'),
            key: join(root, 'ids', 'proxy', 'key.pem'),
            clientCa: join(ca.dir, 'ca.pem'),
          },
          upstream: `http://127.0.0.1:${upstream.port}`,
          identity: { headers: 'simple' },
          revocation: { feed: ca.publicUrl, feedCa: join(ca.dir, 'ca.pem'), staleAfter: '30s' },
          allow: [{ identity: CLIENT_ID }],
        },
      ],
      admin: { listen: '127.0.0.1:0' },
    }),
  );
  proxy = await startProxy(join(root, 'proxy.yaml'), root);
  writeFileSync(pidFile(), `${proxy.proc.pid}\n`);
}, 60_000);

afterAll(async () => {
  agent?.kill('SIGTERM');
  await proxy?.stop();
  await upstream?.close();
  await ca?.stop();
  if (root) await removeTempDir(root);
});

function get(a: Agent, port: number): Promise<{ status: number; body: string; serverSerial?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, servername: 'localhost', path: '/orders', agent: a },
      (res) => {
        const serverSerial = (res.socket as TLSSocket).getPeerCertificate?.()?.serialNumber;
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, serverSerial }));
        res.on('error', reject);
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

function clientSerialAtUpstream(i: number): string | undefined {
  const pem = upstream.received[i]?.headers['x-client-cert'];
  if (typeof pem !== 'string') return undefined;
  return new X509Certificate(decodeURIComponent(pem)).serialNumber;
}

describe('CA + agent + proxy with 30 s certificates for 3 minutes', () => {
  it(
    'renews both identities at least 5 times, the proxy reloads each time, and no request fails',
    async () => {
      const pkg = (await import(join(REPO_ROOT, 'dist', 'index.js'))) as Pkg;
      const client = pkg.createMtlsAgent({ dir: join(root, 'ids', 'client'), keepAlive: true });
      const port = proxy.listeners.api!;
      const failures: string[] = [];
      const serverSerials = new Set<string>();
      let ok = 0;
      const end = Date.now() + RUN_MS;
      const loop = async (): Promise<void> => {
        // Bounded in time and count: about 20 requests/s per loop.
        for (let n = 0; Date.now() < end && n < 20_000; n++) {
          try {
            const r = await get(client, port);
            if (r.status === 200) ok++;
            else failures.push(`${r.status} ${r.body.slice(0, 200)}`);
            if (r.serverSerial) serverSerials.add(r.serverSerial);
          } catch (e) {
            failures.push((e as Error).message);
          }
          await sleep(50);
        }
      };
      try {
        await Promise.all([loop(), loop()]);
      } finally {
        client.close();
      }
      const clientSerials = new Set(
        upstream.received.map((_, i) => clientSerialAtUpstream(i)).filter((s) => s !== undefined),
      );
      const figures = {
        requestsOk: ok,
        failed: failures.length,
        clientRenewals: await metric(
          agentMetricsPort,
          'mtls_agent_renewals_total',
          'identity="client",result="ok"',
        ),
        proxyRenewals: await metric(
          agentMetricsPort,
          'mtls_agent_renewals_total',
          'identity="proxy",result="ok"',
        ),
        proxyReloads: await metric(proxy.adminPort!, 'mtls_proxy_reloads_total', 'result="applied"'),
        clientSerialsAtUpstream: clientSerials.size,
        serverSerialsAtClient: serverSerials.size,
      };
      console.log(`lifecycle figures: ${JSON.stringify(figures)}`);
      expect(failures.slice(0, 5)).toEqual([]);
      expect(ok).toBeGreaterThan(1000);
      // 3 minutes of 30 s certificates renewed at 2/3 (~20 s): about 9 each; at least 5 asked.
      expect(
        await metric(agentMetricsPort, 'mtls_agent_renewals_total', 'identity="client",result="ok"'),
      ).toBeGreaterThanOrEqual(5);
      expect(
        await metric(agentMetricsPort, 'mtls_agent_renewals_total', 'identity="proxy",result="ok"'),
      ).toBeGreaterThanOrEqual(5);
      // The upstream saw the client's renewed certificates, the client saw the proxy's renewed ones.
      expect(clientSerials.size).toBeGreaterThanOrEqual(5);
      expect(serverSerials.size).toBeGreaterThanOrEqual(5);
      expect(
        await metric(proxy.adminPort!, 'mtls_proxy_reloads_total', 'result="applied"'),
      ).toBeGreaterThanOrEqual(5);
      expect(await metric(proxy.adminPort!, 'mtls_proxy_reloads_total', 'result="rejected"')).toBe(0);
    },
    RUN_MS + 60_000,
  );

  it("refuses the client within 2 s of its revocation, and the agent's next renewal is refused with a clear error", async () => {
    const pkg = (await import(join(REPO_ROOT, 'dist', 'index.js'))) as Pkg;
    const client = pkg.createMtlsAgent({ dir: join(root, 'ids', 'client'), keepAlive: true });
    const port = proxy.listeners.api!;
    try {
      expect((await get(client, port)).status).toBe(200);
      const serial = new X509Certificate(readFileSync(join(root, 'ids', 'client', 'cert.pem'))).serialNumber;
      const revokedAt = Date.now();
      await revokeSerial(ca, serial);
      // The proxy closes the revoked peer's open connections (a request on one fails with a reset)
      // and answers 401 revoked on new ones.
      let refused: { status: number; body: string } | undefined;
      let closed = 0;
      while (Date.now() - revokedAt < 5_000) {
        const r = await get(client, port).catch((e: Error) => ({ status: 0, body: e.message }));
        if (r.status === 0) closed++;
        else if (r.status !== 200) {
          refused = r;
          break;
        }
        await sleep(50);
      }
      expect(refused, `still served 5 s after the revocation (${closed} connections closed)`).toBeDefined();
      expect(Date.now() - revokedAt).toBeLessThan(2_000);
      expect(refused!.status).toBe(401);
      expect(JSON.parse(refused!.body)).toMatchObject({ reason: 'revoked' });
      // The agent tries to renew the revoked certificate at its next window and is refused.
      await waitFor('the refused renewal', () => /revoked/i.test(agentLogs), 30_000);
      const status = JSON.parse(readFileSync(join(root, 'ids', 'client', 'status.json'), 'utf8')) as {
        lastError?: string | { message?: string };
      };
      expect(JSON.stringify(status.lastError)).toMatch(/revoked/i);
    } finally {
      client.close();
    }
  }, 60_000);
});
