// `mtls doctor config` on the generated corpus: for every scenario the nginx config the pair test runs
// (nginxConfig() with the scenario's server files) must give the same verdict as pair mode, and real
// `nginx -t` accepts the configs of the healthy ones. Then HAProxy (checked with `haproxy -c`), Envoy
// and OpenTelemetry Collector configs for a subset: healthy, client certificates not required, the
// client CA is the server's CA, depth too small, CRL for the leaf's CA only, a missing file, no server
// verification.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, mtls, mtlsJson, program, run } from '../support/cli.js';
import { expectationFor } from '../support/doctor-config-expect.js';
import { buildCorpus, type Scenario } from '../support/doctor-corpus.js';
import { nginxConfig } from '../support/peers.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();
const root = await makeTempDir('doctor-config');
const scenarios = await buildCorpus(root);
const byName = (name: string): Scenario => {
  const s = scenarios.find((x) => x.name === name);
  if (!s) throw new Error(`no corpus scenario "${name}"`);
  return s;
};

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
    message: string;
    fix: string;
    evidence: Record<string, unknown>;
  }[];
}

async function joined(dest: string, files: (string | undefined)[]): Promise<string> {
  const parts = await Promise.all(files.filter((f): f is string => !!f).map((f) => readFile(f)));
  await writeFile(dest, Buffer.concat(parts), { mode: 0o600 });
  return dest;
}

/** The client's side of a scenario as doctor config options (--client-ca: what the client trusts). */
function clientArgs(s: Scenario): string[] {
  const args = ['--name', s.host, '--client-ca', s.server.ca];
  if (s.client.cert) args.push('--client-cert', s.client.cert);
  if (s.client.key) args.push('--client-key', s.client.key);
  if (s.client.chain) args.push('--client-chain', s.client.chain);
  return args;
}

async function doctorConfig(conf: string, extra: string[] = []): Promise<{ code: number; report: Report }> {
  const r = await mtlsJson(['doctor', 'config', conf, '--json', ...extra], { cwd: root });
  return { code: r.code, report: r.json as Report };
}

const errorsOf = (r: Report): Report['findings'] => r.findings.filter((f) => f.severity === 'error');
const summary = (r: Report): string => JSON.stringify(r.findings.map((f) => [f.code, f.side, f.severity]));

/** Writes the nginx config exactly as the pair test's nginx runs it. */
async function writeNginx(s: Scenario, i: number): Promise<{ conf: string; prefix: string }> {
  const dir = join(root, `nginx-${i}`);
  const prefix = join(dir, 'nginx');
  await mkdir(join(prefix, 'tmp'), { recursive: true });
  await mkdir(join(prefix, 'logs'), { recursive: true });
  const certChain = s.server.chain
    ? await joined(join(dir, 'server.pem'), [s.server.cert, s.server.chain])
    : s.server.cert;
  const conf = join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    nginxConfig(
      {
        prefix,
        certChain,
        key: s.server.key,
        clientCa: s.client.ca,
        verifyDepth: s.verifyDepth,
        ...(s.crl ? { crl: s.crl } : {}),
      },
      8443,
    ),
  );
  return { conf, prefix };
}

