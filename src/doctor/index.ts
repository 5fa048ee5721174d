// The doctor: says which side of an mTLS connection fails, why, and how to fix it. A pure engine of
// checks over files (modes `files` and `pair`); the `connect` and `config` modes plug in here later.
export * from './findings.js';
export type { InputFile } from './load.js';
export { checkFiles, type FilesInput } from './files.js';
export { checkPair, DEFAULT_VERIFY_DEPTH, type PairInput } from './pair.js';
export { reissueCommand, type Role } from './checks.js';
export * from './config/index.js';
export {
  checkConnect,
  diagnose,
  connectReport,
  DEFAULT_CONNECT_TIMEOUT_MS,
  type ConnectInput,
  type ConnectReport,
  type ConnectFinding,
  type ConnectSide,
} from './connect.js';
