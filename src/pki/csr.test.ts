import { execFileSync } from 'node:child_process';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { createCsr, parseCsr, readVerifiedCsr, requestedSans, verifyCsr } from './csr.js';
import * as der from './der.js';
import { KEY_TYPES, generateKey, spkiOf, type KeyType } from './keys.js';
import { formatName, parseName, type San } from './names.js';
import { OID } from './oids.js';
import { decodePem, encodePem } from './pem.js';

let dir: string;
let keys: Record<KeyType, KeyObject>;

const SANS: San[] = [
  { type: 'dns', value: 'api.example.org' },
  { type: 'ip', value: '10.0.0.1' },
  { type: 'ip', value: '2001:db8::1' },
  { type: 'uri', value: 'spiffe://example.org/ns/prod/sa/api' },
  { type: 'email', value: 'ops@example.org' },
];

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isMtlsError(e) ? e.code : `not an MtlsError: ${String(e)}`;
  }
  return undefined;
}

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mtlskit-csr-'));
  keys = Object.fromEntries(KEY_TYPES.map((t) => [t, generateKey(t)])) as Record<KeyType, KeyObject>;
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('createCsr / parseCsr / verifyCsr', () => {
  it.each(KEY_TYPES)('%s: our CSR parses, verifies here and in openssl req -verify', (t) => {
    const subject = parseName('C=DE,O=Example GmbH,CN=api.example.org');
    const csr = createCsr({ key: keys[t], subject, sans: SANS });
    expect(csr.pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----\n/);
    expect(decodePem(csr.pem)[0]!.der.equals(csr.der)).toBe(true);
    const parsed = readVerifiedCsr(csr.pem);
    expect(formatName(parsed.subject)).toBe('C=DE, O=Example GmbH, CN=api.example.org');
    expect(parsed.spki.equals(spkiOf(keys[t]))).toBe(true);
    expect(requestedSans(parsed)).toEqual(SANS);
    expect(parsed.requestedExtensions).toEqual([]);
    expect(parseCsr(csr.der).info.equals(parsed.info)).toBe(true);

    const file = join(dir, `ours-${t}.csr`);
    writeFileSync(file, csr.pem);
    const text = openssl(['req', '-in', file, '-noout', '-verify', '-text']);
    expect(text).toContain('DNS:api.example.org');
    expect(text).toContain('IP Address:10.0.0.1');
    expect(text).toContain('URI:spiffe://example.org/ns/prod/sa/api');
    expect(text).toContain('email:ops@example.org');
  });

  it('a CSR without SANs and with an empty subject', () => {
    const csr = readVerifiedCsr(createCsr({ key: keys.p256, subject: [] }).der);
    expect(csr.subject).toEqual([]);
    expect(csr.subjectAltNames).toEqual([]);
    expect(requestedSans(csr)).toEqual([]);
  });

  it('reads NEW CERTIFICATE REQUEST labels and PEM with text around it', () => {
    const csr = createCsr({ key: keys.p256, subject: parseName('CN=legacy') });
    const legacy = `Some header\n${encodePem('NEW CERTIFICATE REQUEST', csr.der)}trailer`;
    expect(formatName(readVerifiedCsr(legacy).subject)).toBe('CN=legacy');
  });
});

