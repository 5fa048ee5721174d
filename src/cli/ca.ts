// mtls ca init | ca sign: the offline CA kept as files.
import { basename, dirname, extname, resolve } from 'node:path';
import type { Command } from 'commander';
import { initFileCa, loadFileCa, refreshRootCrl } from '../ca/index.js';
import { parseDuration } from '../config/index.js';
import { MtlsError } from '../errors/index.js';
import { readInput } from '../files/index.js';
import {
  formatGeneralName,
  formatName,
  commonName,
  getProfile,
  isValidDnsName,
  isValidTrustDomain,
  parseKeyType,
  parseSanList,
  readVerifiedCsr,
  requestedSans,
  type San,
} from '../pki/index.js';
import { isIP } from 'node:net';
import { caPassphrase, collect, defaultCaDir, withCaOptions, type CliIo } from './context.js';
import { checkTrustDomain, LEAF_PROFILES } from './issue.js';
import { registerCaServe } from './ca-serve.js';
import { registerCaRoot } from './ca-root.js';
import { writeLeaf } from './leaf-output.js';

type Emit = (human: string[], json: unknown) => void;

export function registerCa(program: Command, io: CliIo, emit: Emit): Command {
  const ca = program
    .command('ca')
    .description('the certificate authority: offline as files, or online with mtls ca serve');
  registerCaServe(ca, io, emit);
  registerCaRoot(ca, io, emit);

  ca.command('init')
    .description('create a root and an intermediate CA with encrypted keys')
    .option('--dir <dir>', 'CA directory (default $MTLS_CA_DIR or ./mtls-data)')
    .option('--name <name>', 'organisation name used in the CA subjects', 'mtlskit')
    .option('--key-type <type>', 'p256 | p384 | rsa2048 | rsa3072 | rsa4096 | ed25519', 'p256')
    .option(
      '--trust-domain <td>',
      'SPIFFE trust domain this CA issues for (spiffe IDs outside it are refused)',
    )
    .option(
      '--passphrase-file <file>',
      'file whose first line encrypts the CA keys (default $MTLS_CA_PASSPHRASE)',
    )
    .option('--insecure-plaintext-key', 'store the CA keys unencrypted (throw-away test CAs only)', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Example:
  MTLS_CA_PASSPHRASE='long random passphrase' mtls ca init --dir ./ca --name "Example Corp" --trust-domain example.org
Writes root.crt, root.key, intermediate.crt, intermediate.key (both keys encrypted, 0600), ca.pem (trust bundle) and ca.json.`,
    )
    .action(
      (o: {
        dir?: string;
        name: string;
        keyType: string;
        trustDomain?: string;
        passphraseFile?: string;
        insecurePlaintextKey: boolean;
      }) => {
        const keyType = parseKeyType(o.keyType);
        if (o.trustDomain !== undefined && !isValidTrustDomain(o.trustDomain)) {
          throw new MtlsError(
            'MTLS_PKI_BAD_SPIFFE_ID',
            `"${o.trustDomain}" is not a valid SPIFFE trust domain.`,
            {
              fix: 'Use lowercase letters, digits, ".", "-" and "_", e.g. --trust-domain example.org',
            },
          );
        }
        const passphrase = caPassphrase(io, o.passphraseFile);
        const dir = resolve(io.cwd, defaultCaDir(io, o.dir));
        const { meta, files } = initFileCa({
          dir,
          name: o.name,
          keyType,
          ...(o.trustDomain ? { trustDomain: o.trustDomain } : {}),
          ...(passphrase !== undefined ? { passphrase } : {}),
          insecurePlaintextKey: o.insecurePlaintextKey,
        });
        emit(
          [
            `created CA "${o.name}" in ${dir}`,
            `  root fingerprint (sha256) ${meta.rootFingerprint}`,
            `  keys ${meta.keysEncrypted ? 'encrypted with your passphrase' : 'UNENCRYPTED (--insecure-plaintext-key)'}`,
            `  trust bundle: ${resolve(dir, 'ca.pem')}`,
            `next: mtls issue server localhost --dir ${o.dir ?? 'mtls-data'}`,
          ],
          { ok: true, dir, meta, files },
        );
      },
    );

  withCaOptions(ca.command('root-crl'))
    .description(
      "re-sign the root's CRL (root.crl) with the offline root key; ca init makes one valid for a year",
    )
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls ca root-crl --dir ./ca     # yearly, before root.crl expires\nmtls ca serve publishes it with the intermediate CRL at /v1/crl/chain.',
    )
    .action((o: { dir?: string; passphraseFile?: string }) => {
      const r = refreshRootCrl(resolve(io.cwd, defaultCaDir(io, o.dir)), caPassphrase(io, o.passphraseFile));
      emit([`wrote ${r.path} (next update ${r.nextUpdate.toISOString()})`], {
        ok: true,
        path: r.path,
        nextUpdate: r.nextUpdate.toISOString(),
      });
    });

  withCaOptions(ca.command('sign'))
    .description('sign a CSR made anywhere (mtls csr, openssl, Go, Python) with a profile')
    .argument('<csr>', 'the CSR file (PEM or DER)')
    .requiredOption('--profile <profile>', `one of ${LEAF_PROFILES.join(', ')}`)
    .option('--ttl <duration>', 'lifetime, e.g. 24h, 7d', '24h')
    .option('--san <list>', 'SANs to add to those requested (repeatable)', collect)
    .option('--out <dir>', 'where to write <base>.crt and <base>.chain.pem (default: next to the CSR)')
    .option('--force', 'replace existing files', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout api.key -subj /CN=api.internal -out api.csr
  mtls ca sign api.csr --profile server --ttl 7d
Only the names are taken from the CSR; the profile decides every extension.`,
    )
    .action(
      (
        csrPath: string,
        o: {
          profile: string;
          ttl: string;
          san?: string[];
          dir?: string;
          out?: string;
          passphraseFile?: string;
          force: boolean;
        },
      ) => {
        const profile = getProfile(o.profile);
        if (profile.ca) {
          throw new MtlsError(
            'MTLS_PKI_UNKNOWN_PROFILE',
            `CSRs are signed as leaves; "${o.profile}" is a CA profile.`,
            { fix: `Use --profile with one of: ${LEAF_PROFILES.join(', ')}.` },
          );
        }
        const ttlMs = parseDuration(o.ttl, '--ttl');
        const extra = parseSanList(o.san, { allowWildcard: profile.allowWildcard });
        const csrFile = resolve(io.cwd, csrPath);
        const csr = readVerifiedCsr(readInput(csrFile, 'CSR'), csrPath);
        const notes: string[] = [];
        const sans: San[] = [...requestedSans(csr)];
        for (const s of extra) if (!sans.some((x) => x.type === s.type && x.value === s.value)) sans.push(s);
        const cn = commonName(csr.subject);
        if (
          (profile.name === 'server' || profile.name === 'peer') &&
          !sans.some((s) => s.type === 'dns' || s.type === 'ip') &&
          cn
        ) {
          const v = cn.toLowerCase();
          if (isIP(cn)) sans.push({ type: 'ip', value: cn });
          else if (isValidDnsName(v, profile.allowWildcard)) sans.push({ type: 'dns', value: v });
          if (sans.length)
            notes.push(`the CSR had no SAN; added its CN "${cn}" as a SAN (clients match SANs, not the CN)`);
        }
        const fileCa = loadFileCa(defaultCaDir(io, o.dir), caPassphrase(io, o.passphraseFile));
        checkTrustDomain(fileCa, sans);
        const issued = fileCa.issuer.issue({
          profile: profile.name,
          subject: csr.subject,
          sans,
          publicKey: csr.spki,
          ttlMs,
        });
        const base = basename(csrFile, extname(csrFile));
        const files = writeLeaf(
          fileCa,
          o.out ? resolve(io.cwd, o.out) : dirname(csrFile),
          base,
          issued,
          undefined,
          o.force,
        );
        emit(
          [
            `signed ${profile.name} certificate for ${formatName(csr.subject) || sans.map(formatGeneralName).join(', ')} (valid until ${issued.notAfter.toISOString()})`,
            ...(sans.length ? [`  SANs    ${sans.map(formatGeneralName).join(', ')}`] : []),
            `  serial  ${issued.serial}`,
            `  cert    ${files.cert}`,
            `  chain   ${files.chain}   (send this one: leaf + intermediate)`,
            `  trust   ${files.bundle}`,
            ...(csr.requestedExtensions.length
              ? [
                  `  note: ignored requested extensions ${csr.requestedExtensions.join(', ')} (the profile decides)`,
                ]
              : []),
            ...notes.map((n) => `  note: ${n}`),
          ],
          {
            ok: true,
            profile: profile.name,
            serial: issued.serial,
            notAfter: issued.notAfter.toISOString(),
            sans: sans.map(formatGeneralName),
            files,
            notes,
          },
        );
      },
    );
  return ca;
}
