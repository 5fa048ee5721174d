import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import {
  createCsr,
  generateKey,
  parseCertificate,
  parseSanList,
  spkiOf,
  type Certificate,
} from '../pki/index.js';
import { openStore, type Store } from '../store/index.js';
import { Authority, normalizeSerial, parseToken } from './authority.js';
import { initFileCa, loadFileCa } from './file-ca.js';
import { parseCaConfig } from './policy.js';

describe('normalizeSerial', () => {
  it.each([
    ['01a2', '01a2'],
    ['1a2', '01a2'],
    ['00:01:A2', '01a2'],
    ['0x00ff', 'ff'],
    ['00', '00'],
  ])('%s → %s', (input, out) => expect(normalizeSerial(input)).toBe(out));
});

describe('parseToken', () => {
  it('splits a well-formed token and refuses anything else', () => {
    expect(parseToken(`mtls_abcdefgh12.${'x'.repeat(43)}`)).toEqual({
      id: 'abcdefgh12',
      secret: 'x'.repeat(43),
    });
    expect(parseToken('mtls_short.x')).toBeUndefined();
    expect(parseToken('Bearer abc')).toBeUndefined();
  });
});

describe('Authority policy (real SQLite store, real PKI)', () => {
  let store: Store;
  let authority: Authority;
  let adminCert: Certificate;
  const ctx = (clientCert?: Certificate) => ({ requestId: 'test', ...(clientCert ? { clientCert } : {}) });
  const refusal = async (p: Promise<unknown>): Promise<string | undefined> => {
    try {
      await p;
    } catch (e) {
      return isMtlsError(e) ? e.code : String(e);
    }
    return undefined;
  };

  beforeAll(async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mtls-authority-')), 'ca');
    initFileCa({ dir, name: 'Policy', keyType: 'p256', passphrase: 'pw' });
    const ca = loadFileCa(dir, 'pw');
    store = await openStore('sqlite::memory:');
    const config = parseCaConfig({
      provisioners: [
        {
          name: 'svc',
          type: 'token',
          identities: ['dns:*.svc.example.org'],
          profiles: ['client', 'peer'],
          keyTypes: ['EC P-256'],
          defaultTtl: '1h',
          maxTtl: '2h',
        },
        {
          name: 'renew-svc',
          type: 'renew',
          identities: ['dns:*.svc.example.org'],
          profiles: ['client', 'peer'],
          keyTypes: ['EC P-256'],
        },
      ],
    });
    authority = new Authority({ ca, store, config });
    adminCert = parseCertificate(
      ca.issuer.issue({
        profile: 'client',
        subject: [[{ oid: '2.5.4.3', value: 'mtls-admin' }]],
        publicKey: spkiOf(generateKey('p256')),
      }).der,
    );
  });

  afterAll(async () => {
    await store.close();
  });

  it('grants tokens only inside a token provisioner (identities, profile, lifetime)', async () => {
    const grant = (sans: string[], profile: 'client' | 'server' = 'client', maxTtlMs = 3_600_000) =>
      authority.createToken({ grant: { profile, sans, maxTtlMs } }, ctx(adminCert));
    await expect(grant(['dns:api.svc.example.org'])).resolves.toMatchObject({
      token: expect.stringMatching(/^mtls_/) as unknown,
    });
    expect(await refusal(grant(['dns:api.example.org']))).toBe('MTLS_CA_POLICY');
    expect(await refusal(grant(['dns:api.svc.example.org'], 'server'))).toBe('MTLS_CA_POLICY');
    expect(await refusal(grant(['dns:api.svc.example.org'], 'client', 48 * 3_600_000))).toBe(
      'MTLS_CA_POLICY',
    );
    expect(
      await refusal(
        authority.createToken(
          { grant: { profile: 'client', sans: ['dns:a.svc.example.org'], maxTtlMs: 1 } },
          ctx(),
        ),
      ),
    ).toBe('MTLS_CA_UNAUTHENTICATED');
  });

  it('issues with the provisioner default lifetime and refuses key types it does not allow', async () => {
    const { token } = await authority.createToken(
      { grant: { profile: 'client', sans: ['dns:web.svc.example.org'], maxTtlMs: 2 * 3_600_000 } },
      ctx(adminCert),
    );
    const rsaCsr = createCsr({
      key: generateKey('rsa2048'),
      subject: [],
      sans: parseSanList('dns:web.svc.example.org'),
    });
    expect(await refusal(authority.enroll({ token, csr: rsaCsr.pem }, ctx()))).toBe('MTLS_CA_POLICY');
    // The refused attempt did not consume the token.
    const ecCsr = createCsr({
      key: generateKey('p256'),
      subject: [],
      sans: parseSanList('dns:web.svc.example.org'),
    });
    const issued = await authority.enroll({ token, csr: ecCsr.pem }, ctx());
    const lifetime = Date.parse(issued.notAfter) - Date.parse(issued.notBefore);
    expect(lifetime).toBe(3_600_000 + 60_000);
    const audit = await store.listAudit(0, 100);
    expect(
      audit.some(
        (r) => r.outcome === 'refused' && r.reason === 'MTLS_CA_POLICY' && r.action === 'certificate.issue',
      ),
    ).toBe(true);
  });
});
