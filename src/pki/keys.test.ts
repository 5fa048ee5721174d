import { createPublicKey, generateKeyPairSync, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import * as der from './der.js';
import {
  KEY_TYPES,
  describeKey,
  exportPrivateKeyPem,
  generateKey,
  isKeyType,
  keyMatchesSpki,
  keyPairWorks,
  parseKeyType,
  readPrivateKey,
  signData,
  signatureAlgorithmFor,
  sniffDerKey,
  spkiOf,
  type KeyType,
} from './keys.js';
import { OID } from './oids.js';
import { encodePem } from './pem.js';

const PASS = 'correct horse battery staple';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isMtlsError(e) ? e.code : `not an MtlsError: ${String(e)}`;
  }
  return undefined;
}

const sameKey = (a: KeyObject, b: KeyObject): boolean => spkiOf(a).equals(spkiOf(b));

let keys: Record<KeyType, KeyObject>;

beforeAll(() => {
  keys = Object.fromEntries(KEY_TYPES.map((t) => [t, generateKey(t)])) as Record<KeyType, KeyObject>;
});

describe('key types', () => {
  it('parseKeyType accepts names and aliases, refuses others with MTLS_PKI_UNSUPPORTED_KEY', () => {
    expect(parseKeyType('P-256')).toBe('p256');
    expect(parseKeyType('ecdsa')).toBe('p256');
    expect(parseKeyType('secp384r1')).toBe('p384');
    expect(parseKeyType('RSA')).toBe('rsa2048');
    expect(parseKeyType('rsa_4096')).toBe('rsa4096');
    expect(parseKeyType('Ed25519')).toBe('ed25519');
    expect(codeOf(() => parseKeyType('dsa'))).toBe('MTLS_PKI_UNSUPPORTED_KEY');
    expect(isKeyType('p256')).toBe(true);
    expect(isKeyType('p521')).toBe(false);
  });

  it('generateKey makes each type with the right parameters', () => {
    expect(describeKey(keys.p256)).toEqual({ algorithm: 'EC', curve: 'P-256', description: 'EC P-256' });
    expect(describeKey(keys.p384)).toEqual({ algorithm: 'EC', curve: 'P-384', description: 'EC P-384' });
    expect(describeKey(keys.rsa2048)).toEqual({ algorithm: 'RSA', bits: 2048, description: 'RSA 2048' });
    expect(describeKey(keys.rsa3072).bits).toBe(3072);
    expect(describeKey(keys.rsa4096).bits).toBe(4096);
    expect(describeKey(keys.ed25519)).toEqual({ algorithm: 'Ed25519', description: 'Ed25519' });
    expect(keys.rsa2048.asymmetricKeyDetails?.publicExponent).toBe(65537n);
    for (const t of KEY_TYPES) expect(keys[t].type).toBe('private');
  });

  it('signatureAlgorithmFor: SHA-256 for P-256 and RSA, SHA-384 for P-384, pure Ed25519', () => {
    expect(signatureAlgorithmFor(keys.p256)).toMatchObject({ oid: OID.ecdsaWithSHA256, hash: 'sha256' });
    expect(signatureAlgorithmFor(keys.p384)).toMatchObject({ oid: OID.ecdsaWithSHA384, hash: 'sha384' });
    const rsa = signatureAlgorithmFor(keys.rsa2048);
    expect(rsa).toMatchObject({ oid: OID.sha256WithRSAEncryption, hash: 'sha256' });
    expect(rsa.identifier.equals(der.seq(der.oid(OID.sha256WithRSAEncryption), der.NULL))).toBe(true);
    // ECDSA and EdDSA AlgorithmIdentifiers have no parameters (RFC 5758, RFC 8410)
    expect(signatureAlgorithmFor(keys.p256).identifier.equals(der.seq(der.oid(OID.ecdsaWithSHA256)))).toBe(
      true,
    );
    expect(signatureAlgorithmFor(keys.ed25519)).toMatchObject({ oid: OID.ed25519, hash: null });
    const x25519 = generateKeyPairSync('x25519').privateKey;
    expect(codeOf(() => signatureAlgorithmFor(x25519))).toBe('MTLS_PKI_UNSUPPORTED_KEY');
  });

  it('signData signs verifiably; keyMatchesSpki and keyPairWorks tell pairs apart', () => {
    for (const t of KEY_TYPES) {
      const alg = signatureAlgorithmFor(keys[t]);
      const sig = signData(Buffer.from('hello'), keys[t]);
      expect(cryptoVerify(alg.hash, Buffer.from('hello'), createPublicKey(keys[t]), sig), t).toBe(true);
      expect(keyMatchesSpki(keys[t], spkiOf(keys[t]))).toBe(true);
      expect(keyPairWorks(keys[t], createPublicKey(keys[t]))).toBe(true);
    }
    expect(keyMatchesSpki(keys.p256, spkiOf(keys.p384))).toBe(false);
    expect(keyPairWorks(keys.p256, createPublicKey(generateKey('p256')))).toBe(false);
    expect(keyPairWorks(keys.p256, createPublicKey(keys.rsa2048))).toBe(false);
    expect(spkiOf(createPublicKey(keys.p256)).equals(spkiOf(keys.p256))).toBe(true);
  });
});

