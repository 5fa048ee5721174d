// The CLI contract: help with examples, exit codes 0/1/2, inspect --json, verify verdicts and
// reasons, private key modes, and ca init that never overwrites a CA.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_PASSPHRASE, assertBuilt, errorCode, mtls, mtlsJson, mtlsOk } from '../support/cli.js';
import { openssl } from '../support/openssl.js';
import { createPki, initCa, issue, type Pki } from '../support/pki.js';
import { makeTempDir, removeTempDir, snapshotDir } from '../support/tmp.js';

let root: string;
let pki: Pki;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('cli');
  pki = await createPki(root);
});

afterAll(async () => {
  await removeTempDir(root);
});

const mode = async (f: string): Promise<number> => (await stat(f)).mode & 0o777;

describe('help', () => {
  it.each(['ca init', 'ca sign', 'issue', 'csr', 'inspect', 'verify'])(
    'mtls %s --help exits 0 and shows an example of that command',
    async (cmd) => {
      const r = await mtls([...cmd.split(' '), '--help'], { cwd: root });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: mtls ${cmd} `);
      const examples = r.stdout.split(/^Examples?:$/m)[1];
      expect(examples, 'an Example(s): section').toBeDefined();
      expect(examples).toMatch(new RegExp(`^\\s+.*\\bmtls ${cmd} \\S`, 'm'));
    },
  );

  it('mtls --help lists the commands', async () => {
    const r = await mtls(['--help'], { cwd: root });
    expect(r.code).toBe(0);
    for (const c of ['ca', 'issue', 'csr', 'inspect', 'verify'])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${c}\\b`, 'm'));
  });
});

describe('exit codes', () => {
  it('0 when all is well', async () => {
    const r = await mtls(['inspect', pki.client.chain], { cwd: root });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('alice');
  });

  it('1 when a problem is found (a rejected certificate, an unreadable file)', async () => {
    const v = await mtls(['verify', pki.client.cert, '--ca', pki.serverCa.bundle], { cwd: root });
    expect(v.code).toBe(1);
    const i = await mtls(['inspect', join(root, 'does-not-exist.pem')], { cwd: root });
    expect(i.code).toBe(1);
  });

  it('2 for a usage error: unknown option, missing argument, unknown command', async () => {
    const cases = [
      ['issue', 'client', 'x', '--no-such-option'],
      ['issue', 'client'],
      ['frobnicate'],
      ['verify', pki.client.cert],
    ];
    for (const args of cases) {
      const r = await mtls(args, { cwd: root });
      expect(r.code, args.join(' ')).toBe(2);
      expect(errorCode(r), args.join(' ')).toBe('MTLS_CLI_USAGE');
      expect(r.stderr, args.join(' ')).toMatch(/^\s*fix: Run "mtls .*--help"/m);
      expect(r.stdout, args.join(' ')).toBe('');
      const j = await mtls([...args, '--json'], { cwd: root });
      expect(j.code, args.join(' ')).toBe(2);
      expect((JSON.parse(j.stdout) as { error: { code: string } }).error.code).toBe('MTLS_CLI_USAGE');
    }
  });

  it('2 with an MTLS_ code and a fix line for a bad flag value', async () => {
    const r = await mtls(['verify', pki.client.cert, '--ca', pki.clientCa.bundle, '--at', 'yesterday'], {
      cwd: root,
    });
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('MTLS_CLI_BAD_TIME');
    expect(r.stderr).toMatch(/^\s*fix: \S/m);
  });

  it('--json errors go to stdout as {"ok":false,"error":{code,message,fix}}', async () => {
    const r = await mtlsJson(
      ['issue', 'client', 'x', '--dir', join(root, 'nowhere'), '--out', root, '--json'],
      {
        cwd: root,
      },
    );
    expect(r.code).toBe(1);
    const j = r.json as { ok: boolean; error: { code: string; message: string; fix: string } };
    expect(j.ok).toBe(false);
    expect(j.error.code).toBe('MTLS_CA_NOT_FOUND');
    expect(j.error.message).toMatch(/nowhere/);
    expect(j.error.fix).toContain('mtls ca init');
    expect(r.stderr).toBe('');
  });
});