describe('CSRs made by openssl req', () => {
  const cases: Array<[string, string[]]> = [
    ['RSA 2048', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']],
    ['EC P-256', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']],
    ['EC P-384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384']],
  ];

  it.each(cases)('%s: subject, SANs, other requested extensions, signature', (name, keyArgs) => {
    const slug = name.replace(/\W/g, '');
    const keyFile = join(dir, `${slug}.key`);
    const csrFile = join(dir, `${slug}.csr`);
    openssl(['genpkey', ...keyArgs, '-out', keyFile]);
    openssl([
      'req',
      '-new',
      '-key',
      keyFile,
      '-out',
      csrFile,
      '-subj',
      '/C=US/O=Example, Inc./OU=Ops+OU=Dev/CN=api.example.org',
      '-addext',
      'subjectAltName=DNS:api.example.org,DNS:*.api.example.org,IP:192.0.2.7,IP:::1,URI:spiffe://example.org/api,email:ops@example.org',
      '-addext',
      'keyUsage=critical,digitalSignature',
      '-addext',
      'extendedKeyUsage=clientAuth',
    ]);
    const csr = readVerifiedCsr(readFileSync(csrFile), csrFile);
    expect(formatName(csr.subject)).toBe('C=US, O=Example\\, Inc., OU=Dev + OU=Ops, CN=api.example.org'); // DER sorts a SET OF
    expect(requestedSans(csr)).toEqual([
      { type: 'dns', value: 'api.example.org' },
      { type: 'dns', value: '*.api.example.org' },
      { type: 'ip', value: '192.0.2.7' },
      { type: 'ip', value: '::1' },
      { type: 'uri', value: 'spiffe://example.org/api' },
      { type: 'email', value: 'ops@example.org' },
    ]);
    expect(csr.requestedExtensions).toEqual([OID.keyUsage, OID.extKeyUsage]);
    const key = createPrivateKey(readFileSync(keyFile));
    expect(csr.spki.equals(spkiOf(key))).toBe(true);
    expect(csr.publicKey.description).toBe(name);
    // the DER form works too
    const derFile = join(dir, `${slug}.csr.der`);
    openssl(['req', '-in', csrFile, '-outform', 'DER', '-out', derFile]);
    expect(readVerifiedCsr(readFileSync(derFile)).der.equals(csr.der)).toBe(true);
  });
});

describe('broken CSRs', () => {
  const good = (): Buffer =>
    createCsr({ key: keys.p256, subject: parseName('CN=api'), sans: [SANS[0]!] }).der;

  it('a truncated CSR gives MTLS_PKI_BAD_CSR with a fix', () => {
    const d = good();
    for (const cut of [1, 10, d.length - 40, d.length - 1]) {
      expect(
        codeOf(() => parseCsr(d.subarray(0, cut))),
        `cut at ${cut}`,
      ).toBe('MTLS_PKI_BAD_CSR');
      expect(codeOf(() => parseCsr(encodePem('CERTIFICATE REQUEST', d.subarray(0, cut))))).toBe(
        'MTLS_PKI_BAD_CSR',
      );
    }
    try {
      parseCsr(d.subarray(0, 50));
    } catch (e) {
      expect((e as Error).message).toMatch(/^Not a valid certificate signing request: /);
      expect(isMtlsError(e) && e.fix).toContain('openssl req -new');
    }
    // a truncated PEM text (no END line) is a PEM problem
    const pem = encodePem('CERTIFICATE REQUEST', d);
    expect(codeOf(() => parseCsr(pem.slice(0, 120)))).toBe('MTLS_PKI_BAD_PEM');
  });

  it('garbage, trailing data, wrong version and a certificate give clear codes', () => {
    expect(codeOf(() => parseCsr(Buffer.from('garbage')))).toBe('MTLS_PKI_BAD_CSR');
    expect(codeOf(() => parseCsr(Buffer.concat([good(), Buffer.from([0])])))).toBe('MTLS_PKI_BAD_CSR');
    expect(codeOf(() => parseCsr(der.seq(der.integer(1))))).toBe('MTLS_PKI_BAD_CSR');
    expect(codeOf(() => parseCsr(encodePem('CERTIFICATE', Buffer.from('x'))))).toBe('MTLS_PKI_WRONG_OBJECT');
    const d = good();
    const version = d.indexOf(Buffer.from([0x02, 0x01, 0x00]));
    const v2 = Buffer.from(d);
    v2[version + 2] = 1;
    expect(codeOf(() => parseCsr(v2))).toBe('MTLS_PKI_BAD_CSR');
  });

  it('a flipped signature byte gives MTLS_PKI_CSR_SIGNATURE, for every key type', () => {
    for (const t of KEY_TYPES) {
      const d = Buffer.from(createCsr({ key: keys[t], subject: parseName('CN=api') }).der);
      d[d.length - 2]! ^= 0x01;
      const csr = parseCsr(d);
      expect(
        codeOf(() => verifyCsr(csr)),
        t,
      ).toBe('MTLS_PKI_CSR_SIGNATURE');
      expect(
        codeOf(() => readVerifiedCsr(d)),
        t,
      ).toBe('MTLS_PKI_CSR_SIGNATURE');
    }
  });

  it('an altered subject (signed bytes changed) gives MTLS_PKI_CSR_SIGNATURE', () => {
    const d = Buffer.from(createCsr({ key: keys.rsa2048, subject: parseName('CN=api') }).der);
    const at = d.indexOf(Buffer.from('api'));
    d[at] = 'x'.charCodeAt(0);
    const csr = parseCsr(d);
    expect(formatName(csr.subject)).toBe('CN=xpi');
    expect(codeOf(() => verifyCsr(csr))).toBe('MTLS_PKI_CSR_SIGNATURE');
  });

  it('a CSR signed by another key gives MTLS_PKI_CSR_SIGNATURE', () => {
    const a = createCsr({ key: keys.p256, subject: parseName('CN=a') }).der;
    const b = createCsr({ key: generateKey('p256'), subject: parseName('CN=a') }).der;
    // a's info + b's signature
    const [infoA] = der.children(der.readOne(a));
    const [, algB, sigB] = der.children(der.readOne(b));
    const mixed = der.seq(der.raw(infoA!), der.raw(algB!), der.raw(sigB!));
    expect(codeOf(() => readVerifiedCsr(mixed))).toBe('MTLS_PKI_CSR_SIGNATURE');
  });
});
