// The proxy benchmark (`npm run bench -- --only proxy`): `mtls proxy` side by side with nginx and
// HAProxy as the same mTLS reverse proxy in front of the same Node backend, with the same
// certificates, in one run. Every proxy and the backend run on core 0, the C load generator
// (bench/loadgen/loadgen.c) on core 1. Scenarios: full and resumed TLS 1.3 handshakes with one
// request per connection, keep-alive requests, latency, and the memory of 10,000 idle connections.
// MTLSKIT_BENCH_PROFILE=1 adds CPU profiles of mtls under the keep-alive and full-handshake loads;
// MTLSKIT_BENCH_PROFILE=only runs just those (a quick loop while optimizing the proxy).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIENT_CORE, MTLS_BIN, SERVER_CORE, distWarning, pinSelfToClientCore } from './ca-servers.js';
import { printTable } from './harness.js';
import { summarizeCpuProfile } from './proxy-profile.js';
import {
  buildLoadgen,
  runIdle,
  runLoadgen,
  type LoadgenResult,
  type LoadgenRun,
  type LoadgenTarget,
} from './proxy-loadgen.js';
import {
  NOFILE,
  coreTicks,
  createProxyPki,
  haproxyAvailable,
  nginxAvailable,
  peerVersions,
  startBackend,
  startHaproxy,
  startMtlsProxy,
  startNginx,
  startNodeDirect,
  type Backend,
  type Listening,
  type ProxyPki,
} from './proxy-servers.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PROFILE_ENV = 'MTLSKIT_BENCH_PROFILE';

/** The backend's answer: 100 bytes, checked byte for byte on every response. */
export const BODY =
  'OK from the mtlskit proxy benchmark backend, checked byte for byte by the load generator'.padEnd(100, '.');

const WARMUP_MS = 1_000;
const RUN_MS = 5_000;
const HANDSHAKE_CONCURRENCY = 16;
const KEEPALIVE_CONCURRENCY = 64;
const IDLE_CONNS = 10_000;
const IDLE_OPEN_CONCURRENCY = 32;
/** Targets: mtls as a multiple of nginx in the same run. */
const TARGET_FULL = 0.9;
const TARGET_KEEPALIVE = 0.75;
/** Above this share of its core, the generator may be what limits a figure. */
const GENERATOR_BUSY_PCT = 85;

type Key = 'mtls' | 'nginx' | 'haproxy' | 'ceiling' | 'node';

interface Scenario {
  id: string;
  title: string;
  unit: string;
  run: LoadgenRun;
  ceiling: boolean;
}

const SCENARIOS: Scenario[] = [
  {
    id: 'hs',
    title: `1 full handshakes, 1 req/conn, c=${HANDSHAKE_CONCURRENCY}`,
    unit: 'conn/s',
    run: {
      mode: 'hs',
      concurrency: HANDSHAKE_CONCURRENCY,
      warmupMs: WARMUP_MS,
      durationMs: RUN_MS,
      maxRequests: 200_000,
    },
    ceiling: true,
  },
  {
    id: 'resume',
    title: `2 resumed handshakes, 1 req/conn, c=${HANDSHAKE_CONCURRENCY}`,
    unit: 'conn/s',
    run: {
      mode: 'resume',
      concurrency: HANDSHAKE_CONCURRENCY,
      warmupMs: WARMUP_MS,
      durationMs: RUN_MS,
      maxRequests: 200_000,
    },
    ceiling: true,
  },
  {
    id: 'resume1',
    title: `2b resumed, tickets used once, c=${HANDSHAKE_CONCURRENCY}`,
    unit: 'conn/s',
    run: {
      mode: 'resume',
      concurrency: HANDSHAKE_CONCURRENCY,
      warmupMs: WARMUP_MS,
      durationMs: RUN_MS,
      maxRequests: 200_000,
      singleUseTickets: true,
    },
    ceiling: false,
  },
  {
    id: 'ka',
    title: `3 keep-alive requests, c=${KEEPALIVE_CONCURRENCY}`,
    unit: 'req/s',
    run: {
      mode: 'ka',
      concurrency: KEEPALIVE_CONCURRENCY,
      warmupMs: WARMUP_MS,
      durationMs: RUN_MS,
      maxRequests: 3_000_000,
    },
    ceiling: true,
  },
];

