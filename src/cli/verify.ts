// mtls verify <cert> --ca <bundle>: the verdict, and reasons from the shared catalog.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { readInput } from '../files/index.js';
import {
  formatName,
  parseCrl,
  readCertificates,
  readObjects,
  verifyCertificate,
  type Certificate,
  type Crl,
} from '../pki/index.js';
import { collect, parseTime, usage, type CliIo } from './context.js';

export function registerVerify(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown, code?: number) => void,
): void {
  program
    .command('verify')
    .description(
      'verify a certificate for a purpose and a name against a trust bundle; print the verdict and the reasons',
    )
    .argument(
      '<cert>',
      'the certificate (a chain file works: the first certificate is the leaf, the rest are intermediates)',
    )
    .requiredOption('--ca <bundle>', 'trusted root(s), PEM or DER')
    .option('--untrusted <file>', 'intermediates the peer would send (repeatable)', collect)
    .option('--purpose <purpose>', 'client | server | any', 'any')
    .option('--name <name>', 'expected name: DNS name, IP address or SPIFFE ID / URI')
    .option('--crl <file>', 'CRL(s) to check revocation against (repeatable)', collect)
    .option('--at <time>', 'verify at this ISO time instead of now')
    .option(
      '--strict',
      'also enforce RFC 5280 issuing rules (AKI/SKI, v3, serials, SAN syntax) that OpenSSL-based peers do not check',
      false,
    )
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls verify client.crt --ca ca.pem --untrusted client.chain.pem --purpose client
  mtls verify server.chain.pem --ca ca.pem --purpose server --name api.internal --crl ca.crl
By default the verdict is what an OpenSSL-based peer (nginx, HAProxy, Node, curl) would decide;
--strict adds the RFC 5280 issuing rules checked by the x509-limbo conformance run.
Exit 0 when accepted, 1 when rejected (reasons use the shared vocabulary: expired, wrong_eku, unknown_ca, …).`,
    )
    .action(
      (
        certPath: string,
        o: {
          ca: string;
          untrusted?: string[];
          purpose: string;
          name?: string;
          crl?: string[];
          at?: string;
          strict: boolean;
        },
      ) => {
        if (!['client', 'server', 'any'].includes(o.purpose))
          throw usage(
            `--purpose must be client, server or any, not "${o.purpose}".`,
            'Use --purpose client for a client certificate, --purpose server for a server certificate.',
          );
        const at = parseTime(o.at) ?? new Date();
        const certs = readCertificates(readInput(resolve(io.cwd, certPath), 'certificate'), certPath);
        const leaf = certs[0]!;
        const trust = readCertificates(readInput(resolve(io.cwd, o.ca), 'CA bundle'), o.ca);
        const intermediates: Certificate[] = [...certs.slice(1)];
        for (const f of o.untrusted ?? [])
          intermediates.push(...readCertificates(readInput(resolve(io.cwd, f), 'intermediates file'), f));
        const crls: Crl[] = [];
        for (const f of o.crl ?? []) {
          for (const obj of readObjects(readInput(resolve(io.cwd, f), 'CRL'), f))
            if (obj.kind === 'crl') crls.push(parseCrl(obj.der));
        }
        const result = verifyCertificate(leaf, {
          trust,
          intermediates,
          purpose: o.purpose as 'client' | 'server' | 'any',
          ...(o.name !== undefined ? { name: o.name } : {}),
          at,
          ...(crls.length ? { crls } : {}),
        });
        const subject = formatName(leaf.subject) || '(empty subject)';
        if (result.ok) {
          emit(
            [
              `OK: ${subject} is valid for ${o.purpose === 'any' ? 'any purpose' : o.purpose + ' authentication'}${o.name ? ` as ${o.name}` : ''} at ${at.toISOString()}`,
              `  chain: ${result.chain.map((c) => formatName(c.subject) || '(empty)').join(' → ')}`,
              ...result.warnings.map((w) => `  warning: ${w}`),
            ],
            {
              ok: true,
              subject,
              chain: result.chain.map((c) => formatName(c.subject)),
              warnings: result.warnings,
              at: at.toISOString(),
            },
            0,
          );
          return;
        }
        emit(
          [`REJECTED: ${subject}`, ...result.reasons.map((r) => `  ${r.reason}: ${r.message}`)],
          { ok: false, subject, reasons: result.reasons, at: at.toISOString() },
          1,
        );
      },
    );
}
