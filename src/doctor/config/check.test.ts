import type { KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  createCrl,
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  selfSign,
  spkiOf,
  type Certificate,
  type ProfileName,
  type San,
} from '../../pki/index.js';
import type { DoctorReport, Finding, InputFile } from '../index.js';
import {
  checkConfig,
  readConfig,
  suggestName,
  targetListener,
  type ConfigClientInput,
  type ConfigFormat,
  type ConfigSource,
} from './index.js';

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
    publicKey: spkiOf(interKey),
  });
  return { root, inter: { cert: parseCertificate(i.der), key: interKey, pem: i.pem } };
}

function leaf(issuer: Party, profile: ProfileName, cn: string, sans: San[] = []): Party {
  const key = generateKey('p256');
  const c = createIssuer(issuer.cert, issuer.key).issue({
    profile,
    subject: parseName(`CN=${cn}`),
    sans,
    publicKey: spkiOf(key),
    ttlMs: 2 * HOUR,
  });
  return { cert: parseCertificate(c.der), key, pem: c.pem };
}

function crl(issuer: Party, nextUpdate: Date, thisUpdate = new Date(AT.getTime() - HOUR)): string {
  return createCrl({
    issuerCert: issuer.cert,
    issuerKey: issuer.key,
    entries: [],
    thisUpdate,
    nextUpdate,
    crlNumber: 1,
  }).pem;
}

const S = ca('Server CA');
const C = ca('Client CA');
const server = leaf(S.inter, 'server', 'api.example', [{ type: 'dns', value: 'api.example' }]);
const client = leaf(C.inter, 'client', 'alice');
const TOMORROW = new Date(AT.getTime() + 24 * HOUR);

/** The files every test config may name, under /etc/x. */
const FILES: Record<string, string> = {
  '/etc/x/server.pem': server.pem + S.inter.pem,
  '/etc/x/server.key': exportPrivateKeyPem(server.key),
  '/etc/x/server.enc.key': exportPrivateKeyPem(server.key, 'sekret'),
  '/etc/x/haproxy.pem': server.pem + S.inter.pem + exportPrivateKeyPem(server.key),
  '/etc/x/haproxy-enc.pem': server.pem + S.inter.pem + exportPrivateKeyPem(server.key, 'sekret'),
  '/etc/x/pass.txt': 'wrong\nsekret\n',
  '/etc/x/bad-pass.txt': 'wrong\n',
  '/etc/x/client-ca.pem': C.root.pem,
  '/etc/x/client-inter-only.pem': C.inter.pem,
  '/etc/x/server-ca.pem': S.root.pem,
  '/etc/x/client.pem': client.pem + C.inter.pem,
  '/etc/x/client.key': exportPrivateKeyPem(client.key),
  '/etc/x/crl-inter.pem': crl(C.inter, TOMORROW),
  '/etc/x/crl-chain.pem': crl(C.inter, TOMORROW) + crl(C.root, TOMORROW),
  '/etc/x/crl-stale.pem':
    crl(C.inter, new Date(AT.getTime() - HOUR), new Date(AT.getTime() - 48 * HOUR)) + crl(C.root, TOMORROW),
};

const source: ConfigSource = { read: (p) => (p in FILES ? Buffer.from(FILES[p]!) : undefined) };
const input = (path: string): InputFile => ({ path, data: Buffer.from(FILES[path]!) });

function check(
  text: string,
  o: { format?: ConfigFormat; client?: ConfigClientInput | 'alice' | 'none'; name?: string } = {},
): DoctorReport {
  const file = `/etc/x/${o.format === 'haproxy' ? 'haproxy.cfg' : o.format === 'otel' || o.format === 'envoy' ? 'c.yaml' : 'nginx.conf'}`;
  const parsed = readConfig(file, Buffer.from(text), source, o.format);
  const client =
    o.client === 'alice'
      ? {
          cert: input('/etc/x/client.pem'),
          key: input('/etc/x/client.key'),
          ca: input('/etc/x/server-ca.pem'),
        }
      : o.client === 'none'
        ? { ca: input('/etc/x/server-ca.pem') }
        : o.client;
  return checkConfig({
    parsed,
    source,
    ...(client ? { client } : {}),
    name: o.name ?? 'api.example',
    at: AT,
  });
}

const errors = (r: DoctorReport): string[] =>
  r.findings.filter((f) => f.severity === 'error').map((f) => f.code);
const find = (r: DoctorReport, code: string): Finding => {
  const f = r.findings.find((x) => x.code === code);
  if (!f) throw new Error(`no ${code} in ${JSON.stringify(r.findings.map((x) => [x.code, x.severity]))}`);
  return f;
};