interface Measured {
  res: LoadgenResult;
  /**
   * CPU time per correct response in the measured window, µs, from /proc (clock ticks): the proxy
   * (nginx: master + worker) and the backend. Unlike the rates, this does not move when other
   * processes on the machine take some of core 0.
   */
  proxyUs?: number;
  backendUs?: number;
  /** Share of core 0 that other processes took during the measured window, %. */
  othersPct?: number;
  /** Connections the backend accepted during the whole run (warm-up and drain included). */
  upstreamConns?: number;
  /** Problems found around the generator's own checks (backend counts, a process that died). */
  problems: string[];
}

interface IdleMeasured {
  held: number;
  rssKb: number | undefined;
  beforeKb: number | undefined;
  dropped: number;
  errors: number;
  firstError: string;
  openMs: number;
}

interface Contender {
  key: Key;
  label: string;
  server?: Listening;
  /** Why it did not run. */
  skipped?: string;
  startRssKb?: number;
  results: Map<string, Measured | string>;
  idle?: IdleMeasured | string;
}

/** When dist/bin/mtls.js was built and the commit checked out, to tell builds apart between runs. */
function mtlsBuild(): string {
  if (!existsSync(MTLS_BIN)) return `${relative(REPO, MTLS_BIN)} missing (npm run build)`;
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], {
    cwd: REPO,
    encoding: 'utf8',
  }).stdout?.trim();
  return `${relative(REPO, MTLS_BIN) || MTLS_BIN} built ${statSync(MTLS_BIN).mtime.toISOString()}${head ? `, HEAD ${head}` : ''}`;
}

