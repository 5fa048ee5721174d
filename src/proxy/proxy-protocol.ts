// PROXY protocol version 2 (HAProxy's doc/proxy-protocol.txt, section 2.2): the binary header a
// `protocol: tcp` listener sends before the plaintext stream, with the TLS facts of the client side.
//
// Layout: 12-byte signature, ver/cmd (0x21 PROXY, 0x20 LOCAL), family/transport (0x11 TCP over IPv4,
// 0x21 TCP over IPv6, 0x00 UNSPEC), uint16 length of what follows, the addresses and ports, then
// TLVs { uint8 type, uint16 length, value }. Everything is network byte order.
//
// TLVs sent: PP2_TYPE_ALPN (0x01, the negotiated protocol), PP2_TYPE_AUTHORITY (0x02, the SNI),
// PP2_TYPE_UNIQUE_ID (0x05, ≤ 128 bytes), PP2_TYPE_SSL (0x20: client bits, verify, and the
// VERSION/CN/CIPHER/SIG_ALG/KEY_ALG sub-TLVs), PP2_TYPE_MTLS_SPIFFE_ID (0xE0, ours, see below) and,
// when asked, PP2_TYPE_CRC32C (0x03) over the whole header, last.
import { isIP } from 'node:net';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import { MtlsError } from '../errors/index.js';
import { bytesToIp, commonName, ipToBytes, parseCertificate, type Certificate } from '../pki/index.js';

export const PP2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
/** Signature + ver/cmd + family + length. */
export const PP2_HEADER_LEN = 16;

export const PP2_TYPE_ALPN = 0x01;
export const PP2_TYPE_AUTHORITY = 0x02;
export const PP2_TYPE_CRC32C = 0x03;
export const PP2_TYPE_NOOP = 0x04;
export const PP2_TYPE_UNIQUE_ID = 0x05;
export const PP2_TYPE_SSL = 0x20;
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
export const PP2_SUBTYPE_SSL_CN = 0x22;
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
export const PP2_SUBTYPE_SSL_SIG_ALG = 0x24;
export const PP2_SUBTYPE_SSL_KEY_ALG = 0x25;
export const PP2_TYPE_NETNS = 0x30;
/**
 * mtlskit's application-specific TLV (the spec reserves 0xE0-0xEF for that, section 2.2.8): the
 * client certificate's SPIFFE ID (its spiffe:// URI SAN), UTF-8, absent when the certificate has none.
 * Receivers that do not know it skip it, as the spec requires of unknown types.
 */
export const PP2_TYPE_MTLS_SPIFFE_ID = 0xe0;

export const PP2_CLIENT_SSL = 0x01;
export const PP2_CLIENT_CERT_CONN = 0x02;
export const PP2_CLIENT_CERT_SESS = 0x04;

/** The spec's limit for PP2_TYPE_UNIQUE_ID. */
export const PP2_UNIQUE_ID_MAX = 128;
/** HAProxy refuses a longer PP2_TYPE_AUTHORITY (and an SNI cannot be longer). */
export const PP2_AUTHORITY_MAX = 255;

/**
 * The codes thrown here. Encoding fails only on values a header cannot carry (a caller's input);
 * decoding on malformed bytes. (A dedicated code such as MTLS_PROXY_BAD_PROXY_HEADER would fit
 * better; it needs an entry in src/errors.)
 */
const ENCODE_CODE = 'MTLS_CONFIG_INVALID' as const;
const DECODE_CODE = 'MTLS_PROXY_BAD_REQUEST' as const;

export interface ProxyAddress {
  /** IPv4 or IPv6 text; IPv4-mapped IPv6 (::ffff:127.0.0.1) is sent as IPv4; a %zone is dropped. */
  address: string;
  port: number;
}

