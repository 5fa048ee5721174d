// The mtls command line: one commander program; each command lives in its own file and only
// computes; rendering, errors and exit codes are handled here.
import { Command, CommanderError } from 'commander';
import { MtlsError } from '../errors/index.js';
import { renderError, exitCodeFor, type CliIo } from './context.js';

export const VERSION = '0.1.0';

type Register = (program: Command, io: CliIo, emit: Emitter) => Promise<void>;

// Each command's module is imported only when that command runs: `mtls doctor` must not pay for
// loading the CA server, the proxy and their dependencies (the doctor answers in under 300 ms).
// Help, version and unknown commands load them all, in this order (the order of `mtls --help`).
const COMMANDS: [names: string[], register: Register][] = [
  [['quickstart'], async (p, io, e) => (await import('./quickstart.js')).registerQuickstart(p, io, e)],
  [['up'], async (p, io, e) => (await import('./up.js')).registerUp(p, io, e)],
  [
    ['ca', 'enroll', 'renew', 'revoke'],
    async (p, io, e) => {
      const [{ registerCa }, { registerCaClient }] = await Promise.all([
        import('./ca.js'),
        import('./ca-client.js'),
      ]);
      registerCaClient(p, registerCa(p, io, e), io, e);
    },
  ],
  [['issue'], async (p, io, e) => void (await import('./issue.js')).registerIssue(p, io, e)],
  [['csr'], async (p, io, e) => void (await import('./csr.js')).registerCsr(p, io, e)],
  [['inspect'], async (p, io, e) => void (await import('./inspect.js')).registerInspect(p, io, e)],
  [['verify'], async (p, io, e) => void (await import('./verify.js')).registerVerify(p, io, e)],
  [['doctor'], async (p, io, e) => void (await import('./doctor.js')).registerDoctor(p, io, e)],
  [['proxy'], async (p, io, e) => void (await import('./proxy.js')).registerProxy(p, io, e)],
  [['agent'], async (p, io, e) => (await import('./agent.js')).registerAgent(p, io, e)],
  [['exporter'], async (p, io, e) => (await import('./exporter.js')).registerExporter(p, io, e)],
];

async function registerCommands(program: Command, argv: readonly string[], io: CliIo, emit: Emitter) {
  const first = argv.find((a) => !a.startsWith('-'));
  const only = COMMANDS.find(([names]) => first !== undefined && names.includes(first));
  for (const [, register] of only ? [only] : COMMANDS) await register(program, io, emit);
}

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
  await registerCommands(program, argv, io, emit);
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
