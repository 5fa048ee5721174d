// What `mtls doctor connect` must say for the scenarios of the doctor corpus where a live
// connection cannot show what the offline `pair` mode shows (keyed by scenario name; every other
// scenario expects the corpus's own failingSide and codes). Each entry says why.
import type { Scenario } from './doctor-corpus.js';

export type ConnectSide = 'client' | 'server' | 'both' | 'network';

export interface ConnectExpectation {
  failingSide: ConnectSide | null;
  /** Error codes that must be reported (others may be). Empty: no error at all. */
  codes: string[];
  why: string;
}

const NGINX_DOWN =
  'nginx refuses to start with these server files, so nothing listens: from the client all that can be seen is a refused connection (mtls doctor config / pair read the server files).';

const CERT_ERROR_ONLY =
  'nginx answers only "400 The SSL certificate error"; the client chain is sound and reaches the root the server names in its CertificateRequest, so the cause is on the server, but a stale root of the same name, a stale or incomplete ssl_crl and a revoked certificate look the same from the client: client_cert_rejected on the server, whose fix is the openssl verify that tells them apart.';

export const CONNECT_EXPECT: Record<string, ConnectExpectation> = {
  'server key does not match its certificate': {
    failingSide: 'network',
    codes: ['connect_refused'],
    why: NGINX_DOWN,
  },
  'server chain file with the intermediate first': {
    failingSide: 'network',
    codes: ['connect_refused'],
    why: NGINX_DOWN,
  },
  'server certificate file is a CSR': {
    failingSide: 'network',
    codes: ['connect_refused'],
    why: NGINX_DOWN,
  },
  'server key encrypted, no ssl_password_file': {
    failingSide: 'network',
    codes: ['connect_refused'],
    why: NGINX_DOWN,
  },
  'client CA bundle holds a re-created root of the same name': {
    failingSide: 'server',
    codes: ['client_cert_rejected'],
    why: `${CERT_ERROR_ONLY} (pair: unknown_ca on the server; the side is the same.)`,
  },
  'ssl_crl past its nextUpdate': {
    failingSide: 'server',
    codes: ['client_cert_rejected'],
    why: `${CERT_ERROR_ONLY} (pair: crl_expired; the side is the same.)`,
  },
  'ssl_crl without the root CA’s CRL': {
    failingSide: 'server',
    codes: ['client_cert_rejected'],
    why: `${CERT_ERROR_ONLY} (pair: crl_missing; the side is the same.)`,
  },
  'client certificate revoked': {
    failingSide: 'server',
    codes: ['client_cert_rejected'],
    why: `${CERT_ERROR_ONLY} Here that is WRONG: the certificate is revoked and the client must change; the CRL lives only on the server and nginx does not say "revoked" (HAProxy's alert certificate_revoked and mtls proxy's reason do, and connect then says revoked on the client). The finding's message lists revocation among the causes.`,
  },
};

/** The expectation for a scenario in connect mode. */
export function connectExpectation(s: Scenario): ConnectExpectation {
  return (
    CONNECT_EXPECT[s.name] ?? {
      failingSide: s.failingSide,
      codes: s.codes,
      why: 'as in pair mode',
    }
  );
}
