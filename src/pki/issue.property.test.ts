// Property tests: certificates issued from random subjects, SAN sets, validity windows and profiles
// read back identically in Node's X509Certificate and in `openssl x509 -text`.
import { execFileSync } from 'node:child_process';
import { X509Certificate, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseCertificate } from './certificate.js';
import { createIssuer, selfSign, type Clock, type IssuedCertificate } from './issue.js';
import { generateKey, spkiOf, type KeyType } from './keys.js';
import { ipToBytes, type DistinguishedName, type San } from './names.js';
import { OID, attributeShortName } from './oids.js';
import { PROFILES, type ProfileName } from './profiles.js';

// ------------------------------------------------------------------ arbitraries

const ATTRS = [
  OID.commonName,
  OID.organizationName,
  OID.organizationalUnitName,
  OID.localityName,
  OID.stateOrProvinceName,
];

/** Characters that need escaping in RFC 4514 text, plus Latin, CJK, emoji and plain ASCII. */
const valueChar = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...'abcXYZ019 -._'.split('')) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(',', '+', '"', '\\', '<', '>', ';', '#', '=', ' ', '/', "'", '*', '@'),
  },
  { weight: 2, arbitrary: fc.constantFrom('é', 'ß', 'ü', 'Ω', 'ж', '日', '本', '中', '😀', '🔐', 'ñ') },
);
const attrValue = fc.string({ unit: valueChar, minLength: 1, maxLength: 16 });

const attribute = fc.oneof(
  { weight: 6, arbitrary: fc.record({ oid: fc.constantFrom(...ATTRS), value: attrValue }) },
  {
    weight: 1,
    arbitrary: fc.record({
      oid: fc.constant<string>(OID.countryName),
      value: fc.stringMatching(/^[A-Z]{2}$/),
    }),
  },
);
const subjectArb = (minLength: number): fc.Arbitrary<DistinguishedName> =>
  fc.array(fc.array(attribute, { minLength: 1, maxLength: 2 }), { minLength, maxLength: 4 });

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
const tld = fc.stringMatching(/^[a-z]{2,6}$/);
const dnsName = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 3 }), tld)
  .map(([ls, t]) => [...ls, t].join('.'));
const wildcardName = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 2 }), tld)
  .map(([ls, t]) => ['*', ...ls, t].join('.'));
const ipSan = fc.oneof(fc.ipV4(), fc.ipV6()).map((value): San => ({ type: 'ip', value }));
const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,10}$/).filter((s) => s !== '.' && s !== '..');
const trustDomain = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,14}$/);
const spiffeId = fc
  .tuple(trustDomain, fc.array(segment, { minLength: 1, maxLength: 4 }))
  .map(([td, segs]) => `spiffe://${td}/${segs.join('/')}`);
const httpsUri = fc
  .tuple(
    dnsName,
    fc.array(segment, { maxLength: 3 }),
    fc.option(fc.stringMatching(/^[a-z]{1,5}=[a-z0-9]{1,5}$/), { nil: undefined }),
  )
  .map(([h, segs, q]) => `https://${h}/${segs.join('/')}${q ? `?${q}` : ''}`);
const email = fc
  .tuple(fc.stringMatching(/^[a-z0-9][a-z0-9.+_-]{0,9}$/), dnsName)
  .map(([local, domain]): San => ({ type: 'email', value: `${local}@${domain}` }));
const dnsSan = (wild: boolean): fc.Arbitrary<San> =>
  (wild ? fc.oneof({ weight: 4, arbitrary: dnsName }, { weight: 1, arbitrary: wildcardName }) : dnsName).map(
    (value): San => ({ type: 'dns', value }),
  );
const uriSan = fc.oneof(spiffeId, httpsUri).map((value): San => ({ type: 'uri', value }));

interface Case {
  profile: ProfileName;
  subject: DistinguishedName;
  sans: San[];
  now: Date;
  ttlMs: number;
  keyType: KeyType;
}

/** A valid request for a profile: the names it needs, a lifetime within its ceiling, a clock from 1990 to 2060. */
function caseFor(profile: ProfileName): fc.Arbitrary<Case> {
  const p = PROFILES[profile];
  const host = fc.oneof(dnsSan(p.allowWildcard), ipSan);
  let sans: fc.Arbitrary<San[]>;
  if (p.ca) sans = fc.constant([]);
  else if (profile === 'spiffe')
    sans = fc
      .tuple(spiffeId, fc.array(fc.oneof(dnsSan(false), ipSan, email), { maxLength: 3 }))
      .map(([id, rest]) => [{ type: 'uri', value: id }, ...rest]);
  else {
    const other = fc.array(fc.oneof(host, uriSan, email), { maxLength: 4 });
    sans = p.needsHostSan ? fc.tuple(host, other).map(([h, rest]) => [h, ...rest]) : other;
  }
  return fc.record({
    profile: fc.constant(profile),
    subject: subjectArb(p.ca ? 1 : 0),
    sans,
    now: fc.date({
      min: new Date('1990-01-01T00:00:00Z'),
      max: new Date('2060-01-01T00:00:00Z'),
      noInvalidDate: true,
    }),
    ttlMs: fc.integer({ min: 60_000, max: p.maxTtlMs }),
    keyType: fc.constantFrom<KeyType>('p256', 'p384', 'rsa2048', 'ed25519'),
  });
}

