// The identity directory layout (a contract with the Node helpers, the proxy and the exporter):
//   <dir>/..v-<time>-<hex>/{key,cert,chain,fullchain,ca}.pem   one complete version, never modified
//   <dir>/..data -> ..v-…                                      published by rename() of a temp symlink
//   <dir>/{key,cert,chain,fullchain,ca}.pem -> ..data/<file>   stable names, created once
//   <dir>/status.json                                          the agent's last state (temp + rename)
// A version is written under a temporary name, fsynced, renamed, and only then published: a crash at
// any point leaves ..data on a complete version.
import { randomBytes, type KeyObject } from 'node:crypto';
import {
  chownSync,
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { MtlsError } from '../errors/index.js';
import { writeFileAtomic } from '../files/index.js';
import { readCertificates, readPrivateKey, keyMatchesSpki, type Certificate } from '../pki/index.js';

export const AGENT_FILES = ['key.pem', 'cert.pem', 'chain.pem', 'fullchain.pem', 'ca.pem'] as const;
export type AgentFileName = (typeof AGENT_FILES)[number];
export const DATA_LINK = '..data';
export const STATUS_FILE = 'status.json';
const VERSION_RE = /^\.\.v-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(?:\.\d+)?Z)-[0-9a-f]{6}$/;

export interface VersionContent {
  keyPem: string;
  certPem: string;
  /** Intermediates only (may be empty). */
  chainPem: string;
  /** Roots. */
  caPem: string;
}

export interface Ownership {
  uid?: number;
  gid?: number;
  /** Mode of key.pem (default 0600). */
  keyMode?: number;
}

/** "2026-11-23T04:57:06.123Z" → "2026-11-23T04-57-06.123Z" (no ':' in file names). */
function stamp(d: Date): string {
  return d.toISOString().replace(/:/g, '-');
}

/** When a version directory was written, from its name. */
export function versionTime(name: string): Date | undefined {
  const m = VERSION_RE.exec(name);
  if (!m) return undefined;
  const iso = m[1]!.replace(/T(\d\d)-(\d\d)-(\d\d)/, 'T$1:$2:$3');
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

function writeFileSynced(path: string, data: string, mode: number): void {
  const fd = openSync(path, 'wx', mode);
  try {
    const buf = Buffer.from(data);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
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
    // not supported everywhere; renames stay atomic
  }
}

function own(path: string, o: Ownership): void {
  if (o.uid === undefined && o.gid === undefined) return;
  chownSync(path, o.uid ?? -1, o.gid ?? -1);
}

/** Replaces (or creates) a symlink atomically: temp link, then rename over the name. */
function swapSymlink(dir: string, name: string, target: string): void {
  const tmp = join(dir, `${name}.tmp-${randomBytes(4).toString('hex')}`);
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, join(dir, name));
  } catch (e) {
    safeUnlink(tmp);
    throw e;
  }
}

function safeUnlink(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // gone already
  }
}

/**
 * Writes a new version and publishes it. Returns the version directory's name.
 * Throws MTLS_FILE_WRITE with nothing published when any step before the final rename fails.
 */
