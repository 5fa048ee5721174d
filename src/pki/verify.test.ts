import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseCertificate, type Certificate, type KeyUsage } from './certificate.js';
import { KEY_USAGE_BITS } from './certificate.js';
import { createCrl, parseCrl, type Crl } from './crl.js';
import * as der from './der.js';
import { createIssuer, selfSign } from './issue.js';
import { generateKey, signatureAlgorithmFor, spkiOf } from './keys.js';
import { encodeGeneralName, encodeName, ipToBytes, parseName, type San } from './names.js';
import { OID } from './oids.js';
import { REASONS, type Reason } from './reasons.js';
import {
  isDnsNameSyntax,
  parseExpectedName,
  verifyCertificate,
  type VerifyOptions,
  type VerifyResult,
} from './verify.js';

// ---------------------------------------------------------------- a small certificate builder

const DAY = 86_400_000;
const AT = new Date('2026-06-01T12:00:00Z');
const clock = { now: () => AT };

interface Party {
  cert: Certificate;
  key: KeyObject;
}

interface BuildOptions {
  subject: string;
  issuer?: Party;
  key?: KeyObject;
  ca?: boolean;
  pathLen?: number;
  /** null: no keyUsage extension. */
  ku?: KeyUsage[] | null;
  eku?: string[];
  sans?: San[];
  nc?: { permitted?: Buffer[]; excluded?: Buffer[] };
  notBefore?: Date;
  notAfter?: Date;
  extra?: Buffer[];
  noAki?: boolean;
  serial?: Buffer;
  sha1?: boolean;
}

function ext(oid: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? der.seq(der.oid(oid), der.boolean(true), der.octetString(value))
    : der.seq(der.oid(oid), der.octetString(value));
}

const keyId = (c: { spki: Buffer } | Buffer): Buffer =>
  createHash('sha1')
    .update(Buffer.isBuffer(c) ? c : c.spki)
    .digest();

function build(o: BuildOptions): Party {
  const key = o.key ?? generateKey('p256');
  const spki = spkiOf(key);
  const signer = o.issuer?.key ?? key;
  const ca = o.ca ?? false;
  const exts: Buffer[] = [];
  if (o.ca !== undefined || o.pathLen !== undefined) {
    exts.push(
      ext(
        OID.basicConstraints,
        true,
        der.seq(
          ...(ca ? [der.boolean(true)] : []),
          ...(o.pathLen !== undefined ? [der.integer(o.pathLen)] : []),
        ),
      ),
    );
  }
  const ku =
    o.ku === undefined
      ? ca
        ? (['keyCertSign', 'cRLSign'] as KeyUsage[])
        : (['digitalSignature'] as KeyUsage[])
      : o.ku;
  if (ku) exts.push(ext(OID.keyUsage, true, der.namedBits(ku.map((u) => KEY_USAGE_BITS.indexOf(u)))));
  if (o.eku) exts.push(ext(OID.extKeyUsage, false, der.seq(...o.eku.map((e) => der.oid(e)))));
  exts.push(ext(OID.subjectKeyIdentifier, false, der.octetString(keyId(spki))));
  if (o.issuer && !o.noAki)
    exts.push(
      ext(OID.authorityKeyIdentifier, false, der.seq(der.ctx(0, o.issuer.cert.subjectKeyId!, false))),
    );
  if (o.sans?.length) exts.push(ext(OID.subjectAltName, false, der.seq(...o.sans.map(encodeGeneralName))));
  if (o.nc) {
    const subtrees = (list: Buffer[]) => Buffer.concat(list.map((g) => der.seq(g)));
    const parts: Buffer[] = [];
    if (o.nc.permitted) parts.push(der.ctx(0, subtrees(o.nc.permitted)));
    if (o.nc.excluded) parts.push(der.ctx(1, subtrees(o.nc.excluded)));
    exts.push(ext(OID.nameConstraints, true, der.seq(...parts)));
  }
  exts.push(...(o.extra ?? []));
  const alg = o.sha1
    ? { identifier: der.seq(der.oid(OID.sha1WithRSAEncryption), der.NULL), hash: 'sha1' }
    : signatureAlgorithmFor(signer);
  const subjectDer = encodeName(parseName(o.subject));
  const tbs = der.seq(
    Buffer.from([0xa0, 0x03, 0x02, 0x01, 0x02]),
    der.integer(
      o.serial ??
        Buffer.from(
          createHash('sha256').update(Math.random().toString()).digest().subarray(0, 16).fill(0x11, 0, 1),
        ),
    ),
    alg.identifier,
    o.issuer ? o.issuer.cert.subjectDer : subjectDer,
    der.seq(
      der.time(o.notBefore ?? new Date(AT.getTime() - DAY)),
      der.time(o.notAfter ?? new Date(AT.getTime() + 30 * DAY)),
    ),
    subjectDer,
    spki,
    der.ctx(3, der.seq(...exts)),
  );
  const sig = cryptoSign(alg.hash, tbs, signer);
  return { cert: parseCertificate(der.seq(tbs, alg.identifier, der.bitString(sig))), key };
}

