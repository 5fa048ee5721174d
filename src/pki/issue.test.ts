import { execFileSync } from 'node:child_process';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { extension, isSignedBy, parseCertificate, type Certificate } from './certificate.js';
import * as der from './der.js';
import {
  CLOCK_SKEW_MS,
  createIssuer,
  issueParsed,
  randomSerial,
  selfSign,
  type CertificateIssuer,
  type Clock,
  type IssueRequest,
} from './issue.js';
import { KEY_TYPES, generateKey, spkiOf, type KeyType } from './keys.js';
import { parseName, type San } from './names.js';
import { OID } from './oids.js';
import { PROFILES } from './profiles.js';
import { keyIdentifier } from './spki.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = new Date('2030-06-15T12:00:00.000Z');
const clock: Clock = { now: () => NOW };

let dir: string;
let keys: Record<KeyType, KeyObject>;
let rootKey: KeyObject;
let root: Certificate;
let interKey: KeyObject;
let inter: Certificate;
let issuer: CertificateIssuer;

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isMtlsError(e) ? e.code : `not an MtlsError: ${String(e)}`;
  }
  return undefined;
}

const dns = (value: string): San => ({ type: 'dns', value });
const uri = (value: string): San => ({ type: 'uri', value });

/** Each extension as [oid, critical, hex value], in order. */
const extTable = (c: Certificate): Array<[string, boolean, string]> =>
  c.extensions.map((e) => [e.oid, e.critical, e.value.toString('hex')]);