export function publishVersion(
  dir: string,
  content: VersionContent,
  opts: Ownership & { now?: Date; keep?: number } = {},
): string {
  const now = opts.now ?? new Date();
  const name = `..v-${stamp(now)}-${randomBytes(3).toString('hex')}`;
  const staging = join(dir, `${name}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    mkdirSync(staging, { mode: 0o755 });
    const files: Record<AgentFileName, string> = {
      'key.pem': content.keyPem,
      'cert.pem': content.certPem,
      'chain.pem': content.chainPem,
      'fullchain.pem': content.certPem + content.chainPem,
      'ca.pem': content.caPem,
    };
    for (const [f, data] of Object.entries(files)) {
      const path = join(staging, f);
      const mode = f === 'key.pem' ? (opts.keyMode ?? 0o600) : 0o644;
      writeFileSynced(path, data, mode);
      own(path, opts);
    }
    own(staging, opts);
    fsyncDir(staging);
    renameSync(staging, join(dir, name));
    fsyncDir(dir);
  } catch (e) {
    try {
      rmSync(staging, { recursive: true, force: true });
    } catch {
      // nothing to clean, or not cleanable: pruneVersions removes it at the next start
    }
    throw new MtlsError('MTLS_FILE_WRITE', `Cannot write a new version in ${dir}: ${(e as Error).message}.`, {
      cause: e,
      fix: 'Check that the identity directory is writable by the agent (ReadWritePaths= under systemd) and the disk is not full.',
    });
  }
  // Publish: one rename; then the stable names (created once, atomically too).
  swapSymlink(dir, DATA_LINK, name);
  for (const f of AGENT_FILES) {
    const p = join(dir, f);
    let ok: boolean;
    try {
      ok = lstatSync(p).isSymbolicLink() && readlinkSync(p) === `${DATA_LINK}/${f}`;
    } catch {
      ok = false;
    }
    if (!ok) swapSymlink(dir, f, `${DATA_LINK}/${f}`);
  }
  fsyncDir(dir);
  pruneVersions(dir, opts.keep ?? 2);
  return name;
}

/**
 * Removes leftovers of interrupted writes (staging directories, temp links) and all but the `keep`
 * newest version directories (the published one is always kept).
 */
export function pruneVersions(dir: string, keep = 2): string[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  let current: string | undefined;
  try {
    current = readlinkSync(join(dir, DATA_LINK));
  } catch {
    current = undefined;
  }
  const removed: string[] = [];
  for (const e of entries) {
    if (
      (e.startsWith('..v-') && e.endsWith('.tmp')) ||
      /\.tmp-[0-9a-f]{8}$/.test(e) ||
      /^\.status\.json\..*\.tmp$/.test(e)
    ) {
      rmSync(join(dir, e), { recursive: true, force: true });
      removed.push(e);
    }
  }
  const versions = entries
    .filter((e) => VERSION_RE.test(e))
    .sort()
    .reverse();
  const keepSet = new Set(versions.slice(0, Math.max(1, keep)));
  if (current) keepSet.add(current);
  for (const v of versions) {
    if (!keepSet.has(v)) {
      rmSync(join(dir, v), { recursive: true, force: true });
      removed.push(v);
    }
  }
  return removed;
}

export interface AgentFiles {
  /** The version directory's name (what ..data pointed at). */
  version: string;
  /** When the version was written (from its name). */
  writtenAt: Date | undefined;
  keyPem: string;
  certPem: string;
  chainPem: string;
  fullchainPem: string;
  caPem: string;
  key: KeyObject;
  certificate: Certificate;
}

/**
 * A consistent read: resolves ..data once, reads every file from that version (retrying once if a
 * swap removed it meanwhile), and checks that the key belongs to the certificate.
 */
export function readAgentFiles(dir: string): AgentFiles {
  for (let attempt = 0; ; attempt++) {
    let version: string;
    try {
      version = readlinkSync(join(dir, DATA_LINK));
    } catch (e) {
      throw new MtlsError('MTLS_AGENT_FILES', `${dir} has no published version (${DATA_LINK} is missing).`, {
        cause: e,
        fix: 'Run the agent for this identity (mtls agent --config agent.yaml --once) or check the directory.',
      });
    }
    const vdir = join(dir, version);
    let raw: Record<AgentFileName, string>;
    try {
      raw = Object.fromEntries(AGENT_FILES.map((f) => [f, readFileSync(join(vdir, f), 'latin1')])) as Record<
        AgentFileName,
        string
      >;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && attempt === 0) continue;
      throw new MtlsError(
        'MTLS_AGENT_FILES',
        `Cannot read the version ${version} in ${dir}: ${(e as Error).message}.`,
        {
          cause: e,
          fix: 'Check the permissions of the identity directory; the agent rewrites a damaged one at its next renewal.',
        },
      );
    }
    const certificate = readCertificates(Buffer.from(raw['cert.pem']), join(vdir, 'cert.pem'))[0]!;
    const key = readPrivateKey(raw['key.pem'], undefined, join(vdir, 'key.pem')).key;
    if (!keyMatchesSpki(key, certificate.spki)) {
      throw new MtlsError('MTLS_AGENT_FILES', `The key in ${vdir} does not belong to its certificate.`, {
        fix: 'Remove the identity directory and enroll again; the agent never writes such a pair.',
      });
    }
    return {
      version,
      writtenAt: versionTime(version),
      keyPem: raw['key.pem'],
      certPem: raw['cert.pem'],
      chainPem: raw['chain.pem'],
      fullchainPem: raw['fullchain.pem'],
      caPem: raw['ca.pem'],
      key,
      certificate,
    };
  }
}

/** Like readAgentFiles, but undefined when nothing was published yet. */
export function tryReadAgentFiles(dir: string): AgentFiles | undefined {
  try {
    lstatSync(join(dir, DATA_LINK));
  } catch {
    return undefined;
  }
  return readAgentFiles(dir);
}

export interface AgentStatus {
  identity: string;
  serial?: string;
  notBefore?: string;
  notAfter?: string;
  nextRenewalAt?: string;
  lastError?: { code: string; message: string; at: string; attempt: number };
  lastRenewalAt?: string;
  renewals: { ok: number; failed: number };
  expired: boolean;
  /** Current retry delay after failures (absent when the last attempt succeeded). */
  retryBackoffSeconds?: number;
  trustBundle: {
    roots: { subject: string; fingerprint: string; notAfter: string; lastPublishedAt?: string }[];
  };
  updatedAt: string;
}

export function writeStatus(dir: string, status: AgentStatus): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileAtomic(join(dir, STATUS_FILE), JSON.stringify(status, null, 2) + '\n', 0o644);
}

export function readStatus(dir: string): AgentStatus | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STATUS_FILE), 'utf8')) as AgentStatus;
  } catch {
    return undefined;
  }
}
