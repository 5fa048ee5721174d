// Reads any file users have (PEM or DER, bundles, keys, CSRs, CRLs) into typed objects, and names
// what it found when it is not what was expected.
import { createPublicKey } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import { parseCertificate, type Certificate } from './certificate.js';
import { parseCsr, type CertificationRequest } from './csr.js';
import * as der from './der.js';
import { readPrivateKey, sniffDerKey, describeKey, type ReadKeyResult } from './keys.js';
import { decodePem, isProbablyPem, type PemBlock } from './pem.js';

export type PkiObject =
  | { kind: 'certificate'; cert: Certificate }
  | { kind: 'csr'; csr: CertificationRequest }
  | {
      kind: 'private-key';
      format: ReadKeyResult['format'];
      encrypted: boolean;
      description?: string;
      key?: ReadKeyResult['key'];
    }
  | { kind: 'public-key'; description: string; spki: Buffer }
  | { kind: 'crl'; der: Buffer }
  | { kind: 'unknown'; label: string; der: Buffer };

const KEY_LABELS = new Set(['PRIVATE KEY', 'ENCRYPTED PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']);

function fromBlock(
  block: PemBlock,
  pemText: string,
  source: string,
  passphrase: string | undefined,
): PkiObject {
  switch (block.label) {
    case 'CERTIFICATE':
    case 'TRUSTED CERTIFICATE':
    case 'X509 CERTIFICATE':
      return { kind: 'certificate', cert: parseCertificate(block.der) };
    case 'CERTIFICATE REQUEST':
    case 'NEW CERTIFICATE REQUEST':
      return { kind: 'csr', csr: parseCsr(block.der, source) };
    case 'X509 CRL':
      return { kind: 'crl', der: block.der };
    case 'PUBLIC KEY':
      return publicKeyObject(block.der, source);
    default:
      if (KEY_LABELS.has(block.label)) return keyObject(pemText, source, passphrase, block.label);
      return { kind: 'unknown', label: block.label, der: block.der };
  }
}

function keyObject(
  data: Buffer | string,
  source: string,
  passphrase: string | undefined,
  label?: string,
): PkiObject {
  try {
    const r = readPrivateKey(data, passphrase, source);
    return {
      kind: 'private-key',
      format: r.format,
      encrypted: r.encrypted,
      description: describeKey(r.key).description,
      key: r.key,
    };
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_PKI_KEY_ENCRYPTED') {
      return {
        kind: 'private-key',
        format: label === 'ENCRYPTED PRIVATE KEY' || !label ? 'encrypted-pkcs8' : 'legacy-encrypted-pem',
        encrypted: true,
      };
    }
    throw e;
  }
}

function publicKeyObject(spki: Buffer, source: string): PkiObject {
  try {
    const k = createPublicKey({ key: spki, format: 'der', type: 'spki' });
    return { kind: 'public-key', description: describeKey(k).description, spki };
  } catch (e) {
    throw new MtlsError('MTLS_PKI_BAD_KEY', `${source}: the public key cannot be read.`, {
      cause: e,
      fix: 'Export the public key again (openssl pkey -pubout).',
    });
  }
}