export interface ProxySslInfo {
  /** PP2_CLIENT_CERT_CONN: the client presented a certificate on this connection (full handshake). */
  certConn: boolean;
  /** PP2_CLIENT_CERT_SESS: the client presented one at least once over this TLS session. */
  certSess: boolean;
  /** 0 when the client presented a certificate and it was verified; non-zero otherwise (OpenSSL's X509_V_ERR_* when known). */
  verify: number;
  /** PP2_SUBTYPE_SSL_VERSION, e.g. "TLSv1.3". */
  version?: string;
  /** PP2_SUBTYPE_SSL_CN: the client certificate's subject CN. */
  cn?: string;
  /** PP2_SUBTYPE_SSL_CIPHER, OpenSSL's name, e.g. "TLS_AES_128_GCM_SHA256". */
  cipher?: string;
  /** PP2_SUBTYPE_SSL_SIG_ALG: signature algorithm of the certificate the frontend (this proxy) presented, e.g. "ecdsa-with-SHA256". */
  sigAlg?: string;
  /** PP2_SUBTYPE_SSL_KEY_ALG: key algorithm and size of that certificate, e.g. "EC256", "RSA2048". */
  keyAlg?: string;
}

export interface ProxyTlv {
  type: number;
  value: Buffer;
}

export interface ProxyHeaderInput {
  /** PROXY (default): relayed connection, addresses required. LOCAL: the proxy's own connection (health check); addresses are not sent. */
  command?: 'PROXY' | 'LOCAL';
  /** The client (the accepted socket's remote end). */
  source?: ProxyAddress;
  /** The address the client connected to (the accepted socket's local end). */
  destination?: ProxyAddress;
  /** PP2_TYPE_ALPN: the negotiated protocol, e.g. "h2". */
  alpn?: string | Buffer;
  /** PP2_TYPE_AUTHORITY: the SNI the client sent. */
  authority?: string;
  /** PP2_TYPE_UNIQUE_ID: a connection or request id, at most 128 bytes. */
  uniqueId?: string | Buffer;
  /** PP2_TYPE_SSL; absent: no SSL TLV (the client did not use TLS). */
  ssl?: ProxySslInfo;
  /** PP2_TYPE_MTLS_SPIFFE_ID (0xE0): the client certificate's SPIFFE ID. */
  spiffeId?: string;
  /** More TLVs, sent after the ones above (application range 0xE1-0xEF, say). */
  extraTlvs?: readonly ProxyTlv[];
  /** Append PP2_TYPE_CRC32C over the whole header (default false). */
  crc32c?: boolean;
}

export interface DecodedProxySsl extends ProxySslInfo {
  /** The raw client bit field. */
  client: number;
  /** PP2_CLIENT_SSL was set. */
  clientSsl: boolean;
  /** Every sub-TLV, in order (including the known ones above). */
  subTlvs: ProxyTlv[];
}

export interface DecodedProxyV2 {
  command: 'PROXY' | 'LOCAL';
  family: 'unspec' | 'inet' | 'inet6' | 'unix';
  transport: 'unspec' | 'stream' | 'dgram';
  /** Absent for LOCAL and UNSPEC. For unix, address is the path and port 0. */
  source?: ProxyAddress;
  destination?: ProxyAddress;
  /** Every TLV, in order, raw. */
  tlvs: ProxyTlv[];
  alpn?: string;
  authority?: string;
  uniqueId?: Buffer;
  spiffeId?: string;
  ssl?: DecodedProxySsl;
  /** The checksum sent (it matched: a mismatch throws). */
  crc32c?: number;
  /** Bytes of the header (16 + the length field); the stream's payload starts there. */
  headerLength: number;
}

// ---------------------------------------------------------------- CRC32C

let CRC_TABLE: Uint32Array | undefined;

function crcTable(): Uint32Array {
  if (CRC_TABLE) return CRC_TABLE;
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    // Castagnoli polynomial 0x1EDC6F41, reflected (RFC 4960 appendix B).
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  CRC_TABLE = t;
  return t;
}

