import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { GENERATED_DOCS } from '../../scripts/gen-docs.js';
import { ERROR_CODES, MtlsError, isMtlsError } from './index.js';

describe('error codes', () => {
  it('follow MTLS_<AREA>_<REASON>', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(code).toMatch(/^MTLS_[A-Z0-9]+_[A-Z0-9_]+$/);
  });

  it.each(Object.keys(GENERATED_DOCS))(
    '%s is in sync with its table (regenerate: node --import tsx scripts/gen-docs.ts)',
    (path) => {
      const doc = readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
      expect(doc).toBe(GENERATED_DOCS[path]!());
    },
  );

  it('keeps the cause for logs but not in JSON', () => {
    const cause = new Error('inner detail');
    const e = new MtlsError('MTLS_PKI_BAD_PEM', 'bad', { fix: 'do this', cause });
    expect(e.cause).toBe(cause);
    expect(e.toJSON()).toEqual({ code: 'MTLS_PKI_BAD_PEM', message: 'bad', fix: 'do this' });
    expect(isMtlsError(e, 'MTLS_PKI_BAD_PEM')).toBe(true);
    expect(isMtlsError(e, 'MTLS_PKI_BAD_DER')).toBe(false);
  });
});
