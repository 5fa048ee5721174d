import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { parseCertificate } from './certificate.js';
import { createCrl, findRevoked, parseCrl, verifyCrlSignature } from './crl.js';
import * as der from './der.js';
import { createIssuer, selfSign } from './issue.js';
import { generateKey, spkiOf } from './keys.js';
import { parseName } from './names.js';
import { OID } from './oids.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const clock = { now: () => T0 };

function makeCa(name = 'CN=CRL Test Root', keyType: 'p256' | 'rsa2048' | 'ed25519' = 'p256') {
  const key = generateKey(keyType);
  const cert = parseCertificate(
    selfSign(key, { profile: 'root', subject: parseName(name), ttlMs: 86_400_000 }, clock).der,
  );
  return { key, cert };
}

const ca = makeCa();

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}

describe('createCrl / parseCrl', () => {
  it('round-trips a v2 CRL with CRL number, AKI and reasons', () => {
    const { der: crlDer, pem } = createCrl({
      issuerCert: ca.cert,
      issuerKey: ca.key,
      entries: [
        { serial: '0a1b2c', revokedAt: new Date('2026-01-01T00:00:00Z'), reason: 'keyCompromise' },
        { serial: 'ff00', revokedAt: new Date('2026-01-01T00:00:05Z') },
        { serial: 5n, revokedAt: new Date('2026-01-01T00:00:06Z'), reason: 'unspecified' },
      ],
      thisUpdate: T0,
      nextUpdate: new Date(T0.getTime() + 3_600_000),
      crlNumber: 42,
    });
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    for (const input of [crlDer, pem]) {
      const crl = parseCrl(input);
      expect(crl.version).toBe(2);
      expect(crl.issuerDer.equals(ca.cert.subjectDer)).toBe(true);
      expect(crl.thisUpdate.toISOString()).toBe(T0.toISOString());
      expect(crl.nextUpdate?.getTime()).toBe(T0.getTime() + 3_600_000);
      expect(crl.crlNumber).toBe('2a');
      expect(crl.crlNumberCritical).toBe(false);
      expect(crl.authorityKeyId?.equals(ca.cert.subjectKeyId!)).toBe(true);
      expect(crl.revoked.map((e) => [e.serial, e.reason])).toEqual([
        // Certificate.serial convention: hex of the INTEGER's bytes without leading zero bytes.
        ['0a1b2c', 'keyCompromise'],
        ['ff00', undefined],
        ['05', undefined],
      ]);
      expect(crl.problems).toEqual([]);
      expect(crl.unknownCritical).toEqual([]);
      expect(verifyCrlSignature(crl, ca.cert)).toBe(true);
    }
  });

  it('uses the Certificate.serial convention for lookups', () => {
    const leafKey = generateKey();
    const issued = createIssuer(ca.cert, ca.key, clock).issue({
      profile: 'client',
      subject: parseName('CN=alice'),
      publicKey: spkiOf(leafKey),
    });
    const leaf = parseCertificate(issued.der);
    const crl = parseCrl(
      createCrl({
        issuerCert: ca.cert,
        issuerKey: ca.key,
        entries: [{ serial: leaf.serial.toUpperCase(), revokedAt: T0, reason: 'superseded' }],
        thisUpdate: T0,
        nextUpdate: new Date(T0.getTime() + 1000),
        crlNumber: 1,
      }).der,
    );
    expect(findRevoked(crl, leaf.serial)?.reason).toBe('superseded');
    expect(findRevoked(crl, 'abcdef')).toBeUndefined();
  });

  it('omits revokedCertificates when empty (RFC 5280 5.1.2.6)', () => {
    const crl = parseCrl(
      createCrl({
        issuerCert: ca.cert,
        issuerKey: ca.key,
        entries: [],
        thisUpdate: T0,
        nextUpdate: new Date(T0.getTime() + 1000),
        crlNumber: 0,
      }).der,
    );
    expect(crl.revoked).toEqual([]);
    expect(crl.problems).toEqual([]);
    expect(crl.crlNumber).toBe('00');
  });

  it('signs with RSA and Ed25519 CA keys too', () => {
    for (const type of ['rsa2048', 'ed25519'] as const) {
      const other = makeCa(`CN=CRL ${type}`, type);
      const crl = parseCrl(
        createCrl({
          issuerCert: other.cert,
          issuerKey: other.key,
          entries: [{ serial: '01', revokedAt: T0 }],
          thisUpdate: T0,
          nextUpdate: new Date(T0.getTime() + 1000),
          crlNumber: 7,
        }).der,
      );
      expect(verifyCrlSignature(crl, other.cert)).toBe(true);
      expect(verifyCrlSignature(crl, ca.cert)).toBe(false);
    }
  });

  it.skipIf(!hasOpenssl())('produces CRLs that openssl accepts', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'mtls-crl-'));
    const out = createCrl({
      issuerCert: ca.cert,
      issuerKey: ca.key,
      entries: [{ serial: '1234', revokedAt: T0, reason: 'cessationOfOperation' }],
      thisUpdate: T0,
      nextUpdate: new Date(T0.getTime() + 60_000),
      crlNumber: 9,
    });
    writeFileSync(path.join(dir, 'crl.pem'), out.pem);
    writeFileSync(
      path.join(dir, 'ca.pem'),
      `-----BEGIN CERTIFICATE-----\n${ca.cert.der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`,
    );
    const text = execFileSync(
      'openssl',
      ['crl', '-in', path.join(dir, 'crl.pem'), '-CAfile', path.join(dir, 'ca.pem'), '-noout', '-text'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    ).toString();
    expect(text).toContain('X509v3 CRL Number');
    expect(text).toMatch(/Serial Number: 1234/);
    expect(text).toContain('Cessation Of Operation');
  });

  it('rejects a key that does not belong to the issuer, and inverted dates', () => {
    const other = generateKey();
    expect(() =>
      createCrl({
        issuerCert: ca.cert,
        issuerKey: other,
        entries: [],
        thisUpdate: T0,
        nextUpdate: new Date(T0.getTime() + 1),
        crlNumber: 1,
      }),
    ).toThrow(expect.objectContaining({ code: 'MTLS_PKI_KEY_MISMATCH' }));
    expect(() =>
      createCrl({
        issuerCert: ca.cert,
        issuerKey: ca.key,
        entries: [],
        thisUpdate: T0,
        nextUpdate: T0,
        crlNumber: 1,
      }),
    ).toThrow(expect.objectContaining({ code: 'MTLS_PKI_BAD_VALIDITY' }));
    expect(() =>
      createCrl({
        issuerCert: ca.cert,
        issuerKey: ca.key,
        entries: [{ serial: 'xyz', revokedAt: T0 }],
        thisUpdate: T0,
        nextUpdate: new Date(T0.getTime() + 1),
        crlNumber: 1,
      }),
    ).toThrow(expect.objectContaining({ code: 'MTLS_PKI_BAD_DER' }));
  });

  it('refuses to sign CRLs with a CA certificate lacking cRLSign', () => {
    // A client certificate has keyUsage digitalSignature only.
    const k = generateKey();
    const leaf = parseCertificate(
      createIssuer(ca.cert, ca.key, clock).issue({
        profile: 'client',
        subject: parseName('CN=not-a-ca'),
        publicKey: spkiOf(k),
      }).der,
    );
    expect(() =>
      createCrl({
        issuerCert: leaf,
        issuerKey: k,
        entries: [],
        thisUpdate: T0,
        nextUpdate: new Date(T0.getTime() + 1),
        crlNumber: 1,
      }),
    ).toThrow(expect.objectContaining({ code: 'MTLS_PKI_PROFILE_VIOLATION' }));
  });

  it('detects tampering through the signature', () => {
    const out = createCrl({
      issuerCert: ca.cert,
      issuerKey: ca.key,
      entries: [{ serial: '77', revokedAt: T0 }],
      thisUpdate: T0,
      nextUpdate: new Date(T0.getTime() + 1000),
      crlNumber: 3,
    });
    const bytes = Buffer.from(out.der);
    const at = bytes.indexOf(Buffer.from([0x02, 0x01, 0x77]));
    bytes[at + 2] = 0x78;
    const crl = parseCrl(bytes);
    expect(crl.revoked[0]!.serial).toBe('78');
    expect(verifyCrlSignature(crl, ca.cert)).toBe(false);
  });
});

