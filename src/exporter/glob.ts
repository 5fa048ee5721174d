// File globs for the exporter: *, ?, [abc], [!abc] within one path segment and ** across
// directories. Like a shell, wildcards do not match names starting with a dot (so an agent's
// ..data and ..v-… directories are not read twice); bounded in files and depth.
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve, sep } from 'node:path';

const MAGIC = /[*?[]/;

export function hasMagic(pattern: string): boolean {
  return MAGIC.test(pattern);
}

/** One path segment's pattern as a RegExp (anchored). */
export function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end === -1) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export interface GlobOptions {
  cwd?: string;
  /** Stop after this many files (default 10,000). */
  maxFiles?: number;
  /** Deepest directory level below the first wildcard (default 32). */
  maxDepth?: number;
}

function isDir(path: string): boolean {
  try {
    return lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile(); // follows symlinks: <dir>/cert.pem -> ..data/cert.pem counts
  } catch {
    return false;
  }
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The regular files matching `pattern`, sorted. A pattern without wildcards matches itself if it is a file. */
export function expandGlob(pattern: string, opts: GlobOptions = {}): string[] {
  const abs = isAbsolute(pattern) ? pattern : resolve(opts.cwd ?? process.cwd(), pattern);
  const maxFiles = opts.maxFiles ?? 10_000;
  const maxDepth = opts.maxDepth ?? 32;
  if (!hasMagic(abs)) return isFile(abs) ? [abs] : [];
  const parts = abs.split(sep);
  const first = parts.findIndex((p) => hasMagic(p));
  const base = parts.slice(0, first).join(sep) || sep;
  const rest = parts.slice(first);
  const out = new Set<string>();

  const walk = (dir: string, i: number, depth: number): void => {
    if (out.size >= maxFiles || depth > maxDepth) return;
    const seg = rest[i];
    if (seg === undefined) return;
    const last = i === rest.length - 1;
    if (seg === '**') {
      // Zero directories…
      walk(dir, i + 1, depth);
      // …or one more (real directories only, not symlinks: no loops), never hidden ones.
      for (const name of list(dir)) {
        if (name.startsWith('.')) continue;
        const p = join(dir, name);
        if (isDir(p)) walk(p, i, depth + 1);
      }
      if (last)
        for (const name of list(dir))
          if (!name.startsWith('.') && isFile(join(dir, name))) out.add(join(dir, name));
      return;
    }
    if (!hasMagic(seg)) {
      const p = join(dir, seg);
      if (last) {
        if (isFile(p)) out.add(p);
      } else walk(p, i + 1, depth + 1);
      return;
    }
    const re = segmentRegExp(seg);
    const dotOk = seg.startsWith('.');
    for (const name of list(dir)) {
      if (out.size >= maxFiles) return;
      if (name.startsWith('.') && !dotOk) continue;
      if (!re.test(name)) continue;
      const p = join(dir, name);
      if (last) {
        if (isFile(p)) out.add(p);
      } else walk(p, i + 1, depth + 1);
    }
  };
  walk(base, 0, 0);
  return [...out].sort();
}
