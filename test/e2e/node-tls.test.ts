// node:tls on both sides with mtlskit certificates: mutual TLS with only the roots trusted, each
// side sending leaf + intermediate from its *.chain.pem, and the server reading the client's identity.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, createServer, type PeerCertificate, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt } from '../support/cli.js';
import { LOOPBACK } from '../support/ports.js';
import { createPki, issue, type LeafPaths, type Pki } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let strangerClient: LeafPaths;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('node-tls');
  pki = await createPki(root);
  strangerClient = await issue(pki.serverCa, join(root, 'server'), 'client', 'stranger');
});

afterAll(async () => {
  await removeTempDir(root);
});

interface Side {
  /** File with the certificate(s) this side sends. */
  cert: string;
  key: string;
  /** Trust bundle for the other side's certificate. */
  ca: string;
}

interface Outcome {
  /** The client got the server's greeting: both sides accepted each other. */
  ok: boolean;
  clientError?: string;
  serverError?: string;
  /** What the server saw of the client. */
  peer?: PeerCertificate;
  serverAuthorized?: boolean;
  /** What the client saw of the server. */
  serverPeer?: PeerCertificate;
}

const load = (f: string): Promise<string> => readFile(f, 'utf8');

/** One mTLS connection between a fresh node:tls server (rejectUnauthorized) and a client. */
async function handshake(server: Side, client: Side, servername = 'localhost'): Promise<Outcome> {
  const [sCert, sKey, sCa, cCert, cKey, cCa] = await Promise.all(
    [server.cert, server.key, server.ca, client.cert, client.key, client.ca].map(load),
  );
  const outcome: Outcome = { ok: false };
  const srv = createServer({ cert: sCert, key: sKey, ca: sCa, requestCert: true, rejectUnauthorized: true });
  const serverDone = new Promise<void>((resolve) => {
    srv.on('secureConnection', (s: TLSSocket) => {
      outcome.peer = s.getPeerCertificate();
      outcome.serverAuthorized = s.authorized;
      s.end('hello\n');
      resolve();
    });
    srv.on('tlsClientError', (e) => {
      outcome.serverError = (e as NodeJS.ErrnoException).code ?? e.message;
      resolve();
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, LOOPBACK, resolve));
  const port = (srv.address() as { port: number }).port;
  try {
    await new Promise<void>((resolve) => {
      const sock = connect({ host: LOOPBACK, port, servername, cert: cCert, key: cKey, ca: cCa });
      let data = '';
      sock.setTimeout(10_000, () => sock.destroy(new Error('timeout')));
      sock.on('secureConnect', () => (outcome.serverPeer = sock.getPeerCertificate()));
      sock.on('data', (d: Buffer) => (data += d.toString()));
      sock.on('error', (e: NodeJS.ErrnoException) => (outcome.clientError = e.code ?? e.message));
      sock.on('close', () => {
        outcome.ok = data === 'hello\n' && outcome.clientError === undefined;
        resolve();
      });
    });
    await Promise.race([serverDone, new Promise((r) => setTimeout(r, 5_000))]);
  } finally {
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
  return outcome;
}

const serverSide = (): Side => ({ cert: pki.server.chain, key: pki.server.key, ca: pki.clientCa.bundle });
const clientSide = (l: LeafPaths, cert = l.chain): Side => ({ cert, key: l.key, ca: pki.serverCa.bundle });

describe('node:tls mutual TLS with mtlskit certificates', () => {
  it('trusts only the roots: each ca.pem holds exactly one self-signed certificate', async () => {
    for (const f of [pki.serverCa.bundle, pki.clientCa.bundle]) {
      const pem = await load(f);
      expect(pem.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(1);
      expect(pem.trim()).toBe((await load(f.replace(/ca\.pem$/, 'root.crt'))).trim());
    }
  });

  it('completes the handshake with leaf + intermediate on both sides; the server sees the client', async () => {
    const o = await handshake(serverSide(), clientSide(pki.client));
    expect(o.clientError).toBeUndefined();
    expect(o.serverError).toBeUndefined();
    expect(o.ok).toBe(true);
    expect(o.serverAuthorized).toBe(true);
    expect(o.peer?.subject.CN).toBe('alice');
    expect(o.peer?.issuer.CN).toBeDefined();
    expect(o.serverPeer?.subjectaltname).toContain('DNS:localhost');
    expect(o.serverPeer?.subjectaltname).toContain('IP Address:127.0.0.1');
  });

  it('the server reads a SPIFFE ID from the client certificate', async () => {
    const o = await handshake(serverSide(), clientSide(pki.spiffe));
    expect(o.ok).toBe(true);
    expect(o.peer?.subjectaltname).toBe(`URI:${pki.spiffeId}`);
  });

  it('a peer certificate works as client and as server', async () => {
    const asClient = await handshake(serverSide(), clientSide(pki.peer));
    expect(asClient.ok).toBe(true);
    expect(asClient.peer?.subjectaltname).toContain('DNS:peer.e2e.example');
    const asServer = await handshake(
      { cert: pki.peer.chain, key: pki.peer.key, ca: pki.clientCa.bundle },
      { cert: pki.client.chain, key: pki.client.key, ca: pki.clientCa.bundle },
      'peer.e2e.example',
    );
    expect(asServer.ok).toBe(true);
    expect(asServer.serverPeer?.subjectaltname).toContain('DNS:peer.e2e.example');
  });

  it('the server refuses a client that sends only its leaf (the intermediate is needed)', async () => {
    const o = await handshake(serverSide(), clientSide(pki.client, pki.client.cert));
    expect(o.ok).toBe(false);
    expect(o.serverError ?? o.clientError).toBeDefined();
    expect(o.peer).toBeUndefined();
  });

  it('the client refuses a server that sends only its leaf', async () => {
    const o = await handshake({ ...serverSide(), cert: pki.server.cert }, clientSide(pki.client));
    expect(o.ok).toBe(false);
    expect(o.clientError).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('the server refuses a server-profile certificate used as a client certificate', async () => {
    const o = await handshake(serverSide(), clientSide(pki.serverAsClient));
    expect(o.ok).toBe(false);
    expect(o.peer).toBeUndefined();
  });

  it('the server refuses a client certificate from the other CA', async () => {
    const o = await handshake(serverSide(), clientSide(strangerClient));
    expect(o.ok).toBe(false);
    expect(o.peer).toBeUndefined();
  });

  it('the client refuses a server whose name does not match', async () => {
    const o = await handshake(serverSide(), clientSide(pki.client), 'other.e2e.example');
    expect(o.ok).toBe(false);
    expect(o.clientError).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
  });
});
