// Distinguished names and subject alternative names: parsing user input, validation,
// DER encoding for issuance, and decoding from certificates.
import { isIP } from 'node:net';
import { MtlsError } from '../errors/index.js';
import * as der from './der.js';
import { OID, attributeOid, attributeShortName } from './oids.js';

export interface NameAttribute {
  oid: string;
  value: string;
  /** DER string tag as found in a parsed certificate (kept so names compare byte-faithfully). */
  tag?: number;
}

/** A distinguished name: RDNs in encoding order (most significant first), each a set of attributes. */
export type DistinguishedName = NameAttribute[][];

// ------------------------------------------------------------------ DN text

function escapeValue(v: string): string {
  let out = v.replace(/[\\,+"<>;=]/g, (c) => '\\' + c);
  if (out.startsWith('#') || out.startsWith(' ')) out = '\\' + out;
  // A trailing space is escaped unless it already is (an odd run of backslashes before it).
  if (out.endsWith(' ') && !/(?:^|[^\\])(?:\\\\)*\\ $/.test(out)) out = out.slice(0, -1) + '\\ ';
  return out;
}

/** RFC 4514-style text, most significant RDN first ("C=US, O=Example, CN=api") as openssl prints it. */
export function formatName(dn: DistinguishedName): string {
  return dn
    .map((rdn) => rdn.map((a) => `${attributeShortName(a.oid)}=${escapeValue(a.value)}`).join(' + '))
    .join(', ');
}

/**
 * Parses "CN=api,O=Example" or the openssl form "/CN=api/O=Example". Order is kept as written;
 * the openssl slash form is already most-significant-first.
 */
export function parseName(text: string): DistinguishedName {
  const input = trimUnescaped(text);
  if (input === '') return [];
  const bad = (why: string): MtlsError =>
    new MtlsError('MTLS_PKI_BAD_NAME', `Cannot parse the distinguished name "${text}": ${why}.`, {
      fix: 'Write it as CN=name,O=Organisation (or /CN=name/O=Organisation), escaping commas in values with a backslash.',
    });
  const parts: string[] = [];
  const sep = input.startsWith('/') ? '/' : ',';
  let cur = '';
  const src = sep === '/' ? input.slice(1) : input;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\' && i + 1 < src.length) {
      cur += c + src[++i]!;
    } else if (c === sep || (sep === ',' && c === ';')) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  parts.push(cur);
  const dn: DistinguishedName = [];
  for (const part of parts) {
    if (part.trim() === '') throw bad('an empty component');
    const rdn: NameAttribute[] = [];
    for (const ava of splitUnescaped(part, '+')) {
      const eq = ava.indexOf('=');
      if (eq <= 0) throw bad(`"${ava.trim()}" is not TYPE=value`);
      const type = ava.slice(0, eq).trim();
      const oid = attributeOid(type);
      if (!oid) throw bad(`unknown attribute type "${type}"`);
      const value = unescapeValue(trimUnescaped(ava.slice(eq + 1)));
      if (value === '') throw bad(`empty value for ${type}`);
      if (oid === OID.countryName && !/^[A-Z]{2}$/.test(value))
        throw bad('C must be a two-letter country code');
      rdn.push({ oid, value });
    }
    dn.push(rdn);
  }
  return dn;
}

function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && i + 1 < s.length) cur += s[i]! + s[++i]!;
    else if (s[i] === sep) {
      out.push(cur);
      cur = '';
    } else cur += s[i]!;
  }
  out.push(cur);
  return out;
}

/** Trims surrounding whitespace but keeps an escaped trailing space ("a\\ " stays "a\\ "). */
function trimUnescaped(s: string): string {
  const t = s.trim();
  const trailing = /(\\+)$/.exec(t);
  return trailing && trailing[1]!.length % 2 === 1 && s.length > s.trimEnd().length ? t + ' ' : t;
}

/** RFC 4514 unescaping: "\\," → ","; runs of "\\XX" hex pairs are UTF-8 octets ("\\C3\\A9" → "é"). */
function unescapeValue(s: string): string {
  return s.replace(/((?:\\[0-9a-fA-F]{2})+)|\\(.)/g, (_, hex: string | undefined, ch: string | undefined) =>
    hex ? Buffer.from(hex.replace(/\\/g, ''), 'hex').toString('utf8') : ch!,
  );
}

