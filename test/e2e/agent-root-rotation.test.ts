// Root rotation with agents running: `mtls ca root stage` + SIGHUP to the running CA publishes the new
// root; the agent's ca.pem holds both roots at its next trust refresh, while its certificate still
// comes from the old root (nothing is issued under the new one yet). Then `mtls ca root activate`
// and a restart: the agent renews over mTLS with its old-root certificate and gets one under the new
// root, with both roots still trusted.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readAgentFiles, readStatus } from '../../src/agent/index.js';
import { fingerprint256, isSignedBy, readCertificates } from '../../src/pki/index.js';
import {
  agentToken,
  caSection,
  startAgentProcess,
  waitFor,
  writeAgentConfig,
  type AgentProcess,
} from '../support/agent.js';
import { call, startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt, mtlsJson } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let caDir: string;
let ca: CaService | undefined;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('agent-rot');
  caDir = (await initCa(root, 'ca')).dir;
  ca = await startCaService(caDir);
});

afterAll(async () => {
  await agent?.stop();
  await ca?.stop();
  await removeTempDir(root);
});

const rootsOf = (pem: string): string[] => readCertificates(Buffer.from(pem)).map(fingerprint256);

describe('root rotation at the CA with a running agent', () => {
  it('the trust bundle holds both roots before anything is issued under the new one; then the new root takes over', async () => {
    const first = ca!;
    const dir = join(root, 'app');
    const config = writeAgentConfig(root, {
      ca: caSection(first),
      identities: [
        {
          name: 'app',
          dir,
          sans: ['dns:app.internal'],
          token: await agentToken(first, ['dns:app.internal']),
          ttl: '15s',
        },
      ],
      trust: { refreshEvery: '1s' },
      retry: { initial: '300ms', max: '2s' },
    });
    agent = await startAgentProcess(config);
    const oldRoot = first.rootFingerprint;
    await waitFor('the first certificate', () => readStatus(dir)?.serial, 15_000);
    const enrolled = readAgentFiles(dir);
    expect(rootsOf(enrolled.caPem)).toEqual([oldRoot]);

    // Stage the next root and tell the running CA (SIGHUP).
    const staged = await mtlsJson(['ca', 'root', 'stage', '--dir', caDir, '--json'], { cwd: root });
    expect(staged.code).toBe(0);
    const newRoot = (staged.json as { fingerprint: string }).fingerprint;
    first.proc.kill('SIGHUP');
    const published = await waitFor(
      'both roots at /v1/roots',
      async () => {
        const r = await call(first.publicUrl, { path: '/v1/roots', ca: join(caDir, 'ca.pem') });
        const fps = rootsOf(r.body.toString('latin1'));
        return fps.length === 2 ? fps : undefined;
      },
      5000,
    );
    expect(published.sort()).toEqual([oldRoot, newRoot].sort());

    // The agent's next trust refresh: ca.pem holds both, the certificate is still the old root's.
    const both = await waitFor(
      'both roots in the agent ca.pem',
      () => {
        const f = readAgentFiles(dir);
        return rootsOf(f.caPem).length === 2 ? f : undefined;
      },
      10_000,
    );
    expect(rootsOf(both.caPem).sort()).toEqual([oldRoot, newRoot].sort());
    const oldIntermediate = readCertificates(readFileSync(join(caDir, 'intermediate.crt')))[0]!;
    expect(isSignedBy(both.certificate, oldIntermediate)).toBe(true);
    expect(
      readStatus(dir)!
        .trustBundle.roots.map((r) => r.fingerprint)
        .sort(),
    ).toEqual([oldRoot, newRoot].sort());

    // Activate and restart the CA on the same ports: the next renewal is under the new root.
    const act = await mtlsJson(['ca', 'root', 'activate', '--dir', caDir, '--json'], { cwd: root });
    expect(act.code).toBe(0);
    const pub = new URL(first.publicUrl).port;
    const mt = new URL(first.mtlsUrl).port;
    await first.stop();
    ca = await startCaService(caDir, ['--listen', `127.0.0.1:${pub}`, '--mtls-listen', `127.0.0.1:${mt}`]);
    expect(ca.rootFingerprint).toBe(newRoot);
    const newIntermediate = readCertificates(readFileSync(join(caDir, 'intermediate.crt')))[0]!;
    const renewed = await waitFor(
      'a certificate under the new root',
      () => {
        const f = readAgentFiles(dir);
        return isSignedBy(f.certificate, newIntermediate) ? f : undefined;
      },
      20_000,
    );
    expect(rootsOf(renewed.caPem).sort()).toEqual([oldRoot, newRoot].sort());
    expect(readCertificates(Buffer.from(renewed.chainPem)).map(fingerprint256)).toEqual([
      fingerprint256(newIntermediate),
    ]);
  });
});
