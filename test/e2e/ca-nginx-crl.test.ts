// Revocation reaches a real peer: nginx with ssl_crl from the CA's /v1/crl/chain (the intermediate's
// CRL plus the root's, since nginx checks a CRL for every CA in the chain) refuses a revoked client
// certificate and still accepts a live one.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  enrollClient as enroll,
  revokeSerial,
  startCaService,
  type CaService,
} from '../support/ca-service.js';
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

const enrollClient = (name: string): ReturnType<typeof enroll> => enroll(ca, root, name);

describe('revocation through the CRL into nginx', () => {
  it('nginx with ssl_crl from /v1/crl/chain refuses the revoked client and accepts the live one', async () => {
    const live = await enrollClient('live');
    const revoked = await enrollClient('gone');
    await revokeSerial(ca, revoked.serial);
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
