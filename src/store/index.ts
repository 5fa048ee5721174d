// The CA's persistent state behind one Store interface: SQLite for one CA, PostgreSQL for replicas.
// openStore(url) picks the implementation from the URL and brings the schema up to date.
import { resolve } from 'node:path';
import { MtlsError } from '../errors/index.js';
import { redactUrl } from './common.js';
import { createPostgresStore, type PostgresStoreOptions } from './postgres.js';
import { createSqliteStore, type SqliteStoreOptions } from './sqlite.js';
import type { Store } from './types.js';

export type * from './types.js';
export {
  auditHash,
  canonicalAuditJson,
  canonicalJson,
  verifyAuditChain,
  type AuditChainProblem,
  type AuditChainVerdict,
} from './audit.js';
export { DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT } from './common.js';
export { createPostgresStore, type PostgresStoreOptions } from './postgres.js';
export { createSqliteStore, type SqliteStoreOptions } from './sqlite.js';

export interface OpenStoreOptions {
  sqlite?: SqliteStoreOptions;
  postgres?: PostgresStoreOptions;
}

const URL_FIX =
  'Use --db sqlite:PATH (relative to the working directory), sqlite::memory: or postgres://USER:PASSWORD@HOST:5432/DB.';

/** What openStore would open, without opening it. */
export function parseStoreUrl(
  url: string,
): { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string } {
  if (url.startsWith('sqlite:')) {
    const rest = url.slice('sqlite:'.length);
    if (rest === ':memory:') return { kind: 'sqlite', path: ':memory:' };
    if (rest === '' || rest.startsWith('//') || rest.includes('\0')) {
      throw new MtlsError('MTLS_STORE_BAD_URL', `"${url}" does not name a SQLite file.`, { fix: URL_FIX });
    }
    return { kind: 'sqlite', path: resolve(rest) };
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    let host = '';
    try {
      host = new URL(url).hostname;
    } catch {
      // reported below
    }
    if (!host) {
      throw new MtlsError('MTLS_STORE_BAD_URL', `"${redactUrl(url)}" is not a valid PostgreSQL URL.`, {
        fix: URL_FIX,
      });
    }
    return { kind: 'postgres', url };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new MtlsError(
    'MTLS_STORE_BAD_URL',
    scheme ? `Unknown database scheme "${scheme}:".` : `"${redactUrl(url)}" is not a database URL.`,
    { fix: URL_FIX },
  );
}

/** Opens the store named by `url` and runs its migrations; closes it again if they fail. */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const target = parseStoreUrl(url);
  const store =
    target.kind === 'sqlite'
      ? createSqliteStore(target.path, opts.sqlite)
      : createPostgresStore(target.url, opts.postgres);
  try {
    await store.migrate();
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
  return store;
}
