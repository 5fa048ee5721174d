import { readFileSync } from 'node:fs';
import type { KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseName,
  selfSign,
  spkiOf,
  parseCertificate,
  type Certificate,
  type ProfileName,
  type San,
} from '../pki/index.js';
import { DOCTOR_CODES, checkFiles, checkPair, failingSideOf, type Finding, type InputFile } from './index.js';

const AT = new Date();
const HOUR = 3_600_000;

interface Party {
  cert: Certificate;
  key: KeyObject;
  pem: string;
}

function ca(name: string): { root: Party; inter: Party } {
  const rootKey = generateKey('p256');
  const r = selfSign(rootKey, { profile: 'root', subject: parseName(`CN=${name} Root`) });
  const root = { cert: parseCertificate(r.der), key: rootKey, pem: r.pem };
  const interKey = generateKey('p256');
  const i = createIssuer(root.cert, rootKey).issue({
    profile: 'intermediate',
    subject: parseName(`CN=${name} Intermediate`),
    publicKey: spki(interKey),
  });
  return { root, inter: { cert: parseCertificate(i.der), key: interKey, pem: i.pem } };
}

function spki(k: KeyObject): Buffer {
  return spkiOf(k);
}

function leaf(issuer: Party, profile: ProfileName, cn: string, sans: San[] = [], ttlMs = 2 * HOUR): Party {
  const key = generateKey('p256');
  const c = createIssuer(issuer.cert, issuer.key).issue({
    profile,
    subject: parseName(`CN=${cn}`),
    sans,
    publicKey: spki(key),
    ttlMs,
  });
  return { cert: parseCertificate(c.der), key, pem: c.pem };
}

const file = (path: string, text: string | Buffer): InputFile => ({
  path,
  data: Buffer.isBuffer(text) ? text : Buffer.from(text),
});
const keyPem = (p: Party, pass?: string): string => exportPrivateKeyPem(p.key, pass);

const S = ca('Server CA');
const C = ca('Client CA');
const server = leaf(S.inter, 'server', 'api.example', [{ type: 'dns', value: 'api.example' }]);
const client = leaf(C.inter, 'client', 'alice');

function pair(over: {
  serverCert?: InputFile;
  serverKey?: InputFile;
  serverCa?: InputFile;
  clientCert?: InputFile | null;
  clientKey?: InputFile;
  clientCa?: InputFile;
  name?: string;
  verifyDepth?: number;
}) {
  const clientCert =
    over.clientCert === null
      ? undefined
      : (over.clientCert ?? file('client.chain.pem', client.pem + C.inter.pem));
  return checkPair({
    server: {
      cert: over.serverCert ?? file('server.chain.pem', server.pem + S.inter.pem),
      key: over.serverKey ?? file('server.key', keyPem(server)),
      ca: over.serverCa ?? file('server-ca.pem', S.root.pem),
    },
    client: {
      ...(clientCert ? { cert: clientCert, key: over.clientKey ?? file('client.key', keyPem(client)) } : {}),
      ca: over.clientCa ?? file('client-ca.pem', C.root.pem),
    },
    name: over.name ?? 'api.example',
    ...(over.verifyDepth !== undefined ? { verifyDepth: over.verifyDepth } : {}),
    at: AT,
  });
}

const codes = (fs: Finding[]): string[] => fs.filter((f) => f.severity === 'error').map((f) => f.code);

describe('doctor pair', () => {
  it('finds nothing wrong in a healthy pair', () => {
    const r = pair({});
    expect(codes(r.findings)).toEqual([]);
    expect(r).toMatchObject({ ok: true, failingSide: null });
  });

  it('accepts CRLF, a BOM, text around the blocks and a bundle in any order', () => {
    const crlf = (s: string): string => s.replace(/\n/g, '\r\n');
    const r = pair({
      serverCert: file('s.pem', '\ufeff' + crlf(server.pem + 'between blocks\n' + S.inter.pem)),
      clientCa: file('bundle.pem', `subject=whatever\n${S.root.pem}${C.root.pem}`),
    });
    expect(codes(r.findings)).toEqual([]);
  });

  it('says both sides swapped their CA files', () => {
    const r = pair({
      serverCa: file('client-root.pem', C.root.pem),
      clientCa: file('server-root.pem', S.root.pem),
    });
    expect(r.failingSide).toBe('both');
    expect(codes(r.findings)).toEqual(['swapped_ca_files']);
    expect(r.findings[0]!.fix).toContain('ssl_client_certificate client-root.pem;');
  });

  it('blames the client for a server certificate used as a client certificate', () => {
    const wrong = leaf(C.inter, 'server', 'impostor.example', [{ type: 'dns', value: 'impostor.example' }]);
    const r = pair({
      clientCert: file('c.pem', wrong.pem + C.inter.pem),
      clientKey: file('c.key', keyPem(wrong)),
    });
    expect(r.failingSide).toBe('client');
    expect(codes(r.findings)).toContain('wrong_eku');
    expect(r.findings.find((f) => f.code === 'wrong_eku')!.fix).toMatch(/mtls issue client impostor.example/);
  });

  it('blames the client for a missing intermediate and names the file that holds it', () => {
    const r = pair({
      clientCert: file('alice.crt', client.pem),
      clientCa: file('client-ca.pem', C.root.pem + C.inter.pem),
    });
    // The intermediate in the server's bundle completes the path: nothing missing then.
    expect(r.ok).toBe(true);
    const r2 = pair({ clientCert: file('alice.crt', client.pem) });
    expect(r2.failingSide).toBe('client');
    expect(codes(r2.findings)).toEqual(['missing_intermediate']);
  });

  it('reports no_client_cert when the client has none', () => {
    const r = pair({ clientCert: null });
    expect(r.failingSide).toBe('client');
    expect(codes(r.findings)).toEqual(['no_client_cert']);
  });

  it('blames the server for a name mismatch and a key that is not its own', () => {
    expect(pair({ name: 'other.example' }).findings.map((f) => f.code)).toContain('name_mismatch');
    const r = pair({ serverKey: file('other.key', keyPem(client)) });
    expect(r.failingSide).toBe('server');
    expect(codes(r.findings)).toEqual(['key_mismatch']);
  });

  it('blames the server for a client CA bundle with only the intermediate (nginx needs the root)', () => {
    const r = pair({ clientCa: file('inter-only.pem', C.inter.pem) });
    expect(r.failingSide).toBe('server');
    expect(codes(r.findings)).toEqual(['partial_chain']);
  });

  it('blames the server when the chain needs more depth than ssl_verify_depth', () => {
    const r = pair({ verifyDepth: 0 });
    expect(r.failingSide).toBe('server');
    expect(codes(r.findings)).toEqual(['verify_depth_exceeded']);
    expect(r.findings[0]!.fix).toBe('ssl_verify_depth 1;');
  });

  it('says when a file is a CSR, truncated, or DER where nginx needs PEM', () => {
    const truncated = pair({ serverCert: file('cut.pem', server.pem.slice(0, 200)) });
    expect(truncated.failingSide).toBe('server');
    expect(codes(truncated.findings)).toContain('file_format');
    const der = pair({ clientCert: file('client.der', client.cert.der) });
    expect(der.findings.find((f) => f.code === 'file_format')).toMatchObject({
      side: 'client',
      severity: 'error',
    });
    const swappedKey = pair({ serverCert: file('server.key', keyPem(server)) });
    expect(swappedKey.findings[0]!.message).toContain('holds a private key, not the server certificate');
  });
});

