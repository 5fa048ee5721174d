// The doctor benchmark (`npm run bench -- --only doctor`): wall time of the built CLI, from spawn to
// exit (Node's start included: that is what a user waits for), for `mtls doctor files | pair | config
// | connect` on a typical pair made at bench time with the CLI, healthy and failing (a client
// certificate from the wrong CA); side by side with the manual openssl workflow the doctor replaces.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MTLS_BIN, distWarning, freePort, which } from './ca-servers.js';
import { median, printTable } from './harness.js';

const WARMUP = 3;
const RUNS = 15;
/** Each row stops early (with fewer runs) once it has used this much time. */
const ROW_BUDGET_MS = 30_000;
/** One command: killed after this. */
const COMMAND_TIMEOUT_MS = 15_000;
/** Targets from issue 5, wall milliseconds (median). */
const TARGETS: Record<string, number> = { files: 300, pair: 300, connect: 2_000 };
const PASSPHRASE = 'doctor bench passphrase (temporary)';

/** A command line; `expect` is the exit status that shows it did the work asked (undefined: any). */
interface Step {
  cmd: string;
  args: string[];
  expect?: number | 'nonzero';
}

interface Timing {
  median: number;
  p90: number;
  max: number;
  runs: number;
}

interface Row {
  group: string;
  case: string;
  name: string;
  result: Timing | string;
  /** On mtls rows: the median target in ms. */
  target?: number;
  /** On peer rows: the mtls row of the same group and case. */
  vs?: Row;
}

function progress(msg: string): void {
  process.stderr.write(`  … ${msg}\n`);
}

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith('MTLS_') && k !== 'NODE_OPTIONS') e[k] = v;
  return { ...e, MTLS_CA_PASSPHRASE: PASSPHRASE, NO_COLOR: '1' };
}

function mtls(...args: string[]): Step {
  return { cmd: process.execPath, args: [MTLS_BIN, ...args] };
}

function runStep(s: Step, cwd: string): void {
  const r = spawnSync(s.cmd, s.args, {
    cwd,
    env: env(),
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: COMMAND_TIMEOUT_MS,
    encoding: 'utf8',
  });
  if (r.error) throw new Error(`${s.cmd} ${s.args.join(' ')}: ${r.error.message}`);
  const ok =
    s.expect === undefined ||
    (s.expect === 'nonzero' ? r.status !== 0 && r.status !== null : r.status === s.expect);
  if (!ok)
    throw new Error(
      `${s.cmd === process.execPath ? 'mtls' : s.cmd} ${s.args.slice(s.cmd === process.execPath ? 1 : 0).join(' ')} exited ${r.status ?? r.signal}, expected ${s.expect}: ${(r.stdout + r.stderr).trim().split('\n').slice(0, 3).join(' | ')}`,
    );
}

function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Warm-up, then up to RUNS timed runs of the steps one after the other (bounded by ROW_BUDGET_MS). */
function time(steps: Step[], cwd: string): Timing {
  const deadline = performance.now() + ROW_BUDGET_MS;
  for (let i = 0; i < WARMUP; i++) for (const s of steps) runStep(s, cwd);
  const ms: number[] = [];
  while (ms.length < RUNS && performance.now() < deadline) {
    const start = performance.now();
    for (const s of steps) runStep(s, cwd);
    ms.push(performance.now() - start);
  }
  return { median: median(ms), p90: percentile(ms, 90), max: Math.max(...ms), runs: ms.length };
}

function attempt(group: string, kase: string, name: string, fn: () => Timing): Row {
  try {
    return { group, case: kase, name, result: fn() };
  } catch (e) {
    return { group, case: kase, name, result: `not run: ${(e as Error).message.split('\n')[0]}` };
  }
}

function setupStep(cwd: string, ...args: string[]): void {
  runStep({ ...mtls(...args), expect: 0 }, cwd);
}

// ---------------------------------------------------------------- nginx

function nginxBin(): string {
  return which('nginx') ? 'nginx' : '/usr/sbin/nginx';
}

