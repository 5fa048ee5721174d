// Regenerates docs/errors.md from ERROR_CODES (src/errors/index.ts): `node --import tsx scripts/errors-doc.ts`.
// src/errors/errors.test.ts fails when the two drift apart.
import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../src/errors/index.js';

export function renderErrorsDoc(): string {
  const rows = Object.entries(ERROR_CODES).map(
    ([code, meaning]) => `| \`${code}\` | ${meaning.replace(/\|/g, '\\|')} |`,
  );
  return `# Error codes

Every failure mtlskit reports carries one stable code \`MTLS_<AREA>_<REASON>\`, a message that says what
was wrong and a \`fix\` line that says what to do. Codes are never renamed or reused. The CLI prints
\`error CODE: message\` and \`fix: …\` on stderr (or \`{"ok":false,"error":{code,message,fix}}\` with
\`--json\`) and exits 2 for usage errors (bad flags, names, durations, profiles, missing files or
passphrases) and 1 for everything else. HTTP APIs answer \`{ code, message, requestId }\`.

This table is generated from \`src/errors/index.ts\` (\`node --import tsx scripts/errors-doc.ts\`); a test
keeps the two in sync.

| code | meaning |
| --- | --- |
${rows.join('\n')}
`;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsDoc());
}
