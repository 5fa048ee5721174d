// The servers the CA benchmarks load, each started on the server core: mtlskit's `mtls ca serve` (the
// built CLI), `cfssl serve` and `cfssl ocspserve` (Debian golang-cfssl), and the `openssl ocsp`
// responder. The cfssl and openssl contenders share one P-256 CA made here with mtlskit's PKI core.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import Database from 'better-sqlite3';
import { existsSync, readFileSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createIssuer,
  decodePem,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  selfSign,
  spkiOf,
  type Certificate,
} from '../src/pki/index.js';

export const SERVER_CORE = 0;
export const CLIENT_CORE = 1;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The built CLI; MTLSKIT_BENCH_CA_BIN points elsewhere (e.g. a build of another tree, for before/after). */
export const MTLS_BIN = process.env.MTLSKIT_BENCH_CA_BIN ?? join(REPO, 'dist/bin/mtls.js');
const PASSPHRASE = 'mtlskit bench passphrase (throw-away CA)';

export interface Rss {
  /** Peak resident set (VmHWM), KiB. */
  peakKb: number;
  /** Current resident set (VmRSS), KiB. */
  nowKb: number;
}

export interface Server {
  name: string;
  pid: number;
  url: string;
  rss(): Rss | undefined;
  logs(): string;
  stop(): Promise<void>;
}

/** Reads VmHWM and VmRSS of a process (Linux). */
export function readRss(pid: number): Rss | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]);
    const r = { peakKb: kb('VmHWM'), nowKb: kb('VmRSS') };
    return Number.isFinite(r.peakKb) && Number.isFinite(r.nowKb) ? r : undefined;
  } catch {
    return undefined;
  }
}

let pinningChecked: boolean | undefined;
/** True when `taskset` works and there are two cores to split between server and client. */
export function canPin(): boolean {
  pinningChecked ??=
    process.platform === 'linux' &&
    spawnSync('taskset', ['-c', `${SERVER_CORE},${CLIENT_CORE}`, 'true']).status === 0;
  return pinningChecked;
}

/** Moves every thread of this process to the client core. */
export function pinSelfToClientCore(): boolean {
  if (!canPin()) return false;
  return spawnSync('taskset', ['-a', '-p', '-c', String(CLIENT_CORE), String(process.pid)]).status === 0;
}

export function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolvePort(port));
    });
  });
}

/** Starts a server process on the server core (`taskset -c 0`, which execs: the pid is the server's). */
function startPinned(cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  const [file, argv] = canPin() ? ['taskset', ['-c', String(SERVER_CORE), cmd, ...args]] : [cmd, args];
  return spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) });
}

function serverOf(name: string, proc: ChildProcess, url: string, out: { text: string }): Server {
  const exited = new Promise<void>((done) => proc.once('exit', () => done()));
  return {
    name,
    pid: proc.pid!,
    url,
    rss: () => readRss(proc.pid!),
    logs: () => out.text,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

function collect(proc: ChildProcess): { text: string } {
  const out = { text: '' };
  const add = (d: Buffer): void => {
    if (out.text.length < 64_000) out.text += d.toString();
  };
  proc.stdout?.on('data', add);
  proc.stderr?.on('data', add);
  return out;
}

/** Polls `probe` until it resolves true; a probe that throws counts as not ready. */
async function waitReady(
  name: string,
  proc: ChildProcess,
  out: { text: string },
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = performance.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}: ${out.text.trim()}`);
    try {
      if (await probe()) return;
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`${name} was not ready after 15 s: ${out.text.trim().slice(0, 300)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------- mtlskit

export interface MtlskitCa extends Server {
  publicUrl: string;
  mtlsUrl: string;
  httpUrl: string;
  rootPem: string;
  intermediate: Certificate;
  admin: { cert: string; key: string };
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, newestMtime(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts'))
      newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** Undefined when dist/ is current; otherwise a warning line. */
export function distWarning(): string | undefined {
  if (!existsSync(MTLS_BIN) || process.env.MTLSKIT_BENCH_CA_BIN) return undefined;
  const built = statSync(MTLS_BIN).mtimeMs;
  return newestMtime(join(REPO, 'src')) > built
    ? 'dist/ is older than src/: the CA rows measure the last build (run npm run build)'
    : undefined;
}

function caEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('MTLS_') && k !== 'NODE_OPTIONS') env[k] = v;
  return { ...env, MTLS_CA_PASSPHRASE: PASSPHRASE, NO_COLOR: '1' };
}

/** `mtls ca init` once per directory. */
export function initMtlskitCa(caDir: string): void {
  if (!existsSync(MTLS_BIN)) throw new Error('dist/bin/mtls.js is missing: run npm run build first');
  const r = spawnSync(process.execPath, [MTLS_BIN, 'ca', 'init', '--dir', caDir, '--json'], {
    env: caEnv(),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`mtls ca init failed: ${r.stderr || r.stdout}`);
}

/** `mtls ca serve` on the server core, SQLite store (the default), logs at warn. */
export async function startMtlskit(caDir: string, extraNodeArgs: string[] = []): Promise<MtlskitCa> {
  const proc = startPinned(
    process.execPath,
    [
      ...extraNodeArgs,
      MTLS_BIN,
      'ca',
      'serve',
      '--dir',
      caDir,
      '--listen',
      '127.0.0.1:0',
      '--mtls-listen',
      '127.0.0.1:0',
      '--http-listen',
      '127.0.0.1:0',
      '--json',
      '--log-level',
      'warn',
    ],
    caEnv(),
  );
  let stdout = '';
  const err = { text: '' };
  proc.stderr?.on('data', (d: Buffer) => {
    if (err.text.length < 64_000) err.text += d.toString();
  });
  const info = await new Promise<Record<string, string>>((done, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`mtls ca serve was not ready after 15 s: ${err.text.slice(0, 300)}`));
    }, 15_000);
    proc.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
      try {
        const parsed = JSON.parse(stdout) as Record<string, string>;
        clearTimeout(timer);
        done(parsed);
      } catch {
        // not complete yet
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`mtls ca serve exited with ${code}: ${err.text.trim().slice(0, 300)}`));
    });
  });
  const server = serverOf('mtlskit', proc, info.publicUrl!, err);
  return {
    ...server,
    publicUrl: info.publicUrl!,
    mtlsUrl: info.mtlsUrl!,
    httpUrl: info.httpUrl!,
    rootPem: readFileSync(join(caDir, 'root.crt'), 'utf8'),
    intermediate: parseCertificate(decodePem(readFileSync(join(caDir, 'intermediate.crt')))[0]!.der),
    admin: {
      cert: readFileSync(join(caDir, 'admin', 'mtls-admin.chain.pem'), 'utf8'),
      key: readFileSync(join(caDir, 'admin', 'mtls-admin.key'), 'utf8'),
    },
  };
}

