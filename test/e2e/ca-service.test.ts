// The online CA as a real process: enrollment with one-time tokens, renewal over mTLS, revocation
// published in the CRL, admin-only endpoints, audit chain, and bad input answered with codes.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  adminCredential,
  call,
  startCaService,
  type CaService,
  type ClientCredential,
} from '../support/ca-service.js';
import { assertBuilt, mtlsOk } from '../support/cli.js';
import { openssl } from '../support/openssl.js';
import { initCa } from '../support/pki.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let ca: CaService;
let caDir: string;
let bundle: string;
let admin: ClientCredential;

async function newCsr(name: string, sans?: string): Promise<{ csr: string; key: string }> {
  const out = join(root, 'csr', name);
  await mtlsOk(['csr', name, '--out', out, ...(sans ? ['--san', sans] : [])], { cwd: root });
  return { csr: join(out, `${name}.csr`), key: join(out, `${name}.key`) };
}

async function token(grant: Record<string, unknown>): Promise<string> {
  const r = await call(ca.mtlsUrl, { path: '/v1/tokens', body: grant, ca: bundle, client: admin });
  expect(r.status, r.body.toString()).toBe(200);
  return r.json().token as string;
}

async function enroll(
  name: string,
  sans: string,
): Promise<ClientCredential & { serial: string; chain: string }> {
  const t = await token({ profile: 'peer', sans: sans.split(',') });
  const { csr, key } = await newCsr(name, sans);
  const r = await call(ca.publicUrl, {
    path: '/v1/sign',
    body: { token: t, csr: readFileSync(csr, 'utf8') },
    ca: bundle,
  });
  expect(r.status, r.body.toString()).toBe(200);
  const j = r.json();
  const chain = join(root, `${name}.chain.pem`);
  writeFileSync(chain, j.chain as string);
  return { cert: chain, key, chain, serial: j.serial as string };
}

let pg: PostgresServer | undefined;

afterAll(async () => {
  await pg?.stop();
});

