// mtls ca root stage | activate: rotating the CA root without breaking anyone's trust.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { activateStagedRoot, stageRoot } from '../ca/index.js';
import { parseDuration } from '../config/index.js';
import { caPassphrase, defaultCaDir, withCaOptions, type CliIo } from './context.js';

type Emit = (human: string[], json: unknown) => void;

export function registerCaRoot(ca: Command, io: CliIo, emit: Emit): void {
  const root = ca
    .command('root')
    .description('rotate the root: stage a new root (published and trusted first), then activate it');
  withCaOptions(root.command('stage'))
    .description(
      'create the next root + intermediate in <dir>/staged and publish the new root beside the current one',
    )
    .option('--root-ttl <duration>', 'lifetime of the new root', '3650d')
    .option('--intermediate-ttl <duration>', 'lifetime of the new intermediate', '1825d')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Example:
  mtls ca root stage --dir /var/lib/mtls-ca && systemctl reload mtls-ca     # SIGHUP: /v1/roots now lists both roots
  # wait at least one trust.refreshEvery of your agents (mtls agent status shows "trust roots 2")
  mtls ca root activate --dir /var/lib/mtls-ca && systemctl restart mtls-ca`,
    )
    .action((o: { dir?: string; passphraseFile?: string; rootTtl: string; intermediateTtl: string }) => {
      const dir = resolve(io.cwd, defaultCaDir(io, o.dir));
      const r = stageRoot(dir, caPassphrase(io, o.passphraseFile), {
        rootTtlMs: parseDuration(o.rootTtl, '--root-ttl'),
        intermediateTtlMs: parseDuration(o.intermediateTtl, '--intermediate-ttl'),
      });
      emit(
        [
          `staged a new root in ${resolve(dir, 'staged')}`,
          `  new root sha256 ${r.fingerprint}`,
          `  ca.pem now holds the current and the new root`,
          `next: send SIGHUP to mtls ca serve (it then publishes both roots at /v1/roots and trusts both),`,
          `      wait until every agent refreshed its trust bundle, then: mtls ca root activate --dir ${o.dir ?? dir}`,
        ],
        { ok: true, fingerprint: r.fingerprint, files: r.files },
      );
    });
  withCaOptions(root.command('activate'))
    .description('make the staged root + intermediate the issuer (the old pair moves to <dir>/retired/)')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls ca root activate --dir /var/lib/mtls-ca && systemctl restart mtls-ca\nThe old root stays in ca.pem: certificates issued under it keep working until they expire.',
    )
    .action((o: { dir?: string; passphraseFile?: string }) => {
      const dir = resolve(io.cwd, defaultCaDir(io, o.dir));
      const r = activateStagedRoot(dir, caPassphrase(io, o.passphraseFile));
      emit(
        [
          `activated the staged root: new certificates are issued under ${r.fingerprint}`,
          `  previous root ${r.previousFingerprint} kept in ca.pem; its files are in ${r.retiredDir}`,
          'next: restart mtls ca serve (it issues with the new intermediate from its next start)',
        ],
        { ok: true, ...r },
      );
    });
}