describe(`mtls doctor config on the nginx configs of ${scenarios.length} corpus scenarios`, () => {
  it.each(scenarios.map((s, i) => [s.name, s, i] as const))('%s', async (_name, s, i) => {
    const { conf, prefix } = await writeNginx(s, i);
    const want = expectationFor(s);
    const { code, report } = await doctorConfig(conf, clientArgs(s));
    const errors = errorsOf(report);
    expect(Object.keys(report).sort()).toEqual(['failingSide', 'findings', 'ok']);
    expect(report.failingSide, summary(report)).toBe(want.failingSide);
    expect(code, summary(report)).toBe(want.failingSide === null ? 0 : 1);
    if (want.codes.length === 0) expect(errors, summary(report)).toEqual([]);
    for (const c of want.codes)
      expect(
        errors.map((f) => f.code),
        summary(report),
      ).toContain(c);
    for (const f of report.findings) expect(f.fix.length, f.code).toBeGreaterThan(10);
    // Server-side errors point at the config line.
    for (const f of errors.filter((e) => e.side === 'server'))
      expect(String(f.evidence.config), f.code).toMatch(/nginx\.conf:\d+$/);
    if (s.failingSide === null) {
      const t = await run(program('nginx'), [
        '-t',
        '-p',
        prefix,
        '-e',
        'stderr',
        '-c',
        conf,
        '-g',
        `pid ${join(prefix, 'nginx.pid')}; error_log stderr;`,
      ]);
      expect(t.code, t.stderr).toBe(0);
    }
  });

  it('a config with client certificates optional is not mTLS, and the fix is the exact line', async () => {
    const s = byName('healthy ECDSA P-256, leaf + intermediate, root-only bundles');
    const { conf } = await writeNginx(s, 1000);
    const text = await readFile(conf, 'utf8');
    await writeFile(conf, text.replace('ssl_verify_client on;', 'ssl_verify_client optional;'));
    const lineNo = text.split('\n').findIndex((l) => l.includes('ssl_verify_client')) + 1;
    const { code, report } = await doctorConfig(conf, clientArgs(s));
    expect(code).toBe(1);
    const f = errorsOf(report).find((x) => x.code === 'not_mtls');
    expect(f, summary(report)).toBeDefined();
    expect(f!.side).toBe('server');
    expect(f!.evidence.config).toBe(`${conf}:${lineNo}`);
    expect(f!.fix).toContain('ssl_verify_client on;');
  });

  it('without client files: a missing file, and a CRL for the leaf CA only, each at their config line', async () => {
    const s = byName('ssl_crl without the root CA’s CRL');
    const { conf } = await writeNginx(s, 1001);
    const text = await readFile(conf, 'utf8');
    await writeFile(
      conf,
      text.replace(/ssl_client_certificate [^;]+;/, 'ssl_client_certificate missing-ca.pem;'),
    );
    const r1 = await doctorConfig(conf);
    const missing = errorsOf(r1.report).find((x) => x.code === 'config_file_missing');
    expect(missing, summary(r1.report)).toBeDefined();
    expect(String(missing!.evidence.file)).toMatch(/missing-ca\.pem$/);
    expect(r1.code).toBe(1);
    await writeFile(conf, text);
    const r2 = await doctorConfig(conf);
    const crl = errorsOf(r2.report).find((x) => x.code === 'crl_missing');
    expect(crl, summary(r2.report)).toBeDefined();
    expect(crl!.side).toBe('server');
    expect(r2.report.failingSide).toBe('server');
  });

  it('follows include and relative paths the way nginx does (nginx -t agrees)', async () => {
    const s = byName('healthy ECDSA P-256, leaf + intermediate, root-only bundles');
    const dir = join(root, 'nginx-include');
    const prefix = join(dir, 'nginx');
    await mkdir(join(prefix, 'conf.d'), { recursive: true });
    await mkdir(join(prefix, 'tmp'), { recursive: true });
    await mkdir(join(prefix, 'logs'), { recursive: true });
    await joined(join(prefix, 'server.pem'), [s.server.cert, s.server.chain]);
    await joined(join(prefix, 'server.key'), [s.server.key]);
    await joined(join(prefix, 'clients.pem'), [s.client.ca]);
    const full = nginxConfig(
      { prefix, certChain: 'server.pem', key: 'server.key', clientCa: 'clients.pem', verifyDepth: 1 },
      8443,
    );
    // The server block moves to conf.d/mtls.conf, pulled in by a glob include.
    const start = full.indexOf('  server {');
    const end = full.lastIndexOf('}');
    await writeFile(join(prefix, 'conf.d', 'mtls.conf'), full.slice(start, end));
    const conf = join(prefix, 'nginx.conf');
    await writeFile(conf, `${full.slice(0, start)}  include conf.d/*.conf;\n}\n`);
    const t = await run(program('nginx'), [
      '-t',
      '-p',
      prefix,
      '-e',
      'stderr',
      '-c',
      conf,
      '-g',
      `pid ${join(prefix, 'nginx.pid')}; error_log stderr;`,
    ]);
    expect(t.code, t.stderr).toBe(0);
    const { code, report } = await doctorConfig(conf, clientArgs(s));
    expect(code, summary(report)).toBe(0);
    // Break the client CA path in the included file: the finding names that file and line.
    await writeFile(
      join(prefix, 'conf.d', 'mtls.conf'),
      full
        .slice(start, end)
        .replace('ssl_client_certificate clients.pem;', 'ssl_client_certificate gone.pem;'),
    );
    const broken = await doctorConfig(conf, clientArgs(s));
    const f = errorsOf(broken.report).find((x) => x.code === 'config_file_missing');
    expect(f, summary(broken.report)).toBeDefined();
    expect(f!.evidence).toMatchObject({
      file: join(prefix, 'gone.pem'),
      config: `${join(prefix, 'conf.d', 'mtls.conf')}:6`,
    });
  });

  it('an unparsable config is a usage error naming the line, without a stack trace', async () => {
    const bad = join(root, 'bad.conf');
    await writeFile(bad, 'events {}\nhttp {\n  server {\n    listen 443 ssl;\n  }\n');
    const r = await mtls(['doctor', 'config', bad], { cwd: root });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/MTLS_CONFIG_INVALID: .*bad\.conf:2: .*never closed/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

// ---------------------------------------------------------------- HAProxy, Envoy, OpenTelemetry

const HEALTHY = 'healthy ECDSA P-256, leaf + intermediate, root-only bundles';
const SERVER_CA_FOR_CLIENTS = 'server trusts the server CA for clients';
const DEEP = 'client chain needs more depth than ssl_verify_depth 1';
const LEAF_CRL = 'ssl_crl without the root CA’s CRL';

interface Case {
  title: string;
  scenario: string;
  /** Changes the config of the format. */
  variant?: 'verify-optional' | 'missing-file' | 'depth-1' | 'leaf-crl-only';
  failingSide: string | null;
  codes: string[];
  /** The fix of the first expected code must contain this. */
  fixHas?: string;
}

const CASES: Case[] = [
  { title: 'healthy', scenario: HEALTHY, failingSide: null, codes: [] },
  {
    title: 'client certificates not required',
    scenario: HEALTHY,
    variant: 'verify-optional',
    failingSide: 'server',
    codes: ['not_mtls'],
  },
  {
    title: 'client CA bundle is the server CA',
    scenario: SERVER_CA_FOR_CLIENTS,
    failingSide: 'server',
    codes: ['swapped_ca_files'],
  },
  {
    title: 'CRL for the leaf CA only',
    scenario: LEAF_CRL,
    failingSide: 'server',
    codes: ['crl_missing'],
  },
  {
    title: 'a file the config names is missing',
    scenario: HEALTHY,
    variant: 'missing-file',
    failingSide: 'server',
    codes: ['config_file_missing'],
  },
];

async function scenarioFiles(s: Scenario, dir: string): Promise<{ chain: string; pem: string }> {
  const chain = await joined(join(dir, 'server.chain.pem'), [s.server.cert, s.server.chain]);
  const pem = await joined(join(dir, 'server.pem'), [s.server.cert, s.server.chain, s.server.key]);
  return { chain, pem };
}

describe('mtls doctor config on HAProxy configs (validated with haproxy -c)', () => {
  const haproxyCfg = (s: Scenario, pem: string, v: Case['variant']): string => `global
  maxconn 64

defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s

frontend mtls
  # the TLS listener
  bind 127.0.0.1:8443 ssl crt "${pem}" ca-file ${v === 'missing-file' ? '/nonexistent/client-ca.pem' : s.client.ca} verify ${v === 'verify-optional' ? 'optional' : 'required'}${s.crl ? ` crl-file ${s.crl}` : ''}
  http-request return status 200 content-type text/plain string ok

backend upstream
  server app 127.0.0.1:9443 ssl verify none
`;
  it.each(CASES.map((c, i) => [c.title, c, i] as const))('%s', async (_t, c, i) => {
    const s = byName(c.scenario);
    const dir = join(root, `haproxy-${i}`);
    await mkdir(dir, { recursive: true });
    const { pem } = await scenarioFiles(s, dir);
    const cfg = join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyCfg(s, pem, c.variant));
    const check = await run(program('haproxy'), ['-c', '-f', cfg]);
    // HAProxy itself accepts the config exactly when no file is missing.
    expect(check.code === 0, check.stdout + check.stderr).toBe(c.variant !== 'missing-file');
    const { code, report } = await doctorConfig(cfg, clientArgs(s));
    expect(report.failingSide, summary(report)).toBe(c.failingSide);
    expect(code).toBe(c.failingSide === null ? 0 : 1);
    expect(errorsOf(report).map((f) => f.code)).toEqual(expect.arrayContaining(c.codes));
    if (c.codes.length === 0) expect(errorsOf(report), summary(report)).toEqual([]);
    if (c.variant === 'verify-optional')
      expect(errorsOf(report).find((f) => f.code === 'not_mtls')?.fix).toBe(
        `At ${cfg}:12: on the bind line, replace "verify optional" with "verify required".`,
      );
    // The backend's "verify none" is always reported (a warning: it does not break the connection).
    const nv = report.findings.find((f) => f.code === 'server_not_verified');
    expect(nv?.severity, summary(report)).toBe('warning');
    expect(nv?.evidence.config).toBe(`${cfg}:16`);
  });

  it('HAProxy sets no verify depth: a two-intermediate client chain passes', async () => {
    const s = byName(DEEP);
    const dir = join(root, 'haproxy-deep');
    await mkdir(dir, { recursive: true });
    const { pem } = await scenarioFiles(s, dir);
    const cfg = join(dir, 'haproxy.cfg');
    await writeFile(cfg, haproxyCfg(s, pem, undefined));
    const { report } = await doctorConfig(cfg, clientArgs(s));
    expect(errorsOf(report), summary(report)).toEqual([]);
  });
});

describe('mtls doctor config on Envoy bootstraps', () => {
  const envoyYaml = (
    s: Scenario,
    chain: string,
    v: Case['variant'] | 'leaf-crl-only',
  ): string => `static_resources:
  listeners:
    - name: mtls_in
      address:
        socket_address: { address: 127.0.0.1, port_value: 8443 }
      filter_chains:
        - filters: []
          transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
${v === 'verify-optional' ? '' : '              require_client_certificate: true\n'}              common_tls_context:
                tls_certificates:
                  - certificate_chain: { filename: ${chain} }
                    private_key: { filename: ${v === 'missing-file' ? '/nonexistent/server.key' : s.server.key} }
                validation_context:
                  trusted_ca: { filename: ${s.client.ca} }
${s.crl ? `                  crl: { filename: ${s.crl} }\n` : ''}${v === 'leaf-crl-only' ? '                  only_verify_leaf_cert_crl: true\n' : ''}${v === 'depth-1' ? '                  max_verify_depth: 1\n' : ''}`;
  const cases: Case[] = [
    ...CASES,
    {
      title: 'max_verify_depth too small for the client chain',
      scenario: DEEP,
      variant: 'depth-1',
      failingSide: 'server',
      codes: ['verify_depth_exceeded'],
      fixHas: 'max_verify_depth: 2',
    },
    {
      title: 'only_verify_leaf_cert_crl',
      scenario: LEAF_CRL,
      variant: 'leaf-crl-only',
      failingSide: null,
      codes: [],
    },
  ];
  it.each(cases.map((c, i) => [c.title, c, i] as const))('%s', async (_t, c, i) => {
    const s = byName(c.scenario);
    const dir = join(root, `envoy-${i}`);
    await mkdir(dir, { recursive: true });
    const { chain } = await scenarioFiles(s, dir);
    const file = join(dir, 'envoy.yaml');
    await writeFile(file, envoyYaml(s, chain, c.variant));
    const { code, report } = await doctorConfig(file, clientArgs(s));
    expect(report.failingSide, summary(report)).toBe(c.failingSide);
    expect(code).toBe(c.failingSide === null ? 0 : 1);
    expect(errorsOf(report).map((f) => f.code)).toEqual(expect.arrayContaining(c.codes));
    if (c.codes.length === 0) expect(errorsOf(report), summary(report)).toEqual([]);
    if (c.fixHas) expect(errorsOf(report).find((f) => f.code === c.codes[0])?.fix).toContain(c.fixHas);
  });
});

describe('mtls doctor config on OpenTelemetry Collector configs', () => {
  const otelYaml = (s: Scenario, chain: string, v: Case['variant']): string => `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
        tls:
          cert_file: ${chain}
          key_file: ${v === 'missing-file' ? '/nonexistent/server.key' : s.server.key}
          ${v === 'verify-optional' ? 'ca_file' : 'client_ca_file'}: ${s.client.ca}
exporters:
  otlp:
    endpoint: collector.example:4317
    tls:
      cert_file: ${s.client.cert ?? ''}
      key_file: ${s.client.key ?? ''}
      insecure_skip_verify: true
service:
  pipelines:
    traces: { receivers: [otlp], exporters: [otlp] }
`;
  const cases: Case[] = [
    ...CASES.filter((c) => c.scenario !== LEAF_CRL), // the Collector reads no CRL
    {
      title: 'no depth limit in Go: a two-intermediate client chain passes',
      scenario: DEEP,
      failingSide: null,
      codes: [],
    },
  ];
  it.each(cases.map((c, i) => [c.title, c, i] as const))('%s', async (_t, c, i) => {
    const s = byName(c.scenario);
    const dir = join(root, `otel-${i}`);
    await mkdir(dir, { recursive: true });
    const { chain } = await scenarioFiles(s, dir);
    const file = join(dir, 'collector.yaml');
    await writeFile(file, otelYaml(s, chain, c.variant));
    const { code, report } = await doctorConfig(file, clientArgs(s));
    expect(report.failingSide, summary(report)).toBe(c.failingSide);
    expect(code).toBe(c.failingSide === null ? 0 : 1);
    expect(errorsOf(report).map((f) => f.code)).toEqual(expect.arrayContaining(c.codes));
    if (c.codes.length === 0) expect(errorsOf(report), summary(report)).toEqual([]);
    if (c.variant === 'verify-optional')
      expect(errorsOf(report).find((f) => f.code === 'not_mtls')?.fix).toContain('client_ca_file');
    const skip = report.findings.find((f) => f.code === 'server_not_verified');
    expect(skip?.severity, summary(report)).toBe('warning');
    expect(skip?.evidence.config).toBe(`${file}:16`);
  });
});
