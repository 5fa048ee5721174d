// proxy.yaml: the zod schema (unknown keys are errors), the loader (paths relative to the file) and
// the checks a valid document must also pass before any listener starts.
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { deepFreeze, durationSchema, readYamlMapping } from '../config/index.js';
import { MtlsError } from '../errors/index.js';
import { OutboundSchema, outboundName, resolveOutboundPaths } from './outbound.js';

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

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/, 'host:port');

export const LimitsSchema = z.strictObject({
  /** A TLS handshake must finish within this (slow or stalled clients are dropped). */
  handshakeTimeout: durationSchema.default(10_000),
  /** HTTP/1.1: the request headers must arrive within this after the connection or the last response. */
  headersTimeout: durationSchema.default(30_000),
  /** A connection (or HTTP/2 session) with no traffic for this long is closed. */
  idleTimeout: durationSchema.default(120_000),
  /** Connections beyond this are refused at accept. */
  maxConnections: z.number().int().positive().default(20_000),
  /** Bytes of request headers (HTTP/1.1 head; HTTP/2 header list). */
  maxHeaderSize: z.number().int().min(1024).max(1_048_576).default(16_384),
});

export const RevocationSchema = z
  .strictObject({
    /** CRL files (PEM or DER), re-read when they change; each must be signed by a CA of the chain. */
    crl: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .optional()
      .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v])),
    /** The mtlskit CA's base URL: its /v1/revocations stream pushes revocations as they happen. */
    feed: z
      .string()
      .regex(/^https?:\/\/[^/]+\/?$/, 'the CA base URL, such as https://ca.internal:8443')
      .optional(),
    /** Trust anchors for the feed's HTTPS (default: the listener's clientCa). */
    feedCa: z.string().min(1).optional(),
    /** The feed is stale after this long without a message; a CRL when past its nextUpdate. */
    staleAfter: durationSchema.default(30_000),
    /** closed: refuse (503) while revocation status is stale; open: admit and count it. */
    failMode: z.enum(['closed', 'open']).default('closed'),
  })
  .refine((r) => r.crl.length > 0 || r.feed !== undefined, 'revocation needs crl, feed, or both');

export const ListenerSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . -'),
  /** host:port; port 0 picks a free port (printed in the ready line). */
  listen: hostPort,
  mode: z.enum(['strict', 'permissive']).default('strict'),
  protocol: z.enum(['http', 'tcp']).default('http'),
  tls: z.strictObject({
    cert: z.string().min(1),
    key: z.string().min(1),
    clientCa: z.string().min(1),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  }),
  /** http: http://host:port, h2c://host:port (HTTP/2 cleartext, for gRPC) or unix:/path; tcp: tcp://host:port. */
  upstream: z.string().min(1),
  identity: z
    .strictObject({
      headers: z.enum(['xfcc', 'simple', 'none']).default('xfcc'),
      proxyProtocol: z.enum(['v2', 'none']).optional(),
    })
    .default({ headers: 'xfcc' }),
  revocation: RevocationSchema.optional(),
  /** Adds a human `detail` to 401/403 bodies; for development. */
  explain: z.boolean().default(false),
  allow: z.union([z.literal('any'), z.array(AllowRuleSchema)]).optional(),
  limits: LimitsSchema.default(LimitsSchema.parse({})),
});

export const SessionsSchema = z.strictObject({
  /**
   * A secret (at least 32 random bytes, mode 0600) shared by the replicas: ticket keys are derived
   * from it per period, so replicas resume each other's sessions. Absent: a per-process secret.
   */
  ticketKeyFile: z.string().min(1).optional(),
  /** Ticket keys change every period; a ticket older than one period is not resumed. */
  rotateEvery: durationSchema.default(3_600_000),
});

