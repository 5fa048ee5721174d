// A small DER writer and reader. The writer is the issuance fast path (TBSCertificate, CRL, OCSP);
// the reader walks TLVs without building an object tree, so parsing stays cheap.

export const Tag = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  PRINTABLE_STRING: 0x13,
  T61_STRING: 0x14,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  VISIBLE_STRING: 0x1a,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
} as const;

/** Raised for any structural problem; callers turn it into an MtlsError with context. */
export class DerError extends Error {
  override name = 'DerError';
}

// ---------------------------------------------------------------- writer

/** Size of the identifier and length octets for `len` content bytes. */
function headerSize(len: number): number {
  return len < 0x80 ? 2 : len < 0x100 ? 3 : len < 0x10000 ? 4 : len < 0x1000000 ? 5 : 6;
}

/** Writes the identifier and length octets at 0 and returns the offset of the content. */
function writeHeader(out: Buffer, tag: number, len: number): number {
  out[0] = tag;
  if (len < 0x80) {
    out[1] = len;
    return 2;
  }
  const n = headerSize(len) - 2;
  out[1] = 0x80 | n;
  for (let i = n; i > 0; i--, len = Math.floor(len / 256)) out[1 + i] = len & 0xff;
  return 2 + n;
}

/** One TLV with a single-byte tag: one allocation, one copy. */
export function tlv(tag: number, content: Buffer): Buffer {
  const len = content.length;
  const out = Buffer.allocUnsafe(headerSize(len) + len);
  content.copy(out, writeHeader(out, tag, len));
  return out;
}

/** A constructed TLV around the concatenation of `parts`, written in place (no intermediate concat). */
function constructed(tag: number, parts: Buffer[]): Buffer {
  if (parts.length === 1) return tlv(tag, parts[0]!);
  let len = 0;
  for (let i = 0; i < parts.length; i++) len += parts[i]!.length;
  const out = Buffer.allocUnsafe(headerSize(len) + len);
  let p = writeHeader(out, tag, len);
  for (let i = 0; i < parts.length; i++) p += parts[i]!.copy(out, p);
  return out;
}

export function seq(...parts: Buffer[]): Buffer {
  return constructed(Tag.SEQUENCE, parts);
}

export function set(...parts: Buffer[]): Buffer {
  return constructed(Tag.SET, parts);
}

/** Context-specific tag [n]; constructed for explicit tagging and constructed types. */
export function ctx(n: number, content: Buffer, constructed = true): Buffer {
  return tlv((constructed ? 0xa0 : 0x80) | n, content);
}

/** INTEGER from a non-negative number, bigint, or big-endian unsigned bytes. */
export function integer(value: number | bigint | Buffer): Buffer {
  let bytes: Buffer;
  if (Buffer.isBuffer(value)) {
    let i = 0;
    while (i < value.length - 1 && value[i] === 0) i++;
    bytes = value.subarray(i);
    if (bytes.length === 0) bytes = Buffer.from([0]);
  } else {
    let v = BigInt(value);
    if (v < 0n) throw new DerError('negative INTEGER is not supported by this writer');
    const out: number[] = [];
    do {
      out.unshift(Number(v & 0xffn));
      v >>= 8n;
    } while (v > 0n);
    bytes = Buffer.from(out);
  }
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return tlv(Tag.INTEGER, bytes);
}

export function boolean(value: boolean): Buffer {
  return Buffer.from([Tag.BOOLEAN, 1, value ? 0xff : 0]);
}

export const NULL = Buffer.from([Tag.NULL, 0]);

const oidCache = new Map<string, Buffer>();

export function oid(dotted: string): Buffer {
  const hit = oidCache.get(dotted);
  if (hit) return hit;
  const arcs = dotted.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new DerError(`invalid OID ${dotted}`);
    return BigInt(a);
  });
  if (arcs.length < 2) throw new DerError(`invalid OID ${dotted}`);
  const out: number[] = [];
  const encodeArc = (arc: bigint): void => {
    const stack = [Number(arc & 0x7fn)];
    arc >>= 7n;
    while (arc > 0n) {
      stack.unshift(Number(arc & 0x7fn) | 0x80);
      arc >>= 7n;
    }
    out.push(...stack);
  };
  encodeArc(arcs[0]! * 40n + arcs[1]!);
  for (const arc of arcs.slice(2)) encodeArc(arc);
  const encoded = tlv(Tag.OID, Buffer.from(out));
  if (oidCache.size < 4096) oidCache.set(dotted, encoded);
  return encoded;
}

export function octetString(content: Buffer): Buffer {
  return tlv(Tag.OCTET_STRING, content);
}

export function bitString(content: Buffer, unusedBits = 0): Buffer {
  const out = Buffer.allocUnsafe(content.length + 1);
  out[0] = unusedBits;
  content.copy(out, 1);
  return tlv(Tag.BIT_STRING, out);
}