const hexOf = (b: Buffer): string => b.toString('hex');
const BC_LEAF = hexOf(der.seq());
const bcCa = (pathLen: number): string => hexOf(der.seq(der.boolean(true), der.integer(pathLen)));
const ku = (...bits: number[]): string => hexOf(der.namedBits(bits));
const eku = (...oids: string[]): string => hexOf(der.seq(...oids.map((o) => der.oid(o))));
const ski = (spki: Buffer): string => hexOf(der.octetString(keyIdentifier(spki)));
const aki = (c: Certificate): string => hexOf(der.seq(der.ctx(0, c.subjectKeyId!, false)));
const DS = 0;
const KE = 2;
const KCS = 5;
const CRL = 6;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mtlskit-issue-'));
  keys = Object.fromEntries(KEY_TYPES.map((t) => [t, generateKey(t)])) as Record<KeyType, KeyObject>;
  rootKey = generateKey('p384');
  root = parseCertificate(
    selfSign(rootKey, { profile: 'root', subject: parseName('C=DE,O=Example,CN=Example Root CA') }, clock)
      .der,
  );
  interKey = generateKey('p256');
  inter = issueParsed(createIssuer(root, rootKey, clock), {
    profile: 'intermediate',
    subject: parseName('O=Example,CN=Example Issuing CA'),
    publicKey: spkiOf(interKey),
  }).cert;
  issuer = createIssuer(inter, interKey, clock);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('profile extensions, exactly', () => {
  it('root: CA:TRUE pathlen 1 critical, keyCertSign+cRLSign critical, SKI, no AKI, no EKU', () => {
    expect(extTable(root)).toEqual([
      [OID.basicConstraints, true, bcCa(1)],
      [OID.keyUsage, true, ku(KCS, CRL)],
      [OID.subjectKeyIdentifier, false, ski(root.spki)],
    ]);
    expect(root.version).toBe(3);
    expect(root.issuerDer.equals(root.subjectDer)).toBe(true);
    expect(isSignedBy(root, root)).toBe(true);
    expect(root.signatureAlgorithm).toBe(OID.ecdsaWithSHA384);
  });

  it('intermediate: CA:TRUE pathlen 0, digitalSignature+keyCertSign+cRLSign, SKI, AKI of the root', () => {
    expect(extTable(inter)).toEqual([
      [OID.basicConstraints, true, bcCa(0)],
      [OID.keyUsage, true, ku(DS, KCS, CRL)],
      [OID.subjectKeyIdentifier, false, ski(inter.spki)],
      [OID.authorityKeyIdentifier, false, aki(root)],
    ]);
    expect(inter.issuerDer.equals(root.subjectDer)).toBe(true);
    expect(isSignedBy(inter, root)).toBe(true);
    const wider = issueParsed(createIssuer(root, rootKey, clock), {
      profile: 'intermediate',
      subject: parseName('CN=Wide'),
      publicKey: spkiOf(keys.p256),
      pathLen: 2,
    }).cert;
    expect(wider.basicConstraints).toEqual({ ca: true, pathLen: 2 });
  });

  const leafCases: Array<[IssueRequest['profile'], San[], string[]]> = [
    ['server', [dns('api.example.org'), { type: 'ip', value: '10.0.0.1' }], [OID.serverAuth]],
    ['client', [], [OID.clientAuth]],
    ['spiffe', [uri('spiffe://example.org/ns/prod/sa/api')], [OID.serverAuth, OID.clientAuth]],
    ['peer', [dns('svc.internal')], [OID.serverAuth, OID.clientAuth]],
  ];

  for (const [profile, sans, ekus] of leafCases) {
    it.each(KEY_TYPES)(
      `${profile} with %s: CA:FALSE, keyUsage for the key type, EKU, SKI, AKI, SAN`,
      (kt) => {
        const pub = spkiOf(keys[kt]);
        const { cert } = issueParsed(issuer, {
          profile,
          subject: parseName('CN=workload'),
          sans,
          publicKey: pub,
        });
        const rsaExtra = kt.startsWith('rsa') && PROFILES[profile].rsaKeyUsage.includes('keyEncipherment');
        expect(extTable(cert)).toEqual([
          [OID.basicConstraints, true, BC_LEAF],
          [OID.keyUsage, true, rsaExtra ? ku(DS, KE) : ku(DS)],
          [OID.extKeyUsage, false, eku(...ekus)],
          [OID.subjectKeyIdentifier, false, ski(pub)],
          [OID.authorityKeyIdentifier, false, aki(inter)],
          ...(sans.length
            ? [
                [OID.subjectAltName, false, hexOf(der.seq(...sans.map((s) => parseCertSan(s))))] as [
                  string,
                  boolean,
                  string,
                ],
              ]
            : []),
        ]);
        expect(cert.basicConstraints).toEqual({ ca: false });
        expect(cert.subjectAltNames).toEqual(sans);
        expect(isSignedBy(cert, inter)).toBe(true);
        const x = new X509Certificate(cert.der);
        expect(x.ca).toBe(false);
        expect(x.keyUsage).toEqual(ekus); // Node reports the EKU OIDs here
        expect(x.checkIssued(new X509Certificate(inter.der))).toBe(true);
      },
    );
  }

  it('RSA client certificates get no keyEncipherment (client keys only sign)', () => {
    const { cert } = issueParsed(issuer, {
      profile: 'client',
      subject: parseName('CN=c'),
      publicKey: spkiOf(keys.rsa2048),
    });
    expect(cert.keyUsage).toEqual(['digitalSignature']);
  });

  it('an empty subject makes the SAN critical (RFC 5280 4.2.1.6)', () => {
    const { cert } = issueParsed(issuer, {
      profile: 'spiffe',
      sans: [uri('spiffe://example.org/a')],
      publicKey: spkiOf(keys.p256),
    });
    expect(cert.subject).toEqual([]);
    expect(cert.subjectDer.toString('hex')).toBe('3000');
    expect(extension(cert, OID.subjectAltName)?.critical).toBe(true);
  });

  it('AIA and CRL distribution points when URLs are given', () => {
    const { cert } = issueParsed(issuer, {
      profile: 'server',
      sans: [dns('a.example')],
      publicKey: spkiOf(keys.p256),
      ocspUrls: ['http://ocsp.example/'],
      caIssuerUrls: ['http://ca.example/issuing.crt'],
      crlUrls: ['http://ca.example/issuing.crl', 'http://backup.example/issuing.crl'],
    });
    expect(cert.ocspUrls).toEqual(['http://ocsp.example/']);
    expect(cert.caIssuerUrls).toEqual(['http://ca.example/issuing.crt']);
    expect(cert.crlDistributionPoints).toEqual([
      'http://ca.example/issuing.crl',
      'http://backup.example/issuing.crl',
    ]);
    expect(cert.extensions.map((e) => e.oid).slice(-2)).toEqual([
      OID.authorityInfoAccess,
      OID.crlDistributionPoints,
    ]);
    expect(new X509Certificate(cert.der).infoAccess).toContain('OCSP - URI:http://ocsp.example/');
  });
});

