import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KEY_USAGE_BITS, parseCertificate, type Certificate, type KeyUsage } from './certificate.js';
import * as der from './der.js';
import { createIssuer, selfSign, type Clock } from './issue.js';
import { KEY_TYPES, generateKey, spkiOf, type KeyType } from './keys.js';
import { LINT_RULES, detectRole, fitProfiles, isLintCode, lintCertificate, type LintCode } from './lint.js';
import { encodeGeneralNames, encodeName, parseName, type DistinguishedName, type San } from './names.js';
import { OID } from './oids.js';
import { PROFILE_NAMES, type ProfileName } from './profiles.js';
import { decodePem } from './pem.js';
import { REASONS } from './reasons.js';
import { keyIdentifier } from './spki.js';

const NOW = new Date('2031-03-04T05:06:07Z');
const clock: Clock = { now: () => NOW };
const AT = new Date(NOW.getTime() + 3_600_000);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Codes of error and warning findings (info findings are checked where they are the subject). */
const codes = (cert: Certificate, opts: Parameters<typeof lintCertificate>[1] = {}): LintCode[] =>
  lintCertificate(cert, { at: AT, ...opts })
    .filter((f) => f.severity !== 'info')
    .map((f) => f.code);

const problems = (cert: Certificate, opts: Parameters<typeof lintCertificate>[1] = {}): string[] =>
  lintCertificate(cert, { at: AT, ...opts })
    .filter((f) => f.severity !== 'info')
    .map((f) => `${f.code}: ${f.message}`);

// ------------------------------------------------------------------ a certificate crafter
// Builds certificates our issuer refuses to make, with exactly the extensions a test asks for.

type Ext = { oid: string; critical: boolean; value: Buffer };

interface CraftOptions {
  key?: KeyObject;
  signer?: KeyObject;
  issuerName?: DistinguishedName;
  subject?: DistinguishedName;
  serial?: Buffer;
  notBefore?: Date;
  notAfter?: Date;
  sig?: 'default' | 'sha1' | 'md5';
  innerSigAlg?: Buffer;
  version?: 1 | 3;
  exts?: Ext[];
}

const bcValue = (ca: boolean, pathLen?: number): Buffer =>
  der.seq(...(ca ? [der.boolean(true)] : []), ...(pathLen !== undefined ? [der.integer(pathLen)] : []));
const kuValue = (...usages: KeyUsage[]): Buffer =>
  der.namedBits(usages.map((u) => KEY_USAGE_BITS.indexOf(u)));
const ekuValue = (...oids: string[]): Buffer => der.seq(...oids.map((o) => der.oid(o)));
const sanValue = (...sans: San[]): Buffer => encodeGeneralNames(sans);
const ext = (oid: string, value: Buffer, critical = false): Ext => ({ oid, value, critical });

function sigAlg(key: KeyObject, kind: 'default' | 'sha1' | 'md5'): { id: Buffer; hash: string | null } {
  const t = key.asymmetricKeyType;
  if (t === 'ed25519') return { id: der.seq(der.oid(OID.ed25519)), hash: null };
  if (t === 'ec') {
    if (kind === 'sha1') return { id: der.seq(der.oid(OID.ecdsaWithSHA1)), hash: 'sha1' };
    return { id: der.seq(der.oid(OID.ecdsaWithSHA256)), hash: 'sha256' };
  }
  const o =
    kind === 'sha1'
      ? OID.sha1WithRSAEncryption
      : kind === 'md5'
        ? OID.md5WithRSAEncryption
        : OID.sha256WithRSAEncryption;
  return { id: der.seq(der.oid(o), der.NULL), hash: kind === 'default' ? 'sha256' : kind };
}

function craft(o: CraftOptions): Certificate {
  const key = o.key ?? keys.p256;
  const signer = o.signer ?? key;
  const subject = o.subject ?? parseName('CN=api.example.org,O=Example');
  const alg = sigAlg(signer, o.sig ?? 'default');
  const fields = [
    ...(o.version === 1 ? [] : [Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02])]),
    der.tlv(der.Tag.INTEGER, o.serial ?? Buffer.from('0123456789abcdef0123456789abcdef', 'hex')),
    o.innerSigAlg ?? alg.id,
    encodeName(o.issuerName ?? subject),
    der.seq(
      der.time(o.notBefore ?? new Date(NOW.getTime() - 60_000)),
      der.time(o.notAfter ?? new Date(NOW.getTime() + DAY)),
    ),
    encodeName(subject),
    spkiOf(key),
  ];
  if (o.version !== 1 && o.exts?.length) {
    fields.push(
      der.ctx(
        3,
        der.seq(
          ...o.exts.map((e) =>
            e.critical
              ? der.seq(der.oid(e.oid), der.boolean(true), der.octetString(e.value))
              : der.seq(der.oid(e.oid), der.octetString(e.value)),
          ),
        ),
      ),
    );
  }
  const tbs = der.seq(...fields);
  const signature = cryptoSign(alg.hash, tbs, signer);
  return parseCertificate(der.seq(tbs, alg.id, der.bitString(signature)));
}

let keys: Record<KeyType | 'rsa1024' | 'p224', KeyObject>;
let root: Certificate;
let inter: Certificate;
let interKey: KeyObject;

