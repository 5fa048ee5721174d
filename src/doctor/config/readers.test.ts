import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MtlsError } from '../../errors/index.js';
import {
  detectFormat,
  parseNginx,
  readConfig,
  readEnvoy,
  readHaproxy,
  readNginx,
  readOtel,
  splitHaproxyLine,
  tokenizeNginx,
  type ConfigSource,
} from './index.js';

/** An in-memory file system for includes and crt files. */
function memory(files: Record<string, string>): ConfigSource {
  return {
    read: (p) => (p in files ? Buffer.from(files[p]!) : undefined),
    list: (pattern) => {
      const re = new RegExp(`^${pattern.replace(/[.]/g, '\\.').replace(/\*/g, '[^/]*')}$`);
      return Object.keys(files)
        .filter((f) => re.test(f))
        .sort();
    },
  };
}

function configErrorOf(fn: () => unknown): MtlsError {
  try {
    fn();
  } catch (e) {
    if (e instanceof MtlsError) return e;
    throw e;
  }
  throw new Error('expected an MtlsError');
}

describe('nginx tokenizer and parser', () => {
  it('reads quotes, escapes, comments and ${var} words with their line numbers', () => {
    const t = tokenizeNginx(
      'a "b c" \'d;e\' # comment ; {\nf\\ g ${host}x "q\\"uote";\n# whole line\n}',
      'x.conf',
    );
    expect(t.map((x) => [x.kind, x.value, x.line])).toEqual([
      ['word', 'a', 1],
      ['word', 'b c', 1],
      ['word', 'd;e', 1],
      ['word', 'f\\ g', 2],
      ['word', '${host}x', 2],
      ['word', 'q"uote', 2],
      [';', ';', 2],
      ['}', '}', 4],
    ]);
  });

  it('keeps a # inside a word and variables as written', () => {
    const s = parseNginx('return 200 "a#b";\nset $x $ssl_client_s_dn;\n', 'x.conf');
    expect(s.map((x) => [x.name, x.args])).toEqual([
      ['return', ['200', 'a#b']],
      ['set', ['$x', '$ssl_client_s_dn']],
    ]);
  });

  it('parses nested blocks', () => {
    const s = parseNginx('http {\n  server {\n    location / { return 200; }\n  }\n}\n', 'x.conf');
    expect(s[0]!.name).toBe('http');
    expect(s[0]!.block![0]!.name).toBe('server');
    expect(s[0]!.block![0]!.line).toBe(2);
    expect(s[0]!.block![0]!.block![0]!.block![0]!.args).toEqual(['200']);
  });

  it.each([
    ['http {\n  server {\n  }\n', 1, /never closed/],
    ['events {}\n}\n', 2, /unexpected "}"/],
    ['http {\n  ssl_certificate a.pem\n}\n', 2, /not terminated by ";"/],
    ['worker_processes 1;\nerror_log "unterminated;\n', 2, /never closed/],
    ['events {}\n;\n', 2, /unexpected ";"/],
    ['user nginx', 1, /not terminated/],
  ])('malformed input %#: an MtlsError naming the line', (text, line, re) => {
    const e = configErrorOf(() => parseNginx(text, 'bad.conf'));
    expect(e.code).toBe('MTLS_CONFIG_INVALID');
    expect(e.message).toMatch(new RegExp(`^bad\\.conf:${line}: `));
    expect(e.message).toMatch(re);
    expect(e.fix).toBeTruthy();
  });
});

