// The one error type of mtlskit, with stable MTLS_<AREA>_<REASON> codes.
// Every folder may import this; it imports nothing of ours. docs/errors.md mirrors ERROR_CODES (a test checks).

/** Every code, with what it means. Add entries; never rename or reuse one. */
export const ERROR_CODES = {
  MTLS_PKI_BAD_PEM: 'The input is not valid PEM (missing END line, bad base64, or no PEM block at all).',
  MTLS_PKI_BAD_DER: 'The bytes are not valid DER for the object expected (truncated or garbage).',
  MTLS_PKI_WRONG_OBJECT:
    'The file holds a different kind of object than the one expected (a CSR where a certificate was expected, say).',
  MTLS_PKI_BAD_CERTIFICATE: 'A certificate could not be parsed.',
  MTLS_PKI_BAD_CSR: 'A certificate signing request could not be parsed.',
  MTLS_PKI_CSR_SIGNATURE: "The CSR's signature does not verify with its own public key.",
  MTLS_PKI_BAD_CRL: 'A certificate revocation list could not be parsed.',
  MTLS_PKI_BAD_KEY: 'A private or public key could not be read.',
  MTLS_PKI_KEY_ENCRYPTED: 'The private key is encrypted and no passphrase was given.',
  MTLS_PKI_BAD_PASSPHRASE: 'The passphrase does not decrypt the private key.',
  MTLS_PKI_UNSUPPORTED_KEY: 'The key type or size is not supported.',
  MTLS_PKI_KEY_MISMATCH: 'The private key does not belong to the certificate.',
  MTLS_PKI_BAD_NAME: 'A distinguished name could not be parsed.',
  MTLS_PKI_BAD_SAN: 'A subject alternative name is malformed or not allowed for the profile.',
  MTLS_PKI_BAD_SPIFFE_ID: 'A SPIFFE ID does not follow the SPIFFE ID syntax.',
  MTLS_PKI_UNKNOWN_PROFILE: 'The certificate profile name is not one of the known profiles.',
  MTLS_PKI_PROFILE_VIOLATION: 'The request does not satisfy the rules of the chosen profile.',
  MTLS_PKI_BAD_VALIDITY: 'The validity period is invalid (zero, negative, or past the issuer).',
  MTLS_PKI_UNSUPPORTED_ALGORITHM: 'The signature or key algorithm is not supported.',
  MTLS_PKI_BAD_OCSP_REQUEST: 'An OCSP request is not a valid RFC 6960 OCSPRequest (truncated or garbage).',
  MTLS_PKI_BAD_OCSP_RESPONSE: 'An OCSP response is not a valid RFC 6960 OCSPResponse.',
  MTLS_CLI_USAGE: 'The command line is invalid.',
  MTLS_CLI_BAD_DURATION: 'A duration is not of the form 30s, 15m, 24h, 7d.',
  MTLS_CLI_BAD_TIME: 'A time is not an ISO 8601 date-time.',
  MTLS_FILE_NOT_FOUND: 'A file named on the command line or in a config does not exist.',
  MTLS_FILE_READ: 'A file could not be read.',
  MTLS_FILE_WRITE: 'A file could not be written.',
  MTLS_FILE_EXISTS: 'A file that would be overwritten already exists.',
  MTLS_CA_NOT_FOUND: 'No CA was found in the CA directory.',
  MTLS_CA_EXISTS: 'A CA already exists in the directory.',
  MTLS_CA_PASSPHRASE_REQUIRED: 'The CA key is encrypted and no passphrase was provided.',
  MTLS_CA_PLAINTEXT_KEY: 'Refused to store a CA private key without encryption.',
  MTLS_CONFIG_INVALID:
    'A configuration file or value does not match its schema (unknown key, wrong type, bad duration).',
  MTLS_CA_BAD_REQUEST: 'An API request is malformed (not JSON, missing fields, a CSR that cannot be read).',
  MTLS_CA_TOKEN_INVALID: 'The enrollment token is unknown or malformed.',
  MTLS_CA_TOKEN_USED: 'The enrollment token was already used; tokens are single-use.',
  MTLS_CA_TOKEN_EXPIRED: 'The enrollment token expired before it was used.',
  MTLS_CA_NAME_NOT_ALLOWED: 'The requested names are outside what the token or provisioner allows.',
  MTLS_CA_POLICY: 'The request violates the issuance policy (profile, key type or lifetime not allowed).',
  MTLS_CA_UNAUTHENTICATED: 'The endpoint needs a client certificate issued by this CA.',
  MTLS_CA_NOT_ADMIN: 'The client certificate is valid but its identity is not an admin.',
  MTLS_CA_REVOKED: 'The certificate presented is revoked and can never renew.',
  MTLS_CA_RENEW_EXPIRED: 'The certificate presented has expired and renewal after expiry is not allowed.',
  MTLS_CA_UNKNOWN_CERTIFICATE: 'No certificate with that serial was issued by this CA.',
  MTLS_CA_ALREADY_REVOKED: 'The certificate is already revoked.',
  MTLS_CA_BODY_TOO_LARGE: 'The request body exceeds the configured limit.',
  MTLS_CA_NOT_FOUND_ROUTE: 'No such API endpoint.',
  MTLS_CA_INTERNAL: 'The CA failed while handling the request; the cause is in its log under the request id.',
  MTLS_CA_UNREACHABLE: 'The CA service cannot be reached at the URL given.',
  MTLS_CA_TLS:
    'The TLS connection to the CA failed (untrusted CA certificate, wrong host name, or a client certificate required).',
  MTLS_CA_ROOT_MISMATCH:
    'The trust bundle fetched from the CA does not hold the root with the pinned fingerprint.',
  MTLS_CA_CORRUPT:
    'The CA directory is inconsistent (a key that does not match its certificate, a missing file).',
  MTLS_STORE_UNAVAILABLE:
    'The database cannot be reached or used right now (connection refused or lost, locked, disk full); the CA API answers 503.',
  MTLS_STORE_BAD_URL: 'The database URL is not sqlite:PATH, sqlite::memory:, postgres://… or postgresql://….',
  MTLS_STORE_MIGRATION: 'The database schema could not be created or upgraded.',
  MTLS_STORE_BAD_RECORD:
    'A record handed to the store is malformed (an invalid date, a serial that is not lowercase hex) or collides with an existing one.',
  MTLS_PROXY_UNAUTHENTICATED:
    'The proxy refused the request: the client sent no certificate or one the listener does not accept (the reason field says which).',
  MTLS_PROXY_FORBIDDEN:
    "The client's certificate is valid but no allow rule admits its identity, method and path.",
  MTLS_PROXY_BAD_REQUEST:
    'The request target cannot be authorized safely (not an origin-form path, or an encoded slash).',
  MTLS_PROXY_UPSTREAM: 'The upstream could not be reached or failed while answering; the proxy answered 502.',
  MTLS_PROXY_REVOCATION_UNAVAILABLE:
    'The listener fails closed and cannot establish revocation status now (feed stale, CRL expired); it answered 503.',
  MTLS_PROXY_UNSUPPORTED: 'The proxy configuration uses a feature this version does not run yet.',
  MTLS_PROXY_TLS_CONFIG: "A listener's certificate, key or client CA bundle cannot be loaded.",
  MTLS_PROXY_LISTEN: 'A proxy listener could not bind its address (in use, or not permitted).',
  MTLS_NODE_FILES:
    "The agent's files for an identity (..data, key.pem, fullchain.pem, ca.pem) are missing, unreadable or do not match.",
  MTLS_NODE_UNSAFE_OPTION:
    'An option given to createMtlsAgent or createMtlsDispatcher would weaken verification (turning rejectUnauthorized off, a custom connector).',
  MTLS_EXPORTER_LISTEN: 'The exporter could not bind its metrics address (in use, or not permitted).',
  MTLS_AGENT_NO_TOKEN:
    'An agent identity has no usable certificate and no enrollment token (token or tokenFile) to get one.',
  MTLS_AGENT_BAD_ANSWER:
    "The CA's answer does not fit the request (unreadable, or a certificate for another key); the agent wrote nothing.",
  MTLS_AGENT_FILES:
    'An agent identity directory does not hold a consistent key and certificate (no ..data version, missing file, or a key that does not match).',
  MTLS_AGENT_EXPIRED: "An agent identity's certificate has expired (or there is none yet).",
  MTLS_AGENT_HOOK: 'A reload hook failed (signal, command or URL); the new files are in place anyway.',
  MTLS_CA_STAGED_EXISTS:
    'A staged root already exists in the CA directory; activate it or remove staged/ first.',
  MTLS_CA_NO_STAGED_ROOT: 'There is no staged root in the CA directory to activate.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface MtlsErrorOptions {
  /** One concrete action that resolves the problem, with a command when there is one. */
  fix?: string;
  /** The underlying error, kept for logs; never shown as the message. */
  cause?: unknown;
  /** Structured facts for --json output and logs (never secrets). */
  details?: Record<string, unknown>;
}

export class MtlsError extends Error {
  override name = 'MtlsError';
  readonly code: ErrorCode;
  readonly fix: string | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: MtlsErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.fix = options.fix;
    this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      ...(this.fix ? { fix: this.fix } : {}),
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

export function isMtlsError(e: unknown, code?: ErrorCode): e is MtlsError {
  return e instanceof MtlsError && (code === undefined || e.code === code);
}
