// Reading what users give the doctor (PEM or DER, CRLF, BOM, text around blocks, bundles in any
// order, every key container) and turning "this is not what belongs here" into file_format findings.
import type { KeyObject } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import {
  isProbablyPem,
  parseCrl,
  readObjects,
  sniffDer,
  subjectString,
  type Certificate,
  type Crl,
  type PkiObject,
} from '../pki/index.js';
import type { Finding, Side } from './findings.js';

/** The name to give the PEM copy of a DER certificate file (alice.der -> alice.pem). */
export function pemName(path: string): string {
  const pem = `${path.replace(/\.(der|cer|crt|pem)$/i, '')}.pem`;
  return pem === path ? path.replace(/\.pem$/i, '.converted.pem') : pem;
}

/** One input file: its name as the user gave it and its bytes (the engine reads no files itself). */
export interface InputFile {
  path: string;
  data: Buffer;
}

export interface LoadContext {
  /** Whose file this is. */
  side: Side;
  /** nginx, HAProxy and curl read PEM only: DER is then an error rather than a note. */
  pemOnly: boolean;
  findings: Finding[];
}

export interface LoadedCerts {
  file: InputFile;
  certs: Certificate[];
  /** Private keys found in the same file (HAProxy-style combined PEM). */
  keys: KeyObject[];
  format: 'pem' | 'der';
}

const DESCRIBE: Record<string, string> = {
  csr: 'a certificate signing request (CSR)',
  'private-key': 'a private key',
  'public-key': 'a public key',
  crl: 'a CRL',
  certificate: 'a certificate',
};

function describeObjects(objs: readonly PkiObject[]): string {
  const kinds = [
    ...new Set(objs.map((o) => (o.kind === 'unknown' ? `a "${o.label}" block` : DESCRIBE[o.kind]))),
  ];
  return kinds.join(' and ') || 'nothing';
}

function formatFinding(ctx: LoadContext, file: InputFile, message: string, fix: string, what: string): void {
  ctx.findings.push({
    code: 'file_format',
    side: ctx.side,
    severity: 'error',
    message,
    evidence: { file: file.path, expected: what, size: file.data.length },
    fix,
  });
}

/** True when a PEM block's body holds raw bytes (DER pasted between BEGIN and END) rather than text. */
function binaryInArmor(data: Buffer): boolean {
  const begin = data.indexOf('-----BEGIN');
  if (begin < 0) return false;
  const end = data.indexOf('-----END', begin);
  const body = data.subarray(data.indexOf(0x0a, begin) + 1, end < 0 ? undefined : end);
  return body.some((b) => b >= 0x80 || (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d));
}

/** A read failure as a finding: truncated PEM, bad base64, garbage, an unparsable block. */
function readFailure(ctx: LoadContext, file: InputFile, e: unknown, what: string): void {
  if (!(e instanceof MtlsError)) throw e;
  const text = file.data.subarray(0, 4096).toString('latin1');
  const truncated = /has no matching END line/.test(e.message);
  let message = `${file.path} cannot be read as ${what}: ${e.message}`;
  let fix = e.fix ?? `Export ${what} again from its source.`;
  if (truncated) {
    message = `${file.path} is a truncated PEM file (a BEGIN line without its END line): ${e.message}`;
    fix = `Copy ${file.path} again in full (from "-----BEGIN" to "-----END"); check with: openssl x509 -in ${file.path} -noout -subject`;
  } else if (e.code === 'MTLS_PKI_BAD_PEM' && binaryInArmor(file.data)) {
    const tool = what.includes('key') ? 'pkey' : what.includes('CRL') ? 'crl' : 'x509';
    message = `${file.path} has PEM BEGIN/END lines around binary data: DER was pasted into a PEM file, which needs base64 between those lines.`;
    fix = `Convert the DER original instead of pasting it: openssl ${tool} -inform DER -in ORIGINAL.der -out ${file.path}`;
  } else if (e.code === 'MTLS_PKI_BAD_PEM') {
    fix = `Copy ${file.path} again from its source; do not edit PEM by hand (check: openssl ${what.includes('key') ? 'pkey' : what.includes('CRL') ? 'crl' : 'x509'} -in ${file.path} -noout).`;
  } else if (e.code === 'MTLS_PKI_BAD_CERTIFICATE' || e.code === 'MTLS_PKI_BAD_DER') {
    if (text.includes('-----BEGIN')) {
      message = `${file.path} has a PEM block that does not decode to ${what} (the text between BEGIN and END was cut or edited): ${e.message}`;
      fix = `Copy ${file.path} again from its source; do not edit PEM by hand (check: openssl x509 -in ${file.path} -noout).`;
    }
  }
  formatFinding(ctx, file, message, fix, what);
}

