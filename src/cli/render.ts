// Human-readable descriptions of PKI objects, shared by inspect, issue and verify.
import { formatDuration } from '../config/index.js';
import {
  ekuName,
  fingerprint256,
  formatGeneralName,
  formatName,
  isSelfIssued,
  signatureAlgorithmName,
  type Certificate,
} from '../pki/index.js';

export function validityLine(cert: Certificate, now: Date): string {
  const left = cert.notAfter.getTime() - now.getTime();
  const state =
    now < cert.notBefore
      ? `not valid for another ${formatDuration(cert.notBefore.getTime() - now.getTime())}`
      : left <= 0
        ? `EXPIRED ${formatDuration(-left)} ago`
        : `expires in ${formatDuration(left)}`;
  return `${cert.notBefore.toISOString()} → ${cert.notAfter.toISOString()} (${state})`;
}

export function certificateSummary(cert: Certificate): Record<string, unknown> {
  return {
    subject: formatName(cert.subject),
    issuer: formatName(cert.issuer),
    serial: cert.serial,
    notBefore: cert.notBefore.toISOString(),
    notAfter: cert.notAfter.toISOString(),
    key: cert.publicKey.description,
    signatureAlgorithm: signatureAlgorithmName(cert.signatureAlgorithm),
    isCa: cert.basicConstraints?.ca ?? false,
    ...(cert.basicConstraints?.pathLen !== undefined ? { pathLen: cert.basicConstraints.pathLen } : {}),
    selfIssued: isSelfIssued(cert),
    subjectAltNames: cert.subjectAltNames.map(formatGeneralName),
    keyUsage: cert.keyUsage ?? null,
    extendedKeyUsage: cert.extKeyUsage?.map(ekuName) ?? null,
    subjectKeyId: cert.subjectKeyId?.toString('hex') ?? null,
    authorityKeyId: cert.authorityKeyId?.keyId?.toString('hex') ?? null,
    ocsp: cert.ocspUrls,
    caIssuers: cert.caIssuerUrls,
    crlDistributionPoints: cert.crlDistributionPoints,
    sha256Fingerprint: fingerprint256(cert),
  };
}

export function certificateLines(cert: Certificate, now: Date, indent = '  '): string[] {
  const bc = cert.basicConstraints;
  const lines = [
    `subject     ${formatName(cert.subject) || '(empty)'}`,
    `issuer      ${formatName(cert.issuer)}${isSelfIssued(cert) ? ' (self-issued)' : ''}`,
    `serial      ${cert.serial}`,
    `validity    ${validityLine(cert, now)}`,
    `key         ${cert.publicKey.description}, signed with ${signatureAlgorithmName(cert.signatureAlgorithm)}`,
    `CA          ${bc?.ca ? `yes${bc.pathLen !== undefined ? ` (pathLen ${bc.pathLen})` : ' (no pathLen)'}` : 'no'}`,
  ];
  if (cert.subjectAltNames.length)
    lines.push(`SANs        ${cert.subjectAltNames.map(formatGeneralName).join(', ')}`);
  if (cert.keyUsage) lines.push(`key usage   ${cert.keyUsage.join(', ')}`);
  if (cert.extKeyUsage) lines.push(`ext usage   ${cert.extKeyUsage.map(ekuName).join(', ')}`);
  if (cert.ocspUrls.length) lines.push(`OCSP        ${cert.ocspUrls.join(', ')}`);
  if (cert.crlDistributionPoints.length) lines.push(`CRL         ${cert.crlDistributionPoints.join(', ')}`);
  lines.push(`sha256      ${fingerprint256(cert)}`);
  return lines.map((l) => indent + l);
}
