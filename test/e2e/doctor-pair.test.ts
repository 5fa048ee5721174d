// `mtls doctor pair` against reality: for every scenario of the generated corpus, nginx
// (ssl_verify_client on) and curl show the real outcome, and the doctor must name the failing side
// and the codes: all of the failures, no error on healthy pairs and harmless quirks.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, mtlsJson, run } from '../support/cli.js';
import { curl } from '../support/curl.js';
import { buildCorpus, type RealOutcome, type Scenario } from '../support/doctor-corpus.js';
import { startNginx } from '../support/peers.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();
const root = await makeTempDir('doctor-pair');
const scenarios = await buildCorpus(root);

afterAll(async () => {
  await removeTempDir(root);
});

interface Report {
  ok: boolean;
  failingSide: string | null;
  findings: {
    code: string;
    side: string;
    severity: string;
    fix: string;
    evidence: Record<string, unknown>;
  }[];
}

const STRICT_CLIENT = `
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.hostname_checks_common_name = False
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
try:
    ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[4]))), server_hostname=sys.argv[5]).close()
    print("ok")
except ssl.SSLError as e:
    print("refused:", e)
    sys.exit(1)
`;

async function joined(dir: string, name: string, files: (string | undefined)[]): Promise<string> {
  const parts = await Promise.all(files.filter((f): f is string => !!f).map((f) => readFile(f)));
  const dest = join(dir, name);
  await writeFile(dest, Buffer.concat(parts), { mode: 0o600 });
  return dest;
}

/** What nginx and curl really do with the scenario's files. */
async function reality(s: Scenario, i: number): Promise<{ outcome: RealOutcome; detail: string }> {
  const dir = join(root, `real-${i}`);
  const prefix = join(dir, 'nginx');
  await mkdir(dir, { recursive: true });
  const certChain = s.server.chain
    ? await joined(dir, 'server.pem', [s.server.cert, s.server.chain])
    : s.server.cert;
  let nginx;
  try {
    nginx = await startNginx({
      prefix,
      certChain,
      key: s.server.key,
      clientCa: s.client.ca,
      verifyDepth: s.verifyDepth,
      ...(s.crl ? { crl: s.crl } : {}),
    });
  } catch (e) {
    return { outcome: 'nginx-refuses-to-start', detail: (e as Error).message.slice(0, 300) };
  }
  try {
    const cert =
      s.client.cert && s.client.chain
        ? await joined(dir, 'client.pem', [s.client.cert, s.client.chain])
        : s.client.cert;
    const r = await curl({
      port: nginx.port,
      host: s.host,
      cacert: s.server.ca,
      ...(cert && s.client.key ? { cert, key: s.client.key } : {}),
    });
    const detail = `curl exit ${r.exitCode} status ${r.status} ${r.stderr.trim()} ${r.body.slice(0, 80)}`;
    if (r.status !== 200) return { outcome: 'refused', detail };
    if (cert && s.client.key) {
      const py = await run('python3', [
        '-c',
        STRICT_CLIENT,
        s.server.ca,
        cert,
        s.client.key,
        String(nginx.port),
        s.host,
      ]);
      if (py.code !== 0) return { outcome: 'strict-client-refuses', detail: py.stdout.trim() };
    }
    return { outcome: 'ok', detail };
  } finally {
    await nginx.stop();
  }
}

function doctorArgs(s: Scenario): string[] {
  const args = ['doctor', 'pair', '--json', '--name', s.host, '--verify-depth', String(s.verifyDepth)];
  args.push('--server-cert', s.server.cert, '--server-key', s.server.key, '--server-ca', s.server.ca);
  if (s.server.chain) args.push('--server-chain', s.server.chain);
  if (s.client.cert) args.push('--client-cert', s.client.cert);
  if (s.client.key) args.push('--client-key', s.client.key);
  if (s.client.chain) args.push('--client-chain', s.client.chain);
  args.push('--client-ca', s.client.ca);
  if (s.crl) args.push('--server-crl', s.crl);
  return args;
}

describe(`mtls doctor pair on ${scenarios.length} generated scenarios, each checked against nginx + curl`, () => {
  it.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s', async (_name, s, i) => {
    const [real, doc] = await Promise.all([reality(s, i), mtlsJson(doctorArgs(s), { cwd: root })]);
    // 1. The failure is real (or the pair really works).
    expect(real.outcome, real.detail).toBe(s.real);
    // 2. The doctor names the side and the codes.
    const report = doc.json as Report;
    expect(Object.keys(report).sort()).toEqual(['failingSide', 'findings', 'ok']);
    const errors = report.findings.filter((f) => f.severity === 'error');
    const summary = JSON.stringify(errors.map((f) => [f.code, f.side]));
    expect(report.failingSide, summary).toBe(s.failingSide);
    expect(doc.code, summary).toBe(s.failingSide === null ? 0 : 1);
    if (s.codes.length === 0) expect(errors, summary).toEqual([]);
    for (const code of s.codes)
      expect(
        errors.map((f) => f.code),
        summary,
      ).toContain(code);
    for (const f of report.findings) expect(f.fix.length, f.code).toBeGreaterThan(10);
  });
});