function progress(msg: string): void {
  process.stderr.write(`  … ${msg}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function errorsOf(m: Measured): number {
  return m.res.errors + m.problems.length + (m.res.aborted ? 1 : 0);
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtMs(us: number): string {
  const ms = us / 1000;
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function fmtCpu(us: number): string {
  return us >= 100 ? fmtInt(us) : us.toFixed(1);
}

function fmtMiB(kb: number): string {
  return (kb / 1024).toFixed(kb >= 100 * 1024 ? 0 : 1);
}

async function startContender(
  key: Key,
  label: string,
  start: () => Promise<Listening>,
  contenders: Contender[],
): Promise<void> {
  const c: Contender = { key, label, results: new Map() };
  contenders.push(c);
  try {
    c.server = await start();
    await sleep(300);
    c.startRssKb = c.server.rssKb();
  } catch (e) {
    c.skipped = (e as Error).message.split('\n')[0];
  }
}

interface CpuSample {
  proxy: number;
  backend: number;
  core: { busy: number; total: number };
}

async function measureRun(
  bin: string,
  c: Contender,
  target: LoadgenTarget,
  run: LoadgenRun,
  backend: Backend | undefined,
): Promise<Measured> {
  const before = backend ? await backend.stats() : undefined;
  // CPU samples at the edges of the generator's measured window (it starts timing a few ms after
  // spawn; 10 ms clock ticks over 5 s make that error small).
  const sample = (): CpuSample => ({
    proxy: c.server!.cpuTicks(),
    backend: backend?.cpuTicks() ?? 0,
    core: coreTicks(SERVER_CORE),
  });
  let a: CpuSample | undefined;
  let b: CpuSample | undefined;
  const t0 = setTimeout(() => (a = sample()), run.warmupMs + 5);
  const t1 = setTimeout(() => (b = sample()), run.warmupMs + run.durationMs + 5);
  const res = await runLoadgen(bin, target, run).finally(() => {
    clearTimeout(t0);
    clearTimeout(t1);
  });
  b ??= sample();
  const cpu: Partial<Measured> = {};
  if (a && res.ok > 0) {
    const tickUs = 10_000;
    const proxy = b.proxy - a.proxy;
    const back = b.backend - a.backend;
    const total = b.core.total - a.core.total;
    cpu.proxyUs = (proxy * tickUs) / res.ok;
    if (backend) cpu.backendUs = (back * tickUs) / res.ok;
    if (total > 0) cpu.othersPct = Math.max(0, (100 * (b.core.busy - a.core.busy - proxy - back)) / total);
  }
  const problems: string[] = [];
  if (backend && before) {
    const after = await backend.stats();
    const total = after.total - before.total;
    const withId = after.withIdentity - before.withIdentity;
    cpu.upstreamConns = after.connections - before.connections;
    if (total < res.okTotal)
      problems.push(`${res.okTotal} correct responses but only ${total} requests reached the backend`);
    if (withId < total)
      problems.push(`${total - withId} requests reached the backend without x-forwarded-client-cert`);
  }
  if (c.server?.exited()) problems.push(`${c.label} exited: ${c.server.logs().trim().slice(-300)}`);
  return { res, problems, ...cpu };
}

export async function runProxyBench(): Promise<void> {
  const pinned = pinSelfToClientCore();
  const versions = peerVersions();
  const startLoad = loadavg()[0]!;
  console.log('mtlskit proxy benchmarks (mtls proxy, nginx, HAProxy in front of the same Node backend)');
  console.log(`  date      ${new Date().toISOString()}`);
  console.log(
    `  versions  node ${process.version} (OpenSSL ${process.versions.openssl}), nginx ${versions.nginx ?? 'not found'}, HAProxy ${versions.haproxy ?? 'not found'}`,
  );
  console.log(
    `  cpu       ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}   load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `  pinning   ${pinned ? 'proxy under test and backend on core 0 (taskset -c 0), load generator on core 1' : 'none (taskset or a second core unavailable): figures are noisier'}`,
  );
  console.log(
    `  tls       TLS 1.3, P-256 certificates from mtls ca init/issue, client chain leaf + intermediate (depth 2), X25519; nofile ${NOFILE}`,
  );
  console.log(
    `  load      ${WARMUP_MS / 1000} s warm-up then ${RUN_MS / 1000} s per run; ${BODY.length}-byte body; every response checked (200 + exact body)`,
  );
  console.log(`  mtls      ${mtlsBuild()}`);
  const stale = distWarning();
  if (stale) console.log(`  warning   ${stale.replace('CA rows', 'mtls rows')}`);
  console.log('');

  const work = mkdtempSync(join(tmpdir(), 'mtlskit-proxy-bench-'));
  const contenders: Contender[] = [];
  let backend: Backend | undefined;
  try {
    const build = buildLoadgen(work);
    if ('skip' in build) {
      console.log(`proxy section skipped: ${build.skip}`);
      return;
    }
    if (build.note) console.log(`  note      ${build.note}`);
    progress('certificates (mtls ca init, mtls issue)');
    const pki = await createProxyPki(work);
    if (process.env[PROFILE_ENV] === 'only') {
      // Profiles only (about 20 s): for iterating on the proxy's hot path.
      await profileMtls(build.bin, work, pki, []);
      return;
    }
    progress('backend and proxies');
    backend = await startBackend(BODY);
    const be = backend;
    await startContender(
      'mtls',
      'mtls proxy',
      () => startMtlsProxy(join(work, 'mtls'), pki, be.port),
      contenders,
    );
    await startContender(
      'nginx',
      'nginx',
      () => {
        if (!nginxAvailable()) throw new Error('nginx not found (Debian: apt-get install nginx-light)');
        return startNginx(join(work, 'nginx'), pki, { upstreamPort: be.port, name: 'nginx' });
      },
      contenders,
    );
    await startContender(
      'haproxy',
      'HAProxy',
      () => {
        if (!haproxyAvailable()) throw new Error('haproxy not found (Debian: apt-get install haproxy)');
        return startHaproxy(join(work, 'haproxy'), pki, be.port);
      },
      contenders,
    );
    await startContender(
      'ceiling',
      'nginx return 200 (ceiling)',
      () => {
        if (!nginxAvailable()) throw new Error('nginx not found');
        return startNginx(join(work, 'nginx-direct'), pki, { body: BODY, name: 'nginx-direct' });
      },
      contenders,
    );
    await startContender(
      'node',
      'node:https return 200 (ceiling)',
      () => startNodeDirect(pki, BODY),
      contenders,
    );
    const targetOf = (c: Contender): LoadgenTarget => ({
      port: c.server!.port,
      cert: pki.clientChain,
      key: pki.clientKey,
      body: BODY,
    });

    // Probe: one request per contender with the server's chain verified against the server root.
    for (const c of contenders) {
      if (c.skipped) continue;
      const r = await runLoadgen(build.bin, targetOf(c), {
        mode: 'hs',
        concurrency: 1,
        warmupMs: 0,
        durationMs: 5_000,
        maxRequests: 1,
        ca: pki.serverRoot,
      }).catch((e: Error) => e);
      if (r instanceof Error || r.ok !== 1 || r.errors)
        c.skipped = `probe failed: ${r instanceof Error ? r.message : r.firstError || 'no answer'}`;
    }

    for (const s of SCENARIOS) {
      for (const c of contenders) {
        if (c.skipped || ((c.key === 'ceiling' || c.key === 'node') && !s.ceiling)) continue;
        progress(`${s.title.replace(/^\S+ /, '')}: ${c.label}`);
        try {
          c.results.set(
            s.id,
            await measureRun(
              build.bin,
              c,
              targetOf(c),
              s.run,
              c.key === 'ceiling' || c.key === 'node' ? undefined : be,
            ),
          );
        } catch (e) {
          c.results.set(s.id, `not run: ${(e as Error).message.split('\n')[0]}`);
        }
      }
    }

    for (const c of contenders) {
      if (c.skipped || c.key === 'ceiling' || c.key === 'node') continue;
      progress(`${IDLE_CONNS.toLocaleString('en-US')} idle connections: ${c.label}`);
      await sleep(1_000);
      const server = c.server!;
      const beforeKb = server.rssKb();
      try {
        const r = await runIdle(
          build.bin,
          targetOf(c),
          { conns: IDLE_CONNS, concurrency: IDLE_OPEN_CONCURRENCY, openMs: 60_000, holdMs: 30_000 },
          async () => {
            // Let the server finish what the last handshakes started, then read its memory.
            await sleep(1_500);
            return server.rssKb();
          },
        );
        c.idle = {
          held: r.opened.held,
          rssKb: r.measured,
          beforeKb,
          dropped: r.opened.droppedWhileOpening + r.droppedWhileHeld,
          errors: r.opened.errors,
          firstError: r.opened.firstError,
          openMs: r.opened.openMs,
        };
      } catch (e) {
        c.idle = `not run: ${(e as Error).message.split('\n')[0]}`;
      }
      // Closing 10,000 connections keeps the server core busy for a moment.
      await sleep(2_000);
    }

    printResults(contenders);
    printVerdicts(contenders);

    if (process.env[PROFILE_ENV] === '1') await profileMtls(build.bin, work, pki, contenders);
    else
      console.log(
        `(${PROFILE_ENV}=1 adds CPU profiles of mtls proxy under the keep-alive and full-handshake loads; =only runs just those)`,
      );
  } finally {
    await Promise.all(contenders.map((c) => (c.server ? c.server.stop() : Promise.resolve())));
    await backend?.stop();
    rmSync(work, { recursive: true, force: true });
  }
  const endLoad = loadavg()[0]!;
  let shared = 0;
  for (const c of contenders)
    for (const m of c.results.values())
      if (typeof m !== 'string') shared = Math.max(shared, m.othersPct ?? 0);
  console.log(
    `load at start ${startLoad.toFixed(2)}, at end ${endLoad.toFixed(2)}; other processes took at most ${shared.toFixed(0)}% of core 0 in a run` +
      (shared >= 5
        ? ': the rates of those runs are low; compare the CPU per connection/request rows, or run again when idle'
        : ''),
  );
}

