import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { forwardHeaders, responseHeaders } from './forward.js';

const hop = [
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'te',
  'trailer',
];
const identity = [
  'x-forwarded-client-cert',
  'x-client-verify',
  'x-client-spiffe-id',
  'x-client-dn',
  'x-client-cert',
];

describe('forwardHeaders', () => {
  it('never passes identity or hop-by-hop headers, nor headers named in Connection (property)', () => {
    const name = fc.oneof(
      fc.constantFrom(...hop, ...identity, 'x-client-anything', 'host', 'accept', 'x-trace'),
      fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/),
    );
    fc.assert(
      fc.property(
        fc.dictionary(name, fc.string({ maxLength: 20 })),
        fc.array(name, { maxLength: 3 }),
        (h, listed) => {
          const incoming = { ...h, ...(listed.length ? { connection: listed.join(', ') } : {}) };
          const out = forwardHeaders(incoming, false);
          for (const k of Object.keys(out)) {
            expect(k === 'x-forwarded-client-cert' || k.startsWith('x-client-')).toBe(false);
            if (k === 'te') expect(out.te).toBe('trailers');
            else expect(hop.includes(k)).toBe(false);
            if (k !== 'te') expect(listed.includes(k)).toBe(false);
          }
          for (const [k, v] of Object.entries(h))
            if (
              !hop.includes(k) &&
              !listed.includes(k) &&
              k !== 'x-forwarded-client-cert' &&
              !k.startsWith('x-client-')
            )
              expect(out[k]).toBe(v);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps te: trailers (gRPC) and maps :authority to host for HTTP/2 clients', () => {
    expect(forwardHeaders({ ':authority': 'api', ':path': '/x', te: 'trailers' }, true)).toEqual({
      host: 'api',
      te: 'trailers',
    });
    expect(forwardHeaders({ te: 'gzip' }, false)).toEqual({});
  });
});

describe('responseHeaders', () => {
  it('drops pseudo and hop-by-hop headers and what Connection names', () => {
    expect(
      responseHeaders({
        ':status': 200,
        connection: 'close, x-drop',
        'x-drop': '1',
        'keep-alive': 'timeout=5',
        a: 'b',
      }),
    ).toEqual({ a: 'b' });
  });
});
