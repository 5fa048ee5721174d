// openssl as an independent judge: it must accept what mtlskit issues for the purposes each
// profile allows, reject the others, see the right extensions, verify our CSRs, and mtlskit must
// sign CSRs that openssl made.
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, mtls, mtlsOk } from '../support/cli.js';
import { extensionBlock, openssl, opensslVerify, x509Text } from '../support/openssl.js';
import { createPki, issue, type LeafPaths, type Pki } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let rsaServer: LeafPaths;

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('openssl');
  pki = await createPki(root);
  rsaServer = await issue(pki.serverCa, join(root, 'server'), 'server', 'rsa.e2e.example', {
    keyType: 'rsa2048',
  });
});

afterAll(async () => {
  await removeTempDir(root);
});

const leaf = (name: 'server' | 'client' | 'spiffe' | 'peer' | 'serverAsClient'): LeafPaths => pki[name];

/** A hex key id as openssl prints it ("AB:CD:…", with or without "keyid:"). */
function keyId(block: { body: string } | undefined): string {
  const m = /(?:keyid:)?([0-9A-F]{2}(?::[0-9A-F]{2})+)/.exec(block?.body ?? '');
  if (!m) throw new Error(`no key identifier in ${block?.body}`);
  return m[1]!;
}

describe('openssl verify -purpose', () => {
  it.each(['client', 'spiffe', 'peer'] as const)('sslclient accepts a %s certificate', async (name) => {
    const l = leaf(name);
    const r = await opensslVerify({ purpose: 'sslclient', caFile: l.ca, untrusted: l.chain, cert: l.cert });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(': OK');
  });

  it.each(['server', 'serverAsClient'] as const)(
    'sslclient rejects a server certificate (%s)',
    async (name) => {
      const l = leaf(name);
      const r = await opensslVerify({ purpose: 'sslclient', caFile: l.ca, untrusted: l.chain, cert: l.cert });
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/unsuitable certificate purpose|unsupported certificate purpose/);
    },
  );

  it.each(['server', 'spiffe', 'peer'] as const)('sslserver accepts a %s certificate', async (name) => {
    const l = leaf(name);
    const r = await opensslVerify({ purpose: 'sslserver', caFile: l.ca, untrusted: l.chain, cert: l.cert });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(': OK');
  });

  it('sslserver accepts an RSA server certificate', async () => {
    const r = await opensslVerify({
      purpose: 'sslserver',
      caFile: rsaServer.ca,
      untrusted: rsaServer.chain,
      cert: rsaServer.cert,
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(': OK');
  });

  it('sslserver rejects a client certificate', async () => {
    const l = leaf('client');
    const r = await opensslVerify({ purpose: 'sslserver', caFile: l.ca, untrusted: l.chain, cert: l.cert });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/unsuitable certificate purpose|unsupported certificate purpose/);
  });

  it('needs the intermediate from the chain file: without -untrusted the chain cannot be built', async () => {
    const l = leaf('client');
    const r = await opensslVerify({ purpose: 'sslclient', caFile: l.ca, cert: l.cert });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('unable to get local issuer certificate');
  });

  it("rejects a certificate against the other CA's bundle", async () => {
    const l = leaf('client');
    const r = await opensslVerify({
      purpose: 'sslclient',
      caFile: pki.serverCa.bundle,
      untrusted: l.chain,
      cert: l.cert,
    });
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toContain('unable to get local issuer certificate');
  });

  it('ca.pem next to a leaf is the root of the CA directory, and the intermediate chains to it', async () => {
    const [leafBundle, caBundle, rootCert] = await Promise.all([
      readFile(pki.client.ca, 'utf8'),
      readFile(pki.clientCa.bundle, 'utf8'),
      readFile(pki.clientCa.rootCert, 'utf8'),
    ]);
    expect(leafBundle).toBe(caBundle);
    expect(caBundle.trim()).toBe(rootCert.trim());
    const r = await openssl(['verify', '-CAfile', pki.clientCa.bundle, pki.clientCa.intermediateCert]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(': OK');
  });

  it('the chain file is the leaf followed by the intermediate', async () => {
    const [chain, cert, intermediate] = await Promise.all([
      readFile(pki.client.chain, 'utf8'),
      readFile(pki.client.cert, 'utf8'),
      readFile(pki.clientCa.intermediateCert, 'utf8'),
    ]);
    expect(chain.match(/-----BEGIN CERTIFICATE-----/g)).toHaveLength(2);
    expect(chain.replace(/\s+/g, '')).toBe((cert + intermediate).replace(/\s+/g, ''));
  });
});

describe('openssl x509 -text shows the extensions of each profile', () => {
  it('root: CA:TRUE pathlen 1, keyCertSign + cRLSign, self-signed, no EKU', async () => {
    const t = await x509Text(pki.clientCa.rootCert);
    const bc = extensionBlock(t, 'Basic Constraints');
    expect(bc?.critical).toBe(true);
    expect(bc?.body).toMatch(/CA:TRUE, pathlen:1/);
    const ku = extensionBlock(t, 'Key Usage');
    expect(ku?.critical).toBe(true);
    expect(ku?.body).toBe('Certificate Sign, CRL Sign');
    expect(extensionBlock(t, 'Extended Key Usage')).toBeUndefined();
    expect(extensionBlock(t, 'Subject Key Identifier')).toBeDefined();
    expect(t).toMatch(/Subject: .*mtlskit e2e Client CA/);
  });

  it('intermediate: CA:TRUE pathlen 0, AKI = root SKI', async () => {
    const [t, rootText] = await Promise.all([
      x509Text(pki.clientCa.intermediateCert),
      x509Text(pki.clientCa.rootCert),
    ]);
    const bc = extensionBlock(t, 'Basic Constraints');
    expect(bc?.critical).toBe(true);
    expect(bc?.body).toMatch(/CA:TRUE, pathlen:0/);
    const ku = extensionBlock(t, 'Key Usage');
    expect(ku?.critical).toBe(true);
    expect(ku?.body).toContain('Certificate Sign');
    expect(ku?.body).toContain('CRL Sign');
    expect(keyId(extensionBlock(t, 'Authority Key Identifier'))).toBe(
      keyId(extensionBlock(rootText, 'Subject Key Identifier')),
    );
  });

  const expected = {
    server: {
      eku: ['TLS Web Server Authentication'],
      ku: 'Digital Signature',
      san: ['DNS:localhost', 'IP Address:127.0.0.1'],
    },
    client: { eku: ['TLS Web Client Authentication'], ku: 'Digital Signature', san: [] },
    spiffe: {
      eku: ['TLS Web Server Authentication', 'TLS Web Client Authentication'],
      ku: 'Digital Signature',
      san: ['URI:spiffe://e2e.example/ns/test/sa/worker'],
    },
    peer: {
      eku: ['TLS Web Server Authentication', 'TLS Web Client Authentication'],
      ku: 'Digital Signature',
      san: ['DNS:peer.e2e.example'],
    },
  } as const;

  it.each(Object.keys(expected) as (keyof typeof expected)[])(
    '%s: CA:FALSE critical, KU critical, EKU, SAN, SKI and AKI = intermediate SKI',
    async (name) => {
      const want = expected[name];
      const l = leaf(name);
      const ca = name === 'server' ? pki.serverCa : pki.clientCa;
      const [t, intText] = await Promise.all([x509Text(l.cert), x509Text(ca.intermediateCert)]);
      const bc = extensionBlock(t, 'Basic Constraints');
      expect(bc?.critical).toBe(true);
      expect(bc?.body).toBe('CA:FALSE');
      const ku = extensionBlock(t, 'Key Usage');
      expect(ku?.critical).toBe(true);
      expect(ku?.body).toBe(want.ku);
      const eku = extensionBlock(t, 'Extended Key Usage');
      expect(eku?.body.split(', ').sort()).toEqual([...want.eku].sort());
      const san = extensionBlock(t, 'Subject Alternative Name');
      for (const s of want.san) expect(san?.body).toContain(s);
      if (name === 'spiffe') expect(san?.body.match(/URI:/g)).toHaveLength(1);
      expect(extensionBlock(t, 'Subject Key Identifier')).toBeDefined();
      expect(keyId(extensionBlock(t, 'Authority Key Identifier'))).toBe(
        keyId(extensionBlock(intText, 'Subject Key Identifier')),
      );
    },
  );

  it('an RSA server certificate also gets keyEncipherment', async () => {
    const t = await x509Text(rsaServer.cert);
    expect(extensionBlock(t, 'Key Usage')?.body).toBe('Digital Signature, Key Encipherment');
    expect(t).toContain('Public-Key: (2048 bit)');
    expect(extensionBlock(t, 'Subject Alternative Name')?.body).toContain('DNS:rsa.e2e.example');
  });
});

describe('CSRs', () => {
  it.each(['p256', 'rsa2048', 'ed25519'])(
    'openssl req -verify accepts a %s CSR from mtls csr',
    async (keyType) => {
      const out = join(root, `csr-${keyType}`);
      await mkdir(out);
      await mtlsOk(
        ['csr', 'api', '--san', 'dns:api.e2e.example,ip:10.0.0.7', '--key-type', keyType, '--out', out],
        {
          cwd: out,
        },
      );
      const r = await openssl(['req', '-in', join(out, 'api.csr'), '-noout', '-verify', '-text']);
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).toContain('verify OK');
      expect(r.stdout).toContain('DNS:api.e2e.example');
      expect(r.stdout).toContain('IP Address:10.0.0.7');
      // The CSR is for the key it wrote.
      const fromCsr = await openssl(['req', '-in', join(out, 'api.csr'), '-noout', '-pubkey']);
      const fromKey = await openssl(['pkey', '-in', join(out, 'api.key'), '-pubout']);
      expect(fromCsr.stdout).toBe(fromKey.stdout);
    },
  );

  it('mtls csr --key uses an existing openssl key and writes no new key', async () => {
    const out = join(root, 'csr-own-key');
    await mkdir(out);
    const keyFile = join(out, 'own.pem');
    expect(
      (await openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384', '-out', keyFile]))
        .code,
    ).toBe(0);
    await mtlsOk(['csr', 'svc', '--key', keyFile, '--out', out], { cwd: out });
    const r = await openssl(['req', '-in', join(out, 'svc.csr'), '-noout', '-verify', '-pubkey']);
    expect(r.code).toBe(0);
    const pub = await openssl(['pkey', '-in', keyFile, '-pubout']);
    expect(r.stdout).toContain(pub.stdout.trim());
    expect(existsSync(join(out, 'svc.key'))).toBe(false);
  });

  /** openssl req -new with a fresh key; returns the CSR path. */
  async function opensslCsr(
    dir: string,
    base: string,
    keyArgs: string[],
    subj: string,
    addext?: string[],
  ): Promise<string> {
    await mkdir(dir, { recursive: true });
    const csr = join(dir, `${base}.csr`);
    const args = [
      'req',
      '-new',
      ...keyArgs,
      '-nodes',
      '-keyout',
      join(dir, `${base}.key`),
      '-subj',
      subj,
      '-out',
      csr,
    ];
    for (const e of addext ?? []) args.push('-addext', e);
    const r = await openssl(args);
    if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
    return csr;
  }

  it('signs a CN-only RSA server CSR from openssl, adding the CN as DNS SAN, and openssl verifies it', async () => {
    const dir = join(root, 'sign-rsa');
    const csr = await opensslCsr(dir, 'legacy', ['-newkey', 'rsa:2048'], '/CN=legacy.e2e.example/O=Example');
    const r = await mtlsOk(
      ['ca', 'sign', csr, '--profile', 'server', '--dir', pki.serverCa.dir, '--out', dir, '--ttl', '1h'],
      {
        cwd: dir,
      },
    );
    expect(r.stdout).toMatch(/note: .*CN "legacy\.e2e\.example" as a SAN/);
    const cert = join(dir, 'legacy.crt');
    const v = await opensslVerify({
      purpose: 'sslserver',
      caFile: pki.serverCa.bundle,
      untrusted: join(dir, 'legacy.chain.pem'),
      cert,
    });
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(': OK');
    const t = await x509Text(cert);
    expect(extensionBlock(t, 'Subject Alternative Name')?.body).toContain('DNS:legacy.e2e.example');
    expect(extensionBlock(t, 'Key Usage')?.body).toBe('Digital Signature, Key Encipherment');
    // The certificate certifies the CSR's key.
    const [fromCert, fromCsr] = await Promise.all([
      openssl(['x509', '-in', cert, '-noout', '-pubkey']),
      openssl(['req', '-in', csr, '-noout', '-pubkey']),
    ]);
    expect(fromCert.stdout).toBe(fromCsr.stdout);
  });

  it('signs an EC client CSR from openssl with a SAN, and openssl verifies it for sslclient', async () => {
    const dir = join(root, 'sign-ec');
    const csr = await opensslCsr(
      dir,
      'worker',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      '/CN=worker',
      ['subjectAltName=DNS:worker.e2e.example'],
    );
    await mtlsOk(['ca', 'sign', csr, '--profile', 'client', '--dir', pki.clientCa.dir, '--out', dir], {
      cwd: dir,
    });
    const cert = join(dir, 'worker.crt');
    const v = await opensslVerify({
      purpose: 'sslclient',
      caFile: pki.clientCa.bundle,
      untrusted: join(dir, 'worker.chain.pem'),
      cert,
    });
    expect(v.code).toBe(0);
    expect(v.stdout).toContain(': OK');
    const t = await x509Text(cert);
    expect(extensionBlock(t, 'Extended Key Usage')?.body).toBe('TLS Web Client Authentication');
    const s = await opensslVerify({
      purpose: 'sslserver',
      caFile: pki.clientCa.bundle,
      untrusted: join(dir, 'worker.chain.pem'),
      cert,
    });
    expect(s.code).not.toBe(0);
  });

  it('never copies a CA:TRUE request from a CSR into the certificate', async () => {
    const dir = join(root, 'sign-ca-request');
    const csr = await opensslCsr(
      dir,
      'sneaky',
      ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      '/CN=sneaky.e2e.example',
      [
        'basicConstraints=critical,CA:TRUE',
        'keyUsage=critical,keyCertSign',
        'subjectAltName=DNS:sneaky.e2e.example',
      ],
    );
    const r = await mtls(
      ['ca', 'sign', csr, '--profile', 'server', '--dir', pki.serverCa.dir, '--out', dir],
      {
        cwd: dir,
      },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/note: ignored requested extensions/);
    const t = await x509Text(join(dir, 'sneaky.crt'));
    expect(extensionBlock(t, 'Basic Constraints')?.body).toBe('CA:FALSE');
    expect(extensionBlock(t, 'Key Usage')?.body).toBe('Digital Signature');
  });
});