const dns = (value: string): San => ({ type: 'dns', value });
const ncDns = (v: string) => der.tlv(0x82, Buffer.from(v, 'latin1'));
const ncIp = (addr: string, mask: string) => der.tlv(0x87, Buffer.concat([ipToBytes(addr), ipToBytes(mask)]));
const ncEmail = (v: string) => der.tlv(0x81, Buffer.from(v, 'latin1'));
const ncUri = (v: string) => der.tlv(0x86, Buffer.from(v, 'latin1'));
const ncDn = (v: string) => der.ctx(4, encodeName(parseName(v)));

// ---------------------------------------------------------------- a realistic PKI from issue.ts

function realPki() {
  const rootKey = generateKey();
  const root = parseCertificate(
    selfSign(
      rootKey,
      { profile: 'root', subject: parseName('CN=Test Root,O=mtlskit'), ttlMs: 365 * DAY },
      clock,
    ).der,
  );
  const icaKey = generateKey();
  const ica = parseCertificate(
    createIssuer(root, rootKey, clock).issue({
      profile: 'intermediate',
      subject: parseName('CN=Test Issuing CA,O=mtlskit'),
      publicKey: spkiOf(icaKey),
      ttlMs: 90 * DAY,
    }).der,
  );
  const issuer = createIssuer(ica, icaKey, clock);
  const leaf = (
    profile: 'server' | 'client' | 'spiffe' | 'peer',
    subject: string,
    sans: San[],
    ttlMs = DAY,
  ) =>
    parseCertificate(
      issuer.issue({ profile, subject: parseName(subject), sans, publicKey: spkiOf(generateKey()), ttlMs })
        .der,
    );
  return { root, rootKey, ica, icaKey, issuer, leaf };
}

const pki = realPki();
const server = pki.leaf('server', 'CN=api', [
  dns('api.internal.example'),
  dns('*.svc.example'),
  { type: 'ip', value: '10.0.0.7' },
  { type: 'ip', value: '::1' },
]);
const client = pki.leaf('client', 'CN=payments', []);
const svid = parseCertificate(
  pki.issuer.issue({
    profile: 'spiffe',
    sans: [{ type: 'uri', value: 'spiffe://example.org/ns/prod/sa/api' }],
    publicKey: spkiOf(generateKey()),
  }).der,
);

const base: VerifyOptions = { trust: [pki.root], intermediates: [pki.ica], at: AT };

function reasons(r: VerifyResult): Reason[] {
  return r.ok ? [] : r.reasons.map((x) => x.reason);
}

function expectOk(r: VerifyResult): void {
  expect(r.ok ? [] : r.reasons.map((x) => x.message)).toEqual([]);
}