/** Guesses what a DER blob is, by structure, without throwing. */
export function sniffDer(
  buf: Buffer,
): 'certificate' | 'csr' | 'crl' | 'private-key' | 'public-key' | undefined {
  try {
    const top = der.readOne(buf);
    const kids = der.children(top);
    if (kids.length === 3 && kids[0]!.tag === der.Tag.SEQUENCE && kids[2]!.tag === der.Tag.BIT_STRING) {
      const inner = der.children(kids[0]!);
      if (inner[0]?.tag === 0xa0 || (inner[0]?.tag === der.Tag.INTEGER && inner[1]?.tag === der.Tag.INTEGER))
        return 'certificate';
      if (
        inner[0]?.tag === der.Tag.INTEGER &&
        inner.length >= 3 &&
        inner[2]?.tag === der.Tag.SEQUENCE &&
        inner[1]?.tag === der.Tag.SEQUENCE
      ) {
        // CertificationRequestInfo: version, subject, spki, [0] attributes
        if (inner[3]?.tag === 0xa0 || inner.length === 3) return 'csr';
      }
      if (inner.some((n) => n.tag === der.Tag.UTC_TIME || n.tag === der.Tag.GENERALIZED_TIME)) {
        // TBSCertList: [version], signature, issuer, thisUpdate, …
        const times = inner.findIndex(
          (n) => n.tag === der.Tag.UTC_TIME || n.tag === der.Tag.GENERALIZED_TIME,
        );
        if (times >= 2 && inner[times - 1]!.tag === der.Tag.SEQUENCE) return 'crl';
      }
      return 'certificate';
    }
    if (kids.length === 2 && kids[0]!.tag === der.Tag.SEQUENCE && kids[1]!.tag === der.Tag.BIT_STRING)
      return 'public-key';
    if (sniffDerKey(buf)) return 'private-key';
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Every object in a file: PEM blocks in order, or one DER object. Throws MTLS_PKI_BAD_PEM /
 * MTLS_PKI_BAD_DER with what was found when nothing readable is there.
 */
export function readObjects(data: Buffer, source = 'input', passphrase?: string): PkiObject[] {
  if (isProbablyPem(data)) {
    const text = data.toString('latin1');
    return decodePem(data, source).map((b) => fromBlock(b, text, source, passphrase));
  }
  const kind = sniffDer(data);
  switch (kind) {
    case 'certificate':
      return [{ kind: 'certificate', cert: parseCertificate(data) }];
    case 'csr':
      return [{ kind: 'csr', csr: parseCsr(data, source) }];
    case 'crl':
      return [{ kind: 'crl', der: Buffer.from(data) }];
    case 'public-key':
      return [publicKeyObject(data, source)];
    case 'private-key':
      return [keyObject(data, source, passphrase)];
    default: {
      const text = data.subarray(0, 200).toString('latin1');
      const printable =
        data.length > 0 &&
        [...text].every((ch) => ch === '\t' || ch === '\n' || ch === '\r' || (ch >= ' ' && ch <= '~'));
      throw new MtlsError(
        'MTLS_PKI_BAD_DER',
        data.length === 0
          ? `${source} is empty.`
          : printable
            ? `${source} is text but holds no PEM block (no "-----BEGIN …-----" line).`
            : `${source} is neither PEM nor a DER certificate, CSR, CRL or key (it may be truncated, or a PKCS#12/other format).`,
        {
          fix: printable
            ? 'Pass a PEM file (certificate, chain, key, CSR or CRL); if the BEGIN/END lines were lost, export the object again.'
            : 'Pass a PEM or DER certificate, key, CSR or CRL; for a PKCS#12 bundle run: openssl pkcs12 -in FILE -nodes -out FILE.pem',
        },
      );
    }
  }
}

/** Certificates only; throws MTLS_PKI_WRONG_OBJECT naming what the file holds instead. */
export function readCertificates(data: Buffer, source = 'input'): Certificate[] {
  const objs = readObjects(data, source);
  const certs = objs
    .filter((o): o is Extract<PkiObject, { kind: 'certificate' }> => o.kind === 'certificate')
    .map((o) => o.cert);
  if (certs.length === 0) {
    const found = objs.map((o) => (o.kind === 'unknown' ? o.label : o.kind)).join(', ');
    throw new MtlsError(
      'MTLS_PKI_WRONG_OBJECT',
      `${source} holds no certificate (found: ${found || 'nothing'}).`,
      {
        fix: 'Pass a certificate file ("-----BEGIN CERTIFICATE-----"); run "mtls inspect FILE" to see what a file holds.',
      },
    );
  }
  return certs;
}
