// Temporary directories for e2e tests, and directory snapshots that prove a command wrote nothing.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/** A fresh directory under the OS temp dir; remove it with removeTempDir in afterAll. */
export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `mtlskit-${prefix}-`));
}

export async function removeTempDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

export interface FileState {
  size: number;
  mtimeMs: number;
  mode: number;
}

/** Every file under `dir` (recursively) with size, mtime and mode, keyed by relative path. */
export async function snapshotDir(dir: string): Promise<Record<string, FileState>> {
  const out: Record<string, FileState> = {};
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    const full = join(e.parentPath, e.name);
    const s = await stat(full);
    out[relative(dir, full) + (e.isDirectory() ? '/' : '')] = {
      size: e.isDirectory() ? 0 : s.size,
      mtimeMs: e.isDirectory() ? 0 : s.mtimeMs,
      mode: s.mode & 0o777,
    };
  }
  return out;
}
