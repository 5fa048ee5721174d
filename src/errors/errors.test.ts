import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorsDoc } from '../../scripts/errors-doc.js';
import { ERROR_CODES, MtlsError, isMtlsError } from './index.js';

describe('error codes', () => {
  it('follow MTLS_<AREA>_<REASON>', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(code).toMatch(/^MTLS_[A-Z0-9]+_[A-Z0-9_]+$/);
  });

  it('docs/errors.md is in sync with the table (regenerate with scripts/errors-doc.ts)', () => {
    const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    expect(doc).toBe(renderErrorsDoc());
  });

  it('keeps the cause for logs but not in JSON', () => {
    const cause = new Error('inner detail');
    const e = new MtlsError('MTLS_PKI_BAD_PEM', 'bad', { fix: 'do this', cause });
    expect(e.cause).toBe(cause);
    expect(e.toJSON()).toEqual({ code: 'MTLS_PKI_BAD_PEM', message: 'bad', fix: 'do this' });
    expect(isMtlsError(e, 'MTLS_PKI_BAD_PEM')).toBe(true);
    expect(isMtlsError(e, 'MTLS_PKI_BAD_DER')).toBe(false);
  });
});