/** CRC-32C (Castagnoli), as RFC 4960 appendix B and PP2_TYPE_CRC32C use it; "123456789" gives 0xE3069283. */
export function crc32c(data: Uint8Array): number {
  const t = crcTable();
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------- encode

function encodeFail(message: string): never {
  throw new MtlsError(ENCODE_CODE, `PROXY v2 header: ${message}`, {
    fix: 'Pass values the header can carry (see src/proxy/proxy-protocol.ts); this is a bug of the caller.',
  });
}

/** IPv4 stays IPv4; IPv4-mapped IPv6 becomes IPv4; a zone (fe80::1%eth0) is dropped. */
function normalizeAddress(a: string, what: string): { v: 4 | 6; text: string } {
  let s = a.trim();
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const kind = isIP(s);
  if (kind === 4) return { v: 4, text: s };
  if (kind !== 6) encodeFail(`${what} address "${a}" is not an IPv4 or IPv6 address.`);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  if (mapped && isIP(mapped[1]!) === 4) return { v: 4, text: mapped[1]! };
  const b = ipToBytes(s);
  // ::ffff:7f00:1 is the same mapped address written in hex.
  if (b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff)
    return { v: 4, text: bytesToIp(b.subarray(12)) };
  return { v: 6, text: s };
}

function checkPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 0 || p > 65535) encodeFail(`${what} port ${p} is not 0-65535.`);
}

function tlv(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff)
    encodeFail(`TLV 0x${type.toString(16)} is ${value.length} bytes (at most 65535).`);
  const h = Buffer.alloc(3);
  h[0] = type;
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}

const utf8 = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

function sslTlv(s: ProxySslInfo): Buffer {
  const head = Buffer.alloc(5);
  // PP2_CLIENT_SSL: the client connected over TLS (always true when this TLV is sent).
  head[0] =
    PP2_CLIENT_SSL | (s.certConn ? PP2_CLIENT_CERT_CONN : 0) | (s.certSess ? PP2_CLIENT_CERT_SESS : 0);
  if (!Number.isInteger(s.verify) || s.verify < 0 || s.verify > 0xffffffff)
    encodeFail(`ssl.verify ${s.verify} is not a uint32.`);
  head.writeUInt32BE(s.verify, 1);
  const subs: Buffer[] = [head];
  const add = (type: number, v: string | undefined): void => {
    if (v !== undefined) subs.push(tlv(type, utf8(v)));
  };
  add(PP2_SUBTYPE_SSL_VERSION, s.version);
  add(PP2_SUBTYPE_SSL_CN, s.cn);
  add(PP2_SUBTYPE_SSL_CIPHER, s.cipher);
  add(PP2_SUBTYPE_SSL_SIG_ALG, s.sigAlg);
  add(PP2_SUBTYPE_SSL_KEY_ALG, s.keyAlg);
  return tlv(PP2_TYPE_SSL, Buffer.concat(subs));
}

