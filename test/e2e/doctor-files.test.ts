// `mtls doctor files` through the built CLI: one side's files at a time. For every corpus scenario,
// each side is checked against the bundle its peer verifies it with; a side whose own files are at
// fault reports an error, healthy pairs report none on either side. Then the inputs users really
// have: DER, CRLF, a BOM, text around the blocks, bundles in any order, every key container, and
// files that are something else, each with the right finding and never a stack trace.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, mtls, mtlsJson, run, type RunResult } from '../support/cli.js';
import { buildCorpus, type Scenario } from '../support/doctor-corpus.js';
import { initCa, issue } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

assertBuilt();
const root = await makeTempDir('doctor-files');
const scenarios = await buildCorpus(root);

afterAll(async () => {
  await removeTempDir(root);
});

interface Finding {
  code: string;
  side: string;
  severity: string;
  message: string;
  fix: string;
  evidence: Record<string, unknown>;
}
interface Report {
  ok: boolean;
  failingSide: string | null;
  findings: Finding[];
}

const rel = (p: string): string => relative(root, p);

/** Runs `mtls doctor files --json`; the run must end with 0 or 1, JSON on stdout and no stack trace. */
async function files(args: string[], cwd = root): Promise<{ r: RunResult; report: Report }> {
  const res = await mtlsJson(['doctor', 'files', '--json', ...args], { cwd });
  const shown = `mtls doctor files ${args.join(' ')}\n${res.stdout}${res.stderr}`;
  expect([0, 1], shown).toContain(res.code);
  expect(res.stderr, shown).not.toMatch(/\n\s+at |TypeError|RangeError|Error:/);
  const report = res.json as Report;
  expect(Object.keys(report).sort()).toEqual(['failingSide', 'findings', 'ok']);
  expect(res.code, shown).toBe(report.ok ? 0 : 1);
  return { r: res, report };
}

const errors = (r: Report): string[] => r.findings.filter((f) => f.severity === 'error').map((f) => f.code);

/** The client's own files, checked against what the server trusts for clients (and its CRL). */
function clientArgs(s: Scenario): string[] | undefined {
  if (!s.client.cert) return undefined;
  const a = ['--role', 'client', '--cert', rel(s.client.cert), '--ca', rel(s.client.ca)];
  if (s.client.key) a.push('--key', rel(s.client.key));
  if (s.client.chain) a.push('--chain', rel(s.client.chain));
  if (s.crl) a.push('--crl', rel(s.crl));
  return a;
}

/** The server's own files, checked for the host name against what the client trusts. */
function serverArgs(s: Scenario): string[] {
  const a = ['--role', 'server', '--name', s.host, '--cert', rel(s.server.cert), '--ca', rel(s.server.ca)];
  a.push('--key', rel(s.server.key));
  if (s.server.chain) a.push('--chain', rel(s.server.chain));
  return a;
}

/**
 * What `files` reports on one side: `clean` (no error), a list of error codes that must be among the
 * errors, or `skip` (nothing to run). Warnings are checked separately where they are the point.
 */
type SideExpectation = 'clean' | 'skip' | { errors: string[]; warnings?: string[]; infos?: string[] };

/**
 * By default the failing side reports the pair-mode code from its own files and the other side is
 * clean. The scenarios below are written out because `files` sees one side at a time: a fault in
 * what a side TRUSTS (its CA bundle, CRL, verify depth) is not in its own certificate files, and
 * shows up, if at all, when the peer's files are checked against that bundle.
 */
