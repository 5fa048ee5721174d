// The offline CA kept as files in a directory: root + intermediate with encrypted keys, a trust
// bundle, and a small metadata file. The online service (mtls ca serve) loads the same directory.
import type { KeyObject } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, rmSync } from 'node:fs';
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
  encodePem,
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

/**
 * Root rotation: `mtls ca root stage` writes the next root + intermediate into staged/ (same file
 * names) and adds the new root to ca.pem; `mtls ca root activate` moves the current pair into
 * retired/<time>/ and the staged pair into place. ca.pem (what /v1/roots publishes and the mTLS
 * listener trusts) keeps every root until an operator removes one.
 */
export const CA_ROTATION_DIRS = { staged: 'staged', retired: 'retired' } as const;

export interface CaMeta {
  format: 1;
  name: string;
  keyType: KeyType;
  trustDomain?: string;
  createdAt: string;
  rootFingerprint: string;
  keysEncrypted: boolean;
  /** Fingerprints of roots this CA issued under before a rotation (newest last). */
  retiredRootFingerprints?: string[];
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
  /**
   * Every root this CA publishes at /v1/roots and trusts on its mTLS listener: ca.pem (the current
   * root, plus a staged or a retired one during a rotation). Mutable: mtls ca serve reloads it on SIGHUP.
   */
  trustPem: string;
  /** The staged root of a rotation in progress. */
  stagedRoot: Certificate | undefined;
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
  const { rootKey, root, rootCert, intKey, intermediate } = makeRootPair(opts, clock);
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

interface RootPair {
  rootKey: KeyObject;
  root: ReturnType<typeof selfSign>;
  rootCert: Certificate;
  intKey: KeyObject;
  intermediate: ReturnType<typeof selfSign>;
}

/** A new root and an intermediate signed by it (ca init, and the staged pair of a rotation). */
function makeRootPair(
  opts: Pick<InitCaOptions, 'name' | 'keyType' | 'rootTtlMs' | 'intermediateTtlMs'> & { generation?: string },
  clock: Clock,
): RootPair {
  const suffix = opts.generation ? ` ${opts.generation}` : '';
  const rootName: DistinguishedName = [
    [{ oid: '2.5.4.10', value: opts.name }],
    [{ oid: '2.5.4.3', value: `${opts.name} Root${suffix}` }],
  ];
  const intName: DistinguishedName = [
    [{ oid: '2.5.4.10', value: opts.name }],
    [{ oid: '2.5.4.3', value: `${opts.name} Intermediate${suffix}` }],
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
  return { rootKey, root, rootCert, intKey, intermediate };
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
  const staged = stagedRootOf(dir);
  return {
    dir,
    meta,
    root,
    intermediate,
    issuer,
    issuerKey: key,
    rootPem,
    intermediatePem,
    rootCrlPem,
    trustPem: loadTrustPem(dir, rootPem),
    stagedRoot: staged,
  };
}

function stagedRootOf(dir: string): Certificate | undefined {
  const p = join(dir, CA_ROTATION_DIRS.staged, CA_FILES.rootCert);
  return existsSync(p) ? readCertificates(readInput(p, 'staged root certificate'), p)[0] : undefined;
}

/**
 * The roots to publish and trust: ca.pem, always with the current root and any staged root in it
 * (older CA directories have ca.pem = root.crt, which reads the same).
 */
export function loadTrustPem(dirInput: string, rootPem?: string): string {
  const dir = resolve(dirInput);
  const bundlePath = join(dir, CA_FILES.bundle);
  const current = rootPem ?? readInput(join(dir, CA_FILES.rootCert), 'root certificate').toString('latin1');
  const parts: Certificate[] = existsSync(bundlePath)
    ? readCertificates(readInput(bundlePath, 'CA trust bundle'), bundlePath)
    : [];
  const staged = stagedRootOf(dir);
  for (const c of [
    ...readCertificates(Buffer.from(current), CA_FILES.rootCert),
    ...(staged ? [staged] : []),
  ]) {
    if (!parts.some((p) => p.der.equals(c.der))) parts.push(c);
  }
  return parts.map((c) => encodePem('CERTIFICATE', c.der)).join('');
}

function readCaKey(path: string, passphrase: string | undefined, what: string): KeyObject {
  try {
    return readPrivateKey(readInput(path, what), passphrase, path).key;
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_PKI_KEY_ENCRYPTED') {
      throw new MtlsError(
        'MTLS_CA_PASSPHRASE_REQUIRED',
        `The ${what} ${path} is encrypted and no passphrase was given.`,
        { fix: 'Set MTLS_CA_PASSPHRASE or pass --passphrase-file FILE.' },
      );
    }
    throw e;
  }
}

/**
 * First step of a root rotation: a new root + intermediate in staged/ (keys encrypted with the CA
 * passphrase, like ca init), and the new root appended to ca.pem so that /v1/roots publishes it and
 * agents trust it before any certificate is issued under it.
 */
export function stageRoot(
  dirInput: string,
  passphrase: string | undefined,
  opts: { rootTtlMs?: number; intermediateTtlMs?: number; clock?: Clock } = {},
): { fingerprint: string; files: string[] } {
  const dir = resolve(dirInput);
  const clock = opts.clock ?? systemClock;
  const ca = loadFileCa(dir, passphrase, clock);
  // The current root key must decrypt too: the same passphrase protects the next one.
  readCaKey(join(dir, CA_FILES.rootKey), passphrase, 'root key');
  const stagedDir = join(dir, CA_ROTATION_DIRS.staged);
  if (existsSync(stagedDir)) {
    throw new MtlsError('MTLS_CA_STAGED_EXISTS', `${stagedDir} already holds a staged root.`, {
      fix: `Activate it with: mtls ca root activate --dir ${dirInput}   (or remove ${stagedDir} if it was never published)`,
    });
  }
  if (ca.meta.keysEncrypted && passphrase === undefined) {
    throw new MtlsError(
      'MTLS_CA_PASSPHRASE_REQUIRED',
      'The CA keys are encrypted and no passphrase was given.',
      {
        fix: 'Set MTLS_CA_PASSPHRASE or pass --passphrase-file FILE.',
      },
    );
  }
  const generation = clock.now().toISOString().slice(0, 10);
  const pair = makeRootPair(
    {
      name: ca.meta.name,
      keyType: ca.meta.keyType,
      generation,
      ...(opts.rootTtlMs !== undefined ? { rootTtlMs: opts.rootTtlMs } : {}),
      ...(opts.intermediateTtlMs !== undefined ? { intermediateTtlMs: opts.intermediateTtlMs } : {}),
    },
    clock,
  );
  const pass = ca.meta.keysEncrypted ? passphrase : undefined;
  const files = [
    { path: join(stagedDir, CA_FILES.rootKey), data: exportPrivateKeyPem(pair.rootKey, pass), mode: 0o600 },
    {
      path: join(stagedDir, CA_FILES.intermediateKey),
      data: exportPrivateKeyPem(pair.intKey, pass),
      mode: 0o600,
    },
    { path: join(stagedDir, CA_FILES.rootCert), data: pair.root.pem },
    { path: join(stagedDir, CA_FILES.intermediateCert), data: pair.intermediate.pem },
    { path: join(stagedDir, CA_FILES.rootCrl), data: rootCrlPem(pair.rootCert, pair.rootKey, clock.now()) },
  ];
  writeFilesAtomic(files);
  // ca.pem last: until this rename the staged root is not published (loadTrustPem adds it anyway).
  const bundle = loadTrustPem(dir, ca.rootPem);
  writeFilesAtomic([{ path: join(dir, CA_FILES.bundle), data: bundle }], { overwrite: true });
  return {
    fingerprint: fingerprint256(pair.rootCert),
    files: [...files.map((f) => f.path), join(dir, CA_FILES.bundle)],
  };
}

/**
 * Second step: the staged pair becomes the issuer. The current pair is kept in retired/<time>/; ca.pem
 * keeps the old root (certificates issued under it stay valid until they expire). A running
 * mtls ca serve issues with the new intermediate after its next restart.
 */
export function activateStagedRoot(
  dirInput: string,
  passphrase: string | undefined,
  clock: Clock = systemClock,
): { fingerprint: string; previousFingerprint: string; retiredDir: string } {
  const dir = resolve(dirInput);
  const stagedDir = join(dir, CA_ROTATION_DIRS.staged);
  if (!existsSync(join(stagedDir, CA_FILES.rootCert))) {
    throw new MtlsError('MTLS_CA_NO_STAGED_ROOT', `There is no staged root in ${dir}.`, {
      fix: `Stage one first: mtls ca root stage --dir ${dirInput}, then wait until every agent's trust bundle holds it.`,
    });
  }
  const current = loadFileCa(dir, passphrase, clock);
  // The staged pair must load with this passphrase before anything moves.
  const staged = loadFileCa(stagedDirAsCa(dir, current.meta), passphrase, clock);
  readCaKey(join(stagedDir, CA_FILES.rootKey), passphrase, 'staged root key');
  const stamp = clock.now().toISOString().replace(/:/g, '-');
  const retiredDir = join(dir, CA_ROTATION_DIRS.retired, stamp);
  mkdirSync(retiredDir, { recursive: true, mode: 0o700 });
  for (const f of [
    CA_FILES.rootCert,
    CA_FILES.rootKey,
    CA_FILES.intermediateCert,
    CA_FILES.intermediateKey,
    CA_FILES.rootCrl,
  ]) {
    if (existsSync(join(dir, f))) cpSync(join(dir, f), join(retiredDir, f), { preserveTimestamps: true });
  }
  const meta: CaMeta = {
    ...current.meta,
    rootFingerprint: fingerprint256(staged.root),
    retiredRootFingerprints: [...(current.meta.retiredRootFingerprints ?? []), current.meta.rootFingerprint],
  };
  const bundle = loadTrustPem(dir, current.rootPem);
  const read = (f: string): Buffer => readInput(join(stagedDir, f), f);
  writeFilesAtomic(
    [
      { path: join(dir, CA_FILES.rootKey), data: read(CA_FILES.rootKey), mode: 0o600 },
      { path: join(dir, CA_FILES.intermediateKey), data: read(CA_FILES.intermediateKey), mode: 0o600 },
      { path: join(dir, CA_FILES.rootCert), data: read(CA_FILES.rootCert) },
      { path: join(dir, CA_FILES.intermediateCert), data: read(CA_FILES.intermediateCert) },
      { path: join(dir, CA_FILES.rootCrl), data: read(CA_FILES.rootCrl) },
      { path: join(dir, CA_FILES.bundle), data: bundle },
      { path: join(dir, CA_FILES.meta), data: JSON.stringify(meta, null, 2) + '\n' },
    ],
    { overwrite: true },
  );
  rmSync(stagedDir, { recursive: true, force: true });
  return { fingerprint: meta.rootFingerprint, previousFingerprint: current.meta.rootFingerprint, retiredDir };
}

/** staged/ has no ca.json of its own: loadFileCa reads it through a temporary view. */
function stagedDirAsCa(dir: string, meta: CaMeta): string {
  const stagedDir = join(dir, CA_ROTATION_DIRS.staged);
  if (!existsSync(join(stagedDir, CA_FILES.meta)))
    writeFilesAtomic([{ path: join(stagedDir, CA_FILES.meta), data: JSON.stringify(meta, null, 2) + '\n' }]);
  return stagedDir;
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
