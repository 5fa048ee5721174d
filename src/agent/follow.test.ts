// The Node helpers against real TLS servers on 127.0.0.1: the server reads the serial of the client
// certificate it received, while the test publishes new versions the way the agent does.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as undiciRequest } from 'undici';
import { isMtlsError } from '../errors/index.js';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  readCertificates,
  selfSign,
  spkiOf,
  type CertificateIssuer,
} from '../pki/index.js';
import {
  createMtlsAgent,
  createMtlsCertificateProvider,
  createMtlsDispatcher,
  readMtlsMaterial,
  type MtlsMaterial,
} from './follow.js';

interface TestPki {
  clientIssuer: CertificateIssuer;
  clientRootPem: string;
  serverRootPem: string;
  serverKeyPem: string;
  serverCertPem: string;
}

function makePki(): TestPki {
  const clientRootKey = generateKey('p256');
  const clientRoot = selfSign(clientRootKey, {
    profile: 'root',
    subject: parseName('CN=follow test client root'),
  });
  const serverRootKey = generateKey('p256');
  const serverRoot = selfSign(serverRootKey, {
    profile: 'root',
    subject: parseName('CN=follow test server root'),
  });
  const serverIssuer = createIssuer(parseCertificate(serverRoot.der), serverRootKey);
  const serverKey = generateKey('p256');
  const server = serverIssuer.issue({
    profile: 'server',
    subject: parseName('CN=localhost'),
    sans: [{ type: 'ip', value: '127.0.0.1' }],
    publicKey: spkiOf(serverKey),
    ttlMs: 3_600_000,
  });
  return {
    clientIssuer: createIssuer(parseCertificate(clientRoot.der), clientRootKey),
    clientRootPem: clientRoot.pem,
    serverRootPem: serverRoot.pem,
    serverKeyPem: exportPrivateKeyPem(serverKey),
    serverCertPem: server.pem,
  };
}

/** Issues a client certificate and publishes it as a new version, like the agent: returns its serial. */
function publish(dir: string, pki: TestPki, opts: { keep?: number } = {}): string {
  const key = generateKey('p256');
  const cert = pki.clientIssuer.issue({
    profile: 'client',
    subject: parseName('CN=follower'),
    publicKey: spkiOf(key),
    ttlMs: 3_600_000,
  });
  const version = `..v-${new Date().toISOString().replaceAll(':', '-')}-${randomBytes(3).toString('hex')}`;
  const vdir = join(dir, version);
  const staging = join(dir, `.tmp-${randomBytes(4).toString('hex')}`);
  mkdirSync(staging);
  writeFileSync(join(staging, 'key.pem'), exportPrivateKeyPem(key), { mode: 0o600 });
  writeFileSync(join(staging, 'cert.pem'), cert.pem);
  writeFileSync(join(staging, 'chain.pem'), '');
  writeFileSync(join(staging, 'fullchain.pem'), cert.pem);
  writeFileSync(join(staging, 'ca.pem'), pki.serverRootPem);
  chmodSync(join(staging, 'key.pem'), 0o600);
  renameSync(staging, vdir);
  const tmpLink = join(dir, `..data.tmp-${randomBytes(4).toString('hex')}`);
  symlinkSync(version, tmpLink);
  renameSync(tmpLink, join(dir, '..data'));
  for (const f of ['key.pem', 'cert.pem', 'chain.pem', 'fullchain.pem', 'ca.pem']) {
    try {
      symlinkSync(join('..data', f), join(dir, f));
    } catch {
      // stable links exist already
    }
  }
  // Keep the newest versions only (the agent keeps at least two).
  const versions = readdirSync(dir)
    .filter((n) => n.startsWith('..v-'))
    .sort();
  for (const old of versions.slice(0, Math.max(0, versions.length - (opts.keep ?? 2))))
    rmSync(join(dir, old), { recursive: true, force: true });
  return cert.serial;
}

const norm = (serial: string): string => serial.toLowerCase().replace(/^0+/, '');

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

let pki: TestPki;
let root: string;
let server: Server;
let port: number;

