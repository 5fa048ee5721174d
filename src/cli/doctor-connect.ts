// mtls doctor connect HOST:PORT: a live handshake from the client's side, read together with the
// client's files; renders the verdict grouped by side (network included) or the JSON document.
import type { Command } from 'commander';
import { parseDuration } from '../config/index.js';
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  checkConnect,
  type ConnectFinding,
  type ConnectReport,
  type ConnectSide,
} from '../doctor/index.js';
import { usage, parseTime, type CliIo } from './context.js';
import { input, opt, passphrase, wrapFix, wrapProse } from './doctor.js';

const SIDE_TITLE: Record<ConnectSide, string> = {
  network: 'network (the address, the port, what listens there)',
  server: 'server (its certificate, chain, client CA bundle, CRL, TLS settings)',
  client: 'client (its certificate, key, chain, and the CA bundle it trusts for the server)',
  both: 'both sides',
};

const EVIDENCE_ORDER = ['target', 'protocol', 'alert', 'answer', 'body', 'file', 'subject', 'issuer'];

/** Long evidence values (an HTTP body, a proxy's detail) are cut here; --json has them whole. */
const MAX_VALUE = 120;

function evidenceLines(f: ConnectFinding, shown?: ConnectFinding): string[] {
  // What the "observed" block already shows is not repeated under each finding.
  const same = (k: string): boolean =>
    shown !== undefined && JSON.stringify(shown.evidence[k]) === JSON.stringify(f.evidence[k]);
  const keys = Object.keys(f.evidence)
    .filter((k) => !same(k))
    .sort((a, b) => {
      const ia = EVIDENCE_ORDER.indexOf(a);
      const ib = EVIDENCE_ORDER.indexOf(b);
      return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    });
  const ev = f.evidence;
  const sentFirst = Array.isArray(ev.sent) ? String(ev.sent[0]) : undefined;
  return keys.flatMap((k) => {
    const v = ev[k];
    if (v === undefined || v === '' || k === 'notAfter') return [];
    // The chain sent starts with the subject: one line says both.
    if (k === 'subject' && sentFirst !== undefined && String(v) === sentFirst) return [];
    if (k === 'notBefore' && ev.notAfter !== undefined)
      return [`      ${'valid'.padEnd(10)} ${String(v)} → ${String(ev.notAfter)}`];
    if (Array.isArray(v) && v.length > 1) {
      // A chain reads leaf first, each certificate issued by the next.
      const oneLine = v.map(String).join(k === 'sent' ? ' ← ' : ', ');
      if (oneLine.length <= MAX_VALUE) return [`      ${k.padEnd(10)} ${oneLine}`];
      return [`      ${k}:`, ...v.map((x) => `        ${String(x)}`)];
    }
    const text = Array.isArray(v) ? v.join(', ') : String(v);
    return [`      ${k.padEnd(10)} ${text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text}`];
  });
}

/**
 * The "observed" block in few lines: protocol, cipher and time on one line, whether a client
 * certificate was asked for and sent on another, then the rest.
 */
function observedLines(seen: ConnectFinding): string[] {
  const e = seen.evidence;
  const lines: string[] = [];
  const row = (k: string, v: string): void => {
    lines.push(`      ${k.padEnd(10)} ${v.length > MAX_VALUE ? `${v.slice(0, MAX_VALUE - 1)}…` : v}`);
  };
  const tls = [e.target, e.protocol, e.cipher, e.ms !== undefined ? `${String(e.ms)} ms` : undefined]
    .filter((x) => x !== undefined && x !== '')
    .map(String);
  if (tls.length) row('tls', tls.join(', '));
  if (e.answer !== undefined)
    row('answer', `${String(e.answer)}${e.body !== undefined ? `: ${String(e.body)}` : ''}`);
  else if (e.body !== undefined) row('body', String(e.body));
  const chain = Array.isArray(e.serverChain) ? e.serverChain.map(String) : [];
  chain.forEach((c, i) => row(i === 0 ? 'chain' : '', c));
  if (e.clientCertRequested !== undefined || e.clientCertSent !== undefined)
    row(
      'client cert',
      `requested ${String(e.clientCertRequested ?? '?')}, sent ${String(e.clientCertSent ?? '?')}`,
    );
  const done = new Set([
    'target',
    'protocol',
    'cipher',
    'ms',
    'answer',
    'body',
    'serverChain',
    'clientCertRequested',
    'clientCertSent',
  ]);
  const rest: ConnectFinding = {
    ...seen,
    evidence: Object.fromEntries(Object.entries(e).filter(([k]) => !done.has(k))),
  };
  return [...lines, ...evidenceLines(rest)];
}

