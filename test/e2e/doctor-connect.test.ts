// `mtls doctor connect` against live servers: every scenario of the generated doctor corpus served by
// real nginx (ssl_verify_client on), an mtls proxy strict listener (its JSON reasons), HAProxy
// (verify required: alerts inside or right after the handshake), and the network outcomes (nothing
// listening, a plain HTTP server, a TLS server that never asks for a certificate, a silent port, DNS).
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, mtls, mtlsJson } from '../support/cli.js';
import { connectExpectation } from '../support/doctor-connect-expect.js';
import { buildCorpus, type Scenario } from '../support/doctor-corpus.js';
import { existsSync } from 'node:fs';
import { nginxConfig, startHaproxy, startNginx, startPeer, type Peer } from '../support/peers.js';
import { program } from '../support/cli.js';
import { LOOPBACK, freePort } from '../support/ports.js';
import { startEchoUpstream, startProxy, type EchoUpstream, type RunningProxy } from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();
const root = await makeTempDir('doctor-connect');
const scenarios = await buildCorpus(root);
const byName = (name: string): Scenario => {
  const s = scenarios.find((x) => x.name === name);
  if (!s) throw new Error(`no corpus scenario "${name}"`);
  return s;
};

interface Report {
  ok: boolean;
  failingSide: string | null;
  findings: {
    code: string;
    side: string;
    severity: string;
    message: string;
    fix: string;
    evidence: Record<string, unknown>;
  }[];
}

interface Run {
  code: number;
  report: Report;
  detail: string;
}

async function joined(dir: string, name: string, files: (string | undefined)[]): Promise<string> {
  const parts = await Promise.all(files.filter((f): f is string => !!f).map((f) => readFile(f)));
  const dest = join(dir, name);
  await writeFile(dest, Buffer.concat(parts), { mode: 0o600 });
  return dest;
}

async function doctorConnect(
  port: number,
  o: { servername?: string; cert?: string; key?: string; chain?: string; ca?: string; host?: string },
  extra: string[] = [],
): Promise<Run> {
  const args = ['doctor', 'connect', `${o.host ?? LOOPBACK}:${port}`, '--json', ...extra];
  if (o.servername) args.push('--servername', o.servername);
  if (o.cert) args.push('--cert', o.cert);
  if (o.key) args.push('--key', o.key);
  if (o.chain) args.push('--chain', o.chain);
  if (o.ca) args.push('--ca', o.ca);
  const r = await mtlsJson(args, { cwd: root, timeoutMs: 20_000 });
  const report = r.json as Report;
  const errors = report.findings.filter((f) => f.severity === 'error');
  return { code: r.code, report, detail: JSON.stringify(errors.map((f) => [f.code, f.side, f.message])) };
}

function expectVerdict(run: Run, failingSide: string | null, codes: string[]): void {
  const { report } = run;
  expect(Object.keys(report).sort()).toEqual(['failingSide', 'findings', 'ok']);
  const errors = report.findings.filter((f) => f.severity === 'error');
  expect(report.failingSide, run.detail).toBe(failingSide);
  expect(run.code, run.detail).toBe(failingSide === null ? 0 : 1);
  if (codes.length === 0) expect(errors, run.detail).toEqual([]);
  for (const c of codes)
    expect(
      errors.map((f) => f.code),
      run.detail,
    ).toContain(c);
  for (const f of report.findings) expect(f.fix.length, f.code).toBeGreaterThan(10);
}

/** One scenario: nginx with the server side (or nothing listening when nginx refuses to start). */
async function liveScenario(s: Scenario, i: number): Promise<Run & { nginxUp: boolean; human: string }> {
  const dir = join(root, `connect-${i}`);
  await mkdir(dir, { recursive: true });
  const certChain = s.server.chain
    ? await joined(dir, 'server.pem', [s.server.cert, s.server.chain])
    : s.server.cert;
  let nginx: Peer | undefined;
  try {
    nginx = await startNginx({
      prefix: join(dir, 'nginx'),
      certChain,
      key: s.server.key,
      clientCa: s.client.ca,
      verifyDepth: s.verifyDepth,
      ...(s.crl ? { crl: s.crl } : {}),
    });
  } catch {
    nginx = undefined;
  }
  try {
    const port = nginx?.port ?? (await freePort());
    const run = await doctorConnect(port, {
      servername: s.host,
      ...(s.client.cert ? { cert: s.client.cert } : {}),
      ...(s.client.key ? { key: s.client.key } : {}),
      ...(s.client.chain ? { chain: s.client.chain } : {}),
      ca: s.server.ca,
    });
    // The same probe as a person reads it (no --json): one screen for a single-cause failure.
    const args = ['doctor', 'connect', `${LOOPBACK}:${port}`, '--servername', s.host, '--ca', s.server.ca];
    if (s.client.cert) args.push('--cert', s.client.cert);
    if (s.client.key) args.push('--key', s.client.key);
    if (s.client.chain) args.push('--chain', s.client.chain);
    const human = (await mtls(args, { cwd: root, timeoutMs: 20_000 })).stdout;
    return { ...run, nginxUp: nginx !== undefined, human };
  } finally {
    await nginx?.stop();
  }
}

