// Revocation reaches a real peer: nginx with ssl_crl from the CA's /v1/crl/chain (the intermediate's
// CRL plus the root's, since nginx checks a CRL for every CA in the chain) refuses a revoked client
// certificate and still accepts a live one.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminCredential, call, startCaService, type CaService } from '../support/ca-service.js';
import { assertBuilt, mtlsOk } from '../support/cli.js';
import { curl } from '../support/curl.js';
import { openssl } from '../support/openssl.js';
import { startNginx, type Peer } from '../support/peers.js';
import { initCa } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let caDir: string;
let ca: CaService;
let nginx: Peer | undefined;

async function enrollClient(name: string): Promise<{ chain: string; key: string; serial: string }> {
  const bundle = join(caDir, 'ca.pem');
  const t = await call(ca.mtlsUrl, {
    path: '/v1/tokens',
    body: { profile: 'client', sans: [`dns:${name}.internal`] },
    ca: bundle,
    client: adminCredential(caDir),
  });
  expect(t.status, t.body.toString()).toBe(200);
  const out = join(root, name);
  await mtlsOk(['csr', name, '--san', `dns:${name}.internal`, '--out', out], { cwd: root });
  const r = await call(ca.publicUrl, {
    path: '/v1/sign',
    body: { token: t.json().token, csr: readFileSync(join(out, `${name}.csr`), 'utf8') },
    ca: bundle,
  });
  expect(r.status, r.body.toString()).toBe(200);
  const chain = join(out, `${name}.chain.pem`);
  writeFileSync(chain, r.json().chain as string);
  return { chain, key: join(out, `${name}.key`), serial: r.json().serial as string };
}

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('mtls-e2e-crl-nginx-');
  caDir = (await initCa(root, 'ca')).dir;
  ca = await startCaService(caDir);
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await ca?.stop();
  await removeTempDir(root);
});

describe('revocation through the CRL into nginx', () => {
  it('nginx with ssl_crl from /v1/crl/chain refuses the revoked client and accepts the live one', async () => {
    const live = await enrollClient('live');
    const revoked = await enrollClient('gone');
    const rv = await call(ca.mtlsUrl, {
      path: '/v1/revoke',
      body: { serial: revoked.serial, reason: 'keyCompromise' },
      ca: join(caDir, 'ca.pem'),
      client: adminCredential(caDir),
    });
    expect(rv.status).toBe(200);
    const crl = join(root, 'chain.crl.pem');
    writeFileSync(crl, (await call(ca.httpUrl, { path: '/v1/crl/chain' })).body);
    // Both CRLs verify: the intermediate's against the intermediate, the root's against the root.
    const [interCrl, rootCrl] = readFileSync(crl, 'latin1').split(/(?<=-----END X509 CRL-----\n)/);
    writeFileSync(join(root, 'inter.crl'), interCrl!);
    writeFileSync(join(root, 'root.crl'), rootCrl!);
    for (const [file, issuer] of [
      ['inter.crl', 'intermediate.crt'],
      ['root.crl', 'root.crt'],
    ] as const) {
      const v = await openssl(['crl', '-in', join(root, file), '-CAfile', join(caDir, issuer), '-noout']);
      expect(v.stderr + v.stdout, file).toMatch(/verify OK/);
    }

    await mtlsOk(['issue', 'server', 'localhost', '--dir', caDir, '--out', join(root, 'srv')], { cwd: root });
    nginx = await startNginx({
      prefix: join(root, 'nginx'),
      certChain: join(root, 'srv', 'localhost.chain.pem'),
      key: join(root, 'srv', 'localhost.key'),
      clientCa: join(caDir, 'ca.pem'),
      crl,
    });
    const ok = await curl({
      port: nginx.port,
      cacert: join(caDir, 'ca.pem'),
      cert: live.chain,
      key: live.key,
    });
    expect(ok.status, ok.stderr).toBe(200);
    const refused = await curl({
      port: nginx.port,
      cacert: join(caDir, 'ca.pem'),
      cert: revoked.chain,
      key: revoked.key,
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toContain('The SSL certificate error');
    expect(nginx.log()).toMatch(/certificate revoked/);
  });
});
