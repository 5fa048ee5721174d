import { describe, expect, it } from 'vitest';
import { isMtlsError, type MtlsError } from '../errors/index.js';
import { decodePem, encodePem, isProbablyPem } from './pem.js';

const DER = Buffer.from(Array.from({ length: 200 }, (_, i) => (i * 37) & 0xff));
const PEM = encodePem('CERTIFICATE', DER);

function pemError(fn: () => unknown): MtlsError {
  try {
    fn();
  } catch (e) {
    if (isMtlsError(e)) return e;
    throw e;
  }
  throw new Error('expected an MtlsError');
}

describe('encodePem', () => {
  it('writes 64-column base64 lines between BEGIN and END', () => {
    const lines = PEM.trimEnd().split('\n');
    expect(lines[0]).toBe('-----BEGIN CERTIFICATE-----');
    expect(lines.at(-1)).toBe('-----END CERTIFICATE-----');
    const body = lines.slice(1, -1);
    expect(body.slice(0, -1).every((l) => l.length === 64)).toBe(true);
    expect(body.at(-1)!.length).toBeLessThanOrEqual(64);
    expect(body.join('')).toBe(DER.toString('base64'));
    expect(PEM.endsWith('-----\n')).toBe(true);
  });

  it('handles an exact multiple of 48 bytes without an empty line', () => {
    const pem = encodePem('X', Buffer.alloc(96, 1));
    expect(pem.split('\n')).toEqual([
      '-----BEGIN X-----',
      expect.any(String),
      expect.any(String),
      '-----END X-----',
      '',
    ]);
  });
});

describe('decodePem', () => {
  it('round-trips a block and reports the label', () => {
    expect(decodePem(PEM)).toEqual([{ label: 'CERTIFICATE', der: DER, headers: {} }]);
    expect(decodePem(Buffer.from(PEM))[0]!.der.equals(DER)).toBe(true);
  });

  it('accepts a BOM (as a string or as UTF-8 bytes)', () => {
    expect(decodePem('\ufeff' + PEM)[0]!.der.equals(DER)).toBe(true);
    expect(
      decodePem(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(PEM)]))[0]!.der.equals(DER),
    ).toBe(true);
  });

  it('accepts CRLF line endings and stray whitespace', () => {
    const crlf = PEM.replace(/\n/g, '\r\n');
    expect(decodePem(crlf)[0]!.der.equals(DER)).toBe(true);
    const ragged = PEM.replace(/\n/g, '  \n\t');
    expect(decodePem(ragged)[0]!.der.equals(DER)).toBe(true);
  });

  it('ignores text around blocks and reads every block in order', () => {
    const key = encodePem('PRIVATE KEY', Buffer.from('key bytes'));
    const text = `subject=CN = api\nissuer=CN = ca\n${PEM}\nBag Attributes\n  friendlyName: x\n${key}trailing text`;
    const blocks = decodePem(text);
    expect(blocks.map((b) => b.label)).toEqual(['CERTIFICATE', 'PRIVATE KEY']);
    expect(blocks[1]!.der.toString()).toBe('key bytes');
    expect(decodePem('no pem here')).toEqual([]);
  });

  it('reads legacy encrypted PEM headers', () => {
    const body = Buffer.from('secret').toString('base64');
    const text = `-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\n${body}\n-----END RSA PRIVATE KEY-----\n`;
    const [block] = decodePem(text);
    expect(block!.headers).toEqual({
      'Proc-Type': '4,ENCRYPTED',
      'DEK-Info': 'AES-256-CBC,00112233445566778899AABBCCDDEEFF',
    });
    expect(block!.der.toString()).toBe('secret');
    expect(decodePem(text.replace(/\n/g, '\r\n'))[0]!.headers['Proc-Type']).toBe('4,ENCRYPTED');
  });

  it('refuses a truncated block (no END) with MTLS_PKI_BAD_PEM naming the source', () => {
    const truncated = PEM.slice(0, PEM.indexOf('-----END'));
    const e = pemError(() => decodePem(truncated, 'server.crt'));
    expect(e.code).toBe('MTLS_PKI_BAD_PEM');
    expect(e.message).toContain('server.crt');
    expect(e.message).toContain('no matching END');
    expect(e.fix).toContain('-----END CERTIFICATE-----');
    // cut in the middle of the body
    expect(pemError(() => decodePem(PEM.slice(0, 100))).code).toBe('MTLS_PKI_BAD_PEM');
  });

  it('refuses a BEGIN whose END belongs to a later block (two files pasted together)', () => {
    const broken = PEM.slice(0, PEM.indexOf('-----END')) + PEM;
    expect(pemError(() => decodePem(broken)).message).toContain('no matching END');
  });

  it('refuses mismatched labels', () => {
    const mismatched = PEM.replace('-----END CERTIFICATE-----', '-----END PRIVATE KEY-----');
    expect(pemError(() => decodePem(mismatched)).code).toBe('MTLS_PKI_BAD_PEM');
  });

  it('refuses bad base64 and empty blocks', () => {
    const lines = PEM.split('\n');
    lines[2] = lines[2]!.slice(0, 10) + '!' + lines[2]!.slice(11);
    const e = pemError(() => decodePem(lines.join('\n'), 'ca.pem'));
    expect(e.code).toBe('MTLS_PKI_BAD_PEM');
    expect(e.message).toContain('ca.pem');
    expect(e.message).toContain('base64');
    // a line cut short: the length is no longer a multiple of 4
    const short = PEM.replace(/\n(.{64})\n/, (_, l: string) => `\n${l.slice(0, 63)}\n`);
    expect(pemError(() => decodePem(short)).message).toContain('base64');
    // padding in the middle
    expect(pemError(() => decodePem('-----BEGIN X-----\nQQ==QUFB\n-----END X-----\n')).code).toBe(
      'MTLS_PKI_BAD_PEM',
    );
    expect(pemError(() => decodePem('-----BEGIN X-----\n\n-----END X-----\n')).message).toContain('empty');
  });
});

describe('isProbablyPem', () => {
  it('detects a BEGIN line in strings and buffers, not in DER', () => {
    expect(isProbablyPem(PEM)).toBe(true);
    expect(isProbablyPem(Buffer.from(`junk\n${PEM}`))).toBe(true);
    expect(isProbablyPem(DER)).toBe(false);
    expect(isProbablyPem('')).toBe(false);
  });
});
