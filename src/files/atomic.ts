import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  existsSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MtlsError } from '../errors/index.js';

export interface PlannedFile {
  path: string;
  data: string | Buffer;
  /** 0o600 for private keys; default 0o644. */
  mode?: number;
}

export function readInput(path: string, what = 'file'): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new MtlsError('MTLS_FILE_NOT_FOUND', `The ${what} ${path} does not exist.`, {
        fix: 'Check the path (relative paths start from the current directory).',
        cause: e,
      });
    }
    if (code === 'EISDIR') {
      throw new MtlsError('MTLS_FILE_READ', `${path} is a directory, not a ${what}.`, {
        fix: 'Name the file inside it.',
        cause: e,
      });
    }
    throw new MtlsError('MTLS_FILE_READ', `Cannot read the ${what} ${path}: ${(e as Error).message}.`, {
      fix: 'Check the file permissions.',
      cause: e,
    });
  }
}

/** First line of a passphrase file, without the newline. */
export function readPassphraseFile(path: string): string {
  const text = readInput(path, 'passphrase file').toString('utf8');
  return text.split(/\r?\n/)[0] ?? '';
}

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

function writeTemp(file: PlannedFile): string {
  const tmp = tempPathFor(file.path);
  const fd = openSync(tmp, 'wx', file.mode ?? 0o644);
  try {
    const buf = typeof file.data === 'string' ? Buffer.from(file.data) : file.data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return tmp;
}

/**
 * Writes every file or none: all contents go to temporary files first (same directory, so rename is
 * atomic), then each is renamed into place. Refuses to overwrite unless `overwrite` is set.
 */
export function writeFilesAtomic(files: readonly PlannedFile[], opts: { overwrite?: boolean } = {}): void {
  if (!opts.overwrite) {
    const existing = files.filter((f) => existsSync(f.path)).map((f) => f.path);
    if (existing.length) {
      throw new MtlsError('MTLS_FILE_EXISTS', `Refusing to overwrite ${existing.join(', ')}.`, {
        fix: 'Choose another --out directory or name, or pass --force to replace the files.',
      });
    }
  }
  const temps: string[] = [];
  try {
    for (const f of files) {
      mkdirSync(dirname(f.path), { recursive: true });
      temps.push(writeTemp(f));
    }
  } catch (e) {
    for (const t of temps) safeUnlink(t);
    throw new MtlsError(
      'MTLS_FILE_WRITE',
      `Cannot write ${files.map((f) => f.path).join(', ')}: ${(e as Error).message}.`,
      {
        fix: 'Check that the directory exists and is writable, and that the disk is not full.',
        cause: e,
      },
    );
  }
  for (let i = 0; i < files.length; i++) renameSync(temps[i]!, files[i]!.path);
  if (files.length) fsyncDir(dirname(files[0]!.path));
}

export function writeFileAtomic(path: string, data: string | Buffer, mode?: number): void {
  writeFilesAtomic([{ path, data, ...(mode === undefined ? {} : { mode }) }], { overwrite: true });
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Directories cannot be fsynced on every platform; the rename is still atomic.
  }
}

function safeUnlink(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // already gone
  }
}

export function fileMode(path: string): number {
  return statSync(path).mode & 0o777;
}
