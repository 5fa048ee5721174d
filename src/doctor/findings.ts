// The doctor's findings: the catalog of codes (shared reasons, lint codes and the doctor's own), the
// finding and report types, and how the failing side is decided from the findings.
import type { LintCode } from '../pki/index.js';

export type Side = 'client' | 'server' | 'both';
export type Severity = 'error' | 'warning' | 'info';

export interface DoctorCodeInfo {
  /** What the finding means. */
  meaning: string;
  /** Whose files or configuration the finding usually points at. */
  side: string;
  /** The kind of fix the finding carries (the finding itself holds the exact command or line). */
  fix: string;
}

/**
 * Every code the doctor reports besides the lint codes it passes through. Codes that are also in
 * the shared reason catalog (pki/reasons.ts) mean the same thing there. Add entries; never rename.
 */
export const DOCTOR_CODES = {
  no_client_cert: {
    meaning: 'The client has no certificate to send, and the server requires one (ssl_verify_client on).',
    side: 'client',
    fix: 'Issue one (`mtls issue client NAME`) and configure the client with it (`curl --cert … --key …`).',
  },
  unknown_ca: {
    meaning: 'The certificate chains to no root in the peer’s trust bundle.',
    side: 'the side that presents the certificate, or the verifier when its bundle holds a stale root of the same name',
    fix: 'Get a certificate from the CA the peer trusts, or give the peer the root that issued it.',
  },
  missing_intermediate: {
    meaning:
      'The certificate is sent without the intermediate that issued it, and the peer trusts only the root.',
    side: 'the side that presents the certificate',
    fix: 'Send the chain: `cat leaf.crt intermediate.crt > chain.pem` and configure that file.',
  },
  expired: {
    meaning: 'A certificate of the chain (or of the trust bundle) has expired.',
    side: 'whoever holds that certificate',
    fix: 'Renew it (`mtls issue …`), or replace the trust bundle with the current root.',
  },
  not_yet_valid: {
    meaning: 'A certificate is not valid yet (its notBefore is in the future).',
    side: 'whoever holds that certificate',
    fix: 'Fix the clock of the machine that issued it, or reissue it.',
  },
  wrong_eku: {
    meaning:
      'The extendedKeyUsage does not allow the purpose (clientAuth for a client, serverAuth for a server).',
    side: 'the side that presents the certificate',
    fix: 'Reissue it with the right profile: `mtls issue client NAME` or `mtls issue server HOST`.',
  },
  bad_key_usage: {
    meaning: 'The keyUsage does not allow the use (digitalSignature for a TLS leaf, keyCertSign for a CA).',
    side: 'the side that presents the certificate',
    fix: 'Reissue it with the right profile.',
  },
  revoked: {
    meaning: 'The certificate is listed in its issuer’s CRL.',
    side: 'the side that presents the certificate',
    fix: 'Issue a new certificate (`mtls issue …`); a revoked one never works again.',
  },
  self_signed: {
    meaning: 'The certificate is self-signed and the peer does not trust it.',
    side: 'the side that presents the certificate',
    fix: 'Issue one from the CA the peer trusts.',
  },
  key_mismatch: {
    meaning: 'The private key does not belong to the certificate.',
    side: 'whoever holds the key and certificate',
    fix: 'Use the key that was generated with the certificate, or reissue both.',
  },
  name_mismatch: {
    meaning: 'No subject alternative name of the server certificate matches the host name the client uses.',
    side: 'server',
    fix: 'Reissue the server certificate with the name: `mtls issue server HOST --san dns:HOST`.',
  },
  cn_only: {
    meaning:
      'The host name is only in the subject CN, not in a SAN: Go, browsers, rustls and strict clients refuse it (curl and Python still accept it).',
    side: 'server',
    fix: 'Reissue the certificate with the name as a SAN: `mtls issue server HOST`.',
  },
  swapped_ca_files: {
    meaning:
      'A trust bundle holds the CA of the wrong side: the client trusts the client CA instead of the server’s, and/or the server trusts the server CA for clients.',
    side: 'client, server, or both when both files were swapped',
    fix: 'Point each side at the other file: `ssl_client_certificate CLIENT-CA;` on the server, `--cacert SERVER-CA` on the client.',
  },
  issuer_not_ca: {
    meaning:
      'A certificate of the chain signed another one but is not a CA (basicConstraints CA:FALSE or absent).',
    side: 'whoever holds that chain',
    fix: 'Issue the leaf from a real CA (`mtls ca init`, `mtls issue …`).',
  },
  path_len_exceeded: {
    meaning:
      'A CA in the chain has a pathLenConstraint that forbids the CAs below it (a sub-CA under an intermediate with pathLen 0). Refines path_too_long.',
    side: 'whoever holds that chain',
    fix: 'Issue the leaf directly from the CA with the constraint, or recreate the sub-CA under a CA that allows it.',
  },
  verify_depth_exceeded: {
    meaning:
      'The chain has more intermediates than the server’s verify depth allows (nginx ssl_verify_depth, default 1). Refines path_too_long.',
    side: 'server',
    fix: 'Raise the depth: `ssl_verify_depth N;` with N the number of intermediates.',
  },
  weak_key: {
    meaning:
      'A key is too small (RSA below 2048 bits, EC below P-256): OpenSSL 3 refuses it at security level 2.',
    side: 'whoever holds that certificate',
    fix: 'New key and certificate: `mtls issue … --key-type p256`.',
  },
  weak_signature: {
    meaning: 'A certificate is signed with SHA-1 or MD5, which OpenSSL 3 and browsers refuse.',
    side: 'whoever holds that certificate',
    fix: 'Reissue it from a CA that signs with SHA-256 or better (`mtls issue …`).',
  },
  crl_expired: {
    meaning: 'A CRL the server checks is past its nextUpdate: nginx refuses every client of that CA.',
    side: 'server',
    fix: 'Fetch a fresh CRL and replace the ssl_crl file (`mtls ca root-crl` for the root’s).',
  },
  crl_missing: {
    meaning:
      'The server checks revocation (ssl_crl) but no CRL covers a CA of the client’s chain: nginx needs a CRL for every CA.',
    side: 'server',
    fix: 'Add the missing CA’s CRL to the ssl_crl file: `cat intermediate.crl root.crl > crl.pem`.',
  },
  crl_invalid: {
    meaning: 'A CRL cannot be used (bad signature, not yet valid, malformed).',
    side: 'server',
    fix: 'Replace it with a CRL signed by the CA it is meant for.',
  },
  partial_chain: {
    meaning:
      'The trust bundle holds an intermediate but not the root above it: OpenSSL-based servers (nginx, HAProxy) only accept chains that end at a self-signed root in the bundle.',
    side: 'the side whose trust bundle it is (an error for the server, a warning for the client: curl accepts it)',
    fix: 'Put the root in the bundle: `cat intermediate.crt root.crt > ca.pem`.',
  },
  chain_order: {
    meaning:
      'A certificate file is not in the order peers expect: the leaf must come first (an error), then each issuer (a warning otherwise); or it holds duplicates or unrelated certificates.',
    side: 'whoever holds that file',
    fix: 'Rewrite it leaf first: `cat leaf.crt intermediate.crt > chain.pem`.',
  },
  file_format: {
    meaning:
      'A file is not what it should be: a CSR or key where a certificate belongs, a truncated or damaged PEM, garbage, or DER where nginx and curl need PEM.',
    side: 'whoever holds that file',
    fix: 'The conversion or the file to use instead (`openssl x509 -inform DER -in F -out F.pem`, `mtls ca sign F.csr …`).',
  },
  encrypted_key: {
    meaning:
      'A private key is encrypted: it cannot be checked without --passphrase-file, and nginx needs ssl_password_file (curl needs --pass).',
    side: 'whoever holds the key',
    fix: 'Give the passphrase, or store the key decrypted with 0600: `openssl pkey -in KEY -out KEY.plain`.',
  },
  bad_signature: {
    meaning: 'A signature in the chain does not verify: a certificate was altered or is corrupt.',
    side: 'whoever holds that chain',
    fix: 'Get the certificate again from its CA.',
  },
  name_constraints: {
    meaning: 'A name in the certificate violates a CA’s name constraints.',
    side: 'the side that presents the certificate',
    fix: 'Reissue it with names inside the constraints.',
  },
  malformed: {
    meaning: 'A certificate is malformed (bad encoding or RFC 5280 violation).',
    side: 'whoever holds that certificate',
    fix: 'Reissue it with `mtls issue`.',
  },
  unsupported_critical_extension: {
    meaning: 'A certificate has a critical extension verifiers do not understand.',
    side: 'whoever holds that certificate',
    fix: 'Reissue it without that extension.',
  },
  policy_violation: {
    meaning: 'The certificate policies required by the chain are not satisfied.',
    side: 'whoever holds that chain',
    fix: 'Reissue it with the required policy.',
  },
  not_mtls: {
    meaning:
      'The server never asks for a client certificate (not mTLS, or an L7 proxy in front): seen live by the connect mode, or in a server config that does not require one (config mode).',
    side: 'server',
    fix: '`ssl_verify_client on;` with `ssl_client_certificate CLIENT-CA;`.',
  },
  // ---- connect mode (a live handshake): what the network and the server's answers show.
  connect_refused: {
    meaning: 'Nothing listens at HOST:PORT (connection refused): the server is down or failed to start.',
    side: 'network',
    fix: 'Start the server and read its log (`nginx -t` says why nginx does not start), or check the port.',
  },
  connect_timeout: {
    meaning: 'No TCP connection, TLS handshake or answer within --timeout (a firewall, or not a TLS port).',
    side: 'network',
    fix: 'Check the address, the port and the firewalls (`nc -vz HOST PORT`).',
  },
  connect_failed: {
    meaning: 'HOST:PORT cannot be reached: the name does not resolve, or there is no route.',
    side: 'network',
    fix: 'Check the name (`getent hosts HOST`) and the route.',
  },
  not_tls: {
    meaning:
      'The server does not speak TLS on that port (it answered in plain HTTP, or with something else).',
    side: 'network',
    fix: 'Connect to the TLS port, or enable TLS on that listener (`listen 443 ssl;`).',
  },
  protocol_mismatch: {
    meaning:
      'The handshake failed on versions, cipher suites or parameters (an alert such as protocol_version or handshake_failure).',
    side: 'both',
    fix: 'Allow a common version: `ssl_protocols TLSv1.2 TLSv1.3;` on the server, a current TLS library on the client.',
  },
  client_cert_rejected: {
    meaning:
      'The server refused the client certificate without saying why (nginx "400 The SSL certificate error", an alert), and the client files show no fault: the server’s client CA bundle, CRL or depth is the likely cause.',
    side: 'server, or client when the server sent no acceptable CA names to compare with',
    fix: 'On the server: `openssl verify -CAfile CLIENT-CA -untrusted client.chain.pem client.crt` with its ssl_client_certificate (and ssl_crl), or `mtls doctor config nginx.conf`.',
  },
  identity_not_allowed: {
    meaning: 'The certificate is valid but its identity is not allowed here (mtls proxy answers 403).',
    side: 'server',
    fix: 'Add an allow rule for the identity to the proxy config, or use a certificate with an allowed identity.',
  },
  revocation_unavailable: {
    meaning:
      'The server cannot establish revocation status (mtls proxy answers 503: its revocation feed is stale).',
    side: 'server',
    fix: 'Bring the CA’s revocation feed back (`mtls ca serve`), or check the proxy’s revocation settings.',
  },
  http_to_https_port: {
    meaning:
      'nginx answered "400 The plain HTTP request was sent to HTTPS port" inside TLS: something in front (an L7 proxy) terminates TLS and forwards plain HTTP to an HTTPS port.',
    side: 'server',
    fix: 'Point the proxy in front at the HTTP port, or make it forward with TLS (`proxy_pass https://…;`).',
  },
  connected: {
    meaning:
      'What the live handshake showed (info): protocol, the server chain, whether a client certificate was asked for, the HTTP answer.',
    side: 'none',
    fix: 'Nothing to fix.',
  },
  // ---- config mode (nginx, HAProxy, Envoy, OpenTelemetry Collector configs).
  config_file_missing: {
    meaning:
      'A file the config names (certificate, key, CA bundle, CRL, password file) does not exist or cannot be read, or the config lacks one its settings need (ssl_verify_client on without ssl_client_certificate).',
    side: 'whoever owns the config',
    fix: 'Write the file where the config says, or fix the path at the config line given (relative paths start from the config’s directory).',
  },
  server_not_verified: {
    meaning:
      'A client side does not verify the server’s certificate (nginx proxy_pass https:// without proxy_ssl_verify on, OTel insecure_skip_verify: true, HAProxy server … verify none, Envoy UpstreamTlsContext without validation_context): anyone on the path can impersonate the server.',
    side: 'client',
    fix: 'Verify against the server’s CA: `proxy_ssl_verify on;` with `proxy_ssl_trusted_certificate` (nginx), `ca_file: server-ca.pem` (OTel), `verify required ca-file server-ca.pem` (HAProxy), a validation_context (Envoy).',
  },
  tls_disabled: {
    meaning:
      'A client side names certificate files but has TLS turned off (OTel exporter insecure: true, or an http:// endpoint): it sends plaintext and never presents its certificate.',
    side: 'client',
    fix: 'Remove `insecure: true` and use an https:// endpoint.',
  },
} as const satisfies Record<string, DoctorCodeInfo>;