/** A named-bit BIT STRING (KeyUsage): bits numbered from the most significant bit of the first byte. */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return bitString(Buffer.alloc(0));
  const max = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(max / 8) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  // DER: trailing zero bits are removed, and counted as unused.
  const last = bytes[bytes.length - 1]!;
  let unused = 0;
  while (unused < 8 && (last & (1 << unused)) === 0) unused++;
  return bitString(bytes, unused);
}

export function utf8(s: string): Buffer {
  return tlv(Tag.UTF8_STRING, Buffer.from(s, 'utf8'));
}

export function printable(s: string): Buffer {
  return tlv(Tag.PRINTABLE_STRING, Buffer.from(s, 'latin1'));
}

export function ia5(s: string): Buffer {
  return tlv(Tag.IA5_STRING, Buffer.from(s, 'latin1'));
}

const pad2 = (n: number): string => (n < 10 ? '0' : '') + n;

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always seconds and Z. */
export function time(date: Date): Buffer {
  const y = date.getUTCFullYear();
  const rest =
    pad2(date.getUTCMonth() + 1) +
    pad2(date.getUTCDate()) +
    pad2(date.getUTCHours()) +
    pad2(date.getUTCMinutes()) +
    pad2(date.getUTCSeconds()) +
    'Z';
  if (y >= 1950 && y < 2050) return tlv(Tag.UTC_TIME, Buffer.from(pad2(y % 100) + rest, 'latin1'));
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(String(y).padStart(4, '0') + rest, 'latin1'));
}

export function generalizedTime(date: Date): Buffer {
  const iso = date.toISOString(); // 2026-01-02T03:04:05.678Z
  const s =
    iso.slice(0, 4) +
    iso.slice(5, 7) +
    iso.slice(8, 10) +
    iso.slice(11, 13) +
    iso.slice(14, 16) +
    iso.slice(17, 19) +
    'Z';
  return tlv(Tag.GENERALIZED_TIME, Buffer.from(s, 'latin1'));
}

// ---------------------------------------------------------------- reader

export interface Node {
  /** The full identifier octet. */
  tag: number;
  /** 0 universal, 1 application, 2 context, 3 private. */
  cls: number;
  constructed: boolean;
  /** Tag number within the class (single-byte tags only, which is all X.509 uses). */
  num: number;
  /** Offset of the identifier octet. */
  start: number;
  /** Offset of the first content octet. */
  contentStart: number;
  /** Offset just past the content. */
  end: number;
  buf: Buffer;
}

/** Reads one TLV at `offset`, enforcing DER length rules and bounds. */
export function read(buf: Buffer, offset = 0, limit = buf.length): Node {
  if (offset >= limit) throw new DerError('unexpected end of data');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tags are not supported');
  let p = offset + 1;
  if (p >= limit) throw new DerError('truncated length');
  let len = buf[p++]!;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw new DerError('indefinite length is not DER');
    if (n > 4) throw new DerError('length too large');
    if (p + n > limit) throw new DerError('truncated length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    if (len < 0x80 || (n > 1 && buf[p - n] === 0)) throw new DerError('non-minimal length encoding');
  }
  const end = p + len;
  if (end > limit) throw new DerError('truncated value: content runs past the end of the data');
  return {
    tag,
    cls: tag >> 6,
    constructed: (tag & 0x20) !== 0,
    num: tag & 0x1f,
    start: offset,
    contentStart: p,
    end,
    buf,
  };
}

/** Reads a buffer that must hold exactly one TLV. */
export function readOne(buf: Buffer): Node {
  const n = read(buf, 0);
  if (n.end !== buf.length)
    throw new DerError(`trailing data after the DER object (${buf.length - n.end} bytes)`);
  return n;
}