function expectFail(r: VerifyResult, reason: Reason): void {
  expect(r.ok, `expected failure ${reason}`).toBe(false);
  expect(reasons(r)).toContain(reason);
  if (!r.ok) {
    const f = r.reasons.find((x) => x.reason === reason)!;
    expect(f.message.length).toBeGreaterThan(20);
    expect(Object.hasOwn(REASONS, f.reason)).toBe(true);
  }
}

// ---------------------------------------------------------------- tests

describe('verifyCertificate: accepted chains', () => {
  it('accepts a server certificate through an intermediate, leaf to anchor', () => {
    const r = verifyCertificate(server, { ...base, purpose: 'server', name: 'api.internal.example' });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.chain.map((c) => c.subject[0]![0]!.value)).toEqual(['api', 'Test Issuing CA', 'Test Root']);
      expect(r.warnings).toEqual([]);
    }
  });

  it('matches wildcard, IP (v4, v6) and SPIFFE names; auto-detects the name type', () => {
    for (const name of ['foo.svc.example', '10.0.0.7', '::1', '[::1]', 'API.INTERNAL.EXAMPLE.']) {
      expect(verifyCertificate(server, { ...base, purpose: 'server', name }).ok, name).toBe(true);
    }
    expect(
      verifyCertificate(svid, { ...base, purpose: 'client', name: 'spiffe://example.org/ns/prod/sa/api' }).ok,
    ).toBe(true);
    expect(parseExpectedName('spiffe://td/x')).toEqual({ type: 'uri', value: 'spiffe://td/x' });
    expect(parseExpectedName('a@b.example')).toEqual({ type: 'email', value: 'a@b.example' });
    expect(parseExpectedName('10.1.2.3')).toEqual({ type: 'ip', value: '10.1.2.3' });
    expect(parseExpectedName('host.example')).toEqual({ type: 'dns', value: 'host.example' });
  });

  it('accepts a client certificate for the client purpose, and without a name', () => {
    expect(verifyCertificate(client, { ...base, purpose: 'client' }).ok).toBe(true);
  });

  it('accepts a pinned self-signed leaf and an intermediate used as the anchor', () => {
    const k = generateKey();
    const pinned = parseCertificate(
      selfSign(
        k,
        {
          profile: 'server',
          subject: parseName('CN=pinned'),
          sans: [dns('pinned.example')],
          unchecked: true,
        },
        clock,
      ).der,
    );
    const r = verifyCertificate(pinned, {
      trust: [pinned],
      at: AT,
      purpose: 'server',
      name: 'pinned.example',
    });
    expect(r.ok).toBe(true);
    const r2 = verifyCertificate(client, { trust: [pki.ica], at: AT, purpose: 'client' });
    expect(r2.ok).toBe(true);
    if (r2.ok) expect(r2.warnings.join(' ')).toMatch(/not a self-signed root/);
  });

  it('treats validity bounds as inclusive, at one-second granularity', () => {
    expect(verifyCertificate(client, { ...base, purpose: 'client', at: client.notAfter }).ok).toBe(true);
    expect(
      verifyCertificate(client, { ...base, purpose: 'client', at: new Date(client.notAfter.getTime() + 999) })
        .ok,
    ).toBe(true);
    expect(
      verifyCertificate(client, {
        ...base,
        purpose: 'client',
        at: new Date(client.notAfter.getTime() + 1000),
      }).ok,
    ).toBe(false);
  });

  it('picks the valid path when an alternative path fails (expired cross-sign)', () => {
    // ICA cross-signed by an old root that has expired: the path through the current root wins.
    const oldRoot = build({
      subject: 'CN=Old Root',
      ca: true,
      notAfter: new Date(AT.getTime() - DAY),
      notBefore: new Date(AT.getTime() - 9 * DAY),
    });
    const cross = build({
      subject: 'CN=Test Issuing CA,O=mtlskit',
      key: pki.icaKey,
      issuer: oldRoot,
      ca: true,
      pathLen: 0,
      notAfter: new Date(AT.getTime() - DAY),
      notBefore: new Date(AT.getTime() - 9 * DAY),
    });
    const r = verifyCertificate(client, {
      trust: [oldRoot.cert, pki.root],
      intermediates: [cross.cert, pki.ica],
      at: AT,
      purpose: 'client',
    });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.chain[2]).toBe(pki.root);
  });

  it('is fast on repeated verification (signature and key caches)', () => {
    verifyCertificate(server, { ...base, purpose: 'server', name: 'api.internal.example' });
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++)
      verifyCertificate(server, { ...base, purpose: 'server', name: 'api.internal.example' });
    const perCall = (performance.now() - t0) / 2000;
    expect(perCall).toBeLessThan(1);
  });
});