// Scenarios run in bounded parallel batches before the assertions (47 nginx starts in series would
// take most of the time budget); each test then asserts its own result.
const results = new Map<string, Promise<Run & { nginxUp: boolean; human: string }>>();
beforeAll(async () => {
  const BATCH = 4;
  for (let i = 0; i < scenarios.length; i += BATCH) {
    const batch = scenarios.slice(i, i + BATCH).map((s, j) => {
      const p = liveScenario(s, i + j);
      results.set(s.name, p);
      return p.catch(() => undefined);
    });
    await Promise.all(batch);
  }
}, 120_000);

afterAll(async () => {
  await removeTempDir(root);
});

describe(`mtls doctor connect against nginx on ${scenarios.length} generated scenarios`, () => {
  it.each(scenarios.map((s) => [s.name, s] as const))('%s', async (_name, s) => {
    const run = await results.get(s.name)!;
    const want = connectExpectation(s);
    expect(run.nginxUp, 'nginx starts exactly when the scenario says it does').toBe(
      s.real !== 'nginx-refuses-to-start',
    );
    expectVerdict(run, want.failingSide, want.codes);
    // One screen: a single-cause failure's report fits in 24 lines; no line is wider than 160
    // columns once file paths (any length, the user's) count as their last part only.
    const lines = run.human.trimEnd().split('\n');
    const errors = run.report.findings.filter((f) => f.severity === 'error');
    if (errors.length === 1) {
      expect(lines.length, run.human).toBeLessThanOrEqual(24);
      expect(run.human).toContain(`error ${errors[0]!.code}:`);
      expect(run.human).toMatch(/\n {4}fix: /);
    }
    for (const l of lines) expect(l.replace(/\/\S*\//g, '').length, l).toBeLessThanOrEqual(160);
    if (run.nginxUp) {
      const seen = run.report.findings.find((f) => f.code === 'connected');
      expect(seen?.evidence.protocol, run.detail).toMatch(/^TLSv1\.[23]$/);
      expect(seen?.evidence.clientCertRequested).toBe('yes');
      expect((seen?.evidence.serverChain as string[]).length).toBeGreaterThan(0);
    }
  });

  it('names what it saw: the acceptable CA names and nginx’s answer for an untrusted client', async () => {
    const run = await results.get('client certificate from a CA the server does not trust')!;
    const f = run.report.findings.find((x) => x.code === 'unknown_ca')!;
    expect(f.side).toBe('client');
    expect(f.evidence.acceptableCaNames).toEqual([expect.stringContaining('doctor Client CA')]);
    expect(f.evidence.answer).toMatch(/^HTTP\/1\.1 400/);
    expect(f.evidence.body).toContain('The SSL certificate error');
    expect(f.evidence.issuer).toContain('doctor Server CA');
  });

  it('a leaf served without its intermediate is the server’s missing_intermediate, with the chain it sent', async () => {
    const run = await results.get('server sends its leaf without the intermediate')!;
    const f = run.report.findings.find((x) => x.code === 'missing_intermediate')!;
    expect(f.side).toBe('server');
    const seen = run.report.findings.find((x) => x.code === 'connected')!;
    expect(seen.evidence.serverChain).toHaveLength(1);
  });
});

describe('mtls doctor connect against mtls proxy (strict) and HAProxy (verify required)', () => {
  let upstream: EchoUpstream;
  let proxy: RunningProxy;
  const healthy = byName('healthy ECDSA P-256, leaf + intermediate, root-only bundles');
  const expired = byName('client certificate expired');
  const stranger = byName('client certificate from a CA the server does not trust');
  const revoked = byName('client certificate revoked');

  beforeAll(async () => {
    upstream = await startEchoUpstream();
    const tls = { cert: healthy.server.cert, key: healthy.server.key, clientCa: healthy.client.ca };
    const up = `http://${LOOPBACK}:${upstream.port}`;
    const config = {
      listeners: [
        {
          name: 'strict',
          listen: `${LOOPBACK}:0`,
          tls,
          upstream: up,
          allow: [{ identity: 'cn:alice', paths: ['/*'] }],
        },
        {
          name: 'crl',
          listen: `${LOOPBACK}:0`,
          tls,
          upstream: up,
          allow: [{ identity: 'cn:alice', paths: ['/*'] }],
          revocation: { crl: revoked.crl },
        },
        {
          name: 'deny',
          listen: `${LOOPBACK}:0`,
          tls,
          upstream: up,
          allow: [{ identity: 'cn:nobody', paths: ['/*'] }],
        },
      ],
    };
    await writeFile(join(root, 'proxy.yaml'), stringify(config));
    proxy = await startProxy(join(root, 'proxy.yaml'), root);
  });

  afterAll(async () => {
    await proxy?.stop();
    await upstream?.close();
  });

  const client = (s: Scenario): { cert?: string; key?: string; ca: string; servername: string } => ({
    ...(s.client.cert ? { cert: s.client.cert } : {}),
    ...(s.client.key ? { key: s.client.key } : {}),
    ca: healthy.server.ca,
    servername: 'localhost',
  });

  it('proxy: a trusted, allowed client passes; the upstream sees the probe', async () => {
    const before = upstream.received.length;
    const run = await doctorConnect(proxy.listeners.strict!, client(healthy));
    expectVerdict(run, null, []);
    expect(upstream.received.length).toBe(before + 1);
  });

  it.each([
    [
      'no certificate → 401 no_client_cert',
      'strict',
      { ...client(healthy), cert: undefined, key: undefined },
      'client',
      'no_client_cert',
    ],
    ['expired certificate → 401 expired', 'strict', client(expired), 'client', 'expired'],
    ['untrusted CA → 401 unknown_ca', 'strict', client(stranger), 'client', 'unknown_ca'],
    ['revoked (CRL) → 401 revoked', 'crl', client(healthy), 'client', 'revoked'],
    [
      'identity not allowed → 403 identity_not_allowed',
      'deny',
      client(healthy),
      'server',
      'identity_not_allowed',
    ],
  ] as const)('proxy: %s', async (_t, listener, who, side, code) => {
    const before = upstream.received.length;
    const run = await doctorConnect(proxy.listeners[listener]!, who);
    expectVerdict(run, side, [code]);
    const f = run.report.findings.find((x) => x.code === code && x.severity === 'error')!;
    expect(JSON.stringify(f.evidence), run.detail).toMatch(/MTLS_PROXY_|HTTP\/1\.1 40[13]/);
    expect(upstream.received.length, 'nothing reaches the upstream').toBe(before);
  });

  it.each([
    ['healthy', healthy, null, []],
    ['no client certificate', byName('no client certificate'), 'client', ['no_client_cert']],
    ['client certificate from an untrusted CA', stranger, 'client', ['unknown_ca']],
    ['expired client certificate', expired, 'client', ['expired']],
  ] as const)('HAProxy: %s', async (_t, s, side, codes) => {
    const dir = join(root, `haproxy-${s.name.replace(/\W+/g, '-')}`);
    await mkdir(dir, { recursive: true });
    const crt = await joined(dir, 'server.pem', [healthy.server.cert, healthy.server.key]);
    const haproxy = await startHaproxy({ dir, crt, caFile: healthy.client.ca });
    try {
      const run = await doctorConnect(haproxy.port, client(s));
      expectVerdict(run, side, [...codes]);
      if (side !== null) {
        const f = run.report.findings.find((x) => x.code === codes[0])!;
        // HAProxy answers inside the handshake (TLS 1.2) or right after the client's Finished (1.3).
        expect(JSON.stringify(f.evidence), run.detail).toMatch(/alert|HTTP\/1\.1/);
      }
    } finally {
      await haproxy.stop();
    }
  });
});

describe('mtls doctor connect against nginx limited to TLS 1.3 (verdicts after the client’s Finished)', () => {
  /** startNginx's config with ssl_protocols TLSv1.3: the CertificateRequest is encrypted. */
  async function startNginx13(s: Scenario, dir: string): Promise<Peer> {
    const prefix = join(dir, 'nginx');
    await mkdir(join(prefix, 'tmp'), { recursive: true });
    await mkdir(join(prefix, 'logs'), { recursive: true });
    const conf = join(prefix, 'nginx.conf');
    const pid = join(prefix, 'nginx.pid');
    const certChain = s.server.chain
      ? await joined(dir, 'server.pem', [s.server.cert, s.server.chain])
      : s.server.cert;
    return startPeer('nginx', async (port) => {
      const text = nginxConfig(
        { prefix, certChain, key: s.server.key, clientCa: s.client.ca, verifyDepth: s.verifyDepth },
        port,
      ).replace('ssl_verify_client on;', 'ssl_verify_client on;\n    ssl_protocols TLSv1.3;');
      await writeFile(conf, text);
      return {
        command: program('nginx'),
        args: [
          '-p',
          prefix,
          '-e',
          'stderr',
          '-c',
          conf,
          '-g',
          `daemon off; pid ${pid}; error_log stderr info;`,
        ],
        cwd: prefix,
        ready: () => existsSync(pid),
      };
    });
  }

  it.each([
    'healthy ECDSA P-256, leaf + intermediate, root-only bundles',
    'no client certificate',
    'client certificate from a CA the server does not trust',
    'client CA bundle holds only the intermediate',
  ])('%s', async (name) => {
    const s = byName(name);
    const dir = join(root, `tls13-${name.replace(/\W+/g, '-')}`);
    await mkdir(dir, { recursive: true });
    const nginx = await startNginx13(s, dir);
    try {
      const run = await doctorConnect(nginx.port, {
        servername: s.host,
        ...(s.client.cert ? { cert: s.client.cert } : {}),
        ...(s.client.key ? { key: s.client.key } : {}),
        ca: s.server.ca,
      });
      const want = connectExpectation(s);
      expectVerdict(run, want.failingSide, want.codes);
      const seen = run.report.findings.find((f) => f.code === 'connected')!;
      expect(seen.evidence.protocol).toBe('TLSv1.3');
      // The CertificateRequest is encrypted: read with the handshake secret of node:tls's keylog.
      expect(seen.evidence.clientCertRequested).toBe('yes');
      expect(seen.evidence.acceptableCaNames).toEqual([expect.stringContaining('doctor Client CA')]);
    } finally {
      await nginx.stop();
    }
  });
});

describe('mtls doctor connect: network outcomes', () => {
  const healthy = byName('healthy ECDSA P-256, leaf + intermediate, root-only bundles');
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  });
  const listen = async (s: Server): Promise<number> => {
    servers.push(s);
    s.on('connection', (c: Socket) => sockets.add(c));
    await new Promise<void>((r) => s.listen(0, LOOPBACK, r));
    const a = s.address();
    return typeof a === 'object' && a ? a.port : 0;
  };
  const who = {
    cert: healthy.client.cert!,
    key: healthy.client.key!,
    ca: healthy.server.ca,
    servername: 'localhost',
  };

  it('nothing listening → connect_refused on network', async () => {
    const run = await doctorConnect(await freePort(), who);
    expectVerdict(run, 'network', ['connect_refused']);
  });

  it('a plain HTTP server → not_tls, with its first line', async () => {
    const port = await listen(createHttpServer((_req, res) => res.end('plain')));
    const run = await doctorConnect(port, who);
    expectVerdict(run, 'network', ['not_tls']);
    expect(run.report.findings[0]!.evidence.firstLine).toMatch(/^HTTP\/1\.1 400/);
  });

  it('a TLS server that never asks for a client certificate → not_mtls on the server', async () => {
    const [cert, key] = await Promise.all([readFile(healthy.server.cert), readFile(healthy.server.key)]);
    const port = await listen(createHttpsServer({ cert, key }, (_req, res) => res.end('hello')));
    const run = await doctorConnect(port, who);
    expectVerdict(run, 'server', ['not_mtls']);
    const seen = run.report.findings.find((f) => f.code === 'connected')!;
    expect(seen.evidence.clientCertRequested).toBe('no');
    expect(seen.evidence.answer).toBe('HTTP/1.1 200 OK');
  });

  it('a port that accepts and never speaks → connect_timeout after --timeout', async () => {
    const port = await listen(createNetServer(() => undefined) as unknown as Server);
    const started = Date.now();
    const run = await doctorConnect(port, who, ['--timeout', '700ms']);
    expectVerdict(run, 'network', ['connect_timeout']);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('a name that does not resolve → connect_failed on network', async () => {
    const run = await doctorConnect(443, { ...who, host: 'no-such-host.invalid' }, ['--timeout', '3s']);
    expect(run.report.failingSide, run.detail).toBe('network');
    expect(run.code).toBe(1);
    expect(['connect_failed', 'connect_timeout']).toContain(run.report.findings[0]!.code);
  });

  it('HOST:PORT that is not one is a usage error (exit 2)', async () => {
    const r = await mtls(['doctor', 'connect', 'no-port-here'], { cwd: root });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('HOST:PORT');
  });
});