/** `prefix`: nginx's own directory (config, pid, temp paths); `pki`: where makePki wrote the files. */
function nginxConf(prefix: string, pki: string, port: number): string {
  const dir = prefix;
  return `worker_processes 1;
events { worker_connections 64; }
http {
  access_log off;
  default_type text/plain;
  client_body_temp_path ${join(dir, 'tmp/client_body')};
  proxy_temp_path ${join(dir, 'tmp/proxy')};
  fastcgi_temp_path ${join(dir, 'tmp/fastcgi')};
  uwsgi_temp_path ${join(dir, 'tmp/uwsgi')};
  scgi_temp_path ${join(dir, 'tmp/scgi')};
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${join(pki, 's/localhost.chain.pem')};
    ssl_certificate_key ${join(pki, 's/localhost.key')};
    ssl_client_certificate ${join(pki, 'cca/ca.pem')};
    ssl_verify_client on;
    ssl_verify_depth 1;
    location / {
      return 200 "ok";
    }
  }
}
`;
}

interface Nginx {
  port: number;
  conf: string;
  stop(): Promise<void>;
}

async function startNginx(dir: string): Promise<Nginx> {
  const prefix = join(dir, 'nginx');
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  const pid = join(prefix, 'nginx.pid');
  writeFileSync(conf, nginxConf(prefix, dir, port));
  const proc: ChildProcess = spawn(
    nginxBin(),
    ['-p', prefix, '-e', 'stderr', '-c', conf, '-g', `daemon off; pid ${pid}; error_log stderr warn;`],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 5_000);
    await gone;
    clearTimeout(t);
  };
  // Ready when the pid file exists (nginx writes it after binding); at most 5 s.
  for (let i = 0; i < 100 && !existsSync(pid); i++) {
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  if (!existsSync(pid)) {
    await stop();
    throw new Error(`nginx did not start: ${log.trim().split('\n').slice(-2).join(' | ')}`);
  }
  return { port, conf, stop };
}

// ---------------------------------------------------------------- the bench

/** The pair, made with the CLI: two CAs, a server for localhost, a client, and a client from the wrong CA. */
function makePki(dir: string): void {
  setupStep(dir, 'ca', 'init', '--dir', 'sca', '--name', 'doctor bench Server CA');
  setupStep(dir, 'ca', 'init', '--dir', 'cca', '--name', 'doctor bench Client CA');
  setupStep(dir, 'issue', 'server', 'localhost', '--dir', 'sca', '--out', 's', '--san', 'ip:127.0.0.1');
  setupStep(dir, 'issue', 'client', 'alice', '--dir', 'cca', '--out', 'c');
  // The failing pair: a client certificate from the server's CA, which nginx does not trust for clients.
  setupStep(dir, 'issue', 'client', 'stranger', '--dir', 'sca', '--out', 'c');
}

interface Case {
  name: string;
  /** The client's files. */
  leaf: string;
  chain: string;
  key: string;
  /** The intermediate it sends (for s_client -cert_chain). */
  inter: string;
  /** mtls exit status: 0 healthy, 1 problems found. */
  doctorExit: number;
  /** openssl verify: 0 or nonzero. */
  verifyExit: number | 'nonzero';
}

const CASES: Case[] = [
  {
    name: 'healthy',
    leaf: 'c/alice.crt',
    chain: 'c/alice.chain.pem',
    key: 'c/alice.key',
    inter: 'cca/intermediate.crt',
    doctorExit: 0,
    verifyExit: 0,
  },
  {
    name: 'wrong CA',
    leaf: 'c/stranger.crt',
    chain: 'c/stranger.chain.pem',
    key: 'c/stranger.key',
    inter: 'sca/intermediate.crt',
    doctorExit: 1,
    verifyExit: 'nonzero',
  },
];

