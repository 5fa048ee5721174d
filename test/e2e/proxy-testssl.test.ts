// testssl.sh (Debian's package) against `mtls proxy` listeners: protocols, cipher categories, forward
// secrecy, server preferences, server defaults (the certificate), HTTP headers, vulnerabilities and
// every cipher one by one. The requirement: no finding at MEDIUM, HIGH or CRITICAL. The LOW and WARN
// findings are printed with the test so they are seen.
//
// The listeners run with what an operator deploys: server certificates from `mtls ca serve` (which
// carry the CA's CRL and OCSP URLs; testssl rates a certificate with neither HIGH) with a 90-day
// lifetime (testssl warns under 60 days and rates under 30 days HIGH, whatever the renewal plan),
// one P-256 and one RSA-2048 key, since the TLS 1.2 suites offered depend on the key type.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt, mtlsJson, program, run } from '../support/cli.js';
import { initCa, type CaPaths } from '../support/pki.js';
import { startEchoUpstream, startProxy, type EchoUpstream, type RunningProxy } from '../support/proxy.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

interface Finding {
  id: string;
  ip: string;
  port: string;
  severity: 'OK' | 'INFO' | 'LOW' | 'MEDIUM' | 'HIGH' | 'CRITICAL' | 'WARN' | 'FATAL' | 'DEBUG';
  cve?: string;
  cwe?: string;
  finding: string;
}

const SEVERE = new Set(['MEDIUM', 'HIGH', 'CRITICAL']);
/** testssl's checks, without the client simulations (information only, and half the run time). */
const CHECKS = ['-p', '-s', '-f', '-P', '-S', '-h', '-U', '-e'];
const KEY_TYPES = [
  { listener: 'p256', keyType: 'p256' },
  { listener: 'rsa2048', keyType: 'rsa2048' },
] as const;

let root: string;
let serverCa: CaPaths;
let upstream: EchoUpstream;
let proxy: RunningProxy;

/** `mtls ca token` + `mtls enroll`: a server certificate for localhost and 127.0.0.1 from the CA service. */
async function enrollServer(
  ca: CaService,
  name: string,
  keyType: string,
): Promise<{ chain: string; key: string }> {
  const token = await mtlsJson(
    [
      'ca',
      'token',
      'dns:localhost',
      'ip:127.0.0.1',
      '--profile',
      'server',
      '--max-ttl',
      '90d',
      '--ca-url',
      ca.mtlsUrl,
      '--dir',
      serverCa.dir,
      '--json',
    ],
    { cwd: root },
  );
  expect(token.code, token.stderr).toBe(0);
  const out = join(root, 'server');
  const enrolled = await mtlsJson(
    [
      'enroll',
      '--ca-url',
      ca.publicUrl,
      '--token',
      (token.json as { token: string }).token,
      '--root-fingerprint',
      ca.rootFingerprint,
      '--roots-url',
      `${ca.httpUrl}/v1/roots`,
      '--name',
      name,
      '--key-type',
      keyType,
      '--ttl',
      '90d',
      '--out',
      out,
      '--json',
    ],
    { cwd: root },
  );
  expect(enrolled.code, enrolled.stdout + enrolled.stderr).toBe(0);
  return { chain: join(out, `${name}.chain.pem`), key: join(out, `${name}.key`) };
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('proxy-testssl');
  const [server, client] = await Promise.all([
    initCa(root, 'server-ca', { name: 'mtlskit testssl Server CA' }),
    initCa(root, 'client-ca', { name: 'mtlskit testssl Client CA', trustDomain: 'e2e.example' }),
  ]);
  serverCa = server;
  const ca = await startCaService(serverCa.dir);
  let certs: { chain: string; key: string }[];
  try {
    certs = [];
    for (const k of KEY_TYPES) certs.push(await enrollServer(ca, `localhost-${k.keyType}`, k.keyType));
  } finally {
    await ca.stop();
  }
  upstream = await startEchoUpstream();
  const config = join(root, 'proxy.yaml');
  await writeFile(
    config,
    stringify({
      listeners: KEY_TYPES.map((k, i) => ({
        name: k.listener,
        listen: '127.0.0.1:0',
        mode: 'strict',
        tls: { cert: certs[i]!.chain, key: certs[i]!.key, clientCa: client.bundle },
        upstream: `http://127.0.0.1:${upstream.port}`,
        allow: [{ identity: 'spiffe://e2e.example/**' }],
      })),
    }),
  );
  proxy = await startProxy(config, root);
});

afterAll(async () => {
  if (proxy) expect(await proxy.stop()).toBe(0);
  await upstream?.close();
  await removeTempDir(root);
});