function parseCertSan(s: San): Buffer {
  switch (s.type) {
    case 'dns':
      return der.tlv(0x82, Buffer.from(s.value));
    case 'uri':
      return der.tlv(0x86, Buffer.from(s.value));
    case 'email':
      return der.tlv(0x81, Buffer.from(s.value));
    case 'ip':
      return der.tlv(0x87, Buffer.from(s.value.split('.').map(Number)));
  }
}

describe('openssl verify -x509_strict accepts every profile and key type', () => {
  it.each(KEY_TYPES)('%s', (kt) => {
    const k = keys[kt];
    const r = parseCertificate(selfSign(k, { profile: 'root', subject: parseName(`CN=Root ${kt}`) }).der);
    const i = issueParsed(createIssuer(r, k), {
      profile: 'intermediate',
      subject: parseName(`CN=Issuing ${kt}`),
      publicKey: spkiOf(k),
    }).cert;
    const iss = createIssuer(i, k);
    const pem = (c: Certificate): string =>
      `-----BEGIN CERTIFICATE-----\n${c.der.toString('base64')}\n-----END CERTIFICATE-----\n`;
    const rootFile = join(dir, `root-${kt}.pem`);
    const interFile = join(dir, `inter-${kt}.pem`);
    writeFileSync(rootFile, pem(r));
    writeFileSync(interFile, pem(i));
    const leaves: Array<[string, IssueRequest, string[]]> = [
      [
        'server',
        {
          profile: 'server',
          subject: parseName('CN=api'),
          sans: [dns('api.example.org')],
          publicKey: spkiOf(k),
        },
        ['sslserver'],
      ],
      [
        'client',
        { profile: 'client', subject: parseName('CN=payments'), publicKey: spkiOf(k) },
        ['sslclient'],
      ],
      [
        'spiffe',
        { profile: 'spiffe', sans: [uri('spiffe://example.org/api')], publicKey: spkiOf(k) },
        ['sslserver', 'sslclient'],
      ],
      [
        'peer',
        { profile: 'peer', subject: parseName('CN=svc'), sans: [dns('svc.internal')], publicKey: spkiOf(k) },
        ['sslserver', 'sslclient'],
      ],
    ];
    for (const [name, req, purposes] of leaves) {
      const file = join(dir, `${name}-${kt}.pem`);
      writeFileSync(file, iss.issue(req).pem);
      for (const purpose of purposes) {
        const out = execFileSync(
          'openssl',
          ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', rootFile, '-untrusted', interFile, file],
          { encoding: 'utf8', stdio: 'pipe' },
        );
        expect(out.trim(), `${name} ${purpose}`).toBe(`${file}: OK`);
      }
    }
    // and a client certificate is refused as a server
    const clientFile = join(dir, `client-${kt}.pem`);
    expect(() =>
      execFileSync(
        'openssl',
        ['verify', '-purpose', 'sslserver', '-CAfile', rootFile, '-untrusted', interFile, clientFile],
        { stdio: 'pipe' },
      ),
    ).toThrow();
  });
});

describe('serials', () => {
  it('are 128-bit, positive, minimally encoded and unique', () => {
    const seen = new Set<string>();
    let topBitSet = 0;
    for (let n = 0; n < 600; n++) {
      const issued = issuer.issue({
        profile: 'client',
        subject: parseName('CN=s'),
        publicKey: spkiOf(keys.p256),
      });
      const cert = parseCertificate(issued.der);
      expect(cert.serialNegative).toBe(false);
      expect(cert.serial).toHaveLength(32);
      expect(cert.serial).not.toMatch(/^00/);
      expect(cert.serial).toBe(issued.serial);
      expect(cert.serialLength).toBe(cert.serial.startsWith('8') || /^[89a-f]/.test(cert.serial) ? 17 : 16);
      if (cert.serialLength === 17) topBitSet++;
      seen.add(cert.serial);
    }
    expect(seen.size).toBe(600);
    // about half have the top bit set and need the 0x00 sign octet
    expect(topBitSet).toBeGreaterThan(200);
    expect(topBitSet).toBeLessThan(400);
  });

  it('randomSerial never starts with a zero byte and serves 256 per refill', () => {
    const all = Array.from({ length: 2000 }, () => randomSerial());
    for (const s of all) {
      expect(s).toHaveLength(16);
      expect(s[0]).not.toBe(0);
    }
    expect(new Set(all.map((s) => s.toString('hex'))).size).toBe(2000);
  });

  it('a given serial is used as is', () => {
    const { issued, cert } = issueParsed(issuer, {
      profile: 'client',
      subject: parseName('CN=s'),
      publicKey: spkiOf(keys.p256),
      serial: Buffer.from('8001', 'hex'),
    });
    expect(cert.serial).toBe('8001');
    expect(cert.serialLength).toBe(3);
    expect(issued.serial).toBe('8001');
  });
});

