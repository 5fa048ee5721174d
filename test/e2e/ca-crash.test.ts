// `kill -9` of `mtls ca serve` while clients enroll, five rounds on SQLite and on PostgreSQL: every
// certificate a client received is in the inventory and has its issuance audit record (the CA stores
// before it answers), its token is consumed by exactly that certificate, nothing is half-written,
// and the audit chain verifies across all the crashes.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/store/index.js';
import {
  createToken,
  csrFor,
  leafOf,
  listInventory,
  mapLimit,
  readAudit,
  sign,
  type AdminAccess,
  type Token,
} from '../support/ca-load.js';
import { adminCredential, startCaService, type CaService } from '../support/ca-service.js';
import { peekStore } from '../support/ca-store-peek.js';
import { assertBuilt } from '../support/cli.js';
import { initCa } from '../support/pki.js';
import { startPostgres, type PostgresServer } from '../support/postgres.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

const ROUNDS = 5;
/** Tokens per round: more than the CA can enroll before the latest kill (300 ms). */
const PER_ROUND = 200;
const CONCURRENCY = 8;

let pg: PostgresServer | undefined;

afterAll(async () => {
  await pg?.stop();
});

describe.each(['sqlite', 'postgres'] as const)(
  'kill -9 of mtls ca serve while clients enroll (%s)',
  (backend) => {
    let root: string;
    let caDir: string;
    let bundle: string;
    let dbUrl: string;
    let ca: CaService | undefined;

    beforeAll(async () => {
      assertBuilt();
      root = await makeTempDir(`mtls-e2e-crash-${backend}-`);
      const paths = await initCa(root, 'ca');
      caDir = paths.dir;
      bundle = paths.bundle;
      if (backend === 'postgres') {
        pg ??= await startPostgres();
        dbUrl = await pg.createDatabase('ca_crash');
      } else dbUrl = `sqlite:${join(caDir, 'ca.db')}`;
    }, 60_000);

    afterAll(async () => {
      await ca?.stop();
      await removeTempDir(root);
    });

    const start = (): Promise<CaService> => startCaService(caDir, ['--db', dbUrl]);
    const access = (s: CaService): AdminAccess => ({
      mtlsUrl: s.mtlsUrl,
      bundle,
      admin: adminCredential(caDir),
    });

    it(`keeps every certificate a client received across ${ROUNDS} kills at random moments`, async () => {
      const received: { serial: string; token: Token; round: number }[] = [];
      const rounds: string[] = [];
      ca = await start();
      for (let round = 0; round < ROUNDS; round++) {
        const running = ca;
        const admin = access(running);
        const tokens = await mapLimit(
          Array.from({ length: PER_ROUND }, (_, i) => i),
          CONCURRENCY,
          (i) => createToken(admin, { profile: 'client', sans: [`dns:r${round}-c${i}.crash.test`] }),
        );
        const csrs = tokens.map((_, i) => csrFor([`dns:r${round}-c${i}.crash.test`]));

        const killAfterMs = 10 + Math.floor(Math.random() * 291);
        const exited = new Promise<NodeJS.Signals | null>((done) =>
          running.proc.once('exit', (_code, signal) => done(signal)),
        );
        const loadStarted = performance.now();
        const killer = setTimeout(() => running.proc.kill('SIGKILL'), killAfterMs);
        const outcomes = await mapLimit(tokens, CONCURRENCY, async (t, i) => {
          try {
            const r = await sign(running.publicUrl, bundle, t.token, csrs[i]!);
            return r.status === 200
              ? { ok: true as const, body: r.json() }
              : { ok: false as const, status: r.status };
          } catch (e) {
            return { ok: false as const, error: (e as Error).message };
          }
        });
        clearTimeout(killer);
        const signal = await exited;
        const loadMs = performance.now() - loadStarted;

        // The kill landed in the middle of the load: some enrollments failed with a connection error.
        expect(signal).toBe('SIGKILL');
        const errors = outcomes.filter((o) => !o.ok && 'error' in o);
        expect(errors.length).toBeGreaterThan(0);
        // Before the kill, every answer was a certificate (no token was refused).
        expect(outcomes.filter((o) => !o.ok && 'status' in o)).toEqual([]);
        outcomes.forEach((o, i) => {
          if (!o.ok) return;
          const body = o.body as Record<string, string>;
          expect(leafOf(body.certificate!).serial).toBe(body.serial);
          received.push({ serial: body.serial!, token: tokens[i]!, round });
        });
        rounds.push(
          `round ${round}: kill at ${killAfterMs} ms, ${outcomes.filter((o) => o.ok).length} received, ${errors.length} cut off, load ended after ${loadMs.toFixed(0)} ms`,
        );

        // Restart on the same store and check what the clients of this round (and all before) got.
        ca = await start();
        const inv = new Set((await listInventory(access(ca))).map((c) => c.serial));
        const missing = received.filter((r) => !inv.has(r.serial));
        expect(missing, rounds.join('\n')).toEqual([]);
      }

      const admin = access(ca);
      const inventory = await listInventory(admin);
      const audit = await readAudit(admin);
      const verdict = verifyAuditChain(audit);
      expect(verdict, rounds.join('\n')).toMatchObject({ ok: true, lastSeq: audit.length });

      // Every received certificate has its issuance record, made for the token that enrolled it.
      const issueRecords = audit.filter((r) => r.action === 'certificate.issue' && r.outcome === 'ok');
      const bySerial = new Map(issueRecords.map((r) => [r.data.serial as string, r]));
      expect(bySerial.size).toBe(issueRecords.length);
      for (const r of received) expect(bySerial.get(r.serial)?.actor).toBe(`token:${r.token.id}`);

      // Nothing half-written: the inventory and the issuance records name the same certificates,
      // each consumed token points at a stored certificate, and each certificate consumed one token.
      const invSerials = new Set(inventory.map((c) => c.serial));
      expect(invSerials.size).toBe(inventory.length);
      expect([...bySerial.keys()].sort()).toEqual([...invSerials].sort());
      const store = await peekStore(dbUrl);
      expect([...store.serials].sort()).toEqual([...invSerials].sort());
      const consumed = [...store.tokens.values()].filter((t) => t.used);
      expect(consumed.every((t) => t.usedBySerial !== null && invSerials.has(t.usedBySerial))).toBe(true);
      expect(new Set(consumed.map((t) => t.usedBySerial)).size).toBe(consumed.length);
      expect(consumed.length).toBe(inventory.length);
      for (const [serial, rec] of bySerial) {
        const id = rec.actor.replace(/^token:/, '');
        expect(store.tokens.get(id)).toMatchObject({ used: true, usedBySerial: serial });
      }
      // A client that received a certificate for token T: T is consumed by that certificate in the store.
      for (const r of received) {
        expect(store.tokens.get(r.token.id)).toMatchObject({ used: true, usedBySerial: r.serial });
      }
      // … and the CA refuses T from now on.
      const last = received.at(-1);
      expect(last).toBeDefined();
      const again = await sign(ca.publicUrl, bundle, last!.token.token, csrFor([`dns:again.crash.test`]));
      expect(again.status).toBe(409);
      expect(again.json().code).toBe('MTLS_CA_TOKEN_USED');

      expect(received.length).toBeGreaterThan(0);
      console.info(`kill -9 on ${backend}:\n  ${rounds.join('\n  ')}`);
    }, 60_000);
  },
);