// ---------------------------------------------------------------- output

function byKey(contenders: Contender[], key: Key): Contender | undefined {
  return contenders.find((c) => c.key === key);
}

function printResults(contenders: Contender[]): void {
  const header = [
    'scenario',
    'unit',
    'mtls',
    'nginx',
    'haproxy',
    'mtls/nginx',
    'target',
    'verdict',
    'ceiling',
    'node ceil.',
  ];
  const body: string[][] = [];
  const groups: string[] = [];
  const notes: string[] = [];

  const cellOf = (
    c: Contender | undefined,
    sid: string,
    value: (m: Measured) => number | undefined,
    fmt: (n: number) => string,
  ): { text: string; n?: number } => {
    if (!c) return { text: '' };
    if (c.skipped) return { text: 'not run' };
    const m = c.results.get(sid);
    if (m === undefined) return { text: '' };
    if (typeof m === 'string') return { text: 'not run' };
    const n = value(m);
    if (n === undefined) return { text: '' };
    return { text: fmt(n) + (errorsOf(m) ? ' !' : ''), n };
  };

  const row = (
    group: string,
    label: string,
    unit: string,
    cells: Record<Key, { text: string; n?: number }>,
    target?: number,
    higherIsBetter = true,
  ): void => {
    const m = cells.mtls.n;
    const ng = cells.nginx.n;
    const ratio = m !== undefined && ng !== undefined && ng > 0 ? m / ng : undefined;
    let verdict = '';
    if (target !== undefined && ratio !== undefined)
      verdict = (higherIsBetter ? ratio >= target : ratio <= target) ? 'PASS' : 'BELOW';
    body.push([
      label,
      unit,
      cells.mtls.text,
      cells.nginx.text,
      cells.haproxy.text,
      ratio === undefined ? '' : `${ratio.toFixed(2)}×`,
      target === undefined ? '' : `≥ ${target}× nginx`,
      verdict,
      cells.ceiling.text,
      cells.node.text,
    ]);
    groups.push(group);
  };

  const cells = (
    sid: string,
    value: (m: Measured) => number | undefined,
    fmt: (n: number) => string,
    withCeiling = true,
  ): Record<Key, { text: string; n?: number }> => ({
    mtls: cellOf(byKey(contenders, 'mtls'), sid, value, fmt),
    nginx: cellOf(byKey(contenders, 'nginx'), sid, value, fmt),
    haproxy: cellOf(byKey(contenders, 'haproxy'), sid, value, fmt),
    ceiling: withCeiling ? cellOf(byKey(contenders, 'ceiling'), sid, value, fmt) : { text: '' },
    node: withCeiling ? cellOf(byKey(contenders, 'node'), sid, value, fmt) : { text: '' },
  });
  const rate = (m: Measured): number => m.res.rate;
  const p50 = (m: Measured): number => m.res.p50Us;
  const p99 = (m: Measured): number => m.res.p99Us;
  const resumedPct = (m: Measured): number | undefined =>
    m.res.handshakes ? (100 * m.res.resumed) / m.res.handshakes : undefined;
  const pct = (n: number): string => `${n.toFixed(n >= 99.95 || n < 10 ? 0 : 1)}%`;

  for (const s of SCENARIOS) {
    const withCeiling = s.ceiling;
    row(
      s.id,
      s.title,
      s.unit,
      cells(s.id, rate, fmtInt, withCeiling),
      s.id === 'hs' ? TARGET_FULL : s.id === 'ka' ? TARGET_KEEPALIVE : undefined,
    );
    if (s.id === 'hs' || s.id === 'ka') {
      const what = s.id === 'hs' ? 'connect → response' : 'request → response';
      row(s.id, `  p50 latency (${what})`, 'ms', cells(s.id, p50, fmtMs, withCeiling));
      row(s.id, '  p99 latency', 'ms', cells(s.id, p99, fmtMs, withCeiling));
    } else {
      row(s.id, '  handshakes resumed', '%', cells(s.id, resumedPct, pct, withCeiling));
    }
    const per = s.id === 'ka' ? 'request' : 'connection';
    row(
      s.id,
      `  CPU per ${per}: proxy`,
      'µs',
      cells(s.id, (m) => m.proxyUs, fmtCpu, withCeiling),
    );
    row(
      s.id,
      `  CPU per ${per}: backend`,
      'µs',
      cells(s.id, (m) => m.backendUs, fmtCpu, false),
    );
    row(
      s.id,
      '  upstream connections opened',
      'count',
      cells(s.id, (m) => m.upstreamConns, fmtInt, false),
    );
  }

  // 5: memory with 10,000 idle connections.
  const idleCell = (
    c: Contender | undefined,
    value: (i: IdleMeasured, c: Contender) => number | undefined,
    fmt: (n: number) => string,
  ): { text: string; n?: number } => {
    if (!c || c.skipped) return { text: c ? 'not run' : '' };
    if (c.idle === undefined) return { text: '' };
    if (typeof c.idle === 'string') return { text: 'not run' };
    const n = value(c.idle, c);
    if (n === undefined) return { text: '' };
    const bad = c.idle.errors > 0 || c.idle.dropped > 0 || c.idle.held < IDLE_CONNS;
    return { text: fmt(n) + (bad ? ' !' : ''), n };
  };
  const idleCells = (
    value: (i: IdleMeasured, c: Contender) => number | undefined,
    fmt: (n: number) => string,
  ): Record<Key, { text: string; n?: number }> => ({
    mtls: idleCell(byKey(contenders, 'mtls'), value, fmt),
    nginx: idleCell(byKey(contenders, 'nginx'), value, fmt),
    haproxy: idleCell(byKey(contenders, 'haproxy'), value, fmt),
    ceiling: { text: '' },
    node: { text: '' },
  });
  row(
    'idle',
    `5 RSS with ${IDLE_CONNS.toLocaleString('en-US')} idle mTLS conns`,
    'MiB',
    idleCells((i) => i.rssKb, fmtMiB),
  );
  row(
    'idle',
    '  per idle connection',
    'KiB',
    idleCells(
      (i) =>
        i.rssKb !== undefined && i.beforeKb !== undefined && i.held
          ? (i.rssKb - i.beforeKb) / i.held
          : undefined,
      (n) => n.toFixed(1),
    ),
  );
  row(
    'idle',
    '  connections held',
    'count',
    idleCells((i) => i.held, fmtInt),
  );
  row('idle', '  RSS at start (no connection)', 'MiB', {
    mtls: startRss(byKey(contenders, 'mtls')),
    nginx: startRss(byKey(contenders, 'nginx')),
    haproxy: startRss(byKey(contenders, 'haproxy')),
    ceiling: { text: '' },
    node: { text: '' },
  });

  // Errors over every scenario, and the generator's CPU (core 1) in each throughput run.
  const errCell = (c: Contender | undefined): { text: string; n?: number } => {
    if (!c || c.skipped) return { text: c ? 'not run' : '' };
    let n = 0;
    for (const m of c.results.values()) n += typeof m === 'string' ? 1 : errorsOf(m);
    if (c.idle !== undefined) n += typeof c.idle === 'string' ? 1 : c.idle.errors + c.idle.dropped;
    return { text: fmtInt(n), n };
  };
  body.push([
    'errors (every scenario)',
    'count',
    errCell(byKey(contenders, 'mtls')).text,
    errCell(byKey(contenders, 'nginx')).text,
    errCell(byKey(contenders, 'haproxy')).text,
    '',
    '',
    '',
    errCell(byKey(contenders, 'ceiling')).text,
    errCell(byKey(contenders, 'node')).text,
  ]);
  groups.push('errors');
  for (const s of SCENARIOS) {
    const c = cells(
      s.id,
      (m) => m.res.cpuPct,
      (n) => `${n.toFixed(0)}%`,
      s.ceiling,
    );
    body.push([
      `generator CPU, ${s.title.split(',')[0]}`,
      '% core 1',
      c.mtls.text,
      c.nginx.text,
      c.haproxy.text,
      '',
      '',
      '',
      c.ceiling.text,
      c.node.text,
    ]);
    groups.push('gen');
  }
  for (const s of SCENARIOS) {
    const c = cells(
      s.id,
      (m) => m.othersPct,
      (n) => `${n.toFixed(0)}%`,
      s.ceiling,
    );
    body.push([
      `core 0 used by others, ${s.title.split(',')[0]}`,
      '% core 0',
      c.mtls.text,
      c.nginx.text,
      c.haproxy.text,
      '',
      '',
      '',
      c.ceiling.text,
      c.node.text,
    ]);
    groups.push('others');
  }

  printTable(header, body, groups, new Set([2, 3, 4, 5, 8, 9]));

  for (const c of contenders) {
    if (c.skipped) notes.push(`${c.label}: not run: ${c.skipped}`);
    for (const [sid, m] of c.results) {
      const title = SCENARIOS.find((s) => s.id === sid)?.title.split(',')[0] ?? sid;
      if (typeof m === 'string') notes.push(`${c.label}, ${title}: ${m}`);
      else if (errorsOf(m))
        notes.push(
          `${c.label}, ${title}: ${m.res.errors} errors ${JSON.stringify(m.res.errorKinds)}${m.res.aborted ? ' (aborted)' : ''}` +
            `${m.res.firstError ? `, first: ${m.res.firstError}` : ''}${m.problems.length ? `; ${m.problems.join('; ')}` : ''}`,
        );
      if (typeof m !== 'string' && m.res.reconnects)
        notes.push(
          `${c.label}, ${title}: the server closed ${m.res.reconnects} keep-alive connections (reopened)`,
        );
    }
    if (typeof c.idle === 'string') notes.push(`${c.label}, idle: ${c.idle}`);
    else if (c.idle && (c.idle.errors || c.idle.dropped || c.idle.held < IDLE_CONNS))
      notes.push(
        `${c.label}, idle: held ${c.idle.held} of ${IDLE_CONNS}, ${c.idle.dropped} dropped by the server, ${c.idle.errors} errors${c.idle.firstError ? ` (first: ${c.idle.firstError})` : ''}`,
      );
  }
  console.log(
    '"!" marks a figure from a run with errors (a wrong status or body, a failed handshake, a timeout, a dropped',
  );
  console.log(
    'connection, or requests that reached the backend without the identity header). mtls/nginx > 1 is better for',
  );
  console.log(
    'rates, < 1 for latency, CPU and memory. ceiling: nginx answering by itself (return 200), no backend; node ceil.:\n' +
      'a bare node:https server with the same certificates and client verification answering by itself, the most\n' +
      'any node:tls proxy can reach. CPU per',
  );
  console.log(
    'connection/request: core-0 CPU time (/proc, 10 ms ticks) over the measured window divided by the correct',
  );
  console.log(
    'responses; it holds when other processes take part of core 0 (last rows), which lowers every rate.',
  );
  const mtlsRes = byKey(contenders, 'mtls')?.results.get('resume');
  if (mtlsRes && typeof mtlsRes !== 'string' && mtlsRes.res.resumed && !mtlsRes.res.ticketsOnResumed)
    console.log(
      '2 and 2b: mtls issues no new session ticket on a resumed connection; in 2 the generator offers the same ticket again, in 2b it uses each ticket once (RFC 8446 C.4, as browsers and OpenSSL clients do).',
    );
  if (notes.length) {
    console.log('');
    for (const n of notes) console.log(`note: ${n}`);
  }
}