describe('parseCrl problems and errors', () => {
  function tbsWith(parts: { exts?: Buffer[]; version?: boolean; entries?: Buffer[] }): Buffer {
    const alg = der.seq(der.oid(OID.ecdsaWithSHA256));
    const fields = [
      ...(parts.version === false ? [] : [der.integer(1)]),
      alg,
      ca.cert.subjectDer,
      der.time(T0),
      der.time(new Date(T0.getTime() + 1000)),
      ...(parts.entries ? [der.seq(...parts.entries)] : []),
      ...(parts.exts ? [der.ctx(0, der.seq(...parts.exts))] : []),
    ];
    const tbs = der.seq(...fields);
    return der.seq(tbs, alg, der.bitString(Buffer.from([0x30, 0x00])));
  }
  const crlNumber = (critical: boolean) =>
    critical
      ? der.seq(der.oid(OID.crlNumber), der.boolean(true), der.octetString(der.integer(1)))
      : der.seq(der.oid(OID.crlNumber), der.octetString(der.integer(1)));

  it('lists a missing or critical CRL number as a problem', () => {
    expect(parseCrl(tbsWith({})).problems.join(' ')).toMatch(/CRL number extension is missing/);
    expect(parseCrl(tbsWith({ exts: [crlNumber(true)] })).problems.join(' ')).toMatch(/marked critical/);
    expect(parseCrl(tbsWith({ exts: [crlNumber(false)] })).problems).toEqual([]);
  });

  it('records unknown critical extensions and the issuing distribution point', () => {
    const idp = der.seq(
      der.oid(OID.issuingDistributionPoint),
      der.boolean(true),
      der.octetString(der.seq(der.tlv(0x81, Buffer.from([0xff])))),
    );
    const unknown = der.seq(der.oid('1.3.6.1.4.1.55738.666.1'), der.boolean(true), der.octetString(der.NULL));
    const crl = parseCrl(tbsWith({ exts: [crlNumber(false), idp, unknown] }));
    expect(crl.issuingDistributionPoint?.onlyContainsUserCerts).toBe(true);
    expect(crl.issuingDistributionPoint?.critical).toBe(true);
    expect(crl.unknownCritical).toEqual(['1.3.6.1.4.1.55738.666.1']);
  });

  it('throws MTLS_PKI_BAD_CRL with a fix on garbage and truncation', () => {
    const good = createCrl({
      issuerCert: ca.cert,
      issuerKey: ca.key,
      entries: [],
      thisUpdate: T0,
      nextUpdate: new Date(T0.getTime() + 1000),
      crlNumber: 1,
    }).der;
    for (const bad of [
      Buffer.from('hello'),
      good.subarray(0, good.length - 5),
      Buffer.concat([good, Buffer.from([0])]),
    ]) {
      try {
        parseCrl(bad);
        expect.unreachable('should throw');
      } catch (e) {
        expect(isMtlsError(e, 'MTLS_PKI_BAD_CRL')).toBe(true);
        expect((e as { fix?: string }).fix).toMatch(/openssl crl/);
      }
    }
    expect(() => parseCrl('not pem at all')).toThrow(expect.objectContaining({ code: 'MTLS_PKI_BAD_CRL' }));
    expect(() => parseCrl('-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n')).toThrow(
      expect.objectContaining({ code: 'MTLS_PKI_WRONG_OBJECT' }),
    );
  });

  it('writes large CRLs quickly', () => {
    const entries = Array.from({ length: 20_000 }, (_, i) => ({
      serial: (i + 1).toString(16).padStart(32, 'a'),
      revokedAt: T0,
      reason: 'superseded' as const,
    }));
    const t0 = performance.now();
    const out = createCrl({
      issuerCert: ca.cert,
      issuerKey: ca.key,
      entries,
      thisUpdate: T0,
      nextUpdate: new Date(T0.getTime() + 1000),
      crlNumber: 2,
    });
    const ms = performance.now() - t0;
    const crl = parseCrl(out.der);
    expect(crl.revoked).toHaveLength(20_000);
    expect(verifyCrlSignature(crl, ca.cert)).toBe(true);
    expect(ms).toBeLessThan(2000);
  });
});