export type DoctorCode = keyof typeof DOCTOR_CODES;

/** A finding code: the doctor's own (shared reasons included) or a lint code passed through. */
export type FindingCode = DoctorCode | LintCode;

export type EvidenceValue = string | number | boolean | string[];

export interface Evidence {
  file?: string;
  subject?: string;
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
  [key: string]: EvidenceValue | undefined;
}

export interface Finding {
  code: FindingCode;
  side: Side;
  severity: Severity;
  /** What is wrong, in one or two sentences naming the certificate or file. */
  message: string;
  /** What was observed. */
  evidence: Evidence;
  /** One concrete action: a command, a config line, or the file to use instead. */
  fix: string;
}

/** The JSON document of every mode: exactly these three keys. */
export interface DoctorReport {
  ok: boolean;
  failingSide: Side | null;
  findings: Finding[];
}

/** Whose files must change: the sides of the error findings; null when there are none. */
export function failingSideOf(findings: readonly Finding[]): Side | null {
  const sides = new Set(findings.filter((f) => f.severity === 'error').map((f) => f.side));
  if (sides.size === 0) return null;
  if (sides.size === 1) return [...sides][0]!;
  return 'both';
}

const SEVERITY_ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Dedupes (same code, side and message) and sorts errors first, keeping discovery order otherwise. */
export function makeReport(findings: readonly Finding[]): DoctorReport {
  const seen = new Set<string>();
  const unique = findings.filter((f) => {
    const k = `${f.code}|${f.side}|${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  const sorted = unique
    .map((f, i) => ({ f, i }))
    .sort((a, b) => SEVERITY_ORDER[a.f.severity] - SEVERITY_ORDER[b.f.severity] || a.i - b.i)
    .map((x) => x.f);
  const failingSide = failingSideOf(sorted);
  return { ok: failingSide === null, failingSide, findings: sorted };
}
