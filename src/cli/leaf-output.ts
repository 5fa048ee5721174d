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

export function writeLeaf(
  ca: FileCa,
  outDir: string,
  base: string,
  issued: IssuedCertificate,
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
  planned.push(
    { path: files.cert, data: issued.pem },
    { path: files.chain, data: issued.pem + ca.intermediatePem },
  );
  // The trust bundle is shared by every leaf in the directory: rewrite it only when it differs.
  const bundleSame = existsSync(files.bundle) && readFileSync(files.bundle, 'latin1') === ca.rootPem;
  writeFilesAtomic(planned, { overwrite: force });
  if (!bundleSame) writeFilesAtomic([{ path: files.bundle, data: ca.rootPem }], { overwrite: true });
  return files;
}
