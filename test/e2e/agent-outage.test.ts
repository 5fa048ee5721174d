// The CA goes away for longer than a renewal window: the agent backs off (status.json, metrics and
// logs show it), the current certificate stays in place and valid, and the renewal succeeds soon
// after the CA comes back on the same ports.
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
import { startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let caDir: string;
let ca: CaService | undefined;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('agent-outage');
  caDir = (await initCa(root, 'ca')).dir;
  ca = await startCaService(caDir);
});

afterAll(async () => {
  await agent?.stop();
  await ca?.stop();
  await removeTempDir(root);
});

describe('mtls agent during a CA outage', () => {
  it('backs off while the CA is down, keeps the certificate, renews soon after the CA returns', async () => {
    const dir = join(root, 'svc');
    const first = ca!;
    const config = writeAgentConfig(root, {
      ca: caSection(first),
      identities: [
        {
          name: 'svc',
          dir,
          sans: ['dns:svc.internal'],
          token: await agentToken(first, ['dns:svc.internal']),
          ttl: '24s',
        },
      ],
      retry: { initial: '500ms', max: '2s' },
      metrics: { listen: '127.0.0.1:0' },
    });
    agent = await startAgentProcess(config);
    const enrolled = await waitFor('the first certificate', () => readStatus(dir)?.serial, 15_000);
    const before = readAgentFiles(dir);
    const notAfter = before.certificate.notAfter;
    // The outage: the CA stops now and stays down past the renewal time (2/3 of 24 s = 16 s).
    await first.stop();
    ca = undefined;
    const down = await waitFor(
      'at least 3 failed renewal attempts',
      () => {
        const s = readStatus(dir);
        return s && s.renewals.failed >= 3 ? s : undefined;
      },
      25_000,
      200,
    );
    expect(down.lastError?.code).toBe('MTLS_CA_UNREACHABLE');
    expect(down.retryBackoffSeconds).toBeGreaterThan(0);
    expect(down.serial).toBe(enrolled);
    expect(down.expired).toBe(false);
    // Backoff is visible in the metrics and the logs; the current files are untouched and valid.
    const text = await scrape(agent.metricsUrl!);
    expect(
      sample(text, 'mtls_agent_renewals_total{identity="svc",result="unreachable"}'),
    ).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'mtls_agent_retry_backoff_seconds{identity="svc"}')).toBeGreaterThan(0);
    expect(sample(text, 'mtls_agent_last_error_timestamp_seconds{identity="svc"}')).toBeGreaterThan(0);
    const failures = agent.records().filter((r) => r.event === 'renew_failed');
    expect(failures.length).toBeGreaterThanOrEqual(3);
    expect(
      failures.every((r) => r.code === 'MTLS_CA_UNREACHABLE' && typeof r.retryInSeconds === 'number'),
    ).toBe(true);
    // Delays grow (full jitter draws inside a doubling ceiling capped at retry.max = 2 s).
    expect(failures.every((r) => (r.retryInSeconds as number) <= 2)).toBe(true);
    expect(String(failures[0]!.msg)).toMatch(/the current certificate stays in use until/);
    const during = readAgentFiles(dir);
    expect(during.version).toBe(before.version);
    expect(new Date() < notAfter).toBe(true);
    // The CA returns on the same ports.
    const pub = new URL(first.publicUrl).port;
    const mt = new URL(first.mtlsUrl).port;
    ca = await startCaService(caDir, ['--listen', `127.0.0.1:${pub}`, '--mtls-listen', `127.0.0.1:${mt}`]);
    const back = Date.now();
    const renewed = await waitFor(
      'a renewal after the CA returned',
      () => {
        const s = readStatus(dir);
        return s?.serial && s.serial !== enrolled ? s : undefined;
      },
      10_000,
      100,
    );
    // Soon: within the capped backoff (2 s) plus the request itself.
    expect(Date.now() - back).toBeLessThan(5000);
    expect(renewed.lastError).toBeUndefined();
    expect(renewed.retryBackoffSeconds).toBeUndefined();
    // The old certificate never expired on disk.
    expect(new Date(renewed.lastRenewalAt!) < notAfter).toBe(true);
    expect(readAgentFiles(dir).certificate.serial).toBe(renewed.serial);
    const after = await scrape(agent.metricsUrl!);
    expect(sample(after, 'mtls_agent_renewals_total{identity="svc",result="ok"}')).toBe(1);
    expect(sample(after, 'mtls_agent_retry_backoff_seconds{identity="svc"}')).toBe(0);
  });
});
