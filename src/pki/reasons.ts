// The shared vocabulary: every reason a peer certificate is not accepted. Used verbatim as the
// metrics `reason` label, in logs, in doctor findings and in docs. Add entries; never rename one.

export const REASONS = {
  no_client_cert: 'The client sent no certificate.',
  unknown_ca: 'The certificate chains to no trusted root in the bundle.',
  missing_intermediate:
    'An intermediate certificate is missing: the issuer is known by name but was not sent or given.',
  expired: 'The certificate (or one in its chain) has expired.',
  not_yet_valid: 'The certificate (or one in its chain) is not valid yet.',
  wrong_eku: 'The extended key usage does not allow this purpose (clientAuth or serverAuth).',
  bad_key_usage: 'The key usage does not allow this use (digitalSignature for a leaf, keyCertSign for a CA).',
  revoked: 'The certificate is revoked by its issuer.',
  self_signed: 'The certificate is self-signed and not itself trusted.',
  identity_not_allowed: 'The certificate is valid but its identity is not allowed here.',
  bad_signature: 'A signature in the chain does not verify.',
  path_too_long: 'The chain is longer than a CA allows (pathLenConstraint) or the verifier permits.',
  protocol_mismatch: 'The peers share no TLS version or cipher suite.',
  name_mismatch: 'No subject alternative name matches the expected name.',
  issuer_not_ca:
    'A certificate in the chain is used as a CA but is not one (basicConstraints CA:FALSE or absent).',
  name_constraints: 'A name in the certificate violates a CA name constraint.',
  unsupported_critical_extension:
    'The certificate has a critical extension the verifier does not understand.',
  malformed: 'The certificate is malformed (bad encoding or violates RFC 5280).',
  crl_expired: 'The CRL for an issuer is past its nextUpdate.',
  crl_missing: 'Revocation checking was required but no CRL covers this issuer.',
  crl_invalid:
    'A CRL for an issuer cannot be used: malformed, missing its CRL number, or signed by a CA not allowed to sign CRLs.',
  revocation_unavailable:
    'Revocation status cannot be established: the revocation feed is stale or unreachable (fail closed).',
  client_cert_rejected:
    "The upstream refused OUR client certificate (it sent a TLS alert such as 'unknown ca' or 'certificate required').",
  upstream_closed:
    'The upstream closed the connection during or right after the handshake without an alert or a byte (how some servers refuse a client certificate).',
  connect_refused: 'Nothing listens at the upstream address (connection refused).',
  connect_timeout: 'The TCP connection or the TLS handshake to the upstream did not finish in time.',
  connect_failed:
    'The upstream could not be reached (name resolution, routing) or the TLS handshake failed otherwise.',
  weak_key: 'The key is too small or of an algorithm not accepted.',
  weak_signature: 'The signature algorithm is not accepted (SHA-1, MD5).',
  policy_violation: 'The certificate policies required by the chain are not satisfied.',
} as const;

export type Reason = keyof typeof REASONS;

export function isReason(s: string): s is Reason {
  return Object.hasOwn(REASONS, s);
}
