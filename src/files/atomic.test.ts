import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  chmodSync,
  mkdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { readInput, readPassphraseFile, writeFilesAtomic, fileMode } from './index.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'mtls-files-'));

describe('writeFilesAtomic', () => {
  it('writes every file with its mode and leaves no temporary files', () => {
    const d = tmp();
    writeFilesAtomic([
      { path: join(d, 'a.key'), data: 'secret', mode: 0o600 },
      { path: join(d, 'a.crt'), data: 'cert' },
    ]);
    expect(readFileSync(join(d, 'a.key'), 'utf8')).toBe('secret');
    expect(fileMode(join(d, 'a.key'))).toBe(0o600);
    expect(fileMode(join(d, 'a.crt'))).toBe(0o644);
    expect(readdirSync(d).sort()).toEqual(['a.crt', 'a.key']);
  });

  it('refuses to overwrite, and then writes nothing at all', () => {
    const d = tmp();
    writeFileSync(join(d, 'b.crt'), 'old');
    let err: unknown;
    try {
      writeFilesAtomic([
        { path: join(d, 'a.key'), data: 'new', mode: 0o600 },
        { path: join(d, 'b.crt'), data: 'new' },
      ]);
    } catch (e) {
      err = e;
    }
    expect(isMtlsError(err, 'MTLS_FILE_EXISTS')).toBe(true);
    expect(readdirSync(d)).toEqual(['b.crt']);
    expect(readFileSync(join(d, 'b.crt'), 'utf8')).toBe('old');
  });

  it('leaves nothing behind when one target directory is not writable', () => {
    if (process.getuid?.() === 0) {
      // root ignores directory permissions; use a path under a regular file instead
      const d = tmp();
      writeFileSync(join(d, 'file'), 'x');
      expect(() =>
        writeFilesAtomic([
          { path: join(d, 'ok.crt'), data: 'x' },
          { path: join(d, 'file', 'sub.crt'), data: 'y' },
        ]),
      ).toThrow(/Cannot write/);
      expect(readdirSync(d)).toEqual(['file']);
      return;
    }
    const d = tmp();
    const ro = join(d, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    expect(() =>
      writeFilesAtomic([
        { path: join(d, 'ok.crt'), data: 'x' },
        { path: join(ro, 'no.crt'), data: 'y' },
      ]),
    ).toThrow(/Cannot write/);
    expect(readdirSync(d)).toEqual(['ro']);
  });

  it('overwrites when asked, replacing content and mode atomically', () => {
    const d = tmp();
    writeFileSync(join(d, 'k'), 'old', { mode: 0o644 });
    writeFilesAtomic([{ path: join(d, 'k'), data: 'new', mode: 0o600 }], { overwrite: true });
    expect(readFileSync(join(d, 'k'), 'utf8')).toBe('new');
    expect(statSync(join(d, 'k')).mode & 0o777).toBe(0o600);
  });
});

describe('readInput', () => {
  it('names a missing file with a stable code', () => {
    expect(() => readInput('/nonexistent/x.pem', 'certificate')).toThrow(
      expect.objectContaining({ code: 'MTLS_FILE_NOT_FOUND' }) as Error,
    );
  });
  it('reads the first line of a passphrase file', () => {
    const d = tmp();
    writeFileSync(join(d, 'p'), 'correct horse\r\nsecond line\n');
    expect(readPassphraseFile(join(d, 'p'))).toBe('correct horse');
  });
});
