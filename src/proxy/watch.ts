// Watches the files a configuration names, through their directories: rotations replace files by
// rename (and Kubernetes swaps a `..data` symlink), which a watch on the file itself would miss.
// Events are debounced, and the callback runs only when the content of a watched file changed.
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';

export interface FileWatch {
  /** Replaces the watched set (after a reload names other files). */
  update(paths: readonly string[]): void;
  close(): void;
}

function digestOf(paths: readonly string[]): string {
  const h = createHash('sha256');
  for (const p of [...paths].sort()) {
    h.update(p).update('\0');
    try {
      h.update(readFileSync(p));
    } catch (e) {
      h.update(`missing:${(e as NodeJS.ErrnoException).code ?? ''}`);
    }
    h.update('\0');
  }
  return h.digest('hex');
}

/**
 * Calls `onChange` (debounced by `debounceMs`) when the content of any of `paths` changes. A poll
 * every `pollMs` backs up the directory watches (network file systems, missed events).
 */
export function watchFiles(
  paths: readonly string[],
  onChange: () => void,
  opts: { debounceMs?: number; pollMs?: number } = {},
): FileWatch {
  const debounceMs = opts.debounceMs ?? 200;
  let current = [...new Set(paths)];
  let digest = digestOf(current);
  let watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const check = (): void => {
    timer = undefined;
    if (closed) return;
    const d = digestOf(current);
    if (d === digest) return;
    digest = d;
    onChange();
  };
  const schedule = (): void => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
  };
  const arm = (): void => {
    for (const w of watchers) w.close();
    watchers = [];
    for (const dir of new Set(current.map((p) => dirname(p)))) {
      try {
        const w = watch(dir, { persistent: false }, schedule);
        w.on('error', () => undefined);
        watchers.push(w);
      } catch {
        // a missing directory: the poll still notices when it appears
      }
    }
  };
  arm();
  const poll = setInterval(schedule, opts.pollMs ?? 2_000);
  poll.unref();

  return {
    update(paths) {
      current = [...new Set(paths)];
      digest = digestOf(current);
      arm();
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      clearInterval(poll);
      for (const w of watchers) w.close();
    },
  };
}
