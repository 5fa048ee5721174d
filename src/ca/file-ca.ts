// The offline CA kept as files in a directory: root + intermediate with encrypted keys, a trust
// bundle, and a small metadata file. The online service (mtls ca serve) loads the same directory.
import type { KeyObject } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MtlsError } from '../errors/index.js';
import { readInput, writeFilesAtomic } from '../files/index.js';
import {
  createCrl,
  createIssuer,
  exportPrivateKeyPem,
  fingerprint256,
  generateKey,
  parseCertificate,
  readCertificates,
  readPrivateKey,
  selfSign,
  spkiOf,
  systemClock,
  type Certificate,
  type CertificateIssuer,
  type Clock,
  type DistinguishedName,
  type KeyType,
} from '../pki/index.js';

export const CA_FILES = {
  rootCert: 'root.crt',
  rootKey: 'root.key',
  intermediateCert: 'intermediate.crt',
  intermediateKey: 'intermediate.key',
  bundle: 'ca.pem',
  meta: 'ca.json',
  /** The root's CRL (signed offline by the root key; nginx and HAProxy want a CRL for every CA in the chain). */
  rootCrl: 'root.crl',
} as const;

export interface CaMeta {
  format: 1;
  name: string;
  keyType: KeyType;
  trustDomain?: string;
  createdAt: string;
  rootFingerprint: string;
  keysEncrypted: boolean;
}

export interface InitCaOptions {
  dir: string;
  name: string;
  keyType: KeyType;
  trustDomain?: string;
  /** Encrypts both CA keys; required unless insecurePlaintextKey. */
  passphrase?: string;
  insecurePlaintextKey?: boolean;
  rootTtlMs?: number;
  intermediateTtlMs?: number;
  clock?: Clock;
}

export interface FileCa {
  dir: string;
  meta: CaMeta;
  root: Certificate;
  intermediate: Certificate;
  /** Issues leaves with the intermediate. */
  issuer: CertificateIssuer;
  /** The intermediate's private key (signs CRLs and the OCSP responder's certificate). */
  issuerKey: KeyObject;
  rootPem: string;
  intermediatePem: string;
  /** root.crl when present (made by ca init, refreshed by mtls ca root-crl). */
  rootCrlPem: string | undefined;
}

const DAY = 86_400_000;

export function caExists(dir: string): boolean {
  return Object.values(CA_FILES).some((f) => existsSync(join(dir, f)));
}

export function initFileCa(opts: InitCaOptions): { meta: CaMeta; files: string[] } {
  const dir = resolve(opts.dir);
  if (caExists(dir)) {
    throw new MtlsError('MTLS_CA_EXISTS', `A CA already exists in ${dir}.`, {
      fix: `Use it as it is, or choose another directory with --dir (never overwrite a CA whose certificates are in use).`,
    });
  }
  if (opts.passphrase === undefined && !opts.insecurePlaintextKey) {
    throw new MtlsError(
      'MTLS_CA_PASSPHRASE_REQUIRED',
      'The CA keys must be encrypted and no passphrase was given.',
      {
        fix: 'Set MTLS_CA_PASSPHRASE or pass --passphrase-file FILE (or, for throw-away test CAs only, --insecure-plaintext-key).',
      },
    );
  }
  const clock = opts.clock ?? systemClock;
  const rootName: DistinguishedName = [
    [{ oid: '2.5.4.10', value: opts.name }],
    [{ oid: '2.5.4.3', value: `${opts.name} Root` }],
  ];
  const intName: DistinguishedName = [
    [{ oid: '2.5.4.10', value: opts.name }],
    [{ oid: '2.5.4.3', value: `${opts.name} Intermediate` }],
  ];
  const rootKey = generateKey(opts.keyType);
  const root = selfSign(
    rootKey,
    { profile: 'root', subject: rootName, ttlMs: opts.rootTtlMs ?? 3650 * DAY },
    clock,
  );
  const rootCert = parseCertificate(root.der);
  const intKey = generateKey(opts.keyType);
  const intermediate = createIssuer(rootCert, rootKey, clock).issue({
    profile: 'intermediate',
    subject: intName,
    publicKey: spkiOf(intKey),
    ttlMs: Math.min(
      opts.intermediateTtlMs ?? 5 * 365 * DAY,
      rootCert.notAfter.getTime() - clock.now().getTime(),
    ),
  });
  const meta: CaMeta = {
    format: 1,
    name: opts.name,
    keyType: opts.keyType,
    ...(opts.trustDomain ? { trustDomain: opts.trustDomain } : {}),
    createdAt: clock.now().toISOString(),
    rootFingerprint: fingerprint256(rootCert),
    keysEncrypted: opts.passphrase !== undefined,
  };
  const files = [
    { path: join(dir, CA_FILES.rootKey), data: exportPrivateKeyPem(rootKey, opts.passphrase), mode: 0o600 },
    {
      path: join(dir, CA_FILES.intermediateKey),
      data: exportPrivateKeyPem(intKey, opts.passphrase),
      mode: 0o600,
    },
    { path: join(dir, CA_FILES.rootCert), data: root.pem },
    { path: join(dir, CA_FILES.intermediateCert), data: intermediate.pem },
    { path: join(dir, CA_FILES.bundle), data: root.pem },
    { path: join(dir, CA_FILES.meta), data: JSON.stringify(meta, null, 2) + '\n' },
    { path: join(dir, CA_FILES.rootCrl), data: rootCrlPem(rootCert, rootKey, clock.now()) },
  ];
  writeFilesAtomic(files);
  return { meta, files: files.map((f) => f.path) };
}

