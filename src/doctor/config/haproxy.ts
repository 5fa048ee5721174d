// HAProxy config reader: sections, `bind … ssl crt ca-file verify crl-file` (and crt-list lines) for
// the server side, `server … ssl crt ca-file verify` for backends (HAProxy as the client).
import {
  configDir,
  configError,
  hasVariable,
  ref,
  resolveIn,
  type ConfigFileRef,
  type ConfigLocation,
  type ConfigSource,
  type ParsedConfig,
  type TlsEndpoint,
  type VerifyMode,
} from './types.js';

/** Splits one HAProxy line into words: quotes, backslash escapes, comments from a word-leading '#'. */
export function splitHaproxyLine(line: string, file: string, lineNo: number): string[] {
  const words: string[] = [];
  let i = 0;
  const n = line.length;
  while (i < n) {
    const ch = line[i]!;
    if (ch === ' ' || ch === '\t' || ch === '\r') {
      i++;
      continue;
    }
    if (ch === '#') break;
    let word = '';
    while (i < n && !/[ \t\r]/.test(line[i]!)) {
      const c = line[i]!;
      if (c === '\\' && i + 1 < n) {
        word += line[i + 1]!;
        i += 2;
      } else if (c === '"' || c === "'") {
        const close = line.indexOf(c, i + 1);
        if (close < 0)
          throw configError(file, lineNo, `unmatched quote (${c})`, `Close the quoted string with ${c}.`);
        word += line.slice(i + 1, close);
        i = close + 1;
      } else {
        word += c;
        i++;
      }
    }
    words.push(word);
  }
  return words;
}

const SECTIONS = new Set([
  'global',
  'defaults',
  'frontend',
  'backend',
  'listen',
  'resolvers',
  'peers',
  'userlist',
  'program',
  'http-errors',
  'ring',
  'mailers',
  'cache',
  'crt-store',
  'traces',
]);

interface SslParams {
  ssl: boolean;
  crt: string[];
  crtList?: string;
  caFile?: string;
  crlFile?: string;
  verify?: string;
  sni?: string;
  verifyhost?: string;
}

const WITH_ARG = new Set(['crt', 'crt-list', 'ca-file', 'crl-file', 'verify', 'sni', 'verifyhost']);

function sslParams(words: readonly string[], into: SslParams = { ssl: false, crt: [] }): SslParams {
  const p: SslParams = { ...into, crt: [...into.crt] };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === 'ssl') p.ssl = true;
    else if (w === 'no-ssl') p.ssl = false;
    else if (WITH_ARG.has(w)) {
      const v = words[i + 1];
      if (v === undefined) continue;
      i++;
      if (w === 'crt') p.crt.push(v);
      else if (w === 'crt-list') p.crtList = v;
      else if (w === 'ca-file') p.caFile = v;
      else if (w === 'crl-file') p.crlFile = v;
      else if (w === 'verify') p.verify = v;
      else if (w === 'sni') p.sni = v;
      else if (w === 'verifyhost') p.verifyhost = v;
    }
  }
  return p;
}