function startRss(c: Contender | undefined): { text: string; n?: number } {
  if (!c || c.skipped || c.startRssKb === undefined) return { text: c?.skipped ? 'not run' : '' };
  return { text: fmtMiB(c.startRssKb), n: c.startRssKb };
}

function printVerdicts(contenders: Contender[]): void {
  console.log('');
  const m = byKey(contenders, 'mtls');
  const n = byKey(contenders, 'nginx');
  for (const [sid, target, what] of [
    ['hs', TARGET_FULL, 'full handshakes'],
    ['ka', TARGET_KEEPALIVE, 'keep-alive requests'],
  ] as const) {
    const a = m?.results.get(sid);
    const b = n?.results.get(sid);
    if (!a || !b || typeof a === 'string' || typeof b === 'string') {
      console.log(`verdict ${what}: not measured`);
      continue;
    }
    const ratio = a.res.rate / b.res.rate;
    const flag = errorsOf(a) ? ' (mtls had errors in this run)' : '';
    const costA = (a.proxyUs ?? NaN) + (a.backendUs ?? 0);
    const costB = (b.proxyUs ?? NaN) + (b.backendUs ?? 0);
    const byCpu = Number.isFinite(costA) && Number.isFinite(costB) && costA > 0 ? costB / costA : undefined;
    console.log(
      `verdict ${what}: ${ratio >= target ? 'PASS' : 'BELOW'}: mtls ${fmtInt(a.res.rate)}/s = ${ratio.toFixed(2)}× nginx (${fmtInt(b.res.rate)}/s), target ≥ ${target}×${flag}` +
        (byCpu !== undefined
          ? `; by core-0 CPU per ${sid === 'ka' ? 'request' : 'connection'} (proxy + backend: ${fmtCpu(costA)} µs against ${fmtCpu(costB)} µs) ${byCpu.toFixed(2)}×`
          : ''),
    );
  }
  // Is the generator the bottleneck?
  const ceiling = byKey(contenders, 'ceiling');
  const parts: string[] = [];
  for (const s of SCENARIOS) {
    const r = ceiling?.results.get(s.id);
    if (r && typeof r !== 'string')
      parts.push(
        `${fmtInt(r.res.rate)} ${s.unit} ${s.id === 'ka' ? 'keep-alive' : s.id === 'hs' ? 'full' : 'resumed'} at ${r.res.cpuPct.toFixed(0)}% of core 1`,
      );
  }
  if (parts.length) console.log(`generator ceiling (nginx return 200, no backend): ${parts.join('; ')}`);
  // What node:tls allows at best: the bare node:https server against nginx-as-a-proxy.
  const node = byKey(contenders, 'node');
  const nodeParts: string[] = [];
  for (const [sid, what] of [
    ['hs', 'full handshakes'],
    ['ka', 'keep-alive requests'],
  ] as const) {
    const a = node?.results.get(sid);
    const b = n?.results.get(sid);
    if (a && b && typeof a !== 'string' && typeof b !== 'string')
      nodeParts.push(
        `${what} ${fmtInt(a.res.rate)}/s = ${(a.res.rate / b.res.rate).toFixed(2)}× nginx as a proxy (CPU ${fmtCpu(a.proxyUs ?? NaN)} µs against ${fmtCpu((b.proxyUs ?? NaN) + (b.backendUs ?? 0))} µs for nginx + backend)`,
      );
  }
  if (nodeParts.length)
    console.log(
      `node:https answering by itself (no proxying, no verdict: the most any node:tls proxy reaches): ${nodeParts.join('; ')}`,
    );
  let busiest = 0;
  let busiestWhere = '';
  for (const c of contenders) {
    if (c.key === 'ceiling') continue;
    for (const [sid, r] of c.results)
      if (typeof r !== 'string' && r.res.cpuPct > busiest) {
        busiest = r.res.cpuPct;
        busiestWhere = `${c.label}, ${sid}`;
      }
  }
  if (busiest)
    console.log(
      busiest < GENERATOR_BUSY_PCT
        ? `generator: at most ${busiest.toFixed(0)}% of its core while measuring a proxy (${busiestWhere}): not the bottleneck`
        : `generator: ${busiest.toFixed(0)}% of its core while measuring ${busiestWhere}: it may limit that figure`,
    );
  console.log('(benchmarks inform; they do not gate: exit code 0 either way)');
}

