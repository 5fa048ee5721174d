// The CA service through the CLI, as an operator and a workload use it: ca token → enroll (root
// pinned by fingerprint) → renew (same key, then a new key) → ca list → revoke → renew refused →
// ca audit verify, which also catches a tampered record.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt, errorCode, mtls, mtlsJson } from '../support/cli.js';
import { openssl } from '../support/openssl.js';
import { initCa } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let caDir: string;
let ca: CaService;
let out: string;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('mtls-e2e-ca-cli-');
  caDir = (await initCa(root, 'ca')).dir;
  out = join(root, 'workload');
  ca = await startCaService(caDir);
}, 60_000);

afterAll(async () => {
  await ca?.stop();
  await removeTempDir(root);
});

const run = (args: string[]) => mtlsJson([...args, '--json'], { cwd: root });

describe('CA client commands', () => {
  let serial = '';

  it('ca token → enroll with the root pinned by fingerprint: key generated locally, openssl accepts the chain', async () => {
    const t = await run([
      'ca',
      'token',
      'dns:cli.internal',
      '--profile',
      'server',
      '--ca-url',
      ca.mtlsUrl,
      '--dir',
      caDir,
    ]);
    expect(t.code, t.stderr).toBe(0);
    const token = (t.json as { token: string }).token;
    expect(token).toMatch(/^mtls_/);
    const e = await run([
      'enroll',
      '--ca-url',
      ca.publicUrl,
      '--token',
      token,
      '--root-fingerprint',
      ca.rootFingerprint,
      '--roots-url',
      `${ca.httpUrl}/v1/roots`,
      '--name',
      'cli',
      '--out',
      out,
    ]);
    expect(e.code, e.stdout + e.stderr).toBe(0);
    serial = (e.json as { serial: string }).serial;
    const chain = join(out, 'cli.chain.pem');
    const v = await openssl([
      'verify',
      '-CAfile',
      join(out, 'ca.pem'),
      '-untrusted',
      chain,
      '-purpose',
      'sslserver',
      chain,
    ]);
    expect(v.stdout).toContain(': OK');
    const san = await openssl(['x509', '-in', join(out, 'cli.crt'), '-noout', '-ext', 'subjectAltName']);
    expect(san.stdout).toContain('DNS:cli.internal');
  });

  it('enroll refuses a root whose fingerprint does not match, and writes nothing', async () => {
    const t = await run(['ca', 'token', 'dns:other.internal', '--ca-url', ca.mtlsUrl, '--dir', caDir]);
    const token = (t.json as { token: string }).token;
    const wrong = 'AA:'.repeat(31) + 'AA';
    const e = await mtls(
      [
        'enroll',
        '--ca-url',
        ca.publicUrl,
        '--token',
        token,
        '--root-fingerprint',
        wrong,
        '--roots-url',
        `${ca.httpUrl}/v1/roots`,
        '--name',
        'other',
        '--out',
        join(root, 'nothing'),
      ],
      { cwd: root },
    );
    expect(e.code).toBe(1);
    expect(errorCode(e)).toBe('MTLS_CA_ROOT_MISMATCH');
    expect(() => readFileSync(join(root, 'nothing', 'other.key'))).toThrow();
  });

  it('renews a server certificate in place (no client certificate needed): same key, then with --rekey a new key', async () => {
    const keyBefore = readFileSync(join(out, 'cli.key'), 'utf8');
    const r = await run([
      'renew',
      '--ca-url',
      ca.publicUrl,
      '--cert',
      join(out, 'cli.chain.pem'),
      '--key',
      join(out, 'cli.key'),
      '--ca-file',
      join(out, 'ca.pem'),
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const renewed = (r.json as { serial: string }).serial;
    expect(renewed).not.toBe(serial);
    expect(readFileSync(join(out, 'cli.key'), 'utf8')).toBe(keyBefore);
    const k = await run([
      'renew',
      '--ca-url',
      ca.publicUrl,
      '--cert',
      join(out, 'cli.chain.pem'),
      '--key',
      join(out, 'cli.key'),
      '--ca-file',
      join(out, 'ca.pem'),
      '--rekey',
    ]);
    expect(k.code, k.stdout + k.stderr).toBe(0);
    expect(readFileSync(join(out, 'cli.key'), 'utf8')).not.toBe(keyBefore);
    const match = await openssl(['x509', '-in', join(out, 'cli.crt'), '-noout', '-pubkey']);
    const pub = await openssl(['pkey', '-in', join(out, 'cli.key'), '-pubout']);
    expect(match.stdout).toBe(pub.stdout);
    serial = (k.json as { serial: string }).serial;
  });

  it('ca list shows the inventory; revoke; the revoked certificate cannot renew', async () => {
    const l = await run([
      'ca',
      'list',
      '--ca-url',
      ca.mtlsUrl,
      '--dir',
      caDir,
      '--identity',
      'dns:cli.internal',
    ]);
    expect(l.code).toBe(0);
    expect((l.json as { certificates: { serial: string }[] }).certificates.map((c) => c.serial)).toContain(
      serial,
    );
    const rv = await run([
      'revoke',
      serial,
      '--reason',
      'keyCompromise',
      '--ca-url',
      ca.mtlsUrl,
      '--dir',
      caDir,
    ]);
    expect(rv.code, rv.stdout + rv.stderr).toBe(0);
    const revokedList = await run(['ca', 'list', '--ca-url', ca.mtlsUrl, '--dir', caDir, '--revoked']);
    expect(
      (revokedList.json as { certificates: { serial: string }[] }).certificates.map((c) => c.serial),
    ).toContain(serial);
    const again = await mtls(
      [
        'renew',
        '--ca-url',
        ca.publicUrl,
        '--cert',
        join(out, 'cli.chain.pem'),
        '--key',
        join(out, 'cli.key'),
        '--ca-file',
        join(out, 'ca.pem'),
      ],
      { cwd: root },
    );
    expect(again.code).toBe(1);
    expect(errorCode(again)).toBe('MTLS_CA_REVOKED');
    expect(again.stderr).toMatch(/fix: /);
  });

  it('a workload certificate of this CA gets through TLS on the admin listener but is refused as not an admin', async () => {
    const t = await run([
      'ca',
      'token',
      'dns:peer.internal',
      '--profile',
      'peer',
      '--ca-url',
      ca.mtlsUrl,
      '--dir',
      caDir,
    ]);
    const token = (t.json as { token: string }).token;
    const e = await run([
      'enroll',
      '--ca-url',
      ca.publicUrl,
      '--token',
      token,
      '--ca-file',
      join(caDir, 'ca.pem'),
      '--name',
      'peer',
      '--out',
      out,
    ]);
    expect(e.code, e.stdout + e.stderr).toBe(0);
    const r = await mtls(
      [
        'ca',
        'list',
        '--ca-url',
        ca.mtlsUrl,
        '--ca-file',
        join(caDir, 'ca.pem'),
        '--cert',
        join(out, 'peer.chain.pem'),
        '--key',
        join(out, 'peer.key'),
      ],
      { cwd: root },
    );
    expect(r.code).toBe(1);
    expect(errorCode(r)).toBe('MTLS_CA_NOT_ADMIN');
    // A server-only certificate cannot even complete the handshake there (no clientAuth).
    const s = await mtls(
      [
        'ca',
        'list',
        '--ca-url',
        ca.mtlsUrl,
        '--ca-file',
        join(caDir, 'ca.pem'),
        '--cert',
        join(out, 'cli.chain.pem'),
        '--key',
        join(out, 'cli.key'),
      ],
      { cwd: root },
    );
    expect(errorCode(s)).toBe('MTLS_CA_TLS');
  });

  it('ca audit verify: the chain verifies, and a modified record is found', async () => {
    const ok = await run(['ca', 'audit', 'verify', '--dir', caDir]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect((ok.json as { count: number }).count).toBeGreaterThan(5);
    await ca.stop();
    const db = new Database(join(caDir, 'ca.db'));
    db.prepare("UPDATE audit SET actor = 'someone-else' WHERE seq = 2").run();
    db.close();
    const bad = await run(['ca', 'audit', 'verify', '--dir', caDir]);
    expect(bad.code).toBe(1);
    expect(bad.json).toMatchObject({ ok: false, seq: 2, problem: 'hash_mismatch' });
  });
});
