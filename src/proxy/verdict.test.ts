import type { KeyObject } from 'node:crypto';
import { connect, createServer, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  selfSign,
  spkiOf,
  type Certificate,
  type CertificateIssuer,
  type IssueRequest,
} from '../pki/index.js';
import { classifyPeer, completeChain, type Verdict } from './verdict.js';

const HOUR = 3_600_000;

interface Ca {
  root: Certificate;
  rootPem: string;
  intPem: string;
  issuer: CertificateIssuer;
}

function makeCa(name: string): Ca {
  const rootKey = generateKey('p256');
  const root = selfSign(rootKey, {
    profile: 'root',
    subject: parseName(`CN=${name} Root`),
    ttlMs: 48 * HOUR,
  });
  const rootCert = parseCertificate(root.der);
  const intKey = generateKey('p256');
  const int = createIssuer(rootCert, rootKey).issue({
    profile: 'intermediate',
    subject: parseName(`CN=${name} Intermediate`),
    publicKey: spkiOf(intKey),
    // Longer than a leaf's default 24 h: a leaf issued a second later must not outlive its issuer.
    ttlMs: 47 * HOUR,
  });
  return {
    root: rootCert,
    rootPem: root.pem,
    intPem: int.pem,
    issuer: createIssuer(parseCertificate(int.der), intKey),
  };
}

interface Cred {
  cert: string;
  key: string;
}

function leaf(ca: Ca, req: Omit<IssueRequest, 'publicKey'>, withChain = true): Cred {
  const key: KeyObject = generateKey('p256');
  const c = ca.issuer.issue({ ...req, publicKey: spkiOf(key) });
  return { cert: withChain ? c.pem + ca.intPem : c.pem, key: exportPrivateKeyPem(key) };
}

let trusted: Ca;
let other: Ca;
let server: Server;
let port: number;
const verdicts: Verdict[] = [];
const fullChains: Buffer[][] = [];
let waiters: ((v: Verdict) => void)[] = [];

