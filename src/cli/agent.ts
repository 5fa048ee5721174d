// mtls agent: placeholder registered by the command table; replaced by its implementation (issue 6).
import type { Command } from 'commander';
import type { CliIo } from './context.js';

export async function registerAgent(
  _program: Command,
  _io: CliIo,
  _emit: (human: string[], json: unknown, code?: number) => void,
): Promise<void> {
  await Promise.resolve();
}