describe('ca init', () => {
  it('writes the CA files, encrypts both keys (PKCS#8, openssl opens them with the passphrase), 0600', async () => {
    const ca = await initCa(root, 'fresh-ca', { name: 'Fresh', keyType: 'p384' });
    const files = (await snapshotDir(ca.dir)) as Record<string, { mode: number }>;
    expect(Object.keys(files).sort()).toEqual([
      'ca.json',
      'ca.pem',
      'intermediate.crt',
      'intermediate.key',
      'root.crl',
      'root.crt',
      'root.key',
    ]);
    for (const k of ['root.key', 'intermediate.key']) {
      expect(files[k]?.mode).toBe(0o600);
      const pem = await readFile(join(ca.dir, k), 'utf8');
      expect(pem).toContain('-----BEGIN ENCRYPTED PRIVATE KEY-----');
      const ok = await openssl([
        'pkey',
        '-in',
        join(ca.dir, k),
        '-passin',
        `pass:${TEST_PASSPHRASE}`,
        '-noout',
      ]);
      expect(ok.code).toBe(0);
      const wrong = await openssl(['pkey', '-in', join(ca.dir, k), '-passin', 'pass:wrong', '-noout']);
      expect(wrong.code).not.toBe(0);
    }
    const meta = JSON.parse(await readFile(join(ca.dir, 'ca.json'), 'utf8')) as Record<string, unknown>;
    expect(meta).toMatchObject({ name: 'Fresh', keyType: 'p384', keysEncrypted: true });
  });

  it('refuses a directory that already holds a CA, and changes nothing in it', async () => {
    const before = await snapshotDir(pki.clientCa.dir);
    const r = await mtls(['ca', 'init', '--dir', pki.clientCa.dir], { cwd: root });
    expect(r.code).toBe(1);
    expect(errorCode(r)).toBe('MTLS_CA_EXISTS');
    expect(r.stderr).toMatch(/^\s*fix: \S/m);
    expect(await snapshotDir(pki.clientCa.dir)).toEqual(before);
  });

  it('refuses to run without a passphrase (exit 2) and writes nothing', async () => {
    const dir = join(root, 'no-pass-ca');
    const r = await mtls(['ca', 'init', '--dir', dir], { cwd: root, env: { MTLS_CA_PASSPHRASE: undefined } });
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('MTLS_CA_PASSPHRASE_REQUIRED');
    expect(r.stderr).toMatch(/^\s*fix: .*--insecure-plaintext-key/m);
    await expect(stat(dir)).rejects.toThrow(/ENOENT/);
  });

  it('takes the passphrase from --passphrase-file, and issue opens the CA with it', async () => {
    const pf = join(root, 'pass.txt');
    await writeFile(pf, 'file passphrase for e2e\n', { mode: 0o600 });
    const dir = join(root, 'file-pass-ca');
    await mtlsOk(['ca', 'init', '--dir', dir, '--passphrase-file', pf], {
      cwd: root,
      env: { MTLS_CA_PASSPHRASE: undefined },
    });
    const out = join(root, 'file-pass-out');
    await mkdir(out);
    await mtlsOk(['issue', 'client', 'carol', '--dir', dir, '--out', out, '--passphrase-file', pf], {
      cwd: root,
      env: { MTLS_CA_PASSPHRASE: undefined },
    });
    const k = await openssl([
      'pkey',
      '-in',
      join(dir, 'root.key'),
      '-passin',
      'pass:file passphrase for e2e',
      '-noout',
    ]);
    expect(k.code).toBe(0);
    expect(await mode(join(out, 'carol.key'))).toBe(0o600);
  });

  it('--insecure-plaintext-key stores unencrypted keys, still 0600', async () => {
    const dir = join(root, 'plain-ca');
    await mtlsOk(['ca', 'init', '--dir', dir, '--insecure-plaintext-key'], {
      cwd: root,
      env: { MTLS_CA_PASSPHRASE: undefined },
    });
    const pem = await readFile(join(dir, 'intermediate.key'), 'utf8');
    expect(pem).toContain('-----BEGIN PRIVATE KEY-----');
    expect(await mode(join(dir, 'intermediate.key'))).toBe(0o600);
  });
});

