// nginx with ssl_verify_client on, serving mtlskit's server chain and trusting mtlskit's client CA:
// curl with each client-capable certificate gets in, no certificate or a server certificate does not.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../support/cli.js';
import { curl } from '../support/curl.js';
import { startNginx, type Peer } from '../support/peers.js';
import { createPki, issue, type LeafPaths, type Pki } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let nginx: Peer | undefined;
let strangerClient: LeafPaths;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('nginx');
  pki = await createPki(root);
  // A client certificate from the server CA: valid, but from a CA nginx does not trust for clients.
  strangerClient = await issue(pki.serverCa, join(root, 'server'), 'client', 'stranger');
  nginx = await startNginx({
    prefix: join(root, 'nginx'),
    certChain: pki.server.chain,
    key: pki.server.key,
    clientCa: pki.clientCa.bundle,
    verifyDepth: 2,
  });
});

afterAll(async () => {
  await nginx?.stop();
  await removeTempDir(root);
});

/** curl with this client certificate (its chain file unless `cert` is given) or none. */
async function get(l?: LeafPaths, cert?: string) {
  const logFrom = nginx!.log().length;
  const r = await curl({
    port: nginx!.port,
    cacert: pki.server.ca,
    ...(l ? { cert: cert ?? l.chain, key: l.key } : {}),
  });
  // What nginx logged about this request (at info level it says why it refused a certificate).
  return { ...r, nginxLog: nginx!.log().slice(logFrom) };
}

describe('nginx ssl_verify_client on', () => {
  it.each(['client', 'spiffe', 'peer'] as const)(
    'accepts a %s certificate sent with its chain: 200 ok',
    async (name) => {
      const r = await get(pki[name]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(r.status).toBe(200);
      expect(r.body).toBe('ok');
    },
  );

  it('refuses a request without a client certificate: 400 No required SSL certificate was sent', async () => {
    const r = await get();
    expect(r.exitCode).toBe(0);
    expect(r.status).toBe(400);
    expect(r.body).toContain('No required SSL certificate was sent');
    expect(r.nginxLog).toContain('client sent no required SSL certificate');
  });

  it('refuses a server certificate used as a client certificate: 400 The SSL certificate error', async () => {
    const r = await get(pki.serverAsClient);
    expect(r.status).toBe(400);
    expect(r.body).toContain('The SSL certificate error');
    // The purpose, not the issuer.
    expect(r.nginxLog).toMatch(
      /client SSL certificate verify error: \(26:(unsuitable|unsupported) certificate purpose\)/,
    );
  });

  it('refuses a client certificate from a CA it does not trust', async () => {
    const r = await get(strangerClient);
    expect(r.status).toBe(400);
    expect(r.body).toContain('The SSL certificate error');
    expect(r.nginxLog).toMatch(
      /client SSL certificate verify error: \(20:unable to get local issuer certificate\)/,
    );
  });

  it('refuses a client that sends its leaf without the intermediate (only the root is trusted)', async () => {
    const r = await get(pki.client, pki.client.cert);
    expect(r.status).toBe(400);
    expect(r.body).toContain('The SSL certificate error');
    expect(r.nginxLog).toMatch(
      /client SSL certificate verify error: \(21:unable to verify the first certificate\)/,
    );
  });

  it("serves a chain curl verifies with ca.pem alone, and curl refuses it with the client CA's bundle", async () => {
    const ok = await get(pki.client);
    expect(ok.status).toBe(200);
    const wrongTrust = await curl({
      port: nginx!.port,
      cacert: pki.clientCa.bundle,
      cert: pki.client.chain,
      key: pki.client.key,
    });
    expect(wrongTrust.exitCode).toBe(60); // CURLE_PEER_FAILED_VERIFICATION
    expect(wrongTrust.status).toBe(0);
  });
});
