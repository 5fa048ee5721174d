// The doctor's config mode: readers for nginx, HAProxy, Envoy and OpenTelemetry Collector configs
// (pure: other files come through a ConfigSource), and the checks over the files and settings they name.
export {
  CONFIG_FORMATS,
  type ConfigFileRef,
  type ConfigFormat,
  type ConfigLocation,
  type ConfigSource,
  type ParsedConfig,
  type TlsEndpoint,
  type VerifyMode,
} from './types.js';
export { tokenizeNginx, parseNginx, readNginx, type NginxStatement, type NginxToken } from './nginx.js';
export { readHaproxy, splitHaproxyLine } from './haproxy.js';
export { readEnvoy } from './envoy.js';
export { readOtel } from './otel.js';
export { detectFormat, readConfig } from './read.js';
export {
  checkConfig,
  suggestName,
  targetListener,
  type ConfigCheckInput,
  type ConfigClientInput,
} from './check.js';
