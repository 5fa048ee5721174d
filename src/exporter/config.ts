// exporter.yaml: the zod schema (unknown keys are errors), the loader (paths and globs relative to
// the file) and the same configuration built from command-line flags.
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { deepFreeze, durationSchema, readYamlMapping } from '../config/index.js';
import { MtlsError } from '../errors/index.js';

/** "host:port" or "[v6]:port"; port 0 allowed only where `allowZero`. */
export function parseHostPort(text: string, allowZero = false): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowZero)) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

const endpointAddress = z
  .string()
  .refine((s) => parseHostPort(s) !== undefined, 'an address such as api.example.org:443 or [::1]:8443');
const listenAddress = z
  .string()
  .refine(
    (s) => parseHostPort(s, true) !== undefined,
    'an address such as 127.0.0.1:9102 (port 0 picks one)',
  );

export const EndpointSchema = z
  .strictObject({
    /** host:port to probe. */
    address: endpointAddress,
    /** The endpoint label; default the address. */
    name: z.string().min(1).max(200).optional(),
    /** SNI and the name verified (default the host). */
    servername: z.string().min(1).optional(),
    /** Our client certificate (chain) and key, for endpoints that require mTLS. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** Trust bundle for verifying the endpoint (default the public roots bundled with Node). */
    ca: z.string().min(1).optional(),
  })
  .refine((e) => (e.cert === undefined) === (e.key === undefined), {
    message: 'cert and key go together (both or neither)',
    path: ['cert'],
  });

export const ExporterConfigSchema = z.strictObject({
  /** Where /metrics and /healthz are served. */
  listen: listenAddress.default('127.0.0.1:9102'),
  /** Probe interval. */
  interval: durationSchema.default(60_000),
  /** Timeout of one probe (TCP connect + TLS handshake). */
  timeout: durationSchema.default(5_000),
  /** Probes running at once. */
  concurrency: z.number().int().min(1).max(64).default(8),
  /** How often globs are expanded again and files re-read. */
  fileInterval: durationSchema.default(30_000),
  /** Certificate file globs (*, ?, [..], **). */
  files: z.array(z.string().min(1)).default([]),
  endpoints: z.array(EndpointSchema).default([]),
});

export type ExporterConfig = z.output<typeof ExporterConfigSchema>;
export type EndpointConfig = z.output<typeof EndpointSchema>;

/** Validates a parsed document; relative paths and globs are resolved against `baseDir`. */
export function parseExporterConfig(
  input: unknown,
  source = 'exporter config',
  baseDir = process.cwd(),
): ExporterConfig {
  const r = ExporterConfigSchema.safeParse(input ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const path = [...issue.path, ...(keys.length === 1 ? keys : [])].join('.') || '(top level)';
    throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: ${path}: ${issue.message}.`, {
      fix: 'Correct that key (see docs/exporter.md); unknown keys are errors so typos do not pass silently.',
      details: { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) },
    });
  }
  const c = r.data;
  if (c.files.length === 0 && c.endpoints.length === 0) {
    throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: nothing to watch: no files and no endpoints.`, {
      fix: 'Add files: ["/etc/mtls/*/cert.pem"] or endpoints: [{ address: "api.example.org:443" }].',
    });
  }
  const names = new Set<string>();
  for (const [i, e] of c.endpoints.entries()) {
    const label = e.name ?? e.address;
    if (names.has(label)) {
      throw new MtlsError('MTLS_CONFIG_INVALID', `${source}: endpoints.${i}: "${label}" is listed twice.`, {
        fix: 'Give each endpoint a distinct name (name: …) or remove the duplicate.',
      });
    }
    names.add(label);
  }
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  const out: ExporterConfig = {
    ...c,
    files: c.files.map(abs),
    endpoints: c.endpoints.map((e) => ({
      ...e,
      ...(e.cert ? { cert: abs(e.cert) } : {}),
      ...(e.key ? { key: abs(e.key) } : {}),
      ...(e.ca ? { ca: abs(e.ca) } : {}),
    })),
  };
  return deepFreeze(out);
}

/** Reads exporter.yaml; relative paths in it are relative to the file. */
export function loadExporterConfig(path: string): ExporterConfig {
  const doc = readYamlMapping(path, 'exporter config', {
    keysHint: 'files, endpoints, listen…',
    doc: 'docs/exporter.md',
  });
  return parseExporterConfig(doc, path, dirname(resolve(path)));
}
