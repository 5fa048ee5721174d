// Reload hooks run after an identity's files change: signal a pid from a pid file, run a program
// (argv, no shell, bounded by a timeout), or POST to a URL. A failing hook is reported, never fatal.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { MtlsError } from '../errors/index.js';
import type { HookConfig } from './config.js';

export type HookKind = 'signal' | 'command' | 'url';

export function hookKind(h: HookConfig): HookKind {
  return 'signal' in h ? 'signal' : 'command' in h ? 'command' : 'url';
}

export function describeHook(h: HookConfig): string {
  if ('signal' in h) return `SIG${h.signal} to the pid in ${h.pidFile}`;
  if ('command' in h) return `command ${JSON.stringify(h.command)}`;
  return `POST ${h.url}`;
}

export interface HookEnv {
  /** Identity name and directory, passed to commands as MTLS_AGENT_IDENTITY / MTLS_AGENT_DIR. */
  identity: string;
  dir: string;
}

/** Runs one hook; resolves when it succeeded, rejects with MTLS_AGENT_HOOK otherwise. */
export async function runHook(h: HookConfig, env: HookEnv): Promise<void> {
  const fail = (why: string, cause?: unknown): MtlsError =>
    new MtlsError('MTLS_AGENT_HOOK', `Reload hook (${describeHook(h)}) for ${env.identity} failed: ${why}.`, {
      ...(cause === undefined ? {} : { cause }),
      fix: 'Fix the hook in agent.yaml (pid file path, command, URL); the new certificate files are in place.',
    });
  if ('signal' in h) {
    let pid: number;
    try {
      pid = Number(readFileSync(h.pidFile, 'utf8').trim());
    } catch (e) {
      throw fail(`cannot read ${h.pidFile}`, e);
    }
    if (!Number.isInteger(pid) || pid <= 1) throw fail(`${h.pidFile} does not hold a pid`);
    try {
      process.kill(pid, `SIG${h.signal}`);
    } catch (e) {
      throw fail(`kill ${pid}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
    }
    return;
  }
  if ('command' in h) {
    const [file, ...args] = h.command;
    await new Promise<void>((resolve, reject) => {
      const child = spawn(file!, args, {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, MTLS_AGENT_IDENTITY: env.identity, MTLS_AGENT_DIR: env.dir },
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 2000) stderr += d.toString();
      });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(fail(`no exit within ${h.timeout / 1000}s (killed)`));
      }, h.timeout);
      child.on('error', (e) => {
        clearTimeout(timer);
        reject(fail((e as NodeJS.ErrnoException).code ?? e.message, e));
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(fail(`exit ${code ?? signal}${stderr ? `: ${stderr.trim().slice(0, 300)}` : ''}`));
      });
    });
    return;
  }
  const u = new URL(h.url);
  const body = Buffer.from(JSON.stringify({ identity: env.identity, dir: env.dir }));
  await new Promise<void>((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      {
        method: h.method,
        headers: { 'content-type': 'application/json', 'content-length': body.length },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const s = res.statusCode ?? 0;
          if (s >= 200 && s < 300) resolve();
          else reject(fail(`HTTP ${s}`));
        });
      },
    );
    req.setTimeout(h.timeout, () => req.destroy(new Error('timed out')));
    req.on('error', (e: NodeJS.ErrnoException) => reject(fail(e.code ?? e.message, e)));
    req.end(body);
  });
}
