// proxy.yaml: the zod schema (unknown keys are errors), the loader (paths relative to the file) and
// the checks a valid document must also pass before any listener starts.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { MtlsError } from '../errors/index.js';

const identityPattern = z
  .string()
  .regex(
    /^(dns|ip|uri|email|cn):.+|^spiffe:\/\/.+|^any$/,
    'an identity such as spiffe://example.org/ns/*/sa/*, dns:*.svc.example.org, cn:admin, or any',
  );

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'] as const;

export const AllowRuleSchema = z.strictObject({
  /** Identity glob: `*` within one DNS label or path segment, `**` anything; `any` = every authenticated peer. */
  identity: identityPattern,
  /** Path globs: `*` one segment, a trailing `/*` any suffix. Absent: every path. */
  paths: z.array(z.string().startsWith('/', 'a path starting with /')).min(1).optional(),
  methods: z
    .array(
      z
        .string()
        .transform((m) => m.toUpperCase())
        .pipe(z.enum(METHODS)),
    )
    .min(1)
    .optional(),
});

export const ListenerSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'),
  /** host:port; port 0 picks a free port (printed in the ready line). */
  listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'host:port'),
  mode: z.enum(['strict', 'permissive']).default('strict'),
  protocol: z.enum(['http', 'tcp']).default('http'),
  tls: z.strictObject({
    cert: z.string().min(1),
    key: z.string().min(1),
    clientCa: z.string().min(1),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  }),
  upstream: z.string().min(1),
  identity: z
    .strictObject({
      headers: z.enum(['xfcc', 'simple', 'none']).default('xfcc'),
      proxyProtocol: z.literal('v2').optional(),
    })
    .default({ headers: 'xfcc' }),
  revocation: z
    .strictObject({
      crl: z.string().optional(),
      feed: z.string().optional(),
      failMode: z.enum(['closed', 'open']).default('closed'),
    })
    .optional(),
  /** Adds a human `detail` to 401/403 bodies; for development. */
  explain: z.boolean().default(false),
  allow: z.array(AllowRuleSchema).optional(),
});

export const OutboundSchema = z.strictObject({
  listen: z.string(),
  upstream: z.string(),
  tls: z.strictObject({ cert: z.string(), key: z.string(), ca: z.string() }),
  expect: z.string().optional(),
});

export const ProxyConfigSchema = z.strictObject({
  listeners: z.array(ListenerSchema).min(1),
  outbound: z.array(OutboundSchema).optional(),
  admin: z
    .strictObject({ listen: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'host:port') })
    .optional(),
});

export type ProxyConfig = z.output<typeof ProxyConfigSchema>;
export type ListenerConfig = z.output<typeof ListenerSchema>;
export type AllowRule = z.output<typeof AllowRuleSchema>;

/** Validates a parsed document; paths in tls are resolved against `baseDir`. */
export function parseProxyConfig(
  input: unknown,
  source = 'proxy config',
  baseDir = process.cwd(),
): ProxyConfig {
  const r = ProxyConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const path = [...issue.path, ...(keys.length === 1 ? keys : [])].join('.') || '(top level)';
    throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: ${path}: ${issue.message}.`, {
      fix: 'Correct that key (see docs/proxy.md); unknown keys are errors so typos do not pass silently.',
      details: { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  const config = r.data;
  const names = new Set<string>();
  for (const [i, l] of config.listeners.entries()) {
    if (names.has(l.name))
      throw new MtlsError(
        'MTLS_CONFIG_INVALID',
        `${source}: listeners.${i}.name: "${l.name}" is used twice.`,
        {
          fix: 'Give every listener its own name (it is the metrics label).',
        },
      );
    names.add(l.name);
    if (l.mode === 'strict' && (l.allow === undefined || l.allow.length === 0))
      throw new MtlsError(
        'MTLS_CONFIG_INVALID',
        `${source}: listeners.${i}.allow: a strict listener needs allow rules (nothing is allowed by default).`,
        {
          fix: 'Add rules such as `allow: [{ identity: "spiffe://example.org/ns/prod/sa/*" }]`, or `{ identity: any }` to admit every authenticated peer.',
        },
      );
    l.tls.cert = resolve(baseDir, l.tls.cert);
    l.tls.key = resolve(baseDir, l.tls.key);
    l.tls.clientCa = resolve(baseDir, l.tls.clientCa);
    if (l.revocation?.crl) l.revocation.crl = resolve(baseDir, l.revocation.crl);
  }
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Reads proxy.yaml; relative file paths in it are relative to the file. */
export function loadProxyConfig(path: string): ProxyConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MtlsError('MTLS_FILE_NOT_FOUND', `Cannot read the proxy config ${path}.`, {
      cause: e,
      fix: 'Check the --config path.',
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new MtlsError('MTLS_CONFIG_INVALID', `${path} is not valid YAML: ${(e as Error).message}`, {
      cause: e,
      fix: 'Fix the YAML syntax (indentation, quotes).',
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new MtlsError('MTLS_CONFIG_INVALID', `${path} must hold a mapping with a listeners key.`, {
      fix: 'See docs/proxy.md for the keys.',
    });
  return parseProxyConfig(doc, path, dirname(resolve(path)));
}

/** Parts of the schema this version accepts but does not run yet: refused at start, never ignored. */
export function unsupportedFeatures(config: ProxyConfig): string[] {
  const out: string[] = [];
  if (config.outbound?.length) out.push('outbound');
  for (const [i, l] of config.listeners.entries()) {
    if (l.protocol === 'tcp') out.push(`listeners.${i}.protocol: tcp`);
    if (l.revocation) out.push(`listeners.${i}.revocation`);
    if (l.identity.proxyProtocol) out.push(`listeners.${i}.identity.proxyProtocol`);
    if (!/^http:\/\/[^/]+\/?$/.test(l.upstream)) out.push(`listeners.${i}.upstream (only http://host:port)`);
  }
  return out;
}