/** The human report: the verdict, what the handshake showed, then each side's findings. */
export function renderConnectReport(report: ConnectReport): string[] {
  const errors = report.findings.filter((f) => f.severity === 'error').length;
  const warnings = report.findings.filter((f) => f.severity === 'warning').length;
  const w = warnings ? `${warnings} warning${warnings > 1 ? 's' : ''}` : '';
  const head = report.ok
    ? `doctor connect: OK, nothing that breaks the connection${w ? ` (${w})` : ''}`
    : `doctor connect: FAIL, ${
        report.failingSide === 'both'
          ? 'both sides must change'
          : report.failingSide === 'network'
            ? 'the network path or the listener must change'
            : `the ${report.failingSide} must change`
      } (${errors} error${errors > 1 ? 's' : ''}${w ? `, ${w}` : ''})`;
  const lines = [head];
  const seen = report.findings.find((f) => f.code === 'connected');
  if (seen) {
    // A proxy's JSON answer is shown field by field under the finding; its raw body is not repeated.
    const parsed = report.findings.some((f) => f.evidence.proxyCode !== undefined);
    const shown = parsed
      ? { ...seen, evidence: Object.fromEntries(Object.entries(seen.evidence).filter(([k]) => k !== 'body')) }
      : seen;
    lines.push('', 'observed');
    lines.push(...observedLines(shown));
  }
  for (const side of ['network', 'both', 'server', 'client'] as const) {
    const list = report.findings.filter((f) => f.side === side && f.code !== 'connected');
    if (list.length === 0) continue;
    lines.push('', SIDE_TITLE[side]);
    for (const f of list) {
      lines.push(...wrapProse(f.message, `  ${f.severity} ${f.code}: `, '      '));
      lines.push(...evidenceLines(f, seen));
      lines.push(...wrapFix(f.fix, '    fix: ', '         '));
    }
  }
  return lines;
}

/** HOST:PORT, [IPv6]:PORT. */
export function parseTarget(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535)
    throw usage(
      `"${text}" is not HOST:PORT.`,
      'Give the address as HOST:PORT, e.g. api.internal:443, 127.0.0.1:8443 or [::1]:8443.',
    );
  return { host: (m[1] ?? m[2])!, port };
}

export function registerDoctorConnect(
  doctor: Command,
  io: CliIo,
  emit: (human: string[], json: unknown, code?: number) => void,
): void {
  doctor
    .command('connect')
    .description(
      "a live handshake with HOST:PORT from the client's side: what the server sends (chain, the CA names it accepts, alerts, its HTTP answer), read with the client's files",
    )
    .argument('<host:port>', 'the server, e.g. api.internal:443')
    .option('--cert <file>', "the client's certificate (or chain, leaf first); omit to connect without one")
    .option('--key <file>', "the client's private key")
    .option('--chain <file>', 'intermediates the client sends, when not in --cert')
    .option('--ca <file>', 'what the client trusts to verify the server (curl --cacert)')
    .option('--servername <name>', 'SNI, Host header and the name the server certificate must match')
    .option('--passphrase-file <file>', 'first line opens an encrypted key')
    .option('--timeout <duration>', 'for the connection, the handshake and the answer each', '5s')
    .option('--at <time>', 'judge validity at this ISO time instead of now')
    .option('--json', 'print { ok, failingSide, findings } as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls doctor connect api.internal:443 --cert alice.chain.pem --key alice.key --ca server-ca.pem
  mtls doctor connect 10.0.0.5:8443 --servername api.internal --ca server-ca.pem --json
It sends one HTTP/1.1 "GET /" after the handshake (a TLS 1.3 server refuses a client certificate
only after the handshake) and nothing else. failingSide is client, server, both, or network
(nothing listens, DNS, a timeout, not TLS). Exit 0 when nothing breaks, 1 when problems are found,
2 on usage errors. Codes: docs/doctor.md.`,
    )
    .action(
      async (
        target: string,
        o: {
          cert?: string;
          key?: string;
          chain?: string;
          ca?: string;
          servername?: string;
          passphraseFile?: string;
          timeout: string;
          at?: string;
        },
      ) => {
        const { host, port } = parseTarget(target);
        if (o.key !== undefined && o.cert === undefined)
          throw usage('--key needs --cert.', 'Give the client certificate with --cert FILE.');
        const timeoutMs = o.timeout ? parseDuration(o.timeout, '--timeout') : DEFAULT_CONNECT_TIMEOUT_MS;
        const at = parseTime(o.at) ?? new Date();
        const report = await checkConnect({
          host,
          port,
          ...opt('servername', o.servername),
          ...opt('cert', input(io, o.cert, 'client certificate')),
          ...opt('key', input(io, o.key, 'client key')),
          ...opt('chain', input(io, o.chain, 'client chain')),
          ...opt('ca', input(io, o.ca, 'CA bundle')),
          ...opt('passphrase', passphrase(io, o.passphraseFile)),
          timeoutMs,
          at,
        });
        emit(
          renderConnectReport(report),
          { ok: report.ok, failingSide: report.failingSide, findings: report.findings },
          report.ok ? 0 : 1,
        );
      },
    );
}