/** The PROXY v2 header for one connection: send it before any payload byte, in one write. */
export function encodeProxyV2(h: ProxyHeaderInput): Buffer {
  const local = h.command === 'LOCAL';
  let famByte = 0x00;
  let addr = Buffer.alloc(0);
  if (!local) {
    if (!h.source || !h.destination)
      encodeFail('a PROXY command needs the source and destination addresses (the socket may have closed).');
    const src = normalizeAddress(h.source.address, 'source');
    const dst = normalizeAddress(h.destination.address, 'destination');
    checkPort(h.source.port, 'source');
    checkPort(h.destination.port, 'destination');
    if (src.v === 4 && dst.v === 4) {
      famByte = 0x11;
      addr = Buffer.alloc(12);
      ipToBytes(src.text).copy(addr, 0);
      ipToBytes(dst.text).copy(addr, 4);
      addr.writeUInt16BE(h.source.port, 8);
      addr.writeUInt16BE(h.destination.port, 10);
    } else {
      // One side IPv6: both go as IPv6, an IPv4 one mapped (::ffff:a.b.c.d).
      famByte = 0x21;
      addr = Buffer.alloc(36);
      const six = (x: { v: 4 | 6; text: string }): Buffer =>
        x.v === 6 ? ipToBytes(x.text) : ipToBytes(`::ffff:${x.text}`);
      six(src).copy(addr, 0);
      six(dst).copy(addr, 16);
      addr.writeUInt16BE(h.source.port, 32);
      addr.writeUInt16BE(h.destination.port, 34);
    }
  }
  const tlvs: Buffer[] = [];
  if (h.alpn !== undefined && utf8(h.alpn).length > 0) tlvs.push(tlv(PP2_TYPE_ALPN, utf8(h.alpn)));
  if (h.authority !== undefined && h.authority !== '') {
    const a = utf8(h.authority);
    if (a.length > PP2_AUTHORITY_MAX)
      encodeFail(`authority is ${a.length} bytes (at most ${PP2_AUTHORITY_MAX}).`);
    tlvs.push(tlv(PP2_TYPE_AUTHORITY, a));
  }
  if (h.uniqueId !== undefined) {
    const u = utf8(h.uniqueId);
    if (u.length > PP2_UNIQUE_ID_MAX)
      encodeFail(`uniqueId is ${u.length} bytes (the spec allows at most ${PP2_UNIQUE_ID_MAX}).`);
    if (u.length > 0) tlvs.push(tlv(PP2_TYPE_UNIQUE_ID, u));
  }
  if (h.ssl) tlvs.push(sslTlv(h.ssl));
  if (h.spiffeId !== undefined && h.spiffeId !== '')
    tlvs.push(tlv(PP2_TYPE_MTLS_SPIFFE_ID, utf8(h.spiffeId)));
  for (const t of h.extraTlvs ?? []) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 0xff)
      encodeFail(`TLV type ${t.type} is not a byte.`);
    if (t.type === PP2_TYPE_CRC32C) encodeFail('pass crc32c: true instead of a CRC32C TLV.');
    tlvs.push(tlv(t.type, t.value));
  }
  if (h.crc32c) tlvs.push(tlv(PP2_TYPE_CRC32C, Buffer.alloc(4)));
  const body = Buffer.concat([addr, ...tlvs]);
  if (body.length > 0xffff) encodeFail(`the header would be ${body.length + 16} bytes (at most 65551).`);
  const head = Buffer.alloc(PP2_HEADER_LEN);
  PP2_SIGNATURE.copy(head, 0);
  head[12] = local ? 0x20 : 0x21;
  head[13] = famByte;
  head.writeUInt16BE(body.length, 14);
  const out = Buffer.concat([head, body]);
  if (h.crc32c) out.writeUInt32BE(crc32c(out), out.length - 4);
  return out;
}

// ---------------------------------------------------------------- decode

function decodeFail(message: string): never {
  throw new MtlsError(DECODE_CODE, `Not a valid PROXY v2 header: ${message}`, {
    fix: 'The sender must follow HAProxy doc/proxy-protocol.txt section 2.2; decode the first bytes it sends to see them.',
  });
}

function readTlvs(buf: Buffer, what: string): ProxyTlv[] {
  const out: ProxyTlv[] = [];
  let i = 0;
  while (i < buf.length) {
    if (buf.length - i < 3)
      decodeFail(`${what}: ${buf.length - i} byte(s) left where a TLV needs at least 3.`);
    const type = buf[i]!;
    const len = buf.readUInt16BE(i + 1);
    if (i + 3 + len > buf.length)
      decodeFail(
        `${what} 0x${type.toString(16).padStart(2, '0')} says ${len} bytes but only ${buf.length - i - 3} remain.`,
      );
    out.push({ type, value: buf.subarray(i + 3, i + 3 + len) });
    i += 3 + len;
  }
  return out;
}

/** Total header length once the first 16 bytes are there (undefined before, or if not a v2 signature). */
export function proxyV2HeaderLength(buf: Buffer): number | undefined {
  if (buf.length < PP2_HEADER_LEN || !buf.subarray(0, 12).equals(PP2_SIGNATURE)) return undefined;
  return PP2_HEADER_LEN + buf.readUInt16BE(14);
}

/**
 * Reads a PROXY v2 header at the start of `buf` (bytes after it are the payload; see headerLength).
 * Rejects a wrong signature, version or command, an unknown family, a short or incomplete header,
 * TLVs that overrun, an oversized unique ID and a CRC32C that does not match.
 */
