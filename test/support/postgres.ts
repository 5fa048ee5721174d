// A throw-away PostgreSQL server for tests: initdb into a temp dir, run on 127.0.0.1 on a free port
// with fsync off, one database per test (file), stopped in afterAll or when the process exits.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { chown, mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { LOOPBACK, freePort } from './ports.js';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` (trust authentication). */
  url: string;
  port: number;
  /** Stops the server and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
  /** Creates a fresh database and answers its URL. Names: lowercase letters, digits, underscores. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server but keeps its data (to test a database outage); `resume()` starts it again on the same port. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Server log so far (for failure messages). */
  log(): string;
}

const INSTALL_HINT =
  'PostgreSQL server binaries (initdb, postgres) were not found in /usr/lib/postgresql/*/bin, $MTLS_PG_BINDIR or PATH. ' +
  'The store tests run against a real PostgreSQL: install it with `sudo bash scripts/ensure-peers.sh` ' +
  '(Debian/Ubuntu: `sudo apt-get install postgresql`) and run the tests again.';

/** The directory holding initdb and postgres: $MTLS_PG_BINDIR, the newest /usr/lib/postgresql/<ver>/bin, or PATH. */
export function findPostgresBin(): string {
  const has = (dir: string): boolean => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'));
  const env = process.env['MTLS_PG_BINDIR'];
  if (env && has(env)) return env;
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v) && has(join(root, v, 'bin')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], 'bin');
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) if (dir && has(dir)) return dir;
  throw new Error(INSTALL_HINT);
}

/** uid/gid to run as: PostgreSQL refuses to run as root, so root runs it as the `postgres` user. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (!uid || !gid) {
    throw new Error(
      'Running as root, but there is no `postgres` user to run PostgreSQL as (the Debian package creates it). ' +
        INSTALL_HINT,
    );
  }
  return { uid: Number(uid), gid: Number(gid) };
}

async function chownTree(dir: string, user: { uid: number; gid: number }): Promise<void> {
  await chown(dir, user.uid, user.gid);
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    await chown(join(e.parentPath, e.name), user.uid, user.gid);
  }
}

const running = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dir] of running) {
    child.kill('SIGQUIT'); // immediate shutdown
    rmSync(dir, { recursive: true, force: true });
  }
});

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = findPostgresBin();
  const user = runAs();
  // As root the server runs as `postgres`, which must be able to reach the directory: /tmp is
  // world-traversable, a TMPDIR under /root is not. Short paths also keep the socket path legal.
  const dir = await mkdtemp(join(user && existsSync('/tmp') ? '/tmp' : tmpdir(), 'mtlskit-pg-'));
  const data = join(dir, 'data');
  if (user) chownSync(dir, user.uid, user.gid);
  const spawnOpts = user ? { uid: user.uid, gid: user.gid } : {};
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C', TZ: 'UTC' };

  const init = spawnSync(
    join(bin, 'initdb'),
    [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=trust',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
      '--no-instructions',
    ],
    { ...spawnOpts, cwd: dir, env, encoding: 'utf8' },
  );
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      `initdb failed (${init.error?.message ?? `exit ${init.status}`}):\n${init.stdout}${init.stderr}`,
    );
  }
  if (user) await chownTree(dir, user);

  let child: ChildProcess | undefined;
  let log = '';
  let port = 0;
  const urlFor = (db: string): string => `postgres://postgres@${LOOPBACK}:${port}/${db}`;

  const launch = async (): Promise<boolean> => {
    const c = spawn(
      join(bin, 'postgres'),
      [
        '-D',
        data,
        '-h',
        LOOPBACK,
        '-p',
        String(port),
        '-k',
        dir,
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=200',
        '-c',
        'shared_buffers=32MB',
        '-c',
        'logging_collector=off',
      ],
      { ...spawnOpts, cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = c;
    running.set(c, dir);
    c.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    let spawnError: Error | undefined;
    c.on('error', (e) => (spawnError = e));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (spawnError) throw new Error(`could not start ${join(bin, 'postgres')}: ${spawnError.message}`);
      if (exited(c)) break;
      if (await canConnect(urlFor('postgres'))) return true;
      await sleep(50);
    }
    await kill(c);
    return false;
  };

  const kill = async (c: ChildProcess): Promise<void> => {
    running.delete(c);
    if (exited(c)) return;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGINT'); // fast shutdown: abort sessions, checkpoint, exit
    const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(timer);
  };

  let started = false;
  for (let attempt = 1; attempt <= 5 && !started; attempt++) {
    port = await freePort();
    started = await launch();
    if (!started && !/could not bind|address already in use/i.test(log)) break;
  }
  if (!started) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start on ${LOOPBACK}:${port}:\n${log}`);
  }

  let stopped = false;
  return {
    url: urlFor('postgres'),
    port,
    log: () => log,
    async createDatabase(name: string): Promise<string> {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad database name ${JSON.stringify(name)}`);
      const client = new pg.Client({ connectionString: urlFor('postgres') });
      client.on('error', () => undefined);
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return urlFor(name);
    },
    async pause(): Promise<void> {
      if (child) await kill(child);
    },
    async resume(): Promise<void> {
      if (child && !exited(child)) return;
      for (let attempt = 1; attempt <= 3; attempt++) {
        if (await launch()) return;
        await sleep(200 * attempt);
      }
      throw new Error(`PostgreSQL did not restart on ${LOOPBACK}:${port}:\n${log}`);
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      if (child) await kill(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