describe('verifyCertificate: every reason it produces', () => {
  it('unknown_ca: chains to a root that is not trusted', () => {
    const other = realPki();
    expectFail(
      verifyCertificate(client, { trust: [other.root], intermediates: [pki.ica, pki.root], at: AT }),
      'unknown_ca',
    );
  });

  it('unknown_ca: a trusted CA of the same name but another key (re-created CA)', () => {
    const again = build({ subject: 'CN=Test Root,O=mtlskit', ca: true });
    const r = verifyCertificate(client, { trust: [again.cert], intermediates: [pki.ica], at: AT });
    expectFail(r, 'unknown_ca');
    if (!r.ok) expect(r.reasons[0]!.message).toMatch(/re-created/);
  });

  it('missing_intermediate: the issuing CA was not sent', () => {
    const r = verifyCertificate(client, { trust: [pki.root], at: AT });
    expectFail(r, 'missing_intermediate');
    if (!r.ok) expect(r.reasons[0]!.message).toContain('CN=Test Issuing CA');
  });

  it('self_signed: an untrusted self-signed leaf', () => {
    const k = generateKey();
    const self = parseCertificate(
      selfSign(k, { profile: 'client', subject: parseName('CN=me'), unchecked: true }, clock).der,
    );
    expectFail(verifyCertificate(self, { ...base, purpose: 'client' }), 'self_signed');
  });

  it('expired and not_yet_valid, naming the dates', () => {
    const r = verifyCertificate(client, { ...base, at: new Date(AT.getTime() + 2 * DAY) });
    expectFail(r, 'expired');
    if (!r.ok) expect(r.reasons[0]!.message).toContain(client.notAfter.toISOString().slice(0, 19));
    expectFail(verifyCertificate(client, { ...base, at: new Date(AT.getTime() - 2 * DAY) }), 'not_yet_valid');
    const expiredIca = build({
      subject: 'CN=Expired ICA',
      issuer: { cert: pki.root, key: pki.rootKey },
      ca: true,
      notAfter: new Date(AT.getTime() - 1000),
    });
    const leaf = build({ subject: 'CN=l', issuer: expiredIca });
    const r2 = verifyCertificate(leaf.cert, { trust: [pki.root], intermediates: [expiredIca.cert], at: AT });
    expectFail(r2, 'expired');
    if (!r2.ok) expect(r2.reasons[0]!.certIndex).toBe(1);
  });

  it('wrong_eku: a client certificate used as a server, and a CA restricting its EKU', () => {
    expectFail(verifyCertificate(client, { ...base, purpose: 'server' }), 'wrong_eku');
    expectFail(verifyCertificate(server, { ...base, purpose: 'client' }), 'wrong_eku');
    expectFail(
      verifyCertificate(client, { ...base, purpose: 'client', ekus: ['1.3.6.1.5.5.7.3.4'] }),
      'wrong_eku',
    );
    const serverOnlyCa = build({
      subject: 'CN=Server-only CA',
      issuer: { cert: pki.root, key: pki.rootKey },
      ca: true,
      eku: [OID.serverAuth],
    });
    const c = build({ subject: 'CN=c', issuer: serverOnlyCa, eku: [OID.clientAuth] });
    const r = verifyCertificate(c.cert, {
      trust: [pki.root],
      intermediates: [serverOnlyCa.cert],
      at: AT,
      purpose: 'client',
    });
    expectFail(r, 'wrong_eku');
    if (!r.ok) expect(r.reasons[0]!.certIndex).toBe(1);
    // anyExtendedKeyUsage on a CA allows every purpose; a leaf without EKU allows any.
    const anyCa = build({
      subject: 'CN=Any CA',
      issuer: { cert: pki.root, key: pki.rootKey },
      ca: true,
      eku: [OID.anyExtendedKeyUsage],
    });
    const noEku = build({ subject: 'CN=n', issuer: anyCa });
    expect(
      verifyCertificate(noEku.cert, {
        trust: [pki.root],
        intermediates: [anyCa.cert],
        at: AT,
        purpose: 'client',
      }).ok,
    ).toBe(true);
  });

  it('bad_key_usage: leaf without digitalSignature; CA without keyCertSign', () => {
    const ka = build({
      subject: 'CN=ka',
      issuer: { cert: pki.root, key: pki.rootKey },
      ku: ['keyAgreement'],
    });
    expectFail(verifyCertificate(ka.cert, { trust: [pki.root], at: AT, purpose: 'client' }), 'bad_key_usage');
    expect(verifyCertificate(ka.cert, { trust: [pki.root], at: AT, purpose: 'any' }).ok).toBe(true);
    const noSign = build({
      subject: 'CN=No Sign CA',
      issuer: { cert: pki.root, key: pki.rootKey },
      ca: true,
      ku: ['digitalSignature'],
    });
    const l = build({ subject: 'CN=l', issuer: noSign });
    expectFail(
      verifyCertificate(l.cert, { trust: [pki.root], intermediates: [noSign.cert], at: AT }),
      'bad_key_usage',
    );
  });

  it('revoked, crl_expired, crl_missing and crl_invalid', () => {
    const crlOf = (
      entries: { serial: string; revokedAt: Date }[],
      thisUpdate = AT,
      nextUpdate = new Date(AT.getTime() + DAY),
    ): Crl =>
      parseCrl(
        createCrl({
          issuerCert: pki.ica,
          issuerKey: pki.icaKey,
          entries,
          thisUpdate: new Date(thisUpdate.getTime() - 60_000),
          nextUpdate,
          crlNumber: 1,
        }).der,
      );
    const rootCrl = parseCrl(
      createCrl({
        issuerCert: pki.root,
        issuerKey: pki.rootKey,
        entries: [],
        thisUpdate: new Date(AT.getTime() - 60_000),
        nextUpdate: new Date(AT.getTime() + DAY),
        crlNumber: 1,
      }).der,
    );
    const revoked = crlOf([{ serial: client.serial, revokedAt: AT }]);
    const r = verifyCertificate(client, { ...base, crls: [revoked] });
    expectFail(r, 'revoked');
    if (!r.ok) expect(r.reasons[0]!.message).toContain(client.serial);
    // Not listed: accepted, with a warning that the intermediate was not checked.
    const clean = crlOf([{ serial: 'abcdef', revokedAt: AT }]);
    const ok = verifyCertificate(client, { ...base, crls: [clean] });
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.warnings.join(' ')).toMatch(/not checked for revocation/);
    expect(verifyCertificate(client, { ...base, crls: [clean, rootCrl], requireCrl: true }).ok).toBe(true);
    expectFail(verifyCertificate(client, { ...base, crls: [clean], requireCrl: true }), 'crl_missing');
    expectFail(verifyCertificate(client, { ...base, requireCrl: true }), 'crl_missing');
    expectFail(
      verifyCertificate(client, {
        ...base,
        crls: [crlOf([], new Date(AT.getTime() - 2 * DAY), new Date(AT.getTime() - DAY))],
      }),
      'crl_expired',
    );
    // A CRL of the same issuer name signed by another key does not apply; one with a critical unknown extension is invalid.
    const impostor = build({
      subject: 'CN=Test Issuing CA,O=mtlskit',
      ca: true,
      ku: ['keyCertSign', 'cRLSign'],
    });
    const foreign = parseCrl(
      createCrl({
        issuerCert: impostor.cert,
        issuerKey: impostor.key,
        entries: [{ serial: client.serial, revokedAt: AT }],
        thisUpdate: AT,
        nextUpdate: new Date(AT.getTime() + DAY),
        crlNumber: 1,
      }).der,
    );
    expect(verifyCertificate(client, { ...base, crls: [foreign] }).ok).toBe(true);
    const broken: Crl = { ...clean, problems: ['the CRL number extension is missing'] };
    expectFail(verifyCertificate(client, { ...base, crls: [broken] }), 'crl_invalid');
  });

  it('bad_signature: a tampered certificate whose key identifiers match its issuer', () => {
    const bytes = Buffer.from(client.der);
    bytes[bytes.length - 3]! ^= 0x01;
    const tampered = parseCertificate(bytes);
    expectFail(verifyCertificate(tampered, base), 'bad_signature');
  });

  it('path_too_long: pathLenConstraint and maxDepth', () => {
    // root -> ica (pathLen 0, from issue.ts) -> sub-CA -> leaf
    const sub = build({ subject: 'CN=Sub CA', issuer: { cert: pki.ica, key: pki.icaKey }, ca: true });
    const leaf = build({ subject: 'CN=deep', issuer: sub });
    const r = verifyCertificate(leaf.cert, { trust: [pki.root], intermediates: [pki.ica, sub.cert], at: AT });
    expectFail(r, 'path_too_long');
    if (!r.ok) expect(r.reasons.find((x) => x.reason === 'path_too_long')!.certIndex).toBe(1);
    expectFail(verifyCertificate(client, { ...base, maxDepth: 0 }), 'path_too_long');
    expect(verifyCertificate(client, { ...base, maxDepth: 1 }).ok).toBe(true);
  });

  it('name_mismatch: no SAN matches, the CN is never used, wildcards cover one label', () => {
    expectFail(
      verifyCertificate(server, { ...base, purpose: 'server', name: 'other.example' }),
      'name_mismatch',
    );
    expectFail(verifyCertificate(server, { ...base, purpose: 'server', name: 'api' }), 'name_mismatch');
    expectFail(
      verifyCertificate(server, { ...base, purpose: 'server', name: 'a.b.svc.example' }),
      'name_mismatch',
    );
    expectFail(
      verifyCertificate(server, { ...base, purpose: 'server', name: 'svc.example' }),
      'name_mismatch',
    );
    expectFail(verifyCertificate(server, { ...base, purpose: 'server', name: '10.0.0.8' }), 'name_mismatch');
    expectFail(
      verifyCertificate(svid, { ...base, name: 'spiffe://example.org/ns/prod/sa/API' }),
      'name_mismatch',
    );
    expectFail(
      verifyCertificate(svid, { ...base, name: { type: 'email', value: 'a@example.org' } }),
      'name_mismatch',
    );
  });

  it('name_mismatch: a server CN that spells a SAN differently', () => {
    const l = build({
      subject: 'CN=API.example.com',
      issuer: { cert: pki.root, key: pki.rootKey },
      sans: [dns('api.example.com')],
    });
    expectFail(
      verifyCertificate(l.cert, { trust: [pki.root], at: AT, purpose: 'server', name: 'api.example.com' }),
      'name_mismatch',
    );
    expect(
      verifyCertificate(l.cert, {
        trust: [pki.root],
        at: AT,
        purpose: 'server',
        name: 'api.example.com',
        strict: false,
      }).ok,
    ).toBe(true);
  });

  it('issuer_not_ca: a certificate issued by a non-CA', () => {
    const notCa = build({
      subject: 'CN=Not A CA',
      issuer: { cert: pki.root, key: pki.rootKey },
      ca: false,
      ku: ['digitalSignature'],
    });
    const l = build({ subject: 'CN=l', issuer: notCa });
    expectFail(
      verifyCertificate(l.cert, { trust: [pki.root], intermediates: [notCa.cert], at: AT }),
      'issuer_not_ca',
    );
  });

  it('name_constraints: DNS, IP with masks, email, URI and directory names', () => {
    const root = { cert: pki.root, key: pki.rootKey };
    const constrained = (nc: { permitted?: Buffer[]; excluded?: Buffer[] }) =>
      build({ subject: 'CN=Constrained CA', issuer: root, ca: true, nc });
    const check = (ca: Party, leafOpts: Partial<BuildOptions>): VerifyResult => {
      const l = build({ subject: 'CN=leaf', issuer: ca, ...leafOpts });
      return verifyCertificate(l.cert, { trust: [pki.root], intermediates: [ca.cert], at: AT });
    };
    const dnsCa = constrained({
      permitted: [ncDns('corp.example')],
      excluded: [ncDns('secret.corp.example')],
    });
    expectOk(check(dnsCa, { sans: [dns('a.corp.example')] }));
    expectOk(check(dnsCa, { sans: [dns('corp.example')] }));
    expectOk(check(constrained({ permitted: [ncDns('corp.example')] }), { sans: [dns('*.corp.example')] }));
    expectFail(check(dnsCa, { sans: [dns('evilcorp.example')] }), 'name_constraints');
    expectFail(check(dnsCa, { sans: [dns('x.secret.corp.example')] }), 'name_constraints');
    expectFail(
      check(dnsCa, { sans: [dns('*.corp.example'), dns('ok.corp.example')], subject: 'CN=leaf' }),
      'name_constraints',
    ); // *.corp.example may be secret.corp.example
    const ipCa = constrained({ permitted: [ncIp('10.0.0.0', '255.0.0.0'), ncIp('fd00::', 'ff00::')] });
    expectOk(
      check(ipCa, {
        sans: [
          { type: 'ip', value: '10.1.2.3' },
          { type: 'ip', value: 'fd12::1' },
        ],
      }),
    );
    expectFail(check(ipCa, { sans: [{ type: 'ip', value: '11.1.2.3' }] }), 'name_constraints');
    const emailCa = constrained({ permitted: [ncEmail('example.org'), ncEmail('.sub.example.org')] });
    expectOk(
      check(emailCa, {
        sans: [
          { type: 'email', value: 'bob@example.org' },
          { type: 'email', value: 'x@a.sub.example.org' },
        ],
      }),
    );
    expectFail(
      check(emailCa, { sans: [{ type: 'email', value: 'bob@other.example.org' }] }),
      'name_constraints',
    );
    const uriCa = constrained({ permitted: [ncUri('example.org')] });
    expectOk(check(uriCa, { sans: [{ type: 'uri', value: 'spiffe://example.org/ns/a' }] }));
    expectFail(
      check(uriCa, { sans: [{ type: 'uri', value: 'spiffe://evil.org/ns/a' }] }),
      'name_constraints',
    );
    const dnCa = constrained({ permitted: [ncDn('O=mtlskit')] });
    expectOk(check(dnCa, { subject: 'O=mtlskit,CN=x' }));
    expectFail(check(dnCa, { subject: 'O=other,CN=x' }), 'name_constraints');
    // A malformed constraint (wildcard) makes the CA unusable.
    expectFail(
      check(constrained({ permitted: [ncDns('*.corp.example')] }), { sans: [dns('a.corp.example')] }),
      'malformed',
    );
    // A non-CIDR mask is malformed.
    expectFail(
      check(constrained({ permitted: [ncIp('10.0.0.0', '255.0.255.0')] }), {
        sans: [{ type: 'ip', value: '10.0.0.1' }],
      }),
      'malformed',
    );
  });

  it('unsupported_critical_extension', () => {
    const l = build({
      subject: 'CN=l',
      issuer: { cert: pki.root, key: pki.rootKey },
      extra: [ext('1.3.6.1.4.1.55738.666.1', true, der.NULL)],
    });
    expectFail(verifyCertificate(l.cert, { trust: [pki.root], at: AT }), 'unsupported_critical_extension');
    const nonCritical = build({
      subject: 'CN=l',
      issuer: { cert: pki.root, key: pki.rootKey },
      extra: [ext('1.3.6.1.4.1.55738.666.1', false, Buffer.from('not der'))],
    });
    expect(verifyCertificate(nonCritical.cert, { trust: [pki.root], at: AT }).ok).toBe(true);
  });

  it('malformed: missing AKI, duplicate extensions, bad serial (strict), relaxed with strict: false', () => {
    const root = { cert: pki.root, key: pki.rootKey };
    const noAki = build({ subject: 'CN=l', issuer: root, noAki: true });
    expectFail(verifyCertificate(noAki.cert, { trust: [pki.root], at: AT }), 'malformed');
    expect(verifyCertificate(noAki.cert, { trust: [pki.root], at: AT, strict: false }).ok).toBe(true);
    const dup = build({
      subject: 'CN=l',
      issuer: root,
      sans: [dns('a.example')],
      extra: [ext(OID.subjectAltName, false, der.seq(encodeGeneralName(dns('b.example'))))],
    });
    expectFail(verifyCertificate(dup.cert, { trust: [pki.root], at: AT, strict: false }), 'malformed');
    const zero = build({ subject: 'CN=l', issuer: root, serial: Buffer.from([0]) });
    expectFail(verifyCertificate(zero.cert, { trust: [pki.root], at: AT }), 'malformed');
    const badSan = build({ subject: 'CN=l', issuer: root, sans: [dns('under_score.example')] });
    expectFail(verifyCertificate(badSan.cert, { trust: [pki.root], at: AT }), 'malformed');
  });

  it('weak_key and weak_signature', () => {
    const weak = build({
      subject: 'CN=weak',
      issuer: { cert: pki.root, key: pki.rootKey },
      key: generateKeyRsa(1024),
    });
    expectFail(verifyCertificate(weak.cert, { trust: [pki.root], at: AT }), 'weak_key');
    const rsaRoot = build({ subject: 'CN=RSA Root', ca: true, key: generateKey('rsa2048') });
    const sha1 = build({ subject: 'CN=sha1', issuer: rsaRoot, sha1: true });
    expectFail(verifyCertificate(sha1.cert, { trust: [rsaRoot.cert], at: AT }), 'weak_signature');
  });

  it('returns the failures of the most complete path with the chain', () => {
    const r = verifyCertificate(client, { ...base, purpose: 'server', at: new Date(AT.getTime() + 2 * DAY) });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(reasons(r)).toEqual(expect.arrayContaining(['expired', 'wrong_eku']));
      expect(r.chain?.length).toBe(3);
      expect(r.reasons.every((x) => x.subject !== undefined)).toBe(true);
    }
  });
});

describe('isDnsNameSyntax', () => {
  it('accepts preferred-syntax names and left-most wildcards over 3+ labels', () => {
    expect(isDnsNameSyntax('a-b.example.com', false)).toBe(true);
    expect(isDnsNameSyntax('*.example.com', true)).toBe(true);
    expect(isDnsNameSyntax('*.com', true)).toBe(false);
    expect(isDnsNameSyntax('*.example.com', false)).toBe(false);
    expect(isDnsNameSyntax('a*.example.com', true)).toBe(false);
    expect(isDnsNameSyntax('-a.example.com', false)).toBe(false);
    expect(isDnsNameSyntax('.example.com', false)).toBe(false);
    expect(isDnsNameSyntax('a_b.example.com', false)).toBe(false);
  });
});

/** generateKey only makes safe sizes; the weak_key test needs a weak one straight from node:crypto. */
function generateKeyRsa(bits: number): KeyObject {
  return generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
}
