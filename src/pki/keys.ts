// Private keys: generation, PKCS#8 (optionally encrypted) export, and reading every format users
// have (PKCS#1, SEC1, PKCS#8, encrypted PKCS#8, PEM or DER).
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import { decodePem, isProbablyPem } from './pem.js';
import { OID } from './oids.js';
import * as der from './der.js';

export const KEY_TYPES = ['p256', 'p384', 'rsa2048', 'rsa3072', 'rsa4096', 'ed25519'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export function isKeyType(s: string): s is KeyType {
  return (KEY_TYPES as readonly string[]).includes(s);
}

export function parseKeyType(s: string): KeyType {
  const norm = s.toLowerCase().replace(/[-_]/g, '');
  const alias: Record<string, KeyType> = {
    ecdsa: 'p256',
    ec: 'p256',
    prime256v1: 'p256',
    secp384r1: 'p384',
    rsa: 'rsa2048',
  };
  const t = alias[norm] ?? norm;
  if (!isKeyType(t)) {
    throw new MtlsError('MTLS_PKI_UNSUPPORTED_KEY', `Unknown key type "${s}".`, {
      fix: `Use one of: ${KEY_TYPES.join(', ')} (p256 is the default and the fastest).`,
    });
  }
  return t;
}

export function generateKey(type: KeyType = 'p256'): KeyObject {
  switch (type) {
    case 'p256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    case 'p384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
    case 'rsa2048':
    case 'rsa3072':
    case 'rsa4096':
      return generateKeyPairSync('rsa', { modulusLength: Number(type.slice(3)), publicExponent: 0x10001 })
        .privateKey;
    case 'ed25519':
      return generateKeyPairSync('ed25519').privateKey;
  }
}

/** PKCS#8 PEM; encrypted (PBES2, AES-256-CBC) when a passphrase is given. */
export function exportPrivateKeyPem(key: KeyObject, passphrase?: string): string {
  if (passphrase !== undefined) {
    if (passphrase.length === 0) {
      throw new MtlsError('MTLS_PKI_BAD_PASSPHRASE', 'The passphrase is empty.', {
        fix: 'Set a non-empty passphrase (MTLS_CA_PASSPHRASE or --passphrase-file).',
      });
    }
    return key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase }) as string;
  }
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function spkiOf(key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' });
}

export interface ReadKeyResult {
  key: KeyObject;
  /** The container format that was found. */
  format: 'pkcs8' | 'encrypted-pkcs8' | 'pkcs1' | 'sec1' | 'legacy-encrypted-pem';
  encrypted: boolean;
}

const PRIVATE_LABELS: Record<string, ReadKeyResult['format']> = {
  'PRIVATE KEY': 'pkcs8',
  'ENCRYPTED PRIVATE KEY': 'encrypted-pkcs8',
  'RSA PRIVATE KEY': 'pkcs1',
  'EC PRIVATE KEY': 'sec1',
};

/**
 * Reads a private key from PEM or DER in any common container. Throws MTLS_PKI_KEY_ENCRYPTED when a
 * passphrase is needed, MTLS_PKI_BAD_PASSPHRASE when it is wrong, MTLS_PKI_BAD_KEY otherwise.
 */
export function readPrivateKey(data: Buffer | string, passphrase?: string, source = 'key'): ReadKeyResult {
  if (isProbablyPem(data)) {
    const blocks = decodePem(data, source).filter((b) => b.label in PRIVATE_LABELS);
    if (blocks.length === 0) {
      throw new MtlsError('MTLS_PKI_WRONG_OBJECT', `${source} holds no private key.`, {
        fix: 'Pass the file with "-----BEGIN PRIVATE KEY-----" (or RSA/EC PRIVATE KEY); run "mtls inspect FILE" to see what a file holds.',
      });
    }
    const block = blocks[0]!;
    let format = PRIVATE_LABELS[block.label]!;
    const legacy = block.headers['Proc-Type']?.includes('ENCRYPTED') ?? false;
    if (legacy) format = 'legacy-encrypted-pem';
    const encrypted = format === 'encrypted-pkcs8' || legacy;
    const text = typeof data === 'string' ? data : data.toString('latin1');
    return {
      key: importKey(
        legacy ? extractPemBlock(text, block.label) : block.der,
        encrypted,
        passphrase,
        source,
        format,
      ),
      format,
      encrypted,
    };
  }
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data, 'latin1');
  const format = sniffDerKey(buf);
  if (!format) {
    throw new MtlsError('MTLS_PKI_BAD_KEY', `${source} is neither a PEM private key nor a DER private key.`, {
      fix: 'Give the key file (PEM "-----BEGIN PRIVATE KEY-----" or DER PKCS#8); run "mtls inspect FILE" to see what a file holds.',
    });
  }
  return {
    key: importKey(buf, format === 'encrypted-pkcs8', passphrase, source, format),
    format,
    encrypted: format === 'encrypted-pkcs8',
  };
}

function extractPemBlock(text: string, label: string): string {
  const start = text.indexOf(`-----BEGIN ${label}-----`);
  const endMarker = `-----END ${label}-----`;
  return text.slice(start, text.indexOf(endMarker, start) + endMarker.length).replace(/\r/g, '');
}

