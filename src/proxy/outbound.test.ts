import { toJSONSchema } from 'zod';
import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import {
  OutboundSchema,
  classifyOutboundError,
  isLoopbackHost,
  outboundName,
  parseOutbound,
  sniffAlpn,
  type ClassifyInput,
} from './outbound.js';

const tls = { cert: 'certs/me.chain.pem', key: 'certs/me.key', ca: 'certs/ca.pem' };

function configError(input: unknown): string {
  try {
    parseOutbound(input, '/etc/mtls');
  } catch (e) {
    expect(isMtlsError(e, 'MTLS_CONFIG_INVALID')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('parsed without an error');
}

describe('OutboundSchema / parseOutbound', () => {
  it('fills the defaults and resolves paths against the base directory', () => {
    const c = parseOutbound(
      { listen: '127.0.0.1:15001', upstream: 'collector.example.org:4317', tls },
      '/etc/mtls',
    );
    expect(c).toEqual({
      listen: '127.0.0.1:15001',
      upstream: 'collector.example.org:4317',
      unsafeAllowNonLoopback: false,
      alpn: 'auto',
      connectTimeoutMs: 10_000,
      tls: {
        cert: '/etc/mtls/certs/me.chain.pem',
        key: '/etc/mtls/certs/me.key',
        ca: '/etc/mtls/certs/ca.pem',
        minVersion: 'TLSv1.2',
      },
    });
    expect(outboundName(c)).toBe('127.0.0.1:15001');
    expect(outboundName({ ...c, name: 'otel' })).toBe('otel');
  });

  it('unknown keys are errors, naming the key path', () => {
    expect(configError({ listen: '127.0.0.1:1', upstream: 'a:1', tls: { ...tls, verify: false } })).toMatch(
      /^outbound: tls\.verify: /,
    );
    expect(configError({ listen: '127.0.0.1:1', upstream: 'a:1', tls, rejectUnauthorized: false })).toMatch(
      /rejectUnauthorized/,
    );
  });

  it('listen must be loopback unless unsafeAllowNonLoopback: true', () => {
    for (const l of ['127.0.0.1:1', '127.8.9.10:1', 'localhost:1', '[::1]:1'])
      expect(parseOutbound({ listen: l, upstream: 'a:1', tls }).listen).toBe(l);
    for (const l of ['0.0.0.0:1', '10.0.0.1:1', '[::]:1', 'example.org:1'])
      expect(configError({ listen: l, upstream: 'a:1', tls })).toMatch(
        /listen: .* is not a loopback address/,
      );
    expect(
      parseOutbound({ listen: '0.0.0.0:1', upstream: 'a:1', tls, unsafeAllowNonLoopback: true }).listen,
    ).toBe('0.0.0.0:1');
  });

  it('expect is a SPIFFE ID (glob allowed), dns:name or ip:address', () => {
    for (const e of [
      'spiffe://example.org/ns/obs/sa/collector',
      'spiffe://example.org/ns/*/sa/*',
      'dns:otel.example.org',
      'ip:10.0.0.7',
    ])
      expect(parseOutbound({ listen: '127.0.0.1:1', upstream: 'a:1', tls, expect: e }).expect).toBe(e);
    for (const e of ['example.org', 'dns:*.example.org', 'spiffe://', 'uri:https://x', 'cn:collector'])
      expect(configError({ listen: '127.0.0.1:1', upstream: 'a:1', tls, expect: e })).toMatch(
        /^outbound: expect: /,
      );
  });

  it('rejects a listen or upstream that is not host:port, and an unknown alpn', () => {
    expect(configError({ listen: '127.0.0.1', upstream: 'a:1', tls })).toMatch(
      /^outbound: listen: host:port/,
    );
    expect(configError({ listen: '127.0.0.1:1', upstream: 'https://a', tls })).toMatch(
      /^outbound: upstream: /,
    );
    expect(configError({ listen: '127.0.0.1:1', upstream: 'a:1', tls, alpn: 'h3' })).toMatch(
      /^outbound: alpn: /,
    );
  });

  it('has a JSON Schema representation for the committed proxy schema', () => {
    const s = toJSONSchema(OutboundSchema, { io: 'input', unrepresentable: 'any' }) as {
      additionalProperties?: boolean;
      required?: string[];
    };
    expect(s.additionalProperties).toBe(false);
    expect(s.required).toEqual(['listen', 'upstream', 'tls']);
  });

  it('isLoopbackHost', () => {
    expect(isLoopbackHost('127.0.0.1')).toBe(true);
    expect(isLoopbackHost('[::1]')).toBe(true);
    expect(isLoopbackHost('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackHost('128.0.0.1')).toBe(false);
    expect(isLoopbackHost('localhost.example.org')).toBe(false);
  });
});

describe('sniffAlpn', () => {
  const b = (s: string | number[]): Buffer =>
    typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s);
  it('the HTTP/2 connection preface means h2; a prefix of it waits for more', () => {
    expect(sniffAlpn(b('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04'), false)).toBe('h2');
    expect(sniffAlpn(b('PRI * HTTP/2.0'), false)).toBe('h2');
    expect(sniffAlpn(b('PRI * HT'), false)).toBe('more');
    expect(sniffAlpn(b('PRI'), false)).toBe('more');
  });
  it('an HTTP/1 request line means http/1.1', () => {
    for (const m of ['GET', 'POST', 'DELETE', 'OPTIONS', 'PROPFIND'])
      expect(sniffAlpn(b(`${m} /x HTTP/1.1\r\nHost: a\r\n\r\n`), false)).toBe('http/1.1');
    expect(sniffAlpn(b('GE'), false)).toBe('more');
    expect(sniffAlpn(b('GET '), false)).toBe('http/1.1');
  });
  it('anything else, or nothing at the deadline, means no ALPN', () => {
    expect(sniffAlpn(b([0x16, 0x03, 0x01, 0x02, 0x00]), false)).toBe('none'); // a TLS ClientHello
    expect(sniffAlpn(b('*1\r\n$4\r\nPING\r\n'), false)).toBe('none'); // Redis
    expect(sniffAlpn(b([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]), false)).toBe('none'); // PostgreSQL SSLRequest
    expect(sniffAlpn(b(''), true)).toBe('none');
    expect(sniffAlpn(b('GE'), true)).toBe('none');
  });
});

describe('classifyOutboundError', () => {
  const base: ClassifyInput = {
    error: new Error('x'),
    secure: false,
    chain: [],
    trust: [],
    own: undefined,
    expected: 'collector.example.org',
    tcpConnected: true,
    timedOut: false,
    upstream: 'collector.example.org:4317',
  };
  const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
  const c = (code: string, o: Partial<ClassifyInput> = {}) =>
    classifyOutboundError({ ...base, error: err(code), ...o });

  it('network failures', () => {
    expect(c('ECONNREFUSED')).toMatchObject({ reason: 'connect_refused', side: 'network' });
    expect(c('ENOTFOUND')).toMatchObject({ reason: 'connect_failed', side: 'network' });
    expect(c('ETIMEDOUT', { timedOut: true, tcpConnected: false }).detail).toMatch(/No TCP connection/);
    expect(c('ETIMEDOUT', { timedOut: true }).detail).toMatch(/TLS handshake .* did not finish/);
  });

  it('alerts about our certificate say the upstream rejected OUR certificate', () => {
    for (const [code, alert] of [
      ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'certificate required'],
      ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'unknown ca'],
      ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'bad certificate'],
      ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED', 'certificate expired'],
    ] as const) {
      const f = c(code, { secure: true });
      expect(f).toMatchObject({ reason: 'client_cert_rejected', side: 'client', alert });
      expect(f.detail).toContain('rejected our certificate');
    }
  });

  it('protocol problems', () => {
    expect(c('ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL')).toMatchObject({
      reason: 'protocol_mismatch',
      side: 'both',
    });
    expect(c('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION')).toMatchObject({ reason: 'protocol_mismatch' });
    expect(c('ERR_SSL_WRONG_VERSION_NUMBER').detail).toMatch(/does not answer in TLS/);
  });

  it('a silent close is upstream_closed, with the hint about silent refusals', () => {
    expect(c('ECONNRESET').detail).toMatch(/during the TLS handshake/);
    expect(c('UPSTREAM_EOF', { secure: true }).detail).toMatch(/right after the TLS handshake/);
  });

  it("the upstream's certificate, by OpenSSL's code (no chain captured)", () => {
    expect(c('CERT_HAS_EXPIRED')).toMatchObject({ reason: 'expired', side: 'server' });
    expect(c('INVALID_PURPOSE')).toMatchObject({ reason: 'wrong_eku', side: 'server' });
    expect(c('DEPTH_ZERO_SELF_SIGNED_CERT')).toMatchObject({ reason: 'self_signed' });
    expect(c('ERR_TLS_CERT_ALTNAME_INVALID')).toMatchObject({
      reason: 'name_mismatch',
      expected: 'collector.example.org',
      presented: [],
    });
    expect(c('SOMETHING_NEW')).toMatchObject({ reason: 'connect_failed', opensslCode: 'SOMETHING_NEW' });
  });
});