export function commonName(dn: DistinguishedName): string | undefined {
  for (const rdn of dn) for (const a of rdn) if (a.oid === OID.commonName) return a.value;
  return undefined;
}

// ------------------------------------------------------------------ DN DER

const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

function encodeAttributeValue(a: NameAttribute): Buffer {
  if (a.tag !== undefined) {
    const enc = a.tag === der.Tag.UTF8_STRING ? Buffer.from(a.value, 'utf8') : Buffer.from(a.value, 'latin1');
    return der.tlv(a.tag, enc);
  }
  if (a.oid === OID.countryName || a.oid === OID.serialNumber) return der.printable(a.value);
  if (a.oid === OID.emailAddress || a.oid === OID.domainComponent) return der.ia5(a.value);
  return der.utf8(a.value);
}

export function encodeName(dn: DistinguishedName): Buffer {
  // DER (X.690 11.6): the members of a SET OF are sorted by their encodings (multi-valued RDNs).
  return der.seq(
    ...dn.map((rdn) =>
      der.set(
        ...rdn
          .map((a) => der.seq(der.oid(a.oid), encodeAttributeValue(a)))
          .sort((x, y) => Buffer.compare(x, y)),
      ),
    ),
  );
}

export function decodeName(node: der.Node): DistinguishedName {
  der.expect(node, der.Tag.SEQUENCE, 'Name');
  return der.children(node).map((rdnNode) => {
    der.expect(rdnNode, der.Tag.SET, 'RelativeDistinguishedName');
    const atvs = der.children(rdnNode);
    if (atvs.length === 0) throw new der.DerError('empty RDN');
    return atvs.map((atv) => {
      const [t, v] = der.children(der.expect(atv, der.Tag.SEQUENCE, 'AttributeTypeAndValue'));
      const oid = der.readOid(t!);
      if (!v) throw new der.DerError('attribute without value');
      let value: string;
      try {
        value = der.readString(v);
      } catch {
        value = '#' + der.raw(v).toString('hex');
      }
      return { oid, value, tag: v.tag };
    });
  });
}

// PrintableString check kept for lint rules that flag bad country encodings.
export function isPrintableString(s: string): boolean {
  return PRINTABLE.test(s);
}

// ------------------------------------------------------------------ SANs

export type SanType = 'dns' | 'ip' | 'uri' | 'email';

export type GeneralName =
  | { type: 'dns'; value: string }
  | { type: 'ip'; value: string; /** for name constraints: the mask, in the same notation */ mask?: string }
  | { type: 'uri'; value: string }
  | { type: 'email'; value: string }
  | { type: 'dn'; value: DistinguishedName }
  | { type: 'other'; tag: number; raw: Buffer };

export type San = Extract<GeneralName, { type: SanType }>;

const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;

export function isValidDnsName(name: string, allowWildcard: boolean): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (labels.length < 1) return false;
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (i === 0 && l === '*' && allowWildcard && labels.length >= 3) continue;
    if (i === 0 && l === '*' && allowWildcard && labels.length === 2) return false;
    if (!DNS_LABEL.test(l) && !(l.includes('_') && /^[A-Za-z0-9_-]{1,63}$/.test(l))) return false;
  }
  return true;
}

/**
 * SPIFFE ID syntax (SPIFFE-ID spec section 2): spiffe://<trust domain>[/path], trust domain of
 * lowercase letters, digits, '.', '-', '_'; path segments of letters, digits, '.', '-', '_', none empty,
 * '.' or '..'; no query, fragment, port or user info; at most 2048 bytes.
 */