const anyCase = fc
  .constantFrom<ProfileName>('root', 'intermediate', 'server', 'client', 'spiffe', 'peer')
  .chain(caseFor);

// ------------------------------------------------------------------ issuing a case

let keys: Record<'p256' | 'p384' | 'rsa2048' | 'ed25519', KeyObject>;
let caKey: KeyObject;

beforeAll(() => {
  keys = {
    p256: generateKey('p256'),
    p384: generateKey('p384'),
    rsa2048: generateKey('rsa2048'),
    ed25519: generateKey('ed25519'),
  };
  caKey = generateKey('p256');
});

function issue(c: Case): IssuedCertificate {
  const clock: Clock = { now: () => c.now };
  // A client needs some identity: give it a CN when the generator gave neither subject nor SAN.
  const subject =
    c.profile === 'client' && c.subject.length === 0 && c.sans.length === 0
      ? [[{ oid: OID.commonName, value: 'client' }]]
      : c.subject;
  const key = keys[c.keyType as keyof typeof keys];
  if (c.profile === 'root') return selfSign(key, { profile: 'root', subject, ttlMs: c.ttlMs }, clock);
  const root = parseCertificate(
    selfSign(
      caKey,
      {
        profile: 'root',
        subject: [[{ oid: OID.commonName, value: 'Property Root' }]],
        ttlMs: PROFILES.root.maxTtlMs,
      },
      clock,
    ).der,
  );
  return createIssuer(root, caKey, clock).issue({
    profile: c.profile,
    subject,
    sans: c.sans,
    ttlMs: c.ttlMs,
    publicKey: spkiOf(key),
  });
}

// ------------------------------------------------------------------ reading RFC 2253/4514 text back

/**
 * Splits RFC 2253-style text into RDNs of "SN=value" with values unescaped: "\X" is X, and runs of
 * "\XX" hex pairs are UTF-8 octets (what openssl's esc_msb writes).
 */
function parseDnText(text: string, rdnSep: string, avaSep: string): string[][] {
  if (text === '') return [];
  const rdns: string[][] = [];
  let rdn: string[] = [];
  let type = '';
  let bytes: number[] = [];
  let inValue = false;
  const flushAva = (): void => {
    rdn.push(`${type}=${Buffer.from(bytes).toString('utf8')}`);
    type = '';
    bytes = [];
    inValue = false;
  };
  const chars = Array.from(text);
  let joined = 0; // index into `text` (UTF-16) for startsWith
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (inValue && ch === '\\') {
      const next = chars[i + 1] ?? '';
      const next2 = chars[i + 2] ?? '';
      if (/^[0-9a-fA-F]$/.test(next) && /^[0-9a-fA-F]$/.test(next2)) {
        bytes.push(parseInt(next + next2, 16));
        i += 2;
        joined += 3;
      } else {
        bytes.push(...Buffer.from(next, 'utf8'));
        i += 1;
        joined += 1 + next.length;
      }
      continue;
    }
    if (inValue && text.startsWith(rdnSep, joined)) {
      flushAva();
      rdns.push(rdn);
      rdn = [];
      i += Array.from(rdnSep).length - 1;
      joined += rdnSep.length;
      continue;
    }
    if (inValue && text.startsWith(avaSep, joined)) {
      flushAva();
      i += Array.from(avaSep).length - 1;
      joined += avaSep.length;
      continue;
    }
    if (!inValue && ch === '=') inValue = true;
    else if (inValue) bytes.push(...Buffer.from(ch, 'utf8'));
    else type += ch;
    joined += ch.length;
  }
  flushAva();
  rdns.push(rdn);
  return rdns;
}

const sortRdns = (rdns: string[][]): string[][] => rdns.map((r) => [...r].sort());

function expectedSubject(dn: DistinguishedName): string[][] {
  return sortRdns(dn.map((rdn) => rdn.map((a) => `${attributeShortName(a.oid)}=${a.value}`)));
}

