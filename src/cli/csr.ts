// mtls csr <name>: a key (or an existing one) and a CSR for it.
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { MtlsError } from '../errors/index.js';
import { readInput, readPassphraseFile, writeFilesAtomic, type PlannedFile } from '../files/index.js';
import {
  createCsr,
  exportPrivateKeyPem,
  formatGeneralName,
  generateKey,
  parseKeyType,
  parseName,
  parseSanList,
  readPrivateKey,
} from '../pki/index.js';
import { collect, type CliIo } from './context.js';
import { safeBaseName } from './leaf-output.js';

export function registerCsr(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown) => void,
): void {
  program
    .command('csr')
    .description('create a certificate signing request (the key stays here)')
    .argument('<name>', 'CN of the request (a SPIFFE ID becomes the URI SAN instead)')
    .option('--san <list>', 'SANs: dns:NAME,ip:ADDR,uri:URI,email:ADDR (repeatable)', collect)
    .option('--subject <dn>', 'subject DN instead of CN=<name>')
    .option('--key <file>', 'use this private key instead of generating one')
    .option('--key-passphrase-file <file>', 'passphrase for an encrypted --key')
    .option('--key-type <type>', 'type of the generated key', 'p256')
    .option('--out <dir>', 'where to write <name>.csr (and <name>.key)', '.')
    .option('--force', 'replace existing files', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls csr api.internal --san dns:api.internal,ip:10.0.0.5
  mtls csr payments --key payments.key
Then: mtls ca sign api.internal.csr --profile server`,
    )
    .action(
      (
        name: string,
        o: {
          san?: string[];
          subject?: string;
          key?: string;
          keyPassphraseFile?: string;
          keyType: string;
          out: string;
          force: boolean;
        },
      ) => {
        const sans = parseSanList(o.san, { allowWildcard: true });
        const spiffe = name.startsWith('spiffe://');
        if (spiffe && !sans.some((s) => s.type === 'uri' && s.value === name))
          sans.unshift(...parseSanList(`uri:${name}`));
        const subject =
          o.subject !== undefined ? parseName(o.subject) : spiffe ? [] : [[{ oid: '2.5.4.3', value: name }]];
        if (subject.length === 0 && sans.length === 0) {
          throw new MtlsError('MTLS_CLI_USAGE', 'The CSR would carry no name.', {
            fix: 'Give a name or --san.',
          });
        }
        let key;
        let generated = false;
        if (o.key) {
          const pass = o.keyPassphraseFile ? readPassphraseFile(o.keyPassphraseFile) : undefined;
          key = readPrivateKey(readInput(resolve(io.cwd, o.key), 'key'), pass, o.key).key;
        } else {
          key = generateKey(parseKeyType(o.keyType));
          generated = true;
        }
        const csr = createCsr({ key, subject, sans });
        const out = resolve(io.cwd, o.out);
        const base = safeBaseName(name);
        const files: PlannedFile[] = [{ path: join(out, `${base}.csr`), data: csr.pem }];
        if (generated)
          files.unshift({ path: join(out, `${base}.key`), data: exportPrivateKeyPem(key), mode: 0o600 });
        writeFilesAtomic(files, { overwrite: o.force });
        emit(
          [
            `wrote ${files.map((f) => f.path).join(' and ')}`,
            ...(sans.length ? [`  SANs ${sans.map(formatGeneralName).join(', ')}`] : []),
            `next: mtls ca sign ${join(o.out, base + '.csr')} --profile server|client|peer|spiffe`,
          ],
          { ok: true, files: files.map((f) => f.path), sans: sans.map(formatGeneralName) },
        );
      },
    );
}
