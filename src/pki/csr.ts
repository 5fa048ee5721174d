// PKCS#10 certificate signing requests: parse, verify the self-signature, read requested names,
// and create CSRs. Parsing uses the DER reader so the CA's CSR path stays fast.
import type { KeyObject } from 'node:crypto';
import { MtlsError } from '../errors/index.js';
import { verifySignature } from './certificate.js';
import * as der from './der.js';
import { signData, signatureAlgorithmFor, spkiOf } from './keys.js';
import {
  decodeGeneralNames,
  decodeName,
  encodeGeneralNames,
  encodeName,
  type DistinguishedName,
  type GeneralName,
  type San,
} from './names.js';
import { OID } from './oids.js';
import { decodePem, encodePem, isProbablyPem } from './pem.js';
import { describePublicKey, importSpki, type PublicKeyInfo } from './spki.js';

export interface CertificationRequest {
  der: Buffer;
  /** CertificationRequestInfo bytes, what the signature covers. */
  info: Buffer;
  subject: DistinguishedName;
  subjectDer: Buffer;
  spki: Buffer;
  publicKey: PublicKeyInfo;
  signatureAlgorithm: string;
  signatureAlgorithmParams: Buffer | undefined;
  signature: Buffer;
  /** SANs from the extensionRequest attribute. */
  subjectAltNames: GeneralName[];
  /** OIDs of other extensions requested (never copied into certificates). */
  requestedExtensions: string[];
}

const badCsr = (why: string, cause?: unknown): MtlsError =>
  new MtlsError('MTLS_PKI_BAD_CSR', `Not a valid certificate signing request: ${why}.`, {
    fix: 'Create the CSR again (mtls csr NAME, or openssl req -new) and send the whole file.',
    cause,
  });

/** Reads a CSR from PEM ("CERTIFICATE REQUEST") or DER; does not check the signature. */
export function parseCsr(input: Buffer | string, source = 'CSR'): CertificationRequest {
  let bytes: Buffer;
  if (isProbablyPem(input)) {
    const blocks = decodePem(input, source);
    const block = blocks.find(
      (b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST',
    );
    if (!block) {
      throw new MtlsError(
        'MTLS_PKI_WRONG_OBJECT',
        `${source} holds ${blocks.map((b) => b.label).join(', ') || 'no PEM block'}, not a certificate request.`,
        {
          fix: 'Pass the CSR file ("-----BEGIN CERTIFICATE REQUEST-----"); run "mtls inspect FILE" to see what a file holds.',
        },
      );
    }
    bytes = block.der;
  } else bytes = Buffer.isBuffer(input) ? input : Buffer.from(input, 'latin1');
  try {
    return parseCsrDer(bytes);
  } catch (e) {
    if (e instanceof MtlsError) throw e;
    throw badCsr((e as Error).message, e);
  }
}

function parseCsrDer(buf: Buffer): CertificationRequest {
  const {
    tbs: infoNode,
    algorithm: algNode,
    signature: sigNode,
  } = der.readSignedEnvelope(buf, 'CertificationRequest', 'CertificationRequestInfo');
  const [version, subjectNode, spkiNode, attrsNode] = der.children(infoNode);
  if (der.readSmallInt(der.expect(version, der.Tag.INTEGER, 'version')) !== 0)
    throw new der.DerError('unsupported CSR version');
  der.expect(subjectNode, der.Tag.SEQUENCE, 'subject');
  der.expect(spkiNode, der.Tag.SEQUENCE, 'subjectPKInfo');
  const [algOid, algParams] = der.children(der.expect(algNode, der.Tag.SEQUENCE, 'signatureAlgorithm'));
  const sig = der.readBitString(sigNode);
  const spki = Buffer.from(der.raw(spkiNode!));
  const csr: CertificationRequest = {
    der: buf,
    info: der.raw(infoNode),
    subject: decodeName(subjectNode!),
    subjectDer: der.raw(subjectNode!),
    spki,
    publicKey: describePublicKey(spki),
    signatureAlgorithm: der.readOid(algOid!),
    signatureAlgorithmParams: algParams ? der.raw(algParams) : undefined,
    signature: sig.bytes,
    subjectAltNames: [],
    requestedExtensions: [],
  };
  if (attrsNode) {
    if (attrsNode.tag !== 0xa0) throw new der.DerError('attributes must be [0]');
    for (const attr of der.children(attrsNode)) {
      const [typeNode, values] = der.children(der.expect(attr, der.Tag.SEQUENCE, 'Attribute'));
      if (der.readOid(typeNode!) !== OID.extensionRequest) continue;
      const [exts] = der.children(der.expect(values, der.Tag.SET, 'attribute values'));
      for (const e of der.children(der.expect(exts, der.Tag.SEQUENCE, 'Extensions'))) {
        const parts = der.children(e);
        const oid = der.readOid(parts[0]!);
        const value = parts[parts.length - 1]!;
        if (oid === OID.subjectAltName)
          csr.subjectAltNames = decodeGeneralNames(der.readOne(der.content(value)));
        else csr.requestedExtensions.push(oid);
      }
    }
  }
  return csr;
}

/** Throws MTLS_PKI_CSR_SIGNATURE unless the CSR is signed by the key it carries. */
export function verifyCsr(csr: CertificationRequest): void {
  let key: KeyObject;
  try {
    key = importSpki(csr.spki);
  } catch (e) {
    throw badCsr('its public key cannot be read', e);
  }
  if (!verifySignature(csr.info, csr.signature, csr.signatureAlgorithm, csr.signatureAlgorithmParams, key)) {
    throw new MtlsError(
      'MTLS_PKI_CSR_SIGNATURE',
      "The CSR's signature does not verify with its own public key: it was altered or signed with another key.",
      {
        fix: 'Create the CSR again with the private key it should certify (mtls csr NAME --key KEY).',
      },
    );
  }
}

/** Parse and verify in one step: what a CA does with every CSR it receives. */
export function readVerifiedCsr(input: Buffer | string, source = 'CSR'): CertificationRequest {
  const csr = parseCsr(input, source);
  verifyCsr(csr);
  return csr;
}

export function requestedSans(csr: CertificationRequest): San[] {
  return csr.subjectAltNames.filter(
    (n): n is San => n.type === 'dns' || n.type === 'ip' || n.type === 'uri' || n.type === 'email',
  );
}

export interface CreateCsrOptions {
  key: KeyObject;
  subject: DistinguishedName;
  sans?: readonly San[];
}

export function createCsr(opts: CreateCsrOptions): { der: Buffer; pem: string } {
  const attrs: Buffer[] = [];
  if (opts.sans?.length) {
    const sanExt = der.seq(der.oid(OID.subjectAltName), der.octetString(encodeGeneralNames(opts.sans)));
    attrs.push(der.seq(der.oid(OID.extensionRequest), der.set(der.seq(sanExt))));
  }
  const info = der.seq(
    der.integer(0),
    encodeName(opts.subject),
    spkiOf(opts.key),
    der.ctx(0, Buffer.concat(attrs)),
  );
  const alg = signatureAlgorithmFor(opts.key);
  const out = der.seq(info, alg.identifier, der.bitString(signData(info, opts.key, alg)));
  return { der: out, pem: encodePem('CERTIFICATE REQUEST', out) };
}