/** SANs as comparable strings: IPs as their bytes, so 2001:DB8:0:0:0:0:0:1 equals 2001:db8::1. */
function sanKey(type: string, value: string): string {
  switch (type) {
    case 'dns':
    case 'DNS':
      return `dns:${value}`;
    case 'ip':
    case 'IP Address':
      return `ip:${ipToBytes(value).toString('hex')}`;
    case 'uri':
    case 'URI':
      return `uri:${value}`;
    case 'email':
      return `email:${value}`;
    default:
      return `${type}:${value}`;
  }
}

function parseSanText(text: string | undefined): string[] {
  if (!text) return [];
  return text.split(', ').map((item) => {
    const i = item.indexOf(':');
    const type = item.slice(0, i);
    let value = item.slice(i + 1);
    if (value.startsWith('"')) value = JSON.parse(value) as string;
    return sanKey(type, value);
  });
}

const expectedSans = (sans: San[]): string[] => sans.map((s) => sanKey(s.type, s.value));

const normSerial = (s: string): string =>
  s
    .replace(/:/g, '')
    .toLowerCase()
    .replace(/^(00)+/, '');

const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

// ------------------------------------------------------------------ properties

describe('issued certificates read back the same everywhere', () => {
  it('our parser sees exactly the requested subject (as RDN sets), SANs, validity and serial', () => {
    fc.assert(
      fc.property(anyCase, (c) => {
        const issued = issue(c);
        const cert = parseCertificate(issued.der);
        const subject =
          c.profile === 'client' && c.subject.length === 0 && c.sans.length === 0
            ? [[{ oid: OID.commonName, value: 'client' }]]
            : c.subject;
        expect(expectedSubject(cert.subject)).toEqual(expectedSubject(subject));
        expect(
          cert.subjectAltNames.map((n) =>
            n.type === 'other' || n.type === 'dn' ? n.type : sanKey(n.type, n.value),
          ),
        ).toEqual(expectedSans(c.sans));
        expect(seconds(cert.notBefore)).toBe(seconds(c.now) - 60);
        expect(seconds(cert.notAfter)).toBe(seconds(new Date(c.now.getTime() + c.ttlMs)));
        expect(cert.serial).toBe(issued.serial);
        expect(cert.sanCritical).toBe(cert.hasSan && subject.length === 0);
      }),
      { numRuns: 300 },
    );
  });

  it("Node's X509Certificate parses the same subject fields, SANs, dates and serial", () => {
    fc.assert(
      fc.property(anyCase, (c) => {
        const issued = issue(c);
        const cert = parseCertificate(issued.der);
        const x = new X509Certificate(issued.der);
        expect(sortRdns(parseDnText(x.subject ?? '', '\n', ' + '))).toEqual(expectedSubject(cert.subject));
        expect(parseSanText(x.subjectAltName)).toEqual(expectedSans(c.sans));
        expect(seconds(new Date(x.validFrom))).toBe(seconds(issued.notBefore));
        expect(seconds(new Date(x.validTo))).toBe(seconds(issued.notAfter));
        expect(normSerial(x.serialNumber)).toBe(normSerial(issued.serial));
        expect(x.ca).toBe(PROFILES[c.profile].ca);
        expect(x.checkPrivateKey(keys[c.keyType as keyof typeof keys])).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('openssl x509 -text -nameopt RFC2253 parses the same subject fields, SANs, dates and serial', () => {
    fc.assert(
      fc.property(anyCase, (c) => {
        const issued = issue(c);
        const cert = parseCertificate(issued.der);
        const text = execFileSync('openssl', ['x509', '-noout', '-text', '-nameopt', 'RFC2253'], {
          input: issued.pem,
          encoding: 'utf8',
        });
        const subjectLine = /^\s*Subject: ?(.*)$/m.exec(text)?.[1] ?? '';
        // RFC 2253 prints the most specific RDN first: reverse to encoding order.
        expect(sortRdns(parseDnText(subjectLine, ',', '+').reverse())).toEqual(expectedSubject(cert.subject));
        const sanBlock = /X509v3 Subject Alternative Name:( critical)? *\n\s*(.*)\n/.exec(text);
        expect(parseSanText(sanBlock?.[2])).toEqual(expectedSans(c.sans));
        if (sanBlock) expect(sanBlock[1] === ' critical').toBe(cert.sanCritical);
        const notBefore = /Not Before: (.*)$/m.exec(text)![1]!;
        const notAfter = /Not After : (.*)$/m.exec(text)![1]!;
        expect(seconds(new Date(notBefore))).toBe(seconds(issued.notBefore));
        expect(seconds(new Date(notAfter))).toBe(seconds(issued.notAfter));
        const serial = /Serial Number:\s*\n?\s*([0-9a-f:]+)/.exec(text)![1]!;
        expect(normSerial(serial)).toBe(normSerial(issued.serial));
        expect(text.includes('CA:TRUE')).toBe(PROFILES[c.profile].ca);
      }),
      { numRuns: 50 },
    );
  });
});