export function spiffeIdProblem(id: string): string | undefined {
  if (!id.startsWith('spiffe://')) return 'it must start with spiffe://';
  if (Buffer.byteLength(id) > 2048) return 'it is longer than 2048 bytes';
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (td === '') return 'the trust domain is empty';
  if (!/^[a-z0-9._-]+$/.test(td)) {
    if (/[A-Z]/.test(td)) return 'the trust domain must be lowercase';
    if (td.includes(':')) return 'a port is not allowed in the trust domain';
    if (td.includes('@')) return 'user info is not allowed';
    return 'the trust domain may hold only lowercase letters, digits, ".", "-" and "_"';
  }
  if (path === '') return undefined;
  if (path === '/') return 'the path must not end with "/"';
  for (const seg of path.slice(1).split('/')) {
    if (seg === '') return 'the path has an empty segment (// or a trailing /)';
    if (seg === '.' || seg === '..') return 'the path must not hold "." or ".." segments';
    if (!/^[A-Za-z0-9._-]+$/.test(seg)) {
      if (/[?#]/.test(seg)) return 'query and fragment are not allowed';
      return `the path segment "${seg}" may hold only letters, digits, ".", "-" and "_"`;
    }
  }
  return undefined;
}

export function spiffeTrustDomain(id: string): string {
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  return slash < 0 ? rest : rest.slice(0, slash);
}

export function isValidTrustDomain(td: string): boolean {
  return /^[a-z0-9._-]+$/.test(td) && td.length <= 255;
}

/** Validates one SAN; throws MTLS_PKI_BAD_SAN (or MTLS_PKI_BAD_SPIFFE_ID) with a fix. */
export function validateSan(san: San, opts: { allowWildcard?: boolean } = {}): San {
  const fail = (why: string, fix: string): never => {
    throw new MtlsError('MTLS_PKI_BAD_SAN', `Invalid SAN ${san.type}:${san.value}: ${why}.`, { fix });
  };
  switch (san.type) {
    case 'dns': {
      const v = san.value.toLowerCase().replace(/\.$/, '');
      if (v.startsWith('*.') && !opts.allowWildcard)
        fail(
          'a wildcard is not allowed here (client identities must name one workload)',
          'Give the exact DNS name of the workload, e.g. dns:api.example.org.',
        );
      if (!isValidDnsName(v, opts.allowWildcard ?? false))
        fail(
          'not a valid DNS name',
          'Use letters, digits and hyphens in dot-separated labels, e.g. dns:api.internal.example.org; a wildcard only as the whole left-most label.',
        );
      if (isIP(v))
        fail(
          'an IP address given as a DNS name',
          `Write it as ip:${v}; clients match IP addresses only against IP SANs.`,
        );
      return { type: 'dns', value: v };
    }
    case 'ip': {
      const v = san.value.replace(/^\[|\]$/g, '');
      if (!isIP(v)) fail('not an IPv4 or IPv6 address', 'Write ip:127.0.0.1 or ip:::1.');
      return { type: 'ip', value: v };
    }
    case 'uri': {
      if (san.value.startsWith('spiffe:')) {
        const problem = spiffeIdProblem(san.value);
        if (problem)
          throw new MtlsError('MTLS_PKI_BAD_SPIFFE_ID', `Invalid SPIFFE ID ${san.value}: ${problem}.`, {
            fix: 'Write it as spiffe://trust-domain/path/segments, e.g. spiffe://example.org/ns/prod/sa/payments.',
          });
        return san;
      }
      let url: URL | undefined;
      try {
        url = new URL(san.value);
      } catch {
        url = undefined;
      }
      if (!url || !/^[a-z][a-z0-9+.-]*:/i.test(san.value))
        fail(
          'not an absolute URI',
          'Write a full URI with a scheme, e.g. uri:spiffe://example.org/svc or uri:https://id.example.org/svc.',
        );
      return san;
    }
    case 'email': {
      if (!/^[^@\s]+@[^@\s]+$/.test(san.value)) fail('not an email address', 'Write email:user@example.org.');
      const domain = san.value.slice(san.value.indexOf('@') + 1);
      if (!isValidDnsName(domain.toLowerCase(), false))
        fail('the domain part is not a valid DNS name', 'Write email:user@example.org.');
      return san;
    }
  }
}

/** Parses "dns:a.example,ip:127.0.0.1,uri:spiffe://td/x,email:a@b" (also accepts DNS:, IP:, URI:). */
export function parseSanList(
  text: string | undefined | readonly string[],
  opts: { allowWildcard?: boolean } = {},
): San[] {
  if (text === undefined) return [];
  const items = (typeof text === 'string' ? [text] : text)
    .flatMap((t) => t.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  return items.map((item) => {
    const i = item.indexOf(':');
    const type = i > 0 ? item.slice(0, i).toLowerCase() : '';
    const value = item.slice(i + 1).trim();
    if (!['dns', 'ip', 'uri', 'email'].includes(type) || value === '') {
      throw new MtlsError(
        'MTLS_PKI_BAD_SAN',
        `Cannot read the SAN "${item}": expected type:value with type dns, ip, uri or email.`,
        {
          fix: 'Write e.g. --san dns:api.example.org,ip:127.0.0.1,uri:spiffe://example.org/api',
        },
      );
    }
    return validateSan({ type, value } as San, opts);
  });
}

export function formatGeneralName(n: GeneralName): string {
  switch (n.type) {
    case 'dns':
      return `DNS:${n.value}`;
    case 'ip':
      return `IP:${n.value}${n.mask ? '/' + n.mask : ''}`;
    case 'uri':
      return `URI:${n.value}`;
    case 'email':
      return `email:${n.value}`;
    case 'dn':
      return `DirName:${formatName(n.value)}`;
    case 'other':
      return `othername:[${n.tag & 0x1f}]`;
  }
}

export function ipToBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  // IPv6, possibly with an embedded IPv4 tail
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    s = s.slice(0, -v4[1]!.length) + '0:0';
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':').map((x) => parseInt(x, 16)) : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':').map((x) => parseInt(x, 16)) : [];
  const words = rest === undefined ? h : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  if (tail.length) words.splice(6, 2, ...tail);
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w & 0xffff, i * 2));
  return out;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length === 16) {
    const words: string[] = [];
    for (let i = 0; i < 16; i += 2) words.push(b.readUInt16BE(i).toString(16));
    // compress the longest run of zeros
    let best = -1;
    let bestLen = 0;
    for (let i = 0; i < 8;) {
      if (words[i] !== '0') {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && words[j] === '0') j++;
      if (j - i > bestLen && j - i > 1) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    if (best < 0) return words.join(':');
    return words.slice(0, best).join(':') + '::' + words.slice(best + bestLen).join(':');
  }
  return b.toString('hex');
}