const nginx = (body: string): string => `http {
  server {
    listen 443 ssl;
    server_name api.example;
    ssl_certificate server.pem;
    ssl_certificate_key server.key;
${body}
  }
}
`;
const MTLS = '    ssl_client_certificate client-ca.pem;\n    ssl_verify_client on;';

describe('doctor config on nginx', () => {
  it('a healthy mTLS server: nothing wrong, with and without the client', () => {
    expect(check(nginx(MTLS))).toMatchObject({ ok: true, failingSide: null });
    expect(errors(check(nginx(MTLS), { client: 'alice' }))).toEqual([]);
  });

  it('TLS without client verification: a warning alone, an error once a client CA or a client is given', () => {
    expect(find(check(nginx('')), 'not_mtls').severity).toBe('warning');
    const r = check(nginx('    ssl_client_certificate client-ca.pem;\n    ssl_verify_client off;'));
    const f = find(r, 'not_mtls');
    expect(f).toMatchObject({ side: 'server', severity: 'error' });
    expect(f.evidence).toMatchObject({ config: '/etc/x/nginx.conf:8', directive: 'ssl_verify_client off;' });
    expect(f.fix).toBe(
      'At /etc/x/nginx.conf:8: replace "ssl_verify_client off;" with "ssl_verify_client on;".',
    );
    // optional: a client without a certificate gets in, but no no_client_cert blame on the client.
    const o = check(nginx('    ssl_client_certificate client-ca.pem;\n    ssl_verify_client optional;'), {
      client: 'none',
    });
    expect(o.failingSide).toBe('server');
    expect(errors(o)).toEqual(['not_mtls']);
  });

  it('ssl_verify_client on without a client CA, and files that do not exist', () => {
    const r = check(nginx('    ssl_verify_client on;'));
    expect(find(r, 'config_file_missing').message).toMatch(/names no CA bundle/);
    const m = check(nginx('    ssl_client_certificate nope/ca.pem;\n    ssl_verify_client on;'), {
      client: 'alice',
    });
    const f = find(m, 'config_file_missing');
    expect(f.evidence).toMatchObject({ file: '/etc/x/nope/ca.pem', config: '/etc/x/nginx.conf:7' });
    expect(m.failingSide).toBe('server');
  });

  it('an encrypted key: an error without ssl_password_file, fine when a line of it opens the key', () => {
    const enc = (extra: string): string =>
      nginx(`${MTLS}\n${extra}`).replace(
        'ssl_certificate_key server.key',
        'ssl_certificate_key server.enc.key',
      );
    const bare = check(enc(''));
    expect(find(bare, 'encrypted_key').severity).toBe('error');
    expect(find(bare, 'encrypted_key').fix).toMatch(/ssl_password_file/);
    expect(errors(check(enc('    ssl_password_file pass.txt;'), { client: 'alice' }))).toEqual([]);
    expect(errors(check(enc('    ssl_password_file pass.txt;')))).toEqual([]);
    const wrong = check(enc('    ssl_password_file bad-pass.txt;'));
    expect(find(wrong, 'encrypted_key').message).toMatch(/No line of \/etc\/x\/bad-pass\.txt/);
  });

  it('CRLs: the leaf CA only is crl_missing, a stale one crl_expired, the whole chain is fine', () => {
    const leafOnly = check(nginx(`${MTLS}\n    ssl_crl crl-inter.pem;`));
    const f = find(leafOnly, 'crl_missing');
    expect(f.message).toMatch(/covers only the CA that issues the leaves/);
    expect(f.evidence.config).toBe('/etc/x/nginx.conf:9');
    expect(f.fix).toContain('ssl_crl crl-chain.pem;');
    expect(errors(check(nginx(`${MTLS}\n    ssl_crl crl-chain.pem;`)))).toEqual([]);
    expect(errors(check(nginx(`${MTLS}\n    ssl_crl crl-stale.pem;`)))).toEqual(['crl_expired']);
    // With the client: the same verdicts through the pair simulation.
    expect(errors(check(nginx(`${MTLS}\n    ssl_crl crl-inter.pem;`), { client: 'alice' }))).toEqual([
      'crl_missing',
    ]);
    expect(errors(check(nginx(`${MTLS}\n    ssl_crl crl-chain.pem;`), { client: 'alice' }))).toEqual([]);
  });

  it('the client CA file holding the server CA: a warning alone, swapped_ca_files once a client is refused', () => {
    const text = nginx('    ssl_client_certificate server-ca.pem;\n    ssl_verify_client on;');
    const alone = check(text);
    expect(find(alone, 'swapped_ca_files').severity).toBe('warning');
    expect(alone.ok).toBe(true);
    const r = check(text, { client: 'alice' });
    const f = find(r, 'swapped_ca_files');
    expect(f).toMatchObject({ side: 'server', severity: 'error' });
    expect(f.evidence.config).toBe('/etc/x/nginx.conf:7');
  });

  it('verify depth: the nginx default of 1 is too small for two intermediates', () => {
    const rootKey = generateKey('p256');
    const r0 = selfSign(rootKey, { profile: 'root', subject: parseName('CN=Deep Root'), pathLen: 2 });
    const deepRoot = { cert: parseCertificate(r0.der), key: rootKey, pem: r0.pem };
    const sub = (issuer: Party, cn: string, pathLen: number): Party => {
      const k = generateKey('p256');
      const c = createIssuer(issuer.cert, issuer.key).issue({
        profile: 'intermediate',
        subject: parseName(`CN=${cn}`),
        publicKey: spkiOf(k),
        pathLen,
        notAfter: new Date(AT.getTime() + 12 * HOUR),
        unchecked: true,
      });
      return { cert: parseCertificate(c.der), key: k, pem: c.pem };
    };
    const int1 = sub(deepRoot, 'Deep Int 1', 1);
    const deepInter = sub(int1, 'Deep Int 2', 0);
    const deep = leaf(deepInter, 'client', 'deep');
    const client: ConfigClientInput = {
      cert: { path: 'deep.pem', data: Buffer.from(deep.pem + deepInter.pem + int1.pem) },
      key: { path: 'deep.key', data: Buffer.from(exportPrivateKeyPem(deep.key)) },
      ca: input('/etc/x/server-ca.pem'),
    };
    FILES['/etc/x/deep-root.pem'] = deepRoot.pem;
    const DEEP = MTLS.replace('client-ca.pem', 'deep-root.pem');
    const r = check(nginx(DEEP), { client });
    const f = find(r, 'verify_depth_exceeded');
    expect(f.fix).toBe(
      'Add "ssl_verify_depth 2;" to http server api.example (listen 443 ssl) (/etc/x/nginx.conf:2).',
    );
    const r2 = check(nginx(`${DEEP}\n    ssl_verify_depth 1;`), { client });
    expect(find(r2, 'verify_depth_exceeded').fix).toBe(
      'At /etc/x/nginx.conf:9: replace "ssl_verify_depth 1;" with "ssl_verify_depth 2;".',
    );
    expect(errors(check(nginx(`${DEEP}\n    ssl_verify_depth 2;`), { client }))).toEqual([]);
  });

  it('picks the server block for --name, else the first TLS server (the default server)', () => {
    const text = `http {
  server { listen 443 ssl; server_name a.example; ssl_certificate server.pem; ssl_certificate_key server.key; }
  server { listen 443 ssl; server_name api.example *.b.example; ssl_certificate server.pem; ssl_certificate_key server.key; }
}`;
    const parsed = readConfig('/etc/x/nginx.conf', Buffer.from(text), source);
    expect(targetListener(parsed, 'api.example')?.names[0]).toBe('api.example');
    expect(targetListener(parsed, 'x.b.example')?.names[0]).toBe('api.example');
    expect(targetListener(parsed, 'other.example')?.names[0]).toBe('a.example');
    expect(suggestName(parsed)).toBe('a.example');
  });

  it('a server_name the certificate does not cover is a warning (clients may use another name)', () => {
    const r = check(nginx(MTLS).replace('server_name api.example', 'server_name www.example'));
    expect(find(r, 'name_mismatch').severity).toBe('warning');
    expect(r.ok).toBe(true);
  });

  it('nginx as the client: proxy_pass https:// without proxy_ssl_verify, verify without a CA, and a verified mTLS upstream', () => {
    const up = (loc: string): string => nginx(`${MTLS}\n    location /api/ {\n${loc}\n    }`);
    const r = check(up('      proxy_pass https://backend.example;'));
    const nv = find(r, 'server_not_verified');
    expect(nv).toMatchObject({ side: 'client', severity: 'warning' });
    expect(nv.evidence.config).toBe('/etc/x/nginx.conf:10');
    expect(nv.fix).toContain(
      'proxy_ssl_verify on; proxy_ssl_trusted_certificate server-ca.pem; proxy_ssl_name HOST;',
    );
    expect(r.ok).toBe(true);
    const noCa = check(up('      proxy_ssl_verify on;\n      proxy_pass https://backend.example;'));
    expect(find(noCa, 'config_file_missing')).toMatchObject({ side: 'client', severity: 'error' });
    const good = check(
      up(
        '      proxy_ssl_certificate client.pem;\n      proxy_ssl_certificate_key client.key;\n      proxy_ssl_trusted_certificate server-ca.pem;\n      proxy_ssl_verify on;\n      proxy_pass https://backend.example;',
      ),
    );
    expect(good.findings.filter((f) => f.side === 'client')).toEqual([]);
    const parsed = readConfig(
      '/etc/x/nginx.conf',
      Buffer.from(up('      grpc_ssl_name api.internal;\n      grpc_pass grpcs://10.0.0.1:443;')),
      source,
    );
    const grpc = parsed.endpoints.find((e) => e.role === 'client');
    expect(grpc).toMatchObject({ names: ['api.internal'], verify: { mode: 'none' } });
    expect(grpc!.label).toBe('grpc_pass grpcs://10.0.0.1:443 in location /api/ of http server api.example');
  });

  it('a config without any TLS server is not mTLS', () => {
    const r = check('http { server { listen 80; } }');
    expect(errors(r)).toEqual(['not_mtls']);
    expect(r.failingSide).toBe('server');
  });
});

