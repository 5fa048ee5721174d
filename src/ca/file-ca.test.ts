import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { generateKey, parseCertificate, spkiOf, type Clock } from '../pki/index.js';
import { CA_FILES, initFileCa, loadFileCa } from './file-ca.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'mtls-ca-'));
const catchErr = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('file CA', () => {
  it('creates root + intermediate with encrypted 0600 keys and loads them back', () => {
    const dir = join(tmp(), 'ca');
    const { meta } = initFileCa({
      dir,
      name: 'Test',
      keyType: 'p256',
      passphrase: 'pw',
      trustDomain: 'example.org',
    });
    expect(meta.keysEncrypted).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(Object.values(CA_FILES).sort());
    for (const k of [CA_FILES.rootKey, CA_FILES.intermediateKey]) {
      expect(statSync(join(dir, k)).mode & 0o777).toBe(0o600);
    }
    const ca = loadFileCa(dir, 'pw');
    expect(ca.root.basicConstraints).toEqual({ ca: true, pathLen: 1 });
    expect(ca.intermediate.basicConstraints).toEqual({ ca: true, pathLen: 0 });
    expect(ca.intermediate.issuerDer.equals(ca.root.subjectDer)).toBe(true);
    expect(ca.meta.trustDomain).toBe('example.org');
  });

  it('refuses plaintext keys unless asked, and an existing CA', () => {
    const dir = join(tmp(), 'ca');
    expect(
      isMtlsError(
        catchErr(() => initFileCa({ dir, name: 'T', keyType: 'p256' })),
        'MTLS_CA_PASSPHRASE_REQUIRED',
      ),
    ).toBe(true);
    initFileCa({ dir, name: 'T', keyType: 'p256', insecurePlaintextKey: true });
    expect(
      isMtlsError(
        catchErr(() => initFileCa({ dir, name: 'T', keyType: 'p256', passphrase: 'x' })),
        'MTLS_CA_EXISTS',
      ),
    ).toBe(true);
    const ca = loadFileCa(dir, undefined);
    expect(ca.meta.keysEncrypted).toBe(false);
  });

  it('says which passphrase problem it is', () => {
    const dir = join(tmp(), 'ca');
    initFileCa({ dir, name: 'T', keyType: 'p256', passphrase: 'right' });
    expect(
      isMtlsError(
        catchErr(() => loadFileCa(dir, undefined)),
        'MTLS_CA_PASSPHRASE_REQUIRED',
      ),
    ).toBe(true);
    expect(
      isMtlsError(
        catchErr(() => loadFileCa(dir, 'wrong')),
        'MTLS_PKI_BAD_PASSPHRASE',
      ),
    ).toBe(true);
    expect(
      isMtlsError(
        catchErr(() => loadFileCa(join(dir, 'nope'), 'right')),
        'MTLS_CA_NOT_FOUND',
      ),
    ).toBe(true);
  });

  it('issues leaves that chain to the intermediate, with an injected clock', () => {
    const dir = join(tmp(), 'ca');
    const t0 = new Date('2030-01-01T00:00:00Z');
    const clock: Clock = { now: () => t0 };
    initFileCa({ dir, name: 'T', keyType: 'p256', passphrase: 'pw', clock });
    const ca = loadFileCa(dir, 'pw', clock);
    const key = generateKey('p256');
    const leaf = parseCertificate(
      ca.issuer.issue({
        profile: 'client',
        subject: [[{ oid: '2.5.4.3', value: 'svc' }]],
        publicKey: spkiOf(key),
      }).der,
    );
    expect(leaf.issuerDer.equals(ca.intermediate.subjectDer)).toBe(true);
    expect(leaf.notBefore.getTime()).toBe(t0.getTime() - 60_000);
    expect(leaf.notAfter.getTime()).toBe(t0.getTime() + 86_400_000);
  });
});