// ---------------------------------------------------------------- the peers' CA

export interface PeerCa {
  dir: string;
  caPem: string;
  ca: Certificate;
  /** Files in dir: ca.pem, ca.key, responder.pem, responder.key, tls.pem, tls.key, cfssl.json. */
  files: Record<'ca' | 'caKey' | 'responder' | 'responderKey' | 'tls' | 'tlsKey' | 'config', string>;
}

/**
 * One P-256 CA for cfssl and openssl (unencrypted key, which both need), a delegated OCSP responder
 * certificate (EKU OCSPSigning, like mtlskit's) and a TLS certificate for 127.0.0.1. The cfssl
 * signing profile issues what mtlskit's client profile issues: digitalSignature, clientAuth, 24 h,
 * the SANs of the CSR, SKI/AKI, an OCSP URL and a CRL distribution point.
 */
export function createPeerCa(dir: string): PeerCa {
  const key = generateKey('p256');
  const root = selfSign(key, { profile: 'root', subject: [[{ oid: '2.5.4.3', value: 'bench peer CA' }]] });
  const ca = parseCertificate(root.der);
  const issuer = createIssuer(ca, key);
  const responderKey = generateKey('p256');
  const responder = issuer.issue({
    profile: 'ocsp',
    subject: [[{ oid: '2.5.4.3', value: 'bench peer CA OCSP responder' }]],
    publicKey: spkiOf(responderKey),
    ttlMs: 7 * 86_400_000,
  });
  const tlsKey = generateKey('p256');
  const tls = issuer.issue({
    profile: 'server',
    subject: [[{ oid: '2.5.4.3', value: 'bench peer CA API' }]],
    sans: [{ type: 'ip', value: '127.0.0.1' }],
    publicKey: spkiOf(tlsKey),
    ttlMs: 7 * 86_400_000,
  });
  const files = {
    ca: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    responder: join(dir, 'responder.pem'),
    responderKey: join(dir, 'responder.key'),
    tls: join(dir, 'tls.pem'),
    tlsKey: join(dir, 'tls.key'),
    config: join(dir, 'cfssl.json'),
  };
  writeFileSync(files.ca, root.pem);
  writeFileSync(files.caKey, exportPrivateKeyPem(key), { mode: 0o600 });
  writeFileSync(files.responder, responder.pem);
  writeFileSync(files.responderKey, exportPrivateKeyPem(responderKey), { mode: 0o600 });
  writeFileSync(files.tls, tls.pem);
  writeFileSync(files.tlsKey, exportPrivateKeyPem(tlsKey), { mode: 0o600 });
  const profile = {
    expiry: '24h',
    usages: ['digital signature', 'client auth'],
    ocsp_url: 'http://127.0.0.1:8889/ocsp',
    crl_url: 'http://127.0.0.1:8889/crl',
  };
  writeFileSync(
    files.config,
    JSON.stringify({ signing: { default: profile, profiles: { client: profile } } }),
  );
  return { dir, caPem: root.pem, ca, files };
}

