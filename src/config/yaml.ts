// Reading a command's YAML config file: one place for the three ways it can be wrong before the
// schema sees it (unreadable, not YAML, not a mapping), and for freezing what the schema returns.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { MtlsError } from '../errors/index.js';

/**
 * The mapping in a YAML file. `what` names the file in messages ("proxy config"), `keysHint` what a
 * mapping should hold ("a listeners key"), `doc` where the keys are documented ("docs/proxy.md").
 * An empty file is an empty mapping.
 */
export function readYamlMapping(
  path: string,
  what: string,
  opts: { keysHint?: string; doc: string },
): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MtlsError('MTLS_FILE_NOT_FOUND', `Cannot read the ${what} ${path}.`, {
      cause: e,
      fix: 'Check the --config path.',
    });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text) ?? {};
  } catch (e) {
    throw new MtlsError('MTLS_CONFIG_INVALID', `${path} is not valid YAML: ${(e as Error).message}`, {
      cause: e,
      fix: 'Fix the YAML syntax (indentation, quotes).',
    });
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new MtlsError(
      'MTLS_CONFIG_INVALID',
      `${path} must hold a mapping${opts.keysHint ? ` with ${opts.keysHint}` : ' of keys'}.`,
      { fix: `See ${opts.doc} for the keys.` },
    );
  return doc as Record<string, unknown>;
}

/** Freezes a validated config and everything in it: it is read once at start and never changes. */
export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
