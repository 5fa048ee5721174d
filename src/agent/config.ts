// agent.yaml: the zod schema (unknown keys are errors) and the loader (paths relative to the file).
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { deepFreeze, durationSchema, readYamlMapping } from '../config/index.js';
import { MtlsError } from '../errors/index.js';
import { KEY_TYPES } from '../pki/index.js';

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'host:port');
const httpsUrl = z.string().regex(/^https:\/\/[^/]+\/?$/, 'the base URL, such as https://ca.internal:8443');

/** File mode as an octal string ("0640"). */
const modeSchema = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'an octal mode such as 0600 or 0640')
  .transform((s) => parseInt(s, 8));

const identityString = z
  .string()
  .regex(
    /^(dns|ip|uri|email):.+|^spiffe:\/\/.+/,
    'an identity such as dns:api.internal, ip:10.0.0.1, spiffe://example.org/ns/prod/sa/api',
  );

export const HookSchema = z.union([
  z.strictObject({
    /** Send a signal to the process whose pid is in pidFile (nginx, HAProxy, mtls proxy reload on HUP). */
    signal: z.enum(['HUP', 'USR1', 'USR2', 'TERM']),
    pidFile: z.string().min(1),
  }),
  z.strictObject({
    /** Run a program (argv, no shell); it must exit 0 within timeout. */
    command: z.array(z.string().min(1)).min(1),
    timeout: durationSchema.default(30_000),
  }),
  z.strictObject({
    /** POST to a URL (http or https); a 2xx answer within timeout is success. */
    url: z.string().url(),
    method: z.literal('POST').default('POST'),
    timeout: durationSchema.default(10_000),
  }),
]);

export const IdentitySchema = z
  .strictObject({
    /** Label in logs, metrics and status. */
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'),
    /** The identity directory (layout in docs/agent.md). */
    dir: z.string().min(1),
    /** Certificate profile to request; informational: the token decides it at the CA. */
    profile: z.enum(['client', 'server', 'peer', 'spiffe']).optional(),
    commonName: z.string().min(1).optional(),
    /** SANs put in the CSR (default: what the token grants). */
    sans: z.array(identityString).default([]),
    keyType: z.enum(KEY_TYPES).default('p256'),
    /** One-time enrollment token for the first certificate. */
    token: z.string().min(1).optional(),
    /** A file holding a token (re-read at every enrollment attempt, so a new one can be dropped in). */
    tokenFile: z.string().min(1).optional(),
    /** After expiry (or revocation), enroll again with tokenFile instead of retrying renewal. */
    reenroll: z.boolean().default(false),
    /** Requested lifetime (the CA caps it); renewals ask for the same. */
    ttl: durationSchema.optional(),
    /** Fraction of the lifetime after which to renew. */
    renewAt: z
      .number()
      .gt(0)
      .lt(1)
      .default(2 / 3),
    /** Up to this fraction of the lifetime is subtracted at random from the renewal time. */
    jitter: z.number().min(0).lt(1).default(0.05),
    owner: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
    group: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
    /** Mode of key.pem (default 0600; e.g. 0640 together with group). */
    mode: modeSchema.default(0o600),
    hooks: z.array(HookSchema).default([]),
  })
  .refine((i) => !(i.token && i.tokenFile), 'give token or tokenFile, not both')
  .refine((i) => !i.reenroll || i.tokenFile !== undefined, 'reenroll needs tokenFile');

export const AgentConfigSchema = z
  .strictObject({
    ca: z
      .strictObject({
        /** The CA's public listener (enrollment, roots). */
        url: httpsUrl,
        /** The CA's mTLS listener (renewal with the current certificate). */
        mtlsUrl: httpsUrl,
        /** Pin the CA root by SHA-256 fingerprint for the first contact (with rootsUrl). */
        rootFingerprint: z
          .string()
          .regex(/^(sha256:)?[0-9a-fA-F:]{64,95}$/, 'a SHA-256 fingerprint')
          .optional(),
        /** Where to fetch the roots for pinning (the CA's plain HTTP listener): http://ca:8080/v1/roots. */
        rootsUrl: z.string().url().optional(),
        /** Or: the CA's trust bundle as a file. */
        caFile: z.string().min(1).optional(),
      })
      .refine(
        (c) => (c.rootFingerprint !== undefined) !== (c.caFile !== undefined),
        'give rootFingerprint or caFile (one of them)',
      )
      .refine(
        (c) => c.rootFingerprint === undefined || c.rootsUrl !== undefined,
        'rootFingerprint needs rootsUrl',
      ),
    identities: z.array(IdentitySchema).min(1),
    trust: z
      .strictObject({
        refreshEvery: durationSchema.default(3_600_000),
        /** A root the CA stopped publishing stays in ca.pem this long (never past its notAfter). */
        retainUnpublished: durationSchema.default(7 * 86_400_000),
      })
      .default({ refreshEvery: 3_600_000, retainUnpublished: 7 * 86_400_000 }),
    retry: z
      .strictObject({ initial: durationSchema.default(1000), max: durationSchema.default(300_000) })
      .default({ initial: 1000, max: 300_000 }),
    metrics: z.strictObject({ listen: hostPort }).optional(),
  })
  .refine(
    (c) => new Set(c.identities.map((i) => i.name)).size === c.identities.length,
    'identity names must be unique',
  )
  .refine(
    (c) => new Set(c.identities.map((i) => resolve(i.dir))).size === c.identities.length,
    'identity dirs must differ',
  );

export type AgentConfig = z.output<typeof AgentConfigSchema>;
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;
export type IdentityConfig = AgentConfig['identities'][number];
export type HookConfig = IdentityConfig['hooks'][number];

/** Validates a config object; relative paths are resolved against baseDir. Frozen. */
export function parseAgentConfig(
  input: unknown,
  source = 'agent config',
  baseDir = process.cwd(),
): AgentConfig {
  const r = AgentConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = issue.path.join('.') || '(top level)';
    throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: ${where}: ${issue.message}.`, {
      fix: 'Correct that key (docs/agent.md lists every key); unknown keys are errors so typos do not pass silently.',
      details: { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const c = r.data;
  const out: AgentConfig = {
    ...c,
    ca: { ...c.ca, ...(c.ca.caFile ? { caFile: abs(c.ca.caFile) } : {}) },
    identities: c.identities.map((i) => ({
      ...i,
      dir: abs(i.dir),
      ...(i.tokenFile ? { tokenFile: abs(i.tokenFile) } : {}),
      hooks: i.hooks.map((h) => ('pidFile' in h ? { ...h, pidFile: abs(h.pidFile) } : h)),
    })),
  };
  return deepFreeze(out);
}

export function loadAgentConfig(path: string): AgentConfig {
  const doc = readYamlMapping(path, 'agent config', { keysHint: 'an identities key', doc: 'docs/agent.md' });
  return parseAgentConfig(doc, path, dirname(resolve(path)));
}