function rowsFor(dir: string, c: Case, nginx: Nginx | undefined, nginxNote: string): Row[] {
  const rows: Row[] = [];
  const pairArgs = [
    '--server-cert',
    's/localhost.chain.pem',
    '--server-key',
    's/localhost.key',
    '--server-ca',
    'sca/ca.pem',
    '--client-cert',
    c.chain,
    '--client-key',
    c.key,
    '--client-ca',
    'cca/ca.pem',
    '--name',
    'localhost',
  ];
  const verifyClient: Step = {
    cmd: 'openssl',
    args: ['verify', '-CAfile', 'cca/ca.pem', '-untrusted', c.chain, '-purpose', 'sslclient', c.leaf],
    expect: c.verifyExit,
  };
  const verifyServer: Step = {
    cmd: 'openssl',
    args: [
      'verify',
      '-CAfile',
      'sca/ca.pem',
      '-untrusted',
      's/localhost.chain.pem',
      '-purpose',
      'sslserver',
      '-verify_hostname',
      'localhost',
      's/localhost.crt',
    ],
    expect: 0,
  };
  const text: Step = { cmd: 'openssl', args: ['x509', '-noout', '-text', '-in', c.leaf], expect: 0 };
  const pair = (
    group: string,
    name: string,
    mtlsSteps: Step[],
    peerName: string | undefined,
    peerSteps: Step[],
  ): void => {
    progress(`${group} ${c.name}: ${name}`);
    const m = attempt(group, c.name, name, () => time(mtlsSteps, dir));
    if (TARGETS[group]) m.target = TARGETS[group];
    rows.push(m);
    if (peerName) {
      progress(`${group} ${c.name}: ${peerName}`);
      rows.push({ ...attempt(group, c.name, peerName, () => time(peerSteps, dir)), vs: m });
    }
  };

  pair(
    'files',
    'mtls doctor files (client side)',
    [
      {
        ...mtls(
          'doctor',
          'files',
          '--cert',
          c.chain,
          '--key',
          c.key,
          '--ca',
          'cca/ca.pem',
          '--role',
          'client',
        ),
        expect: c.doctorExit,
      },
    ],
    'openssl verify + x509 -text',
    [verifyClient, text],
  );
  pair(
    'pair',
    'mtls doctor pair',
    [{ ...mtls('doctor', 'pair', ...pairArgs), expect: c.doctorExit }],
    'openssl verify ×2 (server, client)',
    [verifyServer, verifyClient],
  );
  if (nginx) {
    pair(
      'config',
      'mtls doctor config (nginx.conf)',
      [
        {
          ...mtls(
            'doctor',
            'config',
            nginx.conf,
            '--client-cert',
            c.chain,
            '--client-key',
            c.key,
            '--client-ca',
            'sca/ca.pem',
            '--name',
            'localhost',
          ),
          expect: c.doctorExit,
        },
      ],
      'nginx -t + openssl verify ×2',
      [
        {
          cmd: nginxBin(),
          args: [
            '-t',
            '-q',
            '-p',
            join(dir, 'nginx'),
            '-e',
            'stderr',
            '-c',
            nginx.conf,
            '-g',
            `pid ${join(dir, 'nginx', 'test.pid')};`,
          ],
          expect: 0,
        },
        verifyServer,
        verifyClient,
      ],
    );
    const target = `127.0.0.1:${nginx.port}`;
    pair(
      'connect',
      'mtls doctor connect (nginx, verify on)',
      [
        {
          ...mtls(
            'doctor',
            'connect',
            target,
            '--cert',
            c.chain,
            '--key',
            c.key,
            '--ca',
            'sca/ca.pem',
            '--servername',
            'localhost',
          ),
          expect: c.doctorExit,
        },
      ],
      'openssl s_client </dev/null',
      [
        {
          cmd: 'openssl',
          args: [
            's_client',
            '-connect',
            target,
            '-servername',
            'localhost',
            '-cert',
            c.leaf,
            '-cert_chain',
            c.inter,
            '-key',
            c.key,
            '-CAfile',
            'sca/ca.pem',
          ],
        },
      ],
    );
  } else {
    rows.push({ group: 'config', case: c.name, name: 'mtls doctor config', result: nginxNote });
    rows.push({ group: 'connect', case: c.name, name: 'mtls doctor connect', result: nginxNote });
  }
  return rows;
}

const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

function printRows(rows: Row[]): void {
  const header = [
    'mode',
    'pair',
    'implementation',
    'median ms',
    'p90 ms',
    'max ms',
    'runs',
    'vs mtls',
    'target',
    'verdict',
  ];
  const body = rows.map((r) => {
    if (typeof r.result === 'string') return [r.group, r.case, r.name, r.result, '', '', '', '', '', ''];
    const t = r.result;
    const base = r.vs && typeof r.vs.result !== 'string' ? r.vs.result : undefined;
    // mtls ÷ this: how long the doctor takes for one manual workflow (2.0× = twice as long).
    const ratio = base ? `${(base.median / t.median).toFixed(1)}×` : '';
    const target = r.target ? `< ${r.target}` : '';
    const verdict = r.target ? (t.median < r.target ? 'PASS' : 'BELOW') : '';
    return [
      r.group,
      r.case,
      r.name,
      ms(t.median),
      ms(t.p90),
      ms(t.max),
      String(t.runs),
      ratio,
      target,
      verdict,
    ];
  });
  printTable(
    header,
    body,
    rows.map((r) => r.group),
    new Set([3, 4, 5, 6, 7]),
  );
  console.log(
    `wall time from spawn to exit, Node start included; ${WARMUP} warm-up + up to ${RUNS} timed runs per row`,
  );
  console.log(
    `(at most ${ROW_BUDGET_MS / 1000} s per row). vs mtls: the doctor's median ÷ this workflow's median. Targets (issue 5):`,
  );
  console.log('files and pair < 300 ms, connect < 2 s (medians); benchmarks inform, they do not gate.');
}

