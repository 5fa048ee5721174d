import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import * as der from './der.js';
import {
  bytesToIp,
  commonName,
  decodeGeneralName,
  decodeGeneralNames,
  decodeName,
  encodeGeneralName,
  encodeGeneralNames,
  encodeName,
  formatGeneralName,
  formatName,
  ipToBytes,
  isPrintableString,
  isValidDnsName,
  isValidTrustDomain,
  parseName,
  parseSanList,
  spiffeIdProblem,
  spiffeTrustDomain,
  validateSan,
  type DistinguishedName,
  type San,
} from './names.js';
import { OID } from './oids.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return isMtlsError(e) ? e.code : `not an MtlsError: ${String(e)}`;
  }
  return undefined;
};

describe('parseName', () => {
  it('reads the comma form in order, with spaces around separators', () => {
    expect(parseName('C=DE, O=Example , CN=api')).toEqual([
      [{ oid: OID.countryName, value: 'DE' }],
      [{ oid: OID.organizationName, value: 'Example' }],
      [{ oid: OID.commonName, value: 'api' }],
    ]);
    expect(parseName('')).toEqual([]);
    expect(parseName('   ')).toEqual([]);
  });

  it('reads the openssl slash form', () => {
    expect(parseName('/C=US/O=Example, Inc./CN=api')).toEqual([
      [{ oid: OID.countryName, value: 'US' }],
      [{ oid: OID.organizationName, value: 'Example, Inc.' }],
      [{ oid: OID.commonName, value: 'api' }],
    ]);
  });

  it('reads multi-valued RDNs, aliases, numeric OIDs and semicolons', () => {
    expect(parseName('CN=a+OU=b; E=x@y.example, 2.5.4.97=VATDE-1, S=Bavaria, email=z@y.example')).toEqual([
      [
        { oid: OID.commonName, value: 'a' },
        { oid: OID.organizationalUnitName, value: 'b' },
      ],
      [{ oid: OID.emailAddress, value: 'x@y.example' }],
      [{ oid: '2.5.4.97', value: 'VATDE-1' }],
      [{ oid: OID.stateOrProvinceName, value: 'Bavaria' }],
      [{ oid: OID.emailAddress, value: 'z@y.example' }],
    ]);
  });

  it('unescapes RFC 4514 escapes, hex pairs as UTF-8, and keeps an escaped trailing space', () => {
    expect(parseName('CN=a\\,b\\+c\\=d\\\\e\\"f\\<g\\>h\\;i')[0]![0]!.value).toBe('a,b+c=d\\e"f<g>h;i');
    expect(parseName('CN=caf\\C3\\A9')[0]![0]!.value).toBe('café');
    expect(parseName('CN=\\2C\\41')[0]![0]!.value).toBe(',A');
    expect(parseName('CN=\\ lead')[0]![0]!.value).toBe(' lead');
    expect(parseName('CN=\\#hash')[0]![0]!.value).toBe('#hash');
    expect(parseName('CN=trail\\ ')[0]![0]!.value).toBe('trail ');
    expect(parseName('CN=trail\\ , O=x')[0]![0]!.value).toBe('trail ');
    expect(parseName('CN=back\\\\ ')[0]![0]!.value).toBe('back\\');
  });

  it('refuses malformed names with MTLS_PKI_BAD_NAME and a fix', () => {
    for (const bad of ['CN=a,', 'CN=a,,O=b', 'api', '=x', 'XX=1', 'CN=', 'C=Germany', 'C=de', 'CN=a+']) {
      expect(
        codeOf(() => parseName(bad)),
        bad,
      ).toBe('MTLS_PKI_BAD_NAME');
    }
    try {
      parseName('XX=1');
    } catch (e) {
      expect((e as Error).message).toContain('unknown attribute type "XX"');
      expect(isMtlsError(e) && e.fix).toContain('CN=name,O=Organisation');
    }
  });
});

