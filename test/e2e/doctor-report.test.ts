// The human report of `mtls doctor pair` fits on one screen for a single-cause failure, names the
// failing side and the code, and shows the fix; and every finding's fix (in --json) is concrete: a
// command, a config directive or a file to use. The same for `files` on the failing side and for
// `config` on the scenario's nginx config. Runs the generated corpus through the built CLI.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, mtls, mtlsJson } from '../support/cli.js';
import { buildCorpus, type Scenario } from '../support/doctor-corpus.js';
import { nginxConfig } from '../support/peers.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();
const root = await makeTempDir('doctor-report');
const scenarios = await buildCorpus(root);

afterAll(async () => {
  await removeTempDir(root);
});

/** Paths as a user types them: relative to the directory the command runs in (the corpus root). */
const rel = (p: string): string => relative(root, p);

function pairArgs(s: Scenario): string[] {
  const args = ['doctor', 'pair', '--name', s.host, '--verify-depth', String(s.verifyDepth)];
  args.push('--server-cert', rel(s.server.cert), '--server-key', rel(s.server.key));
  args.push('--server-ca', rel(s.server.ca));
  if (s.server.chain) args.push('--server-chain', rel(s.server.chain));
  if (s.client.cert) args.push('--client-cert', rel(s.client.cert));
  if (s.client.key) args.push('--client-key', rel(s.client.key));
  if (s.client.chain) args.push('--client-chain', rel(s.client.chain));
  args.push('--client-ca', rel(s.client.ca));
  if (s.crl) args.push('--server-crl', rel(s.crl));
  return args;
}

// One screen: a terminal of 24 rows. Lines may be up to 160 columns (a wide terminal; the report
// indents evidence and fixes, so a fix line holds a whole command). File paths are the user's own
// (and the names the doctor derives from them) and can be any length, so a line is measured with
// every path shortened to its last component ("c/alice.chain.pem" counts as "alice.chain.pem"): a
// long directory must not make an otherwise tight report fail, but a long message must.
const SCREEN_ROWS = 24;
const SCREEN_COLUMNS = 160;

function measuredWidth(line: string, paths: readonly string[]): number {
  let l = line;
  for (const p of [...paths].sort((a, b) => b.length - a.length))
    l = l.split(p).join(p.slice(p.lastIndexOf('/') + 1));
  l = l.replace(/(?:[\w.-]+\/)+([\w.-]+)/g, '$1');
  return [...l].length;
}

function scenarioPaths(s: Scenario): string[] {
  return [s.server.cert, s.server.key, s.server.chain, s.server.ca, s.client.cert, s.client.key]
    .concat([s.client.chain, s.client.ca, s.crl])
    .filter((p): p is string => !!p)
    .map(rel);
}

// A concrete fix names something to run, a directive to write, or a file to use.
const COMMAND = /\b(mtls|openssl|cat|curl|chmod|timedatectl|nginx|haproxy) [\w-]/;
const DIRECTIVE = /\bssl_[a-z_]+\b|\bcrt |\bca-file\b|\bcrl-file\b|\bverify required\b|--[a-z][\w-]+/;
const FILE = /[\w.-]+\.(pem|crt|key|crl|der|chain\.pem|pass)\b/;

function concrete(fix: string): boolean {
  return COMMAND.test(fix) || DIRECTIVE.test(fix) || FILE.test(fix);
}

interface Report {
  ok: boolean;
  failingSide: string | null;
  findings: { code: string; side: string; severity: string; fix: string }[];
}

const single = scenarios.filter((s) => s.failingSide !== null && s.codes.length === 1);

describe(`mtls doctor pair, human report of ${single.length} single-cause failures`, () => {
  it('the corpus has single-cause failures to check', () => {
    expect(single.length).toBeGreaterThanOrEqual(30);
  });

  it.each(single.map((s) => [s.name, s] as const))('%s: one screen, side, code, fix', async (_n, s) => {
    const r = await mtls(pairArgs(s), { cwd: root });
    const out = r.stdout.replace(/\n$/, '');
    const lines = out.split('\n');
    const shown = `\n${out}\n${r.stderr}`;
    expect(r.code, shown).toBe(1);
    expect(r.stderr, shown).toBe('');
    expect(lines.length, shown).toBeLessThanOrEqual(SCREEN_ROWS);
    const paths = scenarioPaths(s);
    for (const line of lines)
      expect(measuredWidth(line, paths), `line too wide: ${line}${shown}`).toBeLessThanOrEqual(
        SCREEN_COLUMNS,
      );
    // The verdict line names the side that must change.
    const side = s.failingSide === 'both' ? 'both sides must change' : `the ${s.failingSide} must change`;
    expect(lines[0], shown).toContain(side);
    // The section of that side is there, with the expected code as an error and a fix under it.
    const title = s.failingSide === 'both' ? 'both sides' : `${s.failingSide} (`;
    expect(
      lines.some((l) => l.startsWith(title)),
      shown,
    ).toBe(true);
    const code = s.codes[0]!;
    const at = lines.findIndex((l) => l.startsWith(`  error ${code}: `));
    expect(at, shown).toBeGreaterThan(0);
    const fix = lines.slice(at + 1).find((l) => /^ {4}fix: /.test(l) || /^ {2}\S/.test(l));
    expect(fix, shown).toMatch(/^ {4}fix: \S/);
  });
});

