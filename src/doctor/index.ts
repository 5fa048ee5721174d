// The doctor: says which side of an mTLS connection fails, why, and how to fix it. One engine of
// checks over files (`files`, `pair`), server configs (`config`) and a live handshake (`connect`).
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