describe('issued files', () => {
  it('private keys are 0600; certificates, chains and ca.pem are not secret', async () => {
    for (const l of [pki.server, pki.client, pki.spiffe, pki.peer]) {
      expect(await mode(l.key), l.key).toBe(0o600);
      expect((await mode(l.cert)) & 0o044, l.cert).toBe(0o044);
    }
    const out = join(root, 'csr-mode');
    await mkdir(out);
    await mtlsOk(['csr', 'dave', '--out', out], { cwd: root });
    expect(await mode(join(out, 'dave.key'))).toBe(0o600);
  });

  it('--file-name sets the base name; a spiffe leaf is named after the last path segment', async () => {
    expect(pki.spiffe.base).toBe('worker');
    await expect(stat(pki.spiffe.chain)).resolves.toBeDefined();
    const out = join(root, 'named');
    await mkdir(out);
    const l = await issue(pki.clientCa, out, 'client', 'erin', { fileName: 'svc-erin' });
    await expect(stat(l.key)).resolves.toBeDefined();
    await expect(stat(join(out, 'erin.key'))).rejects.toThrow(/ENOENT/);
  });
});

interface InspectJson {
  ok: boolean;
  files: { file: string; objects: Record<string, unknown>[] }[];
}

describe('inspect --json', () => {
  it('describes a chain: the leaf then the intermediate', async () => {
    const r = await mtlsJson(['inspect', pki.client.chain, '--json'], { cwd: root });
    expect(r.code).toBe(0);
    const j = r.json as InspectJson;
    expect(j.ok).toBe(true);
    const [leaf, int] = j.files[0]!.objects;
    expect(leaf).toMatchObject({
      kind: 'certificate',
      isCa: false,
      extendedKeyUsage: ['clientAuth'],
      keyUsage: ['digitalSignature'],
    });
    expect(String(leaf?.subject)).toContain('alice');
    expect(int).toMatchObject({ kind: 'certificate', isCa: true, pathLen: 0 });
    expect(leaf?.authorityKeyId).toBe(int?.subjectKeyId);
  });

  it('describes a private key (unencrypted leaf key, encrypted CA key)', async () => {
    const r = await mtlsJson(
      ['inspect', pki.client.key, join(pki.clientCa.dir, 'intermediate.key'), '--json'],
      {
        cwd: root,
      },
    );
    expect(r.code).toBe(0);
    const j = r.json as InspectJson;
    expect(j.files[0]!.objects[0]).toMatchObject({ kind: 'private-key', encrypted: false });
    expect(j.files[1]!.objects[0]).toMatchObject({ kind: 'private-key', encrypted: true });
  });

  it('describes a CSR with its SANs and a valid signature', async () => {
    const out = join(root, 'inspect-csr');
    await mkdir(out);
    await mtlsOk(['csr', 'frank', '--san', 'dns:frank.e2e.example', '--out', out], { cwd: root });
    const r = await mtlsJson(['inspect', join(out, 'frank.csr'), '--json'], { cwd: root });
    expect(r.code).toBe(0);
    const j = r.json as InspectJson;
    expect(j.files[0]!.objects[0]).toMatchObject({
      kind: 'csr',
      signatureValid: true,
      subjectAltNames: ['DNS:frank.e2e.example'],
    });
  });

  it('--role flags a certificate used in the wrong role with exit 1', async () => {
    const r = await mtlsJson(['inspect', '--role', 'client', pki.server.cert, '--json'], { cwd: root });
    expect(r.code).toBe(1);
    expect((r.json as InspectJson).ok).toBe(false);
  });
});