export function decodeProxyV2(buf: Buffer): DecodedProxyV2 {
  if (buf.length < PP2_HEADER_LEN)
    decodeFail(`${buf.length} byte(s); the fixed part alone is ${PP2_HEADER_LEN} (incomplete header).`);
  if (!buf.subarray(0, 12).equals(PP2_SIGNATURE)) {
    const v1 = buf.subarray(0, 6).toString('latin1') === 'PROXY ';
    decodeFail(
      v1
        ? 'this is a version 1 (text) header, not version 2.'
        : `the first 12 bytes are ${buf.subarray(0, 12).toString('hex')}, not the signature 0d0a0d0a000d0a515549540a.`,
    );
  }
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) decodeFail(`version ${verCmd >> 4}; only 2 is defined.`);
  const cmd = verCmd & 0x0f;
  if (cmd !== 0 && cmd !== 1)
    decodeFail(`command 0x${cmd.toString(16)}; only LOCAL (0) and PROXY (1) are defined.`);
  const fam = buf[13]!;
  const family = (['unspec', 'inet', 'inet6', 'unix'] as const)[fam >> 4];
  const transport = (['unspec', 'stream', 'dgram'] as const)[fam & 0x0f];
  if (!family || !transport)
    decodeFail(`address family/transport byte 0x${fam.toString(16).padStart(2, '0')} is not defined.`);
  if ((family === 'unspec') !== (transport === 'unspec') && cmd === 1)
    decodeFail(
      `address family/transport byte 0x${fam.toString(16).padStart(2, '0')} mixes UNSPEC with a defined value.`,
    );
  const len = buf.readUInt16BE(14);
  const total = PP2_HEADER_LEN + len;
  if (buf.length < total)
    decodeFail(`the length field says ${total} bytes but only ${buf.length} are here (incomplete header).`);
  const body = buf.subarray(PP2_HEADER_LEN, total);
  const out: DecodedProxyV2 = {
    command: cmd === 1 ? 'PROXY' : 'LOCAL',
    family,
    transport,
    tlvs: [],
    headerLength: total,
  };
  // The spec: LOCAL receivers ignore the family and skip `len` bytes; an UNSPEC family carries no addresses.
  let addrLen = 0;
  if (cmd === 1 && family !== 'unspec') {
    addrLen = family === 'inet' ? 12 : family === 'inet6' ? 36 : 216;
    if (len < addrLen)
      decodeFail(`family ${family} needs ${addrLen} address bytes; the length field says ${len}.`);
    if (family === 'unix') {
      const path = (b: Buffer): string => {
        const z = b.indexOf(0);
        return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
      };
      out.source = { address: path(body.subarray(0, 108)), port: 0 };
      out.destination = { address: path(body.subarray(108, 216)), port: 0 };
    } else {
      const n = family === 'inet' ? 4 : 16;
      out.source = { address: bytesToIp(body.subarray(0, n)), port: body.readUInt16BE(2 * n) };
      out.destination = { address: bytesToIp(body.subarray(n, 2 * n)), port: body.readUInt16BE(2 * n + 2) };
    }
  }
  // LOCAL with a family: the layout of what follows is unknown (addresses or not), so it is skipped,
  // as receivers must. LOCAL/UNSPEC and PROXY/UNSPEC carry no addresses: what follows is TLVs.
  if (cmd === 0 && family !== 'unspec') return out;
  const tlvBytes = body.subarray(addrLen);
  out.tlvs = readTlvs(tlvBytes, 'TLV');
  let tlvOffset = PP2_HEADER_LEN + addrLen;
  for (const t of out.tlvs) {
    const text = (): string => t.value.toString('utf8');
    switch (t.type) {
      case PP2_TYPE_ALPN:
        out.alpn = text();
        break;
      case PP2_TYPE_AUTHORITY:
        out.authority = text();
        break;
      case PP2_TYPE_UNIQUE_ID:
        if (t.value.length > PP2_UNIQUE_ID_MAX)
          decodeFail(`PP2_TYPE_UNIQUE_ID is ${t.value.length} bytes (at most ${PP2_UNIQUE_ID_MAX}).`);
        out.uniqueId = Buffer.from(t.value);
        break;
      case PP2_TYPE_MTLS_SPIFFE_ID:
        out.spiffeId = text();
        break;
      case PP2_TYPE_CRC32C: {
        if (t.value.length !== 4) decodeFail(`PP2_TYPE_CRC32C is ${t.value.length} bytes, not 4.`);
        const sent = t.value.readUInt32BE(0);
        const copy = Buffer.from(buf.subarray(0, total));
        copy.fill(0, tlvOffset + 3, tlvOffset + 7);
        const computed = crc32c(copy);
        if (computed !== sent)
          decodeFail(
            `PP2_TYPE_CRC32C is 0x${sent.toString(16).padStart(8, '0')} but the header's checksum is 0x${computed.toString(16).padStart(8, '0')}.`,
          );
        out.crc32c = sent;
        break;
      }
      case PP2_TYPE_SSL: {
        if (t.value.length < 5)
          decodeFail(`PP2_TYPE_SSL is ${t.value.length} bytes; client and verify need 5.`);
        const client = t.value[0]!;
        const subTlvs = readTlvs(t.value.subarray(5), 'PP2_TYPE_SSL sub-TLV');
        const ssl: DecodedProxySsl = {
          client,
          clientSsl: (client & PP2_CLIENT_SSL) !== 0,
          certConn: (client & PP2_CLIENT_CERT_CONN) !== 0,
          certSess: (client & PP2_CLIENT_CERT_SESS) !== 0,
          verify: t.value.readUInt32BE(1),
          subTlvs,
        };
        for (const s of subTlvs) {
          const v = s.value.toString('utf8');
          if (s.type === PP2_SUBTYPE_SSL_VERSION) ssl.version = v;
          else if (s.type === PP2_SUBTYPE_SSL_CN) ssl.cn = v;
          else if (s.type === PP2_SUBTYPE_SSL_CIPHER) ssl.cipher = v;
          else if (s.type === PP2_SUBTYPE_SSL_SIG_ALG) ssl.sigAlg = v;
          else if (s.type === PP2_SUBTYPE_SSL_KEY_ALG) ssl.keyAlg = v;
        }
        out.ssl = ssl;
        break;
      }
      default:
        break;
    }
    tlvOffset += 3 + t.value.length;
  }
  return out;
}

