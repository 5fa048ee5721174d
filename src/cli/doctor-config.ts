// mtls doctor config: placeholder registered by doctor.ts; replaced by its implementation (issue 5).
import type { Command } from 'commander';
import type { CliIo } from './context.js';

export function registerDoctorConfig(
  _doctor: Command,
  _io: CliIo,
  _emit: (human: string[], json: unknown, code?: number) => void,
): void {}
