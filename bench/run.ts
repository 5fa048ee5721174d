// `npm run bench`: mtlskit issuance and CSR-to-certificate throughput next to @peculiar/x509 and the
// openssl CLI, in one run, on one core (section pki); then the CA service under load next to cfssl and
// openssl (section ca, bench/ca-bench.ts); then mtls proxy next to nginx and HAProxy (section proxy,
// bench/proxy-bench.ts); then the wall time of `mtls doctor` next to the manual openssl workflow (section
// doctor, bench/doctor-bench.ts). `npm run bench -- --only pki|ca|proxy|doctor` runs one section.
// Benchmarks inform; they never fail the build (exit code 0).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { extension, isSignedBy, parseCertificate } from '../src/pki/index.js';
import {
  OPENSSL_CSR,
  OPENSSL_ISSUE,
  mtlskitCsr,
  mtlskitIssue,
  opensslRunner,
  opensslVersion,
  peculiarCsr,
  peculiarIssue,
  rawCrypto,
} from './contenders.js';
import { runCaBench } from './ca-bench.js';
import { runProxyBench } from './proxy-bench.js';
import { runDoctorBench } from './doctor-bench.js';
import { createFixtures, type Fixtures } from './fixtures.js';
import {
  IN_PROCESS,
  measureAsync,
  measureBatches,
  measureSync,
  printTable,
  type LoopOptions,
  type Measurement,
} from './harness.js';

const PINNED_ENV = 'MTLSKIT_BENCH_PINNED';

/** Targets for mtlskit, in operations per second. */
const TARGET_ISSUE = 20_000;
const TARGET_CSR = 8_000;

const CONTEXT_LOOP: LoopOptions = { ...IN_PROCESS, roundMs: 400, rounds: 3 };
const OPENSSL_LOOP = { roundMs: 1_500, minBatch: 5, maxBatch: 200, rounds: 3 };

interface Row {
  group: string;
  name: string;
  result: Measurement | string;
  /** Set on the mtlskit row of a group. */
  target?: number;
  /** The mtlskit measurement of the same group, for the ratio column. */
  baseline?: Measurement;
}

/**
 * Re-runs this script under `taskset -c 0` so every thread (main, libuv pool used by WebCrypto, GC
 * helpers) and every openssl child shares one core. Returns false when already pinned or not possible.
 */
