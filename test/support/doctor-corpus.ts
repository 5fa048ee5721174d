// The doctor's scenario corpus, generated at test time (nothing committed): CAs and healthy leaves
// from the real CLI, broken certificates from openssl and from mtlskit's PKI with odd parameters,
// one scenario per failure class, healthy baselines and harmless quirks.
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import {
  createCrl,
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  readCertificates,
  readPrivateKey,
  selfSign,
  spkiOf,
  type Certificate,
  type ProfileName,
  type San,
} from '../../src/pki/index.js';
import { TEST_PASSPHRASE, run } from './cli.js';
import { initCa, issue, type CaPaths, type LeafPaths } from './pki.js';

export type Side = 'client' | 'server' | 'both';

/** What really happens with nginx (ssl_verify_client on) and curl. */
export type RealOutcome =
  | 'ok' // HTTP 200
  | 'nginx-refuses-to-start'
  | 'refused' // curl fails the handshake or cannot load its files, or nginx answers 400
  | 'strict-client-refuses'; // curl accepts, a client that ignores the CN (Go, browsers, Python with hostname_checks_common_name=False) refuses

export interface Scenario {
  name: string;
  server: { cert: string; key: string; chain?: string; ca: string };
  client: { cert?: string; key?: string; chain?: string; ca: string };
  host: string;
  crl?: string;
  verifyDepth: number;
  real: RealOutcome;
  failingSide: Side | null;
  /** Error codes that must be reported (others may be, if true). Empty for healthy scenarios: no error at all. */
  codes: string[];
}

interface Party {
  cert: Certificate;
  key: KeyObject;
  certPem: string;
}

function loadIntermediate(ca: CaPaths): Party {
  const certPem = readFileSync(ca.intermediateCert, 'utf8');
  const key = readPrivateKey(readFileSync(join(ca.dir, 'intermediate.key')), TEST_PASSPHRASE).key;
  return { cert: readCertificates(Buffer.from(certPem))[0]!, key, certPem };
}

interface LeafSpec {
  profile: ProfileName;
  cn: string;
  sans?: San[];
  notBefore?: Date;
  notAfter?: Date;
  pathLen?: number;
}

function issueWith(issuer: Party, spec: LeafSpec): Party {
  const key = generateKey('p256');
  const issued = createIssuer(issuer.cert, issuer.key).issue({
    profile: spec.profile,
    subject: parseName(`CN=${spec.cn}`),
    sans: spec.sans ?? [],
    publicKey: spkiOf(key),
    ...(spec.notBefore ? { notBefore: spec.notBefore } : {}),
    notAfter: spec.notAfter ?? new Date(Date.now() + 2 * 3_600_000),
    ...(spec.pathLen !== undefined ? { pathLen: spec.pathLen } : {}),
    unchecked: true,
  });
  return { cert: parseCertificate(issued.der), key, certPem: issued.pem };
}

