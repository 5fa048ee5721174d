// A CRL described for inspect.
import { formatName, parseCrl } from '../pki/index.js';

export function describeCrl(
  der: Buffer,
  at: Date,
): { lines: string[]; data: Record<string, unknown>; problem: boolean } {
  const crl = parseCrl(der);
  const stale = crl.nextUpdate !== undefined && crl.nextUpdate < at;
  const lines = [
    `issuer      ${formatName(crl.issuer)}`,
    `this update ${crl.thisUpdate.toISOString()}`,
    `next update ${crl.nextUpdate ? crl.nextUpdate.toISOString() : '(none)'}${stale ? '  EXPIRED: verifiers that require a fresh CRL will refuse every certificate (crl_expired)' : ''}`,
    ...(crl.crlNumber !== undefined ? [`CRL number  ${String(crl.crlNumber)}`] : []),
    `revoked     ${crl.revoked.length} certificate(s)${
      crl.revoked.length
        ? ': ' +
          crl.revoked
            .slice(0, 5)
            .map((r) => r.serial)
            .join(', ') +
          (crl.revoked.length > 5 ? ', …' : '')
        : ''
    }`,
  ];
  return {
    lines,
    problem: stale,
    data: {
      issuer: formatName(crl.issuer),
      thisUpdate: crl.thisUpdate.toISOString(),
      nextUpdate: crl.nextUpdate?.toISOString() ?? null,
      revoked: crl.revoked.map((r) => ({
        serial: r.serial,
        revokedAt: r.revocationDate.toISOString(),
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
      })),
      expired: stale,
    },
  };
}
