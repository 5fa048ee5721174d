// nginx config reader: a tokenizer for nginx's syntax (quotes, escapes, comments, blocks, variables
// left as written), includes relative to the config's directory, and the TLS settings of each server.
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

export interface NginxToken {
  kind: 'word' | ';' | '{' | '}';
  value: string;
  line: number;
}

/** Splits nginx config text into words and punctuation, as ngx_conf_read_token does. */
export function tokenizeNginx(text: string, file: string): NginxToken[] {
  const out: NginxToken[] = [];
  let i = 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const ch = text[i]!;
    if (ch === '\n') {
      line++;
      i++;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\ufeff') {
      i++;
      continue;
    }
    if (ch === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (ch === ';' || ch === '{' || ch === '}') {
      out.push({ kind: ch, value: ch, line });
      i++;
      continue;
    }
    if (ch === '"' || ch === "'") {
      const start = line;
      let value = '';
      i++;
      for (;;) {
        if (i >= n)
          throw configError(
            file,
            start,
            `the quoted string that starts here (${ch}) is never closed`,
            `Close the string with ${ch}.`,
          );
        const c = text[i]!;
        if (c === '\\' && i + 1 < n) {
          const next = text[i + 1]!;
          value += next === 'n' ? '\n' : next === 't' ? '\t' : next === 'r' ? '\r' : next;
          if (next === '\n') line++;
          i += 2;
          continue;
        }
        if (c === ch) {
          i++;
          break;
        }
        if (c === '\n') line++;
        value += c;
        i++;
      }
      out.push({ kind: 'word', value, line: start });
      continue;
    }
    // A bare word: up to whitespace, ';', '{' or '}' (except the braces of ${var}).
    let value = '';
    while (i < n) {
      const c = text[i]!;
      if (c === '\\' && i + 1 < n) {
        value += c + text[i + 1]!;
        i += 2;
        continue;
      }
      if (c === '$' && text[i + 1] === '{') {
        const close = text.indexOf('}', i);
        if (close < 0 || text.slice(i, close).includes('\n'))
          throw configError(
            file,
            line,
            'a "${" variable is never closed',
            'Write the variable as ${name} on one line.',
          );
        value += text.slice(i, close + 1);
        i = close + 1;
        continue;
      }
      if (/[\s;{}]/.test(c)) break;
      value += c;
      i++;
    }
    out.push({ kind: 'word', value, line });
  }
  return out;
}

export interface NginxStatement {
  name: string;
  args: string[];
  file: string;
  line: number;
  block?: NginxStatement[];
}

/** Parses tokens into statements and blocks; malformed input is an error naming the line. */
export function parseNginx(text: string, file: string): NginxStatement[] {
  const tokens = tokenizeNginx(text, file);
  let pos = 0;
  const parseBlock = (openLine: number | undefined): NginxStatement[] => {
    const stmts: NginxStatement[] = [];
    let words: NginxToken[] = [];
    for (;;) {
      const t = tokens[pos++];
      if (!t) {
        if (words.length)
          throw configError(
            file,
            words[0]!.line,
            `"${words[0]!.value}" is not terminated by ";" (end of file reached)`,
            'End the directive with ";".',
          );
        if (openLine !== undefined)
          throw configError(
            file,
            openLine,
            'the block opened here ("{") is never closed: unexpected end of file, expecting "}"',
            'Add the missing "}".',
          );
        return stmts;
      }
      if (t.kind === 'word') {
        words.push(t);
        continue;
      }
      if (t.kind === '}') {
        if (words.length)
          throw configError(
            file,
            words[0]!.line,
            `"${words[0]!.value}" is not terminated by ";" before "}"`,
            'End the directive with ";".',
          );
        if (openLine === undefined)
          throw configError(file, t.line, 'unexpected "}"', 'Remove the extra "}" or add the "{" it closes.');
        return stmts;
      }
      if (words.length === 0)
        throw configError(file, t.line, `unexpected "${t.kind}"`, `Remove the stray "${t.kind}".`);
      const [head, ...rest] = words;
      const stmt: NginxStatement = {
        name: head!.value,
        args: rest.map((w) => w.value),
        file,
        line: head!.line,
      };
      words = [];
      if (t.kind === '{') stmt.block = parseBlock(t.line);
      stmts.push(stmt);
    }
  };
  return parseBlock(undefined);
}

