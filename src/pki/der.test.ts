import { describe, expect, it } from 'vitest';
import * as der from './der.js';
import { DerError, Tag } from './der.js';

const hex = (b: Buffer): string => b.toString('hex');

describe('DER writer', () => {
  it('encodes lengths in short and long form at every boundary', () => {
    for (const [len, prefix] of [
      [0, '0400'],
      [0x7f, '047f'],
      [0x80, '048180'],
      [0xff, '0481ff'],
      [0x100, '04820100'],
      [0xffff, '0482ffff'],
      [0x10000, '0483010000'],
    ] as const) {
      const out = der.octetString(Buffer.alloc(len, 0xab));
      expect(hex(out.subarray(0, prefix.length / 2))).toBe(prefix);
      expect(out.length).toBe(prefix.length / 2 + len);
      const node = der.readOne(out);
      expect(der.content(node).length).toBe(len);
    }
  });

  it('encodes INTEGERs minimally and positive', () => {
    expect(hex(der.integer(0))).toBe('020100');
    expect(hex(der.integer(1))).toBe('020101');
    expect(hex(der.integer(127))).toBe('02017f');
    expect(hex(der.integer(128))).toBe('02020080');
    expect(hex(der.integer(255))).toBe('020200ff');
    expect(hex(der.integer(256))).toBe('02020100');
    expect(hex(der.integer(2n ** 64n))).toBe('0209010000000000000000');
    expect(hex(der.integer(Buffer.from([0, 0, 0x12])))).toBe('020112');
    expect(hex(der.integer(Buffer.from([0x80, 1])))).toBe('0203008001');
    expect(hex(der.integer(Buffer.from([0, 0])))).toBe('020100');
    expect(() => der.integer(-1)).toThrow(DerError);
  });

  it('encodes OIDs, including large arcs and joint-iso arcs', () => {
    expect(hex(der.oid('1.2.840.113549.1.1.11'))).toBe('06092a864886f70d01010b');
    expect(hex(der.oid('2.5.29.17'))).toBe('0603551d11');
    expect(hex(der.oid('2.999.3'))).toBe('0603883703');
    expect(hex(der.oid('1.3.6.1.4.1.311.21.20'))).toBe('06092b0601040182371514');
    expect(() => der.oid('1')).toThrow(DerError);
    expect(() => der.oid('1.2.x')).toThrow(DerError);
    for (const o of [
      '1.2.840.113549.1.1.11',
      '2.5.29.17',
      '2.999.3',
      '0.9.2342.19200300.100.1.25',
      '1.3.6.1.4.1.99999.4294967296',
    ]) {
      expect(der.readOid(der.readOne(der.oid(o)))).toBe(o);
    }
  });

  it('encodes booleans, NULL, strings and BIT STRINGs', () => {
    expect(hex(der.boolean(true))).toBe('0101ff');
    expect(hex(der.boolean(false))).toBe('010100');
    expect(hex(der.NULL)).toBe('0500');
    expect(hex(der.utf8('é'))).toBe('0c02c3a9');
    expect(hex(der.printable('AB'))).toBe('13024142');
    expect(hex(der.ia5('a@b'))).toBe('1603614062');
    expect(hex(der.bitString(Buffer.from([0xf0]), 4))).toBe('030204f0');
  });

  it('encodes KeyUsage named bits without trailing zero bits', () => {
    // digitalSignature (0): 03 02 07 80
    expect(hex(der.namedBits([0]))).toBe('03020780');
    // keyCertSign (5) + cRLSign (6): 03 02 01 06
    expect(hex(der.namedBits([5, 6]))).toBe('03020106');
    // digitalSignature + keyEncipherment (2): 03 02 05 a0
    expect(hex(der.namedBits([0, 2]))).toBe('030205a0');
    // decipherOnly (8) needs a second byte: 03 03 07 00 80
    expect(hex(der.namedBits([8]))).toBe('0303070080');
    expect(hex(der.namedBits([]))).toBe('030100');
    for (const bits of [[0], [5, 6], [0, 2], [8], [0, 1, 2, 3, 4, 5, 6, 7, 8], []]) {
      expect(der.readNamedBits(der.readOne(der.namedBits(bits)))).toEqual(bits);
    }
  });

  it('encodes times: UTCTime 1950-2049, GeneralizedTime otherwise, whole seconds', () => {
    expect(der.time(new Date('2026-01-02T03:04:05.678Z')).toString('latin1').slice(2)).toBe('260102030405Z');
    expect(der.time(new Date('2026-01-02T03:04:05Z'))[0]).toBe(Tag.UTC_TIME);
    expect(der.time(new Date('1950-01-01T00:00:00Z'))[0]).toBe(Tag.UTC_TIME);
    expect(der.time(new Date('2049-12-31T23:59:59Z'))[0]).toBe(Tag.UTC_TIME);
    expect(der.time(new Date('2050-01-01T00:00:00Z')).toString('latin1').slice(2)).toBe('20500101000000Z');
    expect(der.time(new Date('1949-12-31T23:59:59Z'))[0]).toBe(Tag.GENERALIZED_TIME);
    expect(der.generalizedTime(new Date('2026-01-02T03:04:05.678Z')).toString('latin1').slice(2)).toBe(
      '20260102030405Z',
    );
    for (const iso of [
      '1950-01-01T00:00:00Z',
      '1999-12-31T23:59:59Z',
      '2049-12-31T23:59:59Z',
      '2050-01-01T00:00:00Z',
      '9999-12-31T23:59:59Z',
    ]) {
      expect(der.readTime(der.readOne(der.time(new Date(iso)))).toISOString()).toBe(
        new Date(iso).toISOString(),
      );
    }
  });

  it('builds nested structures: seq, set, context tags', () => {
    const s = der.seq(
      der.integer(1),
      der.set(der.NULL),
      der.ctx(0, der.integer(2)),
      der.ctx(1, Buffer.from('ab'), false),
    );
    expect(hex(s)).toBe('3010020101310205 00a003020102 81026162'.replace(/\s/g, ''));
    const kids = der.children(der.readOne(s));
    expect(kids.map((k) => k.tag)).toEqual([Tag.INTEGER, Tag.SET, 0xa0, 0x81]);
    expect(kids[2]!.cls).toBe(2);
    expect(kids[2]!.constructed).toBe(true);
    expect(kids[3]!.constructed).toBe(false);
    expect(kids[3]!.num).toBe(1);
    expect(der.raw(kids[0]!).equals(der.integer(1))).toBe(true);
  });
});

