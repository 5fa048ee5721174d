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
  MTLS_CA_CORRUPT:
    'The CA directory is inconsistent (a key that does not match its certificate, a missing file).',
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