describe('formatName', () => {
  it('prints most significant first with short names and " + " inside an RDN', () => {
    expect(formatName(parseName('C=DE,O=Example,CN=api+OU=ops'))).toBe('C=DE, O=Example, CN=api + OU=ops');
    expect(formatName([])).toBe('');
    expect(formatName([[{ oid: '1.2.3.4', value: 'x' }]])).toBe('1.2.3.4=x');
  });

  it('escapes specials, leading # or space and trailing space', () => {
    expect(formatName([[{ oid: OID.commonName, value: 'a,b+c"d\\e<f>g;h=i' }]])).toBe(
      'CN=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i',
    );
    expect(formatName([[{ oid: OID.commonName, value: '#x' }]])).toBe('CN=\\#x');
    expect(formatName([[{ oid: OID.commonName, value: ' x ' }]])).toBe('CN=\\ x\\ ');
    expect(formatName([[{ oid: OID.commonName, value: ' ' }]])).toBe('CN=\\ ');
    expect(formatName([[{ oid: OID.commonName, value: 'a\\ ' }]])).toBe('CN=a\\\\\\ ');
  });

  it('round-trips through parseName for any value', () => {
    const value = fc
      .string({
        unit: fc.constantFrom(
          'a',
          'Z',
          '9',
          ' ',
          ',',
          '+',
          '"',
          '\\',
          '<',
          '>',
          ';',
          '=',
          '#',
          '/',
          'é',
          '日',
          '😀',
          '-',
          '.',
        ),
        minLength: 1,
        maxLength: 12,
      })
      .filter((s) => s.trim() !== '' || s.length > 0);
    fc.assert(
      fc.property(
        fc.array(
          fc.array(
            fc.tuple(
              fc.constantFrom(
                OID.commonName,
                OID.organizationName,
                OID.organizationalUnitName,
                OID.localityName,
              ),
              value,
            ),
            { minLength: 1, maxLength: 2 },
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (rdns) => {
          const dn: DistinguishedName = rdns.map((rdn) => rdn.map(([oid, v]) => ({ oid, value: v })));
          expect(parseName(formatName(dn))).toEqual(dn);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('commonName', () => {
  it('finds the first CN anywhere, including in a multi-valued RDN', () => {
    expect(commonName(parseName('O=x,OU=y+CN=z,CN=w'))).toBe('z');
    expect(commonName(parseName('O=x'))).toBeUndefined();
  });
});

describe('encodeName / decodeName', () => {
  it('uses PrintableString for C and serialNumber, IA5String for email and DC, UTF8String otherwise', () => {
    const dn = parseName('C=DE,SERIALNUMBER=42,DC=example,emailAddress=a@b.example,CN=Grüße');
    const decoded = decodeName(der.readOne(encodeName(dn)));
    expect(decoded.map((r) => r[0]!.tag)).toEqual([
      der.Tag.PRINTABLE_STRING,
      der.Tag.PRINTABLE_STRING,
      der.Tag.IA5_STRING,
      der.Tag.IA5_STRING,
      der.Tag.UTF8_STRING,
    ]);
    expect(decoded.map((r) => r[0]!.value)).toEqual(['DE', '42', 'example', 'a@b.example', 'Grüße']);
  });

  it('round-trips byte-faithfully, keeping the string tags found', () => {
    const encoded = der.seq(
      der.set(der.seq(der.oid(OID.countryName), der.printable('US'))),
      der.set(
        der.seq(der.oid(OID.organizationName), der.tlv(der.Tag.T61_STRING, Buffer.from('Old CA'))),
        der.seq(der.oid(OID.commonName), der.tlv(der.Tag.BMP_STRING, Buffer.from('0041', 'hex'))),
      ),
    );
    const dn = decodeName(der.readOne(encoded));
    expect(formatName(dn)).toBe('C=US, O=Old CA + CN=A');
    expect(encodeName(dn).equals(encoded)).toBe(false); // BMP is re-encoded as latin1 bytes
    const simple = der.seq(
      der.set(der.seq(der.oid(OID.organizationName), der.tlv(der.Tag.T61_STRING, Buffer.from('Old CA')))),
    );
    expect(encodeName(decodeName(der.readOne(simple))).equals(simple)).toBe(true);
    expect(encodeName([]).toString('hex')).toBe('3000');
  });

  it('sorts the members of a multi-valued RDN by their DER encoding (SET OF)', () => {
    const dn = parseName('OU=zeta+CN=b+CN=a,O=x');
    const decoded = decodeName(der.readOne(encodeName(dn)));
    expect(decoded[0]!.map((a) => `${a.oid}=${a.value}`)).toEqual([
      `${OID.commonName}=a`,
      `${OID.commonName}=b`,
      `${OID.organizationalUnitName}=zeta`,
    ]);
    expect(decoded[1]!.map((a) => a.value)).toEqual(['x']);
    // the order written does not change the bytes
    expect(encodeName(parseName('CN=a+CN=b+OU=zeta,O=x')).equals(encodeName(dn))).toBe(true);
  });

  it('shows non-string values as #hex and rejects structural errors', () => {
    const enc = der.seq(der.set(der.seq(der.oid(OID.commonName), der.integer(5))));
    expect(decodeName(der.readOne(enc))[0]![0]!.value).toBe('#020105');
    expect(() => decodeName(der.readOne(der.seq(der.set())))).toThrow(/empty RDN/);
    expect(() => decodeName(der.readOne(der.seq(der.set(der.seq(der.oid(OID.commonName))))))).toThrow(
      /without value/,
    );
    expect(() => decodeName(der.readOne(der.set()))).toThrow(/Name/);
  });

  it('isPrintableString', () => {
    expect(isPrintableString("Ab 0'()+,-./:=?")).toBe(true);
    expect(isPrintableString('a@b')).toBe(false);
    expect(isPrintableString('é')).toBe(false);
  });
});

describe('DNS names and SPIFFE IDs', () => {
  it('isValidDnsName', () => {
    for (const ok of [
      'a',
      'api.example.org',
      'x-1.y',
      '_srv._tcp.example.org',
      'a'.repeat(63) + '.com',
      'localhost',
    ]) {
      expect(isValidDnsName(ok, false), ok).toBe(true);
    }
    for (const bad of [
      '',
      '-a.example',
      'a-.example',
      'a..b',
      'a.example.',
      'a b.example',
      'a'.repeat(64) + '.com',
      `${'a.'.repeat(127)}ab`,
      '*.example.org',
      'é.example',
    ]) {
      expect(isValidDnsName(bad, false), bad).toBe(false);
    }
    expect(isValidDnsName('*.example.org', true)).toBe(true);
    expect(isValidDnsName('*.org', true)).toBe(false);
    expect(isValidDnsName('a.*.org', true)).toBe(false);
    expect(isValidDnsName('f*.example.org', true)).toBe(false);
  });

  it('spiffeIdProblem follows the SPIFFE ID syntax', () => {
    for (const ok of [
      'spiffe://example.org',
      'spiffe://example.org/ns/prod/sa/api',
      'spiffe://td-1_x.y/A.b-c_d',
      `spiffe://td/${'a'.repeat(2030)}`,
    ]) {
      expect(spiffeIdProblem(ok), ok).toBeUndefined();
    }
    const cases: Array<[string, RegExp]> = [
      ['https://example.org/a', /spiffe:\/\//],
      ['SPIFFE://example.org/a', /spiffe:\/\//],
      ['spiffe:///a', /trust domain is empty/],
      ['spiffe://Example.org/a', /lowercase/],
      ['spiffe://example.org:443/a', /port/],
      ['spiffe://user@example.org/a', /user info/],
      ['spiffe://exa%6dple.org/a', /only lowercase letters/],
      ['spiffe://example.org/', /must not end with/],
      ['spiffe://example.org/a/', /empty segment/],
      ['spiffe://example.org/a//b', /empty segment/],
      ['spiffe://example.org/a/../b', /"\." or "\.\."/],
      ['spiffe://example.org/./b', /"\." or "\.\."/],
      ['spiffe://example.org/a?x=1', /query and fragment/],
      ['spiffe://example.org/a#f', /query and fragment/],
      ['spiffe://example.org/a%20b', /path segment "a%20b"/],
      [`spiffe://td/${'a'.repeat(2040)}`, /2048 bytes/],
    ];
    for (const [id, why] of cases) expect(spiffeIdProblem(id), id).toMatch(why);
  });

  it('spiffeTrustDomain and isValidTrustDomain', () => {
    expect(spiffeTrustDomain('spiffe://example.org/ns/a')).toBe('example.org');
    expect(spiffeTrustDomain('spiffe://example.org')).toBe('example.org');
    expect(isValidTrustDomain('example.org')).toBe(true);
    expect(isValidTrustDomain('Example.org')).toBe(false);
    expect(isValidTrustDomain('a'.repeat(256))).toBe(false);
  });
});

describe('SANs', () => {
  it('validateSan normalizes and accepts good names', () => {
    expect(validateSan({ type: 'dns', value: 'API.Example.org.' })).toEqual({
      type: 'dns',
      value: 'api.example.org',
    });
    expect(validateSan({ type: 'dns', value: '*.example.org' }, { allowWildcard: true })).toEqual({
      type: 'dns',
      value: '*.example.org',
    });
    expect(validateSan({ type: 'ip', value: '[::1]' })).toEqual({ type: 'ip', value: '::1' });
    expect(validateSan({ type: 'ip', value: '10.0.0.1' })).toEqual({ type: 'ip', value: '10.0.0.1' });
    expect(validateSan({ type: 'uri', value: 'spiffe://td/x' })).toEqual({
      type: 'uri',
      value: 'spiffe://td/x',
    });
    expect(validateSan({ type: 'uri', value: 'https://id.example.org/x' })).toEqual({
      type: 'uri',
      value: 'https://id.example.org/x',
    });
    expect(validateSan({ type: 'email', value: 'a.b+c@example.org' })).toEqual({
      type: 'email',
      value: 'a.b+c@example.org',
    });
  });

  it('validateSan rejects bad names with MTLS_PKI_BAD_SAN / MTLS_PKI_BAD_SPIFFE_ID', () => {
    const bad: Array<[San, string, boolean?]> = [
      [{ type: 'dns', value: '*.example.org' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'dns', value: '*.org' }, 'MTLS_PKI_BAD_SAN', true],
      [{ type: 'dns', value: 'a..b' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'dns', value: '10.0.0.1' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'ip', value: '10.0.0.256' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'ip', value: 'localhost' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'uri', value: 'not a uri' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'uri', value: '/relative/path' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'uri', value: 'spiffe://TD/x' }, 'MTLS_PKI_BAD_SPIFFE_ID'],
      [{ type: 'uri', value: 'spiffe:/td/x' }, 'MTLS_PKI_BAD_SPIFFE_ID'],
      [{ type: 'email', value: 'no-at-sign' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'email', value: 'a@b@c' }, 'MTLS_PKI_BAD_SAN'],
      [{ type: 'email', value: 'a@-bad-.example' }, 'MTLS_PKI_BAD_SAN'],
    ];
    for (const [san, code, wild] of bad)
      expect(
        codeOf(() => validateSan(san, { allowWildcard: wild ?? false })),
        san.value,
      ).toBe(code);
    try {
      validateSan({ type: 'dns', value: '10.0.0.1' });
    } catch (e) {
      expect(isMtlsError(e) && e.fix).toContain('ip:10.0.0.1');
    }
  });

  it('parseSanList reads type:value lists in any case, from a string or an array', () => {
    expect(parseSanList('DNS:a.example, ip:127.0.0.1,URI:spiffe://td/x ,email:a@b.example')).toEqual([
      { type: 'dns', value: 'a.example' },
      { type: 'ip', value: '127.0.0.1' },
      { type: 'uri', value: 'spiffe://td/x' },
      { type: 'email', value: 'a@b.example' },
    ]);
    expect(parseSanList(['dns:a.example', 'ip:::1'])).toEqual([
      { type: 'dns', value: 'a.example' },
      { type: 'ip', value: '::1' },
    ]);
    expect(parseSanList(undefined)).toEqual([]);
    expect(parseSanList('')).toEqual([]);
    expect(parseSanList('dns:*.example.org', { allowWildcard: true })).toEqual([
      { type: 'dns', value: '*.example.org' },
    ]);
    for (const bad of ['a.example', 'dns:', 'host:a', ':x'])
      expect(
        codeOf(() => parseSanList(bad)),
        bad,
      ).toBe('MTLS_PKI_BAD_SAN');
    expect(codeOf(() => parseSanList('dns:*.example.org'))).toBe('MTLS_PKI_BAD_SAN');
  });

  it('formatGeneralName uses openssl-style prefixes', () => {
    expect(formatGeneralName({ type: 'dns', value: 'a' })).toBe('DNS:a');
    expect(formatGeneralName({ type: 'ip', value: '10.0.0.0', mask: '255.0.0.0' })).toBe(
      'IP:10.0.0.0/255.0.0.0',
    );
    expect(formatGeneralName({ type: 'uri', value: 'spiffe://td/x' })).toBe('URI:spiffe://td/x');
    expect(formatGeneralName({ type: 'email', value: 'a@b' })).toBe('email:a@b');
    expect(formatGeneralName({ type: 'dn', value: parseName('CN=x') })).toBe('DirName:CN=x');
    expect(formatGeneralName({ type: 'other', tag: 0xa0, raw: Buffer.alloc(0) })).toBe('othername:[0]');
  });

  it('ipToBytes / bytesToIp round-trip IPv4 and IPv6 in canonical form', () => {
    expect(ipToBytes('192.168.1.2').toString('hex')).toBe('c0a80102');
    expect(ipToBytes('::1').toString('hex')).toBe('0'.repeat(31) + '1');
    expect(ipToBytes('2001:db8::ff00:42:8329').toString('hex')).toBe('20010db8000000000000ff0000428329');
    expect(ipToBytes('::ffff:1.2.3.4').toString('hex')).toBe('00000000000000000000ffff01020304');
    expect(ipToBytes('1::').toString('hex')).toBe('0001' + '0'.repeat(28));
    expect(ipToBytes('1:2:3:4:5:6:7:8').toString('hex')).toBe('00010002000300040005000600070008');
    expect(bytesToIp(Buffer.from('c0a80102', 'hex'))).toBe('192.168.1.2');
    expect(bytesToIp(ipToBytes('2001:db8:0:0:1:0:0:1'))).toBe('2001:db8::1:0:0:1');
    expect(bytesToIp(ipToBytes('2001:db8:0:1:1:1:1:1'))).toBe('2001:db8:0:1:1:1:1:1');
    expect(bytesToIp(ipToBytes('::'))).toBe('::');
    expect(bytesToIp(ipToBytes('1::'))).toBe('1::');
    expect(bytesToIp(Buffer.from([1, 2, 3]))).toBe('010203');
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const bytes = ipToBytes(ip);
        expect(bytes.length).toBe(ip.includes(':') ? 16 : 4);
        expect(ipToBytes(bytesToIp(bytes)).equals(bytes)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes and decodes GeneralNames with the right context tags', () => {
    const sans: San[] = [
      { type: 'email', value: 'a@b.example' },
      { type: 'dns', value: 'a.example' },
      { type: 'uri', value: 'spiffe://td/x' },
      { type: 'ip', value: '10.1.2.3' },
      { type: 'ip', value: '2001:db8::1' },
    ];
    expect(sans.map((s) => encodeGeneralName(s)[0])).toEqual([0x81, 0x82, 0x86, 0x87, 0x87]);
    expect(decodeGeneralNames(der.readOne(encodeGeneralNames(sans)))).toEqual(sans);
    const dirName = der.ctx(4, encodeName(parseName('CN=x')));
    expect(decodeGeneralName(der.readOne(dirName))).toEqual({
      type: 'dn',
      value: [[{ oid: OID.commonName, value: 'x', tag: der.Tag.UTF8_STRING }]],
    });
    const other = der.ctx(0, der.seq(der.oid('1.2.3'), der.ctx(0, der.utf8('x'))));
    expect(decodeGeneralName(der.readOne(other))).toMatchObject({ type: 'other', tag: 0xa0 });
    expect(() => decodeGeneralName(der.readOne(der.integer(1)))).toThrow(/context-tagged/);
    expect(() => decodeGeneralName(der.readOne(der.tlv(0x87, Buffer.from([1, 2, 3]))))).toThrow(
      /iPAddress length/,
    );
  });

  it('reads iPAddress name constraints as address and mask', () => {
    const c = der.tlv(0x87, Buffer.from([10, 0, 0, 0, 255, 0, 0, 0]));
    expect(decodeGeneralName(der.readOne(c), true)).toEqual({
      type: 'ip',
      value: '10.0.0.0',
      mask: '255.0.0.0',
    });
    expect(() => decodeGeneralName(der.readOne(der.tlv(0x87, Buffer.from([10, 0, 0, 0]))), true)).toThrow(
      /constraint length/,
    );
  });
});