const EXCEPTIONS: Record<string, { client: SideExpectation; server: SideExpectation; why: string }> = {
  'no client certificate': {
    client: 'skip',
    server: 'clean',
    why: 'files needs a certificate (--cert); pair and connect report no_client_cert',
  },
  'client certificate in DER where curl needs PEM': {
    client: { errors: ['missing_intermediate'], infos: ['file_format'] },
    server: 'clean',
    why: 'files reads DER (an info that names PEM for nginx/curl); the DER file holds the leaf alone, so the chain is missing',
  },
  'server key encrypted, no ssl_password_file': {
    client: 'clean',
    server: { errors: [], warnings: ['encrypted_key'] },
    why: 'files does not know the server is nginx without ssl_password_file: a warning naming it (pair and config make it an error)',
  },
  'client trusts the client CA instead of the server CA': {
    client: 'clean',
    server: { errors: ['unknown_ca'] },
    why: "the client's trust bundle is wrong: it shows when the server's files are checked against it",
  },
  'CA files swapped between the sides': {
    client: { errors: ['unknown_ca'] },
    server: { errors: ['unknown_ca'] },
    why: 'each side is checked against the wrong bundle: both report unknown_ca (pair names the swap)',
  },
  'client CA bundle holds only the intermediate': {
    client: { errors: [], warnings: ['partial_chain'] },
    server: 'clean',
    why: "the server's client CA bundle is at fault: files on the client side warns about it (nginx makes it an error; pair does)",
  },
  'client CA bundle holds a re-created root of the same name': {
    client: { errors: ['unknown_ca'] },
    server: 'clean',
    why: "the server's client CA bundle is stale: the client's chain does not reach it",
  },
  'server trusts the server CA for clients': {
    client: { errors: ['unknown_ca'] },
    server: 'clean',
    why: "the server's client CA bundle is the wrong CA: the client's chain does not reach it",
  },
  'client chain needs more depth than ssl_verify_depth 1': {
    client: 'clean',
    server: 'clean',
    why: 'ssl_verify_depth is server configuration that files does not take: pair and config report it',
  },
  'ssl_crl past its nextUpdate': {
    client: { errors: ['crl_expired'] },
    server: 'clean',
    why: "the server's CRL file is at fault: checking the client against it (--crl) shows it",
  },
  'ssl_crl without the root CA’s CRL': {
    client: { errors: ['crl_missing'] },
    server: 'clean',
    why: "the server's CRL file lacks the root's CRL: checking the client against it (--crl) shows it",
  },
};

function expectation(s: Scenario): { client: SideExpectation; server: SideExpectation } {
  const ex = EXCEPTIONS[s.name];
  if (ex) return ex;
  if (s.failingSide === null) return { client: 'clean', server: 'clean' };
  if (s.failingSide === 'client') return { client: { errors: s.codes }, server: 'clean' };
  if (s.failingSide === 'server') return { client: 'clean', server: { errors: s.codes } };
  throw new Error(`${s.name}: write the expectation for both sides in EXCEPTIONS`);
}

function check(side: string, report: Report, want: SideExpectation): void {
  const summary = `${side}: ${JSON.stringify(report.findings.map((f) => [f.severity, f.code, f.message]))}`;
  if (want === 'skip') return;
  if (want === 'clean') {
    expect(errors(report), summary).toEqual([]);
    expect(report.ok, summary).toBe(true);
    return;
  }
  for (const code of want.errors) expect(errors(report), summary).toContain(code);
  if (want.errors.length === 0) expect(errors(report), summary).toEqual([]);
  else expect(report.failingSide, summary).toBe(side);
  const of = (sev: string): string[] => report.findings.filter((f) => f.severity === sev).map((f) => f.code);
  for (const code of want.warnings ?? []) expect(of('warning'), summary).toContain(code);
  for (const code of want.infos ?? []) expect(of('info'), summary).toContain(code);
}

describe(`mtls doctor files on both sides of ${scenarios.length} corpus scenarios`, () => {
  it('every written-out exception names a corpus scenario', () => {
    const names = new Set(scenarios.map((s) => s.name));
    for (const name of Object.keys(EXCEPTIONS)) expect(names, name).toContain(name);
  });

  it.each(scenarios.map((s) => [s.name, s] as const))('%s', async (_n, s) => {
    const want = expectation(s);
    const cArgs = clientArgs(s);
    expect(cArgs === undefined, 'a scenario without a client certificate must be skipped').toBe(
      want.client === 'skip',
    );
    if (cArgs) check('client', (await files(cArgs)).report, want.client);
    check('server', (await files(serverArgs(s))).report, want.server);
  });
});

// ---------------------------------------------------------------- input formats

const dir = join(root, 'formats');
await mkdir(dir);
const ca = await initCa(dir, 'ca', { name: 'doctor files CA' });
const other = await initCa(dir, 'other', { name: 'doctor files Other CA' });
const alice = await issue(ca, dir, 'client', 'alice');
const bob = await issue(ca, dir, 'client', 'bob', { keyType: 'rsa2048' });
const text = (f: string): Promise<string> => readFile(f, 'utf8');

