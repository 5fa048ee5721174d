import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  mkdirSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  selfSign,
  spkiOf,
} from '../pki/index.js';
import {
  AGENT_FILES,
  DATA_LINK,
  publishVersion,
  pruneVersions,
  readAgentFiles,
  versionTime,
  type VersionContent,
} from './files.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'mtls-agent-files-'));
  dirs.push(d);
  return d;
}

const rootKey = generateKey('p256');
const root = selfSign(rootKey, {
  profile: 'root',
  subject: [[{ oid: '2.5.4.3', value: 'files test root' }]],
  ttlMs: 86_400_000,
});
const issuer = createIssuer(parseCertificate(root.der), rootKey);

function content(): VersionContent & { serial: string } {
  const key = generateKey('p256');
  const leaf = issuer.issue({
    profile: 'client',
    subject: [[{ oid: '2.5.4.3', value: 'w' }]],
    publicKey: spkiOf(key),
    ttlMs: 3_600_000,
  });
  return {
    keyPem: exportPrivateKeyPem(key),
    certPem: leaf.pem,
    chainPem: '',
    caPem: root.pem,
    serial: leaf.serial,
  };
}

describe('publishVersion', () => {
  it('writes a complete version, swaps ..data and creates stable symlinks', () => {
    const dir = tmp();
    const c = content();
    const name = publishVersion(dir, c);
    expect(readlinkSync(join(dir, DATA_LINK))).toBe(name);
    expect(versionTime(name)).toBeInstanceOf(Date);
    for (const f of AGENT_FILES) {
      expect(lstatSync(join(dir, f)).isSymbolicLink()).toBe(true);
      expect(readlinkSync(join(dir, f))).toBe(`${DATA_LINK}/${f}`);
    }
    expect(statSync(join(dir, name, 'key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, name, 'cert.pem')).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(dir, 'fullchain.pem'), 'utf8')).toBe(c.certPem + c.chainPem);
    const read = readAgentFiles(dir);
    expect(read.certificate.serial).toBe(c.serial);
    expect(read.version).toBe(name);
  });

  it('honours a configured key mode', () => {
    const dir = tmp();
    const name = publishVersion(dir, content(), { keyMode: 0o640 });
    expect(statSync(join(dir, name, 'key.pem')).mode & 0o777).toBe(0o640);
  });

  it('keeps the two newest versions and removes older ones', () => {
    const dir = tmp();
    const names: string[] = [];
    for (let i = 0; i < 5; i++)
      names.push(publishVersion(dir, content(), { now: new Date(Date.UTC(2026, 0, 1, 0, 0, i)) }));
    const versions = readdirSync(dir).filter((e) => e.startsWith('..v-'));
    expect(versions.sort()).toEqual(names.slice(3).sort());
    expect(readAgentFiles(dir).version).toBe(names[4]);
  });

  it('cleans leftovers of an interrupted write, never the published version', () => {
    const dir = tmp();
    const published = publishVersion(dir, content());
    mkdirSync(join(dir, '..v-2026-01-01T00-00-00.000Z-abcdef.tmp'));
    writeFileSync(join(dir, '..v-2026-01-01T00-00-00.000Z-abcdef.tmp', 'key.pem'), 'half');
    symlinkSync(published, join(dir, `${DATA_LINK}.tmp-0123abcd`));
    const removed = pruneVersions(dir);
    expect(removed.sort()).toEqual(['..data.tmp-0123abcd', '..v-2026-01-01T00-00-00.000Z-abcdef.tmp']);
    expect(readAgentFiles(dir).version).toBe(published);
  });

  it('publishes nothing when the version cannot be written', () => {
    const dir = tmp();
    const first = publishVersion(dir, content());
    // A file where the staging directory's parent should be: the write fails before any swap.
    const blocked = join(dir, 'blocked');
    writeFileSync(blocked, 'x');
    expect(() => publishVersion(join(blocked, 'sub'), content())).toThrow(/Cannot write a new version/);
    expect(readAgentFiles(dir).version).toBe(first);
  });
});

describe('readAgentFiles', () => {
  it('refuses a version whose key does not match its certificate', () => {
    const dir = tmp();
    const a = content();
    const b = content();
    publishVersion(dir, { ...a, keyPem: b.keyPem });
    expect(() => readAgentFiles(dir)).toThrow(/does not belong/);
  });
  it('says when nothing was published', () => {
    expect(() => readAgentFiles(tmp())).toThrow(/no published version/);
  });
});