// ---------------------------------------------------------------- CPU profile

/**
 * Runs a scenario against a second mtls proxy started with `--cpu-prof` (the measured one is stopped
 * first: it would only sit idle on the same core), stops it so the profile is written, and prints the
 * top functions and areas by self time. Profiles are kept under .tmp/proxy-bench-profile/.
 *
 * V8 samples wall-clock time: while the proxy's thread waits for the core, the time goes to the
 * function it was in. With the backend on the same core, the backend's whole share (about a quarter
 * of the core under keep-alive load) would show up inside the proxy's upstream write, which wakes it.
 * So for the profile only, a second backend runs on the generator's core, which has room to spare.
 */
async function profileMtls(bin: string, work: string, pki: ProxyPki, contenders: Contender[]): Promise<void> {
  const root = join(REPO, '.tmp', 'proxy-bench-profile', new Date().toISOString().replace(/[:.]/g, '-'));
  await byKey(contenders, 'mtls')?.server?.stop();
  let backend: Backend;
  try {
    backend = await startBackend(BODY, CLIENT_CORE);
  } catch (e) {
    console.log(`CPU profile not taken: ${(e as Error).message.split('\n')[0]}`);
    return;
  }
  try {
    await profileScenarios(bin, work, pki, backend, root);
  } finally {
    await backend.stop();
  }
}