describe('DER reader', () => {
  it('rejects indefinite, non-minimal, oversized and truncated lengths', () => {
    expect(() => der.read(Buffer.from('3080', 'hex'))).toThrow(/indefinite/);
    expect(() => der.read(Buffer.from('04817f' + '00'.repeat(0x7f), 'hex'))).toThrow(/non-minimal/);
    expect(() => der.read(Buffer.from('0482007f' + '00'.repeat(0x7f), 'hex'))).toThrow(/non-minimal/);
    expect(() => der.read(Buffer.from('0485ffffffffff', 'hex'))).toThrow(/too large/);
    expect(() => der.read(Buffer.from('0482', 'hex'))).toThrow(/truncated length/);
    expect(() => der.read(Buffer.from('04', 'hex'))).toThrow(/truncated length/);
    expect(() => der.read(Buffer.from('040500', 'hex'))).toThrow(/truncated value/);
    expect(() => der.read(Buffer.alloc(0))).toThrow(/unexpected end/);
    expect(() => der.read(Buffer.from('1f0100', 'hex'))).toThrow(/multi-byte/);
  });

  it('readOne refuses trailing data; children stay inside the parent', () => {
    expect(() => der.readOne(Buffer.from('050000', 'hex'))).toThrow(/trailing data/);
    // inner length runs past the outer SEQUENCE
    expect(() => der.children(der.readOne(Buffer.from('3003040500', 'hex')))).toThrow(DerError);
    expect(() => der.children(der.readOne(der.integer(5)))).toThrow(/constructed/);
  });

  it('expect checks presence and tag', () => {
    const n = der.readOne(der.integer(5));
    expect(der.expect(n, Tag.INTEGER, 'x')).toBe(n);
    expect(() => der.expect(undefined, Tag.INTEGER, 'serialNumber')).toThrow(/missing serialNumber/);
    expect(() => der.expect(n, Tag.SEQUENCE, 'Name')).toThrow(/Name: expected tag 0x30, got 0x2/);
  });

  it('reads OIDs strictly', () => {
    expect(() => der.readOid(der.readOne(Buffer.from('0600', 'hex')))).toThrow(/empty OID/);
    expect(() => der.readOid(der.readOne(Buffer.from('06022a86', 'hex')))).toThrow(/truncated OID/);
    expect(() => der.readOid(der.readOne(Buffer.from('06032a8001', 'hex')))).toThrow(/non-minimal/);
    expect(der.readOid(der.readOne(Buffer.from('0603813403', 'hex')))).toBe('2.100.3');
  });

  it('reads integers, small ints (signed), booleans', () => {
    expect(der.readSmallInt(der.readOne(der.integer(300)))).toBe(300);
    expect(der.readSmallInt(der.readOne(Buffer.from('0201ff', 'hex')))).toBe(-1);
    expect(der.readSmallInt(der.readOne(Buffer.from('020180', 'hex')))).toBe(-128);
    expect(() => der.readSmallInt(der.readOne(der.integer(2n ** 60n)))).toThrow(/too large/);
    expect(() => der.readIntegerBytes(der.readOne(Buffer.from('0200', 'hex')))).toThrow(/empty INTEGER/);
    expect(der.readBoolean(der.readOne(der.boolean(true)))).toBe(true);
    expect(der.readBoolean(der.readOne(der.boolean(false)))).toBe(false);
    expect(() => der.readBoolean(der.readOne(Buffer.from('010101', 'hex')))).toThrow(/0x00 or 0xFF/);
    expect(() => der.readBoolean(der.readOne(Buffer.from('01020000', 'hex')))).toThrow(/one byte/);
  });

  it('reads BIT STRINGs and rejects bad padding', () => {
    expect(der.readBitString(der.readOne(Buffer.from('030204f0', 'hex')))).toEqual({
      bytes: Buffer.from([0xf0]),
      unusedBits: 4,
    });
    expect(() => der.readBitString(der.readOne(Buffer.from('0300', 'hex')))).toThrow(/empty BIT STRING/);
    expect(() => der.readBitString(der.readOne(Buffer.from('030108', 'hex')))).toThrow(/padding/);
    expect(() => der.readBitString(der.readOne(Buffer.from('030201ff', 'hex').subarray(0, 3)))).toThrow(
      DerError,
    );
    expect(() => der.readBitString(der.readOne(Buffer.from('030207', 'hex').subarray(0, 2)))).toThrow(
      DerError,
    );
    expect(() => der.readBitString(der.readOne(Buffer.from('030107', 'hex')))).toThrow(/padding/);
  });

  it('reads times in DER form only', () => {
    const t = (tag: number, s: string): der.Node => der.readOne(der.tlv(tag, Buffer.from(s, 'latin1')));
    expect(der.readTime(t(Tag.UTC_TIME, '491231235959Z')).toISOString()).toBe('2049-12-31T23:59:59.000Z');
    expect(der.readTime(t(Tag.UTC_TIME, '500101000000Z')).toISOString()).toBe('1950-01-01T00:00:00.000Z');
    expect(der.readTime(t(Tag.GENERALIZED_TIME, '20500101000000.5Z')).toISOString()).toBe(
      '2050-01-01T00:00:00.500Z',
    );
    expect(() => der.readTime(t(Tag.UTC_TIME, '4912312359Z'))).toThrow(/UTCTime/);
    expect(() => der.readTime(t(Tag.UTC_TIME, '491231235959+0100'))).toThrow(/UTCTime/);
    expect(() => der.readTime(t(Tag.GENERALIZED_TIME, '20500101000000.50Z'))).toThrow(/GeneralizedTime/);
    expect(() => der.readTime(der.readOne(der.integer(1)))).toThrow(/expected a time/);
  });

  it('decodes every X.520 string type', () => {
    const s = (tag: number, b: Buffer): string => der.readString(der.readOne(der.tlv(tag, b)));
    expect(s(Tag.UTF8_STRING, Buffer.from('日本 é', 'utf8'))).toBe('日本 é');
    expect(s(Tag.BMP_STRING, Buffer.from('00e9004100', 'hex').subarray(0, 4))).toBe('éA');
    expect(s(Tag.UNIVERSAL_STRING, Buffer.from('0001f600', 'hex'))).toBe('😀');
    expect(s(Tag.PRINTABLE_STRING, Buffer.from('Ab 1'))).toBe('Ab 1');
    expect(s(Tag.IA5_STRING, Buffer.from('a@b'))).toBe('a@b');
    expect(s(Tag.T61_STRING, Buffer.from([0x41]))).toBe('A');
    expect(s(Tag.VISIBLE_STRING, Buffer.from('v'))).toBe('v');
    expect(() => s(Tag.BMP_STRING, Buffer.from([0]))).toThrow(/odd-length/);
    expect(() => s(Tag.INTEGER, Buffer.from([0]))).toThrow(/not a string/);
  });
});
