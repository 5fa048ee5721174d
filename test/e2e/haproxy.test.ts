// HAProxy with `verify required`, serving mtlskit's server chain and trusting mtlskit's client CA.
// HAProxy refuses in the handshake, so a refused client sees a TLS error and never an HTTP status.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../support/cli.js';
import { curl } from '../support/curl.js';
import { startHaproxy, type Peer } from '../support/peers.js';
import { createPki, writeCombinedPem, type LeafPaths, type Pki } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let haproxy: Peer | undefined;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('haproxy');
  pki = await createPki(root);
  const crt = await writeCombinedPem(pki.server, join(root, 'server', 'haproxy.pem'));
  haproxy = await startHaproxy({ dir: root, crt, caFile: pki.clientCa.bundle });
});

afterAll(async () => {
  await haproxy?.stop();
  await removeTempDir(root);
});

function get(l?: LeafPaths, cert?: string) {
  return curl({
    port: haproxy!.port,
    cacert: pki.server.ca,
    ...(l ? { cert: cert ?? l.chain, key: l.key } : {}),
  });
}

describe('HAProxy bind … verify required', () => {
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

  it('refuses a client without a certificate in the handshake', async () => {
    const r = await get();
    expect(r.exitCode).not.toBe(0);
    expect(r.status).not.toBe(200);
    expect(r.body).not.toContain('ok');
    expect(r.stderr).toMatch(/certificate required|handshake failure/);
  });

  it('refuses a server certificate used as a client certificate in the handshake', async () => {
    const r = await get(pki.serverAsClient);
    expect(r.exitCode).not.toBe(0);
    expect(r.status).not.toBe(200);
    expect(r.body).not.toContain('ok');
    expect(r.stderr).toMatch(/unsupported certificate|certificate/);
  });

  it('refuses a client that sends its leaf without the intermediate', async () => {
    const r = await get(pki.client, pki.client.cert);
    expect(r.exitCode).not.toBe(0);
    expect(r.status).not.toBe(200);
  });
});
