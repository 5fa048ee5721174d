// PEM reading that accepts what users really have (BOM, CRLF, text around blocks, DER given instead)
// and PEM writing with 64-column lines.
import { MtlsError } from '../errors/index.js';

export interface PemBlock {
  /** The label between BEGIN and END, e.g. CERTIFICATE, PRIVATE KEY. */
  label: string;
  der: Buffer;
  /** Headers such as Proc-Type (legacy encrypted PEM). */
  headers: Record<string, string>;
}

const BEGIN = /-----BEGIN ([A-Z0-9 ]+)-----/g;

export function isProbablyPem(data: Buffer | string): boolean {
  const text = typeof data === 'string' ? data : data.subarray(0, 64 * 1024).toString('latin1');
  return text.includes('-----BEGIN ');
}

/**
 * All PEM blocks in `text`, in order. Throws MTLS_PKI_BAD_PEM for a BEGIN without END, a label
 * mismatch, or invalid base64; text outside the blocks is ignored.
 */
export function decodePem(input: Buffer | string, source = 'input'): PemBlock[] {
  let text = typeof input === 'string' ? input : input.toString('latin1');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (text.startsWith('\u00ef\u00bb\u00bf')) text = text.slice(3);
  const blocks: PemBlock[] = [];
  BEGIN.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = BEGIN.exec(text))) {
    const label = m[1]!;
    const endMarker = `-----END ${label}-----`;
    const bodyStart = m.index + m[0].length;
    const endIdx = text.indexOf(endMarker, bodyStart);
    const nextBegin = text.indexOf('-----BEGIN ', bodyStart);
    if (endIdx < 0 || (nextBegin >= 0 && nextBegin < endIdx)) {
      throw new MtlsError(
        'MTLS_PKI_BAD_PEM',
        `${source}: the PEM block "${label}" has no matching END line (the file is truncated or two files were pasted together).`,
        {
          fix: `Copy the whole block, from "-----BEGIN ${label}-----" to "${endMarker}".`,
        },
      );
    }
    const body = text.slice(bodyStart, endIdx).replace(/\r/g, '');
    const headers: Record<string, string> = {};
    let b64 = body;
    if (/^\s*[A-Za-z-]+:/.test(body)) {
      const [head, ...rest] = body.split(/\n\s*\n/);
      for (const line of head!.split('\n')) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      b64 = rest.join('\n');
    }
    const compact = b64.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
      throw new MtlsError(
        'MTLS_PKI_BAD_PEM',
        `${source}: the PEM block "${label}" does not hold valid base64 (it was edited or cut).`,
        {
          fix: 'Export the object again from its source; do not edit PEM text by hand.',
        },
      );
    }
    const der = Buffer.from(compact, 'base64');
    if (der.length === 0) {
      throw new MtlsError('MTLS_PKI_BAD_PEM', `${source}: the PEM block "${label}" is empty.`, {
        fix: 'Export the object again from its source.',
      });
    }
    blocks.push({ label, der, headers });
    BEGIN.lastIndex = endIdx + endMarker.length;
  }
  return blocks;
}

export function encodePem(label: string, der: Buffer): string {
  const b64 = der.toString('base64');
  let out = `-----BEGIN ${label}-----\n`;
  for (let i = 0; i < b64.length; i += 64) out += b64.slice(i, i + 64) + '\n';
  return out + `-----END ${label}-----\n`;
}
