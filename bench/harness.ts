// Measurement loops for the benchmarks: warm-up, then rounds bounded in count and in time; the
// figure reported is the median round. Everything runs on the calling thread, one operation at a time.

export interface LoopOptions {
  /** Warm-up: stop after this many milliseconds or iterations, whichever comes first. */
  warmupMs: number;
  warmupIterations: number;
  /** Each round: stop after this many milliseconds or iterations, whichever comes first. */
  roundMs: number;
  roundIterations: number;
  rounds: number;
}

export interface Measurement {
  /** Operations per second of the median round. */
  opsPerSec: number;
  usPerOp: number;
  /** Operations per second of every round, in the order run. */
  rounds: number[];
  /** Operations timed over all rounds (warm-up excluded). */
  iterations: number;
}

export const IN_PROCESS: LoopOptions = {
  warmupMs: 400,
  warmupIterations: 20_000,
  roundMs: 800,
  roundIterations: 50_000,
  rounds: 5,
};

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function summarize(rounds: number[], iterations: number): Measurement {
  const opsPerSec = median(rounds);
  return { opsPerSec, usPerOp: 1e6 / opsPerSec, rounds, iterations };
}

/** Times a synchronous operation; `fn` gets the iteration number (use it to cycle through inputs). */
export function measureSync(fn: (i: number) => unknown, opts: LoopOptions = IN_PROCESS): Measurement {
  let i = 0;
  const warmEnd = performance.now() + opts.warmupMs;
  for (let n = 0; n < opts.warmupIterations && performance.now() < warmEnd; n++) fn(i++);
  const rounds: number[] = [];
  let total = 0;
  for (let r = 0; r < opts.rounds; r++) {
    const start = performance.now();
    const end = start + opts.roundMs;
    let n = 0;
    let now = start;
    while (n < opts.roundIterations && now < end) {
      fn(i++);
      n++;
      now = performance.now();
    }
    rounds.push((n * 1000) / (now - start));
    total += n;
  }
  return summarize(rounds, total);
}

/** Times an asynchronous operation, awaited one at a time (no overlap). */
export async function measureAsync(
  fn: (i: number) => Promise<unknown>,
  opts: LoopOptions = IN_PROCESS,
): Promise<Measurement> {
  let i = 0;
  const warmEnd = performance.now() + opts.warmupMs;
  for (let n = 0; n < opts.warmupIterations && performance.now() < warmEnd; n++) await fn(i++);
  const rounds: number[] = [];
  let total = 0;
  for (let r = 0; r < opts.rounds; r++) {
    const start = performance.now();
    const end = start + opts.roundMs;
    let n = 0;
    let now = start;
    while (n < opts.roundIterations && now < end) {
      await fn(i++);
      n++;
      now = performance.now();
    }
    rounds.push((n * 1000) / (now - start));
    total += n;
  }
  return summarize(rounds, total);
}

/**
 * Times a batch runner (an external process loop): `run(count)` performs `count` operations and
 * returns when done. One small calibration batch sizes the rounds to about `roundMs` each, within
 * [minBatch, maxBatch] operations.
 */
export function measureBatches(
  run: (count: number) => void,
  opts: { roundMs: number; minBatch: number; maxBatch: number; rounds: number },
): Measurement {
  const calStart = performance.now();
  run(opts.minBatch);
  const perOpMs = (performance.now() - calStart) / opts.minBatch;
  const batch = Math.max(opts.minBatch, Math.min(opts.maxBatch, Math.round(opts.roundMs / perOpMs)));
  const rounds: number[] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const start = performance.now();
    run(batch);
    rounds.push((batch * 1000) / (performance.now() - start));
  }
  return summarize(rounds, batch * opts.rounds);
}

/**
 * Prints an aligned table: numeric columns right-aligned, a blank line between groups
 * (`groups[i]` is row i's group).
 */
export function printTable(
  header: string[],
  body: string[][],
  groups: readonly string[],
  numeric: ReadonlySet<number>,
): void {
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, c) => (numeric.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  let group = groups[0];
  body.forEach((row, i) => {
    if (groups[i] !== group) {
      console.log('');
      group = groups[i];
    }
    console.log(line(row));
  });
  console.log('');
}
