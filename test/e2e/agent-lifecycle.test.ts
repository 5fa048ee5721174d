// mtls agent against the real CA service with 12 s certificates: enrollment with a token, at least
// three renewals over mTLS, files that always match, command and signal hooks, metrics; then a
// revocation at the CA: the renewal is refused with MTLS_CA_REVOKED, said clearly in the log, and
// the agent re-enrolls with the token file.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAgentFiles, readStatus } from '../../src/agent/index.js';
import {
  agentToken,
  caSection,
  sample,
  scrape,
  startAgentProcess,
  waitFor,
  writeAgentConfig,
  type AgentProcess,
} from '../support/agent.js';
import { call, revokeSerial, startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt, mtls } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let ca: CaService;
const agents: AgentProcess[] = [];
let hupTarget: ChildProcess | undefined;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('agent-life');
  const paths = await initCa(root, 'ca');
  ca = await startCaService(paths.dir);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  hupTarget?.kill('SIGKILL');
  await ca?.stop();
  await removeTempDir(root);
});

describe('mtls agent lifecycle', () => {
  it('enrolls, renews at least 3 times, keeps files matching, runs hooks and counts it all', async () => {
    const dir = join(root, 'web');
    const marker = join(root, 'hook-marker');
    const hupCount = join(root, 'hup-count');
    // A process that counts SIGHUPs (stands in for nginx or mtls proxy).
    hupTarget = spawn(
      process.execPath,
      [
        '-e',
        `let n = 0; process.on('SIGHUP', () => require('node:fs').writeFileSync(${JSON.stringify(hupCount)}, String(++n))); setInterval(() => {}, 1000);`,
      ],
      { stdio: 'ignore' },
    );
    const pidFile = join(root, 'target.pid');
    writeFileSync(pidFile, String(hupTarget.pid));
    const config = writeAgentConfig(root, {
      ca: caSection(ca),
      identities: [
        {
          name: 'web',
          dir,
          sans: ['dns:web.internal'],
          token: await agentToken(ca, ['dns:web.internal']),
          ttl: '12s',
          hooks: [
            { command: ['sh', '-c', `echo "$MTLS_AGENT_IDENTITY" >> ${marker}`] },
            { signal: 'HUP', pidFile },
          ],
        },
      ],
      retry: { initial: '500ms', max: '3s' },
      metrics: { listen: '127.0.0.1:0' },
    });
    const agent = await startAgentProcess(config);
    agents.push(agent);
    expect(agent.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // Readers sample the files while the agent renews: every read is a matching pair.
    let reads = 0;
    const serials = new Set<string>();
    const readerErrors: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      for (let i = 0; i < 1000 && sampling; i++) {
        if (existsSync(join(dir, '..data'))) {
          try {
            serials.add(readAgentFiles(dir).certificate.serial);
            reads++;
          } catch (e) {
            readerErrors.push((e as Error).message);
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const status = await waitFor(
      '4 certificates (enrollment + 3 renewals)',
      () => {
        const s = readStatus(dir);
        return s && s.renewals.ok >= 4 ? s : undefined;
      },
      55_000,
      250,
    );
    sampling = false;
    await sampler;
    expect(readerErrors).toEqual([]);
    expect(reads).toBeGreaterThan(20);
    expect(serials.size).toBeGreaterThanOrEqual(3);
    expect(agent.records().filter((r) => String(r.event).endsWith('_failed'))).toEqual([]);
    expect(status.renewals.failed).toBe(0);
    expect(status.expired).toBe(false);
    const files = readAgentFiles(dir);
    expect(files.certificate.serial).toBe(status.serial);
    expect(readFileSync(join(dir, 'fullchain.pem'), 'latin1')).toBe(files.certPem + files.chainPem);
    // Hooks: one run per change, both kinds.
    const lines = readFileSync(marker, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(4);
    expect(new Set(lines)).toEqual(new Set(['web']));
    expect(Number(readFileSync(hupCount, 'utf8'))).toBeGreaterThanOrEqual(4);
    const health = await call(agent.metricsUrl!, { path: '/healthz' });
    expect(health.status).toBe(200);
    const text = await scrape(agent.metricsUrl!);
    expect(sample(text, 'mtls_agent_renewals_total{identity="web",result="ok"}')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'mtls_agent_enrollments_total{identity="web",result="ok"}')).toBe(1);
    expect(
      sample(text, 'mtls_agent_hook_runs_total{identity="web",kind="command",result="ok"}'),
    ).toBeGreaterThanOrEqual(4);
    expect(
      sample(text, 'mtls_agent_hook_runs_total{identity="web",kind="signal",result="ok"}'),
    ).toBeGreaterThanOrEqual(4);
    const ratio = sample(text, 'mtls_agent_certificate_lifetime_remaining_ratio{identity="web"}')!;
    expect(ratio).toBeGreaterThan(0);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(sample(text, 'mtls_agent_certificate_expiry_timestamp_seconds{identity="web"}')).toBe(
      Math.floor(files.certificate.notAfter.getTime() / 1000),
    );
    // mtls agent status reads the same state.
    const st = await mtls(['agent', 'status', '--config', config, '--json'], { cwd: root });
    expect(st.code).toBe(0);
    const report = JSON.parse(st.stdout) as {
      ok: boolean;
      identities: { identity: string; roots: number }[];
    };
    expect(report.ok).toBe(true);
    expect(report.identities[0]).toMatchObject({ identity: 'web', roots: 1 });
    await agent.stop();
  });

  it('a revoked certificate: the renewal is refused with MTLS_CA_REVOKED, logged clearly, then it re-enrolls', async () => {
    const dir = join(root, 'api');
    const tokenFile = join(root, 'api.token');
    writeFileSync(tokenFile, (await agentToken(ca, ['dns:api.internal'])) + '\n');
    const config = writeAgentConfig(
      root,
      {
        ca: caSection(ca),
        identities: [{ name: 'api', dir, sans: ['dns:api.internal'], tokenFile, reenroll: true, ttl: '10s' }],
        retry: { initial: '300ms', max: '2s' },
        metrics: { listen: '127.0.0.1:0' },
      },
      'agent-api.yaml',
    );
    const agent = await startAgentProcess(config);
    agents.push(agent);
    const first = await waitFor('the first certificate', () => readStatus(dir)?.serial, 15_000);
    // The next token is dropped into the token file; then the CA revokes the current certificate.
    writeFileSync(tokenFile, (await agentToken(ca, ['dns:api.internal'])) + '\n');
    await revokeSerial(ca, first);
    const after = await waitFor(
      'a certificate other than the revoked one',
      () => {
        const s = readStatus(dir);
        return s?.serial && s.serial !== first && s.renewals.failed >= 1 ? s : undefined;
      },
      20_000,
      200,
    );
    expect(after.expired).toBe(false);
    const refused = agent.records().find((r) => r.code === 'MTLS_CA_REVOKED');
    expect(refused).toBeDefined();
    expect(refused!.level).toBe(50); // error
    expect(String(refused!.msg)).toMatch(/revoked/);
    expect(String(refused!.msg)).toMatch(/re-enrolling with tokenFile/);
    const text = await scrape(agent.metricsUrl!);
    expect(sample(text, 'mtls_agent_renewals_total{identity="api",result="revoked"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(sample(text, 'mtls_agent_enrollments_total{identity="api",result="ok"}')).toBe(2);
    expect(readAgentFiles(dir).certificate.serial).toBe(after.serial);
    await agent.stop();
  });

  it('--once and status answer with exit codes; a bad config writes nothing', async () => {
    const dir = join(root, 'cli');
    // Invalid: an unknown key. Exit 2, and the identity directory is not created.
    const bad = writeAgentConfig(
      root,
      { ca: caSection(ca), identities: [{ name: 'cli', dir, tokn: 'x' }] },
      'agent-bad.yaml',
    );
    const r1 = await mtls(['agent', '--config', bad, '--once'], { cwd: root });
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/MTLS_CONFIG_INVALID: .*identities\.0/);
    expect(existsSync(dir)).toBe(false);
    // A CA that is not there: --once exits 1 and status.json says why.
    const down = writeAgentConfig(
      root,
      {
        ca: { url: 'https://127.0.0.1:9', mtlsUrl: 'https://127.0.0.1:9', caFile: join(ca.dir, 'ca.pem') },
        identities: [{ name: 'cli', dir, token: 'mtls_x.y' }],
      },
      'agent-down.yaml',
    );
    const r2 = await mtls(['agent', '--config', down, '--once', '--json'], { cwd: root });
    expect(r2.code).toBe(1);
    const out = JSON.parse(r2.stdout) as { ok: boolean; identities: { lastError?: { code: string } }[] };
    expect(out.ok).toBe(false);
    expect(out.identities[0]!.lastError?.code).toBe('MTLS_CA_UNREACHABLE');
    expect(readStatus(dir)?.lastError?.code).toBe('MTLS_CA_UNREACHABLE');
    const st = await mtls(['agent', 'status', '--config', down], { cwd: root });
    expect(st.code).toBe(1);
    expect(st.stdout).toMatch(/FAIL cli/);
    expect(st.stdout).toMatch(/no certificate yet/);
    expect(st.stdout).toMatch(/last error MTLS_CA_UNREACHABLE/);
  });
});