describe('doctor files', () => {
  it('reads an encrypted key with the passphrase and checks it against the certificate', () => {
    const enc = file('alice.key', keyPem(client, 'secret'));
    const cert = file('alice.chain.pem', client.pem + C.inter.pem);
    const ca1 = file('ca.pem', C.root.pem);
    expect(checkFiles({ cert, key: enc, ca: ca1, passphrase: 'secret', at: AT })).toMatchObject({ ok: true });
    const without = checkFiles({ cert, key: enc, ca: ca1, at: AT });
    expect(without.findings.map((f) => f.code)).toContain('encrypted_key');
    const wrong = checkFiles({ cert, key: enc, passphrase: 'nope', at: AT });
    expect(wrong).toMatchObject({ ok: false, failingSide: 'client' });
  });

  it('converts a DER leaf before concatenating it with its intermediate', () => {
    const ca1 = file('ca.pem', C.root.pem);
    const der = checkFiles({ cert: file('alice.der', client.cert.der), ca: ca1, at: AT });
    expect(codes(der.findings)).toEqual(['missing_intermediate']);
    const fix = der.findings.find((f) => f.code === 'missing_intermediate')!.fix;
    expect(fix).toContain(
      'openssl x509 -inform DER -in alice.der -out alice.pem && cat alice.pem intermediate.crt > alice.chain.pem',
    );
    const pem = checkFiles({ cert: file('alice.crt', client.pem), ca: ca1, at: AT });
    expect(pem.findings.find((f) => f.code === 'missing_intermediate')!.fix).toContain(
      'Send the chain: cat alice.crt intermediate.crt > alice.chain.pem',
    );
  });

  it('names the trusted CA and the reissue command for unknown_ca', () => {
    const r = checkFiles({
      cert: file('alice.chain.pem', client.pem + C.inter.pem),
      ca: file('server-ca.pem', S.root.pem),
      at: AT,
    });
    expect(codes(r.findings)).toEqual(['unknown_ca']);
    expect(r.findings[0]!.fix).toMatch(
      /^Issue it from a CA the peer trusts \(CN=Server CA Root\): mtls issue client alice/,
    );
  });

  it('detects the role, expiry and the leaf not being first', () => {
    const later = new Date(AT.getTime() + 3 * HOUR);
    const r = checkFiles({ cert: file('alice.crt', client.pem), at: later });
    expect(r).toMatchObject({ ok: false, failingSide: 'client' });
    expect(codes(r.findings)).toContain('expired');
    const order = checkFiles({
      cert: file('chain.pem', C.inter.pem + client.pem),
      key: file('k', keyPem(client)),
      at: AT,
    });
    expect(codes(order.findings)).toEqual(['chain_order']);
  });
});

describe('failingSideOf and the documentation', () => {
  const f = (side: 'client' | 'server' | 'both', severity: 'error' | 'warning' = 'error'): Finding => ({
    code: 'expired',
    side,
    severity,
    message: '',
    evidence: {},
    fix: '',
  });
  it('is null without errors, the one side, or both', () => {
    expect(failingSideOf([f('client', 'warning')])).toBeNull();
    expect(failingSideOf([f('client'), f('client')])).toBe('client');
    expect(failingSideOf([f('client'), f('server')])).toBe('both');
  });

  it('documents every finding code in docs/doctor.md', () => {
    const doc = readFileSync(new URL('../../docs/doctor.md', import.meta.url), 'utf8');
    for (const code of Object.keys(DOCTOR_CODES)) expect(doc).toContain(`\`${code}\``);
  });
});
