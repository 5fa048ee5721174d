// Reads a CA store's tables directly (SQLite file or PostgreSQL URL), bypassing the CA, to check
// invariants the API does not expose: which token was consumed by which certificate.
import Database from 'better-sqlite3';
import pg from 'pg';

export interface TokenRow {
  id: string;
  used: boolean;
  usedBySerial: string | null;
}

export interface StoreSnapshot {
  tokens: Map<string, TokenRow>;
  serials: Set<string>;
}

/** `sqlite:PATH` or `postgres://…`: every token's use and every certificate serial. */
export async function peekStore(url: string): Promise<StoreSnapshot> {
  const tokens = new Map<string, TokenRow>();
  const serials = new Set<string>();
  if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice('sqlite:'.length), { readonly: true, fileMustExist: true });
    try {
      for (const r of db.prepare('SELECT id, used_at, used_by_serial FROM tokens').all() as {
        id: string;
        used_at: number | null;
        used_by_serial: string | null;
      }[])
        tokens.set(r.id, { id: r.id, used: r.used_at !== null, usedBySerial: r.used_by_serial });
      for (const r of db.prepare('SELECT serial FROM certificates').all() as { serial: string }[])
        serials.add(r.serial);
    } finally {
      db.close();
    }
    return { tokens, serials };
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const t = await client.query<{ id: string; used: boolean; used_by_serial: string | null }>(
      'SELECT id, used_at IS NOT NULL AS used, used_by_serial FROM tokens',
    );
    for (const r of t.rows) tokens.set(r.id, { id: r.id, used: r.used, usedBySerial: r.used_by_serial });
    const c = await client.query<{ serial: string }>('SELECT serial FROM certificates');
    for (const r of c.rows) serials.add(r.serial);
  } finally {
    await client.end();
  }
  return { tokens, serials };
}