function summary(name: string, findings: Finding[], seconds: number): string {
  const counts: Record<string, number> = {};
  for (const f of findings) counts[f.severity] = (counts[f.severity] ?? 0) + 1;
  const lines = [
    `testssl.sh on listener ${name} (${seconds.toFixed(0)} s): ${Object.entries(counts)
      .map(([s, n]) => `${s} ${n}`)
      .join(', ')}`,
  ];
  for (const sev of ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'WARN'])
    for (const f of findings.filter((x) => x.severity === sev))
      lines.push(`  ${sev.padEnd(8)} ${f.id.padEnd(26)} ${f.finding}${f.cve ? ` (${f.cve})` : ''}`);
  const offered = (re: RegExp): string => offeredSuites(findings, re).join(' ') || 'none';
  lines.push(`  suites offered: ${offered(/./)}`);
  lines.push(`  TLS 1.2 suites without forward secrecy: ${offered(NON_FS)}`);
  lines.push(`  CBC suites: ${offered(CBC)}`);
  return lines.join('\n');
}

/** each-cipher rows (cipher_x<hex>): "<hex> <name> <key exchange> <encryption> <bits> <IANA name>". */
const NON_FS = /^\S+\s+\S+\s+RSA\s/;
const CBC = /\s(AES|ARIA|Camellia)\s/;

/** The names of the suites testssl's each-cipher check saw accepted whose row matches. */
function offeredSuites(findings: Finding[], re: RegExp): string[] {
  return findings
    .filter((f) => /^cipher_x/.test(f.id) && re.test(f.finding))
    .map((f) => f.finding.split(/\s+/)[1]!);
}

describe('testssl.sh against mtls proxy listeners', () => {
  it.each(KEY_TYPES)(
    'listener with a $keyType certificate: no finding at MEDIUM or above',
    async ({ listener }) => {
      const port = proxy.listeners[listener]!;
      const jsonFile = join(root, `testssl-${listener}.json`);
      const started = Date.now();
      const r = await run(
        program('testssl'),
        [
          '--quiet',
          '--color',
          '0',
          '--warnings',
          'off',
          '--nodns',
          'none',
          '--connect-timeout',
          '10',
          '--openssl-timeout',
          '10',
          '--add-ca',
          serverCa.bundle,
          ...CHECKS,
          '--jsonfile',
          jsonFile,
          '--ip',
          '127.0.0.1',
          `localhost:${port}`,
        ],
        { cwd: root, timeoutMs: 240_000 },
      );
      const seconds = (Date.now() - started) / 1000;
      // testssl exits with the number of checks that could not be completed (0-245), 246+ on a fatal error.
      expect(r.code, `${r.stdout.slice(-3000)}\n${r.stderr}`).toBeLessThan(246);
      const findings = JSON.parse(await readFile(jsonFile, 'utf8')) as Finding[];
      console.log(summary(listener, findings, seconds));
      const by = (id: string): Finding | undefined => findings.find((f) => f.id === id);

      // The scan ran every section against this listener, with the CA trusted.
      expect(findings.filter((f) => f.severity === 'FATAL')).toEqual([]);
      for (const id of [
        'TLS1_3',
        'PFS',
        'cipher_order',
        'cert_chain_of_trust',
        'heartbleed',
        'ROBOT',
        'LUCKY13',
      ])
        expect(by(id), `testssl finding ${id}`).toBeDefined();
      expect(findings.filter((f) => /^cipher_x/.test(f.id)).length).toBeGreaterThan(0);
      expect(by('cert_chain_of_trust')).toMatchObject({ severity: 'OK' });
      expect(by('cert_trust')).toMatchObject({ severity: 'OK' });
      // The listener's protocol floor (minVersion TLSv1.2 by default) and ALPN.
      for (const old of ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']) expect(by(old)?.finding).toBe('not offered');
      expect(by('TLS1_2')?.finding).toBe('offered');
      expect(by('TLS1_3')?.finding).toMatch(/^offered/);
      expect(by('ALPN_HTTP2')?.finding).toBe('h2');

      // TLS 1.2 is limited to ECDHE with AEAD suites (testssl rates CBC and static-RSA suites only
      // LOW, so a regression there would pass the requirement below unnoticed).
      expect(offeredSuites(findings, NON_FS), 'suites without forward secrecy').toEqual([]);
      expect(offeredSuites(findings, CBC), 'CBC suites (LUCKY13)').toEqual([]);

      // The requirement.
      const severe = findings.filter((f) => SEVERE.has(f.severity));
      expect(
        severe.map((f) => `${f.severity} ${f.id}: ${f.finding}`),
        `testssl findings at MEDIUM or above on listener ${listener}`,
      ).toEqual([]);
    },
    300_000,
  );
});
