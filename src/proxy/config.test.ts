import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { parseProxyConfig, parseUpstream } from './config.js';

const listener = {
  name: 'api',
  listen: '127.0.0.1:0',
  tls: { cert: 'certs/api.chain.pem', key: 'certs/api.key', clientCa: 'certs/ca.pem' },
  upstream: 'http://127.0.0.1:8080',
  allow: [{ identity: 'any' }],
};

function errorOf(input: unknown): { code: string; message: string } {
  try {
    parseProxyConfig(input, 'proxy.yaml', '/etc/mtls');
  } catch (e) {
    if (isMtlsError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('no error');
}

describe('parseProxyConfig', () => {
  it('applies defaults, resolves paths against the config directory and freezes', () => {
    const c = parseProxyConfig({ listeners: [listener] }, 'proxy.yaml', '/etc/mtls');
    const l = c.listeners[0]!;
    expect(l).toMatchObject({
      mode: 'strict',
      protocol: 'http',
      explain: false,
      identity: { headers: 'xfcc' },
    });
    expect(l.tls).toMatchObject({
      cert: '/etc/mtls/certs/api.chain.pem',
      clientCa: '/etc/mtls/certs/ca.pem',
      minVersion: 'TLSv1.2',
    });
    expect(Object.isFrozen(l.tls)).toBe(true);
  });

  it('names an unknown key with its path', () => {
    const e = errorOf({ listeners: [{ ...listener, tls: { ...listener.tls, clientCA: 'x' } }] });
    expect(e.code).toBe('MTLS_CONFIG_INVALID');
    expect(e.message).toContain('listeners.0.tls.clientCA');
  });

  it('refuses a strict listener without allow rules', () => {
    const { allow: _allow, ...noRules } = listener;
    const e = errorOf({ listeners: [noRules] });
    expect(e).toMatchObject({ code: 'MTLS_CONFIG_INVALID' });
    expect(e.message).toContain('listeners.0.allow');
    expect(
      parseProxyConfig({ listeners: [{ ...noRules, mode: 'permissive' }] }).listeners[0]!.allow,
    ).toBeUndefined();
  });

  it('refuses duplicate names, bad methods and bad identities', () => {
    expect(errorOf({ listeners: [listener, listener] }).message).toContain('used twice');
    expect(
      errorOf({ listeners: [{ ...listener, allow: [{ identity: 'any', methods: ['FETCH'] }] }] }).message,
    ).toContain('listeners.0.allow.0.methods.0');
    expect(errorOf({ listeners: [{ ...listener, allow: [{ identity: 'payment' }] }] }).message).toContain(
      'listeners.0.allow.0.identity',
    );
  });

  it('checks upstreams per protocol and keeps tcp rules to identities', () => {
    const tcp = { ...listener, protocol: 'tcp', upstream: 'tcp://127.0.0.1:9000' };
    expect(parseUpstream(parseProxyConfig({ listeners: [tcp] }).listeners[0]!)).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 9000,
    });
    expect(errorOf({ listeners: [{ ...tcp, upstream: 'http://127.0.0.1:1' }] }).message).toContain(
      'listeners.0.upstream',
    );
    expect(
      errorOf({ listeners: [{ ...tcp, allow: [{ identity: 'any', paths: ['/x'] }] }] }).message,
    ).toContain('listeners.0.allow.0');
    expect(
      errorOf({ listeners: [{ ...listener, identity: { headers: 'xfcc', proxyProtocol: 'v2' } }] }).message,
    ).toContain('identity.proxyProtocol');
    for (const [upstream, kind] of [
      ['http://127.0.0.1:8080', 'http'],
      ['h2c://127.0.0.1:50051', 'h2c'],
      ['unix:/run/app.sock', 'unix'],
    ] as const)
      expect(parseUpstream({ protocol: 'http', upstream }).kind).toBe(kind);
    for (const bad of ['http://127.0.0.1:8080/api', 'ftp://x:1', 'unix:relative.sock'])
      expect(errorOf({ listeners: [{ ...listener, upstream: bad }] }).message).toContain('upstream');
  });

  it('parses revocation, limits and sessions with defaults and resolves their paths', () => {
    const c = parseProxyConfig(
      {
        listeners: [{ ...listener, revocation: { crl: 'ca.crl', feed: 'https://ca.internal:8443' } }],
        sessions: { ticketKeyFile: 'ticket.key', rotateEvery: '30m' },
      },
      'proxy.yaml',
      '/etc/mtls',
    );
    const l = c.listeners[0]!;
    expect(l.revocation).toMatchObject({ crl: ['/etc/mtls/ca.crl'], failMode: 'closed', staleAfter: 30_000 });
    expect(l.limits).toMatchObject({ handshakeTimeout: 10_000, maxHeaderSize: 16_384 });
    expect(c.sessions).toEqual({ ticketKeyFile: '/etc/mtls/ticket.key', rotateEvery: 1_800_000 });
    expect(errorOf({ listeners: [{ ...listener, revocation: { failMode: 'open' } }] }).message).toContain(
      'listeners.0.revocation',
    );
    expect(errorOf({ listeners: [{ ...listener, limits: { idleTimeout: 'soon' } }] }).message).toContain(
      'listeners.0.limits.idleTimeout',
    );
    expect(parseProxyConfig({ listeners: [{ ...listener, allow: 'any' }] }).listeners[0]!.allow).toBe('any');
  });
});