/** Extensions of a correct leaf issued by `inter` for `key`. */
function leafExts(key: KeyObject, role: 'server' | 'client' | 'peer' | 'spiffe', sans: San[]): Ext[] {
  const eku =
    role === 'server'
      ? [OID.serverAuth]
      : role === 'client'
        ? [OID.clientAuth]
        : [OID.serverAuth, OID.clientAuth];
  return [
    ext(OID.basicConstraints, bcValue(false), true),
    ext(OID.keyUsage, kuValue('digitalSignature'), true),
    ext(OID.extKeyUsage, ekuValue(...eku)),
    ext(OID.subjectKeyIdentifier, der.octetString(keyIdentifier(spkiOf(key)))),
    ext(OID.authorityKeyIdentifier, der.seq(der.ctx(0, inter.subjectKeyId!, false))),
    ...(sans.length ? [ext(OID.subjectAltName, sanValue(...sans))] : []),
  ];
}

const replace = (list: Ext[], oid: string, e?: Ext): Ext[] =>
  e ? list.map((x) => (x.oid === oid ? e : x)) : list.filter((x) => x.oid !== oid);

/** A leaf signed by the intermediate; `mutate` edits the extension list. */
function leaf(
  role: 'server' | 'client' | 'peer' | 'spiffe',
  o: CraftOptions & { sans?: San[]; mutate?: (e: Ext[]) => Ext[] } = {},
): Certificate {
  const key = o.key ?? keys.p256;
  const sans =
    o.sans ??
    (role === 'spiffe'
      ? [{ type: 'uri', value: 'spiffe://example.org/ns/prod/sa/api' }]
      : role === 'client'
        ? []
        : [{ type: 'dns', value: 'api.example.org' }]);
  const base = leafExts(key, role, sans);
  return craft({
    signer: interKey,
    issuerName: inter.subject,
    subject:
      role === 'client' ? parseName('CN=payments,O=Example') : parseName('CN=api.example.org,O=Example'),
    ...o,
    key,
    exts: o.exts ?? (o.mutate ? o.mutate(base) : base),
  });
}

beforeAll(() => {
  keys = {
    p256: generateKey('p256'),
    p384: generateKey('p384'),
    rsa2048: generateKey('rsa2048'),
    rsa3072: generateKey('rsa3072'),
    rsa4096: generateKey('rsa4096'),
    ed25519: generateKey('ed25519'),
    rsa1024: generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey,
    p224: generateKeyPairSync('ec', { namedCurve: 'secp224r1' }).privateKey,
  };
  const rootKey = keys.p256;
  root = parseCertificate(
    selfSign(rootKey, { profile: 'root', subject: parseName('CN=Lint Root,O=Example') }, clock).der,
  );
  interKey = generateKey('p256');
  inter = parseCertificate(
    createIssuer(root, rootKey, clock).issue({
      profile: 'intermediate',
      subject: parseName('CN=Lint Issuing CA,O=Example'),
      publicKey: spkiOf(interKey),
    }).der,
  );
});

// ------------------------------------------------------------------ catalog