describe('nginx reader', () => {
  const main = `
user nginx;
http {
  ssl_client_certificate client-ca.pem;   # inherited by the servers
  ssl_verify_client on;
  include conf.d/*.conf;
  server {
    listen 80;
    server_name plain.example;
  }
}
`;
  it('follows includes (globs) relative to the config directory and inherits http settings', () => {
    const src = memory({
      '/etc/nginx/conf.d/a.conf': `server {
  listen 443 ssl;
  server_name api.example "www.example";
  ssl_certificate     certs/api.pem;
  ssl_certificate_key /keys/api.key;
  ssl_verify_depth 2;
  ssl_crl crl.pem;
  ssl_password_file pass.txt;
}`,
      '/etc/nginx/conf.d/b.conf': `server {
  listen 8443 ssl;
  ssl_certificate "$ssl_server_name.pem";
  ssl_verify_client optional_no_ca;
}`,
    });
    const p = readNginx('/etc/nginx/nginx.conf', main, src);
    expect(p.endpoints).toHaveLength(2);
    const [a, b] = p.endpoints;
    expect(a!.names).toEqual(['api.example', 'www.example']);
    expect(a!.cert!.path).toBe('/etc/nginx/certs/api.pem');
    expect(a!.cert!.at).toEqual({
      file: '/etc/nginx/conf.d/a.conf',
      line: 4,
      text: 'ssl_certificate     certs/api.pem;',
    });
    expect(a!.key!.path).toBe('/keys/api.key');
    expect(a!.ca.map((c) => c.path)).toEqual(['/etc/nginx/client-ca.pem']);
    expect(a!.ca[0]!.at.line).toBe(4);
    expect(a!.ca[0]!.at.file).toBe('/etc/nginx/nginx.conf');
    expect(a!.verify.mode).toBe('required');
    expect(a!.verifyDepth?.value).toBe(2);
    expect(a!.crl?.path).toBe('/etc/nginx/crl.pem');
    expect(a!.passwordFile?.path).toBe('/etc/nginx/pass.txt');
    // A variable in the path is named, not resolved; optional_no_ca does not verify.
    expect(b!.cert).toBeUndefined();
    expect(b!.unresolved.map((u) => u.line)).toEqual([3]);
    expect(b!.verify.mode).toBe('none');
  });

  it('one endpoint per ssl_certificate pair (RSA + ECDSA), and a server level replaces the http level', () => {
    const p = readNginx(
      '/n/nginx.conf',
      `http {
  ssl_certificate http.pem;
  ssl_certificate_key http.key;
  server { listen 443 ssl; ssl_certificate rsa.pem; ssl_certificate_key rsa.key; ssl_certificate ec.pem; ssl_certificate_key ec.key; }
  server { listen 8443 ssl; }
}`,
      memory({}),
    );
    expect(p.endpoints.map((e) => [e.cert?.written, e.key?.written])).toEqual([
      ['rsa.pem', 'rsa.key'],
      ['ec.pem', 'ec.key'],
      ['http.pem', 'http.key'],
    ]);
    expect(p.endpoints[1]!.label).toMatch(/certificate 2$/);
  });

  it('a missing include is an error naming the include line', () => {
    const e = configErrorOf(() =>
      readNginx('/etc/nginx/nginx.conf', 'http {\n include missing.conf;\n}', memory({})),
    );
    expect(e.message).toMatch(/^\/etc\/nginx\/nginx\.conf:2: .*missing\.conf does not exist/);
  });

  it('an include loop is an error, not a hang', () => {
    const src = memory({ '/n/loop.conf': 'include loop.conf;' });
    const e = configErrorOf(() => readNginx('/n/nginx.conf', 'include loop.conf;', src));
    expect(e.message).toMatch(/include loop/);
  });

  it('a bad ssl_verify_client value names its line', () => {
    const e = configErrorOf(() =>
      readNginx(
        '/n/nginx.conf',
        'http {\n server {\n  listen 443 ssl;\n  ssl_verify_client yes;\n }\n}',
        memory({}),
      ),
    );
    expect(e.message).toMatch(/^\/n\/nginx\.conf:4: invalid value "yes"/);
  });
});