const MAX_INCLUDE_DEPTH = 16;

/** Replaces `include` statements with the statements of the files they name (globs included). */
function expandIncludes(
  stmts: NginxStatement[],
  base: string,
  source: ConfigSource,
  depth: number,
): NginxStatement[] {
  const out: NginxStatement[] = [];
  for (const s of stmts) {
    if (s.name === 'include' && !s.block) {
      const written = s.args[0];
      if (written === undefined || s.args.length !== 1)
        throw configError(s.file, s.line, '"include" takes exactly one file', 'Write include FILE;');
      if (depth >= MAX_INCLUDE_DEPTH)
        throw configError(
          s.file,
          s.line,
          `includes nest deeper than ${MAX_INCLUDE_DEPTH} levels (an include loop?)`,
          'Remove the include that includes its own file.',
        );
      const pattern = resolveIn(base, written);
      const files = /[*?[]/.test(pattern) ? (source.list?.(pattern) ?? []) : [pattern];
      for (const f of files) {
        const data = source.read(f);
        if (data === undefined) {
          if (/[*?[]/.test(pattern)) continue;
          throw configError(
            s.file,
            s.line,
            `the included file ${f} does not exist or cannot be read`,
            `Create ${f} or fix the include path (relative paths start from ${base}).`,
          );
        }
        out.push(...expandIncludes(parseNginx(data.toString('utf8'), f), base, source, depth + 1));
      }
      continue;
    }
    out.push(s.block ? { ...s, block: expandIncludes(s.block, base, source, depth) } : s);
  }
  return out;
}

const SSL_DIRECTIVES = new Set([
  'ssl_certificate',
  'ssl_certificate_key',
  'ssl_client_certificate',
  'ssl_trusted_certificate',
  'ssl_verify_client',
  'ssl_verify_depth',
  'ssl_crl',
  'ssl_password_file',
  'ssl',
]);

/** The SSL directives in effect, each with its statements (ssl_certificate may repeat: RSA + ECDSA). */
type Settings = Map<string, NginxStatement[]>;

const UPSTREAM_DIRECTIVES = new Set(
  ['proxy_ssl_', 'grpc_ssl_']
    .flatMap((p) =>
      [
        'certificate',
        'certificate_key',
        'trusted_certificate',
        'verify',
        'verify_depth',
        'name',
        'password_file',
      ].map((n) => p + n),
    )
    .concat(['proxy_ssl']),
);

/** A level's own statements of a directive replace the inherited ones (nginx's merge). */
function settingsOf(
  stmts: readonly NginxStatement[],
  inherited: Settings,
  names: ReadonlySet<string> = SSL_DIRECTIVES,
): Settings {
  const own = new Map<string, NginxStatement[]>();
  for (const s of stmts) if (names.has(s.name) && !s.block) own.set(s.name, [...(own.get(s.name) ?? []), s]);
  return new Map([...inherited, ...own]);
}

/** Reads the nginx config `file` (its text given) and its includes; one endpoint per TLS server. */
export function readNginx(file: string, text: string, source: ConfigSource): ParsedConfig {
  const base = configDir(file);
  const lines = new Map<string, string[]>();
  const lineText = (f: string, n: number): string => {
    let l = lines.get(f);
    if (!l) {
      l = f === file ? text.split('\n') : (source.read(f)?.toString('utf8').split('\n') ?? []);
      lines.set(f, l);
    }
    return (l[n - 1] ?? '').trim();
  };
  const loc = (s: NginxStatement): ConfigLocation => ({
    file: s.file,
    line: s.line,
    text: lineText(s.file, s.line),
  });
  const stmts = expandIncludes(parseNginx(text, file), base, source, 0);
  const endpoints: TlsEndpoint[] = [];

  const serverEndpoint = (server: NginxStatement, inherited: Settings, context: string): void => {
    const body = server.block ?? [];
    const listens = body.filter((s) => s.name === 'listen');
    const all = settingsOf(body, inherited);
    const set = { get: (n: string): NginxStatement | undefined => all.get(n)?.at(-1) };
    const sslOn = set.get('ssl')?.args[0] === 'on';
    const sslListen = listens.find((l) => l.args.includes('ssl'));
    if (!sslListen && !sslOn) return;
    const names = body.filter((s) => s.name === 'server_name').flatMap((s) => s.args);
    const unresolved: ConfigLocation[] = [];
    const file1 = (name: string, s = set.get(name)): ConfigFileRef | undefined => {
      const p = s?.args[0];
      if (!s || p === undefined) return undefined;
      if (hasVariable(p)) {
        unresolved.push(loc(s));
        return undefined;
      }
      return ref(base, p, loc(s));
    };
    const verifyStmt = set.get('ssl_verify_client');
    const v = verifyStmt?.args[0] ?? 'off';
    const mode: VerifyMode = v === 'on' ? 'required' : v === 'optional' ? 'optional' : 'none';
    if (verifyStmt && !['on', 'off', 'optional', 'optional_no_ca'].includes(v))
      throw configError(
        verifyStmt.file,
        verifyStmt.line,
        `invalid value "${v}" in ssl_verify_client (on, off, optional or optional_no_ca)`,
        'ssl_verify_client on;',
      );
    const depthStmt = set.get('ssl_verify_depth');
    let verifyDepth: TlsEndpoint['verifyDepth'];
    if (depthStmt) {
      const d = depthStmt.args[0] ?? '';
      if (!/^\d+$/.test(d))
        throw configError(
          depthStmt.file,
          depthStmt.line,
          `invalid number "${d}" in ssl_verify_depth`,
          'ssl_verify_depth 2;',
        );
      verifyDepth = { value: Number(d), at: loc(depthStmt) };
    }
    const certStmts = all.get('ssl_certificate') ?? [];
    const keyStmts = all.get('ssl_certificate_key') ?? [];
    const crl = file1('ssl_crl');
    const passwordFile = file1('ssl_password_file');
    const ca = [file1('ssl_client_certificate'), file1('ssl_trusted_certificate')].filter(
      (x): x is ConfigFileRef => x !== undefined,
    );
    const listenText = sslListen ? sslListen.args.join(' ') : (listens[0]?.args.join(' ') ?? '');
    // One endpoint per certificate/key pair (nginx pairs them in order).
    for (let i = 0; i < Math.max(1, certStmts.length); i++) {
      const cert = certStmts[i] ? file1('ssl_certificate', certStmts[i]) : undefined;
      const key = keyStmts[i] ? file1('ssl_certificate_key', keyStmts[i]) : undefined;
      endpoints.push({
        format: 'nginx',
        role: 'server',
        label: `${context} server ${names[0] ?? '_'} (listen ${listenText})${i > 0 ? ` certificate ${i + 1}` : ''}`,
        at: loc(server),
        names,
        tls: true,
        ...(cert ? { cert } : {}),
        ...(key ? { key } : {}),
        ca,
        ...(crl ? { crl } : {}),
        ...(passwordFile ? { passwordFile } : {}),
        // optional_no_ca asks for a certificate but does not verify it: as good as none for mTLS.
        verify: {
          mode: v === 'optional_no_ca' ? 'none' : mode,
          ...(verifyStmt ? { at: loc(verifyStmt) } : {}),
        },
        ...(verifyDepth ? { verifyDepth } : {}),
        unresolved: i === 0 ? unresolved : [],
      });
    }
  };

  /** nginx as the client: proxy_pass https:// (grpc_pass grpcs://) with the proxy_ssl_* (grpc_ssl_*) settings. */
  const upstreams = (
    block: readonly NginxStatement[],
    inherited: Settings,
    where: string,
    stream: boolean,
  ): void => {
    const set = settingsOf(block, inherited, UPSTREAM_DIRECTIVES);
    for (const s of block) {
      const target = s.args[0] ?? '';
      const grpc = s.name === 'grpc_pass' && /^grpcs:\/\//.test(target);
      const tlsPass =
        (s.name === 'proxy_pass' &&
          (/^https:\/\//.test(target) || (stream && set.get('proxy_ssl')?.at(-1)?.args[0] === 'on'))) ||
        grpc;
      if (!s.block && tlsPass) {
        const prefix = grpc ? 'grpc_ssl_' : 'proxy_ssl_';
        const get = (n: string): NginxStatement | undefined => set.get(prefix + n)?.at(-1);
        const unresolved: ConfigLocation[] = [];
        const fileOf = (n: string): ConfigFileRef | undefined => {
          const st = get(n);
          const p = st?.args[0];
          if (!st || p === undefined) return undefined;
          if (hasVariable(p)) {
            unresolved.push(loc(st));
            return undefined;
          }
          return ref(base, p, loc(st));
        };
        const verifyStmt = get('verify');
        const on = verifyStmt?.args[0] === 'on';
        const depthStmt = get('verify_depth');
        const cert = fileOf('certificate');
        const key = fileOf('certificate_key');
        const ca = fileOf('trusted_certificate');
        const passwordFile = fileOf('password_file');
        const sni = get('name')?.args[0];
        endpoints.push({
          format: 'nginx',
          role: 'client',
          label: `${s.name} ${target} in ${where}`,
          at: loc(s),
          names: sni && !hasVariable(sni) ? [sni] : [],
          tls: true,
          ...(cert ? { cert } : {}),
          ...(key ? { key } : {}),
          ca: ca ? [ca] : [],
          ...(passwordFile ? { passwordFile } : {}),
          verify: { mode: on ? 'required' : 'none', ...(verifyStmt ? { at: loc(verifyStmt) } : {}) },
          ...(depthStmt && /^\d+$/.test(depthStmt.args[0] ?? '')
            ? { verifyDepth: { value: Number(depthStmt.args[0]), at: loc(depthStmt) } }
            : {}),
          // nginx's default is proxy_ssl_verify off: the upstream's certificate is not checked.
          ...(on ? {} : { skipVerify: verifyStmt ? loc(verifyStmt) : loc(s) }),
          unresolved,
        });
      }
      if (s.block && (s.name === 'location' || s.name === 'if' || s.name === 'limit_except'))
        upstreams(s.block, set, `location ${s.args.join(' ')} of ${where}`, stream);
    }
  };

  for (const top of stmts) {
    if ((top.name === 'http' || top.name === 'stream') && top.block) {
      const inherited = settingsOf(top.block, new Map());
      const upInherited = settingsOf(top.block, new Map(), UPSTREAM_DIRECTIVES);
      for (const s of top.block)
        if (s.name === 'server' && s.block) {
          serverEndpoint(s, inherited, top.name);
          const names = s.block.filter((x) => x.name === 'server_name').flatMap((x) => x.args);
          upstreams(s.block, upInherited, `${top.name} server ${names[0] ?? '_'}`, top.name === 'stream');
        }
    } else if (top.name === 'server' && top.block) {
      // A fragment (a conf.d file given on its own): a server block at the top.
      serverEndpoint(top, new Map(), 'http');
      upstreams(top.block, new Map(), 'server', false);
    }
  }
  return { format: 'nginx', file, endpoints };
}