function printVerdict(rows: Row[]): void {
  console.log('');
  for (const r of rows) {
    if (!r.target) continue;
    const peer = rows.find((o) => o.vs === r);
    if (typeof r.result === 'string') {
      console.log(`verdict ${r.group} (${r.case}): ${r.result}`);
      continue;
    }
    const peerText =
      peer && typeof peer.result !== 'string'
        ? ` (the openssl workflow: ${ms(peer.result.median)} ms, and it does not say which side must change)`
        : '';
    console.log(
      `verdict ${r.group} (${r.case}): ${r.result.median < r.target ? 'PASS' : 'BELOW'}: ${ms(r.result.median)} ms median (p90 ${ms(r.result.p90)}) against < ${r.target} ms${peerText}`,
    );
  }
}

export async function runDoctorBench(): Promise<void> {
  const startLoad = loadavg()[0]!;
  console.log('mtls doctor: wall time of the built CLI, next to the manual openssl workflow');
  console.log(`  date      ${new Date().toISOString()}`);
  console.log(
    `  node      ${process.version}   ${spawnSync('openssl', ['version'], { encoding: 'utf8' }).stdout?.trim() || 'openssl: not found'}`,
  );
  console.log(
    `  cpu       ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}   load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    '  pair      made by the CLI: mtls ca init ×2, mtls issue server localhost, mtls issue client (P-256)',
  );
  console.log('  failing   a client certificate from the server CA, which nginx does not trust for clients');
  const stale = distWarning()?.replace('the CA rows', 'the doctor rows');
  if (stale) console.log(`  warning   ${stale}`);
  console.log('');
  if (!existsSync(MTLS_BIN)) {
    console.log('doctor: not run: dist/bin/mtls.js is missing (run npm run build first)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mtls-doctor-bench-'));
  let nginx: Nginx | undefined;
  try {
    progress('making the pair with the CLI');
    makePki(dir);
    let nginxNote = 'not run: nginx not found';
    if (which('nginx') || existsSync('/usr/sbin/nginx')) {
      try {
        progress('starting nginx (ssl_verify_client on)');
        nginx = await startNginx(dir);
      } catch (e) {
        nginxNote = `not run: ${(e as Error).message.split('\n')[0]}`;
      }
    }
    // Context: what any Node CLI pays before doing anything, and mtls loading the doctor without
    // checking anything (its --help): the rest of a doctor row is the checks themselves.
    progress('context: node startup, mtls doctor files --help');
    const rows: Row[] = [
      attempt('context', '', 'node -e "" (bare Node start)', () =>
        time([{ cmd: process.execPath, args: ['-e', ''], expect: 0 }], dir),
      ),
      attempt('context', '', 'mtls doctor files --help (load only)', () =>
        time([{ ...mtls('doctor', 'files', '--help'), expect: 0 }], dir),
      ),
      ...CASES.flatMap((c) => rowsFor(dir, c, nginx, nginxNote)),
    ];
    // Group rows by mode (files, pair, config, connect), healthy before failing.
    const order = ['context', 'files', 'pair', 'config', 'connect'];
    rows.sort((a, b) => order.indexOf(a.group) - order.indexOf(b.group));
    printRows(rows);
    printVerdict(rows);
  } finally {
    await nginx?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const endLoad = loadavg()[0]!;
  console.log(
    `load at start ${startLoad.toFixed(2)}, at end ${endLoad.toFixed(2)}` +
      (startLoad >= 1 ? ': something else was running, so these figures are noisy; run again when idle' : ''),
  );
}
