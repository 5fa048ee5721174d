import { describe, expect, it } from 'vitest';
import { parseTarget } from '../cli/doctor-connect.js';
import { createCipheriv, randomBytes, type KeyObject } from 'node:crypto';
import {
  createIssuer,
  encodeName,
  exportPrivateKeyPem,
  formatName,
  generateKey,
  parseCertificate,
  parseName,
  selfSign,
  spkiOf,
  type Certificate,
} from '../pki/index.js';

interface Party {
  cert: Certificate;
  key: KeyObject;
  pem: string;
}
import { checkLocalClient, connectReport, diagnose, type ConnectFinding } from './connect.js';
import type { Observation } from './connect-probe.js';
import {
  alertFromErrorCode,
  bodyExcerpt,
  certificateList12,
  clientFlightTls13,
  decryptServerHandshake13,
  hkdfExpandLabel,
  parseCertificateRequest13,
  looksLikeTls,
  nginxPage,
  parseCertificateRequest12,
  parseHttpAnswer,
  parseRecords,
  plaintextAlerts,
  plaintextHandshake,
  serverHelloVersion,
  tls13HashLength,
  type TlsRecord,
} from './connect-wire.js';
import { proxyRefusal } from './connect-wire.js';

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number): Buffer => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const record = (type: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type, 3, 3]), u16(body.length), body]);
const handshake = (type: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([type]), u24(body.length), body]);

function certificateRequest(names: string[]): Buffer {
  const ders = names.map((n) => encodeName(parseName(n)));
  const list = Buffer.concat(ders.map((d) => Buffer.concat([u16(d.length), d])));
  return Buffer.concat([
    Buffer.from([2, 1, 64]), // rsa_sign, ecdsa_sign
    u16(2),
    Buffer.from([4, 3]), // ecdsa_secp256r1_sha256
    u16(list.length),
    list,
  ]);
}