const ROOT_CRL_VALIDITY_MS = 365 * DAY;

/** An empty CRL for the root (it revokes intermediates only, which mtlskit does not rotate yet). */
export function rootCrlPem(
  rootCert: Certificate,
  rootKey: KeyObject,
  now: Date,
  crlNumber: bigint = BigInt(Math.floor(now.getTime() / 1000)),
): string {
  const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
  return createCrl({
    issuerCert: rootCert,
    issuerKey: rootKey,
    entries: [],
    thisUpdate,
    nextUpdate: new Date(thisUpdate.getTime() + ROOT_CRL_VALIDITY_MS),
    crlNumber,
  }).pem;
}

export function loadFileCa(
  dirInput: string,
  passphrase: string | undefined,
  clock: Clock = systemClock,
): FileCa {
  const dir = resolve(dirInput);
  if (!existsSync(join(dir, CA_FILES.intermediateCert))) {
    throw new MtlsError('MTLS_CA_NOT_FOUND', `No CA in ${dir}.`, {
      fix: `Create one with: mtls ca init --dir ${dirInput}   (or point --dir / MTLS_CA_DIR at your CA directory)`,
    });
  }
  let meta: CaMeta;
  try {
    meta = JSON.parse(readInput(join(dir, CA_FILES.meta), 'CA metadata').toString('utf8')) as CaMeta;
  } catch (e) {
    if (e instanceof MtlsError) throw e;
    throw new MtlsError('MTLS_CA_CORRUPT', `${join(dir, CA_FILES.meta)} is not valid JSON.`, {
      cause: e,
      fix: 'Restore the CA directory from its backup.',
    });
  }
  const rootPem = readInput(join(dir, CA_FILES.rootCert), 'root certificate').toString('latin1');
  const intermediatePem = readInput(
    join(dir, CA_FILES.intermediateCert),
    'intermediate certificate',
  ).toString('latin1');
  const root = readCertificates(Buffer.from(rootPem), CA_FILES.rootCert)[0]!;
  const intermediate = readCertificates(Buffer.from(intermediatePem), CA_FILES.intermediateCert)[0]!;
  const keyData = readInput(join(dir, CA_FILES.intermediateKey), 'intermediate key');
  let key;
  try {
    key = readPrivateKey(keyData, passphrase, join(dir, CA_FILES.intermediateKey)).key;
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_PKI_KEY_ENCRYPTED') {
      throw new MtlsError(
        'MTLS_CA_PASSPHRASE_REQUIRED',
        `The CA key in ${dir} is encrypted and no passphrase was given.`,
        {
          fix: 'Set MTLS_CA_PASSPHRASE or pass --passphrase-file FILE.',
        },
      );
    }
    throw e;
  }
  let issuer: CertificateIssuer;
  try {
    issuer = createIssuer(intermediate, key, clock);
  } catch (e) {
    throw new MtlsError(
      'MTLS_CA_CORRUPT',
      `The intermediate key in ${dir} does not match intermediate.crt.`,
      {
        cause: e,
        fix: 'Restore the CA directory from its backup; keys and certificates must come from the same "mtls ca init".',
      },
    );
  }
  const rootCrlPath = join(dir, CA_FILES.rootCrl);
  const rootCrlPem = existsSync(rootCrlPath)
    ? readInput(rootCrlPath, 'root CRL').toString('latin1')
    : undefined;
  return { dir, meta, root, intermediate, issuer, issuerKey: key, rootPem, intermediatePem, rootCrlPem };
}

/** Re-signs root.crl with the root key (which stays offline otherwise). */
export function refreshRootCrl(
  dirInput: string,
  passphrase: string | undefined,
  clock: Clock = systemClock,
): { path: string; nextUpdate: Date } {
  const dir = resolve(dirInput);
  const ca = loadFileCa(dir, passphrase, clock);
  let rootKey: KeyObject;
  try {
    rootKey = readPrivateKey(
      readInput(join(dir, CA_FILES.rootKey), 'root key'),
      passphrase,
      join(dir, CA_FILES.rootKey),
    ).key;
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_PKI_KEY_ENCRYPTED') {
      throw new MtlsError(
        'MTLS_CA_PASSPHRASE_REQUIRED',
        `The root key in ${dir} is encrypted and no passphrase was given.`,
        { fix: 'Set MTLS_CA_PASSPHRASE or pass --passphrase-file FILE.' },
      );
    }
    throw e;
  }
  const now = clock.now();
  const path = join(dir, CA_FILES.rootCrl);
  writeFilesAtomic([{ path, data: rootCrlPem(ca.root, rootKey, now) }], { overwrite: true });
  return { path, nextUpdate: new Date(Math.floor(now.getTime() / 1000) * 1000 + ROOT_CRL_VALIDITY_MS) };
}