/** `files` on one side, as doctor-files.test.ts runs it: against the bundle the peer verifies it with. */
function filesArgs(s: Scenario, side: 'client' | 'server'): string[] | undefined {
  if (side === 'client') {
    if (!s.client.cert) return undefined;
    const a = ['doctor', 'files', '--role', 'client', '--cert', rel(s.client.cert), '--ca', rel(s.client.ca)];
    if (s.client.key) a.push('--key', rel(s.client.key));
    if (s.client.chain) a.push('--chain', rel(s.client.chain));
    if (s.crl) a.push('--crl', rel(s.crl));
    return a;
  }
  const a = ['doctor', 'files', '--role', 'server', '--name', s.host, '--cert', rel(s.server.cert)];
  a.push('--key', rel(s.server.key), '--ca', rel(s.server.ca));
  if (s.server.chain) a.push('--chain', rel(s.server.chain));
  return a;
}

describe('mtls doctor files on the failing side: one screen, concrete fixes', () => {
  const runs = single.flatMap((s) =>
    (s.failingSide === 'both' ? (['client', 'server'] as const) : [s.failingSide as 'client' | 'server']).map(
      (side) => [`${s.name} (${side})`, s, side] as const,
    ),
  );
  it.each(runs)('%s', async (_n, s, side) => {
    const args = filesArgs(s, side);
    if (!args) return expect(s.client.cert).toBeUndefined();
    const human = await mtls(args, { cwd: root });
    const shown = `\n${human.stdout}${human.stderr}`;
    expect([0, 1], shown).toContain(human.code);
    const lines = human.stdout.replace(/\n$/, '').split('\n');
    expect(lines.length, shown).toBeLessThanOrEqual(SCREEN_ROWS);
    const paths = scenarioPaths(s);
    for (const line of lines)
      expect(measuredWidth(line, paths), `line too wide: ${line}${shown}`).toBeLessThanOrEqual(
        SCREEN_COLUMNS,
      );
    const json = (await mtlsJson([...args, '--json'], { cwd: root })).json as Report;
    for (const f of json.findings)
      expect(concrete(f.fix), `${f.code} (${f.side}, ${f.severity}): ${f.fix}`).toBe(true);
  });
});

/** The scenario's server side as the nginx config the other doctor tests run (ssl_verify_client on). */
async function nginxConf(s: Scenario, i: number): Promise<string> {
  const prefix = join(root, `report-nginx-${i}`);
  await mkdir(prefix, { recursive: true });
  let certChain = s.server.cert;
  if (s.server.chain) {
    certChain = join(prefix, 'server.pem');
    const parts = await Promise.all([readFile(s.server.cert), readFile(s.server.chain)]);
    await writeFile(certChain, Buffer.concat(parts), { mode: 0o600 });
  }
  const conf = join(prefix, 'nginx.conf');
  const o = { prefix, certChain, key: s.server.key, clientCa: s.client.ca, verifyDepth: s.verifyDepth };
  await writeFile(conf, nginxConfig({ ...o, ...(s.crl ? { crl: s.crl } : {}) }, 8443));
  return rel(conf);
}

describe('mtls doctor config on the nginx config: one screen, concrete fixes', () => {
  it.each(single.map((s, i) => [s.name, s, i] as const))('%s', async (_n, s, i) => {
    const args = [
      'doctor',
      'config',
      await nginxConf(s, i),
      '--name',
      s.host,
      '--client-ca',
      rel(s.server.ca),
    ];
    if (s.client.cert) args.push('--client-cert', rel(s.client.cert));
    if (s.client.key) args.push('--client-key', rel(s.client.key));
    if (s.client.chain) args.push('--client-chain', rel(s.client.chain));
    const human = await mtls(args, { cwd: root });
    const shown = `\n${human.stdout}${human.stderr}`;
    expect(human.code, shown).toBe(1);
    const lines = human.stdout.replace(/\n$/, '').split('\n');
    expect(lines.length, shown).toBeLessThanOrEqual(SCREEN_ROWS);
    const paths = scenarioPaths(s);
    for (const line of lines)
      expect(measuredWidth(line, paths), `line too wide: ${line}${shown}`).toBeLessThanOrEqual(
        SCREEN_COLUMNS,
      );
    expect(
      lines.some((l) => /^ {4}fix: \S/.test(l)),
      shown,
    ).toBe(true);
    const json = (await mtlsJson([...args, '--json'], { cwd: root })).json as Report;
    for (const f of json.findings)
      expect(concrete(f.fix), `${f.code} (${f.side}, ${f.severity}): ${f.fix}`).toBe(true);
  });
});

describe('every fix in --json is concrete (a command, a directive or a file)', () => {
  it.each(scenarios.map((s) => [s.name, s] as const))('%s', async (_n, s) => {
    const r = await mtlsJson([...pairArgs(s), '--json'], { cwd: root });
    const report = r.json as Report;
    for (const f of report.findings)
      expect(concrete(f.fix), `${f.code} (${f.side}, ${f.severity}): ${f.fix}`).toBe(true);
    if (s.failingSide !== null) expect(report.findings.length).toBeGreaterThan(0);
  });
});
