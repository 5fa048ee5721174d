// Bad input through the real CLI: each case exits non-zero with its MTLS_* code and a fix line
// (and the same in --json), and leaves the CA directory and the output directory exactly as they were.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, errorCode, mtls, mtlsOk, type RunResult } from '../support/cli.js';
import { initCa, issue, type CaPaths } from '../support/pki.js';
import { makeTempDir, removeTempDir, snapshotDir } from '../support/tmp.js';

let root: string;
let ca: CaPaths;
let spiffeCa: CaPaths;
let out: string;
let inputs: string;
let validCsrPem: string;

/** DER of the first PEM block. */
function pemToDer(pem: string): Buffer {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(b64, 'base64');
}

function derToPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('bad-input');
  ca = await initCa(root, 'ca');
  spiffeCa = await initCa(root, 'spiffe-ca', { trustDomain: 'good.example' });
  out = join(root, 'out');
  inputs = join(root, 'inputs');
  await Promise.all([mkdir(out), mkdir(inputs)]);
  // Something already in the output directory, so "nothing written" also means "nothing replaced".
  await issue(ca, out, 'client', 'existing');
  await mtlsOk(['csr', 'valid', '--san', 'dns:valid.e2e.example', '--out', inputs], { cwd: inputs });
  validCsrPem = await readFile(join(inputs, 'valid.csr'), 'utf8');
});

afterAll(async () => {
  await removeTempDir(root);
});

interface Expectation {
  code: string;
  /** 1 problem found, 2 usage error. */
  exit: 1 | 2;
  env?: Record<string, string | undefined>;
}

/**
 * Runs the command twice (human and --json); both must fail with `code`, say how to fix it, and
 * leave the CA dirs, the output dir and the inputs untouched.
 */
async function expectRefused(args: string[], want: Expectation): Promise<RunResult> {
  const before = await snapshotDir(root);
  const r = await mtls(args, { cwd: root, env: want.env ?? {} });
  expect.soft(errorCode(r), r.stderr).toBe(want.code);
  expect.soft(r.stderr).toMatch(/^\s*fix: \S.+/m);
  expect.soft(r.code).toBe(want.exit);
  const j = await mtls([...args, '--json'], { cwd: root, env: want.env ?? {} });
  expect.soft(j.code).toBe(want.exit);
  const parsed = JSON.parse(j.stdout) as {
    ok: boolean;
    error: { code: string; message: string; fix: string };
  };
  expect.soft(parsed.ok).toBe(false);
  expect.soft(parsed.error.code).toBe(want.code);
  expect.soft(parsed.error.message.length).toBeGreaterThan(0);
  expect.soft(parsed.error.fix.length).toBeGreaterThan(0);
  expect(await snapshotDir(root)).toEqual(before);
  return r;
}

const signArgs = (csr: string, profile = 'client'): string[] => [
  'ca',
  'sign',
  csr,
  '--profile',
  profile,
  '--dir',
  ca.dir,
  '--out',
  out,
];

