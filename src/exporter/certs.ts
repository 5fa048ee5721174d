// What the exporter knows about one certificate, read from a file or from an endpoint's chain, and
// the lifetime arithmetic its metrics are made of.
import { readFile } from 'node:fs/promises';
import {
  decodePem,
  isProbablyPem,
  isSelfSigned,
  parseCertificate,
  subjectString,
  type Certificate,
} from '../pki/index.js';

export type Position = 'leaf' | 'intermediate' | 'root';

export interface CertificateFacts {
  subject: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  position: Position;
}

/** A CA certificate that signs itself is a root; another CA an intermediate; the rest leaves. */
export function positionOf(cert: Certificate): Position {
  if (!cert.basicConstraints?.ca) return 'leaf';
  return isSelfSigned(cert) ? 'root' : 'intermediate';
}

export function factsOf(cert: Certificate, position: Position = positionOf(cert)): CertificateFacts {
  return {
    subject: subjectString(cert),
    serial: cert.serial,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    position,
  };
}

/** Facts for an endpoint's chain: the first certificate is the leaf whatever it looks like. */
export function chainFacts(chain: readonly Certificate[]): CertificateFacts[] {
  return chain.map((c, i) => factsOf(c, i === 0 ? 'leaf' : isSelfSigned(c) ? 'root' : 'intermediate'));
}

/** Fraction of the validity period still ahead at `now`, clamped to [0, 1]. */
export function remainingRatio(f: Pick<CertificateFacts, 'notBefore' | 'notAfter'>, now: Date): number {
  const total = f.notAfter.getTime() - f.notBefore.getTime();
  if (!(total > 0)) return 0;
  const left = (f.notAfter.getTime() - now.getTime()) / total;
  return Math.min(1, Math.max(0, left));
}

export type FileRead =
  | { ok: true; certificates: CertificateFacts[] }
  | { ok: false; error: string }
  | { ok: true; certificates: []; skipped: 'no certificate' };

/**
 * The certificates in a file (PEM with any number of CERTIFICATE blocks, or one DER certificate).
 * A PEM file with other blocks only (a key, a CSR) is skipped, not an error: globs such as *.pem
 * match key files too, and the exporter never parses a private key.
 */
export async function readCertificateFile(path: string): Promise<FileRead> {
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
  try {
    if (isProbablyPem(data)) {
      const blocks = decodePem(data, path).filter((b) => b.label === 'CERTIFICATE');
      if (blocks.length === 0) return { ok: true, certificates: [], skipped: 'no certificate' };
      return { ok: true, certificates: blocks.map((b) => factsOf(parseCertificate(b.der))) };
    }
    return { ok: true, certificates: [factsOf(parseCertificate(data))] };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
