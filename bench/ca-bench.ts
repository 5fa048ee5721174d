// The CA service benchmarks (`npm run bench -- --only ca`): issuance over HTTPS and OCSP responses per
// second, mtlskit's `mtls ca serve` side by side with `cfssl serve`, `cfssl ocspserve` and the
// `openssl ocsp` responder. Every server runs on core 0, this process (the load generator) on core 1.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  certIdFor,
  createCsr,
  decodePem,
  encodeOcspRequest,
  extension,
  generateKey,
  isSignedBy,
  parseCertificate,
  parseOcspResponse,
  verifyOcspResponseSignature,
  type Certificate,
} from '../src/pki/index.js';
import {
  runLoad,
  type LoadOptions,
  type LoadPhase,
  type LoadResponse,
  type LoadResult,
  type LoadTarget,
} from './ca-loadgen.js';
import { printTable } from './harness.js';
import {
  canPin,
  cfsslCertdbCount,
  createCfsslCertdb,
  createPeerCa,
  distWarning,
  initMtlskitCa,
  opensslIndex,
  pinSelfToClientCore,
  startCfsslOcspserve,
  startCfsslServe,
  startMtlskit,
  startOpensslOcsp,
  which,
  type PeerCa,
  type Rss,
  type Server,
} from './ca-servers.js';

/** Concurrent keep-alive connections, each with one request in flight. */
const CONCURRENCY = 8;
const ISSUE_WARMUP: LoadPhase = { count: 1_000, ms: 2_000 };
const ISSUE_RUN: LoadPhase = { count: 16_000, ms: 5_000 };
const OCSP_SERIALS = 1_000;
const OCSP_WARMUP: LoadPhase = { count: 3_000, ms: 2_000 };
const OCSP_RUN: LoadPhase = { count: 200_000, ms: 5_000 };
/** mtlskit must reach this multiple of the reference contender measured in the same run. */
const TARGET_FACTOR = 1.5;

interface Measured extends LoadResult {
  rss: Rss | undefined;
}

interface Row {
  group: string;
  name: string;
  result: Measured | string;
  /** The contender whose figure sets mtlskit's target (on the mtlskit row of a group). */
  reference?: string;
  /** Rows compared with the mtlskit row of their group. */
  vs?: boolean;
}

interface Csr {
  name: string;
  pem: string;
}

function progress(msg: string): void {
  process.stderr.write(`  … ${msg}\n`);
}

function pemToDer(pem: string): Buffer {
  return decodePem(pem)[0]!.der;
}

/** The extensions every issued leaf must carry: mtlskit's client profile plus AIA OCSP and CRL DP. */
const LEAF_EXTENSIONS = [
  '2.5.29.19',
  '2.5.29.15',
  '2.5.29.37',
  '2.5.29.14',
  '2.5.29.35',
  '2.5.29.17',
  '1.3.6.1.5.5.7.1.1',
  '2.5.29.31',
];

function checkLeaf(name: string, der: Buffer, issuer: Certificate): Certificate {
  const cert = parseCertificate(der);
  const missing = LEAF_EXTENSIONS.filter((oid) => !extension(cert, oid));
  if (!isSignedBy(cert, issuer) || missing.length)
    throw new Error(
      `${name} issued an unexpected certificate (signature ok: ${isSignedBy(cert, issuer)}, missing: ${missing.join(', ')})`,
    );
  return cert;
}

function checkOcsp(name: string, der: Buffer, issuer: Certificate, responder?: Certificate): void {
  const resp = parseOcspResponse(der);
  const signer = responder ?? resp.certs[0];
  if (resp.status !== 'successful' || resp.responses[0]?.status !== 'good')
    throw new Error(`${name} answered ${resp.status} / ${resp.responses[0]?.status ?? 'no single response'}`);
  if (!signer || !isSignedBy(signer, issuer) || !verifyOcspResponseSignature(resp, signer))
    throw new Error(`${name}: the OCSP response does not verify`);
}

function expectStatus(name: string, res: LoadResponse, status = 200): void {
  if (res.status !== status)
    throw new Error(`${name} answered HTTP ${res.status}: ${res.body.toString('utf8').slice(0, 200)}`);
}