export function readHaproxy(file: string, text: string, source: ConfigSource): ParsedConfig {
  const base = configDir(file);
  const lines = text.split('\n');
  const endpoints: TlsEndpoint[] = [];
  let crtBase = base;
  let caBase = base;
  let serverVerifyDefault: VerifyMode = 'required';
  let section = '';
  let sectionName = '';
  let defaultServer: SslParams = { ssl: false, crt: [] };
  let defaultsServer: SslParams = { ssl: false, crt: [] };

  const fileRef = (
    dir: string,
    written: string | undefined,
    at: ConfigLocation,
    unresolved: ConfigLocation[],
  ): ConfigFileRef | undefined => {
    if (written === undefined) return undefined;
    if (hasVariable(written)) {
      unresolved.push(at);
      return undefined;
    }
    return ref(dir, written, at);
  };
  /** HAProxy reads the key from the crt file, or from "<crt>.key" beside it. */
  const keyFor = (cert: ConfigFileRef): ConfigFileRef => {
    const data = source.read(cert.path);
    if (!data || /PRIVATE KEY-----/.test(data.toString('latin1'))) return cert;
    return { ...cert, path: `${cert.path}.key`, written: `${cert.written}.key` };
  };

  /** The certificate files of one `crt` argument: the file, or every PEM of a directory. */
  const crtFiles = (cert: ConfigFileRef): ConfigFileRef[] => {
    if (source.read(cert.path) !== undefined) return [cert];
    const inDir = (source.list?.(`${cert.path.replace(/\/+$/, '')}/*`) ?? []).filter(
      (f) => !/\.(key|ocsp|issuer|sctl)$/.test(f),
    );
    return inDir.length ? inDir.map((f) => ({ ...cert, path: f, written: f })) : [cert];
  };

  const bindEndpoint = (p: SslParams, at: ConfigLocation, label: string, names: string[]): void => {
    const unresolved: ConfigLocation[] = [];
    const certs = p.crt.flatMap((c) => {
      const r = fileRef(crtBase, c, at, unresolved);
      return r ? crtFiles(r) : [];
    });
    const ca = fileRef(caBase, p.caFile, at, unresolved);
    const crl = fileRef(caBase, p.crlFile, at, unresolved);
    const v = p.verify ?? 'none';
    if (!['none', 'optional', 'required'].includes(v))
      throw configError(
        at.file,
        at.line,
        `verify "${v}" is not none, optional or required`,
        'verify required',
      );
    // One endpoint per certificate HAProxy loads for this bind.
    for (let i = 0; i < Math.max(1, certs.length); i++) {
      const cert = certs[i];
      endpoints.push({
        format: 'haproxy',
        role: 'server',
        label: certs.length > 1 && cert ? `${label} (crt ${cert.written})` : label,
        at,
        names,
        tls: true,
        ...(cert ? { cert, key: keyFor(cert) } : {}),
        ca: ca ? [ca] : [],
        ...(crl ? { crl } : {}),
        verify: { mode: v as VerifyMode, ...(p.verify ? { at } : {}) },
        // HAProxy sets no depth: OpenSSL's default of 100.
        unresolved: i === 0 ? unresolved : [],
      });
    }
  };

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!;
    const words = splitHaproxyLine(raw, file, lineNo);
    const [kw, ...args] = words;
    if (kw === undefined) continue;
    const at: ConfigLocation = { file, line: lineNo, text: raw.trim() };
    if (SECTIONS.has(kw)) {
      section = kw;
      sectionName = args[0] ?? '';
      defaultServer = section === 'defaults' ? { ssl: false, crt: [] } : { ...defaultsServer };
      continue;
    }
    if (section === 'global') {
      if (kw === 'crt-base' && args[0]) crtBase = resolveIn(base, args[0]);
      if (kw === 'ca-base' && args[0]) caBase = resolveIn(base, args[0]);
      if (kw === 'ssl-server-verify' && args[0])
        serverVerifyDefault = args[0] === 'none' ? 'none' : 'required';
      continue;
    }
    if (kw === 'default-server') {
      defaultServer = sslParams(args, defaultServer);
      if (section === 'defaults') defaultsServer = defaultServer;
      continue;
    }
    if (kw === 'bind' && (section === 'frontend' || section === 'listen')) {
      const p = sslParams(args);
      if (!p.ssl) continue;
      const label = `bind ${args[0] ?? ''} in ${section} ${sectionName}`;
      if (p.crtList) {
        const unresolved: ConfigLocation[] = [];
        const list = fileRef(crtBase, p.crtList, at, unresolved);
        const data = list ? source.read(list.path) : undefined;
        if (!list || !data) {
          // The crt-list itself is missing: report it as the certificate file.
          bindEndpoint({ ...p, crt: [p.crtList] }, at, label, []);
          continue;
        }
        const listLines = data.toString('utf8').split('\n');
        for (let j = 0; j < listLines.length; j++) {
          const l = listLines[j]!;
          const lw = splitHaproxyLine(l, list.path, j + 1);
          if (lw.length === 0) continue;
          const [crt, ...rest] = lw;
          const opts: string[] = [];
          let filters = rest;
          if (rest[0]?.startsWith('[')) {
            const joined = rest.join(' ');
            const close = joined.indexOf(']');
            if (close < 0)
              throw configError(list.path, j + 1, 'a "[" without its "]"', 'Close the options with "]".');
            opts.push(...joined.slice(1, close).split(/\s+/).filter(Boolean));
            filters = joined
              .slice(close + 1)
              .split(/\s+/)
              .filter(Boolean);
          }
          const merged = sslParams(opts, { ...p, crt: [crt!] });
          bindEndpoint(
            merged,
            { file: list.path, line: j + 1, text: l.trim() },
            `${label}, crt-list line ${j + 1}`,
            filters.filter((f) => !f.startsWith('!')),
          );
        }
        continue;
      }
      bindEndpoint(p, at, label, []);
      continue;
    }
    if (kw === 'server' && (section === 'backend' || section === 'listen')) {
      const p = sslParams(args.slice(2), defaultServer);
      if (!p.ssl) continue;
      const unresolved: ConfigLocation[] = [];
      const cert = fileRef(crtBase, p.crt[0], at, unresolved);
      const ca = fileRef(caBase, p.caFile, at, unresolved);
      const mode: VerifyMode = p.verify === 'none' ? 'none' : p.verify ? 'required' : serverVerifyDefault;
      endpoints.push({
        format: 'haproxy',
        role: 'client',
        label: `server ${args[0] ?? ''} ${args[1] ?? ''} in ${section} ${sectionName}`,
        at,
        names: [p.verifyhost ?? p.sni ?? ''].filter((x) => x && !x.includes('(')),
        tls: true,
        ...(cert ? { cert, key: keyFor(cert) } : {}),
        ca: ca ? [ca] : [],
        verify: { mode, ...(p.verify ? { at } : {}) },
        ...(mode === 'none' ? { skipVerify: at } : {}),
        unresolved,
      });
    }
  }
  return { format: 'haproxy', file, endpoints };
}