function derNote(ctx: LoadContext, file: InputFile, message: string, fix: string, what: string): void {
  ctx.findings.push({
    code: 'file_format',
    side: ctx.side,
    severity: ctx.pemOnly ? 'error' : 'info',
    message: ctx.pemOnly
      ? `${file.path} is DER (binary); nginx, HAProxy and curl read only PEM, so they cannot load it. ${message}`
      : `${file.path} is DER (binary); mtlskit reads it, but nginx, HAProxy and curl need PEM. ${message}`,
    evidence: { file: file.path, expected: what, format: 'DER' },
    fix,
  });
}

/**
 * The certificates in a file meant to hold certificates (a leaf, a chain, a trust bundle). Returns
 * undefined when none can be used, after adding a file_format finding that says what is there.
 */
export function loadCertificates(
  file: InputFile,
  what: string,
  ctx: LoadContext,
  passphrase?: string,
): LoadedCerts | undefined {
  let objs: PkiObject[];
  try {
    objs = readObjects(file.data, file.path, passphrase);
  } catch (e) {
    if (e instanceof MtlsError && (e.code === 'MTLS_PKI_BAD_PASSPHRASE' || e.code === 'MTLS_PKI_BAD_KEY')) {
      // A combined PEM whose key cannot be opened: read the certificates alone.
      try {
        objs = readObjects(file.data, file.path, undefined);
      } catch (e2) {
        readFailure(ctx, file, e2, what);
        return undefined;
      }
    } else {
      readFailure(ctx, file, e, what);
      return undefined;
    }
  }
  const pem = isProbablyPem(file.data);
  const certs = objs.flatMap((o) => (o.kind === 'certificate' ? [o.cert] : []));
  const keys = objs.flatMap((o) => (o.kind === 'private-key' && o.key ? [o.key] : []));
  if (certs.length === 0) {
    const found = describeObjects(objs);
    const csr = objs.some((o) => o.kind === 'csr');
    const key = objs.some((o) => o.kind === 'private-key');
    const crl = objs.some((o) => o.kind === 'crl');
    formatFinding(
      ctx,
      file,
      `${file.path} holds ${found}, not ${what}.`,
      csr
        ? `Have the CSR signed and use the certificate it gives: mtls ca sign ${file.path} --profile ${ctx.side === 'server' ? 'server' : 'client'} (writes a .crt and a .chain.pem).`
        : key
          ? `${file.path} is the key: pass it as the key and give the certificate file (the one with "-----BEGIN CERTIFICATE-----") here.`
          : crl
            ? `${file.path} is a CRL: pass it with --crl / --server-crl and give the certificate file here.`
            : `Give the certificate file ("-----BEGIN CERTIFICATE-----"); run "mtls inspect ${file.path}" to see what it holds.`,
      what,
    );
    return undefined;
  }
  if (!pem) {
    derNote(
      ctx,
      file,
      `It holds ${subjectString(certs[0]!) || 'a certificate'}.`,
      `Convert it: openssl x509 -inform DER -in ${file.path} -out ${pemName(file.path)}`,
      what,
    );
  }
  return { file, certs, keys, format: pem ? 'pem' : 'der' };
}

export interface LoadedKey {
  file: InputFile;
  /** Absent when the key is encrypted and no (or a wrong) passphrase was given. */
  key?: KeyObject;
  encrypted: boolean;
  format: 'pem' | 'der';
  /** Certificates found in the key file (a combined PEM). */
  certs: Certificate[];
}

