// mtlskit as a library: the Node helpers that follow the agent's certificate rotations, and the one
// error type with its stable codes. Everything else is reached through the mtls CLI.
export {
  createMtlsAgent,
  createMtlsDispatcher,
  createMtlsCertificateProvider,
  readMtlsMaterial,
  MtlsHttpsAgent,
  MtlsDispatcher,
} from './agent/index.js';
export type {
  FollowOptions,
  GrpcCertificateProvider,
  MtlsAgentOptions,
  MtlsDispatcherOptions,
  MtlsMaterial,
} from './agent/index.js';
export { ERROR_CODES, MtlsError, isMtlsError } from './errors/index.js';
export type { ErrorCode, MtlsErrorOptions } from './errors/index.js';