describe('doctor config on HAProxy, Envoy and the Collector', () => {
  it('HAProxy: fixes in HAProxy syntax, encrypted keys are errors, verify none on a server is a warning', () => {
    const cfg = (bind: string): string =>
      `frontend f\n  bind :443 ssl ${bind}\nbackend b\n  server s 10.0.0.1:443 ssl verify none\n`;
    const ok = check(cfg('crt haproxy.pem ca-file client-ca.pem verify required'), {
      format: 'haproxy',
      client: 'alice',
    });
    expect(errors(ok)).toEqual([]);
    expect(find(ok, 'server_not_verified')).toMatchObject({ severity: 'warning', side: 'client' });
    const swapped = check(cfg('crt haproxy.pem ca-file server-ca.pem verify required'), {
      format: 'haproxy',
      client: 'alice',
    });
    expect(find(swapped, 'swapped_ca_files').fix).toMatch(/ca-file CLIENT-CA\.pem \(on the bind line\)/);
    const enc = check(cfg('crt haproxy-enc.pem ca-file client-ca.pem verify required'), {
      format: 'haproxy',
    });
    expect(find(enc, 'encrypted_key').message).toMatch(/HAProxy cannot load encrypted keys/);
    const noKey = check(cfg('crt server.pem ca-file client-ca.pem verify required'), { format: 'haproxy' });
    expect(find(noKey, 'config_file_missing').message).toMatch(/holds no private key/);
  });

  it('Envoy: no require_client_certificate is not_mtls with the field to set', () => {
    const yaml = `static_resources:
  listeners:
  - name: l
    filter_chains:
    - transport_socket:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: server.pem }
              private_key: { filename: server.key }
            validation_context: { trusted_ca: { filename: client-ca.pem } }
`;
    const r = check(yaml, { format: 'envoy', client: 'alice' });
    expect(errors(r)).toEqual(['not_mtls']);
    expect(find(r, 'not_mtls').fix).toMatch(/require_client_certificate: true/);
  });

  it('an encrypted key: Envoy opens it with its password data source, the Collector cannot at all', () => {
    const envoy = (password: string): string => `static_resources:
  listeners:
  - name: l
    filter_chains:
    - transport_socket:
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: server.pem }
              private_key: { filename: server.enc.key }
${password}            validation_context: { trusted_ca: { filename: client-ca.pem } }
`;
    const without = check(envoy(''), { format: 'envoy' });
    expect(find(without, 'encrypted_key').fix).toMatch(/^Add "password: \{ filename: key\.pass \}"/);
    expect(
      errors(check(envoy('              password: { inline_string: sekret }\n'), { format: 'envoy' })),
    ).toEqual([]);
    const otel = check(
      `receivers:
  otlp:
    protocols:
      grpc:
        tls: { cert_file: server.pem, key_file: server.enc.key, client_ca_file: client-ca.pem }
`,
      { format: 'otel' },
    );
    expect(find(otel, 'encrypted_key').message).toMatch(/the Collector cannot load encrypted keys/);
    expect(find(otel, 'encrypted_key')).toMatchObject({ severity: 'error', side: 'server' });
  });

  it('the Collector: Go accepts an intermediate-only client CA (a warning), insecure with certificates is tls_disabled', () => {
    const yaml = (caFile: string): string => `receivers:
  otlp:
    protocols:
      grpc:
        tls:
          cert_file: server.pem
          key_file: server.key
          client_ca_file: ${caFile}
exporters:
  otlp:
    endpoint: x:4317
    tls:
      insecure: true
      cert_file: client.pem
      key_file: client.key
`;
    const r = check(yaml('client-inter-only.pem'), { format: 'otel', client: 'alice' });
    expect(find(r, 'partial_chain').severity).toBe('warning');
    expect(find(r, 'tls_disabled')).toMatchObject({ side: 'client', severity: 'error' });
    expect(r.failingSide).toBe('client');
    expect(find(r, 'tls_disabled').evidence.config).toBe('/etc/x/c.yaml:13');
  });
});
