// mtls doctor config FILE: reads an nginx, HAProxy, Envoy or OpenTelemetry Collector config, checks the
// files it names and its mTLS settings, and with the client's files simulates the pair against it.
import { readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import {
  CONFIG_FORMATS,
  checkConfig,
  readConfig,
  suggestName,
  type ConfigFormat,
  type ConfigSource,
} from '../doctor/index.js';
import { readInput } from '../files/index.js';
import { parseTime, usage, type CliIo } from './context.js';
import { finish, input, opt, passphrase, type Emit } from './doctor.js';

/** Files the config names, read relative to the current directory; never throws. */
function fileSource(io: CliIo): ConfigSource {
  return {
    read(path) {
      try {
        return readFileSync(resolve(io.cwd, path));
      } catch {
        return undefined;
      }
    },
    list(pattern) {
      const dir = dirname(pattern);
      const glob = basename(pattern);
      const re = new RegExp(
        `^${glob
          .replace(/[.+^${}()|\\]/g, '\\$&')
          .replace(/\*/g, '[^/]*')
          .replace(/\?/g, '[^/]')}$`,
      );
      try {
        return readdirSync(resolve(io.cwd, dir))
          .filter((f) => re.test(f))
          .sort()
          .map((f) => `${dir}/${f}`);
      } catch {
        return [];
      }
    },
  };
}

export function registerDoctorConfig(doctor: Command, io: CliIo, emit: Emit): void {
  doctor
    .command('config')
    .description(
      'check an nginx, HAProxy, Envoy or OpenTelemetry Collector config: the files it names, its mTLS settings, and (with the client files) the pair',
    )
    .argument('<file>', 'the config file (nginx.conf, haproxy.cfg, envoy.yaml, otel-collector.yaml)')
    .option('--format <format>', `${CONFIG_FORMATS.join(' | ')} (default: detected from the content)`)
    .option('--client-cert <file>', "the client's certificate (curl --cert); omit when it has none")
    .option('--client-key <file>', "the client's key (curl --key)")
    .option('--client-chain <file>', 'intermediates the client sends, when not in --client-cert')
    .option(
      '--client-ca <file>',
      'what the CLIENT trusts to verify the server (curl --cacert); turns on the pair simulation',
    )
    .option('--server-ca <file>', 'the same file under its pair-mode name (what verifies the server)')
    .option('--name <host>', 'the host name the client connects to (default: the first server_name)')
    .option(
      '--passphrase-file <file>',
      'first line opens encrypted keys (after the config’s own password file)',
    )
    .option('--at <time>', 'judge validity at this ISO time instead of now')
    .option('--json', 'print { ok, failingSide, findings } as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls doctor config /etc/nginx/nginx.conf
  mtls doctor config nginx.conf --client-cert alice.chain.pem --client-key alice.key \\
    --client-ca server-ca.pem --name api.internal
  mtls doctor config otel-collector.yaml --format otel --json
Without client files the config's own files and settings are checked; with --client-ca (and usually
--client-cert/--client-key) the client is also simulated against the listener serving --name, with
the config's ssl_verify_depth, ssl_crl and client CA. Exit 0 when nothing breaks, 1 when problems are
found, 2 on usage errors (an unparsable config names its line). Codes: docs/doctor.md.`,
    )
    .action(
      (
        file: string,
        o: {
          format?: string;
          clientCert?: string;
          clientKey?: string;
          clientChain?: string;
          clientCa?: string;
          serverCa?: string;
          name?: string;
          passphraseFile?: string;
          at?: string;
        },
      ) => {
        if (o.format !== undefined && !(CONFIG_FORMATS as readonly string[]).includes(o.format))
          throw usage(
            `--format must be one of ${CONFIG_FORMATS.join(', ')}, not "${o.format}".`,
            'Use --format nginx, haproxy, envoy or otel (or leave it out to detect it).',
          );
        if (o.clientCa !== undefined && o.serverCa !== undefined && o.clientCa !== o.serverCa)
          throw usage(
            '--client-ca and --server-ca name the same file here (what the client trusts for the server); give one.',
            'Keep --client-ca FILE.',
          );
        const clientCa = o.clientCa ?? o.serverCa;
        if (o.clientKey !== undefined && o.clientCert === undefined)
          throw usage(
            '--client-key needs --client-cert.',
            'Give the client certificate with --client-cert FILE.',
          );
        if ((o.clientCert !== undefined || o.clientChain !== undefined) && clientCa === undefined)
          throw usage(
            'Simulating the client needs the bundle it trusts for the server: --client-ca.',
            'Add --client-ca FILE (what curl gets as --cacert).',
          );
        const at = parseTime(o.at) ?? new Date();
        const pass = passphrase(io, o.passphraseFile);
        const source = fileSource(io);
        const data = readInput(resolve(io.cwd, file), 'config file');
        const parsed = readConfig(file, data, source, o.format as ConfigFormat | undefined);
        let name = o.name;
        if (clientCa !== undefined && name === undefined) {
          name = suggestName(parsed);
          if (name === undefined)
            throw usage(
              'The config names no host (server_name), so the doctor needs the name the client connects to.',
              'Add --name HOST.',
            );
        }
        const report = checkConfig({
          parsed,
          source,
          ...(clientCa !== undefined
            ? {
                client: {
                  ...opt('cert', input(io, o.clientCert, 'client certificate')),
                  ...opt('key', input(io, o.clientKey, 'client key')),
                  ...opt('chain', input(io, o.clientChain, 'client chain')),
                  ca: input(io, clientCa, 'client CA bundle (what the client trusts)')!,
                },
              }
            : {}),
          ...opt('name', name),
          ...opt('passphrase', pass),
          at,
        });
        finish(emit, 'config', report);
      },
    );
}