describe.each(['sqlite', 'postgres'] as const)('mtls ca serve on %s', (backend) => {
  beforeAll(async () => {
    assertBuilt();
    root = await makeTempDir(`mtls-e2e-ca-${backend}-`);
    const paths = await initCa(root, 'ca');
    caDir = paths.dir;
    bundle = join(caDir, 'ca.pem');
    const args: string[] = [];
    if (backend === 'postgres') {
      pg ??= await startPostgres();
      args.push('--db', await pg.createDatabase('ca_e2e'));
    }
    ca = await startCaService(caDir, args);
    admin = adminCredential(caDir);
  }, 90_000);

  afterAll(async () => {
    await ca?.stop();
    await removeTempDir(root);
  });

  it('answers health, readiness and the trust bundle on every listener', async () => {
    expect((await call(ca.publicUrl, { path: '/v1/health', ca: bundle })).status).toBe(200);
    const ready = await call(ca.publicUrl, { path: '/v1/ready', ca: bundle });
    expect(ready.status).toBe(200);
    expect(ready.json().store).toBe(backend);
    const roots = await call(ca.httpUrl, { path: '/v1/roots' });
    expect(roots.body.toString()).toBe(readFileSync(bundle, 'utf8'));
  });

  it('enrolls with a one-time token: the key stays local, openssl accepts the certificate, the token cannot be reused', async () => {
    const t = await token({ profile: 'peer', sans: ['dns:api.internal'] });
    const { csr } = await newCsr('api', 'dns:api.internal');
    const body = { token: t, csr: readFileSync(csr, 'utf8') };
    const r = await call(ca.publicUrl, { path: '/v1/sign', body, ca: bundle });
    expect(r.status, r.body.toString()).toBe(200);
    const chain = join(root, 'api.chain.pem');
    writeFileSync(chain, r.json().chain as string);
    const v = await openssl([
      'verify',
      '-CAfile',
      bundle,
      '-untrusted',
      chain,
      '-purpose',
      'sslserver',
      chain,
    ]);
    expect(v.stdout).toContain(': OK');
    const again = await call(ca.publicUrl, { path: '/v1/sign', body, ca: bundle });
    expect(again.status).toBe(409);
    expect(again.json().code).toBe('MTLS_CA_TOKEN_USED');
    expect(again.json().requestId).toEqual(expect.any(String));
  });

  it('refuses names outside the token, and unknown tokens', async () => {
    const t = await token({ profile: 'client', sans: ['dns:*.svc.example.org'] });
    const { csr } = await newCsr('evil', 'dns:admin.example.org');
    const r = await call(ca.publicUrl, {
      path: '/v1/sign',
      body: { token: t, csr: readFileSync(csr, 'utf8') },
      ca: bundle,
    });
    expect(r.status).toBe(403);
    expect(r.json().code).toBe('MTLS_CA_NAME_NOT_ALLOWED');
    const unknown = await call(ca.publicUrl, {
      path: '/v1/sign',
      body: { token: `mtls_AAAAAAAAAAAA.${'B'.repeat(43)}`, csr: readFileSync(csr, 'utf8') },
      ca: bundle,
    });
    expect(unknown.status).toBe(401);
    expect(unknown.json().code).toBe('MTLS_CA_TOKEN_INVALID');
  });

  it('keeps admin endpoints off the public listener and refuses non-admin client certificates', async () => {
    const pub = await call(ca.publicUrl, {
      path: '/v1/tokens',
      body: { profile: 'client', sans: ['dns:x'] },
      ca: bundle,
    });
    expect(pub.status).toBe(404);
    const workload = await enroll('worker', 'dns:worker.internal');
    const r = await call(ca.mtlsUrl, {
      path: '/v1/tokens',
      body: { profile: 'client', sans: ['dns:x'] },
      ca: bundle,
      client: workload,
    });
    expect(r.status).toBe(403);
    expect(r.json().code).toBe('MTLS_CA_NOT_ADMIN');
  });

  it('renews over mTLS with the current certificate (same identity, new serial), optionally with a new key', async () => {
    const w = await enroll('renewer', 'dns:renewer.internal');
    const r = await call(ca.mtlsUrl, { path: '/v1/renew', body: {}, ca: bundle, client: w });
    expect(r.status, r.body.toString()).toBe(200);
    expect(r.json().serial).not.toBe(w.serial);
    // The same lifetime again, not one backdating minute longer per renewal.
    const span = (j: Record<string, unknown>): number =>
      Date.parse(j.notAfter as string) - Date.parse(j.notBefore as string);
    expect(span(r.json())).toBe(24 * 3_600_000 + 60_000);
    const next = join(root, 'renewed.pem');
    writeFileSync(next, r.json().certificate as string);
    const text = await openssl(['x509', '-in', next, '-noout', '-ext', 'subjectAltName']);
    expect(text.stdout).toContain('DNS:renewer.internal');
    const { csr } = await newCsr('renewer2', 'dns:renewer.internal');
    const rekey = await call(ca.mtlsUrl, {
      path: '/v1/renew',
      body: { csr: readFileSync(csr, 'utf8') },
      ca: bundle,
      client: w,
    });
    expect(rekey.status, rekey.body.toString()).toBe(200);
  });

  it('renews without a client certificate only with proof of the current key', async () => {
    const w = await enroll('prover', 'dns:prover.internal');
    const certificate = readFileSync(w.chain, 'utf8');
    const sameKeyCsr = join(root, 'prover-same.csr');
    await mtlsOk(['csr', 'prover-same', '--key', w.key, '--san', 'dns:prover.internal', '--out', root], {
      cwd: root,
    });
    const ok = await call(ca.publicUrl, {
      path: '/v1/renew',
      body: { certificate, csr: readFileSync(sameKeyCsr, 'utf8') },
      ca: bundle,
    });
    expect(ok.status, ok.body.toString()).toBe(200);
    const { csr: otherKeyCsr } = await newCsr('prover-new', 'dns:prover.internal');
    const noProof = await call(ca.publicUrl, {
      path: '/v1/renew',
      body: { certificate, csr: readFileSync(otherKeyCsr, 'utf8') },
      ca: bundle,
    });
    expect(noProof.status).toBe(400);
    expect(noProof.json().code).toBe('MTLS_CA_BAD_REQUEST');
    const forged = await call(ca.publicUrl, {
      path: '/v1/renew',
      body: {
        certificate,
        csr: readFileSync(otherKeyCsr, 'utf8'),
        proof: Buffer.alloc(64, 1).toString('base64'),
      },
      ca: bundle,
    });
    expect(forged.status).toBe(400);
  });

  it('revokes: the CRL lists the serial and verifies with openssl, and the revoked certificate can never renew', async () => {
    const w = await enroll('victim', 'dns:victim.internal');
    const rv = await call(ca.mtlsUrl, {
      path: '/v1/revoke',
      body: { serial: w.serial, reason: 'keyCompromise' },
      ca: bundle,
      client: admin,
    });
    expect(rv.status, rv.body.toString()).toBe(200);
    const crl = await call(ca.httpUrl, { path: '/v1/crl', headers: { accept: 'application/x-pem-file' } });
    const crlFile = join(root, 'ca.crl.pem');
    writeFileSync(crlFile, crl.body);
    const inter = join(caDir, 'intermediate.crt');
    const checked = await openssl(['crl', '-in', crlFile, '-CAfile', inter, '-noout', '-text']);
    expect(checked.stderr + checked.stdout).toMatch(/verify OK/i);
    expect(checked.stdout.toLowerCase()).toContain(w.serial.toUpperCase().toLowerCase().slice(0, 8));
    const renew = await call(ca.mtlsUrl, { path: '/v1/renew', body: {}, ca: bundle, client: w });
    expect(renew.status).toBe(403);
    expect(renew.json().code).toBe('MTLS_CA_REVOKED');
    const twice = await call(ca.mtlsUrl, {
      path: '/v1/revoke',
      body: { serial: w.serial },
      ca: bundle,
      client: admin,
    });
    expect(twice.json().code).toBe('MTLS_CA_ALREADY_REVOKED');
    const feed = await call(ca.publicUrl, { path: '/v1/revocations?since=0', ca: bundle });
    expect((feed.json().events as { serial: string }[]).map((e) => e.serial)).toContain(w.serial);
  });

  it('answers OCSP for openssl: good for a live certificate, revoked (with reason) after revocation, over HTTP', async () => {
    const w = await enroll('ocsp-subject', 'dns:ocsp.internal');
    const leaf = join(root, 'ocsp-leaf.pem');
    writeFileSync(leaf, readFileSync(w.chain, 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0]!);
    const inter = join(caDir, 'intermediate.crt');
    const ask = (url: string): Promise<{ stdout: string; stderr: string }> =>
      openssl([
        'ocsp',
        '-issuer',
        inter,
        '-cert',
        leaf,
        '-CAfile',
        bundle,
        '-url',
        `${url}/ocsp`,
        '-resp_text',
      ]);
    const good = await ask(ca.httpUrl);
    expect(good.stderr + good.stdout).toContain('Response verify OK');
    expect(good.stdout).toMatch(/ocsp-leaf\.pem: good/);
    const aia = await openssl(['x509', '-in', leaf, '-noout', '-ocsp_uri']);
    expect(aia.stdout.trim()).toBe(`${ca.httpUrl}/ocsp`);
    const rv = await call(ca.mtlsUrl, {
      path: '/v1/revoke',
      body: { serial: w.serial, reason: 'superseded' },
      ca: bundle,
      client: admin,
    });
    expect(rv.status).toBe(200);
    const revoked = await ask(ca.httpUrl);
    expect(revoked.stderr + revoked.stdout).toContain('Response verify OK');
    expect(revoked.stdout).toMatch(/ocsp-leaf\.pem: revoked/);
    expect(revoked.stdout).toContain('Reason: superseded');
    // A cached "good" answer without nonce is dropped on revocation too.
    const noNonce = await openssl([
      'ocsp',
      '-issuer',
      inter,
      '-cert',
      leaf,
      '-CAfile',
      bundle,
      '-url',
      `${ca.httpUrl}/ocsp`,
      '-no_nonce',
    ]);
    expect(noNonce.stdout).toMatch(/revoked/);
    const garbage = await call(ca.httpUrl, {
      path: '/ocsp',
      rawBody: Buffer.from('garbage'),
      headers: { 'content-type': 'application/ocsp-request' },
    });
    expect(garbage.status).toBe(200);
    expect(garbage.body.equals(Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x01]))).toBe(true);
  });

  it('answers bad input with a 4xx and a code: not JSON, missing fields, a bad CSR, an oversized body', async () => {
    const notJson = await call(ca.publicUrl, {
      path: '/v1/sign',
      rawBody: '{not json',
      headers: { 'content-type': 'application/json' },
      ca: bundle,
    });
    expect(notJson.status).toBe(400);
    expect(notJson.json().code).toBe('MTLS_CA_BAD_REQUEST');
    const missing = await call(ca.publicUrl, { path: '/v1/sign', body: { token: 'x' }, ca: bundle });
    expect(missing.json().code).toBe('MTLS_CA_BAD_REQUEST');
    const t = await token({ profile: 'client', sans: ['dns:bad.internal'] });
    const badCsr = await call(ca.publicUrl, {
      path: '/v1/sign',
      body: {
        token: t,
        csr: '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n',
      },
      ca: bundle,
    });
    expect(badCsr.status).toBe(400);
    expect(String(badCsr.json().code)).toMatch(/^MTLS_PKI_BAD_(CSR|DER|PEM)$/);
    const huge = await call(ca.publicUrl, {
      path: '/v1/sign',
      body: { token: t, csr: 'x'.repeat(200_000) },
      ca: bundle,
    });
    expect(huge.status).toBe(413);
    expect(huge.json().code).toBe('MTLS_CA_BODY_TOO_LARGE');
  });

  it('refuses an expired token and a CSR whose signature does not verify, storing only the refusal', async () => {
    const before = await call(ca.mtlsUrl, {
      path: '/v1/certificates?limit=10000',
      ca: bundle,
      client: admin,
    });
    const count = (before.json().certificates as unknown[]).length;
    const short = await call(ca.mtlsUrl, {
      path: '/v1/tokens',
      body: { profile: 'client', sans: ['dns:late.internal'], ttl: '1s' },
      ca: bundle,
      client: admin,
    });
    expect(short.status, short.body.toString()).toBe(200);
    const { csr } = await newCsr('late', 'dns:late.internal');
    await new Promise((r) => setTimeout(r, 1200));
    const late = await call(ca.publicUrl, {
      path: '/v1/sign',
      body: { token: short.json().token, csr: readFileSync(csr, 'utf8') },
      ca: bundle,
    });
    expect(late.status).toBe(401);
    expect(late.json().code).toBe('MTLS_CA_TOKEN_EXPIRED');
    // Flip one byte of the CSR's signature: parseable, but it does not verify.
    const t = await token({ profile: 'client', sans: ['dns:late.internal'] });
    const der = Buffer.from(readFileSync(csr, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5]! ^= 0x01;
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const bad = await call(ca.publicUrl, { path: '/v1/sign', body: { token: t, csr: forged }, ca: bundle });
    expect(bad.status).toBe(400);
    expect(bad.json().code).toBe('MTLS_PKI_CSR_SIGNATURE');
    const after = await call(ca.mtlsUrl, { path: '/v1/certificates?limit=10000', ca: bundle, client: admin });
    expect((after.json().certificates as unknown[]).length).toBe(count);
    const audit = await call(ca.mtlsUrl, {
      path: '/v1/audit?since=0&limit=10000',
      ca: bundle,
      client: admin,
    });
    const reasons = (audit.json().records as { reason?: string }[]).map((r) => r.reason);
    expect(reasons).toContain('MTLS_CA_TOKEN_EXPIRED');
    expect(reasons).toContain('MTLS_PKI_CSR_SIGNATURE');
    // The refused requests did not consume the valid token.
    const ok = await call(ca.publicUrl, {
      path: '/v1/sign',
      body: { token: t, csr: readFileSync(csr, 'utf8') },
      ca: bundle,
    });
    expect(ok.status, ok.body.toString()).toBe(200);
  });

  it('lists the inventory and an audit log whose hash chain verifies, with refusals recorded', async () => {
    const list = await call(ca.mtlsUrl, { path: '/v1/certificates?limit=100', ca: bundle, client: admin });
    expect(list.status).toBe(200);
    const certs = list.json().certificates as { identity: string; status: string }[];
    expect(certs.some((c) => c.identity === 'dns:api.internal')).toBe(true);
    expect(certs.some((c) => c.status === 'revoked')).toBe(true);
    const audit = await call(ca.mtlsUrl, { path: '/v1/audit?since=0', ca: bundle, client: admin });
    const records = audit.json().records as {
      seq: number;
      action: string;
      outcome: string;
      reason?: string;
      prevHash: string;
      hash: string;
    }[];
    expect(records.length).toBeGreaterThan(5);
    records.forEach((r, i) => {
      expect(r.seq).toBe(i + 1);
      if (i > 0) expect(r.prevHash).toBe(records[i - 1]!.hash);
    });
    expect(records.some((r) => r.outcome === 'refused' && r.reason === 'MTLS_CA_TOKEN_USED')).toBe(true);
    expect(records.some((r) => r.action === 'certificate.revoke' && r.outcome === 'ok')).toBe(true);
  });

  it('exports Prometheus metrics for issuance, refusals, tokens, OCSP and the CRL', async () => {
    const m = (await call(ca.httpUrl, { path: '/metrics' })).body.toString();
    const value = (re: RegExp): number => Number(re.exec(m)?.[1] ?? 'NaN');
    expect(
      value(/^mtls_ca_certificates_issued_total\{action="issue",profile="peer"\} (\d+)/m),
    ).toBeGreaterThan(3);
    expect(
      value(/^mtls_ca_certificates_issued_total\{action="renew",profile="peer"\} (\d+)/m),
    ).toBeGreaterThan(0);
    expect(
      value(
        /^mtls_ca_requests_refused_total\{action="certificate.issue",reason="MTLS_CA_TOKEN_USED"\} (\d+)/m,
      ),
    ).toBeGreaterThan(0);
    expect(value(/^mtls_ca_tokens_total\{event="created"\} (\d+)/m)).toBeGreaterThan(3);
    expect(value(/^mtls_ca_ocsp_requests_total\{result="signed"\} (\d+)/m)).toBeGreaterThan(0);
    expect(
      value(/^mtls_ca_issuance_duration_seconds_count\{action="issue",profile="peer"\} (\d+)/m),
    ).toBeGreaterThan(3);
    expect(value(/^mtls_ca_crl_number (\d+)/m)).toBeGreaterThan(0);
    expect(m).toMatch(/^mtls_ca_crl_age_seconds \d/m);
  });

  it('stops cleanly on SIGTERM', async () => {
    const other = await startCaService(
      caDir,
      backend === 'postgres' ? ['--db', await pg!.createDatabase('ca_stop')] : [],
    );
    const code = await other.stop('SIGTERM');
    expect({ code, signal: other.proc.signalCode, logs: other.logs().slice(-1500) }).toMatchObject({
      code: 0,
      signal: null,
    });
  });
});