beforeAll(async () => {
  pki = makePki();
  root = mkdtempSync(join(tmpdir(), 'mtls-follow-'));
  server = createServer(
    {
      key: pki.serverKeyPem,
      cert: pki.serverCertPem,
      ca: pki.clientRootPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const serial = (req.socket as TLSSocket).getPeerCertificate().serialNumber;
      const delay = req.url === '/slow' ? 400 : 0;
      setTimeout(() => res.end(serial), delay);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

function newDir(name: string): string {
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
}

function get(agent: ReturnType<typeof createMtlsAgent>, path = '/'): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`)),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('readMtlsMaterial', () => {
  it('reads one version through ..data and reports its serial', async () => {
    const dir = newDir('read');
    const serial = publish(dir, pki);
    const m = await readMtlsMaterial(dir);
    expect(m.version).toMatch(/^\.\.v-/);
    expect(m.serial).toBe(serial);
    expect(m.ca.toString()).toBe(pki.serverRootPem);
  });

  it('refuses a key that does not match the certificate, and a missing directory, with MTLS_NODE_FILES', async () => {
    const dir = newDir('mismatch');
    publish(dir, pki);
    const other = newDir('mismatch-other');
    publish(other, pki);
    const m = await readMtlsMaterial(other);
    // Replace the key inside the current version with another identity's key.
    writeFileSync(join(dir, '..data', 'key.pem'), m.key);
    await expect(readMtlsMaterial(dir)).rejects.toSatisfy(
      (e: unknown) => isMtlsError(e, 'MTLS_NODE_FILES') && /does not match/.test(e.message),
    );
    await expect(readMtlsMaterial(join(root, 'nope'))).rejects.toSatisfy((e: unknown) =>
      isMtlsError(e, 'MTLS_NODE_FILES'),
    );
    expect(() => createMtlsAgent({ dir: join(root, 'nope') })).toThrow(/cannot be used/);
  });

  it('reads a plain directory without ..data as it is', async () => {
    const dir = newDir('plain');
    const src = newDir('plain-src');
    publish(src, pki);
    const m = await readMtlsMaterial(src);
    writeFileSync(join(dir, 'key.pem'), m.key, { mode: 0o600 });
    writeFileSync(join(dir, 'fullchain.pem'), m.cert);
    writeFileSync(join(dir, 'ca.pem'), m.ca);
    const plain = await readMtlsMaterial(dir);
    expect(plain.version).toBe('');
    expect(plain.serial).toBe(m.serial);
  });
});

describe('unsafe options', () => {
  it('an option turning verification off, a key of its own or a custom connector are refused', () => {
    const dir = newDir('unsafe');
    publish(dir, pki);
    const unsafe = (f: () => unknown): boolean => {
      try {
        f();
        return false;
      } catch (e) {
        return isMtlsError(e, 'MTLS_NODE_UNSAFE_OPTION');
      }
    };
    expect(unsafe(() => createMtlsAgent({ dir, rejectUnauthorized: false }))).toBe(true);
    expect(unsafe(() => createMtlsAgent({ dir, ...({ key: 'x' } as object) }))).toBe(true);
    expect(unsafe(() => createMtlsDispatcher({ dir, connect: { rejectUnauthorized: false } }))).toBe(true);
    expect(unsafe(() => createMtlsDispatcher({ dir, ...({ connect: () => undefined } as object) }))).toBe(
      true,
    );
  });
});

describe('createMtlsAgent (https.Agent)', () => {
  it('presents the newest certificate after each of 20 swaps with zero failed requests', async () => {
    const dir = newDir('https-swaps');
    let serial = publish(dir, pki);
    const rotations: MtlsMaterial[] = [];
    const agent = createMtlsAgent({ dir, pollMs: 200, onRotate: (m) => rotations.push(m) });
    try {
      expect(norm(await get(agent))).toBe(norm(serial));
      // A background loop of requests during all swaps: bounded by count and by the swaps' end.
      let stop = false;
      let ok = 0;
      const failures: string[] = [];
      const loop = (async () => {
        for (let i = 0; i < 5_000 && !stop; i++) {
          try {
            await get(agent);
            ok++;
          } catch (e) {
            failures.push((e as Error).message);
          }
        }
      })();
      for (let swap = 1; swap <= 20; swap++) {
        serial = publish(dir, pki);
        await until(() => agent.material.serial === serial);
        // The very next request (possibly on a pooled connection before) shows the new certificate.
        expect(norm(await get(agent))).toBe(norm(serial));
      }
      stop = true;
      await loop;
      expect(failures).toEqual([]);
      expect(ok).toBeGreaterThan(20);
      expect(rotations.length).toBeGreaterThanOrEqual(20);
      expect(rotations.at(-1)?.serial).toBe(serial);
    } finally {
      agent.close();
    }
  });

  it('lets a request in flight on the old certificate finish after a swap', async () => {
    const dir = newDir('https-inflight');
    const first = publish(dir, pki);
    const agent = createMtlsAgent({ dir, pollMs: 200 });
    try {
      const slow = get(agent, '/slow');
      await sleep(50);
      const second = publish(dir, pki);
      await until(() => agent.material.serial === second);
      expect(norm(await get(agent))).toBe(norm(second));
      expect(norm(await slow)).toBe(norm(first));
    } finally {
      agent.close();
    }
  });

  it('requests queued behind maxSockets across a swap all succeed', async () => {
    const dir = newDir('https-queued');
    const first = publish(dir, pki);
    const agent = createMtlsAgent({ dir, pollMs: 200, maxSockets: 1 });
    try {
      const slow = get(agent, '/slow');
      const queued = [get(agent), get(agent), get(agent)];
      await sleep(50);
      const second = publish(dir, pki);
      await until(() => agent.material.serial === second);
      expect(norm(await slow)).toBe(norm(first));
      const served = await Promise.all(queued);
      expect(served).toHaveLength(3);
      expect(norm(await get(agent))).toBe(norm(second));
    } finally {
      agent.close();
    }
  });

  it('keeps the old material and reports once when a new version is broken', async () => {
    const dir = newDir('https-broken');
    const good = publish(dir, pki);
    const errors: string[] = [];
    const agent = createMtlsAgent({ dir, pollMs: 100, onError: (e) => errors.push(e.code) });
    try {
      const other = newDir('https-broken-other');
      publish(other, pki);
      const foreignKey = (await readMtlsMaterial(other)).key;
      publish(dir, pki, { keep: 3 });
      writeFileSync(join(dir, '..data', 'key.pem'), foreignKey);
      await agent.refresh();
      await sleep(300);
      expect(errors[0]).toBe('MTLS_NODE_FILES');
      expect(errors.length).toBe(1);
      expect(agent.material.serial).toBe(good);
      expect(norm(await get(agent))).toBe(norm(good));
    } finally {
      agent.close();
    }
  });
});

describe('createMtlsDispatcher (undici)', () => {
  it('presents the newest certificate after each of 20 swaps with zero failed requests', async () => {
    const dir = newDir('undici-swaps');
    let serial = publish(dir, pki);
    const dispatcher = createMtlsDispatcher({ dir, pollMs: 200 });
    const origin = `https://127.0.0.1:${port}`;
    const fetchSerial = async (path = '/'): Promise<string> => {
      const r = await undiciRequest(origin + path, { dispatcher, headersTimeout: 5_000 });
      const text = await r.body.text();
      if (r.statusCode !== 200) throw new Error(`HTTP ${r.statusCode}`);
      return text;
    };
    try {
      expect(norm(await fetchSerial())).toBe(norm(serial));
      let stop = false;
      let ok = 0;
      const failures: string[] = [];
      const loop = (async () => {
        for (let i = 0; i < 5_000 && !stop; i++) {
          try {
            await fetchSerial();
            ok++;
          } catch (e) {
            failures.push((e as Error).message);
          }
        }
      })();
      const inflight = fetchSerial('/slow');
      const firstSerial = serial;
      for (let swap = 1; swap <= 20; swap++) {
        serial = publish(dir, pki);
        await until(() => dispatcher.material.serial === serial);
        expect(norm(await fetchSerial())).toBe(norm(serial));
      }
      expect(norm(await inflight)).toBe(norm(firstSerial));
      stop = true;
      await loop;
      expect(failures).toEqual([]);
      expect(ok).toBeGreaterThan(20);
    } finally {
      await dispatcher.close();
    }
  });
});

describe('createMtlsCertificateProvider (grpc-js shape)', () => {
  it('hands the current identity at once and every rotation after', async () => {
    const dir = newDir('grpc');
    const first = publish(dir, pki);
    const provider = createMtlsCertificateProvider({ dir, pollMs: 100 });
    const seen: string[] = [];
    const cas: number[] = [];
    try {
      provider.addIdentityCertificateListener((u) => {
        if (u) seen.push(readCertificates(u.certificate)[0]?.serial ?? '');
      });
      provider.addCaCertificateListener((u) => cas.push(u?.caCertificate.length ?? 0));
      expect(seen).toEqual([first]);
      const second = publish(dir, pki);
      await until(() => seen.length === 2);
      expect(seen).toEqual([first, second]);
      expect(cas.every((n) => n > 0)).toBe(true);
    } finally {
      provider.close();
    }
  });
});
