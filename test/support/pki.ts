// A fresh PKI per test file, made with the real CLI: a server CA and a client CA (so a test can
// tell "wrong CA" from "wrong purpose"), short-lived leaves, all in one temp directory.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mtlsOk } from './cli.js';

export interface CaPaths {
  dir: string;
  /** Trust bundle (the root). */
  bundle: string;
  rootCert: string;
  intermediateCert: string;
}

export interface LeafPaths {
  base: string;
  key: string;
  cert: string;
  chain: string;
  /** The root of the issuing CA, as written next to the leaf. */
  ca: string;
}

export function caPaths(dir: string): CaPaths {
  return {
    dir,
    bundle: join(dir, 'ca.pem'),
    rootCert: join(dir, 'root.crt'),
    intermediateCert: join(dir, 'intermediate.crt'),
  };
}

export function leafPaths(outDir: string, base: string): LeafPaths {
  return {
    base,
    key: join(outDir, `${base}.key`),
    cert: join(outDir, `${base}.crt`),
    chain: join(outDir, `${base}.chain.pem`),
    ca: join(outDir, 'ca.pem'),
  };
}

export interface InitCaOptions {
  name?: string;
  keyType?: string;
  trustDomain?: string;
}

/** `mtls ca init --dir <root>/<name>` with the test passphrase. */
export async function initCa(root: string, dirName: string, o: InitCaOptions = {}): Promise<CaPaths> {
  const dir = join(root, dirName);
  const args = ['ca', 'init', '--dir', dir, '--name', o.name ?? `mtlskit e2e ${dirName}`];
  if (o.keyType) args.push('--key-type', o.keyType);
  if (o.trustDomain) args.push('--trust-domain', o.trustDomain);
  await mtlsOk(args, { cwd: root });
  return caPaths(dir);
}

export interface IssueOptions {
  san?: string;
  ttl?: string;
  keyType?: string;
  fileName?: string;
}

/** `mtls issue <profile> <name> --dir <ca> --out <out>`; short TTL by default. */
export async function issue(
  ca: CaPaths,
  outDir: string,
  profile: string,
  name: string,
  o: IssueOptions = {},
): Promise<LeafPaths> {
  const args = ['issue', profile, name, '--dir', ca.dir, '--out', outDir, '--ttl', o.ttl ?? '2h'];
  if (o.san) args.push('--san', o.san);
  if (o.keyType) args.push('--key-type', o.keyType);
  if (o.fileName) args.push('--file-name', o.fileName);
  await mtlsOk(args, { cwd: outDir });
  const base = o.fileName ?? (profile === 'spiffe' ? name.slice(name.lastIndexOf('/') + 1) : name);
  return leafPaths(outDir, base);
}

export interface Pki {
  root: string;
  serverCa: CaPaths;
  clientCa: CaPaths;
  /** Issued by the server CA: server (localhost + 127.0.0.1). */
  server: LeafPaths;
  /** Issued by the client CA. */
  client: LeafPaths;
  spiffe: LeafPaths;
  peer: LeafPaths;
  /** A server-profile certificate from the client CA: trusted issuer, wrong purpose for a client. */
  serverAsClient: LeafPaths;
  /** The spiffe ID in `spiffe`. */
  spiffeId: string;
}

/**
 * Two CAs and one certificate per profile. Leaves live in <root>/server and <root>/client;
 * each out dir also gets its CA's ca.pem.
 */
export async function createPki(root: string, keyType = 'p256'): Promise<Pki> {
  const [serverCa, clientCa] = await Promise.all([
    initCa(root, 'server-ca', { name: 'mtlskit e2e Server CA', keyType }),
    initCa(root, 'client-ca', { name: 'mtlskit e2e Client CA', keyType, trustDomain: 'e2e.example' }),
  ]);
  const serverOut = join(root, 'server');
  const clientOut = join(root, 'client');
  await Promise.all([mkdir(serverOut), mkdir(clientOut)]);
  const spiffeId = 'spiffe://e2e.example/ns/test/sa/worker';
  const server = await issue(serverCa, serverOut, 'server', 'localhost', { san: 'ip:127.0.0.1', keyType });
  const client = await issue(clientCa, clientOut, 'client', 'alice', { keyType });
  const spiffe = await issue(clientCa, clientOut, 'spiffe', spiffeId, { keyType });
  const peer = await issue(clientCa, clientOut, 'peer', 'peer.e2e.example', { keyType });
  const serverAsClient = await issue(clientCa, clientOut, 'server', 'impostor.e2e.example', { keyType });
  return { root, serverCa, clientCa, server, client, spiffe, peer, serverAsClient, spiffeId };
}

/** Chain + key in one PEM file (HAProxy's `crt`). */
export async function writeCombinedPem(leaf: LeafPaths, dest: string): Promise<string> {
  const [chain, key] = await Promise.all([readFile(leaf.chain, 'utf8'), readFile(leaf.key, 'utf8')]);
  await writeFile(dest, `${chain.trimEnd()}\n${key.trimEnd()}\n`, { mode: 0o600 });
  return dest;
}