async function openssl(args: string[]): Promise<void> {
  const r = await run('openssl', args, { cwd: dir });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

async function put(name: string, data: string | Buffer): Promise<string> {
  await writeFile(join(dir, name), data, { mode: 0o600 });
  return name;
}

const PASS = 'files e2e key passphrase';
await put('pass.txt', `${PASS}\n`);
await put('wrong-pass.txt', 'not the passphrase\n');
// alice's leaf in DER, used by several tests below.
await openssl(['x509', '-in', alice.cert, '-outform', 'DER', '-out', 'alice.der']);
await put('alice-der.pem', await readFile(join(dir, 'alice.der')));
/** `files` run in the formats directory (paths as a user types them there). */
const fmt = (args: string[]): ReturnType<typeof files> => files(args, dir);
const aliceArgs = (cert: string, more: string[] = []): string[] => [
  '--role',
  'client',
  '--cert',
  cert,
  '--ca',
  'ca/ca.pem',
  ...more,
];

describe('mtls doctor files reads what users have', () => {
  it('checks the CLI-issued PKCS#8 key and chain as they are', async () => {
    expect(await text(alice.key)).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const { report } = await fmt(aliceArgs('alice.chain.pem', ['--key', 'alice.key']));
    expect(report).toMatchObject({ ok: true, failingSide: null });
  });

  it('reads a DER leaf (an info naming PEM for nginx/curl), and a DER file named .pem', async () => {
    for (const cert of ['alice.der', 'alice-der.pem']) {
      const { report } = await fmt(aliceArgs(cert, ['--key', 'alice.key', '--chain', 'ca/intermediate.crt']));
      expect(errors(report), cert).toEqual([]);
      const der = report.findings.find((f) => f.code === 'file_format');
      expect(der, cert).toMatchObject({ severity: 'info', evidence: { format: 'DER' } });
      expect(der!.fix).toMatch(
        new RegExp(`^Convert it: openssl x509 -inform DER -in ${cert} -out \\S+\\.pem$`),
      );
    }
  });

  it('a DER leaf without its intermediate: the fix converts it before cat', async () => {
    const { report } = await fmt(aliceArgs('alice.der', ['--key', 'alice.key']));
    expect(errors(report)).toEqual(['missing_intermediate']);
    const fix = report.findings.find((f) => f.code === 'missing_intermediate')!.fix;
    expect(fix).toContain('openssl x509 -inform DER -in alice.der -out alice.pem && cat alice.pem ');
    expect(fix).not.toMatch(/cat alice\.der/);
    // A PEM leaf alone: cat it as it is, into a chain file named after it.
    const pem = await fmt(aliceArgs('alice.crt', ['--key', 'alice.key']));
    expect(pem.report.findings.find((f) => f.code === 'missing_intermediate')!.fix).toContain(
      'cat alice.crt intermediate.crt > alice.chain.pem',
    );
  });

  it('reads CRLF line ends, a BOM and text around the PEM blocks', async () => {
    const chain = await text(alice.chain);
    const [leafPem, interPem] = chain.split(/(?<=-----END CERTIFICATE-----\n)/);
    const variants = {
      'crlf.pem': chain.replace(/\n/g, '\r\n'),
      'bom.pem': `\ufeff${chain}`,
      'chatty.pem': `Certificate:\n    Data: (openssl x509 -text output)\n${leafPem}\nBag Attributes\n    friendlyName: alice\n${interPem}trailing notes\n`,
      'all-three.pem': `\ufeffsubject=CN=alice\r\n${chain.replace(/\n/g, '\r\n')}end\r\n`,
    };
    for (const [name, data] of Object.entries(variants)) {
      await put(name, data);
      const { report } = await fmt(aliceArgs(name, ['--key', 'alice.key']));
      expect(report.findings, name).toEqual([]);
    }
  });

  it('reads trust bundles and chain files in any order', async () => {
    const [root1, inter, root2] = await Promise.all([
      text(ca.rootCert),
      text(ca.intermediateCert),
      text(other.rootCert),
    ]);
    await put('bundle-a.pem', root2 + inter + root1);
    await put('bundle-b.pem', inter + root1 + root2);
    await put('chain-rev.pem', root1 + inter);
    for (const bundle of ['bundle-a.pem', 'bundle-b.pem']) {
      const { report } = await fmt([
        '--role',
        'client',
        '--cert',
        'alice.crt',
        '--chain',
        'ca/intermediate.crt',
        '--key',
        'alice.key',
        '--ca',
        bundle,
      ]);
      expect(errors(report), bundle).toEqual([]);
    }
    // Intermediates given root first: not what a peer is sent, but nothing breaks.
    const rev = await fmt(aliceArgs('alice.crt', ['--chain', 'chain-rev.pem', '--key', 'alice.key']));
    expect(errors(rev.report)).toEqual([]);
  });

  it('opens PKCS#1, SEC1, PKCS#8 and encrypted keys (with --passphrase-file)', async () => {
    await openssl(['pkey', '-in', bob.key, '-traditional', '-out', 'bob.pkcs1.key']);
    await openssl(['ec', '-in', alice.key, '-out', 'alice.sec1.key']);
    await openssl(['pkey', '-in', alice.key, '-aes256', '-passout', `pass:${PASS}`, '-out', 'alice.enc.key']);
    await openssl([
      'ec',
      '-in',
      alice.key,
      '-aes256',
      '-passout',
      `pass:${PASS}`,
      '-out',
      'alice.sec1-enc.key',
    ]);
    expect(await text(join(dir, 'bob.pkcs1.key'))).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(await text(join(dir, 'alice.sec1.key'))).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    expect(await text(join(dir, 'alice.enc.key'))).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    expect(await text(join(dir, 'alice.sec1-enc.key'))).toMatch(/Proc-Type: 4,ENCRYPTED/);
    const bobOk = await fmt(aliceArgs('bob.chain.pem', ['--key', 'bob.pkcs1.key']));
    expect(bobOk.report.findings).toEqual([]);
    const sec1 = await fmt(aliceArgs('alice.chain.pem', ['--key', 'alice.sec1.key']));
    expect(sec1.report.findings).toEqual([]);
    for (const key of ['alice.enc.key', 'alice.sec1-enc.key']) {
      const opened = await fmt(aliceArgs('alice.chain.pem', ['--key', key, '--passphrase-file', 'pass.txt']));
      expect(opened.report.findings, key).toEqual([]);
      // The passphrase opens the key, so a key that is not the certificate's is still found.
      const mismatch = await fmt(aliceArgs('bob.chain.pem', ['--key', key, '--passphrase-file', 'pass.txt']));
      expect(errors(mismatch.report), key).toEqual(['key_mismatch']);
      const without = await fmt(aliceArgs('alice.chain.pem', ['--key', key]));
      expect(
        without.report.findings.map((f) => [f.code, f.severity]),
        key,
      ).toEqual([['encrypted_key', 'warning']]);
      expect(without.report.findings[0]!.fix).toContain('--passphrase-file');
      const wrong = await fmt(
        aliceArgs('alice.chain.pem', ['--key', key, '--passphrase-file', 'wrong-pass.txt']),
      );
      expect(errors(wrong.report), key).toEqual(['encrypted_key']);
      expect(wrong.report.failingSide).toBe('client');
    }
  });

  it('says when a file is a CSR, truncated, a key, or binary inside PEM armor', async () => {
    await openssl(['req', '-new', '-key', alice.key, '-subj', '/CN=alice', '-out', 'alice.csr']);
    const chain = await text(alice.chain);
    await put('truncated.pem', chain.slice(0, 300));
    const der = await readFile(join(dir, 'alice.der'));
    await put(
      'armored-der.pem',
      Buffer.concat([
        Buffer.from('-----BEGIN CERTIFICATE-----\n'),
        der,
        Buffer.from('\n-----END CERTIFICATE-----\n'),
      ]),
    );
    const cases: [string, RegExp, RegExp][] = [
      ['alice.csr', /certificate signing request/, /mtls ca sign alice\.csr/],
      ['truncated.pem', /truncated PEM/, /openssl x509 -in truncated\.pem/],
      ['alice.key', /holds a private key, not/, /alice\.key is the key/],
      [
        'armored-der.pem',
        /binary data: DER was pasted/,
        /openssl x509 -inform DER -in \S+ -out armored-der\.pem/,
      ],
    ];
    for (const [cert, message, fix] of cases) {
      const { report } = await fmt(aliceArgs(cert, ['--key', 'alice.key']));
      const f = report.findings.find((x) => x.code === 'file_format');
      expect(f, `${cert}: ${JSON.stringify(report.findings)}`).toMatchObject({
        side: 'client',
        severity: 'error',
      });
      expect(f!.message, cert).toMatch(message);
      expect(f!.fix, cert).toMatch(fix);
      expect(report.failingSide).toBe('client');
    }
    // A certificate where the key should be.
    const swapped = await fmt(aliceArgs('alice.chain.pem', ['--key', 'alice.crt']));
    expect(swapped.report.findings.find((f) => f.code === 'file_format')!.fix).toMatch(
      /alice\.crt is a certificate/,
    );
  });

  it('a role other than client or server is a usage error (exit 2), not a stack trace', async () => {
    const r = await mtls(['doctor', 'files', '--json', '--cert', 'alice.crt', '--role', 'proxy'], {
      cwd: dir,
    });
    expect(r.code, r.stderr).toBe(2);
    // With --json the error is a JSON document on stdout.
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: false,
      error: { code: 'MTLS_CLI_USAGE', fix: expect.stringContaining('--role client') as unknown },
    });
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