// ---------------------------------------------------------------- from a TLS socket

/** OpenSSL's X509_V_ERR_* numbers for the codes Node reports in authorizationError. */
const X509_V_ERR: Record<string, number> = {
  UNABLE_TO_GET_ISSUER_CERT: 2,
  UNABLE_TO_GET_CRL: 3,
  CERT_SIGNATURE_FAILURE: 7,
  CRL_SIGNATURE_FAILURE: 8,
  CERT_NOT_YET_VALID: 9,
  CERT_HAS_EXPIRED: 10,
  CRL_NOT_YET_VALID: 11,
  CRL_HAS_EXPIRED: 12,
  DEPTH_ZERO_SELF_SIGNED_CERT: 18,
  SELF_SIGNED_CERT_IN_CHAIN: 19,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 20,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 21,
  CERT_CHAIN_TOO_LONG: 22,
  CERT_REVOKED: 23,
  INVALID_CA: 24,
  PATH_LENGTH_EXCEEDED: 25,
  INVALID_PURPOSE: 26,
  CERT_UNTRUSTED: 27,
  CERT_REJECTED: 28,
  HOSTNAME_MISMATCH: 62,
};

/** OpenSSL short names (what HAProxy sends in PP2_SUBTYPE_SSL_SIG_ALG). */
const SIG_SHORT_NAMES: Record<string, string> = {
  '1.2.840.113549.1.1.5': 'RSA-SHA1',
  '1.2.840.113549.1.1.11': 'RSA-SHA256',
  '1.2.840.113549.1.1.12': 'RSA-SHA384',
  '1.2.840.113549.1.1.13': 'RSA-SHA512',
  '1.2.840.113549.1.1.10': 'RSASSA-PSS',
  '1.2.840.10045.4.1': 'ecdsa-with-SHA1',
  '1.2.840.10045.4.3.2': 'ecdsa-with-SHA256',
  '1.2.840.10045.4.3.3': 'ecdsa-with-SHA384',
  '1.2.840.10045.4.3.4': 'ecdsa-with-SHA512',
  '1.3.101.112': 'ED25519',
  '1.3.101.113': 'ED448',
};

