// Regenerates the catalog pages from the code: `node --import tsx scripts/gen-docs.ts`.
// docs/errors.md ← ERROR_CODES, docs/reasons.md ← REASONS, docs/lint.md ← LINT_RULES.
// src/errors/errors.test.ts fails when a page and its table drift apart.
import { writeFileSync } from 'node:fs';
import { toJSONSchema } from 'zod';
import { AgentConfigSchema } from '../src/agent/config.js';
import { CaConfigSchema } from '../src/ca/policy.js';
import { ERROR_CODES } from '../src/errors/index.js';
import { ExporterConfigSchema } from '../src/exporter/config.js';
import { ProxyConfigSchema } from '../src/proxy/config.js';
import { LINT_RULES } from '../src/pki/lint.js';
import { REASONS } from '../src/pki/reasons.js';

const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function renderErrorsDoc(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, meaning]) => `| \`${code}\` | ${cell(meaning)} |`);
  return `# Error codes

Every failure mtlskit reports carries one stable code \`MTLS_<AREA>_<REASON>\`, a message that says what
was wrong and a \`fix\` line that says what to do. Codes are never renamed or reused. The CLI prints
\`error CODE: message\` and \`fix: …\` on stderr (or \`{"ok":false,"error":{code,message,fix}}\` with
\`--json\`) and exits 2 for usage errors (bad flags, names, durations, profiles, missing files or
passphrases) and 1 for everything else. HTTP APIs answer \`{ code, message, requestId }\`.

This table is generated from \`src/errors/index.ts\` (\`node --import tsx scripts/gen-docs.ts\`); a test
keeps the two in sync.

| code | meaning |
| --- | --- |
${rows.join('\n')}
`;
}

export function renderReasonsDoc(): string {
  const rows = Object.entries(REASONS).map(([code, meaning]) => `| \`${code}\` | ${cell(meaning)} |`);
  return `# Verification reasons

The one vocabulary for why a peer certificate is not accepted. \`mtls verify\` prints these; the proxy
uses them as the \`reason\` label of its metrics and in its logs; the doctor uses them as finding codes.
Entries are added, never renamed.

Generated from \`src/pki/reasons.ts\` (\`node --import tsx scripts/gen-docs.ts\`).

| reason | meaning |
| --- | --- |
${rows.join('\n')}
`;
}

export function renderLintDoc(): string {
  const rows = Object.entries(LINT_RULES).map(
    ([code, r]) => `| \`${code}\` | ${r.severity} | ${cell(r.summary)} |`,
  );
  return `# Lint rules

\`mtls inspect\` (and later the doctor) lints each certificate for its role (detected, or \`--role\`).
Codes are stable; \`error\` findings make \`mtls inspect\` exit 1. Certificates issued by mtlskit's
profiles lint clean.

Generated from \`src/pki/lint.ts\` (\`node --import tsx scripts/gen-docs.ts\`).

| code | severity | what it means |
| --- | --- | --- |
${rows.join('\n')}
`;
}

/** JSON Schema of ca.yaml, for editors and CI validation of config files. */
export function renderCaConfigSchema(): string {
  const schema = toJSONSchema(CaConfigSchema, { io: 'input', unrepresentable: 'any' });
  return JSON.stringify({ ...schema, title: 'mtlskit CA configuration (ca.yaml)' }, null, 2) + '\n';
}

/** JSON Schema of proxy.yaml. */
export function renderProxyConfigSchema(): string {
  const schema = toJSONSchema(ProxyConfigSchema, { io: 'input', unrepresentable: 'any' });
  return JSON.stringify({ ...schema, title: 'mtlskit proxy configuration (proxy.yaml)' }, null, 2) + '\n';
}

/** JSON Schema of agent.yaml. */
export function renderAgentConfigSchema(): string {
  const schema = toJSONSchema(AgentConfigSchema, { io: 'input', unrepresentable: 'any' });
  return JSON.stringify({ ...schema, title: 'mtlskit agent configuration (agent.yaml)' }, null, 2) + '\n';
}

/** JSON Schema of exporter.yaml. */
export function renderExporterConfigSchema(): string {
  const schema = toJSONSchema(ExporterConfigSchema, { io: 'input', unrepresentable: 'any' });
  return (
    JSON.stringify({ ...schema, title: 'mtlskit exporter configuration (exporter.yaml)' }, null, 2) + '\n'
  );
}

export const GENERATED_DOCS: Record<string, () => string> = {
  'schemas/agent-config.schema.json': renderAgentConfigSchema,
  'schemas/ca-config.schema.json': renderCaConfigSchema,
  'schemas/exporter-config.schema.json': renderExporterConfigSchema,
  'schemas/proxy-config.schema.json': renderProxyConfigSchema,
  'docs/errors.md': renderErrorsDoc,
  'docs/reasons.md': renderReasonsDoc,
  'docs/lint.md': renderLintDoc,
};

if (process.argv[1]?.endsWith('gen-docs.ts')) {
  for (const [path, render] of Object.entries(GENERATED_DOCS))
    writeFileSync(new URL(`../${path}`, import.meta.url), render());
}