export const ProxyConfigSchema = z.strictObject({
  listeners: z.array(ListenerSchema).min(1),
  outbound: z.array(OutboundSchema).optional(),
  sessions: SessionsSchema.default(SessionsSchema.parse({})),
  admin: z.strictObject({ listen: hostPort }).optional(),
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
    const issue = deepestIssue(r.error.issues[0]!);
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
    const at = `${source}: listeners.${i}`;
    if (l.mode === 'strict' && (l.allow === undefined || l.allow.length === 0))
      throw new MtlsError(
        'MTLS_CONFIG_INVALID',
        `${at}.allow: a strict listener needs allow rules (nothing is allowed by default).`,
        {
          fix: 'Add rules such as `allow: [{ identity: "spiffe://example.org/ns/prod/sa/*" }]`, or `allow: any` to admit every authenticated peer.',
        },
      );
    try {
      parseUpstream(l);
    } catch (e) {
      throw new MtlsError('MTLS_CONFIG_INVALID', `${at}.upstream: ${(e as Error).message}`, {
        fix:
          l.protocol === 'tcp'
            ? 'Write tcp://host:port for a tcp listener.'
            : 'Write http://host:port, h2c://host:port (HTTP/2 cleartext, gRPC) or unix:/path/to.sock.',
      });
    }
    if (l.protocol === 'tcp') {
      const r = Array.isArray(l.allow) ? l.allow.findIndex((a) => a.paths || a.methods) : -1;
      if (r >= 0)
        throw new MtlsError(
          'MTLS_CONFIG_INVALID',
          `${at}.allow.${r}: a tcp listener has no paths or methods; its rules match identities only.`,
          { fix: 'Remove paths and methods from the rules of tcp listeners.' },
        );
    } else if (l.identity.proxyProtocol === 'v2') {
      throw new MtlsError(
        'MTLS_CONFIG_INVALID',
        `${at}.identity.proxyProtocol: the PROXY protocol is for tcp listeners; HTTP listeners pass identity in headers.`,
        { fix: 'Use identity.headers (xfcc or simple) on http listeners, or set protocol: tcp.' },
      );
    }
    l.tls.cert = resolve(baseDir, l.tls.cert);
    l.tls.key = resolve(baseDir, l.tls.key);
    l.tls.clientCa = resolve(baseDir, l.tls.clientCa);
    if (l.revocation) {
      l.revocation.crl = l.revocation.crl.map((c) => resolve(baseDir, c));
      if (l.revocation.feedCa) l.revocation.feedCa = resolve(baseDir, l.revocation.feedCa);
    }
  }
  const outNames = new Set<string>();
  for (const [i, o] of (config.outbound ?? []).entries()) {
    const name = outboundName(o);
    if (outNames.has(name) || names.has(name))
      throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: outbound.${i}.name: "${name}" is used twice.`, {
        fix: 'Give every outbound entry its own name (it is the metrics label).',
      });
    outNames.add(name);
    config.outbound![i] = resolveOutboundPaths(o, baseDir);
  }
  if (config.sessions.ticketKeyFile)
    config.sessions.ticketKeyFile = resolve(baseDir, config.sessions.ticketKeyFile);
  return deepFreeze(config);
}

type Issue = z.core.$ZodIssue;

/** For a union (`allow: any | [rules]`), the branch issue with the longest path says what is wrong. */
function deepestIssue(issue: Issue): Issue {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return issue;
  let best: Issue = issue;
  for (const branch of issue.errors)
    for (const sub of branch) {
      const full = deepestIssue({ ...sub, path: [...issue.path, ...sub.path] });
      if (full.path.length > best.path.length) best = full;
    }
  return best;
}

/** Reads proxy.yaml; relative file paths in it are relative to the file. */
export function loadProxyConfig(path: string): ProxyConfig {
  const doc = readYamlMapping(path, 'proxy config', { keysHint: 'a listeners key', doc: 'docs/proxy.md' });
  return parseProxyConfig(doc, path, dirname(resolve(path)));
}

export type Upstream =
  | { kind: 'http' | 'h2c'; origin: string }
  | { kind: 'unix'; socketPath: string }
  | { kind: 'tcp'; host: string; port: number };

/** The listener's upstream, by kind; throws a plain Error naming what is wrong. */
export function parseUpstream(l: Pick<ListenerConfig, 'protocol' | 'upstream'>): Upstream {
  const u = l.upstream;
  if (l.protocol === 'tcp') {
    const m = /^(?:tcp:\/\/)?(\[[0-9a-fA-F:]+\]|[^:/\s]+):(\d{1,5})$/.exec(u);
    if (!m || Number(m[2]) > 65535) throw new Error(`"${u}" is not tcp://host:port.`);
    return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  }
  if (u.startsWith('unix:')) {
    const path = u.slice(5);
    if (!path.startsWith('/')) throw new Error(`"${u}" needs an absolute socket path (unix:/run/app.sock).`);
    return { kind: 'unix', socketPath: path };
  }
  const m = /^(http|h2c):\/\/(\[[0-9a-fA-F:]+\]|[^:/\s]+)(?::(\d{1,5}))?\/?$/.exec(u);
  if (!m) throw new Error(`"${u}" is not http://host:port, h2c://host:port or unix:/path (no path part).`);
  const port = m[3] ?? '80';
  if (Number(port) > 65535) throw new Error(`"${u}" has a port above 65535.`);
  return { kind: m[1] as 'http' | 'h2c', origin: `http://${m[2]}:${port}` };
}