describe('validity', () => {
  it('notBefore is backdated one minute by the injected clock; notAfter is now + the profile default', () => {
    const { issued, cert } = issueParsed(issuer, {
      profile: 'server',
      sans: [dns('a.example')],
      publicKey: spkiOf(keys.p256),
    });
    expect(CLOCK_SKEW_MS).toBe(60_000);
    expect(cert.notBefore.toISOString()).toBe('2030-06-15T11:59:00.000Z');
    expect(cert.notAfter.toISOString()).toBe('2030-06-16T12:00:00.000Z');
    expect(issued.notBefore).toEqual(cert.notBefore);
    expect(issued.notAfter).toEqual(cert.notAfter);
    expect(root.notAfter.getTime() - NOW.getTime()).toBe(PROFILES.root.defaultTtlMs);
    expect(inter.notAfter.getTime() - NOW.getTime()).toBe(PROFILES.intermediate.defaultTtlMs);
  });

  it('returns the dates the certificate carries (whole seconds) when the clock has milliseconds', () => {
    const msClock: Clock = { now: () => new Date('2030-06-15T12:00:00.987Z') };
    const iss = createIssuer(inter, interKey, msClock);
    const { issued, cert } = issueParsed(iss, {
      profile: 'client',
      subject: parseName('CN=x'),
      publicKey: spkiOf(keys.p256),
      ttlMs: HOUR,
    });
    expect(issued.notBefore).toEqual(cert.notBefore);
    expect(issued.notAfter).toEqual(cert.notAfter);
    expect(cert.notBefore.toISOString()).toBe('2030-06-15T11:59:00.000Z');
    expect(cert.notAfter.toISOString()).toBe('2030-06-15T13:00:00.000Z');
  });

  it('ttlMs, explicit notBefore/notAfter, and GeneralizedTime after 2049', () => {
    const { cert } = issueParsed(issuer, {
      profile: 'client',
      subject: parseName('CN=x'),
      publicKey: spkiOf(keys.p256),
      ttlMs: 15 * 60_000,
    });
    expect(cert.notAfter.getTime() - NOW.getTime()).toBe(15 * 60_000);
    const explicit = issueParsed(issuer, {
      profile: 'client',
      subject: parseName('CN=x'),
      publicKey: spkiOf(keys.p256),
      notBefore: new Date('2030-06-01T00:00:00Z'),
      notAfter: new Date('2030-07-01T00:00:00Z'),
    }).cert;
    expect([explicit.notBefore.toISOString(), explicit.notAfter.toISOString()]).toEqual([
      '2030-06-01T00:00:00.000Z',
      '2030-07-01T00:00:00.000Z',
    ]);
    const late = parseCertificate(
      selfSign(keys.p256, { profile: 'root', subject: parseName('CN=Late'), ttlMs: 25 * 365 * DAY }, clock)
        .der,
    );
    expect(late.notAfter.getUTCFullYear()).toBe(2055);
    expect(new X509Certificate(late.der).validTo).toContain('2055');
  });

  it('enforces each profile ceiling with MTLS_PKI_BAD_VALIDITY', () => {
    const bigIssuer = createIssuer(
      parseCertificate(
        selfSign(
          rootKey,
          { profile: 'root', subject: parseName('CN=Big'), ttlMs: PROFILES.root.maxTtlMs },
          clock,
        ).der,
      ),
      rootKey,
      clock,
    );
    for (const p of ['server', 'client', 'spiffe', 'peer', 'intermediate'] as const) {
      const req: IssueRequest = {
        profile: p,
        subject: parseName('CN=x'),
        sans:
          p === 'spiffe' ? [uri('spiffe://td/x')] : p === 'server' || p === 'peer' ? [dns('x.example')] : [],
        publicKey: spkiOf(keys.p256),
      };
      expect(() => bigIssuer.issue({ ...req, ttlMs: PROFILES[p].maxTtlMs }), p).not.toThrow();
      expect(
        codeOf(() => bigIssuer.issue({ ...req, ttlMs: PROFILES[p].maxTtlMs + 1000 })),
        p,
      ).toBe('MTLS_PKI_BAD_VALIDITY');
      expect(
        () => bigIssuer.issue({ ...req, ttlMs: PROFILES[p].maxTtlMs + 1000, unchecked: true }),
        p,
      ).not.toThrow();
    }
    expect(PROFILES.server.maxTtlMs).toBe(397 * DAY);
    expect(
      codeOf(() =>
        selfSign(
          rootKey,
          { profile: 'root', subject: parseName('CN=r'), ttlMs: PROFILES.root.maxTtlMs + 1000 },
          clock,
        ),
      ),
    ).toBe('MTLS_PKI_BAD_VALIDITY');
  });

  it('refuses to outlive the issuer, and empty or negative windows', () => {
    const e = (() => {
      try {
        issuer.issue({
          profile: 'intermediate',
          subject: parseName('CN=x'),
          publicKey: spkiOf(keys.p256),
          ttlMs: 6 * 365 * DAY,
        });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(isMtlsError(e, 'MTLS_PKI_BAD_VALIDITY')).toBe(true);
    expect((e as Error).message).toContain(inter.notAfter.toISOString());
    const base = { profile: 'client' as const, subject: parseName('CN=x'), publicKey: spkiOf(keys.p256) };
    expect(codeOf(() => issuer.issue({ ...base, ttlMs: 0 }))).toBe('MTLS_PKI_BAD_VALIDITY');
    expect(codeOf(() => issuer.issue({ ...base, ttlMs: -HOUR }))).toBe('MTLS_PKI_BAD_VALIDITY');
    expect(codeOf(() => issuer.issue({ ...base, notBefore: NOW, notAfter: NOW }))).toBe(
      'MTLS_PKI_BAD_VALIDITY',
    );
    expect(codeOf(() => issuer.issue({ ...base, notAfter: new Date(Number.NaN) }))).toBe(
      'MTLS_PKI_BAD_VALIDITY',
    );
  });
});

describe('profile violations', () => {
  const pub = (): Buffer => spkiOf(keys.p256);

  it('server or peer without a DNS/IP SAN → MTLS_PKI_PROFILE_VIOLATION', () => {
    expect(
      codeOf(() =>
        issuer.issue({ profile: 'server', subject: parseName('CN=api.example.org'), publicKey: pub() }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(
      codeOf(() =>
        issuer.issue({ profile: 'server', sans: [uri('https://id.example/x')], publicKey: pub() }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(
      codeOf(() => issuer.issue({ profile: 'peer', subject: parseName('CN=svc'), publicKey: pub() })),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    try {
      issuer.issue({ profile: 'server', subject: parseName('CN=api'), publicKey: pub() });
    } catch (e) {
      expect((e as Error).message).toContain('server profile');
      expect(isMtlsError(e) && e.fix).toContain('--san dns:');
    }
  });

  it('client or peer with a wildcard → MTLS_PKI_BAD_SAN; server may have one', () => {
    expect(
      codeOf(() =>
        issuer.issue({
          profile: 'client',
          subject: parseName('CN=c'),
          sans: [dns('*.example.org')],
          publicKey: pub(),
        }),
      ),
    ).toBe('MTLS_PKI_BAD_SAN');
    expect(
      codeOf(() => issuer.issue({ profile: 'peer', sans: [dns('*.example.org')], publicKey: pub() })),
    ).toBe('MTLS_PKI_BAD_SAN');
    expect(
      codeOf(() =>
        issuer.issue({
          profile: 'spiffe',
          sans: [uri('spiffe://td/x'), dns('*.example.org')],
          publicKey: pub(),
        }),
      ),
    ).toBe('MTLS_PKI_BAD_SAN');
    expect(() =>
      issuer.issue({ profile: 'server', sans: [dns('*.example.org')], publicKey: pub() }),
    ).not.toThrow();
  });

  it('spiffe without, with two, or with a non-SPIFFE URI SAN → MTLS_PKI_PROFILE_VIOLATION; a bad ID → MTLS_PKI_BAD_SPIFFE_ID', () => {
    expect(
      codeOf(() => issuer.issue({ profile: 'spiffe', subject: parseName('CN=x'), publicKey: pub() })),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(
      codeOf(() => issuer.issue({ profile: 'spiffe', sans: [dns('a.example')], publicKey: pub() })),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(
      codeOf(() =>
        issuer.issue({
          profile: 'spiffe',
          sans: [uri('spiffe://td/a'), uri('spiffe://td/b')],
          publicKey: pub(),
        }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(
      codeOf(() => issuer.issue({ profile: 'spiffe', sans: [uri('https://td/a')], publicKey: pub() })),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(
      codeOf(() => issuer.issue({ profile: 'spiffe', sans: [uri('spiffe://TD/a')], publicKey: pub() })),
    ).toBe('MTLS_PKI_BAD_SPIFFE_ID');
  });

  it('CA profiles take no SANs and need a subject; leaves need some identity', () => {
    const rootIssuer = createIssuer(root, rootKey, clock);
    expect(
      codeOf(() =>
        rootIssuer.issue({
          profile: 'intermediate',
          subject: parseName('CN=x'),
          sans: [dns('a.example')],
          publicKey: pub(),
        }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(codeOf(() => rootIssuer.issue({ profile: 'intermediate', publicKey: pub() }))).toBe(
      'MTLS_PKI_PROFILE_VIOLATION',
    );
    expect(codeOf(() => selfSign(rootKey, { profile: 'root', subject: [] }, clock))).toBe(
      'MTLS_PKI_PROFILE_VIOLATION',
    );
    expect(codeOf(() => issuer.issue({ profile: 'client', publicKey: pub() }))).toBe(
      'MTLS_PKI_PROFILE_VIOLATION',
    );
    expect(() =>
      issuer.issue({ profile: 'client', sans: [{ type: 'email', value: 'a@b.example' }], publicKey: pub() }),
    ).not.toThrow();
  });

  it('unknown profiles, mismatched CA keys and bad public keys are refused', () => {
    expect(
      codeOf(() => issuer.issue({ profile: 'mystery' as IssueRequest['profile'], publicKey: pub() })),
    ).toBe('MTLS_PKI_UNKNOWN_PROFILE');
    expect(codeOf(() => createIssuer(inter, rootKey))).toBe('MTLS_PKI_KEY_MISMATCH');
    expect(
      codeOf(() =>
        issuer.issue({ profile: 'client', subject: parseName('CN=x'), publicKey: Buffer.from('not spki') }),
      ),
    ).toBe('MTLS_PKI_BAD_KEY');
  });

  it('unchecked skips the name rules (tests that build broken certificates)', () => {
    const { cert } = issueParsed(issuer, {
      profile: 'server',
      subject: parseName('CN=api.example.org'),
      publicKey: pub(),
      unchecked: true,
    });
    expect(cert.hasSan).toBe(false);
  });
});

describe('caller-supplied serials', () => {
  const req = (serial: Buffer): IssueRequest => ({
    profile: 'client',
    subject: parseName('CN=serial-test'),
    publicKey: spkiOf(keys.p256),
    serial,
  });

  it('are encoded minimally and reported as the certificate says', () => {
    const { issued, cert } = issueParsed(issuer, req(Buffer.from([0, 0, 1])));
    expect(issued.serial).toBe('01');
    expect(cert.serial).toBe('01');
    const high = issueParsed(issuer, req(Buffer.from([0xff, 0x01])));
    expect(high.issued.serial).toBe('ff01');
    expect(high.cert.serial).toBe('ff01');
    expect(high.cert.serialNegative).toBe(false);
  });

  it('refuse zero and more than 20 octets', () => {
    for (const bad of [Buffer.from([0, 0]), Buffer.alloc(21, 1)]) {
      let err: unknown;
      try {
        issuer.issue(req(bad));
      } catch (e) {
        err = e;
      }
      expect(isMtlsError(err, 'MTLS_PKI_PROFILE_VIOLATION')).toBe(true);
    }
  });
});