describe('LINT_RULES', () => {
  it('has stable snake_case codes, each with a severity and a summary', () => {
    for (const [code, rule] of Object.entries(LINT_RULES)) {
      expect(code).toMatch(/^[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
      expect(['error', 'warning', 'info']).toContain(rule.severity);
      expect(rule.summary.length).toBeGreaterThan(20);
      expect(isLintCode(code)).toBe(true);
    }
    expect(isLintCode('nope')).toBe(false);
    expect(isLintCode('toString')).toBe(false);
  });

  it('holds every code the doctor and docs rely on', () => {
    const required = [
      'missing_eku_for_role',
      'no_san',
      'cn_only',
      'missing_digital_signature',
      'spiffe_violation',
      'weak_key',
      'weak_signature',
      'validity_too_long',
      'ca_without_path_len',
      'wildcard_in_client',
      'basic_constraints_not_critical',
      'key_usage_not_critical',
      'ca_missing_key_cert_sign',
      'leaf_is_ca',
      'expired',
      'not_yet_valid',
      'negative_or_long_serial',
      'missing_ski',
      'missing_aki',
      'san_not_critical_with_empty_subject',
      'unknown_critical_extension',
      'malformed_extension',
    ];
    for (const c of required) expect(Object.keys(LINT_RULES)).toContain(c);
  });

  it('uses the shared reason names where the meaning overlaps', () => {
    for (const c of [
      'expired',
      'not_yet_valid',
      'weak_key',
      'weak_signature',
      'bad_signature',
      'issuer_not_ca',
      'path_too_long',
    ]) {
      expect(Object.keys(REASONS)).toContain(c);
      expect(Object.keys(LINT_RULES)).toContain(c);
    }
    // wrong_eku is the verification outcome of missing_eku_for_role; the lint summary says so.
    expect(LINT_RULES.missing_eku_for_role.summary).toContain('wrong_eku');
  });
});

// ------------------------------------------------------------------ our own profiles

describe('certificates from our profiles lint clean', () => {
  it.each(KEY_TYPES)('%s: root, intermediate, server, client, spiffe, peer', (kt) => {
    const caKey = keys[kt];
    const r = parseCertificate(
      selfSign(caKey, { profile: 'root', subject: parseName(`CN=Root ${kt},O=Example,C=DE`) }, clock).der,
    );
    const rootIssuer = createIssuer(r, caKey, clock);
    const iKey = keys[kt];
    const i = parseCertificate(
      rootIssuer.issue({
        profile: 'intermediate',
        subject: parseName(`CN=Issuing ${kt}`),
        publicKey: spkiOf(iKey),
      }).der,
    );
    const issuer = createIssuer(i, iKey, clock);
    const pub = spkiOf(keys[kt]);
    const leaves: Array<[ProfileName, Certificate]> = [
      [
        'server',
        parseCertificate(
          issuer.issue({
            profile: 'server',
            subject: parseName('CN=api.example.org'),
            sans: [
              { type: 'dns', value: 'api.example.org' },
              { type: 'ip', value: '10.0.0.1' },
            ],
            publicKey: pub,
          }).der,
        ),
      ],
      [
        'client',
        parseCertificate(
          issuer.issue({ profile: 'client', subject: parseName('CN=payments,O=Example'), publicKey: pub })
            .der,
        ),
      ],
      [
        'spiffe',
        parseCertificate(
          issuer.issue({
            profile: 'spiffe',
            sans: [{ type: 'uri', value: 'spiffe://example.org/ns/prod/sa/api' }],
            publicKey: pub,
          }).der,
        ),
      ],
      [
        'peer',
        parseCertificate(
          issuer.issue({
            profile: 'peer',
            subject: parseName('CN=svc-a'),
            sans: [{ type: 'dns', value: 'svc-a.internal' }],
            publicKey: pub,
          }).der,
        ),
      ],
    ];
    expect(problems(r, { role: 'root' })).toEqual([]);
    expect(problems(i, { role: 'intermediate', issuer: r })).toEqual([]);
    expect(detectRole(r)).toBe('root');
    expect(detectRole(i)).toBe('intermediate');
    expect(fitProfiles(r)).toEqual(['root']);
    expect(fitProfiles(i)).toEqual(['intermediate']);
    for (const [role, cert] of leaves) {
      expect(problems(cert, { role, issuer: i }), role).toEqual([]);
      expect(problems(cert), role).toEqual([]); // auto-detected role
      expect(detectRole(cert)).toBe(role);
      expect(fitProfiles(cert)).toContain(role);
    }
    // longest allowed lifetimes are still clean
    const long = parseCertificate(
      issuer.issue({
        profile: 'server',
        sans: [{ type: 'dns', value: 'a.example' }],
        ttlMs: 397 * DAY,
        publicKey: pub,
      }).der,
    );
    expect(problems(long, { role: 'server', issuer: i })).toEqual([]);
  });

  it('server with an IP SAN only, wildcard server, spiffe with extra DNS SAN are clean', () => {
    const issuer = createIssuer(inter, interKey, clock);
    const pub = spkiOf(keys.p256);
    const ipOnly = parseCertificate(
      issuer.issue({ profile: 'server', sans: [{ type: 'ip', value: '::1' }], publicKey: pub }).der,
    );
    expect(problems(ipOnly, { role: 'server', issuer: inter })).toEqual([]);
    const wild = parseCertificate(
      issuer.issue({
        profile: 'server',
        subject: parseName('CN=*.example.org'),
        sans: [{ type: 'dns', value: '*.example.org' }],
        publicKey: pub,
      }).der,
    );
    expect(problems(wild, { role: 'server', issuer: inter })).toEqual([]);
    const svid = parseCertificate(
      issuer.issue({
        profile: 'spiffe',
        sans: [
          { type: 'uri', value: 'spiffe://td/api' },
          { type: 'dns', value: 'api.td' },
        ],
        publicKey: pub,
      }).der,
    );
    expect(problems(svid, { role: 'spiffe', issuer: inter })).toEqual([]);
  });
});

// ------------------------------------------------------------------ detectRole / fitProfiles

describe('detectRole and fitProfiles', () => {
  it('detects by CA flag, SPIFFE URI, EKU, then SANs', () => {
    expect(detectRole(root)).toBe('root');
    expect(detectRole(inter)).toBe('intermediate');
    expect(detectRole(leaf('server'))).toBe('server');
    expect(detectRole(leaf('client'))).toBe('client');
    expect(detectRole(leaf('peer'))).toBe('peer');
    expect(detectRole(leaf('spiffe'))).toBe('spiffe');
    const noEkuHost = leaf('server', { mutate: (e) => replace(e, OID.extKeyUsage) });
    expect(detectRole(noEkuHost)).toBe('server');
    const noEkuNoHost = leaf('client', { mutate: (e) => replace(e, OID.extKeyUsage) });
    expect(detectRole(noEkuNoHost)).toBe('client');
  });

  it('lists every profile a certificate can serve', () => {
    expect(fitProfiles(leaf('server'))).toEqual(['server']);
    expect(fitProfiles(leaf('client'))).toEqual(['client']);
    expect(fitProfiles(leaf('peer'))).toEqual(['server', 'client', 'peer']);
    expect(fitProfiles(leaf('spiffe'))).toEqual(['client', 'spiffe']);
    const both = leaf('spiffe', {
      sans: [
        { type: 'uri', value: 'spiffe://example.org/api' },
        { type: 'dns', value: 'api.example.org' },
      ],
    });
    expect(fitProfiles(both)).toEqual(['server', 'client', 'spiffe', 'peer']);
    // a certificate with a weak key fits nothing; an expired one still fits its profile
    expect(fitProfiles(leaf('server', { key: keys.rsa1024 }))).toEqual([]);
    expect(
      fitProfiles(leaf('server', { notBefore: new Date('2020-01-01'), notAfter: new Date('2020-02-01') })),
    ).toEqual(['server']);
    for (const p of fitProfiles(leaf('peer'))) expect(PROFILE_NAMES).toContain(p);
  });
});

// ------------------------------------------------------------------ each rule

describe('rules', () => {
  it('a crafted correct leaf is clean (the baseline every rule test mutates)', () => {
    for (const role of ['server', 'client', 'peer', 'spiffe'] as const) {
      expect(problems(leaf(role), { role, issuer: inter })).toEqual([]);
    }
  });

  it('missing_eku_for_role: client without clientAuth, server without serverAuth, anyEKU does not count', () => {
    const serverCert = leaf('server');
    const f = lintCertificate(serverCert, { role: 'client', at: AT });
    const hit = f.find((x) => x.code === 'missing_eku_for_role')!;
    expect(hit.severity).toBe('error');
    expect(hit.message).toContain('CN=api.example.org');
    expect(hit.message).toContain('[serverAuth]');
    expect(hit.message).toContain('clientAuth');
    expect(hit.fix).toContain('mtls issue client');
    expect(hit.fix).toContain('extendedKeyUsage=clientAuth');
    expect(codes(leaf('client'), { role: 'server' })).toContain('missing_eku_for_role');
    expect(codes(leaf('server'), { role: 'peer' })).toContain('missing_eku_for_role');
    const any = leaf('client', {
      mutate: (e) => replace(e, OID.extKeyUsage, ext(OID.extKeyUsage, ekuValue(OID.anyExtendedKeyUsage))),
    });
    expect(codes(any, { role: 'client' })).toContain('missing_eku_for_role');
  });

  it('eku_absent: a leaf without EKU', () => {
    const c = leaf('client', { mutate: (e) => replace(e, OID.extKeyUsage) });
    expect(codes(c, { role: 'client' })).toEqual(['eku_absent']);
  });

  it('no_san and cn_only: server identity without DNS/IP SAN', () => {
    const cnOnly = leaf('server', { sans: [] });
    const f = lintCertificate(cnOnly, { role: 'server', at: AT });
    expect(f.map((x) => x.code)).toEqual(['cn_only']);
    expect(f[0]!.message).toContain('api.example.org');
    expect(f[0]!.fix).toContain('--san dns:api.example.org');
    expect(f[0]!.fix).toContain('subjectAltName=DNS:api.example.org');
    const ipCn = leaf('server', { sans: [], subject: parseName('CN=10.1.2.3') });
    expect(lintCertificate(ipCn, { role: 'server', at: AT })[0]!.fix).toContain('ip:10.1.2.3');
    const plain = leaf('peer', {
      sans: [{ type: 'uri', value: 'https://id.example.org/x' }],
      subject: parseName('CN=payments'),
    });
    expect(codes(plain, { role: 'peer' })).toEqual(['no_san']);
    // a client needs no SAN
    expect(codes(leaf('client'), { role: 'client' })).toEqual([]);
  });

  it('cn_not_in_san: informational', () => {
    const c = leaf('server', {
      subject: parseName('CN=www.example.org'),
      sans: [{ type: 'dns', value: 'api.example.org' }],
    });
    const f = lintCertificate(c, { role: 'server', at: AT });
    expect(f.map((x) => [x.code, x.severity])).toEqual([['cn_not_in_san', 'info']]);
  });

  it('no_identity: no CN and no SAN', () => {
    const c = leaf('client', { subject: parseName('O=Example'), sans: [] });
    expect(codes(c, { role: 'client' })).toEqual(['no_identity']);
  });

  it('invalid_san: bad DNS, IP written as DNS, empty SAN extension', () => {
    const badDns = leaf('server', {
      sans: [
        { type: 'dns', value: 'bad..name' },
        { type: 'dns', value: 'ok.example' },
      ],
    });
    const f = lintCertificate(badDns, { role: 'server', at: AT }).filter((x) => x.severity !== 'info');
    expect(f.map((x) => x.code)).toEqual(['invalid_san']);
    expect(f[0]!.message).toContain('DNS:bad..name');
    expect(
      codes(
        leaf('server', {
          sans: [
            { type: 'dns', value: '10.0.0.1' },
            { type: 'dns', value: 'ok.example' },
          ],
        }),
      ),
    ).toContain('invalid_san');
    const empty = leaf('server', {
      mutate: (e) => replace(e, OID.subjectAltName, ext(OID.subjectAltName, der.seq())),
    });
    expect(codes(empty, { role: 'server' })).toContain('invalid_san');
  });

  it('wildcard_in_client: client and peer identities with a wildcard', () => {
    const c = leaf('client', { sans: [{ type: 'dns', value: '*.example.org' }] });
    const f = lintCertificate(c, { role: 'client', at: AT }).find((x) => x.code === 'wildcard_in_client')!;
    expect(f.message).toContain('DNS:*.example.org');
    expect(f.fix).toMatch(/^Reissue it for one workload: mtls issue client payments --san /);
    expect(
      codes(
        leaf('peer', {
          sans: [
            { type: 'dns', value: '*.example.org' },
            { type: 'dns', value: 'a.example.org' },
          ],
        }),
      ),
    ).toContain('wildcard_in_client');
    expect(codes(leaf('client', { subject: parseName('CN=*.example.org') }), { role: 'client' })).toContain(
      'wildcard_in_client',
    );
    // the same wildcard is fine on a server
    expect(
      codes(leaf('server', { sans: [{ type: 'dns', value: '*.example.org' }] }), { role: 'server' }),
    ).toEqual([]);
  });

  describe('spiffe_violation', () => {
    const messages = (c: Certificate): string[] =>
      lintCertificate(c, { role: 'spiffe', at: AT })
        .filter((f) => f.code === 'spiffe_violation')
        .map((f) => f.message);

    it('no URI SAN, two URI SANs, a non-SPIFFE URI', () => {
      expect(messages(leaf('spiffe', { sans: [{ type: 'dns', value: 'api.example.org' }] }))).toEqual([
        expect.stringContaining('has 0 URI SANs'),
      ]);
      const two = leaf('spiffe', {
        sans: [
          { type: 'uri', value: 'spiffe://example.org/a' },
          { type: 'uri', value: 'spiffe://example.org/b' },
        ],
      });
      expect(messages(two)).toEqual([
        expect.stringContaining('has 2 URI SANs (spiffe://example.org/a, spiffe://example.org/b)'),
      ]);
      expect(messages(leaf('spiffe', { sans: [{ type: 'uri', value: 'https://example.org/a' }] }))).toEqual([
        expect.stringContaining('not a SPIFFE ID'),
      ]);
    });

    it('bad SPIFFE IDs: uppercase trust domain, wildcard, root ID on a leaf', () => {
      expect(messages(leaf('spiffe', { sans: [{ type: 'uri', value: 'spiffe://Example.org/a' }] }))).toEqual([
        expect.stringContaining('lowercase'),
      ]);
      expect(messages(leaf('spiffe', { sans: [{ type: 'uri', value: 'spiffe://example.org/*' }] }))).toEqual([
        expect.stringContaining('wildcard'),
      ]);
      const rootId = lintCertificate(
        leaf('spiffe', { sans: [{ type: 'uri', value: 'spiffe://example.org' }] }),
        { role: 'spiffe', at: AT },
      );
      expect(rootId.map((f) => f.code)).toEqual(['spiffe_violation']);
      expect(rootId[0]!.message).toContain('needs a path');
      expect(rootId[0]!.fix).toContain('mtls issue spiffe spiffe://example.org/');
    });

    it('CA flag, keyCertSign/cRLSign, no keyUsage, wildcard DNS SAN', () => {
      const ca = leaf('spiffe', {
        mutate: (e) => replace(e, OID.basicConstraints, ext(OID.basicConstraints, bcValue(true), true)),
      });
      expect(messages(ca)).toEqual([expect.stringContaining('CA:TRUE')]);
      const signer = leaf('spiffe', {
        mutate: (e) =>
          replace(
            e,
            OID.keyUsage,
            ext(OID.keyUsage, kuValue('digitalSignature', 'keyCertSign', 'cRLSign'), true),
          ),
      });
      expect(messages(signer)).toEqual([expect.stringContaining('keyCertSign and cRLSign')]);
      expect(messages(leaf('spiffe', { mutate: (e) => replace(e, OID.keyUsage) }))).toEqual([
        expect.stringContaining('no keyUsage'),
      ]);
      const wild = leaf('spiffe', {
        sans: [
          { type: 'uri', value: 'spiffe://example.org/a' },
          { type: 'dns', value: '*.example.org' },
        ],
      });
      expect(messages(wild)).toEqual([expect.stringContaining('*.example.org')]);
    });
  });

  it('san_not_critical_with_empty_subject', () => {
    const c = leaf('spiffe', { subject: [] });
    expect(codes(c, { role: 'spiffe' })).toEqual(['san_not_critical_with_empty_subject']);
    const ok = leaf('spiffe', {
      subject: [],
      mutate: (e) =>
        replace(
          e,
          OID.subjectAltName,
          ext(OID.subjectAltName, sanValue({ type: 'uri', value: 'spiffe://example.org/a' }), true),
        ),
    });
    expect(codes(ok, { role: 'spiffe' })).toEqual([]);
  });

  it('bad_country: C not a two-letter PrintableString', () => {
    const c = leaf('client', {
      subject: [
        [{ oid: OID.countryName, value: 'DE', tag: der.Tag.UTF8_STRING }],
        [{ oid: OID.commonName, value: 'x' }],
      ],
    });
    expect(codes(c, { role: 'client' })).toEqual(['bad_country']);
    const d = leaf('client', {
      subject: [[{ oid: OID.countryName, value: 'Germany' }], [{ oid: OID.commonName, value: 'x' }]],
    });
    expect(codes(d, { role: 'client' })).toEqual(['bad_country']);
  });

  it('missing_digital_signature and missing_key_usage', () => {
    const c = leaf('server', {
      key: keys.rsa2048,
      mutate: (e) => replace(e, OID.keyUsage, ext(OID.keyUsage, kuValue('keyEncipherment'), true)),
    });
    const f = lintCertificate(c, { role: 'server', at: AT });
    expect(f.map((x) => x.code)).toEqual(['missing_digital_signature']);
    expect(f[0]!.message).toContain('[keyEncipherment]');
    expect(f[0]!.fix).toContain('keyUsage=critical,digitalSignature');
    expect(codes(leaf('server', { mutate: (e) => replace(e, OID.keyUsage) }), { role: 'server' })).toEqual([
      'missing_key_usage',
    ]);
  });

  it('key_usage_not_for_key: keyEncipherment on an EC or Ed25519 key', () => {
    for (const key of [keys.p256, keys.ed25519]) {
      const c = leaf('server', {
        key,
        mutate: (e) =>
          replace(e, OID.keyUsage, ext(OID.keyUsage, kuValue('digitalSignature', 'keyEncipherment'), true)),
      });
      expect(codes(c, { role: 'server' })).toEqual(['key_usage_not_for_key']);
    }
    const rsa = leaf('server', {
      key: keys.rsa2048,
      mutate: (e) =>
        replace(e, OID.keyUsage, ext(OID.keyUsage, kuValue('digitalSignature', 'keyEncipherment'), true)),
    });
    expect(codes(rsa, { role: 'server' })).toEqual([]);
  });

  it('key_cert_sign_without_ca, key_usage_not_critical, path_len_on_leaf, leaf_is_ca', () => {
    expect(
      codes(
        leaf('client', {
          mutate: (e) =>
            replace(e, OID.keyUsage, ext(OID.keyUsage, kuValue('digitalSignature', 'keyCertSign'), true)),
        }),
        { role: 'client' },
      ),
    ).toEqual(['key_cert_sign_without_ca']);
    const nc = lintCertificate(
      leaf('client', {
        mutate: (e) => replace(e, OID.keyUsage, ext(OID.keyUsage, kuValue('digitalSignature'))),
      }),
      { role: 'client', at: AT },
    );
    expect(nc.map((f) => [f.code, f.severity])).toEqual([['key_usage_not_critical', 'warning']]);
    expect(
      codes(
        leaf('client', {
          mutate: (e) =>
            replace(e, OID.basicConstraints, ext(OID.basicConstraints, der.seq(der.integer(0)), true)),
        }),
        { role: 'client' },
      ),
    ).toEqual(['path_len_on_leaf']);
    const ca = leaf('server', {
      mutate: (e) => replace(e, OID.basicConstraints, ext(OID.basicConstraints, bcValue(true), true)),
    });
    const f = lintCertificate(ca, { role: 'server', at: AT });
    expect(f.map((x) => x.code)).toEqual(['leaf_is_ca']);
    expect(f[0]!.fix).toContain('CA:FALSE');
    // detected as a CA when no role is given
    expect(detectRole(ca)).toBe('intermediate');
  });

  describe('CA rules', () => {
    const caExts = (o: { bc?: Ext | null; ku?: Ext | null; key?: KeyObject } = {}): Ext[] => {
      const k = o.key ?? keys.p384;
      return [
        ...(o.bc === null ? [] : [o.bc ?? ext(OID.basicConstraints, bcValue(true, 0), true)]),
        ...(o.ku === null
          ? []
          : [o.ku ?? ext(OID.keyUsage, kuValue('digitalSignature', 'keyCertSign', 'cRLSign'), true)]),
        ext(OID.subjectKeyIdentifier, der.octetString(keyIdentifier(spkiOf(k)))),
        ext(OID.authorityKeyIdentifier, der.seq(der.ctx(0, root.subjectKeyId!, false))),
      ];
    };
    const ica = (exts: Ext[]): Certificate =>
      craft({
        key: keys.p384,
        signer: keys.p256,
        issuerName: root.subject,
        subject: parseName('CN=Crafted CA'),
        notAfter: new Date(NOW.getTime() + 365 * DAY),
        exts,
      });

    it('a crafted intermediate is clean, and its own issuer checks pass', () => {
      expect(problems(ica(caExts()), { role: 'intermediate', issuer: root })).toEqual([]);
    });

    it('ca_without_path_len, basic_constraints_not_critical, ca_missing_key_cert_sign, not_a_ca', () => {
      expect(
        codes(ica(caExts({ bc: ext(OID.basicConstraints, bcValue(true), true) })), { role: 'intermediate' }),
      ).toEqual(['ca_without_path_len']);
      expect(
        codes(ica(caExts({ bc: ext(OID.basicConstraints, bcValue(true, 0)) })), { role: 'intermediate' }),
      ).toEqual(['basic_constraints_not_critical']);
      const noSign = lintCertificate(
        ica(caExts({ ku: ext(OID.keyUsage, kuValue('digitalSignature', 'cRLSign'), true) })),
        { role: 'intermediate', at: AT },
      );
      expect(noSign.map((f) => f.code)).toEqual(['ca_missing_key_cert_sign']);
      expect(noSign[0]!.message).toContain('CN=Crafted CA');
      expect(noSign[0]!.fix).toContain('keyUsage=critical,keyCertSign,cRLSign');
      expect(codes(ica(caExts({ ku: null })), { role: 'intermediate' })).toEqual([
        'ca_missing_key_cert_sign',
      ]);
      const notCa = codes(ica(caExts({ bc: ext(OID.basicConstraints, bcValue(false), true) })), {
        role: 'intermediate',
      });
      expect(notCa).toContain('not_a_ca');
      expect(codes(leaf('server'), { role: 'root' })).toEqual(
        expect.arrayContaining(['not_a_ca', 'ca_missing_key_cert_sign', 'root_not_self_signed']),
      );
    });

    it('root_not_self_signed and intermediate_self_signed', () => {
      expect(codes(inter, { role: 'root' })).toEqual(['root_not_self_signed']);
      expect(codes(root, { role: 'intermediate' })).toEqual(['intermediate_self_signed']);
    });
  });

  it('weak_key: RSA 1024 and EC P-224', () => {
    const rsa = lintCertificate(leaf('server', { key: keys.rsa1024 }), { role: 'server', at: AT });
    expect(rsa.map((f) => f.code)).toEqual(['weak_key']);
    expect(rsa[0]!.message).toContain('RSA 1024');
    expect(rsa[0]!.fix).toContain('p256');
    expect(codes(leaf('server', { key: keys.p224 }), { role: 'server' })).toEqual(['weak_key']);
  });

  it('weak_signature: SHA-1 and MD5; ignored on a self-signed root', () => {
    const sha1Ec = craft({
      signer: interKey,
      issuerName: inter.subject,
      sig: 'sha1',
      exts: leafExts(keys.p256, 'server', [{ type: 'dns', value: 'a.example' }]),
    });
    const f = lintCertificate(sha1Ec, { role: 'server', at: AT }).filter((x) => x.severity !== 'info');
    expect(f.map((x) => x.code)).toEqual(['weak_signature']);
    expect(f[0]!.message).toContain('ecdsa-with-SHA1');
    const rsaIssuer = keys.rsa2048;
    const md5 = craft({
      signer: rsaIssuer,
      issuerName: inter.subject,
      sig: 'md5',
      exts: leafExts(keys.p256, 'server', [{ type: 'dns', value: 'a.example' }]),
    });
    expect(problems(md5, { role: 'server' })).toEqual([expect.stringContaining('md5WithRSAEncryption')]);
    const sha1Root = craft({
      key: keys.rsa2048,
      sig: 'sha1',
      subject: parseName('CN=Old Root'),
      notAfter: new Date(NOW.getTime() + 3650 * DAY),
      exts: [
        ext(OID.basicConstraints, bcValue(true), true),
        ext(OID.keyUsage, kuValue('keyCertSign', 'cRLSign'), true),
        ext(OID.subjectKeyIdentifier, der.octetString(keyIdentifier(spkiOf(keys.rsa2048)))),
      ],
    });
    expect(detectRole(sha1Root)).toBe('root');
    expect(codes(sha1Root)).toEqual([]);
  });

  it('signature_algorithm_mismatch', () => {
    const c = craft({
      signer: interKey,
      issuerName: inter.subject,
      innerSigAlg: der.seq(der.oid(OID.ecdsaWithSHA384)),
      exts: leafExts(keys.p256, 'server', [{ type: 'dns', value: 'a.example' }]),
    });
    expect(codes(c, { role: 'server' })).toEqual(['signature_algorithm_mismatch']);
  });

  it('expired and not_yet_valid relative to opts.at', () => {
    const c = leaf('server');
    const late = lintCertificate(c, { role: 'server', at: new Date(NOW.getTime() + 2 * DAY) });
    expect(late.map((f) => f.code)).toEqual(['expired']);
    expect(late[0]!.message).toContain(c.notAfter.toISOString());
    expect(late[0]!.fix).toContain('mtls issue server api.example.org --san dns:api.example.org');
    const early = lintCertificate(c, { role: 'server', at: new Date(NOW.getTime() - HOUR) });
    expect(early.map((f) => f.code)).toEqual(['not_yet_valid']);
    expect(lintCertificate(c, { role: 'server', at: c.notAfter })).toEqual([]);
    expect(lintCertificate(c, { role: 'server', at: c.notBefore })).toEqual([]);
  });

  it('validity_too_long: longer than the profile maxTtl (skew allowed)', () => {
    const c = leaf('server', { notAfter: new Date(NOW.getTime() + 398 * DAY) });
    const f = lintCertificate(c, { role: 'server', at: AT });
    expect(f.map((x) => [x.code, x.severity])).toEqual([['validity_too_long', 'warning']]);
    expect(f[0]!.message).toContain('397 days');
    expect(
      codes(leaf('server', { notAfter: new Date(NOW.getTime() + 397 * DAY) }), { role: 'server' }),
    ).toEqual([]);
  });

  it('not_v3, negative_or_long_serial, low_entropy_serial', () => {
    const v1 = craft({ version: 1 });
    expect(codes(v1, { role: 'server' })).toEqual(expect.arrayContaining(['not_v3', 'cn_only']));
    expect(codes(v1, { role: 'server' })).not.toContain('missing_ski');
    expect(codes(leaf('server', { serial: Buffer.from([0x80, 1, 2, 3, 4, 5, 6, 7]) }))).toEqual([
      'negative_or_long_serial',
    ]);
    expect(codes(leaf('server', { serial: Buffer.from([0]) }))).toEqual(['negative_or_long_serial']);
    expect(codes(leaf('server', { serial: Buffer.alloc(21, 0x11) }))).toEqual(['negative_or_long_serial']);
    expect(codes(leaf('server', { serial: Buffer.alloc(20, 0x11) }))).toEqual([]);
    expect(codes(leaf('server', { serial: Buffer.from([0x01, 0x02]) }))).toEqual([]);
    const low = lintCertificate(leaf('server', { serial: Buffer.from([0x01, 0x02]) }), { at: AT });
    expect(low.map((f) => [f.code, f.severity])).toEqual([['low_entropy_serial', 'info']]);
    expect(low[0]!.message).toContain('16-bit serial number (0x0102)');
  });

  it('missing_ski and missing_aki', () => {
    expect(codes(leaf('server', { mutate: (e) => replace(e, OID.subjectKeyIdentifier) }))).toEqual([
      'missing_ski',
    ]);
    const f = lintCertificate(leaf('server', { mutate: (e) => replace(e, OID.authorityKeyIdentifier) }), {
      at: AT,
    });
    expect(f.map((x) => x.code)).toEqual(['missing_aki']);
    expect(f[0]!.message).toContain('CN=Lint Issuing CA');
    // a self-issued root needs no AKI
    expect(root.authorityKeyId).toBeUndefined();
    expect(codes(root)).toEqual([]);
  });

  it('unknown_critical_extension, malformed_extension, duplicate_extension', () => {
    const unknown = leaf('server', { mutate: (e) => [...e, ext('1.3.6.1.4.1.99999.1', der.NULL, true)] });
    const f = lintCertificate(unknown, { at: AT });
    expect(f.map((x) => x.code)).toEqual(['unknown_critical_extension']);
    expect(f[0]!.message).toContain('1.3.6.1.4.1.99999.1');
    expect(codes(leaf('server', { mutate: (e) => [...e, ext('1.3.6.1.4.1.99999.2', der.NULL)] }))).toEqual(
      [],
    );
    const malformed = leaf('server', {
      mutate: (e) => replace(e, OID.extKeyUsage, ext(OID.extKeyUsage, der.seq())),
    });
    expect(malformed.extensionErrors.length).toBe(1);
    expect(codes(malformed, { role: 'server' })).toEqual(['malformed_extension', 'eku_absent']);
    const dup = leaf('server', { mutate: (e) => [...e, ext(OID.extKeyUsage, ekuValue(OID.serverAuth))] });
    expect(codes(dup, { role: 'server' })).toEqual(['duplicate_extension']);
  });

  describe('against the issuer', () => {
    it('issuer_mismatch, bad_signature, aki_mismatch', () => {
      expect(codes(leaf('server'), { issuer: root })).toEqual(['issuer_mismatch', 'aki_mismatch']);
      const wrongKey = leaf('server', { signer: keys.p384 });
      const f = lintCertificate(wrongKey, { issuer: inter, at: AT });
      expect(f.map((x) => x.code)).toEqual(['bad_signature']);
      expect(f[0]!.message).toContain('CN=Lint Issuing CA');
    });

    it('issuer_not_ca, path_too_long, outlives_issuer', () => {
      const server = leaf('server');
      const sub = craft({
        key: keys.p384,
        signer: keys.p256,
        issuerName: server.subject,
        subject: parseName('CN=x'),
        exts: leafExts(keys.p384, 'client', []),
      });
      expect(codes(sub, { role: 'client', issuer: server })).toContain('issuer_not_ca');
      const subCa = craft({
        key: keys.p384,
        signer: interKey,
        issuerName: inter.subject,
        subject: parseName('CN=Sub CA'),
        exts: [
          ext(OID.basicConstraints, bcValue(true, 0), true),
          ext(OID.keyUsage, kuValue('keyCertSign', 'cRLSign'), true),
          ext(OID.subjectKeyIdentifier, der.octetString(keyIdentifier(spkiOf(keys.p384)))),
          ext(OID.authorityKeyIdentifier, der.seq(der.ctx(0, inter.subjectKeyId!, false))),
        ],
      });
      expect(codes(subCa, { role: 'intermediate', issuer: inter })).toEqual(['path_too_long']);
      const long = leaf('server', { notAfter: new Date(inter.notAfter.getTime() + DAY) });
      expect(codes(long, { role: 'server', issuer: inter, at: AT })).toEqual(
        expect.arrayContaining(['outlives_issuer']),
      );
    });
  });

  it('every finding carries the catalog severity, evidence and a concrete fix', () => {
    const broken = leaf('client', {
      key: keys.rsa1024,
      sig: 'sha1',
      serial: Buffer.from([0xff]),
      sans: [{ type: 'dns', value: '*.example.org' }],
      notAfter: new Date(NOW.getTime() + 900 * DAY),
      mutate: (e) =>
        replace(
          replace(e, OID.keyUsage, ext(OID.keyUsage, kuValue('keyEncipherment'))),
          OID.basicConstraints,
          ext(OID.basicConstraints, bcValue(true)),
        ),
    });
    const found = lintCertificate(broken, { role: 'client', at: new Date(NOW.getTime() + 899 * DAY) });
    expect(found.length).toBeGreaterThanOrEqual(7);
    for (const f of found) {
      expect(f.severity).toBe(LINT_RULES[f.code].severity);
      expect(f.message).toContain('CN=payments');
      expect(f.fix).toMatch(/mtls |openssl|-addext|--ttl|-set_serial/);
    }
  });
});

// ------------------------------------------------------------------ certificates made by openssl

describe('certificates made by openssl', () => {
  let dir: string;
  const run = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const load = (file: string): Certificate =>
    parseCertificate(decodePem(readFileSync(join(dir, file)))[0]!.der);

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mtlskit-lint-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('a careful openssl CA and server certificate lint clean', () => {
    run(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-subj',
      '/O=Example/CN=OpenSSL CA',
      '-days',
      '3650',
      '-addext',
      'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
    run(
      'req',
      '-new',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'srv.key',
      '-out',
      'srv.csr',
      '-subj',
      '/CN=api.example.org',
    );
    writeFileSync(
      join(dir, 'srv.ext'),
      'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:api.example.org,IP:127.0.0.1\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
    );
    run(
      'x509',
      '-req',
      '-in',
      'srv.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-days',
      '90',
      '-sha256',
      '-extfile',
      'srv.ext',
      '-out',
      'srv.pem',
    );
    const ca = load('ca.pem');
    const srv = load('srv.pem');
    const now = new Date();
    expect(detectRole(ca)).toBe('root');
    expect(lintCertificate(ca, { at: now }).filter((f) => f.severity !== 'info')).toEqual([]);
    expect(detectRole(srv)).toBe('server');
    expect(lintCertificate(srv, { issuer: ca, at: now }).filter((f) => f.severity !== 'info')).toEqual([]);
    expect(fitProfiles(srv)).toEqual(['server']);
  });

  it('the default "openssl req -x509" certificate used as a server: the usual mistakes, each with a fix', () => {
    run(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'quick.key',
      '-out',
      'quick.pem',
      '-subj',
      '/CN=localhost',
      '-days',
      '3650',
    );
    const quick = load('quick.pem');
    expect(detectRole(quick)).toBe('root');
    const found = lintCertificate(quick, { role: 'server', at: new Date() });
    expect(found.map((f) => f.code).sort()).toEqual([
      'cn_only',
      'eku_absent',
      'leaf_is_ca',
      'missing_key_usage',
      'validity_too_long',
    ]);
    const cnOnly = found.find((f) => f.code === 'cn_only')!;
    expect(cnOnly.message).toContain('"localhost"');
    expect(cnOnly.fix).toBe(
      'Reissue it with the name as a SAN: mtls issue server localhost --san dns:localhost (openssl -addext "subjectAltName=DNS:localhost").',
    );
    // as a root it lacks keyUsage, which strict verifiers refuse
    expect(codes(quick, { role: 'root', at: new Date() })).toEqual(['ca_missing_key_cert_sign']);
    expect(fitProfiles(quick)).toEqual([]);
  });
});