interface VerifyJson {
  ok: boolean;
  reasons?: { reason: string }[];
}

const reasonsOf = (j: unknown): string[] => ((j as VerifyJson).reasons ?? []).map((x) => x.reason);

describe('verify', () => {
  it('accepts a client certificate for client use (leaf + --untrusted chain) and a server chain by name', async () => {
    const c = await mtlsJson(
      [
        'verify',
        pki.client.cert,
        '--ca',
        pki.client.ca,
        '--untrusted',
        pki.client.chain,
        '--purpose',
        'client',
        '--json',
      ],
      { cwd: root },
    );
    expect(c.code).toBe(0);
    expect(c.json).toMatchObject({ ok: true });
    const s = await mtls(
      ['verify', pki.server.chain, '--ca', pki.server.ca, '--purpose', 'server', '--name', 'localhost'],
      {
        cwd: root,
      },
    );
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^OK/);
  });

  it('rejects an expired certificate: reason expired (short ttl, --at later)', async () => {
    const out = join(root, 'short');
    await mkdir(out);
    const l = await issue(pki.clientCa, out, 'client', 'brief', { ttl: '2m' });
    const now = await mtls(['verify', l.chain, '--ca', l.ca, '--purpose', 'client'], { cwd: root });
    expect(now.code).toBe(0);
    const later = new Date(Date.now() + 3_600_000).toISOString();
    const r = await mtlsJson(
      ['verify', l.chain, '--ca', l.ca, '--purpose', 'client', '--at', later, '--json'],
      {
        cwd: root,
      },
    );
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ ok: false });
    expect(reasonsOf(r.json)).toContain('expired');
  });

  it('rejects a server certificate for client use: reason wrong_eku', async () => {
    const r = await mtlsJson(
      ['verify', pki.serverAsClient.chain, '--ca', pki.clientCa.bundle, '--purpose', 'client', '--json'],
      {
        cwd: root,
      },
    );
    expect(r.code).toBe(1);
    expect(reasonsOf(r.json)).toEqual(['wrong_eku']);
  });

  it('rejects a certificate from another CA: the chain up to its own root is unknown_ca', async () => {
    // The whole chain, root included: it ends at a self-signed root that is not trusted.
    const r = await mtlsJson(
      [
        'verify',
        pki.client.chain,
        '--untrusted',
        pki.clientCa.rootCert,
        '--ca',
        pki.serverCa.bundle,
        '--json',
      ],
      { cwd: root },
    );
    expect(r.code).toBe(1);
    expect(reasonsOf(r.json)).toContain('unknown_ca');
    // Leaf + intermediate (what a peer sends) against the other CA's bundle: the root is what is missing.
    const sent = await mtlsJson(['verify', pki.client.chain, '--ca', pki.serverCa.bundle, '--json'], {
      cwd: root,
    });
    expect(sent.code).toBe(1);
    expect(reasonsOf(sent.json)).toEqual(['unknown_ca']);
  });

  it('rejects an untrusted root on its own: self_signed', async () => {
    const r = await mtlsJson(['verify', pki.clientCa.rootCert, '--ca', pki.serverCa.bundle, '--json'], {
      cwd: root,
    });
    expect(r.code).toBe(1);
    expect(reasonsOf(r.json)).toContain('self_signed');
  });

  it('rejects a name that does not match: name_mismatch', async () => {
    const n = await mtlsJson(
      ['verify', pki.server.chain, '--ca', pki.server.ca, '--name', 'evil.example', '--json'],
      {
        cwd: root,
      },
    );
    expect(n.code).toBe(1);
    expect(reasonsOf(n.json)).toContain('name_mismatch');
  });

  it('says missing_intermediate when only the leaf is given', async () => {
    const r = await mtlsJson(['verify', pki.client.cert, '--ca', pki.client.ca, '--json'], { cwd: root });
    expect(r.code).toBe(1);
    expect(reasonsOf(r.json)).toContain('missing_intermediate');
  });
});
