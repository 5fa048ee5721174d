// Writing an issued leaf the way every command does: key 0600, certificate, chain (leaf +
// intermediate) and the trust bundle, all in one atomic step.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FileCa } from '../ca/index.js';
import { writeFilesAtomic, type PlannedFile } from '../files/index.js';
import type { IssuedCertificate } from '../pki/index.js';

export interface LeafFiles {
  key?: string;
  cert: string;
  chain: string;
  bundle: string;
}

export function safeBaseName(name: string): string {
  if (name.startsWith('spiffe://')) {
    const path = name.slice('spiffe://'.length).split('/').filter(Boolean);
    name = path[path.length - 1] ?? 'svid';
  }
  const base = name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return base || 'cert';
}

export interface LeafPems {
  certPem: string;
  /** Leaf + intermediates. */
  chainPem: string;
  /** The trust bundle. */
  rootPem: string;
}

/** Key (0600), certificate, chain and trust bundle in one atomic step; the bundle is rewritten only when it differs. */
export function writeLeafFiles(
  outDir: string,
  base: string,
  pems: LeafPems,
  keyPem: string | undefined,
  force: boolean,
): LeafFiles {
  const files: LeafFiles = {
    ...(keyPem ? { key: join(outDir, `${base}.key`) } : {}),
    cert: join(outDir, `${base}.crt`),
    chain: join(outDir, `${base}.chain.pem`),
    bundle: join(outDir, 'ca.pem'),
  };
  const planned: PlannedFile[] = [];
  if (keyPem && files.key) planned.push({ path: files.key, data: keyPem, mode: 0o600 });
  planned.push({ path: files.cert, data: pems.certPem }, { path: files.chain, data: pems.chainPem });
  const bundleSame = existsSync(files.bundle) && readFileSync(files.bundle, 'latin1') === pems.rootPem;
  writeFilesAtomic(planned, { overwrite: force });
  if (!bundleSame) writeFilesAtomic([{ path: files.bundle, data: pems.rootPem }], { overwrite: true });
  return files;
}

export function writeLeaf(
  ca: FileCa,
  outDir: string,
  base: string,
  issued: IssuedCertificate,
  keyPem: string | undefined,
  force: boolean,
): LeafFiles {
  return writeLeafFiles(
    outDir,
    base,
    { certPem: issued.pem, chainPem: issued.pem + ca.intermediatePem, rootPem: ca.rootPem },
    keyPem,
    force,
  );
}