export function encodeGeneralName(n: San): Buffer {
  switch (n.type) {
    case 'email':
      return der.tlv(0x81, Buffer.from(n.value, 'latin1'));
    case 'dns':
      return der.tlv(0x82, Buffer.from(n.value, 'latin1'));
    case 'uri':
      return der.tlv(0x86, Buffer.from(n.value, 'latin1'));
    case 'ip':
      return der.tlv(0x87, ipToBytes(n.value));
  }
}

export function encodeGeneralNames(names: readonly San[]): Buffer {
  return der.seq(...names.map(encodeGeneralName));
}

/** Decodes one GeneralName; `constraint` reads iPAddress as address+mask (name constraints). */
export function decodeGeneralName(node: der.Node, constraint = false): GeneralName {
  if (node.cls !== 2) throw new der.DerError('GeneralName must be context-tagged');
  const c = der.content(node);
  switch (node.num) {
    case 1:
      return { type: 'email', value: c.toString('latin1') };
    case 2:
      return { type: 'dns', value: c.toString('latin1') };
    case 6:
      return { type: 'uri', value: c.toString('latin1') };
    case 7:
      if (constraint) {
        if (c.length !== 8 && c.length !== 32) throw new der.DerError('bad iPAddress constraint length');
        const half = c.length / 2;
        return { type: 'ip', value: bytesToIp(c.subarray(0, half)), mask: bytesToIp(c.subarray(half)) };
      }
      if (c.length !== 4 && c.length !== 16) throw new der.DerError('bad iPAddress length');
      return { type: 'ip', value: bytesToIp(c) };
    case 4: {
      const inner = der.read(node.buf, node.contentStart, node.end);
      return { type: 'dn', value: decodeName(inner) };
    }
    default:
      return { type: 'other', tag: node.tag, raw: Buffer.from(der.raw(node)) };
  }
}

export function decodeGeneralNames(node: der.Node, constraint = false): GeneralName[] {
  der.expect(node, der.Tag.SEQUENCE, 'GeneralNames');
  return der.children(node).map((n) => decodeGeneralName(n, constraint));
}
