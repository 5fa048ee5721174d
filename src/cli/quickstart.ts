// mtls quickstart: a CA in ./mtls-data (once), a server certificate for localhost and a client
// certificate, and how to use them with curl and nginx. The main job on embedded defaults.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { caExists, initFileCa, loadFileCa, type FileCa } from '../ca/index.js';
import { parseDuration } from '../config/index.js';
import { writeFileAtomic } from '../files/index.js';
import { exportPrivateKeyPem, generateKey, parseSanList, spkiOf } from '../pki/index.js';
import { defaultCaDir, type CliIo } from './context.js';
import { writeLeaf } from './leaf-output.js';

const PASSPHRASE_FILE = 'passphrase';

export interface LocalCa {
  dir: string;
  ca: FileCa;
  created: boolean;
  notes: string[];
}

/**
 * The local CA of `mtls quickstart` and `mtls up`: created once in DIR (default ./mtls-data) with a
 * generated passphrase in DIR/passphrase (0600) unless MTLS_CA_PASSPHRASE is set, then reused.
 */
export function openLocalCa(
  io: CliIo,
  dirOpt: string | undefined,
  name: string,
  trustDomain?: string,
): LocalCa {
  const dir = resolve(io.cwd, defaultCaDir(io, dirOpt));
  const notes: string[] = [];
  let passphrase = io.env.MTLS_CA_PASSPHRASE || undefined;
  const passFile = join(dir, PASSPHRASE_FILE);
  let created = false;
  if (!caExists(dir)) {
    if (!passphrase) {
      passphrase = randomBytes(24).toString('base64url');
      notes.push(
        `MTLS_CA_PASSPHRASE was not set: generated one in ${relative(io.cwd, passFile)} (0600). For a real CA, set MTLS_CA_PASSPHRASE and keep it elsewhere.`,
      );
    }
    initFileCa({ dir, name, keyType: 'p256', passphrase, ...(trustDomain ? { trustDomain } : {}) });
    if (!io.env.MTLS_CA_PASSPHRASE) writeFileAtomic(passFile, passphrase + '\n', 0o600);
    created = true;
  } else if (!passphrase && existsSync(passFile)) {
    passphrase = readFileSync(passFile, 'utf8').split(/\r?\n/)[0];
  }
  return { dir, ca: loadFileCa(dir, passphrase), created, notes };
}

export function registerQuickstart(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown) => void,
): void {
  program
    .command('quickstart')
    .description(
      'create a CA (once), a localhost server certificate and a client certificate, and show how to use them',
    )
    .option('--dir <dir>', 'CA directory (default $MTLS_CA_DIR or ./mtls-data)')
    .option('--ttl <duration>', 'lifetime of the two leaf certificates', '24h')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls quickstart            # then follow the printed curl and nginx lines',
    )
    .action((o: { dir?: string; ttl: string }) => {
      const ttlMs = parseDuration(o.ttl, '--ttl');
      const { dir, ca, created, notes } = openLocalCa(io, o.dir, 'mtlskit quickstart');
      const out = join(dir, 'quickstart');
      const serverKey = generateKey('p256');
      const server = ca.issuer.issue({
        profile: 'server',
        subject: [[{ oid: '2.5.4.3', value: 'localhost' }]],
        sans: parseSanList('dns:localhost,ip:127.0.0.1,ip:::1'),
        publicKey: spkiOf(serverKey),
        ttlMs,
      });
      const clientKey = generateKey('p256');
      const client = ca.issuer.issue({
        profile: 'client',
        subject: [[{ oid: '2.5.4.3', value: 'demo-client' }]],
        publicKey: spkiOf(clientKey),
        ttlMs,
      });
      const s = writeLeaf(ca, out, 'server', server, exportPrivateKeyPem(serverKey), true);
      const c = writeLeaf(ca, out, 'client', client, exportPrivateKeyPem(clientKey), true);
      const r = (p: string): string => relative(io.cwd, p) || '.';
      emit(
        [
          created
            ? `created a CA in ${r(dir)} (root sha256 ${ca.meta.rootFingerprint})`
            : `using the CA in ${r(dir)} (root sha256 ${ca.meta.rootFingerprint})`,
          ...notes.map((n) => `note: ${n}`),
          `issued (valid until ${server.notAfter.toISOString()}):`,
          `  server  ${r(s.chain)} + ${r(s.key!)}   (localhost, 127.0.0.1, ::1; serverAuth)`,
          `  client  ${r(c.chain)} + ${r(c.key!)}   (CN=demo-client; clientAuth)`,
          `  trust   ${r(s.bundle)}`,
          '',
          'nginx (server block):',
          `  ssl_certificate         ${s.chain};`,
          `  ssl_certificate_key     ${s.key};`,
          `  ssl_client_certificate  ${s.bundle};`,
          '  ssl_verify_client       on;',
          '  ssl_verify_depth        2;',
          '',
          'curl (client):',
          `  curl --cacert ${r(s.bundle)} --cert ${r(c.chain)} --key ${r(c.key!)} https://localhost:8443/`,
          '',
          'check them:',
          `  mtls verify ${r(c.cert)} --ca ${r(s.bundle)} --untrusted ${r(c.chain)} --purpose client`,
          `  mtls inspect ${r(s.chain)}`,
        ],
        {
          ok: true,
          created,
          dir,
          rootFingerprint: ca.meta.rootFingerprint,
          server: s,
          client: c,
          notAfter: server.notAfter.toISOString(),
          notes,
        },
      );
    });
}
