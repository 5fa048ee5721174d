import { execFile, spawnSync } from 'node:child_process';
import { hash, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { parseCertificate, type Certificate } from './certificate.js';
import * as der from './der.js';
import { createIssuer, selfSign, type CertificateIssuer } from './issue.js';
import { exportPrivateKeyPem, generateKey, spkiOf, type KeyType } from './keys.js';
import { detectRole, fitProfiles, lintCertificate } from './lint.js';
import { parseName } from './names.js';
import {
  certIdFor,
  certIdMatcher,
  createOcspResponder,
  decodeOcspGetPath,
  encodeOcspRequest,
  OCSP_ERROR_STATUSES,
  ocspErrorResponse,
  parseOcspRequest,
  parseOcspResponse,
  verifyOcspResponseSignature,
  type OcspCertStatus,
  type OcspResponder,
} from './ocsp.js';
import { OID } from './oids.js';
import { encodePem } from './pem.js';
import { PROFILES, type ProfileName } from './profiles.js';

const execFileAsync = promisify(execFile);
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// ------------------------------------------------------------------ a PKI made for this run

interface Party {
  key: KeyObject;
  cert: Certificate;
}

function makeRoot(name: string, kt: KeyType = 'p256'): Party {
  const key = generateKey(kt);
  return { key, cert: parseCertificate(selfSign(key, { profile: 'root', subject: parseName(name) }).der) };
}

function issue(
  issuer: CertificateIssuer,
  profile: ProfileName,
  name: string,
  kt: KeyType = 'p256',
  extra: { ttlMs?: number } = {},
): Party {
  const key = generateKey(kt);
  const sans = profile === 'server' || profile === 'peer' ? [{ type: 'dns' as const, value: name }] : [];
  const cert = parseCertificate(
    issuer.issue({ profile, subject: parseName(`CN=${name}`), sans, publicKey: spkiOf(key), ...extra }).der,
  );
  return { key, cert };
}

const root = makeRoot('CN=OCSP Test Root,O=mtlskit');
const int = issue(createIssuer(root.cert, root.key), 'intermediate', 'OCSP Test Issuing CA');
const intIssuer = createIssuer(int.cert, int.key);
const leaf = issue(intIssuer, 'client', 'payments');
const leaf2 = issue(intIssuer, 'server', 'api.example.org');
const responderParty = issue(intIssuer, 'ocsp', 'OCSP Responder');
const other = makeRoot('CN=Other Root');
const otherLeaf = issue(createIssuer(other.cert, other.key), 'client', 'stranger');

const responder = createOcspResponder({
  issuerCert: int.cert,
  responderCert: responderParty.cert,
  responderKey: responderParty.key,
});

const window = (): { thisUpdate: Date; nextUpdate: Date } => {
  const thisUpdate = new Date(Math.floor(Date.now() / 1000) * 1000);
  return { thisUpdate, nextUpdate: new Date(thisUpdate.getTime() + HOUR) };
};

let dir = '';
const file = (name: string): string => path.join(dir, name);

function hasOpenssl(): boolean {
  try {
    return spawnSync('openssl', ['version']).status === 0;
  } catch {
    return false;
  }
}
const openssl = hasOpenssl();

/** Runs openssl; returns the exit code and stdout+stderr together (openssl ocsp splits its report). */
function ossl(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'mtls-ocsp-'));
  writeFileSync(file('root.pem'), encodePem('CERTIFICATE', root.cert.der));
  writeFileSync(file('int.pem'), encodePem('CERTIFICATE', int.cert.der));
  writeFileSync(file('leaf.pem'), encodePem('CERTIFICATE', leaf.cert.der));
  writeFileSync(file('leaf.key'), exportPrivateKeyPem(leaf.key));
  writeFileSync(file('leaf2.pem'), encodePem('CERTIFICATE', leaf2.cert.der));
  writeFileSync(file('responder.pem'), encodePem('CERTIFICATE', responderParty.cert.der));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `openssl ocsp … -reqout` for `certs` (file names in dir), parsed back. */
