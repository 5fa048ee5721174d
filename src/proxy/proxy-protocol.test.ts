import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { ipToBytes } from '../pki/index.js';
import {
  PP2_SIGNATURE,
  PP2_TYPE_CRC32C,
  PP2_TYPE_MTLS_SPIFFE_ID,
  PP2_TYPE_SSL,
  crc32c,
  decodeProxyV2,
  encodeProxyV2,
  proxyV2HeaderLength,
  verifyCode,
  type ProxyHeaderInput,
} from './proxy-protocol.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeError(buf: Buffer): string {
  try {
    decodeProxyV2(buf);
  } catch (e) {
    expect(isMtlsError(e, 'MTLS_PROXY_BAD_REQUEST'), String(e)).toBe(true);
    return (e as Error).message;
  }
  throw new Error('decoded without an error');
}

describe('crc32c', () => {
  it('gives the check value of RFC 4960 / iSCSI for "123456789"', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });
  it('is 0 for no bytes and matches a known 32-byte vector (RFC 3720 B.4: 32 zero bytes)', () => {
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
  });
});

describe('encodeProxyV2: exact bytes', () => {
  it('TCP over IPv4 with ALPN, authority and unique id (hand-checked)', () => {
    const buf = encodeProxyV2({
      source: { address: '192.0.2.1', port: 56324 },
      destination: { address: '198.51.100.7', port: 443 },
      alpn: 'h2',
      authority: 'a.example',
      uniqueId: 'id-1',
    });
    const want = hex(`
      0d0a0d0a000d0a515549540a  21 11  0024
      c0000201 c6336407 dc04 01bb
      01 0002 6832
      02 0009 612e6578616d706c65
      05 0004 69642d31`);
    // length: 12 address bytes + (3+2) + (3+9) + (3+4) = 36 = 0x0024
    expect(buf.toString('hex')).toBe(want.toString('hex'));
    expect(buf.subarray(0, 12)).toEqual(PP2_SIGNATURE);
    expect(buf[12]).toBe(0x21);
    expect(buf[13]).toBe(0x11);
    expect(buf.readUInt16BE(14)).toBe(buf.length - 16);
  });

  it('TCP over IPv6: family 0x21 and 36 address bytes', () => {
    const buf = encodeProxyV2({
      source: { address: '2001:db8::1', port: 1 },
      destination: { address: '::1', port: 443 },
    });
    expect(buf.toString('hex')).toBe(
      '0d0a0d0a000d0a515549540a' +
        '2121' +
        '0024' +
        '20010db8000000000000000000000001' +
        '00000000000000000000000000000001' +
        '0001' +
        '01bb',
    );
  });

  it('sends IPv4-mapped IPv6 (as a dual-stack socket reports it) as IPv4', () => {
    const buf = encodeProxyV2({
      source: { address: '::ffff:127.0.0.1', port: 40000 },
      destination: { address: '::FFFF:7f00:2', port: 8443 },
    });
    expect(buf[13]).toBe(0x11);
    const d = decodeProxyV2(buf);
    expect(d.source).toEqual({ address: '127.0.0.1', port: 40000 });
    expect(d.destination).toEqual({ address: '127.0.0.2', port: 8443 });
  });

  it('maps the IPv4 side when only one side is IPv6, and drops a zone', () => {
    const d = decodeProxyV2(
      encodeProxyV2({
        source: { address: '10.0.0.1', port: 1 },
        destination: { address: 'fe80::1%eth0', port: 2 },
      }),
    );
    expect(d.family).toBe('inet6');
    expect(d.source?.address).toBe('::ffff:a00:1');
    expect(d.destination?.address).toBe('fe80::1');
  });

  it('the SSL TLV: client bits, verify and the sub-TLVs in order', () => {
    const buf = encodeProxyV2({
      source: { address: '127.0.0.1', port: 1 },
      destination: { address: '127.0.0.1', port: 2 },
      ssl: { certConn: true, certSess: true, verify: 0, version: 'TLSv1.3', cn: 'alice' },
    });
    const tlvs = buf.subarray(16 + 12);
    expect(tlvs.toString('hex')).toBe(
      '20' +
        '0017' +
        '07' +
        '00000000' +
        '21' +
        '0007' +
        Buffer.from('TLSv1.3').toString('hex') +
        '22' +
        '0005' +
        Buffer.from('alice').toString('hex'),
    );
  });

  it('LOCAL: 16 bytes, command 0x20, family UNSPEC, no addresses', () => {
    const buf = encodeProxyV2({ command: 'LOCAL', source: { address: '1.2.3.4', port: 5 } });
    expect(buf.toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '20' + '00' + '0000');
    const d = decodeProxyV2(buf);
    expect(d).toMatchObject({ command: 'LOCAL', family: 'unspec', headerLength: 16, tlvs: [] });
    expect(d.source).toBeUndefined();
  });

  it('CRC32C: last TLV, over the whole header with the field zeroed; the decoder checks it', () => {
    const buf = encodeProxyV2({
      source: { address: '127.0.0.1', port: 1234 },
      destination: { address: '127.0.0.1', port: 443 },
      authority: 'localhost',
      crc32c: true,
    });
    const at = buf.length - 7;
    expect(buf[at]).toBe(PP2_TYPE_CRC32C);
    expect(buf.readUInt16BE(at + 1)).toBe(4);
    const sent = buf.readUInt32BE(at + 3);
    const zeroed = Buffer.from(buf);
    zeroed.fill(0, at + 3);
    expect(crc32c(zeroed)).toBe(sent);
    expect(decodeProxyV2(buf).crc32c).toBe(sent);
    const bad = Buffer.from(buf);
    bad[20] = bad[20]! ^ 1;
    expect(decodeError(bad)).toMatch(/CRC32C is 0x[0-9a-f]{8} but the header's checksum is/);
  });

  it('refuses values the header cannot carry', () => {
    const base = {
      source: { address: '127.0.0.1', port: 1 },
      destination: { address: '127.0.0.1', port: 2 },
    };
    const bad: ProxyHeaderInput[] = [
      { ...base, uniqueId: 'x'.repeat(129) },
      { ...base, authority: 'a'.repeat(256) },
      { ...base, source: { address: 'localhost', port: 1 } },
      { ...base, source: { address: '127.0.0.1', port: 65536 } },
      { ...base, ssl: { certConn: false, certSess: false, verify: -1 } },
      { destination: base.destination },
      { ...base, extraTlvs: [{ type: PP2_TYPE_CRC32C, value: Buffer.alloc(4) }] },
    ];
    for (const h of bad) {
      let err: unknown;
      try {
        encodeProxyV2(h);
      } catch (e) {
        err = e;
      }
      expect(isMtlsError(err, 'MTLS_CONFIG_INVALID'), JSON.stringify(h).slice(0, 80)).toBe(true);
    }
    expect(encodeProxyV2({ ...base, uniqueId: 'x'.repeat(128) }).length).toBe(16 + 12 + 3 + 128);
  });
});

describe('decodeProxyV2', () => {
  const v4 = (): Buffer =>
    encodeProxyV2({
      source: { address: '127.0.0.1', port: 1 },
      destination: { address: '127.0.0.1', port: 2 },
      authority: 'x',
    });

  it('returns the header length so the payload after it can be found', () => {
    const payload = Buffer.from('GET / HTTP/1.1\r\n\r\n');
    const h = v4();
    const d = decodeProxyV2(Buffer.concat([h, payload]));
    expect(d.headerLength).toBe(h.length);
    expect(proxyV2HeaderLength(h.subarray(0, 16))).toBe(h.length);
    expect(proxyV2HeaderLength(h.subarray(0, 15))).toBeUndefined();
  });

  it('rejects malformed input with a message naming the problem', () => {
    const h = v4();
    const cases: [Buffer, RegExp][] = [
      [h.subarray(0, 10), /incomplete header/],
      [h.subarray(0, h.length - 1), /length field says \d+ bytes but only \d+ are here/],
      [Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), /version 1 \(text\) header/],
      [Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n'), Buffer.alloc(4)]), /not the signature/],
      [Buffer.from(h).fill(0x31, 12, 13), /version 3/],
      [Buffer.from(h).fill(0x22, 12, 13), /command 0x2/],
      [Buffer.from(h).fill(0x41, 13, 14), /family\/transport byte 0x41/],
      [Buffer.from(h).fill(0x13, 13, 14), /family\/transport byte 0x13/],
      [Buffer.from(h).fill(0x10, 13, 14), /mixes UNSPEC/],
    ];
    for (const [buf, re] of cases) expect(decodeError(buf)).toMatch(re);
  });

  it('rejects a family whose addresses do not fit, and TLVs that overrun', () => {
    const short = Buffer.from(v4().subarray(0, 16 + 8));
    short.writeUInt16BE(8, 14);
    expect(decodeError(short)).toMatch(/family inet needs 12 address bytes; the length field says 8/);
    const overrun = Buffer.from(v4());
    overrun.writeUInt16BE(200, 16 + 12 + 1); // the authority TLV's length
    expect(decodeError(overrun)).toMatch(/TLV 0x02 says 200 bytes but only 1 remain/);
    const dangling = Buffer.concat([v4(), Buffer.from([0x04, 0x00])]);
    dangling.writeUInt16BE(dangling.length - 16, 14);
    expect(decodeError(dangling)).toMatch(/2 byte\(s\) left where a TLV needs at least 3/);
  });

  it('rejects an SSL TLV too short for client+verify, a bad sub-TLV and an oversized unique id', () => {
    const withTlv = (type: number, value: Buffer): Buffer => {
      const h = encodeProxyV2({
        source: { address: '127.0.0.1', port: 1 },
        destination: { address: '127.0.0.1', port: 2 },
        extraTlvs: [{ type, value }],
      });
      return h;
    };
    expect(decodeError(withTlv(PP2_TYPE_SSL, Buffer.from([1, 0, 0])))).toMatch(/PP2_TYPE_SSL is 3 bytes/);
    expect(decodeError(withTlv(PP2_TYPE_SSL, Buffer.from([1, 0, 0, 0, 0, 0x21, 0, 9, 0x41])))).toMatch(
      /PP2_TYPE_SSL sub-TLV 0x21 says 9 bytes/,
    );
    expect(decodeError(withTlv(0x05, Buffer.alloc(129, 0x61)))).toMatch(/UNIQUE_ID is 129 bytes/);
    const crc2 = Buffer.concat([withTlv(0x04, Buffer.alloc(0)), Buffer.from([PP2_TYPE_CRC32C, 0, 2, 0, 0])]);
    crc2.writeUInt16BE(crc2.length - 16, 14);
    expect(decodeError(crc2)).toMatch(/CRC32C is 2 bytes, not 4/);
  });

  it('keeps unknown TLVs raw and reads our SPIFFE ID TLV (0xE0)', () => {
    const d = decodeProxyV2(
      encodeProxyV2({
        source: { address: '127.0.0.1', port: 1 },
        destination: { address: '127.0.0.1', port: 2 },
        spiffeId: 'spiffe://example.org/ns/obs/sa/collector',
        extraTlvs: [{ type: 0xe5, value: Buffer.from([1, 2, 3]) }],
      }),
    );
    expect(d.spiffeId).toBe('spiffe://example.org/ns/obs/sa/collector');
    expect(d.tlvs.map((t) => t.type)).toEqual([PP2_TYPE_MTLS_SPIFFE_ID, 0xe5]);
    expect(d.tlvs[1]!.value).toEqual(Buffer.from([1, 2, 3]));
  });

  it('reads a header HAProxy-style senders produce for AF_UNIX (216 address bytes)', () => {
    const body = Buffer.alloc(216);
    body.write('/run/a.sock', 0);
    body.write('/run/b.sock', 108);
    const h = Buffer.concat([PP2_SIGNATURE, Buffer.from([0x21, 0x31, 0x00, 216]), body]);
    const d = decodeProxyV2(h);
    expect(d.family).toBe('unix');
    expect(d.source?.address).toBe('/run/a.sock');
    expect(d.destination?.address).toBe('/run/b.sock');
  });
});

describe('round trip (property)', () => {
  const addr4 = fc.ipV4();
  const addr6 = fc.ipV6();
  const port = fc.integer({ min: 0, max: 65535 });
  const text = (max: number) =>
    fc.string({ unit: 'grapheme', maxLength: max }).filter((s) => Buffer.byteLength(s) <= max);
  const input = fc.record(
    {
      v6: fc.boolean(),
      s4: addr4,
      d4: addr4,
      s6: addr6,
      d6: addr6,
      sp: port,
      dp: port,
      alpn: text(40),
      authority: text(200),
      uniqueId: fc.uint8Array({ minLength: 1, maxLength: 128 }),
      spiffeId: text(200),
      ssl: fc.option(
        fc.record({
          certConn: fc.boolean(),
          certSess: fc.boolean(),
          verify: fc.nat({ max: 0xffffffff }),
          version: text(10),
          cn: text(64),
          cipher: text(40),
          sigAlg: text(20),
          keyAlg: text(10),
        }),
        { nil: undefined },
      ),
      crc: fc.boolean(),
    },
    { requiredKeys: ['v6', 's4', 'd4', 's6', 'd6', 'sp', 'dp', 'uniqueId', 'crc'] },
  );

  it('decode(encode(x)) gives back x', () => {
    fc.assert(
      fc.property(input, (x) => {
        const src = x.v6 ? x.s6 : x.s4;
        const dst = x.v6 ? x.d6 : x.d4;
        const h: ProxyHeaderInput = {
          source: { address: src, port: x.sp },
          destination: { address: dst, port: x.dp },
          uniqueId: Buffer.from(x.uniqueId),
          crc32c: x.crc,
          ...(x.alpn !== undefined ? { alpn: x.alpn } : {}),
          ...(x.authority !== undefined ? { authority: x.authority } : {}),
          ...(x.spiffeId !== undefined ? { spiffeId: x.spiffeId } : {}),
          ...(x.ssl ? { ssl: x.ssl } : {}),
        };
        const buf = encodeProxyV2(h);
        const d = decodeProxyV2(Buffer.concat([buf, Buffer.from('payload')]));
        expect(d.headerLength).toBe(buf.length);
        expect(d.command).toBe('PROXY');
        // IPv4-mapped IPv6 from the generator is sent as IPv4: compare as 16-byte mapped forms.
        const as16 = (a: string): string =>
          (a.includes(':') ? ipToBytes(a) : ipToBytes(`::ffff:${a}`)).toString('hex');
        expect(as16(d.source!.address)).toBe(as16(src));
        expect(as16(d.destination!.address)).toBe(as16(dst));
        expect(d.source!.port).toBe(x.sp);
        expect(d.destination!.port).toBe(x.dp);
        expect(d.uniqueId).toEqual(Buffer.from(x.uniqueId));
        expect(d.alpn).toBe(x.alpn ? x.alpn : undefined);
        expect(d.authority).toBe(x.authority ? x.authority : undefined);
        expect(d.spiffeId).toBe(x.spiffeId ? x.spiffeId : undefined);
        expect(d.crc32c === undefined).toBe(!x.crc);
        if (x.ssl) {
          expect(d.ssl).toMatchObject({
            clientSsl: true,
            certConn: x.ssl.certConn,
            certSess: x.ssl.certSess,
            verify: x.ssl.verify,
          });
          for (const k of ['version', 'cn', 'cipher', 'sigAlg', 'keyAlg'] as const)
            expect(d.ssl?.[k]).toBe(x.ssl[k]);
        } else expect(d.ssl).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it('never throws anything but an MtlsError on arbitrary bytes after the signature', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
        const buf = Buffer.concat([PP2_SIGNATURE, Buffer.from(tail)]);
        try {
          decodeProxyV2(buf);
        } catch (e) {
          expect(isMtlsError(e, 'MTLS_PROXY_BAD_REQUEST')).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('verifyCode', () => {
  it('is 0 only for a verified certificate; OpenSSL numbers for known codes; 1 otherwise', () => {
    expect(verifyCode(true, true, null)).toBe(0);
    expect(verifyCode(true, false, null)).toBe(1);
    expect(verifyCode(false, true, 'CERT_HAS_EXPIRED')).toBe(10);
    expect(
      verifyCode(false, true, Object.assign(new Error('x'), { code: 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' })),
    ).toBe(20);
    expect(verifyCode(false, true, 'SOMETHING_ELSE')).toBe(1);
  });
});
