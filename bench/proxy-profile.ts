// Reads a V8 CPU profile (`node --cpu-prof`) and lists where the time went: self time per function
// and per source area, for the proxy benchmark's profiled keep-alive run.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  /** file:line, relative to the repository for our code, node:… for Node's own modules. */
  where: string;
  /** The nearest caller in this repository's code (dist/…) that most of this time came through. */
  via: string;
  ms: number;
  /** Share of every sample in the window, idle included. */
  pct: number;
}

export interface ProfileSummary {
  /** Time covered by the samples counted (the window when one is given). */
  totalMs: number;
  /**
   * "(idle)": the event loop waiting, and also native work that runs in libuv I/O callbacks with no
   * JavaScript on the stack (OpenSSL's handshakes and record decryption in a TLS server).
   */
  idleMs: number;
  top: SelfTime[];
  areas: SelfTime[];
}

function where(cf: CallFrame, repo: string): string {
  if (!cf.url) return '';
  let u = cf.url;
  if (u.startsWith('file://')) {
    try {
      u = relative(repo, fileURLToPath(u));
    } catch {
      // keep the URL
    }
  }
  u = u.replace(/^.*node_modules\//, '');
  return cf.lineNumber >= 0 ? `${u}:${cf.lineNumber + 1}` : u;
}

/** The area a frame belongs to: one of our dist/ folders, a dependency, a Node module, or V8's own. */
function area(cf: CallFrame, repo: string): string {
  const u = cf.url;
  if (!u) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  if (u.startsWith('node:')) return u.replace(/^node:internal\//, 'node:');
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u);
  if (m) return m[1]!;
  if (u.startsWith('file://')) {
    try {
      const rel = relative(repo, fileURLToPath(u));
      return rel.replace(/\.js$/, '');
    } catch {
      return u;
    }
  }
  return u;
}

/** Node modules that only carry calls along: skipped when naming where a native call came from. */
const PLUMBING =
  /^node:(internal\/streams\/|internal\/stream_base_commons|net$|events$|internal\/process\/task_queues|internal\/util$|stream\/promises)/;

/**
 * Self time per function and per area. `window` limits the samples to a span of CLOCK_MONOTONIC
 * microseconds (what `process.hrtime` reads in any process on Linux, and what V8 stamps samples with).
 */
export function summarizeCpuProfile(
  file: string,
  repo: string,
  top = 15,
  window?: { fromUs: number; toUs: number },
): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const distPrefix = 'dist/';
  const viaCache = new Map<number, string>();
  const viaOf = (id: number): string => {
    const cached = viaCache.get(id);
    if (cached !== undefined) return cached;
    // Our nearest frame; without one (stream callbacks), the nearest frame past Node's generic
    // stream, socket and event plumbing.
    let found = '';
    let fallback = '';
    for (let cur = parent.get(id); cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      const w = where(cf, repo);
      if (w.startsWith(distPrefix)) {
        found = `${cf.functionName || '(anonymous)'} ${w}`;
        break;
      }
      if (!fallback && cf.url && !PLUMBING.test(cf.url))
        fallback = `${cf.functionName || '(anonymous)'} ${w}`;
    }
    found ||= fallback;
    viaCache.set(id, found);
    return found;
  };
  // A sample's time is the gap until the next sample; its time stamp is startTime + the deltas so far.
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1]! : 0;
    selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + Math.max(0, dt));
  }
  const fn = new Map<string, { name: string; where: string; us: number; via: Map<string, number> }>();
  const areas = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = byId.get(id)!.callFrame;
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const name = cf.functionName || '(anonymous)';
    const w = where(cf, repo);
    const key = `${name}\u0000${w}`;
    const e = fn.get(key) ?? { name, where: w, us: 0, via: new Map<string, number>() };
    e.us += us;
    const v = w.startsWith(distPrefix) ? '' : viaOf(id);
    e.via.set(v, (e.via.get(v) ?? 0) + us);
    fn.set(key, e);
    const a = area(cf, repo);
    areas.set(a, (areas.get(a) ?? 0) + us);
  }
  const all = total || 1;
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    top: [...fn.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => ({
        name: e.name,
        where: e.where,
        via: [...e.via.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '',
        ms: e.us / 1000,
        pct: (100 * e.us) / all,
      })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([a, us]) => ({ name: a, where: '', via: '', ms: us / 1000, pct: (100 * us) / all })),
  };
}
