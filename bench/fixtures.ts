// Inputs shared by every contender: one P-256 CA, and a pool of P-256 leaf keys with their subjects,
// SANs and CSRs. Built once, before any timing; the openssl loops read the same objects from a temp dir.
import { generateKeyPairSync, webcrypto, type KeyObject, type webcrypto as WebCrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createCsr,
  exportPrivateKeyPem,
  parseCertificate,
  selfSign,
  spkiOf,
  type Certificate,
  type DistinguishedName,
  type San,
} from '../src/pki/index.js';

/** How many distinct leaves the loops cycle through (keys and CSRs are never reused back to back). */
export const POOL_SIZE = 64;
/** How many of them are written out for the openssl loops. */
export const OPENSSL_POOL_SIZE = 16;

export interface Leaf {
  subject: DistinguishedName;
  /** The same name as text, for @peculiar/x509 and openssl. */
  subjectText: string;
  sans: San[];
  /** SubjectPublicKeyInfo DER. */
  spki: Buffer;
  csrPem: string;
}

export interface Fixtures {
  caKey: KeyObject;
  caCert: Certificate;
  caPem: string;
  /** The CA key as a WebCrypto key, for @peculiar/x509. */
  caCryptoKey: WebCrypto.CryptoKey;
  leaves: Leaf[];
  /** Holds ca.pem, ca.key, ext.cnf, pub-N.pem and csr-N.pem for the openssl loops. */
  dir: string;
  cleanup(): void;
}

/** The extensions every contender puts in a leaf: what mtlskit's client profile issues. */
export const OPENSSL_EXTENSIONS = `[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:svc.internal.example
`;

export async function createFixtures(): Promise<Fixtures> {
  const caKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const root = selfSign(caKey, {
    profile: 'root',
    subject: [[{ oid: '2.5.4.3', value: 'mtlskit bench CA' }]],
  });
  const caCert = parseCertificate(root.der);
  const caKeyPem = exportPrivateKeyPem(caKey);
  const caCryptoKey = await webcrypto.subtle.importKey(
    'pkcs8',
    caKey.export({ type: 'pkcs8', format: 'der' }),
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );

  const leaves: Leaf[] = [];
  for (let i = 0; i < POOL_SIZE; i++) {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const subject: DistinguishedName = [[{ oid: '2.5.4.3', value: `svc-${i}` }]];
    const sans: San[] = [{ type: 'dns', value: `svc-${i}.internal.example` }];
    leaves.push({
      subject,
      subjectText: `CN=svc-${i}`,
      sans,
      spki: spkiOf(key),
      csrPem: createCsr({ key, subject, sans }).pem,
    });
  }

  const dir = mkdtempSync(join(tmpdir(), 'mtlskit-bench-'));
  writeFileSync(join(dir, 'ca.pem'), root.pem);
  writeFileSync(join(dir, 'ca.key'), caKeyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'ext.cnf'), OPENSSL_EXTENSIONS);
  for (let i = 0; i < OPENSSL_POOL_SIZE; i++) {
    const leaf = leaves[i]!;
    const pub = `-----BEGIN PUBLIC KEY-----\n${leaf.spki.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END PUBLIC KEY-----\n`;
    writeFileSync(join(dir, `pub-${i}.pem`), pub.replace('\n\n', '\n'));
    writeFileSync(join(dir, `csr-${i}.pem`), leaf.csrPem);
  }

  return {
    caKey,
    caCert,
    caPem: root.pem,
    caCryptoKey,
    leaves,
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