async function profileScenarios(
  bin: string,
  work: string,
  pki: ProxyPki,
  backend: Backend,
  root: string,
): Promise<void> {
  for (const sid of ['ka', 'hs']) {
    const s = SCENARIOS.find((x) => x.id === sid)!;
    const label = s.title.replace(/^\S+ /, '');
    console.log('');
    progress(`CPU profile of mtls proxy: ${label}`);
    const dir = join(root, sid);
    mkdirSync(dir, { recursive: true });
    let proc: Listening | undefined;
    try {
      proc = await startMtlsProxy(
        join(work, `mtls-profile-${sid}`),
        pki,
        backend.port,
        ['--cpu-prof', `--cpu-prof-dir=${dir}`],
        'mtls (profiled)',
      );
      // The generator's measured window, in CLOCK_MONOTONIC µs (V8 stamps its samples with the same clock).
      const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
      let fromUs = 0;
      let toUs = 0;
      const t0 = setTimeout(() => (fromUs = nowUs()), s.run.warmupMs + 5);
      const t1 = setTimeout(() => (toUs = nowUs()), s.run.warmupMs + s.run.durationMs + 5);
      const res = await runLoadgen(
        bin,
        { port: proc.port, cert: pki.clientChain, key: pki.clientKey, body: BODY },
        s.run,
      ).finally(() => {
        clearTimeout(t0);
        clearTimeout(t1);
      });
      await proc.stop();
      const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) {
        console.log(`CPU profile (${label}): no .cpuprofile was written in ${relative(REPO, dir)}`);
        continue;
      }
      const p = summarizeCpuProfile(join(dir, file), REPO, 15, fromUs && toUs ? { fromUs, toUs } : undefined);
      const idlePct = (100 * p.idleMs) / (p.totalMs || 1);
      console.log(
        `CPU profile of mtls proxy (backend on core ${CLIENT_CORE}), ${label}: ${fmtInt(res.rate)} ${s.unit} while profiled (${res.errors} errors); ` +
          `${(p.totalMs / 1000).toFixed(1)} s of samples in the measured window`,
      );
      console.log(
        `(idle) ${idlePct.toFixed(1)}%: the event loop waiting, and native work with no JavaScript on the stack ` +
          '(OpenSSL handshakes and record decryption run there in a TLS server)',
      );
      console.log(`file: ${relative(REPO, join(dir, file))} (Chrome DevTools or speedscope open it)`);
      console.log('');
      printTable(
        ['self time, top functions', 'where', 'through (nearest mtlskit frame)', 'ms', '%'],
        p.top.map((t) => [t.name, t.where, t.via, t.ms.toFixed(0), t.pct.toFixed(1)]),
        p.top.map(() => ''),
        new Set([3, 4]),
      );
      printTable(
        ['self time by area', 'ms', '%'],
        p.areas.map((t) => [t.name, t.ms.toFixed(0), t.pct.toFixed(1)]),
        p.areas.map(() => ''),
        new Set([1, 2]),
      );
    } catch (e) {
      console.log(`CPU profile (${label}) not taken: ${(e as Error).message.split('\n')[0]}`);
    } finally {
      await proc?.stop();
    }
  }
}
