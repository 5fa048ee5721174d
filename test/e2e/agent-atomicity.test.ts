// kill -9 the agent at random points while it renews continuously (6 s certificates renewed right
// away, renewAt 0.01): after every kill a reader gets a matching key and certificate from ..data, the
// published version is a complete one (never a staging directory), and the next start cleans up.
import { lstatSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_FILES, readAgentFiles, readStatus } from '../../src/agent/index.js';
import {
  agentToken,
  caSection,
  startAgentProcess,
  waitFor,
  writeAgentConfig,
  type AgentProcess,
} from '../support/agent.js';
import { startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt, mtls } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let ca: CaService;
let current: AgentProcess | undefined;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('agent-kill');
  ca = await startCaService((await initCa(root, 'ca')).dir);
});

afterAll(async () => {
  await current?.stop('SIGKILL');
  await ca?.stop();
  await removeTempDir(root);
});

const VERSION = /^\.\.v-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(\.\d+)?Z-[0-9a-f]{6}$/;

function checkConsistent(dir: string): string {
  const files = readAgentFiles(dir);
  expect(files.version).toMatch(VERSION);
  expect(readlinkSync(join(dir, '..data'))).toBe(files.version);
  for (const f of AGENT_FILES) {
    expect(lstatSync(join(dir, f)).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, f))).toBe(`..data/${f}`);
  }
  // Complete versions only: at most the two kept plus one published just before the kill.
  expect(readdirSync(dir).filter((e) => VERSION.test(e)).length).toBeLessThanOrEqual(3);
  return files.certificate.serial;
}

describe('mtls agent killed with SIGKILL during renewals', () => {
  it('always leaves a matching key and certificate behind (50 renewals, random kill points)', async () => {
    const dir = join(root, 'busy');
    const config = writeAgentConfig(root, {
      ca: caSection(ca),
      identities: [
        {
          name: 'busy',
          dir,
          sans: ['dns:busy.internal'],
          token: await agentToken(ca, ['dns:busy.internal']),
          ttl: '6s',
          renewAt: 0.01,
          jitter: 0,
        },
      ],
      retry: { initial: '100ms', max: '500ms' },
    });
    // The first certificate is enrolled without interruption (a token is single-use).
    current = await startAgentProcess(config, 'warn');
    await waitFor('the first certificate', () => readStatus(dir)?.serial, 15_000);
    const serials = new Set<string>();
    let kills = 0;
    const deadline = Date.now() + 100_000;
    for (let i = 0; i < 80 && Date.now() < deadline; i++) {
      const running = current ?? (await startAgentProcess(config, 'warn'));
      current = running;
      await new Promise((r) => setTimeout(r, 30 + Math.floor(Math.random() * 700)));
      await running.stop('SIGKILL');
      current = undefined;
      kills++;
      serials.add(checkConsistent(dir));
      if ((readStatus(dir)?.renewals.ok ?? 0) >= 51 && kills >= 20) break;
    }
    const status = readStatus(dir)!;
    // 1 enrollment + at least 50 renewals, interrupted at least 20 times.
    expect(status.renewals.ok).toBeGreaterThanOrEqual(51);
    expect(kills).toBeGreaterThanOrEqual(20);
    expect(serials.size).toBeGreaterThan(5);
    // A clean run afterwards removes the leftovers of interrupted writes and old versions.
    const once = await mtls(['agent', '--config', config, '--once', '--json'], { cwd: root });
    expect(once.code).toBe(0);
    checkConsistent(dir);
    const left = readdirSync(dir);
    expect(left.filter((e) => e.includes('.tmp'))).toEqual([]);
    expect(left.filter((e) => VERSION.test(e)).length).toBeLessThanOrEqual(2);
  });
});