function runPinned(): boolean {
  if (process.env[PINNED_ENV] || process.platform !== 'linux') return false;
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) return false;
  const args = ['-c', '0', process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  const r = spawnSync('taskset', args, {
    stdio: 'inherit',
    env: { ...process.env, [PINNED_ENV]: '1', UV_THREADPOOL_SIZE: '1' },
  });
  if (r.status !== 0) console.error(`bench: the pinned run ended with ${r.status ?? r.signal}`);
  return true;
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtUs(us: number): string {
  return us >= 1000 ? fmtInt(us) : us.toFixed(us >= 100 ? 0 : 1);
}

/** Checks that a contender's output is a certificate from the bench CA with the expected extensions. */
function checkOutput(fx: Fixtures, name: string, der: Buffer): void {
  const cert = parseCertificate(der);
  const missing = ['2.5.29.19', '2.5.29.15', '2.5.29.37', '2.5.29.14', '2.5.29.35', '2.5.29.17'].filter(
    (oid) => !extension(cert, oid),
  );
  if (!isSignedBy(cert, fx.caCert) || missing.length) {
    throw new Error(
      `${name} produced an unexpected certificate (signature ok: ${isSignedBy(cert, fx.caCert)}, missing: ${missing.join(', ')})`,
    );
  }
}

function attempt(group: string, name: string, fn: () => Measurement): Row {
  try {
    return { group, name, result: fn() };
  } catch (e) {
    return { group, name, result: `not run: ${(e as Error).message.split('\n')[0]}` };
  }
}

async function attemptAsync(group: string, name: string, fn: () => Promise<Measurement>): Promise<Row> {
  try {
    return { group, name, result: await fn() };
  } catch (e) {
    return { group, name, result: `not run: ${(e as Error).message.split('\n')[0]}` };
  }
}

function progress(msg: string): void {
  process.stderr.write(`  … ${msg}\n`);
}

async function main(): Promise<void> {
  const pinned = process.env[PINNED_ENV] === '1';
  const startLoad = loadavg()[0]!;
  const cli = opensslVersion();
  console.log('mtlskit benchmarks');
  console.log(`  date      ${new Date().toISOString()}`);
  console.log(
    `  node      ${process.version} (OpenSSL ${process.versions.openssl})   openssl CLI: ${cli ?? 'not found'}`,
  );
  console.log(
    `  cpu       ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}   load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `  pinning   ${pinned ? 'taskset -c 0 (whole process and openssl children), UV_THREADPOOL_SIZE=1' : 'none (taskset unavailable): figures are noisier'}`,
  );
  console.log(`  keys      ECDSA P-256 / SHA-256 everywhere; client-profile leaves with 6 extensions`);
  console.log('');

  const fx = await createFixtures();
  const rows: Row[] = [];
  try {
    // Sanity: every contender produces a real certificate from the same CA before anything is timed.
    const issueA = mtlskitIssue(fx);
    const csrA = mtlskitCsr(fx);
    const issueP = peculiarIssue(fx);
    const csrP = peculiarCsr(fx);
    checkOutput(fx, 'mtlskit issue', issueA(0));
    checkOutput(fx, 'mtlskit CSR', csrA(0));
    checkOutput(fx, '@peculiar/x509 issue', await issueP(0));
    checkOutput(fx, '@peculiar/x509 CSR', await csrP(0));
    const osslIssue = cli ? opensslRunner(fx, OPENSSL_ISSUE) : undefined;
    const osslCsr = cli ? opensslRunner(fx, OPENSSL_CSR) : undefined;
    const opensslOk = (run: (n: number) => void, name: string): void => {
      run(1);
      const pem = readFileSync(join(fx.dir, 'out.pem'), 'latin1');
      checkOutput(fx, name, Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64'));
    };

    // Context: the raw crypto every contender pays.
    const tbs = parseCertificate(issueA(1)).tbs;
    const raw = rawCrypto(fx, tbs);
    const ctx = 'context';
    progress('raw crypto');
    rows.push(
      attempt(ctx, `node:crypto sign P-256 (${tbs.length}-byte TBS)`, () =>
        measureSync(raw.sign, CONTEXT_LOOP),
      ),
    );
    rows.push(
      attempt(ctx, 'node:crypto verify P-256 (key reused)', () => measureSync(raw.verify, CONTEXT_LOOP)),
    );
    rows.push(
      attempt(ctx, 'SPKI import, createPublicKey DER', () => measureSync(raw.importDer, CONTEXT_LOOP)),
    );
    rows.push(
      attempt(ctx, 'SPKI import, mtlskit importSpki', () => measureSync(raw.importFast, CONTEXT_LOOP)),
    );
    rows.push(
      attempt(ctx, 'CSR crypto: importSpki + 1st verify', () => measureSync(raw.freshCheck, CONTEXT_LOOP)),
    );

    // (a) encode + sign from parsed inputs.
    const a = '(a) issue';
    progress('(a) mtlskit');
    const aBase = attempt(a, 'mtlskit createIssuer().issue()', () => measureSync(issueA));
    rows.push({ ...aBase, target: TARGET_ISSUE });
    const baseA = typeof aBase.result === 'string' ? undefined : aBase.result;
    progress('(a) @peculiar/x509');
    rows.push({
      ...(await attemptAsync(a, '@peculiar/x509 generator', () => measureAsync(issueP))),
      baseline: baseA,
    });
    progress('(a) openssl');
    rows.push({
      ...attempt(a, 'openssl x509 -new, 1 process/cert', () => {
        if (!osslIssue) throw new Error('openssl not found');
        opensslOk(osslIssue, 'openssl x509 -new');
        return measureBatches(osslIssue, OPENSSL_LOOP);
      }),
      baseline: baseA,
    });

    // (b) CSR in (parse + signature check) -> certificate out.
    const b = '(b) CSR -> cert';
    progress('(b) mtlskit');
    const bBase = attempt(b, 'mtlskit readVerifiedCsr + issue', () => measureSync(csrA));
    rows.push({ ...bBase, target: TARGET_CSR });
    const baseB = typeof bBase.result === 'string' ? undefined : bBase.result;
    progress('(b) @peculiar/x509');
    rows.push({
      ...(await attemptAsync(b, '@peculiar/x509 parse+verify+generate', () => measureAsync(csrP))),
      baseline: baseB,
    });
    progress('(b) openssl');
    rows.push({
      ...attempt(b, 'openssl x509 -req, 1 process/cert', () => {
        if (!osslCsr) throw new Error('openssl not found');
        opensslOk(osslCsr, 'openssl x509 -req');
        return measureBatches(osslCsr, OPENSSL_LOOP);
      }),
      baseline: baseB,
    });
  } finally {
    fx.cleanup();
  }

  printResults(rows);
  printVerdict(rows);
  // This run keeps one core busy itself, so a 1-minute load near 1 at the end is its own.
  const endLoad = loadavg()[0]!;
  const busy = startLoad >= 0.7 || endLoad >= 1.7;
  console.log(
    `load at start ${startLoad.toFixed(2)}, at end ${endLoad.toFixed(2)}` +
      (busy ? ': something else was running, so these figures are low and noisy; run again when idle' : ''),
  );
}

function printResults(rows: Row[]): void {
  const header = [
    'benchmark',
    'implementation',
    'ops/s',
    'µs/op',
    'spread',
    'mtlskit ÷ this',
    'target',
    'verdict',
  ];
  const body = rows.map((r) => {
    if (typeof r.result === 'string') return [r.group, r.name, r.result, '', '', '', '', ''];
    const m = r.result;
    const lo = Math.min(...m.rounds);
    const hi = Math.max(...m.rounds);
    const spread = `±${((100 * (hi - lo)) / 2 / m.opsPerSec).toFixed(1)}%`;
    const ratio = r.baseline
      ? `${(r.baseline.opsPerSec / m.opsPerSec).toFixed(r.baseline.opsPerSec / m.opsPerSec >= 100 ? 0 : 1)}×`
      : r.target
        ? '1×'
        : '';
    const target = r.target ? `≥ ${fmtInt(r.target)}` : '';
    const verdict = r.target ? (m.opsPerSec >= r.target ? 'PASS' : 'BELOW') : '';
    return [r.group, r.name, fmtInt(m.opsPerSec), fmtUs(m.usPerOp), spread, ratio, target, verdict];
  });
  printTable(
    header,
    body,
    rows.map((r) => r.group),
    new Set([2, 3, 4, 5]),
  );
  console.log('ops/s: median of the rounds (in-process: 5 rounds ≤ 0.8 s or 50,000 ops each, after warm-up;');
  console.log(
    'openssl: 3 rounds of one shell loop, one process per certificate). spread: half the min–max range.',
  );
}

function printVerdict(rows: Row[]): void {
  console.log('');
  for (const r of rows) {
    if (!r.target) continue;
    if (typeof r.result === 'string') {
      console.log(`verdict ${r.group}: ${r.name} ${r.result}`);
      continue;
    }
    const m = r.result;
    const others = rows
      .filter((o) => o.group === r.group && o !== r && typeof o.result !== 'string')
      .map(
        (o) => `${(m.opsPerSec / (o.result as Measurement).opsPerSec).toFixed(0)}× ${o.name.split(' ')[0]}`,
      );
    const verdict = m.opsPerSec >= r.target ? 'PASS' : 'BELOW';
    console.log(
      `verdict ${r.group}: ${verdict}: mtlskit ${fmtInt(m.opsPerSec)}/s against a target of ${fmtInt(r.target)}/s` +
        (others.length ? ` (${others.join(', ')})` : ''),
    );
  }
  console.log('(benchmarks inform; they do not gate: exit code 0 either way)');
}

/** `--only pki`, `--only ca`, `--only proxy` or `--only doctor` (also `--only=ca`); undefined runs every section. */
function onlySection(): 'pki' | 'ca' | 'proxy' | 'doctor' | undefined {
  const args = process.argv.slice(2);
  const i = args.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return undefined;
  const v = args[i]!.includes('=') ? args[i]!.split('=')[1] : args[i + 1];
  if (v === 'pki' || v === 'ca' || v === 'proxy' || v === 'doctor') return v;
  console.error(
    `bench: --only takes pki, ca, proxy or doctor, not ${v ?? '(nothing)'}; running every section`,
  );
  return undefined;
}

async function section(name: string, fn: () => Promise<void>): Promise<void> {
  const started = performance.now();
  try {
    await fn();
  } catch (e) {
    console.error(`bench ${name} failed: ${(e as Error).stack ?? String(e)}`);
  }
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (process.env[PINNED_ENV]) {
  // The pinned child of runPinned(): the PKI section only.
  await section('pki', main);
} else {
  const only = onlySection();
  if ((only === undefined || only === 'pki') && !runPinned()) await section('pki', main);
  if (only === undefined || only === 'ca') {
    if (only !== 'ca') console.log('');
    await section('ca', () => runCaBench({ afterPki: only !== 'ca' }));
  }
  if (only === undefined || only === 'proxy') {
    if (only !== 'proxy') console.log('');
    await section('proxy', runProxyBench);
  }
  if (only === undefined || only === 'doctor') {
    if (only !== 'doctor') console.log('');
    await section('doctor', runDoctorBench);
  }
}
process.exitCode = 0;