describe('bad input leaves nothing behind', () => {
  it('malformed PEM (BEGIN without END, bad base64): MTLS_PKI_BAD_PEM', async () => {
    const f = join(inputs, 'cut.csr');
    await writeFile(f, validCsrPem.slice(0, validCsrPem.indexOf('-----END')));
    await expectRefused(signArgs(f), { code: 'MTLS_PKI_BAD_PEM', exit: 1 });
    const g = join(inputs, 'edited.csr');
    await writeFile(g, validCsrPem.replace(/\n([A-Za-z0-9+/]{10})/, '\n$1!!*'));
    await expectRefused(signArgs(g), { code: 'MTLS_PKI_BAD_PEM', exit: 1 });
  });

  it('DER garbage as a CSR: MTLS_PKI_BAD_CSR; mtls inspect says MTLS_PKI_BAD_DER', async () => {
    const f = join(inputs, 'garbage.der');
    const junk = randomBytes(300);
    junk[0] = 0x30; // looks like a SEQUENCE, then nonsense
    await writeFile(f, junk);
    await expectRefused(signArgs(f), { code: 'MTLS_PKI_BAD_CSR', exit: 1 });
    const i = await mtls(['inspect', f, '--json'], { cwd: root });
    expect(i.code).toBe(1);
    const j = JSON.parse(i.stdout) as { ok: boolean; files: { error?: { code: string; fix?: string } }[] };
    expect(j.ok).toBe(false);
    expect(j.files[0]?.error?.code).toBe('MTLS_PKI_BAD_DER');
    expect(j.files[0]?.error?.fix).toBeTruthy();
  });

  it('a truncated CSR (valid PEM, half the DER): MTLS_PKI_BAD_CSR', async () => {
    const der = pemToDer(validCsrPem);
    const f = join(inputs, 'truncated.csr');
    await writeFile(f, derToPem('CERTIFICATE REQUEST', der.subarray(0, Math.floor(der.length / 2))));
    await expectRefused(signArgs(f), { code: 'MTLS_PKI_BAD_CSR', exit: 1 });
  });

  it('a CSR whose signature does not verify (one byte flipped): MTLS_PKI_CSR_SIGNATURE', async () => {
    const der = Buffer.from(pemToDer(validCsrPem));
    der[der.length - 1]! ^= 0x01; // last byte of the signature value
    const f = join(inputs, 'tampered.csr');
    await writeFile(f, derToPem('CERTIFICATE REQUEST', der));
    await expectRefused(signArgs(f), { code: 'MTLS_PKI_CSR_SIGNATURE', exit: 1 });
    // inspect reports it too, with exit 1.
    const i = await mtls(['inspect', f, '--json'], { cwd: root });
    expect(i.code).toBe(1);
    const j = JSON.parse(i.stdout) as { files: { objects: { kind: string; signatureValid: boolean }[] }[] };
    expect(j.files[0]?.objects[0]).toMatchObject({ kind: 'csr', signatureValid: false });
  });

  it('a certificate where a CSR is expected: MTLS_PKI_WRONG_OBJECT', async () => {
    await expectRefused(signArgs(join(out, 'existing.crt')), { code: 'MTLS_PKI_WRONG_OBJECT', exit: 1 });
  });

  it('the wrong CA passphrase (issue and ca sign): MTLS_PKI_BAD_PASSPHRASE', async () => {
    const env = { MTLS_CA_PASSPHRASE: 'not the passphrase the CA was made with' };
    await expectRefused(['issue', 'client', 'bob', '--dir', ca.dir, '--out', out], {
      code: 'MTLS_PKI_BAD_PASSPHRASE',
      exit: 1,
      env,
    });
    await expectRefused(signArgs(join(inputs, 'valid.csr')), {
      code: 'MTLS_PKI_BAD_PASSPHRASE',
      exit: 1,
      env,
    });
    const pf = join(root, 'wrong-pass.txt');
    await writeFile(pf, 'also wrong\n');
    await expectRefused(['issue', 'client', 'bob', '--dir', ca.dir, '--out', out, '--passphrase-file', pf], {
      code: 'MTLS_PKI_BAD_PASSPHRASE',
      exit: 1,
      env: { MTLS_CA_PASSPHRASE: undefined },
    });
  });

  it('no CA passphrase at all: MTLS_CA_PASSPHRASE_REQUIRED', async () => {
    await expectRefused(['issue', 'client', 'bob', '--dir', ca.dir, '--out', out], {
      code: 'MTLS_CA_PASSPHRASE_REQUIRED',
      exit: 2,
      env: { MTLS_CA_PASSPHRASE: undefined },
    });
  });

  it.each([
    ['a DNS name with invalid characters', 'dns:bad_name!.example'],
    ['an IP address out of range', 'ip:300.1.2.3'],
    ['a SAN without a type', 'just-a-name'],
    ['an unknown SAN type', 'x400:whatever'],
  ])('an invalid SAN (%s): MTLS_PKI_BAD_SAN', async (_what, san) => {
    await expectRefused(['issue', 'server', 'api.e2e.example', '--san', san, '--dir', ca.dir, '--out', out], {
      code: 'MTLS_PKI_BAD_SAN',
      exit: 2,
    });
  });

  it('a wildcard SAN on a client certificate: MTLS_PKI_BAD_SAN', async () => {
    await expectRefused(
      ['issue', 'client', 'x', '--san', 'dns:*.e2e.example', '--dir', ca.dir, '--out', out],
      {
        code: 'MTLS_PKI_BAD_SAN',
        exit: 2,
      },
    );
  });

  it.each(['admin', 'intermediate', 'root'])(
    'an unknown or non-issuable profile "%s": MTLS_PKI_UNKNOWN_PROFILE',
    async (p) => {
      await expectRefused(['issue', p, 'x.e2e.example', '--dir', ca.dir, '--out', out], {
        code: 'MTLS_PKI_UNKNOWN_PROFILE',
        exit: 2,
      });
      await expectRefused(signArgs(join(inputs, 'valid.csr'), p), {
        code: 'MTLS_PKI_UNKNOWN_PROFILE',
        exit: 2,
      });
    },
  );

  it('a bad --ttl: MTLS_CLI_BAD_DURATION', async () => {
    await expectRefused(['issue', 'client', 'bob', '--ttl', '5 fortnights', '--dir', ca.dir, '--out', out], {
      code: 'MTLS_CLI_BAD_DURATION',
      exit: 2,
    });
  });

  it('a SPIFFE ID outside the trust domain of the CA: MTLS_PKI_PROFILE_VIOLATION', async () => {
    await expectRefused(
      ['issue', 'spiffe', 'spiffe://evil.example/sa/x', '--dir', spiffeCa.dir, '--out', out],
      {
        code: 'MTLS_PKI_PROFILE_VIOLATION',
        exit: 2,
      },
    );
  });

  it('a spiffe name that is not a SPIFFE ID: MTLS_PKI_BAD_SPIFFE_ID', async () => {
    await expectRefused(['issue', 'spiffe', 'worker', '--dir', spiffeCa.dir, '--out', out], {
      code: 'MTLS_PKI_BAD_SPIFFE_ID',
      exit: 2,
    });
  });

  it('an output file that already exists: MTLS_FILE_EXISTS, the old files kept', async () => {
    await expectRefused(['issue', 'client', 'existing', '--dir', ca.dir, '--out', out], {
      code: 'MTLS_FILE_EXISTS',
      exit: 1,
    });
  });

  it('a CA directory that does not exist: MTLS_CA_NOT_FOUND', async () => {
    await expectRefused(['issue', 'client', 'bob', '--dir', join(root, 'no-such-ca'), '--out', out], {
      code: 'MTLS_CA_NOT_FOUND',
      exit: 1,
    });
  });

  it('bad input with --out naming a new directory does not create it', async () => {
    await expectRefused(
      ['issue', 'server', 'api', '--san', 'dns:-bad-', '--dir', ca.dir, '--out', join(out, 'new')],
      {
        code: 'MTLS_PKI_BAD_SAN',
        exit: 2,
      },
    );
  });
});
