import { describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import { parseAgentConfig } from './config.js';

const ca = { url: 'https://ca.internal:8443', mtlsUrl: 'https://ca.internal:8444', caFile: 'ca.pem' };
const catchErr = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

describe('agent.yaml', () => {
  it('fills the defaults and resolves paths against the config directory', () => {
    const c = parseAgentConfig(
      {
        ca,
        identities: [
          { name: 'api', dir: 'ids/api', token: 't', hooks: [{ signal: 'HUP', pidFile: 'nginx.pid' }] },
        ],
      },
      'agent.yaml',
      '/etc/mtls',
    );
    const id = c.identities[0]!;
    expect(id).toMatchObject({
      dir: '/etc/mtls/ids/api',
      keyType: 'p256',
      renewAt: 2 / 3,
      jitter: 0.05,
      mode: 0o600,
      reenroll: false,
    });
    expect(id.hooks[0]).toEqual({ signal: 'HUP', pidFile: '/etc/mtls/nginx.pid' });
    expect(c.ca.caFile).toBe('/etc/mtls/ca.pem');
    expect(c.retry).toEqual({ initial: 1000, max: 300_000 });
    expect(c.trust.refreshEvery).toBe(3_600_000);
    expect(Object.isFrozen(c.identities[0])).toBe(true);
  });

  it.each([
    ['an unknown key', { ca, identities: [{ name: 'a', dir: 'd', tokn: 'x' }] }, /identities\.0/],
    [
      'token and tokenFile',
      { ca, identities: [{ name: 'a', dir: 'd', token: 'x', tokenFile: 'f' }] },
      /not both/,
    ],
    [
      'reenroll without tokenFile',
      { ca, identities: [{ name: 'a', dir: 'd', token: 'x', reenroll: true }] },
      /reenroll needs tokenFile/,
    ],
    [
      'no trust for the CA',
      { ca: { url: ca.url, mtlsUrl: ca.mtlsUrl }, identities: [{ name: 'a', dir: 'd' }] },
      /rootFingerprint or caFile/,
    ],
    ['a bad duration', { ca, identities: [{ name: 'a', dir: 'd', ttl: '1 day' }] }, /duration/],
    ['a bad mode', { ca, identities: [{ name: 'a', dir: 'd', mode: '0999' }] }, /octal/],
    [
      'two identities in one dir',
      {
        ca,
        identities: [
          { name: 'a', dir: 'd' },
          { name: 'b', dir: 'd' },
        ],
      },
      /dirs must differ/,
    ],
    [
      'a plain-http CA URL',
      { ca: { ...ca, url: 'http://ca:8080' }, identities: [{ name: 'a', dir: 'd' }] },
      /ca\.url/,
    ],
  ])('refuses %s', (_what, doc, message) => {
    const e = catchErr(() => parseAgentConfig(doc));
    expect(isMtlsError(e, 'MTLS_CONFIG_INVALID')).toBe(true);
    expect((e as Error).message).toMatch(message);
  });
});