describe('HAProxy reader', () => {
  it('splits lines with quotes, escapes and comments', () => {
    expect(splitHaproxyLine('  bind :443 ssl crt "/a b.pem" ca-file x\\ y # note', 'h.cfg', 1)).toEqual([
      'bind',
      ':443',
      'ssl',
      'crt',
      '/a b.pem',
      'ca-file',
      'x y',
    ]);
    expect(() => splitHaproxyLine('bind "open', 'h.cfg', 7)).toThrow(/h\.cfg:7: unmatched quote/);
  });

  it('reads binds (crt-base, ca-base, .key beside the crt), crt-list lines and backend servers', () => {
    const cfg = `global
  crt-base /etc/haproxy/certs
  ca-base /etc/haproxy/ca

frontend web
  bind :443 ssl crt site.pem ca-file clients.pem verify required crl-file crl.pem
  bind :8443 ssl crt-list /etc/haproxy/list.txt

backend app
  default-server ssl ca-file servers.pem
  server s1 10.0.0.1:443 crt client.pem
  server s2 10.0.0.2:443 verify none
`;
    const src = memory({
      '/etc/haproxy/certs/site.pem': '-----BEGIN CERTIFICATE-----\n',
      '/etc/haproxy/certs/client.pem': '-----BEGIN CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n',
      '/etc/haproxy/list.txt':
        '# crt-list\nother.pem [ca-file other-ca.pem verify optional] other.example !skip.example\n',
    });
    const p = readHaproxy('/etc/haproxy/haproxy.cfg', cfg, src);
    const [bind, listed, s1, s2] = p.endpoints;
    expect(p.endpoints).toHaveLength(4);
    expect(bind!.role).toBe('server');
    expect(bind!.cert!.path).toBe('/etc/haproxy/certs/site.pem');
    expect(bind!.key!.path).toBe('/etc/haproxy/certs/site.pem.key');
    expect(bind!.ca[0]!.path).toBe('/etc/haproxy/ca/clients.pem');
    expect(bind!.crl!.path).toBe('/etc/haproxy/ca/crl.pem');
    expect(bind!.verify.mode).toBe('required');
    expect(bind!.at.line).toBe(6);
    expect(listed!.cert!.path).toBe('/etc/haproxy/certs/other.pem');
    expect(listed!.verify.mode).toBe('optional');
    expect(listed!.names).toEqual(['other.example']);
    expect(listed!.at).toMatchObject({ file: '/etc/haproxy/list.txt', line: 2 });
    expect(s1!.role).toBe('client');
    expect(s1!.key!.path).toBe('/etc/haproxy/certs/client.pem');
    expect(s1!.ca[0]!.path).toBe('/etc/haproxy/ca/servers.pem');
    expect(s1!.verify.mode).toBe('required');
    expect(s2!.skipVerify?.line).toBe(12);
  });

  it('a crt directory loads every certificate in it (not the .key files)', () => {
    const src = memory({
      '/h/certs/a.pem': 'x',
      '/h/certs/a.pem.key': 'x',
      '/h/certs/b.pem': 'x',
    });
    const p = readHaproxy('/h/h.cfg', 'frontend f\n  bind :443 ssl crt certs/\n', src);
    expect(p.endpoints.map((e) => e.cert?.path)).toEqual(['/h/certs/a.pem', '/h/certs/b.pem']);
  });

  it('a bind without verify does not ask for client certificates', () => {
    const p = readHaproxy('/h/h.cfg', 'frontend f\n  bind :443 ssl crt a.pem\n', memory({}));
    expect(p.endpoints[0]!.verify).toEqual({ mode: 'none' });
  });
});

describe('Envoy reader', () => {
  const yaml = `static_resources:
  listeners:
  - name: ingress
    address: { socket_address: { address: 0.0.0.0, port_value: 443 } }
    filter_chains:
    - filter_chain_match: { server_names: [api.example] }
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificates:
            - certificate_chain: { filename: certs/server.pem }
              private_key: { filename: /keys/server.key }
            validation_context:
              trusted_ca: { filename: client-ca.pem }
              crl: { filename: crl.pem }
              max_verify_depth: 2
              match_typed_subject_alt_names:
              - san_type: DNS
                matcher: { exact: client.example }
  clusters:
  - name: backend
    connect_timeout: 1s
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: backend.example
        common_tls_context:
          tls_certificates:
          - certificate_chain: { inline_string: "-----BEGIN CERTIFICATE-----" }
            private_key: { filename: "\${KEY}" }
`;
  it('reads Downstream and Upstream TLS contexts with their lines', () => {
    const p = readEnvoy('/e/envoy.yaml', yaml);
    const [down, up] = p.endpoints;
    expect(down!.role).toBe('server');
    expect(down!.label).toBe('DownstreamTlsContext of listener ingress');
    expect(down!.names).toEqual(['api.example']);
    expect(down!.cert!.path).toBe('/e/certs/server.pem');
    expect(down!.cert!.at.line).toBe(14);
    expect(down!.ca[0]!.path).toBe('/e/client-ca.pem');
    expect(down!.crl!.at.line).toBe(18);
    expect(down!.verifyDepth).toMatchObject({ value: 2, at: { line: 19 } });
    expect(down!.verify).toMatchObject({ mode: 'required', at: { line: 11 } });
    expect(down!.sanMatchers).toEqual(['DNS:client.example']);
    expect(up!.role).toBe('client');
    expect(up!.label).toBe('UpstreamTlsContext of cluster backend');
    expect(up!.names).toEqual(['backend.example']);
    expect(up!.cert!.inline?.toString()).toBe('-----BEGIN CERTIFICATE-----');
    expect(up!.unresolved.map((u) => u.line)).toEqual([34]);
    expect(up!.skipVerify).toBeDefined();
  });

  it('reads the same bootstrap as JSON; without require_client_certificate the listener only asks', () => {
    const json = JSON.stringify(
      {
        static_resources: {
          listeners: [
            {
              name: 'l',
              filter_chains: [
                {
                  transport_socket: {
                    typed_config: {
                      '@type':
                        'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
                      common_tls_context: { validation_context: { trusted_ca: { filename: 'ca.pem' } } },
                    },
                  },
                },
              ],
            },
          ],
        },
      },
      null,
      2,
    );
    const p = readConfig('/e/envoy.json', Buffer.from(json), memory({}));
    expect(p.format).toBe('envoy');
    expect(p.endpoints[0]!.verify.mode).toBe('optional');
    expect(p.endpoints[0]!.ca[0]!.at.text).toBe('"filename": "ca.pem"');
  });

  it('invalid YAML is an error with its line', () => {
    const e = configErrorOf(() => readEnvoy('/e/bad.yaml', 'static_resources:\n  listeners: [\n  - a: b\n'));
    expect(e.code).toBe('MTLS_CONFIG_INVALID');
    expect(e.message).toMatch(/^\/e\/bad\.yaml:\d+: not valid YAML/);
  });
});

