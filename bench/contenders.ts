// The operations being compared. Each factory does its one-time setup (issuer, CA name, static
// extensions) outside the timed function, and returns the per-certificate work.
// @peculiar/x509 2.x resolves its ASN.1 and algorithm providers through tsyringe, which needs the
// Reflect metadata API before the library is loaded.
import 'reflect-metadata';
import { spawnSync } from 'node:child_process';
import { createPublicKey, sign, verify, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { createIssuer, importSpki, parseCsr, readVerifiedCsr, requestedSans } from '../src/pki/index.js';
import { OPENSSL_POOL_SIZE, POOL_SIZE, type Fixtures } from './fixtures.js';

// Node 20 has globalThis.crypto; set it explicitly so the library uses node:crypto's WebCrypto.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const SKEW_MS = 60_000;
const TTL_MS = 24 * 3_600_000;
const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' };

// ---------------------------------------------------------------- mtlskit

/** (a) encode + sign from parsed inputs: subject, SANs and SPKI are already in hand. */
export function mtlskitIssue(fx: Fixtures): (i: number) => Buffer {
  const issuer = createIssuer(fx.caCert, fx.caKey);
  return (i) => {
    const leaf = fx.leaves[i % POOL_SIZE]!;
    return issuer.issue({ profile: 'client', subject: leaf.subject, sans: leaf.sans, publicKey: leaf.spki })
      .der;
  };
}

/** (b) CSR PEM in, certificate out: parse, check the CSR's self-signature, issue. */
export function mtlskitCsr(fx: Fixtures): (i: number) => Buffer {
  const issuer = createIssuer(fx.caCert, fx.caKey);
  return (i) => {
    const csr = readVerifiedCsr(fx.leaves[i % POOL_SIZE]!.csrPem);
    return issuer.issue({
      profile: 'client',
      subject: csr.subject,
      sans: requestedSans(csr),
      publicKey: csr.spki,
    }).der;
  };
}

// ---------------------------------------------------------------- @peculiar/x509

function peculiarStatic(fx: Fixtures): { issuer: x509.Name; extensions: x509.Extension[] } {
  return {
    issuer: new x509.Name(fx.caCert.subjectDer),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      new x509.AuthorityKeyIdentifierExtension(fx.caCert.subjectKeyId!.toString('hex')),
    ],
  };
}

function validity(): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - SKEW_MS), notAfter: new Date(now + TTL_MS) };
}

/** (a) with @peculiar/x509: the same extensions; names and keys given in the library's own types. */
export function peculiarIssue(fx: Fixtures): (i: number) => Promise<Buffer> {
  const { issuer, extensions } = peculiarStatic(fx);
  const subjects = fx.leaves.map((l) => new x509.Name(l.subjectText));
  return async (i) => {
    const leaf = fx.leaves[i % POOL_SIZE]!;
    const ski = await x509.SubjectKeyIdentifierExtension.create(leaf.spki);
    const san = new x509.SubjectAlternativeNameExtension(
      leaf.sans.map((s) => ({ type: 'dns' as const, value: s.value })),
      false,
    );
    const cert = await x509.X509CertificateGenerator.create({
      subject: subjects[i % POOL_SIZE]!,
      issuer,
      ...validity(),
      signingAlgorithm: ECDSA_SHA256,
      publicKey: leaf.spki,
      signingKey: fx.caCryptoKey,
      extensions: [...extensions, ski, san],
    });
    cert.toString('pem'); // mtlskit returns PEM as well as DER
    return Buffer.from(cert.rawData);
  };
}

/** (b) with @peculiar/x509: Pkcs10CertificateRequest parse + verify, then generate. */
export function peculiarCsr(fx: Fixtures): (i: number) => Promise<Buffer> {
  const { issuer, extensions } = peculiarStatic(fx);
  return async (i) => {
    const req = new x509.Pkcs10CertificateRequest(fx.leaves[i % POOL_SIZE]!.csrPem);
    if (!(await req.verify())) throw new Error('CSR signature does not verify');
    const san = req.getExtension('2.5.29.17');
    const ski = await x509.SubjectKeyIdentifierExtension.create(req.publicKey);
    const cert = await x509.X509CertificateGenerator.create({
      subject: req.subjectName,
      issuer,
      ...validity(),
      signingAlgorithm: ECDSA_SHA256,
      publicKey: req.publicKey,
      signingKey: fx.caCryptoKey,
      extensions: san ? [...extensions, ski, san] : [...extensions, ski],
    });
    cert.toString('pem');
    return Buffer.from(cert.rawData);
  };
}

// ---------------------------------------------------------------- openssl CLI

// One openssl process per certificate, in a shell loop (what a CA that shells out pays per request).
const OPENSSL_LOOP = (command: string): string => `
d=$1; n=$2; i=0
while [ "$i" -lt "$n" ]; do
  k=$((i % ${OPENSSL_POOL_SIZE}))
  ${command} -CA "$d/ca.pem" -CAkey "$d/ca.key" -days 1 -extfile "$d/ext.cnf" -extensions v3 -out "$d/out.pem" 2>/dev/null || exit 1
  i=$((i + 1))
done`;

/** (a) with openssl: `x509 -new -force_pubkey` (no CSR to read or check), one process per certificate. */
export const OPENSSL_ISSUE = OPENSSL_LOOP(
  'openssl x509 -new -subj "/CN=svc-$k" -force_pubkey "$d/pub-$k.pem"',
);
/** (b) with openssl: `x509 -req -in csr.pem` (reads the CSR and checks its signature), one process per certificate. */
export const OPENSSL_CSR = OPENSSL_LOOP('openssl x509 -req -in "$d/csr-$k.pem"');

export function opensslRunner(fx: Fixtures, script: string): (count: number) => void {
  return (count) => {
    const r = spawnSync('sh', ['-c', script, 'sh', fx.dir, String(count)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    if (r.status !== 0)
      throw new Error(`openssl loop failed (${r.status ?? r.signal}): ${r.stderr.toString()}`);
  };
}

export function opensslVersion(): string | undefined {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

// ---------------------------------------------------------------- raw crypto, for context

export interface RawCrypto {
  sign: () => Buffer;
  verify: () => boolean;
  importDer: (i: number) => unknown;
  importFast: (i: number) => unknown;
  freshCheck: (i: number) => boolean;
}

/** One ECDSA P-256 signature and verification over a certificate-sized message, and SPKI imports. */
export function rawCrypto(fx: Fixtures, tbs: Buffer): RawCrypto {
  const caPub = createPublicKey(fx.caKey);
  const sig = sign('sha256', tbs, fx.caKey);
  const csrs = fx.leaves.map((l) => parseCsr(l.csrPem));
  return {
    sign: () => sign('sha256', tbs, fx.caKey),
    verify: () => verify('sha256', tbs, caPub, sig),
    importDer: (i) => createPublicKey({ key: fx.leaves[i % POOL_SIZE]!.spki, format: 'der', type: 'spki' }),
    importFast: (i) => importSpki(fx.leaves[i % POOL_SIZE]!.spki),
    // A CSR check's crypto on a key never seen before: import, then the key's first verification.
    freshCheck: (i) => {
      const csr = csrs[i % POOL_SIZE]!;
      return verify('sha256', csr.info, importSpki(csr.spki), csr.signature);
    },
  };
}