/** Guesses the DER container of a key by its structure. */
export function sniffDerKey(buf: Buffer): ReadKeyResult['format'] | undefined {
  try {
    const top = der.readOne(buf);
    const kids = der.children(top);
    if (kids.length === 2 && kids[0]!.tag === der.Tag.SEQUENCE && kids[1]!.tag === der.Tag.OCTET_STRING)
      return 'encrypted-pkcs8';
    if (kids[0]?.tag !== der.Tag.INTEGER) return undefined;
    if (kids[1]?.tag === der.Tag.SEQUENCE && kids[2]?.tag === der.Tag.OCTET_STRING) return 'pkcs8';
    if (kids[1]?.tag === der.Tag.OCTET_STRING) return 'sec1';
    if (kids.length >= 9 && kids.every((k) => k.tag === der.Tag.INTEGER)) return 'pkcs1';
  } catch {
    return undefined;
  }
  return undefined;
}

function importKey(
  key: Buffer | string,
  encrypted: boolean,
  passphrase: string | undefined,
  source: string,
  format: ReadKeyResult['format'],
): KeyObject {
  if (encrypted && passphrase === undefined) {
    throw new MtlsError('MTLS_PKI_KEY_ENCRYPTED', `${source} is encrypted and no passphrase was given.`, {
      fix: 'Provide the passphrase with --passphrase-file FILE (or MTLS_CA_PASSPHRASE for CA keys).',
    });
  }
  try {
    if (typeof key === 'string')
      return createPrivateKey({ key, format: 'pem', passphrase: passphrase ?? '' });
    const type = format === 'pkcs1' ? 'pkcs1' : format === 'sec1' ? 'sec1' : 'pkcs8';
    return createPrivateKey({ key, format: 'der', type, ...(encrypted ? { passphrase } : {}) });
  } catch (e) {
    if (encrypted) {
      throw new MtlsError('MTLS_PKI_BAD_PASSPHRASE', `The passphrase does not decrypt ${source}.`, {
        fix: 'Check the passphrase (no trailing newline issues: --passphrase-file uses the first line) or use the key that goes with it.',
        cause: e,
      });
    }
    throw new MtlsError(
      'MTLS_PKI_BAD_KEY',
      `${source} is not a valid private key: ${(e as Error).message}.`,
      {
        fix: 'Export the key again from its source; check it with "openssl pkey -in FILE -noout".',
        cause: e,
      },
    );
  }
}

export interface KeyDescription {
  algorithm: string;
  curve?: string;
  bits?: number;
  description: string;
}

export function describeKey(key: KeyObject): KeyDescription {
  const d = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve =
        d.namedCurve === 'prime256v1'
          ? 'P-256'
          : d.namedCurve === 'secp384r1'
            ? 'P-384'
            : d.namedCurve === 'secp521r1'
              ? 'P-521'
              : (d.namedCurve ?? '?');
      return { algorithm: 'EC', curve, description: `EC ${curve}` };
    }
    case 'rsa':
    case 'rsa-pss':
      return { algorithm: 'RSA', bits: d.modulusLength ?? 0, description: `RSA ${d.modulusLength ?? '?'}` };
    case 'ed25519':
      return { algorithm: 'Ed25519', description: 'Ed25519' };
    case 'ed448':
      return { algorithm: 'Ed448', description: 'Ed448' };
    default:
      return { algorithm: String(key.asymmetricKeyType), description: String(key.asymmetricKeyType) };
  }
}

export interface SignatureAlgorithm {
  /** AlgorithmIdentifier DER, as placed in certificates, CSRs and CRLs. */
  identifier: Buffer;
  oid: string;
  hash: string | null;
}

const sigAlgCache = new Map<string, SignatureAlgorithm>();

/** The signature algorithm mtlskit uses for a signing key: SHA-256 for P-256/RSA, SHA-384 for P-384. */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const cacheKey = `${type}:${curve ?? ''}`;
  const hit = sigAlgCache.get(cacheKey);
  if (hit) return hit;
  let alg: SignatureAlgorithm;
  if (type === 'ec') {
    const [o, hash] =
      curve === 'secp384r1'
        ? [OID.ecdsaWithSHA384, 'sha384']
        : curve === 'secp521r1'
          ? [OID.ecdsaWithSHA512, 'sha512']
          : [OID.ecdsaWithSHA256, 'sha256'];
    alg = { identifier: der.seq(der.oid(o)), oid: o, hash };
  } else if (type === 'rsa') {
    alg = {
      identifier: der.seq(der.oid(OID.sha256WithRSAEncryption), der.NULL),
      oid: OID.sha256WithRSAEncryption,
      hash: 'sha256',
    };
  } else if (type === 'ed25519') {
    alg = { identifier: der.seq(der.oid(OID.ed25519)), oid: OID.ed25519, hash: null };
  } else {
    throw new MtlsError('MTLS_PKI_UNSUPPORTED_KEY', `Cannot sign with a ${String(type)} key.`, {
      fix: 'Use an EC P-256/P-384, RSA or Ed25519 key for the CA.',
    });
  }
  sigAlgCache.set(cacheKey, alg);
  return alg;
}

export function signData(
  data: Buffer,
  key: KeyObject,
  alg: SignatureAlgorithm = signatureAlgorithmFor(key),
): Buffer {
  return cryptoSign(alg.hash, data, key);
}

/** True when the private key and the public key (SPKI DER) are one pair. */
export function keyMatchesSpki(key: KeyObject, spki: Buffer): boolean {
  try {
    return spkiOf(key).equals(spki);
  } catch {
    return false;
  }
}

/** Sign-and-verify round trip: proves possession independently of encoding differences. */
export function keyPairWorks(privateKey: KeyObject, publicKey: KeyObject): boolean {
  try {
    const msg = Buffer.from('mtlskit key check');
    const alg = signatureAlgorithmFor(privateKey);
    return cryptoVerify(alg.hash, msg, publicKey, cryptoSign(alg.hash, msg, privateKey));
  } catch {
    return false;
  }
}