describe('OpenTelemetry Collector reader', () => {
  it('reads receivers (client_ca_file, or a misplaced ca_file) and exporters (insecure, skip verify)', () => {
    const p = readOtel(
      '/o/otel.yaml',
      `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
        tls:
          cert_file: server.pem
          key_file: server.key
          client_ca_file: clients.pem
      http:
        endpoint: 0.0.0.0:4318
        tls:
          cert_file: server.pem
          key_file: server.key
          ca_file: clients.pem
  jaeger:
    protocols:
      grpc:
exporters:
  otlp/a:
    endpoint: collector:4317
    tls:
      ca_file: ca.pem
      insecure_skip_verify: true
  otlp/b:
    endpoint: collector:4317
    tls:
      insecure: true
      cert_file: client.pem
`,
    );
    const [grpc, http, jaeger, a, b] = p.endpoints;
    expect(grpc!.verify).toMatchObject({ mode: 'required', at: { line: 9 } });
    expect(grpc!.ca[0]!.path).toBe('/o/clients.pem');
    expect(http!.verify.mode).toBe('none');
    expect(http!.misplacedCa?.at.line).toBe(15);
    expect(jaeger!.tls).toBe(false);
    expect(a!.role).toBe('client');
    expect(a!.skipVerify?.line).toBe(24);
    expect(b!.plaintext?.line).toBe(28);
    expect(b!.tls).toBe(false);
  });
});

describe('format detection', () => {
  it.each([
    ['nginx.conf', 'events {}\nhttp { }\n', 'nginx'],
    ['site', 'server {\n listen 443 ssl;\n}\n', 'nginx'],
    ['haproxy.cfg', 'global\n  maxconn 10\nfrontend f\n  bind :443 ssl crt a.pem\n', 'haproxy'],
    ['envoy.yaml', 'static_resources:\n  listeners: []\n', 'envoy'],
    ['config.yaml', 'receivers:\n  otlp: {}\n', 'otel'],
    ['x.json', '{"receivers": {}}', 'otel'],
    ['x.txt', 'hello', undefined],
  ])('%s', (file, text, format) => {
    expect(detectFormat(file, text)).toBe(format);
  });

  it('an unknown format is a usage error that names --format', () => {
    const e = configErrorOf(() => readConfig('x.txt', Buffer.from('hello'), memory({})));
    expect(e.fix).toMatch(/--format/);
  });
});

describe('bad input never escapes as anything but MTLS_CONFIG_INVALID with a line', () => {
  const pieces = [
    'server',
    '{',
    '}',
    ';',
    '"',
    "'",
    '#',
    '\\',
    '\n',
    ' ',
    'ssl_certificate',
    '${x',
    'listen 443 ssl',
    ':',
    '- ',
    '[',
    'tls:',
    'bind',
    'crt',
  ];
  const arbitraryText = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.array(fc.constantFrom(...pieces), { maxLength: 60 }).map((a) => a.join('')),
  );
  it.each(['nginx', 'haproxy', 'envoy', 'otel'] as const)('%s', (format) => {
    fc.assert(
      fc.property(arbitraryText, (text) => {
        try {
          readConfig('/f/x.conf', Buffer.from(text), memory({}), format);
        } catch (e) {
          expect(e).toBeInstanceOf(MtlsError);
          const err = e as MtlsError;
          expect(err.code).toBe('MTLS_CONFIG_INVALID');
          const line = Number(/^\/f\/x\.conf:(\d+): /.exec(err.message)?.[1]);
          expect(line).toBeGreaterThanOrEqual(1);
          expect(line).toBeLessThanOrEqual(text.split('\n').length + 1);
        }
      }),
      { numRuns: 300 },
    );
  });
});
