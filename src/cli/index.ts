// The command line: one file per command; parses flags, calls a component, renders output
// (human or --json) and maps errors to exit codes (0 ok, 1 problem found, 2 usage error).
export { runCli, VERSION } from './program.js';
export type { CliIo } from './context.js';
