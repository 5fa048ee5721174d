// OpenTelemetry Collector config reader: receivers (the server side: receivers.*.protocols.*.tls or
// receivers.*.tls) and exporters (the client side: exporters.*.tls) with their cert, key and CA files.
import {
  configDir,
  hasVariable,
  ref,
  type ConfigFileRef,
  type ConfigLocation,
  type ParsedConfig,
  type TlsEndpoint,
} from './types.js';
import { bool, child, entries, parseYamlTree, str, type YNode, type YamlTree } from './yaml-tree.js';

export function readOtel(file: string, text: string): ParsedConfig {
  const tree = parseYamlTree(text, file);
  const base = configDir(file);
  const endpoints: TlsEndpoint[] = [];
  for (const [name, r] of entries(child(tree.root, 'receivers'))) {
    const protocols = child(r, 'protocols');
    const servers: [string, YNode][] = protocols
      ? entries(protocols)
          // Protocols that can run TLS (UDP ones such as jaeger thrift_compact cannot).
          .filter(([proto, p]) => /^(grpc|http|thrift_http)$/.test(proto) || child(p, 'tls') !== undefined)
          .map(([proto, p]): [string, YNode] => [`${name} ${proto}`, p])
      : child(r, 'tls')
        ? [[name, r]]
        : [];
    for (const [label, s] of servers) endpoints.push(receiver(label, s, tree, base));
  }
  for (const [name, e] of entries(child(tree.root, 'exporters'))) {
    const tls = child(e, 'tls');
    if (!tls && !child(e, 'endpoint')) continue;
    endpoints.push(exporter(name, e, tree, base));
  }
  return { format: 'otel', file, endpoints };
}

function fileOf(
  tls: YNode | undefined,
  key: string,
  tree: YamlTree,
  base: string,
  unresolved: ConfigLocation[],
): ConfigFileRef | undefined {
  const n = child(tls, key);
  const p = str(n);
  if (!n || p === undefined || p === '') return undefined;
  if (hasVariable(p)) {
    unresolved.push(tree.at(n.line));
    return undefined;
  }
  return ref(base, p, tree.at(n.line));
}

function receiver(label: string, s: YNode, tree: YamlTree, base: string): TlsEndpoint {
  const tls = child(s, 'tls');
  const unresolved: ConfigLocation[] = [];
  const cert = fileOf(tls, 'cert_file', tree, base, unresolved);
  const key = fileOf(tls, 'key_file', tree, base, unresolved);
  const clientCa = fileOf(tls, 'client_ca_file', tree, base, unresolved);
  const caFile = fileOf(tls, 'ca_file', tree, base, unresolved);
  const endpoint = str(child(s, 'endpoint'));
  return {
    format: 'otel',
    role: 'server',
    label: `receiver ${label}${endpoint ? ` (${endpoint})` : ''}`,
    at: tree.at(tls?.line ?? s.line),
    names: [],
    tls: tls !== undefined && tls.kind === 'map',
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ca: clientCa ? [clientCa] : [],
    // The Collector requires and verifies client certificates exactly when client_ca_file is set.
    verify: {
      mode: clientCa ? 'required' : 'none',
      ...(clientCa ? { at: clientCa.at } : {}),
    },
    ...(caFile && !clientCa ? { misplacedCa: caFile } : {}),
    unresolved,
  };
}

function exporter(name: string, e: YNode, tree: YamlTree, base: string): TlsEndpoint {
  const tls = child(e, 'tls');
  const unresolved: ConfigLocation[] = [];
  const cert = fileOf(tls, 'cert_file', tree, base, unresolved);
  const key = fileOf(tls, 'key_file', tree, base, unresolved);
  const ca = fileOf(tls, 'ca_file', tree, base, unresolved);
  const insecureNode = child(tls, 'insecure');
  const skipNode = child(tls, 'insecure_skip_verify');
  const endpoint = str(child(e, 'endpoint'));
  const plaintext = bool(insecureNode) === true || (endpoint?.startsWith('http://') ?? false);
  const override = str(child(tls, 'server_name_override'));
  return {
    format: 'otel',
    role: 'client',
    label: `exporter ${name}${endpoint ? ` (${endpoint})` : ''}`,
    at: tree.at(tls?.line ?? e.line),
    names: override ? [override] : [],
    tls: !plaintext,
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ca: ca ? [ca] : [],
    verify: { mode: bool(skipNode) === true ? 'none' : 'required' },
    ...(bool(skipNode) === true && skipNode ? { skipVerify: tree.at(skipNode.line) } : {}),
    ...(plaintext ? { plaintext: tree.at(insecureNode?.line ?? child(e, 'endpoint')?.line ?? e.line) } : {}),
    unresolved,
  };
}
