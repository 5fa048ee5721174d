// Envoy bootstrap reader (YAML or JSON): every DownstreamTlsContext (a listener: the server side) and
// UpstreamTlsContext (a cluster: Envoy as the client) with the files of its common_tls_context.
import {
  configDir,
  hasVariable,
  ref,
  type ConfigFileRef,
  type ConfigLocation,
  type ParsedConfig,
  type TlsEndpoint,
} from './types.js';
import {
  bool,
  child,
  entries,
  items,
  parseYamlTree,
  path,
  str,
  type YNode,
  type YamlTree,
} from './yaml-tree.js';

const DOWNSTREAM = /DownstreamTlsContext$/;
const UPSTREAM = /UpstreamTlsContext$/;

interface WalkContext {
  owner: string;
  serverNames: string[];
}

export function readEnvoy(file: string, text: string): ParsedConfig {
  const tree = parseYamlTree(text, file);
  const base = configDir(file);
  const endpoints: TlsEndpoint[] = [];

  const walk = (n: YNode, ctx: WalkContext): void => {
    if (n.kind === 'seq') {
      for (const it of n.items) walk(it, ctx);
      return;
    }
    if (n.kind !== 'map') return;
    let next = ctx;
    const name = str(child(n, 'name'));
    if (name !== undefined && (child(n, 'filter_chains') || child(n, 'address')))
      next = { ...next, owner: `listener ${name}` };
    else if (
      name !== undefined &&
      (child(n, 'load_assignment') || child(n, 'connect_timeout') || child(n, 'lb_policy'))
    )
      next = { ...next, owner: `cluster ${name}` };
    const sn = items(path(n, 'filter_chain_match', 'server_names')).flatMap((x) => str(x) ?? []);
    if (sn.length) next = { ...next, serverNames: sn };
    const type = str(child(n, '@type')) ?? '';
    if (DOWNSTREAM.test(type) || UPSTREAM.test(type)) {
      endpoints.push(tlsContext(n, DOWNSTREAM.test(type) ? 'server' : 'client', next, tree, base));
      return;
    }
    for (const [, v] of entries(n)) walk(v, next);
  };
  walk(tree.root, { owner: 'envoy', serverNames: [] });
  return { format: 'envoy', file, endpoints };
}

function tlsContext(
  n: YNode,
  role: 'server' | 'client',
  ctx: WalkContext,
  tree: YamlTree,
  base: string,
): TlsEndpoint {
  const unresolved: ConfigLocation[] = [];
  const source = (ds: YNode | undefined): ConfigFileRef | undefined => {
    if (!ds) return undefined;
    const fn = child(ds, 'filename');
    const inline = child(ds, 'inline_string') ?? child(ds, 'inline_bytes');
    if (fn) {
      const p = str(fn) ?? '';
      if (hasVariable(p)) {
        unresolved.push(tree.at(fn.line));
        return undefined;
      }
      return ref(base, p, tree.at(fn.line));
    }
    if (inline) {
      const at = tree.at(inline.line);
      const raw = str(inline) ?? '';
      const data = child(ds, 'inline_bytes') ? Buffer.from(raw, 'base64') : Buffer.from(raw);
      return { path: `${at.file}:${at.line} (inline)`, written: 'inline_string', at, inline: data };
    }
    unresolved.push(tree.at(ds.line));
    return undefined;
  };
  const common = child(n, 'common_tls_context');
  const certs = items(child(common, 'tls_certificates'));
  const first = certs[0];
  const cert = source(child(first, 'certificate_chain'));
  const key = source(child(first, 'private_key'));
  const passwordFile = source(child(first, 'password'));
  for (const sds of ['tls_certificate_sds_secret_configs', 'validation_context_sds_secret_config']) {
    const s = child(common, sds);
    if (s) unresolved.push(tree.at(s.line));
  }
  const validation =
    child(common, 'validation_context') ??
    path(common, 'combined_validation_context', 'default_validation_context');
  const ca = source(child(validation, 'trusted_ca'));
  const crl = source(child(validation, 'crl'));
  const depthNode = child(validation, 'max_verify_depth');
  const depth = str(depthNode);
  const sanMatchers = items(child(validation, 'match_typed_subject_alt_names')).flatMap((m) => {
    const matcher = child(m, 'matcher');
    const v = str(child(matcher, 'exact')) ?? str(child(matcher, 'prefix')) ?? str(child(matcher, 'suffix'));
    return v ? [`${str(child(m, 'san_type')) ?? 'SAN'}:${v}`] : [];
  });
  const untrusted = str(child(validation, 'trust_chain_verification')) === 'ACCEPT_UNTRUSTED';
  const requireNode = child(n, 'require_client_certificate');
  const require = bool(requireNode) === true;
  const at = tree.at(n.line);
  let verify: TlsEndpoint['verify'];
  if (role === 'server')
    verify = {
      mode: untrusted ? 'none' : require ? 'required' : validation ? 'optional' : 'none',
      ...(requireNode ? { at: tree.at(requireNode.line) } : {}),
    };
  else verify = { mode: validation && !untrusted ? 'required' : 'none' };
  const sni = str(child(n, 'sni'));
  return {
    format: 'envoy',
    role,
    label: `${role === 'server' ? 'DownstreamTlsContext' : 'UpstreamTlsContext'} of ${ctx.owner}`,
    at,
    names: role === 'server' ? ctx.serverNames : sni ? [sni] : [],
    tls: true,
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ca: ca ? [ca] : [],
    ...(crl ? { crl } : {}),
    ...(passwordFile ? { passwordFile } : {}),
    ...(bool(child(validation, 'only_verify_leaf_cert_crl')) ? { crlLeafOnly: true } : {}),
    verify,
    ...(depth !== undefined && depthNode && /^\d+$/.test(depth)
      ? { verifyDepth: { value: Number(depth), at: tree.at(depthNode.line) } }
      : {}),
    ...(role === 'client' && verify.mode === 'none'
      ? { skipVerify: validation ? tree.at(validation.line) : at }
      : {}),
    unresolved,
    ...(sanMatchers.length ? { sanMatchers } : {}),
  };
}
