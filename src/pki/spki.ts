// SubjectPublicKeyInfo: what kind of key it is, how strong, and its key identifier.
import { createHash } from 'node:crypto';
import * as der from './der.js';
import { OID } from './oids.js';

export type KeyAlgorithm = 'EC' | 'RSA' | 'RSA-PSS' | 'Ed25519' | 'Ed448' | 'unknown';

export interface PublicKeyInfo {
  algorithm: KeyAlgorithm;
  /** P-256, P-384, P-521 for EC. */
  curve?: string;
  /** Modulus size for RSA, field size for EC, 256/456 for EdDSA. */
  bits: number;
  /** The subjectPublicKey bits (what SKI method 1 hashes). */
  keyBits: Buffer;
  /** A short description such as "EC P-256" or "RSA 2048". */
  description: string;
}

const CURVES: Record<string, { name: string; bits: number }> = {
  [OID.prime256v1]: { name: 'P-256', bits: 256 },
  [OID.secp384r1]: { name: 'P-384', bits: 384 },
  [OID.secp521r1]: { name: 'P-521', bits: 521 },
};

export function describePublicKey(spki: Buffer): PublicKeyInfo {
  const [algNode, keyNode] = der.children(der.readOne(spki));
  const [oidNode, params] = der.children(der.expect(algNode, der.Tag.SEQUENCE, 'AlgorithmIdentifier'));
  const oid = der.readOid(oidNode!);
  const { bytes } = der.readBitString(der.expect(keyNode, der.Tag.BIT_STRING, 'subjectPublicKey'));
  const keyBits = Buffer.from(bytes);
  switch (oid) {
    case OID.ecPublicKey: {
      const curveOid = params && params.tag === der.Tag.OID ? der.readOid(params) : '';
      const c = CURVES[curveOid];
      const curve = c?.name ?? (curveOid || 'unknown curve');
      return { algorithm: 'EC', curve, bits: c?.bits ?? 0, keyBits, description: `EC ${curve}` };
    }
    case OID.rsaEncryption:
    case OID.rsassaPss: {
      let bits = 0;
      try {
        const [n] = der.children(der.readOne(keyBits));
        const mod = der.readIntegerBytes(n!);
        bits = (mod[0] === 0 ? mod.length - 1 : mod.length) * 8;
        const top = mod[mod[0] === 0 ? 1 : 0]!;
        bits -= Math.clz32(top) - 24;
      } catch {
        bits = 0;
      }
      const algorithm = oid === OID.rsaEncryption ? 'RSA' : 'RSA-PSS';
      return { algorithm, bits, keyBits, description: `${algorithm} ${bits}` };
    }
    case OID.ed25519:
      return { algorithm: 'Ed25519', bits: 256, keyBits, description: 'Ed25519' };
    case OID.ed448:
      return { algorithm: 'Ed448', bits: 456, keyBits, description: 'Ed448' };
    default:
      return { algorithm: 'unknown', bits: 0, keyBits, description: `unknown (${oid})` };
  }
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(describePublicKey(spki).keyBits).digest();
}
