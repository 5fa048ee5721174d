import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { fingerprint256, generateKey, isSignedBy, readCertificates, spkiOf } from '../pki/index.js';
import { activateStagedRoot, CA_FILES, initFileCa, loadFileCa, loadTrustPem, stageRoot } from './file-ca.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'mtls-ca-rot-'));
const rootsIn = (pem: string): string[] => readCertificates(Buffer.from(pem)).map(fingerprint256);

describe('root rotation', () => {
  it('an older CA directory (ca.pem = root) reads as one root', () => {
    const dir = join(tmp(), 'ca');
    const { meta } = initFileCa({ dir, name: 'Rot', keyType: 'p256', passphrase: 'pw' });
    expect(rootsIn(loadTrustPem(dir))).toEqual([meta.rootFingerprint]);
    expect(loadFileCa(dir, 'pw').stagedRoot).toBeUndefined();
  });

  it('stage publishes the new root beside the current one; activate makes it the issuer', () => {
    const dir = join(tmp(), 'ca');
    const { meta } = initFileCa({ dir, name: 'Rot', keyType: 'p256', passphrase: 'pw' });
    const staged = stageRoot(dir, 'pw');
    expect(staged.fingerprint).not.toBe(meta.rootFingerprint);
    expect(rootsIn(readFileSync(join(dir, CA_FILES.bundle), 'latin1'))).toEqual([
      meta.rootFingerprint,
      staged.fingerprint,
    ]);
    expect(statSync(join(dir, 'staged', CA_FILES.rootKey)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, 'staged', CA_FILES.rootKey), 'latin1')).toMatch(/ENCRYPTED/);
    // Still issuing under the current root; publishing and trusting both.
    const during = loadFileCa(dir, 'pw');
    expect(fingerprint256(during.root)).toBe(meta.rootFingerprint);
    expect(rootsIn(during.trustPem)).toEqual([meta.rootFingerprint, staged.fingerprint]);
    expect(during.stagedRoot && fingerprint256(during.stagedRoot)).toBe(staged.fingerprint);
    // A second stage is refused and changes nothing.
    const again = (() => {
      try {
        stageRoot(dir, 'pw');
      } catch (e) {
        return e;
      }
    })();
    expect(isMtlsError(again, 'MTLS_CA_STAGED_EXISTS')).toBe(true);

    const r = activateStagedRoot(dir, 'pw');
    expect(r.fingerprint).toBe(staged.fingerprint);
    expect(r.previousFingerprint).toBe(meta.rootFingerprint);
    expect(existsSync(join(dir, 'staged'))).toBe(false);
    expect(readdirSync(r.retiredDir).sort()).toEqual(
      [
        CA_FILES.rootCert,
        CA_FILES.rootKey,
        CA_FILES.intermediateCert,
        CA_FILES.intermediateKey,
        CA_FILES.rootCrl,
      ].sort(),
    );
    const after = loadFileCa(dir, 'pw');
    expect(fingerprint256(after.root)).toBe(staged.fingerprint);
    expect(after.meta.rootFingerprint).toBe(staged.fingerprint);
    expect(after.meta.retiredRootFingerprints).toEqual([meta.rootFingerprint]);
    // The old root stays trusted and published (its leaves are still out there).
    expect(rootsIn(after.trustPem)).toEqual([meta.rootFingerprint, staged.fingerprint]);
    const leaf = after.issuer.issue({
      profile: 'client',
      subject: [[{ oid: '2.5.4.3', value: 'after' }]],
      publicKey: spkiOf(generateKey('p256')),
      ttlMs: 60_000,
    });
    const leafCert = readCertificates(Buffer.from(leaf.pem))[0]!;
    expect(isSignedBy(leafCert, after.intermediate)).toBe(true);
    expect(isSignedBy(after.intermediate, after.root)).toBe(true);
  });

  it('activate without a staged root is refused', () => {
    const dir = join(tmp(), 'ca');
    initFileCa({ dir, name: 'Rot', keyType: 'p256', passphrase: 'pw' });
    let err: unknown;
    try {
      activateStagedRoot(dir, 'pw');
    } catch (e) {
      err = e;
    }
    expect(isMtlsError(err, 'MTLS_CA_NO_STAGED_ROOT')).toBe(true);
  });

  it('stage with a wrong passphrase writes nothing', () => {
    const dir = join(tmp(), 'ca');
    initFileCa({ dir, name: 'Rot', keyType: 'p256', passphrase: 'pw' });
    const before = readFileSync(join(dir, CA_FILES.bundle), 'latin1');
    expect(() => stageRoot(dir, 'wrong')).toThrow();
    expect(existsSync(join(dir, 'staged'))).toBe(false);
    expect(readFileSync(join(dir, CA_FILES.bundle), 'latin1')).toBe(before);
  });
});
