// Which reader a config needs (from --format, else from its content and extension), and the dispatch.
import { extname } from 'node:path';
import { readEnvoy } from './envoy.js';
import { readHaproxy } from './haproxy.js';
import { readNginx } from './nginx.js';
import { readOtel } from './otel.js';
import { configError, type ConfigFormat, type ConfigSource, type ParsedConfig } from './types.js';

/** The format of a config from its content (first) and extension; undefined when nothing fits. */
export function detectFormat(file: string, text: string): ConfigFormat | undefined {
  const ext = extname(file).toLowerCase();
  const body = text.replace(/^\ufeff/, '');
  const yamlish = ext === '.yaml' || ext === '.yml' || ext === '.json' || /^\s*[{[]/.test(body);
  if (
    /^(receivers|exporters|processors|extensions|service)\s*:/m.test(body) ||
    /"(receivers|exporters)"\s*:/.test(body)
  )
    return 'otel';
  if (/(static_resources|dynamic_resources|DownstreamTlsContext|UpstreamTlsContext|envoy\.)/.test(body))
    return 'envoy';
  if (yamlish) return undefined;
  if (/^\s*(http|events|stream|server|mail)\s*\{/m.test(body) || /^\s*ssl_\w+\s/m.test(body)) return 'nginx';
  if (/^(global|defaults|frontend|backend|listen)\b/m.test(body)) return 'haproxy';
  if (ext === '.cfg') return 'haproxy';
  if (ext === '.conf' && /;\s*(#.*)?$/m.test(body)) return 'nginx';
  return undefined;
}

/** Reads a config with the reader of its format; malformed input is MTLS_CONFIG_INVALID with the line. */
export function readConfig(
  file: string,
  data: Buffer,
  source: ConfigSource,
  format?: ConfigFormat,
): ParsedConfig {
  const text = data.toString('utf8');
  const f = format ?? detectFormat(file, text);
  if (!f)
    throw configError(
      file,
      1,
      'cannot tell which server this config is for (nginx, HAProxy, Envoy or OpenTelemetry Collector)',
      'Name it with --format nginx|haproxy|envoy|otel.',
    );
  switch (f) {
    case 'nginx':
      return readNginx(file, text, source);
    case 'haproxy':
      return readHaproxy(file, text, source);
    case 'envoy':
      return readEnvoy(file, text);
    case 'otel':
      return readOtel(file, text);
  }
}
