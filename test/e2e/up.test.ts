// `npm start` (= `mtls up`) as a user runs it on a fresh checkout: it builds, reaches "ready", the
// curl command it prints succeeds and shows the identity the upstream received, the failing one
// gets the proxy's explained reason, Ctrl-C stops everything, and a second run reuses the data.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, MTLS_BIN, REPO_ROOT, run } from '../support/cli.js';
import { portAccepts } from '../support/ports.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();
const root = await makeTempDir('up');
const dataDir = join(root, 'mtls-data');
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null && c.pid)
      try {
        process.kill(-c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
  await removeTempDir(root);
});

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const k of Object.keys(e)) if (k.startsWith('MTLS_') || k.startsWith('npm_')) delete e[k];
  // Only the data directory is redirected (a user gets ./mtls-data); everything else is the default.
  return { ...e, MTLS_CA_DIR: dataDir };
}

interface Started {
  child: ChildProcess;
  out: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(cmd: string, args: string[]): Started {
  // Its own process group: Ctrl-C in a terminal signals the whole group (npm and node).
  const child = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: env(),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  return { child, out: () => out, exit };
}

async function ready(s: Started, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (/mtls up: ready/.test(s.out())) return;
    if (s.child.exitCode !== null) throw new Error(`exited ${s.child.exitCode}:\n${s.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not ready after ${ms} ms:\n${s.out()}`);
}

/** The command printed on the line after `title`. */
function printed(out: string, title: RegExp): string {
  const lines = out.split('\n');
  const i = lines.findIndex((l) => title.test(l));
  expect(i, out).toBeGreaterThanOrEqual(0);
  return lines[i + 1]!.trim();
}

async function stop(s: Started): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  process.kill(-s.child.pid!, 'SIGINT');
  const timer = setTimeout(() => process.kill(-s.child.pid!, 'SIGKILL'), 20_000);
  const code = await s.exit;
  clearTimeout(timer);
  return code;
}

describe('npm start', () => {
  it('builds, reaches ready, and its printed curl commands succeed and fail as they say', async () => {
    const s = start('npm', ['start']);
    await ready(s, 150_000);
    const ok = printed(s.out(), /^this succeeds/);
    expect(ok).toMatch(/^curl --cacert \S+ --cert \S+ --key \S+ https:\/\/localhost:\d+\/hello$/);
    const r = await run('sh', ['-c', ok], { cwd: REPO_ROOT });
    expect(r.code, r.stderr).toBe(0);
    const body = JSON.parse(r.stdout) as { identity: Record<string, string> };
    expect(body.identity['x-client-verify']).toBe('SUCCESS');
    expect(body.identity['x-client-spiffe-id']).toBe('spiffe://mtlskit.local/demo/client');

    const bad = printed(s.out(), /^this fails/);
    const f = await run('sh', ['-c', `${bad} -s -w '\\n%{http_code}'`], { cwd: REPO_ROOT });
    const [json, status] = f.stdout.trim().split('\n');
    expect(status).toBe('401');
    const answer = JSON.parse(json!) as { reason: string; detail?: string };
    expect(answer.reason).toBe('no_client_cert');
    expect(answer.detail).toMatch(/certificate/i);

    // Ctrl-C reaches npm and node: node stops everything and exits 0; npm ends on the signal itself.
    const end = await stop(s);
    expect([0, 130, null]).toContain(end.code);
    expect(s.out()).toMatch(/mtls up: stopped/);
    expect(await portAccepts(Number(/localhost:(\d+)/.exec(ok)![1]))).toBe(false);
    expect(existsSync(join(dataDir, 'ca.db'))).toBe(true);
  }, 200_000);

  it('reuses the data on the next run', async () => {
    const s = start(process.execPath, [MTLS_BIN, 'up']);
    await ready(s, 60_000);
    expect(s.out()).toMatch(/reused/);
    const r = await run('sh', ['-c', printed(s.out(), /^this succeeds/)], { cwd: REPO_ROOT });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ identity: { 'x-client-verify': 'SUCCESS' } });
    expect(await stop(s)).toEqual({ code: 0, signal: null });
    expect(s.out()).toMatch(/mtls up: stopped/);
  }, 90_000);
});
