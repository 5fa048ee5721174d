// What the config readers return: the TLS endpoints a config declares (listeners = the server side,
// upstreams / exporters = the client side), with the files they name and the config lines that say so.
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { MtlsError } from '../../errors/index.js';

export type ConfigFormat = 'nginx' | 'haproxy' | 'envoy' | 'otel';
export const CONFIG_FORMATS: readonly ConfigFormat[] = ['nginx', 'haproxy', 'envoy', 'otel'];

/** Where something is said in a config: the file, the 1-based line, and the directive as written. */
export interface ConfigLocation {
  file: string;
  line: number;
  text: string;
}

/** A file a config names: resolved path, the path as written, where; or inline PEM (Envoy inline_string). */
export interface ConfigFileRef {
  path: string;
  written: string;
  at: ConfigLocation;
  inline?: Buffer;
}

/** Does the listener require a client certificate? (For a client side: does it verify the server?) */
export type VerifyMode = 'required' | 'optional' | 'none';

export interface TlsEndpoint {
  format: ConfigFormat;
  /** server: accepts connections (nginx server, HAProxy bind, Envoy listener, OTel receiver); client: connects out. */
  role: 'server' | 'client';
  /** How the report names it: "server localhost (listen 127.0.0.1:443 ssl)". */
  label: string;
  at: ConfigLocation;
  /** nginx server_name, Envoy server_names, HAProxy/Envoy sni, OTel server_name_override. */
  names: string[];
  /** false: the endpoint runs without TLS (OTel receiver without tls, exporter with insecure: true). */
  tls: boolean;
  cert?: ConfigFileRef;
  key?: ConfigFileRef;
  /** Listener: the bundles it trusts for client certificates; client side: what it trusts for the server. */
  ca: ConfigFileRef[];
  crl?: ConfigFileRef;
  /** Envoy only_verify_leaf_cert_crl: true (only the leaf's issuer needs a CRL). */
  crlLeafOnly?: boolean;
  passwordFile?: ConfigFileRef;
  verify: { mode: VerifyMode; at?: ConfigLocation };
  verifyDepth?: { value: number; at: ConfigLocation };
  /** Client side that skips verifying the server (OTel insecure_skip_verify, HAProxy verify none). */
  skipVerify?: ConfigLocation;
  /** Client side with TLS turned off although certificates are configured (OTel insecure: true). */
  plaintext?: ConfigLocation;
  /** OTel receiver with ca_file but no client_ca_file: the CA file does not verify clients. */
  misplacedCa?: ConfigFileRef;
  /** Paths the doctor cannot resolve (nginx variables, ${env:…}): named, not checked. */
  unresolved: ConfigLocation[];
  /** Envoy match_typed_subject_alt_names (informational). */
  sanMatchers?: string[];
}

export interface ParsedConfig {
  format: ConfigFormat;
  file: string;
  endpoints: TlsEndpoint[];
}

/** How the readers reach other files (nginx include); the engine reads nothing itself. */
export interface ConfigSource {
  /** The bytes of a file, or undefined when it does not exist or cannot be read. */
  read(path: string): Buffer | undefined;
  /** The files matching a glob (only `*` and `?` in the last segment), sorted; for nginx include. */
  list?(pattern: string): string[];
}

export function configError(file: string, line: number, message: string, fix: string): MtlsError {
  return new MtlsError('MTLS_CONFIG_INVALID', `${file}:${line}: ${message}`, {
    fix,
    details: { file, line },
  });
}

/** A path from a config, resolved against `base` (a directory) unless absolute. */
export function resolveIn(base: string, p: string): string {
  return normalize(isAbsolute(p) ? p : join(base, p));
}

export function configDir(file: string): string {
  return dirname(file);
}

/** True when a path holds a variable the doctor cannot expand ($var, ${env:X}). */
export function hasVariable(p: string): boolean {
  return /\$/.test(p);
}

export function ref(base: string, written: string, at: ConfigLocation): ConfigFileRef {
  return { path: resolveIn(base, written), written, at };
}
