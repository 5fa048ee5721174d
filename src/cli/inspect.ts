// mtls inspect <file…>: what each PEM/DER object is, its names, dates, usages, which profiles it
// is fit for, and lint findings.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { MtlsError } from '../errors/index.js';
import { readInput } from '../files/index.js';
import {
  detectRole,
  fitProfiles,
  formatGeneralName,
  formatName,
  getProfile,
  isSignedBy,
  keyMatchesSpki,
  lintCertificate,
  readObjects,
  verifyCsr,
  type Certificate,
  type LintFinding,
  type PkiObject,
  type ProfileName,
} from '../pki/index.js';
import { describeCrl } from './crl-summary.js';
import { parseTime, type CliIo } from './context.js';
import { certificateLines, certificateSummary } from './render.js';

interface FileReport {
  file: string;
  objects: Record<string, unknown>[];
  error?: Record<string, unknown>;
}

function chainNote(certs: Certificate[]): string | undefined {
  if (certs.length < 2) return undefined;
  const ordered = certs.every(
    (c, i) => i === certs.length - 1 || c.issuerDer.equals(certs[i + 1]!.subjectDer),
  );
  if (ordered) return `${certs.length} certificates in leaf → issuer order`;
  return `${certs.length} certificates, NOT in leaf → issuer order (servers must send the leaf first, then each issuer)`;
}