// ---------------------------------------------------------------- cfssl

/**
 * A cfssl certificate database (certdb) in SQLite, the schema of cfssl's
 * certdb/sqlite/migrations/001_CreateCertificates.sql (Debian's package does not ship the migrations).
 * With it, `cfssl serve -db-config` stores every certificate it signs before answering, as mtlskit
 * does. go-sqlite3 opens it with SQLite's defaults: rollback journal, synchronous=FULL.
 */
export function createCfsslCertdb(dir: string): string {
  const file = join(dir, 'cfssl-certdb.sqlite');
  const db = new Database(file);
  db.exec(`
CREATE TABLE certificates (
  serial_number blob NOT NULL, authority_key_identifier blob NOT NULL, ca_label blob,
  status blob NOT NULL, reason int, expiry timestamp, revoked_at timestamp, pem blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number blob NOT NULL, authority_key_identifier blob NOT NULL, body blob NOT NULL, expiry timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier) REFERENCES certificates(serial_number, authority_key_identifier)
);`);
  db.close();
  const config = join(dir, 'cfssl-db.json');
  writeFileSync(config, JSON.stringify({ driver: 'sqlite3', data_source: file }));
  return config;
}

/** Rows in a cfssl certdb (to check that the certdb contender really stored what it signed). */
export function cfsslCertdbCount(dbConfig: string): number {
  const { data_source } = JSON.parse(readFileSync(dbConfig, 'utf8')) as { data_source: string };
  const db = new Database(data_source, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM certificates').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/**
 * `cfssl serve` over HTTPS (-tls-cert/-tls-key), signing with the peer CA; -responder enables the
 * ocspsign endpoint; with `dbConfig`, every signed certificate is stored in that certdb.
 */
export async function startCfsslServe(
  pca: PeerCa,
  probe: (url: string) => Promise<boolean>,
  dbConfig?: string,
): Promise<Server> {
  const port = await freePort();
  const f = pca.files;
  const proc = startPinned('cfssl', [
    'serve',
    '-address',
    '127.0.0.1',
    '-port',
    String(port),
    '-ca',
    f.ca,
    '-ca-key',
    f.caKey,
    '-config',
    f.config,
    '-tls-cert',
    f.tls,
    '-tls-key',
    f.tlsKey,
    '-responder',
    f.responder,
    '-responder-key',
    f.responderKey,
    ...(dbConfig ? ['-db-config', dbConfig] : []),
    '-loglevel',
    '2',
  ]);
  const out = collect(proc);
  const url = `https://127.0.0.1:${port}`;
  await waitReady('cfssl serve', proc, out, () => probe(url));
  return serverOf('cfssl serve', proc, url, out);
}

/** `cfssl ocspserve` answering from a file of base64 OCSP responses (one per line). */
export async function startCfsslOcspserve(
  responsesFile: string,
  probe: (url: string) => Promise<boolean>,
): Promise<Server> {
  const port = await freePort();
  const proc = startPinned('cfssl', [
    'ocspserve',
    '-address',
    '127.0.0.1',
    '-port',
    String(port),
    '-responses',
    responsesFile,
    '-loglevel',
    '2',
  ]);
  const out = collect(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitReady('cfssl ocspserve', proc, out, () => probe(url));
  return serverOf('cfssl ocspserve', proc, url, out);
}

// ---------------------------------------------------------------- openssl

/** An index.txt line per certificate: status, notAfter (YYMMDDHHMMSSZ), serial (upper-case hex), subject. */
export function opensslIndex(certs: readonly Certificate[]): string {
  const time = (d: Date): string => d.toISOString().replace(/^\d\d|[-:T]|\.\d+/g, '');
  return certs
    .map((c, i) => `V\t${time(c.notAfter)}\t\t${c.serial.toUpperCase()}\tunknown\t/CN=bench-${i}\n`)
    .join('');
}

/**
 * `openssl ocsp` as a responder: one process, signs every response with the delegated responder key.
 * It listens on every interface (-port takes a number only) and answers HTTP/1.0, closing the
 * connection after each response. It spins when a client connects and sends nothing, so readiness is
 * probed with a real OCSP request.
 */
export async function startOpensslOcsp(
  pca: PeerCa,
  indexFile: string,
  probe: (url: string) => Promise<boolean>,
): Promise<Server> {
  const port = await freePort();
  const f = pca.files;
  const proc = startPinned('openssl', [
    'ocsp',
    '-port',
    String(port),
    '-index',
    indexFile,
    '-CA',
    f.ca,
    '-rsigner',
    f.responder,
    '-rkey',
    f.responderKey,
    '-nmin',
    '60',
    '-ignore_err',
  ]);
  const out = collect(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitReady('openssl ocsp', proc, out, () => probe(url));
  return serverOf('openssl ocsp', proc, url, out);
}