/** One request outside any timed window (readiness probes). */
async function once(target: LoadTarget, req: LoadOptions['request']): Promise<LoadResponse> {
  let got: LoadResponse | undefined;
  await runLoad(target, {
    concurrency: 1,
    warmup: { count: 0, ms: 0 },
    run: { count: 1, ms: 5_000 },
    request: req,
    check: (res) => (got = res),
    timeoutMs: 2_000,
  });
  return got!;
}

async function measure(
  server: Server,
  target: LoadTarget,
  opts: Omit<LoadOptions, 'concurrency'>,
): Promise<Measured> {
  const r = await runLoad(target, { concurrency: CONCURRENCY, ...opts });
  return { ...r, rss: server.rss() };
}

async function attempt(group: string, name: string, fn: () => Promise<Measured>): Promise<Row> {
  try {
    return { group, name, result: await fn() };
  } catch (e) {
    return { group, name, result: `not run: ${(e as Error).message.split('\n')[0]}` };
  }
}

function makeCsrs(n: number): Csr[] {
  const out: Csr[] = [];
  for (let i = 0; i < n; i++) {
    const name = `client-${i}.bench.internal`;
    const key = generateKey('p256');
    out.push({
      name,
      pem: createCsr({
        key,
        subject: [[{ oid: '2.5.4.3', value: `client-${i}` }]],
        sans: [{ type: 'dns', value: name }],
      }).pem,
    });
  }
  return out;
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };
const OCSP_HEADERS = { 'Content-Type': 'application/ocsp-request' };

async function stopQuietly(s: Server | undefined): Promise<void> {
  try {
    await s?.stop();
  } catch {
    // already gone
  }
}