export function registerInspect(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown, code?: number) => void,
): void {
  program
    .command('inspect')
    .description(
      'say what each file is: certificates, chains, keys, CSRs, CRLs, with names, dates, usages and lint findings',
    )
    .argument('<files...>', 'PEM or DER files')
    .option(
      '--role <profile>',
      'lint certificates for this role (server, client, spiffe, peer, intermediate, root) instead of the detected one',
    )
    .option('--at <time>', 'judge validity at this ISO time instead of now')
    .option(
      '--passphrase-file <file>',
      'passphrase to open encrypted keys (to check they match a certificate)',
    )
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExamples:\n  mtls inspect server.chain.pem server.key\n  mtls inspect --role client client.crt --json',
    )
    .action((files: string[], o: { role?: string; at?: string; passphraseFile?: string }) => {
      const role: ProfileName | undefined = o.role ? getProfile(o.role).name : undefined;
      const at = parseTime(o.at) ?? new Date();
      const passphrase = o.passphraseFile
        ? readInput(o.passphraseFile, 'passphrase file').toString('utf8').split(/\r?\n/)[0]
        : undefined;
      const reports: FileReport[] = [];
      const human: string[] = [];
      let problems = false;
      const allCerts: { file: string; cert: Certificate }[] = [];
      const keys: { file: string; obj: Extract<PkiObject, { kind: 'private-key' }> }[] = [];
      for (const file of files) {
        const report: FileReport = { file, objects: [] };
        reports.push(report);
        let objs: PkiObject[];
        try {
          objs = readObjects(readInput(resolve(io.cwd, file), 'file'), file, passphrase);
        } catch (e) {
          if (!(e instanceof MtlsError)) throw e;
          problems = true;
          report.error = e.toJSON();
          human.push(`${file}: ${e.code}: ${e.message}`, `  fix: ${e.fix ?? ''}`, '');
          continue;
        }
        const certs = objs
          .filter((x): x is Extract<PkiObject, { kind: 'certificate' }> => x.kind === 'certificate')
          .map((x) => x.cert);
        const note = chainNote(certs);
        human.push(
          `${file}: ${objs.length === 1 ? describeKind(objs[0]!) : `${objs.length} objects`}${note ? ` (${note})` : ''}`,
        );
        objs.forEach((obj, i) => {
          const prefix = objs.length > 1 ? `  [${i + 1}] ${describeKind(obj)}` : undefined;
          if (prefix) human.push(prefix);
          const indent = objs.length > 1 ? '      ' : '  ';
          switch (obj.kind) {
            case 'certificate': {
              const cert = obj.cert;
              allCerts.push({ file, cert });
              const issuer = certs.find(
                (c) => c !== cert && c.subjectDer.equals(cert.issuerDer) && isSignedBy(cert, c),
              );
              const findings = lintCertificate(cert, {
                ...(role ? { role } : {}),
                ...(issuer ? { issuer } : {}),
                at,
              });
              const fit = fitProfiles(cert);
              if (findings.some((f) => f.severity === 'error')) problems = true;
              human.push(
                ...certificateLines(cert, at, indent),
                `${indent}fit for     ${fit.length ? fit.join(', ') : 'no mtlskit profile'}`,
              );
              human.push(...lintLines(findings, indent, role ?? detectRole(cert)));
              report.objects.push({
                kind: 'certificate',
                ...certificateSummary(cert),
                role: role ?? detectRole(cert),
                fitProfiles: fit,
                lint: findings,
              });
              break;
            }
            case 'csr': {
              let signature = 'valid';
              try {
                verifyCsr(obj.csr);
              } catch (e) {
                signature = e instanceof MtlsError ? `INVALID (${e.message})` : 'INVALID';
                problems = true;
              }
              const sans = obj.csr.subjectAltNames.map(formatGeneralName);
              human.push(
                `${indent}subject     ${formatName(obj.csr.subject) || '(empty)'}`,
                `${indent}key         ${obj.csr.publicKey.description}`,
                `${indent}SANs        ${sans.join(', ') || '(none)'}`,
                `${indent}signature   ${signature}`,
              );
              report.objects.push({
                kind: 'csr',
                subject: formatName(obj.csr.subject),
                key: obj.csr.publicKey.description,
                subjectAltNames: sans,
                signatureValid: signature === 'valid',
              });
              break;
            }
            case 'private-key':
              keys.push({ file, obj });
              human.push(
                `${indent}${obj.description ?? 'private key'}, ${obj.format}${obj.encrypted ? ', encrypted' : ', NOT encrypted'}`,
              );
              report.objects.push({
                kind: 'private-key',
                format: obj.format,
                encrypted: obj.encrypted,
                ...(obj.description ? { key: obj.description } : {}),
              });
              break;
            case 'public-key':
              human.push(`${indent}${obj.description}`);
              report.objects.push({ kind: 'public-key', key: obj.description });
              break;
            case 'crl': {
              const { lines, data, problem } = describeCrl(obj.der, at);
              if (problem) problems = true;
              human.push(...lines.map((l) => indent + l));
              report.objects.push({ kind: 'crl', ...data });
              break;
            }
            case 'unknown':
              human.push(`${indent}PEM block "${obj.label}" (not something mtlskit reads)`);
              report.objects.push({ kind: 'unknown', label: obj.label });
              break;
          }
        });
        human.push('');
      }
      // Key ↔ certificate pairing across the files given.
      for (const k of keys) {
        if (!k.obj.key) continue;
        const match = allCerts.find((c) => keyMatchesSpki(k.obj.key!, c.cert.spki));
        if (match)
          human.push(
            `${k.file}: the private key matches ${match.file} (${formatName(match.cert.subject) || 'certificate'})`,
          );
        else if (allCerts.length) {
          problems = true;
          human.push(
            `${k.file}: the private key matches NONE of the certificates given (key_mismatch)`,
            '  fix: use the key that was generated with the certificate, or issue a new certificate for this key',
          );
        }
      }
      emit(human, { ok: !problems, files: reports }, problems ? 1 : 0);
    });
}

function describeKind(obj: PkiObject): string {
  switch (obj.kind) {
    case 'certificate':
      return obj.cert.basicConstraints?.ca ? 'CA certificate' : 'certificate';
    case 'csr':
      return 'certificate signing request';
    case 'private-key':
      return 'private key';
    case 'public-key':
      return 'public key';
    case 'crl':
      return 'certificate revocation list';
    case 'unknown':
      return `unknown (${obj.label})`;
  }
}

function lintLines(findings: LintFinding[], indent: string, role: ProfileName): string[] {
  if (findings.every((f) => f.severity === 'info')) {
    return [
      `${indent}lint        clean for role ${role} (${getProfile(role).summary})`,
      ...findings.map((f) => `${indent}  info    ${f.code}: ${f.message}`),
    ];
  }
  return [
    `${indent}lint (role ${role}):`,
    ...findings.flatMap((f) => [
      `${indent}  ${f.severity.padEnd(7)} ${f.code}: ${f.message}`,
      `${indent}          fix: ${f.fix}`,
    ]),
  ];
}