export function children(node: Node): Node[] {
  if (!node.constructed)
    throw new DerError(`expected a constructed value, got tag 0x${node.tag.toString(16)}`);
  const out: Node[] = [];
  let p = node.contentStart;
  while (p < node.end) {
    const c = read(node.buf, p, node.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

export function content(node: Node): Buffer {
  return node.buf.subarray(node.contentStart, node.end);
}

export function raw(node: Node): Buffer {
  return node.buf.subarray(node.start, node.end);
}

export function expect(node: Node | undefined, tag: number, what: string): Node {
  if (!node) throw new DerError(`missing ${what}`);
  if (node.tag !== tag)
    throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, got 0x${node.tag.toString(16)}`);
  return node;
}

export function readOid(node: Node): string {
  expect(node, Tag.OID, 'OBJECT IDENTIFIER');
  const c = content(node);
  if (c.length === 0) throw new DerError('empty OID');
  // Fast path: every arc fits in a double exactly (all OIDs in practice); same checks, same text.
  let text = '';
  let n = 0;
  let first = true;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (n === 0 && b === 0x80) throw new DerError('non-minimal OID arc');
    if (n >= 2 ** 45) return readOidBig(c);
    n = n * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (first) {
        const a0 = n < 80 ? Math.floor(n / 40) : 2;
        text = a0 + '.' + (n - a0 * 40);
        first = false;
      } else text += '.' + n;
      n = 0;
    } else if (i === c.length - 1) throw new DerError('truncated OID');
  }
  return text;
}

function readOidBig(c: Buffer): string {
  const arcs: bigint[] = [];
  let v = 0n;
  for (let i = 0; i < c.length; i++) {
    const b = c[i]!;
    if (v === 0n && b === 0x80) throw new DerError('non-minimal OID arc');
    v = (v << 7n) | BigInt(b & 0x7f);
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0n;
    } else if (i === c.length - 1) throw new DerError('truncated OID');
  }
  const first = arcs.shift()!;
  const a0 = first < 80n ? first / 40n : 2n;
  const a1 = first - a0 * 40n;
  return [a0, a1, ...arcs].join('.');
}

/** INTEGER content as big-endian bytes (two's complement, as encoded). */
export function readIntegerBytes(node: Node): Buffer {
  expect(node, Tag.INTEGER, 'INTEGER');
  const c = content(node);
  if (c.length === 0) throw new DerError('empty INTEGER');
  return c;
}

export function readSmallInt(node: Node): number {
  const c = readIntegerBytes(node);
  if (c.length > 6) throw new DerError('INTEGER too large');
  let v = 0;
  for (const b of c) v = v * 256 + b;
  if (c[0]! & 0x80) v -= 2 ** (8 * c.length);
  return v;
}

export function readBoolean(node: Node): boolean {
  expect(node, Tag.BOOLEAN, 'BOOLEAN');
  const c = content(node);
  if (c.length !== 1) throw new DerError('BOOLEAN must be one byte');
  if (c[0] !== 0 && c[0] !== 0xff) throw new DerError('BOOLEAN must be 0x00 or 0xFF in DER');
  return c[0] === 0xff;
}

export function readBitString(node: Node): { bytes: Buffer; unusedBits: number } {
  expect(node, Tag.BIT_STRING, 'BIT STRING');
  const c = content(node);
  if (c.length === 0) throw new DerError('empty BIT STRING');
  const unusedBits = c[0]!;
  if (unusedBits > 7 || (c.length === 1 && unusedBits !== 0)) throw new DerError('bad BIT STRING padding');
  return { bytes: c.subarray(1), unusedBits };
}

/** Bit numbers set in a named-bit BIT STRING. */
export function readNamedBits(node: Node): number[] {
  const { bytes, unusedBits } = readBitString(node);
  const out: number[] = [];
  for (let i = 0; i < bytes.length * 8 - unusedBits; i++) if (bytes[i >> 3]! & (0x80 >> (i & 7))) out.push(i);
  return out;
}

export function readTime(node: Node): Date {
  const s = content(node).toString('latin1');
  let m: RegExpExecArray | null;
  if (node.tag === Tag.UTC_TIME) {
    m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s);
    if (!m) throw new DerError(`UTCTime not in DER form: ${s}`);
    const yy = Number(m[1]);
    const year = yy >= 50 ? 1900 + yy : 2000 + yy;
    return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  if (node.tag === Tag.GENERALIZED_TIME) {
    m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d*[1-9]))?Z$/.exec(s);
    if (!m) throw new DerError(`GeneralizedTime not in DER form: ${s}`);
    const ms = m[7] ? Math.round(Number('0.' + m[7]) * 1000) : 0;
    return new Date(
      Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms),
    );
  }
  throw new DerError(`expected a time, got tag 0x${node.tag.toString(16)}`);
}

/** Decodes any of the X.520 string types to a JS string. */
export function readString(node: Node): string {
  const c = content(node);
  switch (node.tag) {
    case Tag.UTF8_STRING:
      return c.toString('utf8');
    case Tag.BMP_STRING: {
      const swapped = Buffer.from(c);
      if (swapped.length % 2) throw new DerError('odd-length BMPString');
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    case Tag.UNIVERSAL_STRING: {
      let s = '';
      for (let i = 0; i + 3 < c.length; i += 4) s += String.fromCodePoint(c.readUInt32BE(i));
      return s;
    }
    case Tag.PRINTABLE_STRING:
    case Tag.IA5_STRING:
    case Tag.T61_STRING:
    case Tag.VISIBLE_STRING:
    case 0x12: // NumericString
      return c.toString('latin1');
    default:
      throw new DerError(`not a string type: tag 0x${node.tag.toString(16)}`);
  }
}

/** The three parts of every signed X.509 object (certificate, CRL, CSR): SEQUENCE { tbs, algorithm, signature }. */
export interface SignedEnvelope {
  tbs: Node;
  algorithm: Node;
  signature: Node;
}

export function readSignedEnvelope(buf: Buffer, outer: string, inner: string): SignedEnvelope {
  const top = readOne(buf);
  expect(top, Tag.SEQUENCE, outer);
  const [tbs, algorithm, signature, extra] = children(top);
  if (!tbs || !algorithm || !signature || extra) throw new DerError(`${outer} must have exactly 3 fields`);
  expect(tbs, Tag.SEQUENCE, inner);
  expect(algorithm, Tag.SEQUENCE, `${outer} signatureAlgorithm`);
  return { tbs, algorithm, signature };
}