beforeAll(async () => {
  trusted = makeCa('Trusted');
  other = makeCa('Other');
  const srv = leaf(trusted, { profile: 'server', sans: [{ type: 'dns', value: 'localhost' }] });
  server = createServer({
    cert: srv.cert,
    key: srv.key,
    ca: trusted.rootPem,
    requestCert: true,
    rejectUnauthorized: false,
  });
  server.on('secureConnection', (sock: TLSSocket) => {
    const v = classifyPeer(sock, { trust: [trusted.root] });
    verdicts.push(v);
    fullChains.push(completeChain(sock));
    const w = waiters;
    waiters = [];
    for (const f of w) f(v);
    sock.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  port = typeof a === 'object' && a ? a.port : 0;
});

afterAll(async () => {
  await new Promise<void>((r) => server.close(() => r()));
});

/** Connects with the credential (or none) and resolves with the server's verdict on it. */
function verdictFor(cred: Cred | undefined): Promise<Verdict> {
  const got = new Promise<Verdict>((r) => waiters.push(r));
  const sock = connect({
    host: '127.0.0.1',
    port,
    servername: 'localhost',
    ca: trusted.rootPem,
    ...(cred ? { cert: cred.cert, key: cred.key } : {}),
  });
  sock.on('error', () => undefined);
  sock.on('data', () => undefined);
  return got.finally(() => sock.destroy());
}

const spiffe = 'spiffe://test.example/ns/prod/sa/payment';

describe('classifyPeer over real TLS connections', () => {
  it('accepts a client certificate with its chain and names its identity', async () => {
    const v = await verdictFor(
      leaf(trusted, {
        profile: 'client',
        subject: parseName('CN=payment'),
        sans: [
          { type: 'uri', value: spiffe },
          { type: 'dns', value: 'Payment.Test.Example' },
        ],
      }),
    );
    expect(v).toMatchObject({
      accepted: true,
      identity: spiffe,
      spiffeId: spiffe,
      dnsNames: ['payment.test.example'],
    });
    expect(v.reason).toBeUndefined();
    // An accepted peer's verdict holds the leaf alone (cheap); the chain it sent is read on demand,
    // completed by Node from the trust store: leaf, intermediate, root.
    expect(v.chain).toHaveLength(1);
    expect(fullChains.at(-1)).toHaveLength(3);
    expect(fullChains.at(-1)![0]!.equals(v.chain[0]!)).toBe(true);
  });

  it('falls back to dns: then cn: for the identity', async () => {
    const dns = await verdictFor(
      leaf(trusted, { profile: 'client', sans: [{ type: 'dns', value: 'a.test.example' }] }),
    );
    expect(dns.identity).toBe('dns:a.test.example');
    const cn = await verdictFor(leaf(trusted, { profile: 'client', subject: parseName('CN=alice') }));
    expect(cn.identity).toBe('cn:alice');
  });

  it('no_client_cert when the client sends none', async () => {
    const v = await verdictFor(undefined);
    expect(v).toMatchObject({ accepted: false, reason: 'no_client_cert' });
  });

  it('expired, with the date in the detail', async () => {
    const notAfter = new Date(Date.now() - HOUR);
    const v = await verdictFor(
      leaf(trusted, {
        profile: 'client',
        subject: parseName('CN=old'),
        notBefore: new Date(Date.now() - 3 * HOUR),
        notAfter,
        unchecked: true,
      }),
    );
    expect(v).toMatchObject({ accepted: false, reason: 'expired', opensslCode: 'CERT_HAS_EXPIRED' });
    expect(v.detail).toContain(
      `expired at ${new Date(Math.floor(notAfter.getTime() / 1000) * 1000).toISOString()}`,
    );
  });

  it('not_yet_valid', async () => {
    const v = await verdictFor(
      leaf(trusted, {
        profile: 'client',
        subject: parseName('CN=future'),
        notBefore: new Date(Date.now() + HOUR),
        notAfter: new Date(Date.now() + 3 * HOUR),
        unchecked: true,
      }),
    );
    expect(v).toMatchObject({ accepted: false, reason: 'not_yet_valid', opensslCode: 'CERT_NOT_YET_VALID' });
  });

  it('wrong_eku for a server certificate used as a client', async () => {
    const v = await verdictFor(
      leaf(trusted, { profile: 'server', sans: [{ type: 'dns', value: 'srv.test.example' }] }),
    );
    expect(v).toMatchObject({ accepted: false, reason: 'wrong_eku', opensslCode: 'INVALID_PURPOSE' });
    expect(v.detail).toContain('client authentication');
  });

  it('unknown_ca for a chain from a CA the listener does not trust, naming the issuer', async () => {
    const v = await verdictFor(leaf(other, { profile: 'client', subject: parseName('CN=stranger') }));
    expect(v).toMatchObject({ accepted: false, reason: 'unknown_ca', issuer: 'CN=Other Intermediate' });
    expect(v.detail).toContain('issued by CN=Other Intermediate, which this listener does not trust');
  });

  it('missing_intermediate when only the leaf is sent', async () => {
    const v = await verdictFor(leaf(trusted, { profile: 'client', subject: parseName('CN=lonely') }, false));
    expect(v).toMatchObject({ accepted: false, reason: 'missing_intermediate' });
    expect(v.chain).toHaveLength(1);
    expect(v.detail).toContain('send the full chain');
  });

  it('self_signed for a self-signed client certificate', async () => {
    const key = generateKey('p256');
    const c = selfSign(key, { profile: 'client', subject: parseName('CN=me'), ttlMs: HOUR, unchecked: true });
    const v = await verdictFor({ cert: c.pem, key: exportPrivateKeyPem(key) });
    expect(v).toMatchObject({
      accepted: false,
      reason: 'self_signed',
      opensslCode: 'DEPTH_ZERO_SELF_SIGNED_CERT',
    });
  });

  it('saw one verdict per connection', () => {
    expect(verdicts.length).toBe(10);
  });
});
