// The mtls command line: one commander program; each command lives in its own file and only
// computes; rendering, errors and exit codes are handled here.
import { Command, CommanderError } from 'commander';
import { MtlsError } from '../errors/index.js';
import { registerCa } from './ca.js';
import { registerCaClient } from './ca-client.js';
import { renderError, exitCodeFor, type CliIo } from './context.js';
import { registerCsr } from './csr.js';
import { registerDoctor } from './doctor.js';
import { registerInspect } from './inspect.js';
import { registerProxy } from './proxy.js';
import { registerIssue } from './issue.js';
import { registerQuickstart } from './quickstart.js';
import { registerVerify } from './verify.js';

export const VERSION = '0.1.0';

export interface Emitter {
  (human: string[], json: unknown, exitCode?: number): void;
}

/** Runs one command line; returns the exit code (0 ok, 1 problem found, 2 usage error). */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = 0;
  const json = argv.includes('--json');
  const emit: Emitter = (human, data, code = 0) => {
    exitCode = code;
    if (json) io.stdout(JSON.stringify(data, null, 2) + '\n');
    else io.stdout(human.join('\n') + '\n');
  };
  const program = new Command('mtls')
    .description(
      'mutual TLS between your services: PKI, CA, proxy, agent, and a doctor that says which side fails',
    )
    .version(VERSION)
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });
  registerQuickstart(program, io, emit);
  const ca = registerCa(program, io, emit);
  registerCaClient(program, ca, io, emit);
  registerIssue(program, io, emit);
  registerCsr(program, io, emit);
  registerInspect(program, io, emit);
  registerVerify(program, io, emit);
  registerDoctor(program, io, emit);
  registerProxy(program, io, emit);
  // Commander's own error printing is replaced by ours (a code and a fix line, JSON with --json).
  const quiet = { writeOut: io.stdout, writeErr: io.stderr, outputError: (): void => undefined };
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) c.exitOverride().configureOutput(quiet);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (
        e.code === 'commander.helpDisplayed' ||
        e.code === 'commander.version' ||
        e.code === 'commander.help'
      )
        return 0;
      const usageError = new MtlsError('MTLS_CLI_USAGE', e.message.replace(/^error: /, ''), {
        fix:
          e.code === 'commander.unknownCommand'
            ? 'Run "mtls --help" for the list of commands.'
            : `Run "mtls ${commandPath(argv)} --help" for the options and an example.`,
      });
      renderError(io, usageError, json);
      return 2;
    }
    if (e instanceof MtlsError) {
      renderError(io, e, json);
      return exitCodeFor(e);
    }
    const wrapped = new MtlsError('MTLS_CLI_USAGE', `Unexpected failure: ${(e as Error).message}`, {
      cause: e,
      fix: 'Run again with MTLS_DEBUG=1 and report the output.',
    });
    renderError(io, wrapped, json);
    if (io.env.MTLS_DEBUG) io.stderr(String((e as Error).stack) + '\n');
    return 1;
  }
}

/** "ca sign" for `mtls ca sign x --bad`, for pointing at the right --help. */
function commandPath(argv: readonly string[]): string {
  const words = argv.filter((a) => !a.startsWith('-'));
  if (words[0] === 'ca' && words[1] && !words[1].includes('.')) return `ca ${words[1]}`;
  return words[0] ?? '';
}