/** The private key in a key file; file_format / encrypted_key findings when it cannot be used. */
export function loadKey(
  file: InputFile,
  ctx: LoadContext,
  passphrase: string | undefined,
  opts: { passphraseFlag: string; encryptedIsError: boolean },
): LoadedKey | undefined {
  let objs: PkiObject[];
  try {
    objs = readObjects(file.data, file.path, passphrase);
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_PKI_BAD_PASSPHRASE') {
      ctx.findings.push({
        code: 'encrypted_key',
        side: ctx.side,
        severity: 'error',
        message: `${file.path} is encrypted and the passphrase given does not decrypt it.`,
        evidence: { file: file.path },
        fix: `Give the passphrase of this key in ${opts.passphraseFlag} (first line of the file), or use the key that belongs to the certificate.`,
      });
      return { file, encrypted: true, format: isProbablyPem(file.data) ? 'pem' : 'der', certs: [] };
    }
    readFailure(ctx, file, e, 'a private key');
    return undefined;
  }
  const pem = isProbablyPem(file.data);
  const keyObj = objs.find((o): o is Extract<PkiObject, { kind: 'private-key' }> => o.kind === 'private-key');
  const certs = objs.flatMap((o) => (o.kind === 'certificate' ? [o.cert] : []));
  if (!keyObj) {
    formatFinding(
      ctx,
      file,
      `${file.path} holds ${describeObjects(objs)}, not a private key.`,
      certs.length
        ? `${file.path} is a certificate: pass it as the certificate, and give the key file ("-----BEGIN PRIVATE KEY-----") here.`
        : `Give the private key file ("-----BEGIN PRIVATE KEY-----", "RSA PRIVATE KEY" or "EC PRIVATE KEY").`,
      'a private key',
    );
    return undefined;
  }
  if (!pem) {
    derNote(
      ctx,
      file,
      'It holds a private key.',
      `Convert it: openssl pkey -inform DER -in ${file.path} -out ${file.path}.pem (then chmod 600 it)`,
      'a private key',
    );
  }
  if (keyObj.encrypted && !keyObj.key) {
    ctx.findings.push({
      code: 'encrypted_key',
      side: ctx.side,
      severity: opts.encryptedIsError ? 'error' : 'warning',
      message: `${file.path} is an encrypted private key (${keyObj.format}) and no passphrase was given, so it cannot be checked against the certificate${ctx.side === 'server' ? '; nginx cannot load it without ssl_password_file' : ''}.`,
      evidence: { file: file.path, format: keyObj.format },
      fix:
        ctx.side === 'server'
          ? `Add "ssl_password_file /etc/nginx/key.pass;" holding the passphrase, or decrypt it: openssl pkey -in ${file.path} -out ${file.path}.plain && chmod 600 ${file.path}.plain (and rerun with ${opts.passphraseFlag} to check it).`
          : `Rerun with ${opts.passphraseFlag} FILE to check it; curl needs --pass, or decrypt it: openssl pkey -in ${file.path} -out ${file.path}.plain`,
    });
  } else if (keyObj.encrypted && ctx.side === 'server') {
    ctx.findings.push({
      code: 'encrypted_key',
      side: ctx.side,
      severity: 'info',
      message: `${file.path} is encrypted (${keyObj.format}); the passphrase given opens it.`,
      evidence: { file: file.path, format: keyObj.format },
      fix: 'nginx needs "ssl_password_file FILE;" with this passphrase (HAProxy cannot load encrypted keys: decrypt it with openssl pkey).',
    });
  }
  return {
    file,
    ...(keyObj.key ? { key: keyObj.key } : {}),
    encrypted: keyObj.encrypted,
    format: pem ? 'pem' : 'der',
    certs,
  };
}

/** The CRLs in a file; a file_format finding for anything else. */
export function loadCrls(file: InputFile, ctx: LoadContext): Crl[] {
  let objs: PkiObject[];
  try {
    objs = readObjects(file.data, file.path);
  } catch (e) {
    readFailure(ctx, file, e, 'a CRL');
    return [];
  }
  const crls: Crl[] = [];
  for (const o of objs) {
    if (o.kind !== 'crl') continue;
    try {
      crls.push(parseCrl(o.der));
    } catch (e) {
      readFailure(ctx, file, e, 'a CRL');
    }
  }
  if (crls.length === 0 && objs.length > 0) {
    formatFinding(
      ctx,
      file,
      `${file.path} holds ${describeObjects(objs)}, not a CRL.`,
      'Give the CRL file ("-----BEGIN X509 CRL-----"), e.g. the CA’s /v1/crl/chain or root.crl.',
      'a CRL',
    );
  } else if (!isProbablyPem(file.data) && sniffDer(file.data) === 'crl') {
    derNote(
      ctx,
      file,
      'It holds a CRL.',
      `Convert it: openssl crl -inform DER -in ${file.path} -out ${file.path}.pem`,
      'a CRL',
    );
  }
  return crls;
}
