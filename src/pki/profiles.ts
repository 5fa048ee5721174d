// Certificate profiles that are right by default: which extensions each role gets, which names it
// needs, and how long it may live. Lint and issuance read the same table.
import { MtlsError } from '../errors/index.js';
import type { KeyUsage } from './certificate.js';
import { OID } from './oids.js';

export const PROFILE_NAMES = ['root', 'intermediate', 'server', 'client', 'spiffe', 'peer', 'ocsp'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface Profile {
  name: ProfileName;
  summary: string;
  ca: boolean;
  /** pathLenConstraint for CA profiles (IssueRequest.pathLen overrides it). */
  pathLen?: number;
  keyUsage: KeyUsage[];
  /** Added for RSA keys (TLS 1.2 RSA key exchange). */
  rsaKeyUsage: KeyUsage[];
  extKeyUsage: string[];
  /** At least one DNS or IP SAN. */
  needsHostSan: boolean;
  /** Exactly one URI SAN which is a SPIFFE ID. */
  needsSpiffeId: boolean;
  allowWildcard: boolean;
  defaultTtlMs: number;
  maxTtlMs: number;
  /** A non-empty subject is required (an OCSP responder is known by its name in clients and logs). */
  needsSubject?: boolean;
  /** Adds id-pkix-ocsp-nocheck (RFC 6960 4.2.2.2.1): clients do not check this certificate's revocation. */
  ocspNoCheck?: boolean;
}

export const PROFILES: Record<ProfileName, Profile> = {
  root: {
    name: 'root',
    summary: 'self-signed trust anchor; signs only intermediates',
    ca: true,
    pathLen: 1,
    keyUsage: ['keyCertSign', 'cRLSign'],
    rsaKeyUsage: [],
    extKeyUsage: [],
    needsHostSan: false,
    needsSpiffeId: false,
    allowWildcard: false,
    defaultTtlMs: 3650 * DAY,
    maxTtlMs: 25 * 366 * DAY,
  },
  intermediate: {
    name: 'intermediate',
    summary: 'issuing CA below the root; signs leaves only (pathLen 0)',
    ca: true,
    pathLen: 0,
    keyUsage: ['digitalSignature', 'keyCertSign', 'cRLSign'],
    rsaKeyUsage: [],
    extKeyUsage: [],
    needsHostSan: false,
    needsSpiffeId: false,
    allowWildcard: false,
    defaultTtlMs: 5 * 365 * DAY,
    maxTtlMs: 10 * 366 * DAY,
  },
  server: {
    name: 'server',
    summary: 'TLS server: serverAuth, DNS/IP SAN required',
    ca: false,
    keyUsage: ['digitalSignature'],
    rsaKeyUsage: ['keyEncipherment'],
    extKeyUsage: [OID.serverAuth],
    needsHostSan: true,
    needsSpiffeId: false,
    allowWildcard: true,
    defaultTtlMs: 24 * HOUR,
    maxTtlMs: 397 * DAY,
  },
  client: {
    name: 'client',
    summary: 'TLS client: clientAuth + digitalSignature; no wildcards',
    ca: false,
    keyUsage: ['digitalSignature'],
    rsaKeyUsage: [],
    extKeyUsage: [OID.clientAuth],
    needsHostSan: false,
    needsSpiffeId: false,
    allowWildcard: false,
    defaultTtlMs: 24 * HOUR,
    maxTtlMs: 397 * DAY,
  },
  spiffe: {
    name: 'spiffe',
    summary: 'SPIFFE X509-SVID: exactly one spiffe:// URI SAN, serverAuth + clientAuth',
    ca: false,
    keyUsage: ['digitalSignature'],
    rsaKeyUsage: ['keyEncipherment'],
    extKeyUsage: [OID.serverAuth, OID.clientAuth],
    needsHostSan: false,
    needsSpiffeId: true,
    allowWildcard: false,
    defaultTtlMs: 24 * HOUR,
    maxTtlMs: 397 * DAY,
  },
  peer: {
    name: 'peer',
    summary: 'both server and client (service-to-service): serverAuth + clientAuth, SAN required',
    ca: false,
    keyUsage: ['digitalSignature'],
    rsaKeyUsage: ['keyEncipherment'],
    extKeyUsage: [OID.serverAuth, OID.clientAuth],
    needsHostSan: true,
    needsSpiffeId: false,
    allowWildcard: false,
    defaultTtlMs: 24 * HOUR,
    maxTtlMs: 397 * DAY,
  },
  ocsp: {
    name: 'ocsp',
    summary: 'delegated OCSP responder (RFC 6960 4.2.2.2): OCSPSigning only, ocsp-nocheck, short-lived',
    ca: false,
    keyUsage: ['digitalSignature'],
    rsaKeyUsage: [],
    extKeyUsage: [OID.ocspSigning],
    needsHostSan: false,
    needsSpiffeId: false,
    allowWildcard: false,
    defaultTtlMs: 7 * DAY,
    maxTtlMs: 30 * DAY,
    needsSubject: true,
    ocspNoCheck: true,
  },
};

export function isProfileName(s: string): s is ProfileName {
  return (PROFILE_NAMES as readonly string[]).includes(s);
}

export function getProfile(name: string): Profile {
  if (!isProfileName(name)) {
    throw new MtlsError('MTLS_PKI_UNKNOWN_PROFILE', `Unknown certificate profile "${name}".`, {
      fix: `Use one of: ${PROFILE_NAMES.join(', ')} (client for callers, server for services, peer for both, spiffe for SPIFFE IDs).`,
    });
  }
  return PROFILES[name];
}