async function writeParty(dir: string, base: string, p: Party, chain: string[] = []): Promise<LeafPaths> {
  const paths: LeafPaths = {
    base,
    key: join(dir, `${base}.key`),
    cert: join(dir, `${base}.crt`),
    chain: join(dir, `${base}.chain.pem`),
    ca: '',
  };
  await writeFile(paths.key, exportPrivateKeyPem(p.key), { mode: 0o600 });
  await writeFile(paths.cert, p.certPem);
  await writeFile(paths.chain, [p.certPem, ...chain].join(''));
  return paths;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** openssl x509 -req: a client-ish leaf signed by `caCert`/`caKey` with the given extensions and digest. */
async function opensslLeaf(
  dir: string,
  base: string,
  o: {
    caCert: string;
    caKey: string;
    ext: string;
    subject?: string;
    key?: 'p256' | 'rsa1024';
    digest?: string;
  },
): Promise<{ cert: string; key: string }> {
  const key = join(dir, `${base}.key`);
  const csr = join(dir, `${base}.csr`);
  const cert = join(dir, `${base}.crt`);
  const ext = join(dir, `${base}.ext`);
  await writeFile(ext, o.ext);
  const keyArgs =
    o.key === 'rsa1024' ? ['-newkey', 'rsa:1024'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  await openssl(
    ['req', '-new', ...keyArgs, '-nodes', '-keyout', key, '-out', csr, '-subj', o.subject ?? `/CN=${base}`],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      o.caCert,
      '-CAkey',
      o.caKey,
      '-set_serial',
      `0x${Date.now().toString(16)}${Math.floor(Math.random() * 1e6)}`,
      '-days',
      '1',
      `-${o.digest ?? 'sha256'}`,
      '-extfile',
      ext,
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

const CLIENT_EXT =
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n';

async function cat(dest: string, ...files: string[]): Promise<string> {
  const parts = await Promise.all(files.map((f) => readFile(f)));
  await writeFile(dest, Buffer.concat(parts));
  return dest;
}

export async function buildCorpus(root: string): Promise<Scenario[]> {
  const [sca, cca, rsaCa, ccaAgain] = await Promise.all([
    initCa(root, 'server-ca', { name: 'doctor Server CA' }),
    initCa(root, 'client-ca', { name: 'doctor Client CA' }),
    initCa(root, 'rsa-ca', { name: 'doctor RSA CA', keyType: 'rsa2048' }),
    // Same name as the client CA, another key: a CA that was re-created.
    initCa(root, 'client-ca-again', { name: 'doctor Client CA' }),
  ]);
  const s = join(root, 's');
  const c = join(root, 'c');
  const x = join(root, 'x');
  await Promise.all([mkdir(s), mkdir(c), mkdir(x)]);
  const [server, client, rsaServer, rsaClient, wildcard, ipOnly, impostor, stranger] = await Promise.all([
    issue(sca, s, 'server', 'localhost', { san: 'ip:127.0.0.1' }),
    issue(cca, c, 'client', 'alice'),
    issue(rsaCa, s, 'server', 'localhost', { keyType: 'rsa2048', fileName: 'rsa-server' }),
    issue(rsaCa, c, 'client', 'rsa-alice', { keyType: 'rsa2048' }),
    issue(sca, s, 'server', '*.svc.example', { fileName: 'wildcard' }),
    issue(sca, s, 'server', '127.0.0.1', { fileName: 'ip-only' }),
    issue(cca, c, 'server', 'impostor.example', { fileName: 'impostor' }),
    issue(sca, c, 'client', 'stranger'),
  ]);
  const sInter = loadIntermediate(sca);
  const cInter = loadIntermediate(cca);
  // Decrypted intermediate keys for openssl (in the temp dir, 0600, removed with it).
  const cInterKey = join(x, 'client-intermediate.key');
  const sInterKey = join(x, 'server-intermediate.key');
  await writeFile(cInterKey, exportPrivateKeyPem(cInter.key), { mode: 0o600 });
  await writeFile(sInterKey, exportPrivateKeyPem(sInter.key), { mode: 0o600 });

  const HOUR = 3_600_000;
  const now = Date.now();
  const past = { notBefore: new Date(now - 48 * HOUR), notAfter: new Date(now - 24 * HOUR) };
  const future = { notBefore: new Date(now + 24 * HOUR), notAfter: new Date(now + 48 * HOUR) };
  const expiredClient = await writeParty(
    c,
    'expired',
    issueWith(cInter, { profile: 'client', cn: 'expired', ...past }),
    [cInter.certPem],
  );
  const futureClient = await writeParty(
    c,
    'future',
    issueWith(cInter, { profile: 'client', cn: 'future', ...future }),
    [cInter.certPem],
  );
  const expiredServer = await writeParty(
    s,
    'expired-server',
    issueWith(sInter, {
      profile: 'server',
      cn: 'localhost',
      sans: [{ type: 'dns', value: 'localhost' }],
      ...past,
    }),
    [sInter.certPem],
  );

  // A sub-CA under the intermediate (pathLen 0): path length exceeded.
  const subCa = issueWith(cInter, { profile: 'intermediate', cn: 'doctor Sub CA', pathLen: 0 });
  const underSub = await writeParty(c, 'under-sub', issueWith(subCa, { profile: 'client', cn: 'deep' }), [
    subCa.certPem,
    cInter.certPem,
  ]);

  // A three-level hierarchy with correct path lengths: leaf <- int2 <- int1 <- root (needs depth 2).
  const deepRootKey = generateKey('p256');
  const deepRootIssued = selfSign(deepRootKey, {
    profile: 'root',
    subject: parseName('CN=doctor Deep Root'),
    pathLen: 2,
  });
  const deepRoot: Party = {
    cert: parseCertificate(deepRootIssued.der),
    key: deepRootKey,
    certPem: deepRootIssued.pem,
  };
  const int1 = issueWith(deepRoot, {
    profile: 'intermediate',
    cn: 'doctor Deep Int 1',
    pathLen: 1,
    notAfter: new Date(now + 48 * HOUR),
  });
  const int2 = issueWith(int1, {
    profile: 'intermediate',
    cn: 'doctor Deep Int 2',
    pathLen: 0,
    notAfter: new Date(now + 24 * HOUR),
  });
  const deepClient = await writeParty(
    c,
    'deep-chain',
    issueWith(int2, { profile: 'client', cn: 'deep-alice' }),
    [int2.certPem, int1.certPem],
  );
  const deepRootFile = join(x, 'deep-root.pem');
  await writeFile(deepRootFile, deepRoot.certPem);

  // openssl-made broken client certificates.
  const sslCa = { caCert: cca.intermediateCert, caKey: cInterKey };
  const noDigSig = await opensslLeaf(x, 'no-digital-signature', {
    ...sslCa,
    ext: CLIENT_EXT.replace('digitalSignature', 'keyEncipherment'),
  });
  const weakKey = await opensslLeaf(x, 'weak-key', { ...sslCa, ext: CLIENT_EXT, key: 'rsa1024' });
  const sha1 = await opensslLeaf(x, 'sha1', { ...sslCa, ext: CLIENT_EXT, digest: 'sha1' });
  const notCa = await opensslLeaf(x, 'not-a-ca', { ...sslCa, ext: CLIENT_EXT });
  const underNotCa = await opensslLeaf(x, 'under-not-a-ca', {
    caCert: notCa.cert,
    caKey: notCa.key,
    ext: CLIENT_EXT,
  });
  const cnOnly = await opensslLeaf(x, 'cn-only', {
    caCert: sca.intermediateCert,
    caKey: sInterKey,
    subject: '/CN=localhost',
    ext: 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n',
  });
  const selfSigned = { cert: join(x, 'self-signed.crt'), key: join(x, 'self-signed.key') };
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      selfSigned.key,
      '-out',
      selfSigned.cert,
      '-subj',
      '/CN=self-made',
      '-days',
      '1',
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature',
      '-addext',
      'extendedKeyUsage=clientAuth',
    ],
    x,
  );
  const csr = join(x, 'server.csr');
  await openssl(['req', '-new', '-key', server.key, '-subj', '/CN=localhost', '-out', csr], x);

  // CRLs: the intermediate's (fresh, revoking nothing / revoking alice / expired) and the root's from ca init.
  const rootCrl = join(cca.dir, 'root.crl');
  const crlOf = async (
    file: string,
    revoke: Certificate[],
    nextUpdate: Date,
    thisUpdate = new Date(now - HOUR),
  ): Promise<string> => {
    const crl = createCrl({
      issuerCert: cInter.cert,
      issuerKey: cInter.key,
      entries: revoke.map((r) => ({ serial: r.serial, revokedAt: new Date(now - HOUR) })),
      thisUpdate,
      nextUpdate,
      crlNumber: Math.floor(now / 1000),
    });
    await writeFile(join(x, file), crl.pem);
    return join(x, file);
  };
  const aliceCert = readCertificates(readFileSync(client.cert))[0]!;
  const interCrl = await crlOf('inter.crl', [], new Date(now + 24 * HOUR));
  const revokedCrl = await cat(
    join(x, 'revoked-chain.crl'),
    await crlOf('inter-revoked.crl', [aliceCert], new Date(now + 24 * HOUR)),
    rootCrl,
  );
  const staleCrl = await cat(
    join(x, 'stale-chain.crl'),
    await crlOf('inter-stale.crl', [], new Date(now - HOUR), new Date(now - 48 * HOUR)),
    rootCrl,
  );
  const fullCrl = await cat(join(x, 'chain.crl'), interCrl, rootCrl);

  // Files in unusual (harmless) shapes.
  const text = (f: string): string => readFileSync(f, 'utf8');
  const crlfChain = join(x, 'crlf.chain.pem');
  await writeFile(crlfChain, text(client.chain).replace(/\n/g, '\r\n'));
  const bomChain = join(x, 'bom.chain.pem');
  await writeFile(bomChain, '\ufeff' + text(server.chain));
  const chattyChain = join(x, 'chatty.chain.pem');
  const [leafPem, interPem] = text(client.chain).split(/(?<=-----END CERTIFICATE-----\n)/);
  await writeFile(
    chattyChain,
    `subject=CN=alice\nissuer=the intermediate\n${leafPem}Bag Attributes: none\n${interPem}trailing notes\n`,
  );
  const manyRoots = await cat(join(x, 'many-roots.pem'), sca.bundle, rsaCa.bundle, cca.bundle);
  const interAndRoot = await cat(join(x, 'inter-and-root.pem'), cca.intermediateCert, cca.bundle);
  const pkcs1Key = join(x, 'rsa-server.pkcs1.key');
  await openssl(['pkey', '-in', rsaServer.key, '-traditional', '-out', pkcs1Key], x);
  const sec1Key = join(x, 'alice.sec1.key');
  await openssl(['ec', '-in', client.key, '-out', sec1Key], x);

  // Broken files.
  const wrongOrder = await cat(join(x, 'wrong-order.pem'), cca.intermediateCert, client.cert);
  const serverWrongOrder = await cat(join(x, 'server-wrong-order.pem'), sca.intermediateCert, server.cert);
  const truncated = join(x, 'truncated.pem');
  await writeFile(truncated, text(client.chain).slice(0, 300));
  const der = join(x, 'alice.der');
  await openssl(['x509', '-in', client.cert, '-outform', 'DER', '-out', der], x);
  const encryptedKey = join(x, 'server.enc.key');
  await openssl(['pkey', '-in', server.key, '-aes256', '-passout', 'pass:secret', '-out', encryptedKey], x);
  const interOnly = cca.intermediateCert;

  const base = (
    over: Partial<Scenario> & Pick<Scenario, 'name' | 'real' | 'failingSide' | 'codes'>,
  ): Scenario => ({
    server: { cert: server.chain, key: server.key, ca: sca.bundle },
    client: { cert: client.chain, key: client.key, ca: cca.bundle },
    host: 'localhost',
    verifyDepth: 1,
    ...over,
  });
  const healthy = (name: string, over: Partial<Scenario> = {}): Scenario =>
    base({ name, real: 'ok', failingSide: null, codes: [], ...over });
  const clientFail = (
    name: string,
    codes: string[],
    clientOver: Partial<Scenario['client']>,
    over: Partial<Scenario> = {},
  ): Scenario =>
    base({
      name,
      real: 'refused',
      failingSide: 'client',
      codes,
      client: { cert: client.chain, key: client.key, ca: cca.bundle, ...clientOver },
      ...over,
    });

  return [
    // ---- healthy baselines
    healthy('healthy ECDSA P-256, leaf + intermediate, root-only bundles'),
    healthy('healthy RSA 2048 both sides', {
      server: { cert: rsaServer.chain, key: rsaServer.key, ca: rsaCa.bundle },
      client: { cert: rsaClient.chain, key: rsaClient.key, ca: rsaCa.bundle },
    }),
    healthy('healthy mixed: RSA server, ECDSA client', {
      server: { cert: rsaServer.chain, key: rsaServer.key, ca: rsaCa.bundle },
    }),
    healthy('healthy wildcard SAN', {
      server: { cert: wildcard.chain, key: wildcard.key, ca: sca.bundle },
      host: 'api.svc.example',
    }),
    healthy('healthy IP SAN', {
      server: { cert: ipOnly.chain, key: ipOnly.key, ca: sca.bundle },
      host: '127.0.0.1',
    }),
    healthy('healthy chain in separate files', {
      server: { cert: server.cert, chain: sca.intermediateCert, key: server.key, ca: sca.bundle },
      client: { cert: client.cert, chain: cca.intermediateCert, key: client.key, ca: cca.bundle },
    }),
    healthy('healthy two intermediates with ssl_verify_depth 2', {
      client: { cert: deepClient.chain, key: deepClient.key, ca: deepRootFile },
      verifyDepth: 2,
    }),
    healthy('healthy client CA bundle holding the intermediate and the root', {
      client: { cert: client.cert, key: client.key, ca: interAndRoot },
    }),
    healthy('healthy with ssl_crl for every CA', { crl: fullCrl }),
    // ---- harmless quirks
    healthy('quirk: CRLF line ends', { client: { cert: crlfChain, key: client.key, ca: cca.bundle } }),
    healthy('quirk: BOM before the PEM', { server: { cert: bomChain, key: server.key, ca: sca.bundle } }),
    healthy('quirk: text around the PEM blocks', {
      client: { cert: chattyChain, key: client.key, ca: cca.bundle },
    }),
    healthy('quirk: trust bundles in any order, with other roots', {
      server: { cert: server.chain, key: server.key, ca: manyRoots },
      client: { cert: client.chain, key: client.key, ca: manyRoots },
    }),
    healthy('quirk: PKCS#1 and SEC1 keys', {
      server: { cert: rsaServer.chain, key: pkcs1Key, ca: rsaCa.bundle },
      client: { cert: client.chain, key: sec1Key, ca: cca.bundle },
    }),
    // ---- failures on the client side
    clientFail('no client certificate', ['no_client_cert'], { cert: undefined, key: undefined }),
    clientFail('client sends its leaf without the intermediate', ['missing_intermediate'], {
      cert: client.cert,
    }),
    clientFail('server certificate used as client certificate', ['wrong_eku'], {
      cert: impostor.chain,
      key: impostor.key,
    }),
    clientFail('client certificate from a CA the server does not trust', ['unknown_ca'], {
      cert: stranger.chain,
      key: stranger.key,
    }),
    clientFail('client certificate expired', ['expired'], {
      cert: expiredClient.chain,
      key: expiredClient.key,
    }),
    clientFail('client certificate not yet valid', ['not_yet_valid'], {
      cert: futureClient.chain,
      key: futureClient.key,
    }),
    clientFail('client keyUsage without digitalSignature', ['bad_key_usage'], {
      cert: await cat(join(x, 'nds.chain.pem'), noDigSig.cert, cca.intermediateCert),
      key: noDigSig.key,
    }),
    clientFail('client certificate revoked', ['revoked'], {}, { crl: revokedCrl }),
    clientFail('self-signed client certificate', ['self_signed'], {
      cert: selfSigned.cert,
      key: selfSigned.key,
    }),
    clientFail('client key does not match its certificate', ['key_mismatch'], { key: stranger.key }),
    clientFail('client chain signed by a certificate that is not a CA', ['issuer_not_ca'], {
      cert: await cat(join(x, 'under-not-a-ca.chain.pem'), underNotCa.cert, notCa.cert, cca.intermediateCert),
      key: underNotCa.key,
    }),
    clientFail(
      'sub-CA under an intermediate with pathLen 0',
      ['path_len_exceeded'],
      { cert: underSub.chain, key: underSub.key },
      { verifyDepth: 3 },
    ),
    clientFail('client RSA 1024 key', ['weak_key'], {
      cert: await cat(join(x, 'weak.chain.pem'), weakKey.cert, cca.intermediateCert),
      key: weakKey.key,
    }),
    clientFail('client certificate signed with SHA-1', ['weak_signature'], {
      cert: await cat(join(x, 'sha1.chain.pem'), sha1.cert, cca.intermediateCert),
      key: sha1.key,
    }),
    clientFail('client chain file with the intermediate first', ['chain_order'], { cert: wrongOrder }),
    clientFail('client certificate file truncated', ['file_format'], { cert: truncated }),
    clientFail('client certificate in DER where curl needs PEM', ['file_format'], { cert: der }),
    clientFail(
      'client trusts the client CA instead of the server CA',
      ['swapped_ca_files'],
      { ca: cca.bundle },
      {
        server: { cert: server.chain, key: server.key, ca: cca.bundle },
      },
    ),
    // ---- failures on the server side
    base({
      name: 'server sends its leaf without the intermediate',
      server: { cert: server.cert, key: server.key, ca: sca.bundle },
      real: 'refused',
      failingSide: 'server',
      codes: ['missing_intermediate'],
    }),
    base({
      name: 'server certificate expired',
      server: { cert: expiredServer.chain, key: expiredServer.key, ca: sca.bundle },
      real: 'refused',
      failingSide: 'server',
      codes: ['expired'],
    }),
    base({
      name: 'server name mismatch',
      host: 'api.example',
      real: 'refused',
      failingSide: 'server',
      codes: ['name_mismatch'],
    }),
    base({
      name: 'server name only in the CN',
      server: {
        cert: await cat(join(x, 'cn-only.chain.pem'), cnOnly.cert, sca.intermediateCert),
        key: cnOnly.key,
        ca: sca.bundle,
      },
      real: 'strict-client-refuses',
      failingSide: 'server',
      codes: ['cn_only'],
    }),
    base({
      name: 'server key does not match its certificate',
      server: { cert: server.chain, key: client.key, ca: sca.bundle },
      real: 'nginx-refuses-to-start',
      failingSide: 'server',
      codes: ['key_mismatch'],
    }),
    base({
      name: 'server chain file with the intermediate first',
      server: { cert: serverWrongOrder, key: server.key, ca: sca.bundle },
      real: 'nginx-refuses-to-start',
      failingSide: 'server',
      codes: ['chain_order'],
    }),
    base({
      name: 'server certificate file is a CSR',
      server: { cert: csr, key: server.key, ca: sca.bundle },
      real: 'nginx-refuses-to-start',
      failingSide: 'server',
      codes: ['file_format'],
    }),
    base({
      name: 'server key encrypted, no ssl_password_file',
      server: { cert: server.chain, key: encryptedKey, ca: sca.bundle },
      real: 'nginx-refuses-to-start',
      failingSide: 'server',
      codes: ['encrypted_key'],
    }),
    base({
      name: 'client CA bundle holds only the intermediate',
      client: { cert: client.chain, key: client.key, ca: interOnly },
      real: 'refused',
      failingSide: 'server',
      codes: ['partial_chain'],
    }),
    base({
      name: 'client CA bundle holds a re-created root of the same name',
      client: { cert: client.chain, key: client.key, ca: ccaAgain.bundle },
      real: 'refused',
      failingSide: 'server',
      codes: ['unknown_ca'],
    }),
    base({
      name: 'server trusts the server CA for clients',
      client: { cert: client.chain, key: client.key, ca: sca.bundle },
      real: 'refused',
      failingSide: 'server',
      codes: ['swapped_ca_files'],
    }),
    base({
      name: 'client chain needs more depth than ssl_verify_depth 1',
      client: { cert: deepClient.chain, key: deepClient.key, ca: deepRootFile },
      real: 'refused',
      failingSide: 'server',
      codes: ['verify_depth_exceeded'],
    }),
    base({
      name: 'ssl_crl past its nextUpdate',
      crl: staleCrl,
      real: 'refused',
      failingSide: 'server',
      codes: ['crl_expired'],
    }),
    base({
      name: 'ssl_crl without the root CA’s CRL',
      crl: interCrl,
      real: 'refused',
      failingSide: 'server',
      codes: ['crl_missing'],
    }),
    // ---- both
    base({
      name: 'CA files swapped between the sides',
      server: { cert: server.chain, key: server.key, ca: cca.bundle },
      client: { cert: client.chain, key: client.key, ca: sca.bundle },
      real: 'refused',
      failingSide: 'both',
      codes: ['swapped_ca_files'],
    }),
  ];
}