describe('exportPrivateKeyPem', () => {
  it('writes PKCS#8, encrypted when a passphrase is given', () => {
    const plain = exportPrivateKeyPem(keys.p256);
    expect(plain).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const enc = exportPrivateKeyPem(keys.p256, PASS);
    expect(enc).toMatch(/^-----BEGIN ENCRYPTED PRIVATE KEY-----\n/);
    expect(sameKey(readPrivateKey(enc, PASS).key, keys.p256)).toBe(true);
    expect(codeOf(() => exportPrivateKeyPem(keys.p256, ''))).toBe('MTLS_PKI_BAD_PASSPHRASE');
  });
});

describe('readPrivateKey', () => {
  const containers = (t: KeyType): Array<[string, Buffer | string, string | undefined, string]> => {
    const k = keys[t];
    const out: Array<[string, Buffer | string, string | undefined, string]> = [
      ['PKCS#8 PEM', k.export({ type: 'pkcs8', format: 'pem' }), undefined, 'pkcs8'],
      ['PKCS#8 DER', k.export({ type: 'pkcs8', format: 'der' }), undefined, 'pkcs8'],
      ['encrypted PKCS#8 PEM', exportPrivateKeyPem(k, PASS), PASS, 'encrypted-pkcs8'],
      [
        'encrypted PKCS#8 DER',
        k.export({ type: 'pkcs8', format: 'der', cipher: 'aes-256-cbc', passphrase: PASS }),
        PASS,
        'encrypted-pkcs8',
      ],
    ];
    if (t.startsWith('rsa')) {
      out.push(['PKCS#1 PEM', k.export({ type: 'pkcs1', format: 'pem' }), undefined, 'pkcs1']);
      out.push(['PKCS#1 DER', k.export({ type: 'pkcs1', format: 'der' }), undefined, 'pkcs1']);
      out.push([
        'legacy encrypted PKCS#1 PEM',
        k.export({ type: 'pkcs1', format: 'pem', cipher: 'aes-128-cbc', passphrase: PASS }),
        PASS,
        'legacy-encrypted-pem',
      ]);
    }
    if (t === 'p256' || t === 'p384') {
      out.push(['SEC1 PEM', k.export({ type: 'sec1', format: 'pem' }), undefined, 'sec1']);
      out.push(['SEC1 DER', k.export({ type: 'sec1', format: 'der' }), undefined, 'sec1']);
      out.push([
        'legacy encrypted SEC1 PEM',
        k.export({ type: 'sec1', format: 'pem', cipher: 'aes-256-cbc', passphrase: PASS }),
        PASS,
        'legacy-encrypted-pem',
      ]);
    }
    return out;
  };

  it.each(KEY_TYPES)('%s: reads every container, PEM and DER', (t) => {
    const list = containers(t);
    expect(list.length).toBeGreaterThanOrEqual(4);
    for (const [what, data, pass, format] of list) {
      const r = readPrivateKey(data, pass, `${t} ${what}`);
      expect(r.format, what).toBe(format);
      expect(r.encrypted, what).toBe(pass !== undefined);
      expect(sameKey(r.key, keys[t]), what).toBe(true);
      if (typeof data === 'string')
        expect(sameKey(readPrivateKey(Buffer.from(data), pass).key, keys[t]), `${what} as Buffer`).toBe(true);
      if (!Buffer.isBuffer(data)) continue;
      expect(sniffDerKey(data), what).toBe(format);
    }
  });

  it.each(KEY_TYPES)(
    '%s: encrypted without a passphrase → MTLS_PKI_KEY_ENCRYPTED; wrong → MTLS_PKI_BAD_PASSPHRASE',
    (t) => {
      for (const [what, data, pass] of containers(t)) {
        if (pass === undefined) continue;
        expect(
          codeOf(() => readPrivateKey(data)),
          what,
        ).toBe('MTLS_PKI_KEY_ENCRYPTED');
        expect(
          codeOf(() => readPrivateKey(data, 'wrong passphrase')),
          what,
        ).toBe('MTLS_PKI_BAD_PASSPHRASE');
      }
    },
  );

  it('accepts a key file with text and a certificate around it, CRLF and a BOM', () => {
    const pem = keys.p256.export({ type: 'sec1', format: 'pem' }) as string;
    const bundle =
      '\ufeffsome comment\r\n' + encodePem('CERTIFICATE', Buffer.from('x')) + pem.replace(/\n/g, '\r\n');
    const r = readPrivateKey(bundle);
    expect(r.format).toBe('sec1');
    expect(sameKey(r.key, keys.p256)).toBe(true);
    const legacy = keys.rsa2048.export({
      type: 'pkcs1',
      format: 'pem',
      cipher: 'aes-128-cbc',
      passphrase: PASS,
    }) as string;
    expect(sameKey(readPrivateKey(legacy.replace(/\n/g, '\r\n'), PASS).key, keys.rsa2048)).toBe(true);
  });

  it('garbage gives clear codes: BAD_KEY, WRONG_OBJECT, BAD_PEM', () => {
    expect(codeOf(() => readPrivateKey(Buffer.from('not a key at all')))).toBe('MTLS_PKI_BAD_KEY');
    expect(codeOf(() => readPrivateKey(Buffer.alloc(0)))).toBe('MTLS_PKI_BAD_KEY');
    expect(codeOf(() => readPrivateKey(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00])))).toBe(
      'MTLS_PKI_BAD_KEY',
    );
    const der8 = keys.p256.export({ type: 'pkcs8', format: 'der' });
    expect(codeOf(() => readPrivateKey(der8.subarray(0, der8.length - 5)))).toBe('MTLS_PKI_BAD_KEY');
    // structurally PKCS#8 but the key inside is junk
    const junk = der.seq(
      der.integer(0),
      der.seq(der.oid(OID.ecPublicKey), der.oid(OID.prime256v1)),
      der.octetString(Buffer.from('junk')),
    );
    expect(sniffDerKey(junk)).toBe('pkcs8');
    const e = (() => {
      try {
        readPrivateKey(junk, undefined, 'app.key');
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(isMtlsError(e, 'MTLS_PKI_BAD_KEY')).toBe(true);
    expect((e as Error).message).toContain('app.key');
    expect(isMtlsError(e) && e.fix).toContain('openssl pkey');
    expect(codeOf(() => readPrivateKey(encodePem('CERTIFICATE', Buffer.from('x'))))).toBe(
      'MTLS_PKI_WRONG_OBJECT',
    );
    expect(
      codeOf(() =>
        readPrivateKey(createPublicKey(keys.p256).export({ type: 'spki', format: 'pem' }) as string),
      ),
    ).toBe('MTLS_PKI_WRONG_OBJECT');
    expect(codeOf(() => readPrivateKey(encodePem('PRIVATE KEY', Buffer.from('garbage bytes'))))).toBe(
      'MTLS_PKI_BAD_KEY',
    );
    const pem = keys.p256.export({ type: 'pkcs8', format: 'pem' }) as string;
    expect(codeOf(() => readPrivateKey(pem.slice(0, 80)))).toBe('MTLS_PKI_BAD_PEM');
  });

  it('sniffDerKey returns undefined for non-keys', () => {
    expect(sniffDerKey(Buffer.from('nope'))).toBeUndefined();
    expect(sniffDerKey(der.seq(der.integer(1)))).toBeUndefined();
    expect(sniffDerKey(der.integer(1))).toBeUndefined();
  });
});
