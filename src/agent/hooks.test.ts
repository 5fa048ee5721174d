import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { runHook } from './hooks.js';

const env = { identity: 'api', dir: '/tmp/api' };
const dir = mkdtempSync(join(tmpdir(), 'mtls-hooks-'));

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('reload hooks', () => {
  it('runs a command with the identity in its environment', async () => {
    const out = join(dir, 'out');
    await runHook(
      { command: ['sh', '-c', `echo "$MTLS_AGENT_IDENTITY $MTLS_AGENT_DIR" > ${out}`], timeout: 5000 },
      env,
    );
    expect(readFileSync(out, 'utf8')).toBe('api /tmp/api\n');
  });

  it('reports a failing command with its exit code and stderr', async () => {
    const e = await rejection(
      runHook({ command: ['sh', '-c', 'echo nope >&2; exit 3'], timeout: 5000 }, env),
    );
    expect(isMtlsError(e, 'MTLS_AGENT_HOOK')).toBe(true);
    expect((e as Error).message).toMatch(/exit 3: nope/);
  });

  it('kills a command that outlives its timeout', async () => {
    const e = await rejection(runHook({ command: ['sleep', '5'], timeout: 200 }, env));
    expect((e as Error).message).toMatch(/no exit within 0.2s/);
  });

  it('reports a missing pid file or a dead pid', async () => {
    expect(
      ((await rejection(runHook({ signal: 'HUP', pidFile: join(dir, 'none.pid') }, env))) as Error).message,
    ).toMatch(/cannot read/);
    const pidFile = join(dir, 'dead.pid');
    writeFileSync(pidFile, '999999999\n');
    expect(((await rejection(runHook({ signal: 'HUP', pidFile }, env))) as Error).message).toMatch(
      /kill 999999999/,
    );
  });

  it('POSTs to a URL: 2xx is success, anything else a failure', async () => {
    const bodies: string[] = [];
    let status = 204;
    const srv = createServer((req, res) => {
      let b = '';
      req.on('data', (d: Buffer) => (b += d.toString()));
      req.on('end', () => {
        bodies.push(`${req.method} ${b}`);
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/reload`;
    try {
      await runHook({ url, method: 'POST', timeout: 5000 }, env);
      expect(bodies).toEqual(['POST {"identity":"api","dir":"/tmp/api"}']);
      status = 500;
      expect(
        ((await rejection(runHook({ url, method: 'POST', timeout: 5000 }, env))) as Error).message,
      ).toMatch(/HTTP 500/);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