/** `socket.authorizationError` as a number for PP2's verify field (1 when unknown or no certificate). */
export function verifyCode(authorized: boolean, hasCert: boolean, error: unknown): number {
  if (authorized && hasCert) return 0;
  const code =
    typeof error === 'string'
      ? error
      : error instanceof Error
        ? ((error as NodeJS.ErrnoException).code ?? error.message)
        : undefined;
  return (code && X509_V_ERR[code]) || 1;
}

function parsed(raw: Buffer | undefined): Certificate | undefined {
  if (!raw?.length) return undefined;
  try {
    return parseCertificate(raw);
  } catch {
    return undefined;
  }
}

/** What a header carries about one certificate's keys (the spec's SIG_ALG and KEY_ALG). */
export function certificateAlgorithms(raw: Buffer | undefined): { sigAlg?: string; keyAlg?: string } {
  const c = parsed(raw);
  if (!c) return {};
  const alg = c.publicKey.algorithm;
  const keyAlg =
    alg === 'unknown' ? undefined : `${alg === 'RSA-PSS' ? 'RSA' : alg.toUpperCase()}${c.publicKey.bits}`;
  return {
    sigAlg: SIG_SHORT_NAMES[c.signatureAlgorithm] ?? c.signatureAlgorithm,
    ...(keyAlg ? { keyAlg } : {}),
  };
}

export type TlsFacts = Pick<
  ProxyHeaderInput,
  'source' | 'destination' | 'alpn' | 'authority' | 'ssl' | 'spiffeId'
>;

/**
 * The header's facts from an accepted node:tls socket after its handshake: addresses (remote =
 * source, local = destination), ALPN, SNI, TLS version, cipher, the client certificate's CN and
 * SPIFFE ID, and the algorithms of the certificate this side presented (the spec's SIG_ALG/KEY_ALG
 * describe the frontend's certificate, as HAProxy sends them). Add `uniqueId` and encode.
 */
export function tlsFacts(
  socket: TLSSocket,
  known: { leaf?: Certificate | undefined; own?: Certificate | undefined } = {},
): TlsFacts {
  const out: TlsFacts = {};
  if (socket.remoteAddress !== undefined && socket.remotePort !== undefined)
    out.source = { address: socket.remoteAddress, port: socket.remotePort };
  if (socket.localAddress !== undefined && socket.localPort !== undefined)
    out.destination = { address: socket.localAddress, port: socket.localPort };
  if (typeof socket.alpnProtocol === 'string' && socket.alpnProtocol) out.alpn = socket.alpnProtocol;
  const sni = (socket as TLSSocket & { servername?: string | false }).servername;
  if (typeof sni === 'string' && sni) out.authority = sni;
  // A listener passes what its verdict already read: no second certificate read or parse per connection.
  let leaf = known.leaf;
  if (!leaf) {
    const peer = socket.getPeerCertificate(false) as PeerCertificate | DetailedPeerCertificate | null;
    leaf = parsed(peer && 'raw' in peer && peer.raw?.length ? peer.raw : undefined);
  }
  const cn = leaf ? commonName(leaf.subject) : undefined;
  const spiffeId = leaf?.subjectAltNames
    .flatMap((n) => (n.type === 'uri' && n.value.startsWith('spiffe://') ? [n.value] : []))
    .at(0);
  if (spiffeId) out.spiffeId = spiffeId;
  let ownRaw = known.own?.der;
  if (!ownRaw) {
    const own = socket.getCertificate() as PeerCertificate | null | Record<string, never>;
    ownRaw = own && 'raw' in own ? own.raw : undefined;
  }
  const cipher = socket.getCipher() as { name?: string } | undefined;
  const version = socket.getProtocol();
  const hasCert = leaf !== undefined;
  const resumed = socket.isSessionReused();
  out.ssl = {
    // HAProxy's reading: SESS when the session holds a client certificate, CONN when it was sent
    // in this connection's handshake (a resumed session did not send it again).
    certSess: hasCert,
    certConn: hasCert && !resumed,
    verify: verifyCode(socket.authorized, hasCert, socket.authorizationError),
    ...(version ? { version } : {}),
    ...(cn !== undefined ? { cn } : {}),
    ...(cipher?.name ? { cipher: cipher.name } : {}),
    ...certificateAlgorithms(ownRaw),
  };
  return out;
}