/** `afterPki`: the PKI section just kept a core busy, which the 1-minute load average still shows. */
export async function runCaBench(opts: { afterPki?: boolean } = {}): Promise<void> {
  const pinned = pinSelfToClientCore();
  console.log('mtlskit CA service benchmarks');
  console.log(`  date      ${new Date().toISOString()}`);
  console.log(
    `  cpu       ${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}   load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(
    `  pinning   ${pinned ? 'each server on core 0 (taskset -c 0), load generator on core 1' : 'none (taskset or a second core unavailable): figures are noisier'}`,
  );
  console.log(
    `  load      ${CONCURRENCY} keep-alive connections to 127.0.0.1, one request in flight each; warm-up, then ≤ ${OCSP_RUN.ms / 1000} s per contender`,
  );
  const stale = distWarning();
  if (stale) console.log(`  warning   ${stale}`);
  console.log('');

  const startLoad = loadavg()[0]!;
  const work = mkdtempSync(join(tmpdir(), 'mtlskit-ca-bench-'));
  const rows: Row[] = [];
  const servers: Server[] = [];
  const started = async <T extends Server>(p: Promise<T>): Promise<T> => {
    const s = await p;
    servers.push(s);
    return s;
  };
  try {
    const total = ISSUE_WARMUP.count + ISSUE_RUN.count;
    progress(`${total.toLocaleString('en-US')} P-256 keys and CSRs`);
    const csrs = makeCsrs(total);

    // ------------------------------------------------------------ issuance
    const issue = 'issue (HTTPS)';
    const caDir = join(work, 'mtlskit-ca');
    let mtlskitCerts: Certificate[] = [];
    let intermediate: Certificate | undefined;
    rows.push({
      ...(await attempt(issue, 'mtlskit ca serve, /v1/sign, SQLite', async () => {
        initMtlskitCa(caDir);
        const ca = await started(startMtlskit(caDir));
        intermediate = ca.intermediate;
        // Tokens are single-use: each request needs its own, made before the phase that uses it.
        const tokens: string[] = [];
        const makeTokens = async (n: number): Promise<void> => {
          const from = tokens.length;
          await runLoad(
            { url: ca.mtlsUrl, ca: ca.rootPem, cert: ca.admin.cert, key: ca.admin.key },
            {
              concurrency: CONCURRENCY,
              warmup: { count: 0, ms: 0 },
              run: { count: n, ms: 120_000 },
              request: (i) => ({
                method: 'POST',
                path: '/v1/tokens',
                headers: JSON_HEADERS,
                body: Buffer.from(
                  JSON.stringify({ profile: 'client', sans: [`dns:${csrs[from + i]!.name}`], maxTtl: '24h' }),
                ),
              }),
              check: (res, i) => {
                expectStatus('POST /v1/tokens', res);
                tokens[from + i] = (JSON.parse(res.body.toString('utf8')) as { token: string }).token;
              },
            },
          );
        };
        const kept: Buffer[] = [];
        const signLoad = (phase: 'warmup' | 'run', count: number): Omit<LoadOptions, 'concurrency'> => {
          const offset = phase === 'warmup' ? 0 : ISSUE_WARMUP.count;
          return {
            warmup: phase === 'warmup' ? { count, ms: ISSUE_WARMUP.ms } : { count: 0, ms: 0 },
            run: phase === 'run' ? { count, ms: ISSUE_RUN.ms } : { count: 0, ms: 0 },
            request: (i) => ({
              method: 'POST',
              path: '/v1/sign',
              headers: JSON_HEADERS,
              body: Buffer.from(JSON.stringify({ token: tokens[offset + i], csr: csrs[offset + i]!.pem })),
            }),
            check: (res, i) => {
              expectStatus('mtlskit /v1/sign', res);
              if (i === 0 && phase === 'warmup') {
                const { certificate } = JSON.parse(res.body.toString('utf8')) as { certificate: string };
                checkLeaf('mtlskit', pemToDer(certificate), ca.intermediate);
              }
              if (phase === 'run' && kept.length < OCSP_SERIALS) kept.push(res.body);
            },
          };
        };
        progress(`mtlskit: ${ISSUE_WARMUP.count} tokens, issuance warm-up`);
        await makeTokens(ISSUE_WARMUP.count);
        const t0 = performance.now();
        const warm = await runLoad(
          { url: ca.publicUrl, ca: ca.rootPem },
          {
            concurrency: CONCURRENCY,
            ...signLoad('warmup', ISSUE_WARMUP.count),
          },
        );
        // Enough tokens for the timed phase at 1.5× the warm-up rate (it ends at ISSUE_RUN.ms anyway).
        const warmRate = (warm.used * 1000) / (performance.now() - t0);
        const n = Math.max(
          2_000,
          Math.min(ISSUE_RUN.count, Math.ceil((warmRate * ISSUE_RUN.ms * 1.5) / 1000)),
        );
        tokens.length = ISSUE_WARMUP.count; // unused warm-up tokens are skipped, never reused
        progress(`mtlskit: ${n.toLocaleString('en-US')} tokens (untimed), then issuance`);
        await makeTokens(n);
        const r = await measure(ca, { url: ca.publicUrl, ca: ca.rootPem }, signLoad('run', n));
        mtlskitCerts = kept.map((b) =>
          parseCertificate(pemToDer((JSON.parse(b.toString('utf8')) as { certificate: string }).certificate)),
        );
        await ca.stop();
        return r;
      })),
      reference: 'cfssl serve, /api/v1/cfssl/sign, no DB',
    });

    let peer: PeerCa | undefined;
    let cfsslCerts: Certificate[] = [];
    let cfsslResponses: string[] = [];
    const haveCfssl = which('cfssl');
    const probeCsr = makeCsrs(1)[0]!;
    const cfsslProbe = (caPem: string) => async (url: string) =>
      (
        await once({ url, ca: caPem }, () => ({
          method: 'POST',
          path: '/api/v1/cfssl/sign',
          headers: JSON_HEADERS,
          body: Buffer.from(JSON.stringify({ certificate_request: probeCsr.pem, profile: 'client' })),
        }))
      ).status === 200;
    const certOf = (b: Buffer): string =>
      (JSON.parse(b.toString('utf8')) as { result: { certificate: string } }).result.certificate;
    const cfsslIssue = (pca: PeerCa, kept?: Buffer[]): Omit<LoadOptions, 'concurrency'> => ({
      warmup: ISSUE_WARMUP,
      run: ISSUE_RUN,
      request: (i) => ({
        method: 'POST',
        path: '/api/v1/cfssl/sign',
        headers: JSON_HEADERS,
        body: Buffer.from(JSON.stringify({ certificate_request: csrs[i]!.pem, profile: 'client' })),
      }),
      check: (res, i) => {
        expectStatus('cfssl /api/v1/cfssl/sign', res);
        if (i === 0) checkLeaf('cfssl', pemToDer(certOf(res.body)), pca.ca);
        if (kept && i >= ISSUE_WARMUP.count && kept.length < OCSP_SERIALS) kept.push(res.body);
      },
    });
    const needCfssl = (): PeerCa => {
      if (!haveCfssl) throw new Error('cfssl not found (Debian: apt-get install golang-cfssl)');
      if (!peer) {
        const pdir = join(work, 'peer-ca');
        mkdirSync(pdir);
        peer = createPeerCa(pdir);
      }
      return peer;
    };
    rows.push({
      ...(await attempt(issue, 'cfssl serve, /api/v1/cfssl/sign, no DB', async () => {
        const pca = needCfssl();
        const cfssl = await started(startCfsslServe(pca, cfsslProbe(pca.caPem)));
        progress('cfssl serve: issuance');
        const kept: Buffer[] = [];
        const r = await measure(cfssl, { url: cfssl.url, ca: pca.caPem }, cfsslIssue(pca, kept));
        const pems = kept.map(certOf);
        cfsslCerts = pems.map((p) => parseCertificate(pemToDer(p)));
        // Pre-signed OCSP responses for cfssl ocspserve, from the same server's ocspsign endpoint
        // (the signer `cfssl ocsprefresh` uses), outside any timed window.
        progress('cfssl serve: 1,000 OCSP responses for ocspserve (ocspsign, untimed)');
        cfsslResponses = new Array<string>(pems.length);
        await runLoad(
          { url: cfssl.url, ca: pca.caPem },
          {
            concurrency: CONCURRENCY,
            warmup: { count: 0, ms: 0 },
            run: { count: pems.length, ms: 60_000 },
            request: (i) => ({
              method: 'POST',
              path: '/api/v1/cfssl/ocspsign',
              headers: JSON_HEADERS,
              body: Buffer.from(JSON.stringify({ certificate: pems[i], status: 'good' })),
            }),
            check: (res, i) => {
              expectStatus('cfssl /api/v1/cfssl/ocspsign', res);
              cfsslResponses[i] = (
                JSON.parse(res.body.toString('utf8')) as { result: { ocspResponse: string } }
              ).result.ocspResponse;
            },
          },
        );
        await cfssl.stop();
        return r;
      })),
      vs: true,
    });
    rows.push({
      ...(await attempt(issue, 'cfssl serve + SQLite certdb (stores each)', async () => {
        const pca = needCfssl();
        const dbConfig = createCfsslCertdb(pca.dir);
        const cfssl = await started(startCfsslServe(pca, cfsslProbe(pca.caPem), dbConfig));
        progress('cfssl serve + certdb: issuance');
        const r = await measure(cfssl, { url: cfssl.url, ca: pca.caPem }, cfsslIssue(pca));
        await cfssl.stop();
        const stored = cfsslCertdbCount(dbConfig);
        if (stored < r.used) throw new Error(`the certdb holds ${stored} certificates for ${r.used} answers`);
        return r;
      })),
      vs: true,
    });

    // ------------------------------------------------------------ OCSP
    const ocsp = 'OCSP (HTTP)';
    const ocspLoad = (
      requests: Buffer[],
      check: (res: LoadResponse, i: number) => void,
      nonce = false,
      certIds?: ReturnType<typeof certIdFor>[],
    ): Omit<LoadOptions, 'concurrency'> => ({
      warmup: OCSP_WARMUP,
      run: OCSP_RUN,
      request: (i) => ({
        method: 'POST',
        path: '/ocsp',
        headers: OCSP_HEADERS,
        body: nonce
          ? encodeOcspRequest([certIds![i % certIds!.length]!], { nonce: randomBytes(16) })
          : requests[i % requests.length]!,
      }),
      check: (res, i) => {
        expectStatus('OCSP', res);
        if (res.body.length < 100) throw new Error(`an OCSP error response (${res.body.toString('hex')})`);
        check(res, i);
      },
    });

    const mtlskitIds = intermediate ? mtlskitCerts.map((c) => certIdFor(c, intermediate!)) : [];
    const mtlskitReqs = mtlskitIds.map((id) => encodeOcspRequest([id]));
    let mtlskitOcsp: Server | undefined;
    rows.push({
      ...(await attempt(ocsp, 'mtlskit /ocsp, no nonce (cached)', async () => {
        if (!mtlskitReqs.length || !intermediate)
          throw new Error('no certificates from the mtlskit issuance run');
        const inter = intermediate;
        mtlskitOcsp = await started(startMtlskit(caDir));
        const s = mtlskitOcsp as Awaited<ReturnType<typeof startMtlskit>>;
        progress('mtlskit: OCSP, no nonce');
        return measure(
          s,
          { url: s.httpUrl },
          ocspLoad(mtlskitReqs, (res, i) => {
            if (i === 0) checkOcsp('mtlskit', res.body, inter);
          }),
        );
      })),
      reference: 'openssl ocsp responder',
    });
    rows.push(
      await attempt(ocsp, 'mtlskit /ocsp, with nonce (signed per request)', async () => {
        if (!mtlskitOcsp || !intermediate) throw new Error('the mtlskit CA is not running');
        const s = mtlskitOcsp as Awaited<ReturnType<typeof startMtlskit>>;
        const inter = intermediate;
        progress('mtlskit: OCSP, with nonce');
        return measure(
          s,
          { url: s.httpUrl },
          ocspLoad(
            [],
            (res, i) => {
              if (i === 0) checkOcsp('mtlskit (nonce)', res.body, inter);
            },
            true,
            mtlskitIds,
          ),
        );
      }),
    );
    await stopQuietly(mtlskitOcsp);

    const peerReqs = peer ? cfsslCerts.map((c) => encodeOcspRequest([certIdFor(c, peer!.ca)])) : [];
    rows.push({
      ...(await attempt(ocsp, 'openssl ocsp responder', async () => {
        if (!which('openssl')) throw new Error('openssl not found');
        if (!peer || !peerReqs.length) throw new Error('no certificates from the cfssl run to index');
        const pca = peer;
        const index = join(pca.dir, 'index.txt');
        writeFileSync(index, opensslIndex(cfsslCerts));
        const probe = async (url: string): Promise<boolean> =>
          (
            await once({ url }, () => ({
              method: 'POST',
              path: '/',
              headers: OCSP_HEADERS,
              body: peerReqs[0]!,
            }))
          ).status === 200;
        const s = await started(startOpensslOcsp(pca, index, probe));
        progress('openssl ocsp: OCSP');
        const r = await measure(
          s,
          { url: s.url },
          ocspLoad(peerReqs, (res, i) => {
            if (i === 0) checkOcsp('openssl ocsp', res.body, pca.ca);
          }),
        );
        await s.stop();
        return r;
      })),
      vs: true,
    });
    rows.push({
      ...(await attempt(ocsp, 'cfssl ocspserve (pre-signed file)', async () => {
        if (!haveCfssl) throw new Error('cfssl not found (Debian: apt-get install golang-cfssl)');
        if (!peer || !cfsslResponses.length) throw new Error('no OCSP responses from the cfssl run');
        const pca = peer;
        const file = join(pca.dir, 'responses.b64');
        writeFileSync(file, cfsslResponses.join('\n') + '\n');
        const probe = async (url: string): Promise<boolean> =>
          (
            await once({ url }, () => ({
              method: 'POST',
              path: '/',
              headers: OCSP_HEADERS,
              body: peerReqs[0]!,
            }))
          ).status === 200;
        const s = await started(startCfsslOcspserve(file, probe));
        progress('cfssl ocspserve: OCSP');
        const r = await measure(
          s,
          { url: s.url },
          ocspLoad(peerReqs, (res, i) => {
            if (i === 0) checkOcsp('cfssl ocspserve', res.body, pca.ca);
          }),
        );
        await s.stop();
        return r;
      })),
      vs: true,
    });
  } finally {
    for (const s of servers) await stopQuietly(s);
    rmSync(work, { recursive: true, force: true });
  }

  printResults(rows);
  printVerdicts(rows);
  const endLoad = loadavg()[0]!;
  // This section keeps both cores busy; after the PKI section the load starts near 1 on its own.
  const busy = startLoad >= (opts.afterPki ? 1.7 : 0.7) || endLoad >= 2.7;
  console.log(
    `load at start ${startLoad.toFixed(2)}, at end ${endLoad.toFixed(2)}` +
      (busy ? ': something else was running, so these figures are low and noisy; run again when idle' : ''),
  );
  if (!canPin()) console.log('(unpinned: server and load generator competed for the same cores)');
}

function fmtInt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function mtlskitRow(rows: Row[], group: string): Row | undefined {
  return rows.find((r) => r.group === group && r.reference);
}

function referenceOf(rows: Row[], row: Row): Row | undefined {
  return rows.find((r) => r.group === row.group && r.name === row.reference);
}

function measuredRef(rows: Row[], row: Row): Measured | undefined {
  const ref = referenceOf(rows, row);
  return ref && typeof ref.result !== 'string' ? ref.result : undefined;
}

function printResults(rows: Row[]): void {
  const header = [
    'benchmark',
    'implementation',
    'ops/s',
    'p50 ms',
    'p99 ms',
    'conns',
    'RSS MiB (peak)',
    'mtlskit ÷ this',
    'target',
    'verdict',
  ];
  const notes: string[] = [];
  const body = rows.map((r) => {
    if (typeof r.result === 'string') {
      notes.push(`${r.name}: ${r.result}`);
      return [r.group, r.name, `not run (note ${notes.length})`, '', '', '', '', '', '', ''];
    }
    const m = r.result;
    const base = mtlskitRow(rows, r.group);
    const baseM = base && typeof base.result !== 'string' ? base.result : undefined;
    const ratio = r.reference ? '1×' : r.vs && baseM ? `${(baseM.opsPerSec / m.opsPerSec).toFixed(2)}×` : '';
    const ref = r.reference ? measuredRef(rows, r) : undefined;
    const target = ref
      ? `≥ ${fmtInt(ref.opsPerSec * TARGET_FACTOR)}`
      : r.reference
        ? `≥ ${TARGET_FACTOR}× ?`
        : '';
    const verdict = ref ? (m.opsPerSec >= ref.opsPerSec * TARGET_FACTOR ? 'PASS' : 'BELOW') : '';
    const rss = m.rss ? `${(m.rss.nowKb / 1024).toFixed(0)} (${(m.rss.peakKb / 1024).toFixed(0)})` : '?';
    return [
      r.group,
      r.name,
      fmtInt(m.opsPerSec),
      fmtMs(m.p50Ms),
      fmtMs(m.p99Ms),
      String(m.connections),
      rss,
      ratio,
      target,
      verdict,
    ];
  });
  printTable(
    header,
    body,
    rows.map((r) => r.group),
    new Set([2, 3, 4, 5, 6, 7]),
  );
  notes.forEach((n, i) => console.log(`note ${i + 1}: ${n}`));
  if (notes.length) console.log('');
  console.log(
    `ops/s: requests completed in the timed phase ÷ its length (≤ ${ISSUE_RUN.ms / 1000} s after a warm-up); p50/p99: per-request`,
  );
  console.log(
    'latency; conns: connections opened in the timed phase; RSS: the server process after its run (VmRSS, VmHWM).',
  );
}

function printVerdicts(rows: Row[]): void {
  console.log('');
  for (const r of rows) {
    if (!r.reference) continue;
    const ref = measuredRef(rows, r);
    if (typeof r.result === 'string' || !ref) {
      console.log(
        `verdict ${r.group}: no verdict (${typeof r.result === 'string' ? 'mtlskit' : r.reference} not measured)`,
      );
      continue;
    }
    const ratio = r.result.opsPerSec / ref.opsPerSec;
    const target = ref.opsPerSec * TARGET_FACTOR;
    console.log(
      `verdict ${r.group}: ${r.result.opsPerSec >= target ? 'PASS' : 'BELOW'}: mtlskit ${fmtInt(r.result.opsPerSec)}/s, ` +
        `${ratio.toFixed(2)}× ${r.reference} (${fmtInt(ref.opsPerSec)}/s); target ≥ ${TARGET_FACTOR}× = ${fmtInt(target)}/s`,
    );
  }
  console.log('(benchmarks inform; they do not gate: exit code 0 either way)');
}
