// Issuance policy: the ca.yaml schema (zod, unknown keys are errors), identity strings and the glob
// patterns that provisioners, tokens and admin lists use to say who may get what.
import { z } from 'zod';
import { durationSchema, readYamlMapping } from '../config/index.js';
import { MtlsError } from '../errors/index.js';
import {
  commonName,
  formatName,
  anyIdentityMatches,
  identityMatches,
  PROFILE_NAMES,
  type Certificate,
  type DistinguishedName,
  type GeneralName,
  type ProfileName,
} from '../pki/index.js';

const duration = durationSchema;

const identityPattern = z
  .string()
  .regex(
    /^(dns|ip|uri|email|cn):.+|^spiffe:\/\/.+/,
    'an identity such as dns:*.svc.example.org, spiffe://example.org/ns/*/sa/*, cn:admin',
  );

const leafProfile = z
  .enum(PROFILE_NAMES)
  .refine((p) => !['root', 'intermediate', 'ocsp'].includes(p), 'a leaf profile');

export const ProvisionerSchema = z.strictObject({
  name: z.string().min(1),
  /** token: one-time enrollment tokens created by an admin; renew: renewal with the current certificate. */
  type: z.enum(['token', 'renew']),
  /** Identities this provisioner may issue for (exact or glob). */
  identities: z.array(identityPattern).min(1),
  profiles: z.array(leafProfile).min(1).default(['client', 'server', 'peer', 'spiffe']),
  keyTypes: z
    .array(z.enum(['EC P-256', 'EC P-384', 'RSA 2048', 'RSA 3072', 'RSA 4096', 'Ed25519']))
    .default(['EC P-256', 'EC P-384', 'RSA 2048', 'RSA 3072', 'RSA 4096', 'Ed25519']),
  defaultTtl: duration.default(24 * 3_600_000),
  maxTtl: duration.default(24 * 3_600_000),
});

export const CaConfigSchema = z.strictObject({
  /** HTTPS for enrollment and everything anonymous (tokens authenticate). */
  listen: z.string().default('127.0.0.1:8443'),
  /** HTTPS that requires a verified client certificate: renewal, revocation, admin. */
  mtlsListen: z.string().default('127.0.0.1:8444'),
  /** Plain HTTP for OCSP and CRL (signed objects; RFC 5019 clients use http). Off when absent. */
  httpListen: z.string().optional(),
  /** Database URL: sqlite:PATH (default DIR/ca.db) or postgres://… */
  db: z.string().optional(),
  /** Base URL put into issued certificates' AIA (OCSP) and CRL distribution points. Defaults to the HTTP listener. */
  publicUrl: z.string().url().optional(),
  /** Names on the CA's own HTTPS certificate (besides the listen host). */
  serverNames: z.array(z.string()).default([]),
  admins: z.array(identityPattern).default(['cn:mtls-admin']),
  provisioners: z.array(ProvisionerSchema).default([]),
  tokens: z
    .strictObject({ ttl: duration.default(5 * 60_000), maxTtl: duration.default(24 * 3_600_000) })
    .default({ ttl: 5 * 60_000, maxTtl: 24 * 3_600_000 }),
  /** Renewal of a certificate that expired less than this long ago; off (0) by default. */
  renewAfterExpiry: duration.or(z.literal(false)).default(false),
  crl: z
    .strictObject({ validity: duration.default(24 * 3_600_000), refreshBefore: duration.default(3_600_000) })
    .default({ validity: 24 * 3_600_000, refreshBefore: 3_600_000 }),
  ocsp: z.strictObject({ validity: duration.default(3_600_000) }).default({ validity: 3_600_000 }),
  /** Largest request body accepted (CSRs are ~1 KiB). */
  bodyLimit: z
    .number()
    .int()
    .positive()
    .default(64 * 1024),
});

export type CaConfig = z.output<typeof CaConfigSchema>;
export type Provisioner = z.output<typeof ProvisionerSchema>;
export type CaConfigInput = z.input<typeof CaConfigSchema>;

/** Parses and validates a config object; unknown keys and bad values are MTLS_CONFIG_INVALID. */
export function parseCaConfig(input: unknown, source = 'ca config'): CaConfig {
  const r = CaConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.join('.') || '(top level)';
    throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: ${where}: ${issue.message}.`, {
      fix: 'Correct that key (see docs/ca.md for every key); unknown keys are errors so typos do not pass silently.',
      details: { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  return Object.freeze(r.data);
}

/**
 * Reads ca.yaml (when given), applies overrides from flags and MTLS_* variables on top (flag > env >
 * file > default), and validates the result once.
 */
export function loadCaConfig(path: string | undefined, overrides: Record<string, unknown> = {}): CaConfig {
  const doc = path ? readYamlMapping(path, 'CA config', { doc: 'docs/ca.md' }) : {};
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return parseCaConfig({ ...doc, ...defined }, path ?? 'ca config');
}

// ------------------------------------------------------------------ identities

/** Every identity string a certificate (or a CSR's names) carries: SANs, then cn:CN. */
export function identitiesOf(subject: DistinguishedName, sans: readonly GeneralName[]): string[] {
  const out: string[] = [];
  for (const s of sans) {
    if (s.type === 'uri') out.push(s.value.startsWith('spiffe://') ? s.value : `uri:${s.value}`);
    else if (s.type === 'dns' || s.type === 'ip' || s.type === 'email')
      out.push(`${s.type}:${s.value.toLowerCase()}`);
  }
  const cn = commonName(subject);
  if (cn !== undefined) out.push(`cn:${cn}`);
  return out;
}

/** The one identity a certificate is known by: its SPIFFE ID, else its first DNS name, else its CN. */
export function primaryIdentity(subject: DistinguishedName, sans: readonly GeneralName[]): string {
  const ids = identitiesOf(subject, sans);
  return (
    ids.find((i) => i.startsWith('spiffe://')) ??
    ids.find((i) => i.startsWith('dns:')) ??
    ids.find((i) => i.startsWith('ip:')) ??
    ids[0] ??
    formatName(subject)
  );
}

export function certificateIdentities(cert: Certificate): string[] {
  return identitiesOf(cert.subject, cert.subjectAltNames);
}

/** Re-exported for the CA's callers; the one implementation lives in pki/identity.ts. */
export { identityMatches };

export const anyMatches = anyIdentityMatches;

export function provisionersFor(
  config: CaConfig,
  type: Provisioner['type'],
  profile: ProfileName,
): Provisioner[] {
  return config.provisioners.filter((p) => p.type === type && (p.profiles as string[]).includes(profile));
}