function opensslRequest(certs: string[], extra: string[] = []): { der: Buffer; file: string } {
  const out = file(`req-${randomBytes(4).toString('hex')}.der`);
  const r = ossl([
    'ocsp',
    '-issuer',
    file('int.pem'),
    ...extra, // a digest (-sha256) must come before -cert
    ...certs.flatMap((c) => ['-cert', file(c)]),
    '-reqout',
    out,
  ]);
  expect(r.code, r.out).toBe(0);
  return { der: readFileSync(out), file: out };
}

function writeResponse(bytes: Buffer): string {
  const out = file(`resp-${randomBytes(4).toString('hex')}.der`);
  writeFileSync(out, bytes);
  return out;
}

// ------------------------------------------------------------------ the ocsp profile

describe('the ocsp profile (delegated responder, RFC 6960 4.2.2.2)', () => {
  const c = responderParty.cert;

  it('is a leaf with KU digitalSignature (critical), EKU OCSPSigning only and ocsp-nocheck', () => {
    expect(c.basicConstraints).toEqual({ ca: false });
    expect(c.keyUsage).toEqual(['digitalSignature']);
    expect(c.extensions.find((e) => e.oid === OID.keyUsage)?.critical).toBe(true);
    expect(c.extKeyUsage).toEqual([OID.ocspSigning]);
    const noCheck = c.extensions.find((e) => e.oid === OID.ocspNoCheck);
    expect(noCheck?.critical).toBe(false);
    expect(noCheck?.value.equals(der.NULL)).toBe(true);
    expect(c.hasSan).toBe(false);
    expect(c.notAfter.getTime() - c.notBefore.getTime()).toBe(7 * DAY + 60_000);
    expect(PROFILES.ocsp.maxTtlMs).toBe(30 * DAY);
  });

  it('lints clean, is detected as ocsp and fits only ocsp', () => {
    for (const opts of [{ role: 'ocsp' as const, issuer: int.cert }, {}]) {
      const found = lintCertificate(c, opts).filter((f) => f.severity !== 'info');
      expect(found).toEqual([]);
    }
    expect(detectRole(c)).toBe('ocsp');
    expect(fitProfiles(c)).toEqual(['ocsp']);
    // other leaves do not fit the ocsp role (no OCSPSigning)
    expect(fitProfiles(leaf.cert)).not.toContain('ocsp');
    expect(fitProfiles(leaf2.cert)).not.toContain('ocsp');
    expect(lintCertificate(leaf.cert, { role: 'ocsp' }).map((f) => f.code)).toContain('missing_eku_for_role');
  });

  it('needs a subject and at most 30 days', () => {
    const pub = spkiOf(generateKey());
    const err = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return isMtlsError(e) ? e.code : String(e);
      }
      return undefined;
    };
    expect(
      err(() =>
        intIssuer.issue({ profile: 'ocsp', sans: [{ type: 'dns', value: 'ocsp.example' }], publicKey: pub }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    expect(err(() => intIssuer.issue({ profile: 'ocsp', publicKey: pub }))).toBe(
      'MTLS_PKI_PROFILE_VIOLATION',
    );
    expect(
      err(() =>
        intIssuer.issue({ profile: 'ocsp', subject: parseName('CN=r'), ttlMs: 31 * DAY, publicKey: pub }),
      ),
    ).toBe('MTLS_PKI_BAD_VALIDITY');
    expect(
      err(() =>
        intIssuer.issue({ profile: 'ocsp', subject: parseName('CN=r'), ttlMs: 30 * DAY, publicKey: pub }),
      ),
    ).toBeUndefined();
  });

  it.skipIf(!openssl)('openssl shows OCSP No Check and accepts it for the OCSP helper purpose', () => {
    const text = ossl(['x509', '-in', file('responder.pem'), '-noout', '-text']).out;
    expect(text).toContain('OCSP No Check');
    expect(text).toContain('OCSP Signing');
    const v = ossl([
      'verify',
      '-purpose',
      'ocsphelper',
      '-CAfile',
      file('root.pem'),
      '-untrusted',
      file('int.pem'),
      file('responder.pem'),
    ]);
    expect(v.out).toContain(': OK');
  });
});

// ------------------------------------------------------------------ requests

describe('parseOcspRequest, certIdFor, certIdMatcher', () => {
  const matcher = certIdMatcher(int.cert);

  it('round-trips our own encoding, with and without nonce, for every hash', () => {
    for (const h of ['sha1', 'sha256', 'sha384', 'sha512'] as const) {
      const id = certIdFor(leaf.cert, int.cert, h);
      expect(id.hashAlgorithm).toBe(h);
      expect(id.serial).toBe(leaf.cert.serial);
      expect(matcher.matches(id)).toBe(true);
      const nonce = der.octetString(randomBytes(16));
      const req = parseOcspRequest(encodeOcspRequest([id, certIdFor(leaf2.cert, int.cert, h)], { nonce }));
      expect(req.certIds.map((c) => c.serial)).toEqual([leaf.cert.serial, leaf2.cert.serial]);
      expect(req.certIds[0]!.der.equals(id.der)).toBe(true);
      expect(req.nonce?.equals(nonce)).toBe(true);
      expect(req.signed).toBe(false);
      expect(parseOcspRequest(encodeOcspRequest([id])).nonce).toBeUndefined();
    }
  });

  it('matches only CertIDs of its issuer', () => {
    expect(matcher.issuerNameHash.sha1.equals(hash('sha1', int.cert.subjectDer, 'buffer'))).toBe(true);
    expect(matcher.issuerKeyHash.sha256.equals(hash('sha256', int.cert.publicKey.keyBits, 'buffer'))).toBe(
      true,
    );
    expect(matcher.matches(certIdFor(otherLeaf.cert, other.cert))).toBe(false);
    expect(matcher.matches(certIdFor(leaf.cert, root.cert))).toBe(false);
    const id = certIdFor(leaf.cert, int.cert);
    expect(matcher.matches({ ...id, issuerKeyHash: Buffer.alloc(20) })).toBe(false);
    expect(matcher.matches({ ...id, hashAlgorithm: '1.2.3.4' })).toBe(false);
  });

  it('keeps small, odd and high-bit serials in the Certificate.serial convention', () => {
    for (const serial of ['01', '7f', '80', '00ff', 'deadbeef'.repeat(5)]) {
      const id = certIdFor({ serial }, int.cert);
      expect(parseOcspRequest(encodeOcspRequest([id])).certIds[0]!.serial).toBe(serial.replace(/^00/, ''));
    }
  });

  it('drops a nonce longer than 32 octets (RFC 8954) and flags it', () => {
    const id = certIdFor(leaf.cert, int.cert);
    const long = parseOcspRequest(encodeOcspRequest([id], { nonce: der.octetString(randomBytes(33)) }));
    expect(long.nonce).toBeUndefined();
    expect(long.nonceIgnored).toBe(true);
    const raw = parseOcspRequest(encodeOcspRequest([id], { nonce: randomBytes(20) })); // RFC 2560 style
    expect(raw.nonce?.length).toBe(20);
  });

  it('refuses garbage with MTLS_PKI_BAD_OCSP_REQUEST', () => {
    const code = (b: unknown): string | undefined => {
      try {
        parseOcspRequest(b as Buffer);
      } catch (e) {
        return isMtlsError(e) ? e.code : `not an MtlsError: ${String(e)}`;
      }
      return undefined;
    };
    const id = certIdFor(leaf.cert, int.cert);
    for (const bad of [
      Buffer.alloc(0),
      Buffer.from('hello'),
      Buffer.from([0x30, 0x00]),
      der.seq(der.seq(der.seq())), // empty requestList
      Buffer.concat([encodeOcspRequest([id]), Buffer.from([0])]), // trailing data
      der.seq(der.seq(der.seq(der.seq(der.seq(der.oid(OID.sha1)), der.NULL)))), // short CertID
      'a string',
      undefined,
    ]) {
      expect(code(bad)).toBe('MTLS_PKI_BAD_OCSP_REQUEST');
    }
  });

  it('decodes GET paths (percent-encoded or not) and refuses non-base64', () => {
    const reqDer = encodeOcspRequest([certIdFor(leaf.cert, int.cert)]);
    const b64 = reqDer.toString('base64');
    expect(decodeOcspGetPath(encodeURIComponent(b64)).equals(reqDer)).toBe(true);
    expect(decodeOcspGetPath(b64).equals(reqDer)).toBe(true);
    for (const bad of ['', '%zz', 'not base64!', '%00'])
      expect(() => decodeOcspGetPath(bad)).toThrow(/GET path/);
  });

  describe.skipIf(!openssl)('requests made by openssl ocsp', () => {
    it('-no_nonce: one SHA-1 CertID for the leaf, no nonce', () => {
      const req = parseOcspRequest(opensslRequest(['leaf.pem'], ['-no_nonce']).der);
      expect(req.certIds).toHaveLength(1);
      const id = req.certIds[0]!;
      expect(id.hashAlgorithm).toBe('sha1');
      expect(id.serial).toBe(leaf.cert.serial);
      expect(matcher.matches(id)).toBe(true);
      expect(id.der.equals(certIdFor(leaf.cert, int.cert).der)).toBe(true);
      expect(req.nonce).toBeUndefined();
      expect(req.signed).toBe(false);
    });

    it('default: a 16-byte nonce in an OCTET STRING', () => {
      const req = parseOcspRequest(opensslRequest(['leaf.pem']).der);
      expect(req.nonce?.length).toBe(18);
      expect(req.nonce?.subarray(0, 2)).toEqual(Buffer.from([0x04, 0x10]));
    });

    it('-sha256 CertID and two certificates', () => {
      const req = parseOcspRequest(opensslRequest(['leaf.pem', 'leaf2.pem'], ['-sha256', '-no_nonce']).der);
      expect(req.certIds.map((c) => [c.hashAlgorithm, c.serial])).toEqual([
        ['sha256', leaf.cert.serial],
        ['sha256', leaf2.cert.serial],
      ]);
      expect(req.certIds.every((c) => matcher.matches(c))).toBe(true);
    });

    it('a signed request is read and flagged', () => {
      const req = parseOcspRequest(
        opensslRequest(['leaf.pem'], ['-signer', file('leaf.pem'), '-signkey', file('leaf.key')]).der,
      );
      expect(req.signed).toBe(true);
      expect(req.hasRequestorName).toBe(true);
      expect(req.certIds[0]!.serial).toBe(leaf.cert.serial);
    });
  });
});

// ------------------------------------------------------------------ responses

describe('createOcspResponder / parseOcspResponse', () => {
  it('signs a response with byKey responder id, the responder certificate and the statuses given', () => {
    const w = window();
    const at = new Date(w.thisUpdate.getTime() - HOUR);
    const nonce = der.octetString(randomBytes(16));
    const ids = [leaf, leaf2, leaf].map((p, k) => certIdFor(p.cert, int.cert, k === 2 ? 'sha256' : 'sha1'));
    const bytes = responder.respond(
      [
        { certId: ids[0]!, status: 'good' },
        { certId: ids[1]!, status: { revoked: { at, reason: 'keyCompromise' } } },
        { certId: ids[2]!, status: 'unknown' },
      ],
      { ...w, nonce },
    );
    const r = parseOcspResponse(bytes);
    expect(r.status).toBe('successful');
    expect(r.responderId).toEqual({ byKey: hash('sha1', responderParty.cert.publicKey.keyBits, 'buffer') });
    expect(r.certs.map((c) => c.der)).toEqual([responderParty.cert.der]);
    expect(verifyOcspResponseSignature(r, responderParty.cert)).toBe(true);
    expect(verifyOcspResponseSignature(r, int.cert)).toBe(false);
    expect(r.nonce?.equals(nonce)).toBe(true);
    expect(Math.abs(r.producedAt!.getTime() - Date.now())).toBeLessThan(5000);
    expect(r.responses.map((s) => [s.status, s.certId.serial, s.certId.hashAlgorithm])).toEqual([
      ['good', leaf.cert.serial, 'sha1'],
      ['revoked', leaf2.cert.serial, 'sha1'],
      ['unknown', leaf.cert.serial, 'sha256'],
    ]);
    expect(r.responses[1]!.revokedAt).toEqual(at);
    expect(r.responses[1]!.reason).toBe('keyCompromise');
    for (const s of r.responses) {
      expect(s.thisUpdate).toEqual(w.thisUpdate);
      expect(s.nextUpdate).toEqual(w.nextUpdate);
    }
    // the CertIDs are echoed byte for byte
    expect(r.responses.map((s) => s.certId.der)).toEqual(ids.map((i) => i.der));
    // one flipped byte in the signed part breaks the signature
    const tampered = Buffer.from(bytes);
    const p = tampered.indexOf(ids[0]!.der) + ids[0]!.der.length - 1;
    tampered[p]! ^= 1;
    expect(verifyOcspResponseSignature(parseOcspResponse(tampered), responderParty.cert)).toBe(false);
  });

  it('answers unknown for a CertID of another issuer whatever status is given', () => {
    const r = parseOcspResponse(
      responder.respond([{ certId: certIdFor(otherLeaf.cert, other.cert), status: 'good' }], window()),
    );
    expect(r.responses[0]!.status).toBe('unknown');
    expect(responder.matches(certIdFor(otherLeaf.cert, other.cert))).toBe(false);
    expect(responder.matches(certIdFor(leaf.cert, int.cert, 'sha256'))).toBe(true);
  });

  it('without a nonce the response carries none (cacheable), and a revoked entry without reason has none', () => {
    const w = window();
    const r = parseOcspResponse(
      responder.respond(
        [{ certId: certIdFor(leaf.cert, int.cert), status: { revoked: { at: w.thisUpdate } } }],
        w,
      ),
    );
    expect(r.nonce).toBeUndefined();
    expect(r.responses[0]!.status).toBe('revoked');
    expect(r.responses[0]!.reason).toBeUndefined();
  });

  it('the CA itself can respond (no certs field)', () => {
    const direct = createOcspResponder({
      issuerCert: int.cert,
      responderCert: int.cert,
      responderKey: int.key,
    });
    expect(direct.delegated).toBe(false);
    const r = parseOcspResponse(
      direct.respond([{ certId: certIdFor(leaf.cert, int.cert), status: 'good' }], window()),
    );
    expect(r.certs).toEqual([]);
    expect(verifyOcspResponseSignature(r, int.cert)).toBe(true);
  });

  it('refuses a wrong key, a responder without OCSPSigning and one from another CA', () => {
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return isMtlsError(e) ? e.code : String(e);
      }
      return undefined;
    };
    expect(
      code(() =>
        createOcspResponder({
          issuerCert: int.cert,
          responderCert: responderParty.cert,
          responderKey: leaf.key,
        }),
      ),
    ).toBe('MTLS_PKI_KEY_MISMATCH');
    expect(
      code(() =>
        createOcspResponder({ issuerCert: int.cert, responderCert: leaf.cert, responderKey: leaf.key }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    const foreign = issue(createIssuer(other.cert, other.key), 'ocsp', 'Foreign Responder');
    expect(
      code(() =>
        createOcspResponder({ issuerCert: int.cert, responderCert: foreign.cert, responderKey: foreign.key }),
      ),
    ).toBe('MTLS_PKI_PROFILE_VIOLATION');
    const id = certIdFor(leaf.cert, int.cert);
    expect(code(() => responder.respond([], window()))).toBe('MTLS_PKI_BAD_OCSP_REQUEST');
    const w = window();
    expect(
      code(() => responder.respond([{ certId: id, status: 'good' }], { ...w, nextUpdate: w.thisUpdate })),
    ).toBe('MTLS_PKI_BAD_VALIDITY');
  });

  it('error responses are SEQUENCE { ENUMERATED } and parse back', () => {
    for (const s of OCSP_ERROR_STATUSES) {
      const bytes = ocspErrorResponse(s);
      expect(bytes.length).toBe(5);
      expect(parseOcspResponse(bytes)).toMatchObject({ status: s, responses: [], certs: [] });
      expect(responder.errorResponse(s).equals(bytes)).toBe(true);
    }
    expect(() => ocspErrorResponse('successful' as never)).toThrow();
  });
});

// ------------------------------------------------------------------ interop with openssl ocsp

describe.skipIf(!openssl)('openssl ocsp verifies our responses', () => {
  /** Answers an openssl request file with `status` for each CertID, as the CA would. */
  function answer(reqDer: Buffer, status: OcspCertStatus, r: OcspResponder = responder): Buffer {
    const req = parseOcspRequest(reqDer);
    return r.respond(
      req.certIds.map((certId) => ({ certId, status })),
      { ...window(), nonce: req.nonce },
    );
  }

  function check(respFile: string, certs: string[], extra: string[] = []): string {
    const r = ossl([
      'ocsp',
      '-respin',
      respFile,
      '-issuer',
      file('int.pem'),
      '-CAfile',
      file('root.pem'),
      ...extra,
      ...certs.flatMap((c) => ['-cert', file(c)]),
      '-no_nonce',
    ]);
    expect(r.out).toContain('Response verify OK');
    return r.out;
  }

  it('good', () => {
    const { der: reqDer } = opensslRequest(['leaf.pem'], ['-no_nonce']);
    const out = check(writeResponse(answer(reqDer, 'good')), ['leaf.pem']);
    expect(out).toMatch(/leaf\.pem: good\n\s+This Update: .+\n\s+Next Update: /);
  });

  it('revoked, with time and reason', () => {
    const { der: reqDer } = opensslRequest(['leaf.pem'], ['-no_nonce']);
    const at = new Date('2026-01-02T03:04:05Z');
    const out = check(writeResponse(answer(reqDer, { revoked: { at, reason: 'keyCompromise' } })), [
      'leaf.pem',
    ]);
    expect(out).toMatch(/leaf\.pem: revoked/);
    expect(out).toContain('Reason: keyCompromise');
    expect(out).toContain('Revocation Time: Jan  2 03:04:05 2026 GMT');
  });

  it('unknown, and two certificates with SHA-256 CertIDs in one response', () => {
    const { der: one } = opensslRequest(['leaf.pem'], ['-no_nonce']);
    expect(check(writeResponse(answer(one, 'unknown')), ['leaf.pem'])).toMatch(/leaf\.pem: unknown/);
    const { der: two } = opensslRequest(['leaf.pem', 'leaf2.pem'], ['-sha256', '-no_nonce']);
    const out = check(writeResponse(answer(two, 'good')), ['leaf.pem', 'leaf2.pem'], ['-sha256']);
    expect(out).toMatch(/leaf\.pem: good/);
    expect(out).toMatch(/leaf2\.pem: good/);
  });

  it('-VAfile with the responder certificate, and -resp_text', () => {
    const { der: reqDer } = opensslRequest(['leaf.pem'], ['-no_nonce']);
    const respFile = writeResponse(answer(reqDer, 'good'));
    const r = ossl([
      'ocsp',
      '-respin',
      respFile,
      '-issuer',
      file('int.pem'),
      '-VAfile',
      file('responder.pem'),
      '-cert',
      file('leaf.pem'),
      '-no_nonce',
      '-resp_text',
    ]);
    expect(r.out).toContain('Response verify OK');
    expect(r.out).toContain('OCSP Response Status: successful (0x0)');
    expect(r.out).toContain('Cert Status: good');
    expect(r.out).toContain(
      `Responder Id: ${hash('sha1', responderParty.cert.publicKey.keyBits, 'hex').toUpperCase()}`,
    );
  });

  it('the nonce check passes when the request carried one, and fails on a wrong one', () => {
    const req = opensslRequest(['leaf.pem']);
    const good = writeResponse(answer(req.der, 'good'));
    // -reqin (without -cert) makes openssl compare the response nonce with the request's.
    const base = ['ocsp', '-reqin', req.file, '-issuer', file('int.pem'), '-CAfile', file('root.pem')];
    const ok = ossl([...base, '-respin', good, '-resp_text']);
    expect(ok.out).toContain('Response verify OK');
    expect(ok.out).toContain('Cert Status: good');
    expect(ok.out).toContain('OCSP Nonce');
    expect(ok.out).not.toMatch(/Nonce Verify error|no nonce in response/);
    const parsed = parseOcspRequest(req.der);
    const wrong = writeResponse(
      responder.respond([{ certId: parsed.certIds[0]!, status: 'good' }], {
        ...window(),
        nonce: der.octetString(randomBytes(16)),
      }),
    );
    expect(ossl([...base, '-respin', wrong]).out).toContain('Nonce Verify error');
  });

  it('a response signed by the CA itself, and one from an RSA responder, verify too', () => {
    const { der: reqDer } = opensslRequest(['leaf.pem'], ['-no_nonce']);
    const direct = createOcspResponder({
      issuerCert: int.cert,
      responderCert: int.cert,
      responderKey: int.key,
    });
    expect(check(writeResponse(answer(reqDer, 'good', direct)), ['leaf.pem'])).toMatch(/leaf\.pem: good/);
    const rsa = issue(intIssuer, 'ocsp', 'RSA OCSP Responder', 'rsa2048');
    const rsaResponder = createOcspResponder({
      issuerCert: int.cert,
      responderCert: rsa.cert,
      responderKey: rsa.key,
    });
    expect(check(writeResponse(answer(reqDer, 'good', rsaResponder)), ['leaf.pem'])).toMatch(
      /leaf\.pem: good/,
    );
  });

  it('error responses read as responder errors', () => {
    const codes = { malformedRequest: 1, internalError: 2, tryLater: 3, unauthorized: 6 };
    for (const st of OCSP_ERROR_STATUSES) {
      const r = ossl(['ocsp', '-respin', writeResponse(ocspErrorResponse(st)), '-resp_text', '-noverify']);
      expect(r.out).toContain(`Responder Error: ${st.toLowerCase()} (${codes[st]})`);
    }
  });

  it('a full loop over HTTP: POST from openssl ocsp -url, GET from fetch; good, then revoked', async () => {
    const statuses = new Map<string, OcspCertStatus>();
    const served: string[] = [];
    const handle = (body: Buffer): Buffer => {
      let req;
      try {
        req = parseOcspRequest(body);
      } catch {
        return ocspErrorResponse('malformedRequest');
      }
      return responder.respond(
        req.certIds.map((certId) => ({
          certId,
          status: responder.matches(certId) ? (statuses.get(certId.serial) ?? 'unknown') : 'unknown',
        })),
        { ...window(), nonce: req.nonce },
      );
    };
    const server: Server = createServer((req, res) => {
      const send = (bytes: Buffer): void => {
        res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': bytes.length });
        res.end(bytes);
      };
      if (req.method === 'GET') {
        served.push('GET');
        let body: Buffer;
        try {
          body = decodeOcspGetPath((req.url ?? '/').slice(1));
        } catch {
          send(ocspErrorResponse('malformedRequest'));
          return;
        }
        send(handle(body));
        return;
      }
      served.push(`${req.method} ${req.headers['content-type']}`);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => send(handle(Buffer.concat(chunks))));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const ask = async (): Promise<string> => {
      const { stdout, stderr } = await execFileAsync('openssl', [
        'ocsp',
        '-issuer',
        file('int.pem'),
        '-cert',
        file('leaf.pem'),
        '-url',
        url,
        '-CAfile',
        file('root.pem'),
      ]);
      return stdout + stderr;
    };
    try {
      statuses.set(leaf.cert.serial, 'good');
      const first = await ask();
      expect(first).toContain('Response verify OK');
      expect(first).toMatch(/leaf\.pem: good/);
      expect(first).not.toMatch(/Nonce Verify error|no nonce in response/);

      statuses.set(leaf.cert.serial, { revoked: { at: new Date(), reason: 'superseded' } });
      const second = await ask();
      expect(second).toContain('Response verify OK');
      expect(second).toMatch(/leaf\.pem: revoked/);
      expect(second).toContain('Reason: superseded');
      expect(served).toEqual(['POST application/ocsp-request', 'POST application/ocsp-request']);

      // GET /<url-encoded base64 DER> (RFC 6960 A.1), as browsers and some TLS stacks send it
      const reqDer = encodeOcspRequest([certIdFor(leaf.cert, int.cert)]);
      const got = await fetch(url + encodeURIComponent(reqDer.toString('base64')));
      const viaGet = parseOcspResponse(Buffer.from(await got.arrayBuffer()));
      expect(viaGet.responses[0]!.status).toBe('revoked');
      expect(verifyOcspResponseSignature(viaGet, responderParty.cert)).toBe(true);
      const garbage = await fetch(url + 'AAAA');
      expect(parseOcspResponse(Buffer.from(await garbage.arrayBuffer())).status).toBe('malformedRequest');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// ------------------------------------------------------------------ fuzz: nothing but MtlsError

describe('parsers never throw anything but MtlsError', () => {
  const seeds: Buffer[] = [
    encodeOcspRequest([certIdFor(leaf.cert, int.cert)]),
    encodeOcspRequest([certIdFor(leaf.cert, int.cert, 'sha256'), certIdFor(leaf2.cert, int.cert)], {
      nonce: der.octetString(randomBytes(16)),
    }),
  ];
  if (openssl) {
    seeds.push(opensslRequestSync(['-no_nonce']), opensslRequestSync([]), opensslRequestSync(['-sha256']));
  }
  const responseSeeds = [
    responder.respond([{ certId: certIdFor(leaf.cert, int.cert), status: 'good' }], {
      ...window(),
      nonce: der.octetString(randomBytes(16)),
    }),
    responder.respond(
      [
        {
          certId: certIdFor(leaf.cert, int.cert),
          status: { revoked: { at: new Date(), reason: 'keyCompromise' } },
        },
      ],
      window(),
    ),
    ocspErrorResponse('malformedRequest'),
  ];

  function opensslRequestSync(extra: string[]): Buffer {
    const d = mkdtempSync(path.join(tmpdir(), 'mtls-ocsp-seed-'));
    try {
      writeFileSync(path.join(d, 'i.pem'), encodePem('CERTIFICATE', int.cert.der));
      writeFileSync(path.join(d, 'l.pem'), encodePem('CERTIFICATE', leaf.cert.der));
      const r = ossl([
        'ocsp',
        '-issuer',
        path.join(d, 'i.pem'),
        ...extra,
        '-cert',
        path.join(d, 'l.pem'),
        '-reqout',
        path.join(d, 'r.der'),
      ]);
      expect(r.code, r.out).toBe(0);
      return readFileSync(path.join(d, 'r.der'));
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  }

  /** A mutation: flip, set, insert, delete bytes, or truncate / extend. */
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }),
    }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  );
  type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

  function mutate(input: Buffer, ms: Mutation[]): Buffer {
    let b = Buffer.from(input);
    for (const m of ms) {
      const at = b.length ? m.at % b.length : 0;
      switch (m.kind) {
        case 'set':
          if (b.length) b[at] = m.byte;
          break;
        case 'flip':
          if (b.length) b[at]! ^= 1 << m.bit;
          break;
        case 'insert':
          b = Buffer.concat([b.subarray(0, at), Buffer.from(m.bytes), b.subarray(at)]);
          break;
        case 'delete':
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
          break;
        case 'truncate':
          b = b.subarray(0, at);
          break;
      }
    }
    return b;
  }

  function onlyMtlsErrors(parse: (b: Buffer) => unknown, code: string): (b: Buffer) => void {
    return (b) => {
      try {
        parse(b);
      } catch (e) {
        if (!isMtlsError(e) || e.code !== code) throw e;
      }
    };
  }

  it('parseOcspRequest: random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (a) =>
        onlyMtlsErrors(parseOcspRequest, 'MTLS_PKI_BAD_OCSP_REQUEST')(Buffer.from(a)),
      ),
      { numRuns: 3000 },
    );
  });

  it('parseOcspRequest: mutated valid requests (ours and openssl’s)', () => {
    let parsed = 0;
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (seed, ms) => {
          const input = mutate(seed, ms);
          try {
            const req = parseOcspRequest(input);
            parsed++;
            // whatever parsed is usable by a responder without throwing
            for (const id of req.certIds) responder.matches(id);
            responder.respond(
              req.certIds.map((certId) => ({ certId, status: 'good' })),
              { ...window(), nonce: req.nonce },
            );
          } catch (e) {
            if (!isMtlsError(e, 'MTLS_PKI_BAD_OCSP_REQUEST')) throw e;
          }
        },
      ),
      { numRuns: 3000 },
    );
    expect(parsed).toBeGreaterThan(0); // some mutations keep it valid (the serial, the hashes)
  });

  it('parseOcspResponse: random and mutated responses', () => {
    const check = onlyMtlsErrors(parseOcspResponse, 'MTLS_PKI_BAD_OCSP_RESPONSE');
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (a) => check(Buffer.from(a))),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(
        fc.constantFrom(...responseSeeds),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        (seed, ms) => check(mutate(seed, ms)),
      ),
      { numRuns: 1500 },
    );
  });
});
