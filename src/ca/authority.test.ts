import { describe, expect, it } from 'vitest';
import { normalizeSerial, parseToken } from './authority.js';

describe('normalizeSerial', () => {
  it.each([
    ['01a2', '01a2'],
    ['1a2', '01a2'],
    ['00:01:A2', '01a2'],
    ['0x00ff', 'ff'],
    ['00', '00'],
  ])('%s → %s', (input, out) => expect(normalizeSerial(input)).toBe(out));
});

describe('parseToken', () => {
  it('splits a well-formed token and refuses anything else', () => {
    expect(parseToken(`mtls_abcdefgh12.${'x'.repeat(43)}`)).toEqual({
      id: 'abcdefgh12',
      secret: 'x'.repeat(43),
    });
    expect(parseToken('mtls_short.x')).toBeUndefined();
    expect(parseToken('Bearer abc')).toBeUndefined();
  });
});
