// mtls ca serve: the online CA (HTTPS API, mTLS API, optional plain HTTP for OCSP/CRL).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { loadCaConfig, loadFileCa, loadTrustPem, startCaServer, type FileCa } from '../ca/index.js';
import { exportPrivateKeyPem, generateKey, spkiOf } from '../pki/index.js';
import { openStore } from '../store/index.js';
import { createLogger } from '../telemetry/index.js';
import { caPassphrase, defaultCaDir, withCaOptions, type CliIo } from './context.js';
import { writeLeaf } from './leaf-output.js';

/**
 * The first admin credential (the admins list defaults to cn:mtls-admin), issued offline once into
 * DIR/admin; returns that directory. `mtls ca serve` and `mtls up` both need it.
 */
export function ensureAdminCredential(fileCa: FileCa, dir: string): string {
  const adminDir = join(dir, 'admin');
  if (!existsSync(join(adminDir, 'mtls-admin.crt'))) {
    const key = generateKey('p256');
    const issued = fileCa.issuer.issue({
      profile: 'client',
      subject: [[{ oid: '2.5.4.3', value: 'mtls-admin' }]],
      publicKey: spkiOf(key),
      ttlMs: 90 * 86_400_000,
    });
    writeLeaf(fileCa, adminDir, 'mtls-admin', issued, exportPrivateKeyPem(key), false);
  }
  return adminDir;
}

export function registerCaServe(
  ca: Command,
  io: CliIo,
  emit: (human: string[], json: unknown) => void,
): void {
  withCaOptions(ca.command('serve'))
    .description('run the CA service: enrollment with one-time tokens, renewal, revocation, CRL, OCSP, audit')
    .option('--config <file>', 'ca.yaml (policy, admins, provisioners, lifetimes)')
    .option('--listen <host:port>', 'public HTTPS listener (enrollment, roots, CRL, OCSP)')
    .option(
      '--mtls-listen <host:port>',
      'HTTPS listener that requires a client certificate (renew, revoke, admin)',
    )
    .option('--http-listen <host:port>', 'plain HTTP listener for roots, CRL and OCSP')
    .option('--db <url>', 'sqlite:PATH (default DIR/ca.db) or postgres://…')
    .option('--log-level <level>', 'info, warn, error, debug', 'info')
    .option('--json', 'print the listening URLs as JSON once ready', false)
    .addHelpText(
      'after',
      `
Example:
  MTLS_CA_PASSPHRASE=… mtls ca serve --dir ./ca --listen 127.0.0.1:8443 --mtls-listen 127.0.0.1:8444 --http-listen 127.0.0.1:8080
Stops cleanly on SIGTERM or Ctrl-C (in-flight requests finish). SIGHUP re-reads ca.pem and a staged
root (mtls ca root stage): /v1/roots then publishes them and the mTLS listener trusts them.`,
    )
    .action(
      async (o: {
        dir?: string;
        passphraseFile?: string;
        config?: string;
        listen?: string;
        mtlsListen?: string;
        httpListen?: string;
        db?: string;
        logLevel: string;
      }) => {
        const config = loadCaConfig(o.config ?? io.env.MTLS_CA_CONFIG, {
          listen: o.listen ?? io.env.MTLS_CA_LISTEN,
          mtlsListen: o.mtlsListen ?? io.env.MTLS_CA_MTLS_LISTEN,
          httpListen: o.httpListen ?? io.env.MTLS_CA_HTTP_LISTEN,
          db: o.db ?? io.env.MTLS_CA_DB,
        });
        const dir = resolve(io.cwd, defaultCaDir(io, o.dir));
        const fileCa = loadFileCa(dir, caPassphrase(io, o.passphraseFile));
        const store = await openStore(config.db ?? `sqlite:${join(dir, 'ca.db')}`);
        const adminDir = ensureAdminCredential(fileCa, dir);
        const logger = createLogger({ level: o.logLevel, name: 'mtls-ca' });
        const running = await startCaServer({ ca: fileCa, store, config, logger });
        // SIGHUP re-reads ca.pem (and a staged root): the roots published at /v1/roots and trusted
        // by the mTLS listener. A new issuer (mtls ca root activate) needs a restart.
        const hup = (): void => {
          try {
            const pem = loadTrustPem(dir, fileCa.rootPem);
            running.reloadTrust(pem);
            logger.warn(
              { event: 'trust_reloaded', roots: (pem.match(/BEGIN CERTIFICATE/g) ?? []).length },
              'SIGHUP: trust bundle reloaded',
            );
          } catch (e) {
            logger.error({ err: e }, `SIGHUP: trust bundle not reloaded: ${(e as Error).message}`);
          }
        };
        process.on('SIGHUP', hup);
        // Signal handlers go in before "ready" is printed: a supervisor may stop us right after.
        const stopped = new Promise<void>((done) => {
          const stop = (): void => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            process.off('SIGHUP', hup);
            void running
              .close()
              .then(() => store.close())
              .finally(done);
          };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });
        emit(
          [
            `CA "${fileCa.meta.name}" ready (store: ${store.kind})`,
            `  enrollment  ${running.publicUrl}`,
            `  mTLS API    ${running.mtlsUrl}   (renew, revoke, admin)`,
            ...(running.httpUrl ? [`  HTTP        ${running.httpUrl}   (roots, CRL, OCSP)`] : []),
            `  root sha256 ${fileCa.meta.rootFingerprint}`,
            `  admin cert  ${join(adminDir, 'mtls-admin.chain.pem')} + mtls-admin.key`,
          ],
          {
            ok: true,
            publicUrl: running.publicUrl,
            mtlsUrl: running.mtlsUrl,
            httpUrl: running.httpUrl ?? null,
            rootFingerprint: fileCa.meta.rootFingerprint,
            store: store.kind,
          },
        );
        await stopped;
      },
    );
}
