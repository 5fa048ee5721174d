import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { parseProxyConfig, unsupportedFeatures } from './config.js';

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
    expect(unsupportedFeatures(c)).toEqual([]);
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

  it('lists what this version does not run', () => {
    const c = parseProxyConfig({
      listeners: [{ ...listener, protocol: 'tcp', upstream: 'tcp://127.0.0.1:9000' }],
      outbound: [{ listen: '127.0.0.1:1', upstream: 'x:1', tls: { cert: 'a', key: 'b', ca: 'c' } }],
    });
    expect(unsupportedFeatures(c)).toEqual([
      'outbound',
      'listeners.0.protocol: tcp',
      'listeners.0.upstream (only http://host:port)',
    ]);
  });
});
