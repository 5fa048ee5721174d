import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deepFreeze, readYamlMapping } from './yaml.js';

const dir = mkdtempSync(join(tmpdir(), 'mtls-yaml-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const opts = { keysHint: 'a listeners key', doc: 'docs/proxy.md' };

describe('readYamlMapping', () => {
  it('returns the mapping; an empty file is an empty mapping', () => {
    expect(readYamlMapping(file('ok.yaml', 'a: 1\nb: [x]\n'), 'proxy config', opts)).toEqual({
      a: 1,
      b: ['x'],
    });
    expect(readYamlMapping(file('empty.yaml', ''), 'proxy config', opts)).toEqual({});
  });

  it('says which key the mapping needs', () => {
    expect(() => readYamlMapping(file('list2.yaml', '- a\n'), 'proxy config', opts)).toThrow(
      /must hold a mapping with a listeners key/,
    );
  });

  it('names the problem and the fix for a missing file, bad YAML and a non-mapping', () => {
    expect(() => readYamlMapping(join(dir, 'nope.yaml'), 'proxy config', opts)).toThrow(
      expect.objectContaining({ code: 'MTLS_FILE_NOT_FOUND', fix: 'Check the --config path.' }),
    );
    expect(() => readYamlMapping(file('bad.yaml', 'a: [1\n'), 'proxy config', opts)).toThrow(
      expect.objectContaining({ code: 'MTLS_CONFIG_INVALID' }),
    );
    expect(() => readYamlMapping(file('list.yaml', '- a\n'), 'proxy config', opts)).toThrow(
      expect.objectContaining({ code: 'MTLS_CONFIG_INVALID', fix: 'See docs/proxy.md for the keys.' }),
    );
  });
});

describe('deepFreeze', () => {
  it('freezes nested objects and arrays', () => {
    const c = deepFreeze({ a: { b: [1, { c: 2 }] } });
    expect(Object.isFrozen(c.a)).toBe(true);
    expect(Object.isFrozen(c.a.b)).toBe(true);
    expect(Object.isFrozen(c.a.b[1])).toBe(true);
  });
});