describe('TLS records and the TLS 1.2 CertificateRequest', () => {
  it('reads the acceptable CA names from a CertificateRequest split over two records', () => {
    const cr = handshake(13, certificateRequest(['CN=Client CA Root, O=acme', 'CN=Other Root']));
    const done = handshake(14, Buffer.alloc(0));
    const msgs = Buffer.concat([cr, done]);
    const bytes = Buffer.concat([
      record(22, msgs.subarray(0, 20)),
      record(22, msgs.subarray(20)),
      record(20, Buffer.from([1])),
    ]);
    const hs = plaintextHandshake(parseRecords(bytes));
    expect(hs.map((m) => m.type)).toEqual([13, 14]);
    const { caNames, caNamesDer } = parseCertificateRequest12(hs[0]!.body);
    expect(caNames).toEqual([expect.stringContaining('CN=Client CA Root'), 'CN=Other Root']);
    expect(caNamesDer).toHaveLength(2);
  });

  it('an empty CA list is an empty array; a list that runs past the message is an error', () => {
    expect(parseCertificateRequest12(certificateRequest([])).caNames).toEqual([]);
    const bad = certificateRequest(['CN=x']);
    expect(() => parseCertificateRequest12(bad.subarray(0, bad.length - 3))).toThrow(/runs past/);
  });

  it('stops at ChangeCipherSpec: what follows is encrypted', () => {
    const bytes = Buffer.concat([
      record(20, Buffer.from([1])),
      record(22, handshake(13, certificateRequest(['CN=x']))),
    ]);
    expect(plaintextHandshake(parseRecords(bytes))).toEqual([]);
  });

  it('ignores a trailing partial record', () => {
    const bytes = Buffer.concat([record(22, Buffer.from([1, 2, 3])), Buffer.from([22, 3, 3, 0, 9, 1])]);
    expect(parseRecords(bytes)).toHaveLength(1);
  });

  it('reads a TLS 1.2 Certificate message and the ServerHello version (supported_versions wins)', () => {
    const a = Buffer.from('first');
    const b = Buffer.from('second!');
    const list = Buffer.concat([u24(a.length), a, u24(b.length), b]);
    expect(certificateList12(Buffer.concat([u24(list.length), list])).map(String)).toEqual([
      'first',
      'second!',
    ]);
    const hello = (ext: Buffer): Buffer =>
      Buffer.concat([
        Buffer.from([3, 3]),
        Buffer.alloc(32),
        Buffer.from([0]),
        Buffer.from([0x13, 1, 0]),
        u16(ext.length),
        ext,
      ]);
    expect(serverHelloVersion(hello(Buffer.alloc(0)))).toBe('TLSv1.2');
    expect(serverHelloVersion(hello(Buffer.concat([u16(43), u16(2), Buffer.from([3, 4])])))).toBe('TLSv1.3');
  });

  it('tells TLS from plain HTTP and other banners', () => {
    expect(looksLikeTls(record(22, Buffer.alloc(3)))).toBe(true);
    expect(looksLikeTls(Buffer.from('HTTP/1.1 400 Bad Request\r\n'))).toBe(false);
    expect(looksLikeTls(Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'))).toBe(false);
  });
});

describe('alerts', () => {
  it.each([
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'certificate_required', 116],
    ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown_ca', 48],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'bad_certificate', 42],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'certificate_expired', 45],
    ['ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE', 'unsupported_certificate', 43],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED', 'certificate_revoked', 44],
    ['ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR', 'decrypt_error', 51],
    ['ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'handshake_failure', 40],
  ])('%s is %s (%d)', (code, name, num) => {
    expect(alertFromErrorCode(code)).toEqual({ name, code: num, fatal: true });
  });

  it('other errors are no alert', () => {
    expect(alertFromErrorCode('ECONNRESET')).toBeUndefined();
    expect(alertFromErrorCode(undefined)).toBeUndefined();
  });

  it('reads plaintext alert records before encryption starts', () => {
    const bytes = Buffer.concat([
      record(21, Buffer.from([2, 40])),
      record(20, Buffer.from([1])),
      record(21, Buffer.from([2, 48])),
    ]);
    expect(plaintextAlerts(parseRecords(bytes))).toEqual([
      { name: 'handshake_failure', code: 40, fatal: true },
    ]);
  });
});

describe("the client's TLS 1.3 flight says whether a certificate was asked for", () => {
  const r = (type: number, len: number): TlsRecord => ({ type, version: 0x0303, body: Buffer.alloc(len) });
  const hello = r(22, 300);
  const ccs = r(20, 1);
  const fin384 = r(23, 4 + 48 + 17);
  it.each([
    ['Finished alone: not asked', [hello, ccs, fin384], { certRequested: false, certSent: false }],
    [
      'empty Certificate + Finished: asked, none sent',
      [hello, ccs, r(23, 25), fin384],
      { certRequested: true, certSent: false },
    ],
    [
      'Certificate + CertificateVerify + Finished: asked and sent',
      [hello, ccs, r(23, 900), r(23, 96), fin384],
      { certRequested: true, certSent: true },
    ],
  ] as const)('%s', (_t, recs, want) => {
    expect(clientFlightTls13([...recs], 48)).toEqual(want);
  });

  it('is undefined until Finished is on the wire (SHA-256 suites: 53 bytes)', () => {
    expect(clientFlightTls13([hello, ccs, r(23, 900)], 32)).toBeUndefined();
    expect(clientFlightTls13([hello, ccs, r(23, 53)], 32)).toEqual({ certRequested: false, certSent: false });
    expect(tls13HashLength('TLS_AES_256_GCM_SHA384')).toBe(48);
    expect(tls13HashLength('TLS_CHACHA20_POLY1305_SHA256')).toBe(32);
  });
});

const nginx400 = (title: string): Buffer =>
  Buffer.from(
    `HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html>\r\n<head><title>400 ${title}</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>${title}</center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n`,
  );

describe('HTTP answers', () => {
  it.each([
    ['No required SSL certificate was sent', 'no_client_cert'],
    ['The SSL certificate error', 'cert_error'],
    ['The plain HTTP request was sent to HTTPS port', 'plain_http_to_https'],
  ])('nginx "400 %s" is %s', (title, page) => {
    const a = parseHttpAnswer(nginx400(title))!;
    expect(a.status).toBe(400);
    expect(a.statusLine).toBe('HTTP/1.1 400 Bad Request');
    expect(nginxPage(a)).toBe(page);
    expect(bodyExcerpt(a.body)).toContain(title);
  });

  it('a 400 of the application is not an nginx certificate page; non-HTTP is undefined', () => {
    const a = parseHttpAnswer(Buffer.from('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad'))!;
    expect(nginxPage(a)).toBeUndefined();
    expect(parseHttpAnswer(Buffer.from('\x15\x03\x03'))).toBeUndefined();
  });

  it('reads mtls proxy refusals, and nothing else, as proxy JSON', () => {
    const json = (status: string, body: object, type = 'application/json'): Buffer =>
      Buffer.from(`HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\n\r\n${JSON.stringify(body)}`);
    const a = parseHttpAnswer(
      json('401 Unauthorized', {
        code: 'MTLS_PROXY_UNAUTHENTICATED',
        reason: 'expired',
        requestId: 'r1',
        detail: 'd',
      }),
    )!;
    expect(proxyRefusal(a)).toEqual({
      code: 'MTLS_PROXY_UNAUTHENTICATED',
      reason: 'expired',
      requestId: 'r1',
      detail: 'd',
    });
    expect(
      proxyRefusal(parseHttpAnswer(json('401 Unauthorized', { code: 'OTHER', reason: 'x' }))!),
    ).toBeUndefined();
    expect(
      proxyRefusal(
        parseHttpAnswer(
          json(
            '403 Forbidden',
            { code: 'MTLS_PROXY_FORBIDDEN', reason: 'identity_not_allowed' },
            'text/plain',
          ),
        )!,
      ),
    ).toBeUndefined();
    expect(
      proxyRefusal(
        parseHttpAnswer(Buffer.from('HTTP/1.1 401 x\r\ncontent-type: application/json\r\n\r\n{oops'))!,
      ),
    ).toBeUndefined();
  });
});

describe('the verdict from an observation', () => {
  const at = new Date();
  const input = { host: 'api.internal', port: 8443 };
  const local = checkLocalClient(input, at);
  const obs = (o: Partial<Observation>): Observation => ({
    target: 'api.internal:8443',
    stage: 'answer',
    timedOut: false,
    tcpConnected: true,
    serverChain: [],
    ms: 1,
    ...o,
  });
  const codes = (r: ReturnType<typeof diagnose>): string[] =>
    r.findings.filter((f) => f.severity === 'error').map((f) => f.code);

  it.each([
    [
      'connection refused',
      { stage: 'tcp', tcpConnected: false, error: { code: 'ECONNREFUSED', message: 'refused' } },
      'connect_refused',
    ],
    [
      'DNS failure',
      { stage: 'dns', tcpConnected: false, error: { code: 'ENOTFOUND', message: 'nope' } },
      'connect_failed',
    ],
    ['no TCP in time', { stage: 'tcp', tcpConnected: false, timedOut: true }, 'connect_timeout'],
    ['no handshake in time', { stage: 'handshake', timedOut: true }, 'connect_timeout'],
    [
      'plain HTTP',
      { stage: 'handshake', notTls: 'HTTP/1.1 400 Bad Request', error: { code: 'NOT_TLS', message: 'x' } },
      'not_tls',
    ],
  ] as const)('%s is on the network', (_t, o, code) => {
    const r = diagnose({ input, local, obs: obs(o), at });
    expect(r.failingSide).toBe('network');
    expect(codes(r)).toEqual([code]);
    expect(r.findings[0]!.fix.length).toBeGreaterThan(10);
  });

  it('alert certificate_required after the handshake: no_client_cert on the client, with the alert as evidence', () => {
    const r = diagnose({
      input,
      local,
      obs: obs({
        protocol: 'TLSv1.3',
        certRequested: true,
        alert: { name: 'certificate_required', code: 116, fatal: true, when: 'after-handshake' },
      }),
      at,
    });
    expect(r.failingSide).toBe('client');
    expect(codes(r)).toEqual(['no_client_cert']);
    expect(r.findings[0]!.evidence.alert).toMatch(
      /certificate_required \(116\), after the client's Finished/,
    );
  });

  it('a protocol alert is on both sides; a server that never asks for a certificate is not_mtls', () => {
    const p = diagnose({
      input,
      local,
      obs: obs({
        stage: 'handshake',
        alert: { name: 'protocol_version', code: 70, fatal: true, when: 'handshake' },
      }),
      at,
    });
    expect(p.failingSide).toBe('both');
    expect(codes(p)).toEqual(['protocol_mismatch']);
    const n = diagnose({
      input,
      local,
      obs: obs({
        protocol: 'TLSv1.3',
        certRequested: false,
        http: parseHttpAnswer(Buffer.from('HTTP/1.1 200 OK\r\n\r\nok'))!,
      }),
      at,
    });
    expect(n.failingSide).toBe('server');
    expect(codes(n)).toEqual(['not_mtls']);
    expect(n.findings.find((f) => f.code === 'connected')?.evidence.clientCertRequested).toBe('no');
  });

  it('mtls proxy 403 identity_not_allowed is the server’s; 503 revocation_unavailable too', () => {
    const answer = (status: string, reason: string): Observation =>
      obs({
        protocol: 'TLSv1.3',
        certRequested: true,
        http: parseHttpAnswer(
          Buffer.from(
            `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\n\r\n{"code":"MTLS_PROXY_X","reason":"${reason}","requestId":"r"}`,
          ),
        )!,
      });
    for (const [status, reason] of [
      ['403 Forbidden', 'identity_not_allowed'],
      ['503 Service Unavailable', 'revocation_unavailable'],
    ]) {
      const r = diagnose({ input, local, obs: answer(status!, reason!), at });
      expect(r.failingSide).toBe('server');
      expect(codes(r)).toEqual([reason]);
    }
  });

  it('network errors name the network only when no file is at fault', () => {
    const f = (side: ConnectFinding['side']): ConnectFinding => ({
      code: 'connect_refused',
      side,
      severity: 'error',
      message: '',
      evidence: {},
      fix: '',
    });
    expect(connectReport([f('network')]).failingSide).toBe('network');
    expect(connectReport([f('network'), f('client')]).failingSide).toBe('client');
    expect(connectReport([f('server'), f('client')]).failingSide).toBe('both');
    expect(connectReport([]).failingSide).toBeNull();
  });
});

describe('HOST:PORT', () => {
  it.each([
    ['api.internal:443', 'api.internal', 443],
    ['127.0.0.1:8443', '127.0.0.1', 8443],
    ['[::1]:8443', '::1', 8443],
  ])('%s', (text, host, port) => expect(parseTarget(text)).toEqual({ host, port }));
  it.each(['api.internal', ':443', 'host:0', 'host:70000', '::1:443'])('%s is a usage error', (text) => {
    expect(() => parseTarget(text)).toThrow(/HOST:PORT/);
  });
});

describe('the client files and a refusal, with generated certificates', () => {
  const at = new Date();
  const mk = (name: string): { root: Party; inter: Party } => {
    const rootKey = generateKey('p256');
    const r = selfSign(rootKey, { profile: 'root', subject: parseName(`CN=${name} Root`) });
    const root = { cert: parseCertificate(r.der), key: rootKey, pem: r.pem };
    const interKey = generateKey('p256');
    const i = createIssuer(root.cert, rootKey).issue({
      profile: 'intermediate',
      subject: parseName(`CN=${name} Intermediate`),
      publicKey: spkiOf(interKey),
    });
    return { root, inter: { cert: parseCertificate(i.der), key: interKey, pem: i.pem } };
  };
  const leafOf = (issuer: Party, cn: string): Party => {
    const key = generateKey('p256');
    const c = createIssuer(issuer.cert, issuer.key).issue({
      profile: 'client',
      subject: parseName(`CN=${cn}`),
      publicKey: spkiOf(key),
      ttlMs: 3_600_000,
    });
    return { cert: parseCertificate(c.der), key, pem: c.pem };
  };
  const clientCa = mk('Client CA');
  const alice = leafOf(clientCa.inter, 'alice');
  const file = (path: string, text: string): { path: string; data: Buffer } => ({
    path,
    data: Buffer.from(text),
  });
  const input = {
    host: 'api.internal',
    port: 443,
    cert: file('alice.chain.pem', alice.pem + clientCa.inter.pem),
    key: file('alice.key', exportPrivateKeyPem(alice.key)),
  };
  const refusedTls12 = (names: string[]): Observation => {
    const cr = parseCertificateRequest12(certificateRequest(names));
    return {
      target: 'api.internal:443',
      stage: 'answer',
      timedOut: false,
      tcpConnected: true,
      serverChain: [],
      protocol: 'TLSv1.2',
      certRequested: true,
      certSent: true,
      caNames: cr.caNames,
      caNamesDer: cr.caNamesDer,
      http: parseHttpAnswer(nginx400('The SSL certificate error'))!,
      ms: 1,
    };
  };
  const errors = (r: ReturnType<typeof diagnose>): [string, string][] =>
    r.findings.filter((f) => f.severity === 'error').map((f) => [f.code, f.side]);

  it('a sound chain is sendable, leaf first, with no finding', () => {
    const local = checkLocalClient(input, at);
    expect(local.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(local.sendable).toBe(true);
  });

  it('a certificate without a key is a file_format error and is not sent', () => {
    const local = checkLocalClient({ host: 'h', port: 1, cert: input.cert }, at);
    expect(local.sendable).toBe(false);
    expect(local.findings.map((f) => [f.code, f.side])).toContainEqual(['file_format', 'client']);
  });

  it('refused while the chain reaches the root the server names: the server (client_cert_rejected)', () => {
    const r = diagnose({
      input,
      local: checkLocalClient(input, at),
      obs: refusedTls12([formatName(clientCa.root.cert.subject)]),
      at,
    });
    expect(errors(r)).toEqual([['client_cert_rejected', 'server']]);
    expect(r.findings[0]!.evidence.serverAccepts).toEqual([formatName(clientCa.root.cert.subject)]);
  });

  it('refused while the server names only the intermediate: partial_chain on the server', () => {
    const r = diagnose({
      input,
      local: checkLocalClient(input, at),
      obs: refusedTls12([formatName(clientCa.inter.cert.subject)]),
      at,
    });
    expect(errors(r)).toEqual([['partial_chain', 'server']]);
  });

  it('refused by a server that names another CA: unknown_ca on the client, with the names as evidence', () => {
    const r = diagnose({
      input,
      local: checkLocalClient(input, at),
      obs: refusedTls12(['CN=Somebody Else Root']),
      at,
    });
    expect(errors(r)).toEqual([['unknown_ca', 'client']]);
    expect(r.findings[0]!.evidence.acceptableCaNames).toEqual(['CN=Somebody Else Root']);
  });

  it('a leaf sent alone to a server that names the root: missing_intermediate on the client', () => {
    const alone = { ...input, cert: file('alice.crt', alice.pem) };
    const r = diagnose({
      input: alone,
      local: checkLocalClient(alone, at),
      obs: refusedTls12([formatName(clientCa.root.cert.subject)]),
      at,
    });
    expect(errors(r)).toEqual([['missing_intermediate', 'client']]);
  });

  it('the alert certificate_revoked (HAProxy) is revoked on the client', () => {
    const obs: Observation = {
      ...refusedTls12([formatName(clientCa.root.cert.subject)]),
      protocol: 'TLSv1.3',
      alert: { name: 'certificate_revoked', code: 44, fatal: true, when: 'after-handshake' },
    };
    delete obs.http;
    const r = diagnose({ input, local: checkLocalClient(input, at), obs, at });
    expect(errors(r)).toEqual([['revoked', 'client']]);
  });
});

describe('TLS 1.3: the encrypted CertificateRequest, read with the keylog secret', () => {
  it('derives the handshake key and IV as RFC 8448 (simple 1-RTT) does', () => {
    const secret = Buffer.from('b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38', 'hex');
    expect(hkdfExpandLabel('sha256', secret, 'key', 16).toString('hex')).toBe(
      '3fce516009c21727d0f2e4e86ee403bc',
    );
    expect(hkdfExpandLabel('sha256', secret, 'iv', 12).toString('hex')).toBe('5d313eb2671276ee13000b30');
  });

  it('decrypts the server flight and reads certificate_authorities from the CertificateRequest', () => {
    const secret = randomBytes(32);
    const key = hkdfExpandLabel('sha256', secret, 'key', 16);
    const iv = hkdfExpandLabel('sha256', secret, 'iv', 12);
    let seq = 0;
    const seal = (msg: Buffer): TlsRecord => {
      const inner = Buffer.concat([msg, Buffer.from([22])]);
      const nonce = Buffer.from(iv);
      nonce[11]! ^= seq++;
      const len = inner.length + 16;
      const c = createCipheriv('aes-128-gcm', key, nonce);
      c.setAAD(Buffer.from([23, 3, 3, len >> 8, len & 0xff]));
      const body = Buffer.concat([c.update(inner), c.final(), c.getAuthTag()]);
      return { type: 23, version: 0x0303, body };
    };
    const dn = encodeName(parseName('CN=Client CA Root'));
    const cas = Buffer.concat([u16(dn.length + 2), u16(dn.length), dn]);
    const ext = Buffer.concat([u16(47), u16(cas.length), cas]);
    const cr = handshake(13, Buffer.concat([Buffer.from([0]), u16(ext.length), ext]));
    const recs = [
      { type: 20, version: 0x0303, body: Buffer.from([1]) },
      seal(handshake(8, u16(0))),
      seal(cr),
      seal(handshake(20, Buffer.alloc(32))),
      { type: 23, version: 0x0303, body: randomBytes(40) }, // application traffic: not decryptable
    ];
    const msgs = decryptServerHandshake13(recs, secret, 'TLS_AES_128_GCM_SHA256')!;
    expect(msgs.map((m) => m.type)).toEqual([8, 13, 20]);
    expect(parseCertificateRequest13(msgs[1]!.body)?.caNames).toEqual(['CN=Client CA Root']);
    expect(decryptServerHandshake13(recs, randomBytes(32), 'TLS_AES_128_GCM_SHA256')).toBeUndefined();
    expect(decryptServerHandshake13(recs, secret, 'TLS_UNKNOWN')).toBeUndefined();
  });
});
