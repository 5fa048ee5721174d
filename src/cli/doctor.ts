// mtls doctor files|pair: which side of an mTLS connection fails, why, and the exact fix. Reads the
// files, runs the doctor's engine and renders the report grouped by side (or the JSON document).
import { resolve } from 'node:path';
import type { Command } from 'commander';
import {
  DEFAULT_VERIFY_DEPTH,
  checkFiles,
  checkPair,
  type DoctorReport,
  type Finding,
  type InputFile,
  type Role,
  type Side,
} from '../doctor/index.js';
import { readInput, readPassphraseFile } from '../files/index.js';
import { parseTime, usage, type CliIo } from './context.js';
import { registerDoctorConfig } from './doctor-config.js';
import { registerDoctorConnect } from './doctor-connect.js';

export type Emit = (human: string[], json: unknown, code?: number) => void;

const SIDE_TITLE: Record<Side, string> = {
  server: 'server (its certificate, key, chain, client CA bundle, CRL, nginx settings)',
  client: 'client (its certificate, key, chain, and the CA bundle it trusts for the server)',
  both: 'both sides',
};

const EVIDENCE_ORDER = ['file', 'subject', 'issuer', 'notBefore', 'notAfter', 'sans'];

function evidenceLines(f: Finding): string[] {
  const keys = Object.keys(f.evidence).sort((a, b) => {
    const ia = EVIDENCE_ORDER.indexOf(a);
    const ib = EVIDENCE_ORDER.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  return keys.flatMap((k) => {
    const v = f.evidence[k];
    if (v === undefined || v === '') return [];
    return [`      ${k.padEnd(10)} ${Array.isArray(v) ? v.join(', ') : String(v)}`];
  });
}

/** Reports wrap at this width so that a single-cause failure fits on one screen of a normal terminal. */
const WRAP = 110;

/**
 * Greedy word wrap of prose at spaces: `first` prefixes the first line, `next` the others. Paths,
 * names and quoted directives contain no spaces, so they are never split.
 */
export function wrapProse(text: string, first: string, next: string, width = WRAP): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const word of text.split(' ')) {
    if (!empty && line.length + 1 + word.length > width) {
      lines.push(line);
      line = next + word;
    } else {
      line += (empty ? '' : ' ') + word;
    }
    empty = false;
  }
  lines.push(line);
  return lines;
}

/**
 * A fix wraps only between sentences, after a colon (where a command or config line starts), after
 * ", then" and before a parenthesis, so that a command is never cut in two and stays copyable from
 * one line.
 */
export function wrapFix(fix: string, first: string, next: string, width = WRAP): string[] {
  const parts = fix.split(/(?<=[.:;] |, then )(?=\S)| (?=\()/);
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const part of parts) {
    const piece = part.trimEnd();
    if (!empty && line.length + 1 + piece.length > width) {
      lines.push(line);
      line = next + piece;
    } else {
      line += (empty ? '' : ' ') + piece;
    }
    empty = false;
  }
  lines.push(line);
  return lines;
}

/** The human report: a verdict line, then each side with its findings (evidence, then the fix). */
export function renderReport(mode: string, report: DoctorReport): string[] {
  const errors = report.findings.filter((f) => f.severity === 'error').length;
  const warnings = report.findings.filter((f) => f.severity === 'warning').length;
  const head = report.ok
    ? `doctor ${mode}: OK, nothing that breaks the connection${warnings ? ` (${warnings} warning${warnings > 1 ? 's' : ''})` : ''}`
    : `doctor ${mode}: FAIL, ${report.failingSide === 'both' ? 'both sides must change' : `the ${report.failingSide} must change`} (${errors} error${errors > 1 ? 's' : ''}${warnings ? `, ${warnings} warning${warnings > 1 ? 's' : ''}` : ''})`;
  const lines = [head];
  for (const side of ['both', 'server', 'client'] as const) {
    const list = report.findings.filter((f) => f.side === side);
    if (list.length === 0) continue;
    lines.push('', SIDE_TITLE[side]);
    for (const f of list) {
      lines.push(...wrapProse(f.message, `  ${f.severity} ${f.code}: `, '      '));
      lines.push(...evidenceLines(f));
      lines.push(...wrapFix(f.fix, '    fix: ', '         '));
    }
  }
  return lines;
}

export function input(io: CliIo, path: string | undefined, what: string): InputFile | undefined {
  if (path === undefined) return undefined;
  return { path, data: readInput(resolve(io.cwd, path), what) };
}

export function passphrase(io: CliIo, file: string | undefined): string | undefined {
  return file ? readPassphraseFile(resolve(io.cwd, file)) : undefined;
}

export function finish(emit: Emit, mode: string, report: DoctorReport): void {
  emit(
    renderReport(mode, report),
    { ok: report.ok, failingSide: report.failingSide, findings: report.findings },
    report.ok ? 0 : 1,
  );
}

export function registerDoctor(program: Command, io: CliIo, emit: Emit): Command {
  const doctor = program
    .command('doctor')
    .description(
      'say which side of an mTLS connection fails, why, and the exact fix (modes: files, pair, connect, config)',
    );

  doctor
    .command('files')
    .description("check one side's files: certificate, key, chain, the CA that should verify it, CRL")
    .requiredOption('--cert <file>', 'the certificate (or chain file: leaf first), PEM or DER')
    .option('--key <file>', 'its private key (PKCS#1, SEC1, PKCS#8, encrypted with --passphrase-file)')
    .option('--chain <file>', 'intermediates sent with the certificate')
    .option('--ca <file>', 'the trust bundle the peer verifies this certificate with')
    .option('--role <role>', 'client | server (default: detected from the certificate)')
    .option('--name <name>', 'the host name or IP the certificate must be valid for')
    .option('--crl <file>', 'CRLs to check revocation against (one per CA of the chain)')
    .option('--passphrase-file <file>', 'first line opens an encrypted key')
    .option('--at <time>', 'judge validity at this ISO time instead of now')
    .option('--json', 'print { ok, failingSide, findings } as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls doctor files --cert server.crt --key server.key --chain intermediate.crt --ca ca.pem --name api.internal
  mtls doctor files --cert client.chain.pem --key client.key --role client --json
Exit 0 when nothing breaks, 1 when problems are found, 2 on usage errors. Codes: docs/doctor.md.`,
    )
    .action(
      (o: {
        cert: string;
        key?: string;
        chain?: string;
        ca?: string;
        role?: string;
        name?: string;
        crl?: string;
        passphraseFile?: string;
        at?: string;
      }) => {
        if (o.role !== undefined && o.role !== 'client' && o.role !== 'server')
          throw usage(
            `--role must be client or server, not "${o.role}".`,
            'Use --role client or --role server.',
          );
        const at = parseTime(o.at) ?? new Date();
        const pass = passphrase(io, o.passphraseFile);
        const report = checkFiles({
          cert: input(io, o.cert, 'certificate')!,
          ...opt('key', input(io, o.key, 'key')),
          ...opt('chain', input(io, o.chain, 'chain')),
          ...opt('ca', input(io, o.ca, 'CA bundle')),
          ...opt('crl', input(io, o.crl, 'CRL')),
          ...opt<'role', Role>('role', o.role === 'client' || o.role === 'server' ? o.role : undefined),
          ...opt('name', o.name),
          ...opt('passphrase', pass),
          at,
        });
        finish(emit, 'files', report);
      },
    );

  doctor
    .command('pair')
    .description(
      'check both sides offline: the client verifying the server for --name, and the server verifying the client as nginx does',
    )
    .requiredOption('--server-cert <file>', "the server's certificate (nginx ssl_certificate; leaf first)")
    .requiredOption('--server-key <file>', "the server's key (nginx ssl_certificate_key)")
    .option('--server-chain <file>', 'intermediates the server sends, when not in --server-cert')
    .requiredOption('--server-ca <file>', 'what the CLIENT trusts to verify the server (curl --cacert)')
    .option('--client-cert <file>', "the client's certificate (curl --cert); omit when it has none")
    .option('--client-key <file>', "the client's key (curl --key)")
    .option('--client-chain <file>', 'intermediates the client sends, when not in --client-cert')
    .requiredOption(
      '--client-ca <file>',
      'what the SERVER trusts for client certificates (nginx ssl_client_certificate)',
    )
    .requiredOption('--name <host>', 'the host name or IP the client connects to')
    .option('--server-crl <file>', 'the CRLs the server checks (nginx ssl_crl)')
    .option('--verify-depth <n>', `nginx ssl_verify_depth (default ${DEFAULT_VERIFY_DEPTH}, as nginx)`)
    .option('--passphrase-file <file>', 'first line opens encrypted keys')
    .option('--at <time>', 'judge validity at this ISO time instead of now')
    .option('--json', 'print { ok, failingSide, findings } as JSON', false)
    .addHelpText(
      'after',
      `
Example:
  mtls doctor pair --server-cert server.chain.pem --server-key server.key --server-ca server-ca.pem \\
    --client-cert client.chain.pem --client-key client.key --client-ca client-ca.pem --name api.internal
--server-ca is what the client trusts to verify the server; --client-ca is what the server trusts
for clients (nginx ssl_client_certificate). Exit 0 when nothing breaks, 1 when problems are found,
2 on usage errors. Codes: docs/doctor.md.`,
    )
    .action(
      (o: {
        serverCert: string;
        serverKey: string;
        serverChain?: string;
        serverCa: string;
        clientCert?: string;
        clientKey?: string;
        clientChain?: string;
        clientCa: string;
        name: string;
        serverCrl?: string;
        verifyDepth?: string;
        passphraseFile?: string;
        at?: string;
      }) => {
        let verifyDepth: number | undefined;
        if (o.verifyDepth !== undefined) {
          verifyDepth = Number(o.verifyDepth);
          if (!/^\d+$/.test(o.verifyDepth) || verifyDepth > 100)
            throw usage(
              `--verify-depth must be a whole number from 0 to 100, not "${o.verifyDepth}".`,
              'Give the value of ssl_verify_depth in the nginx config (1 when it is not set).',
            );
        }
        if (o.clientKey !== undefined && o.clientCert === undefined)
          throw usage(
            '--client-key needs --client-cert.',
            'Give the client certificate with --client-cert FILE.',
          );
        const at = parseTime(o.at) ?? new Date();
        const pass = passphrase(io, o.passphraseFile);
        const report = checkPair({
          server: {
            cert: input(io, o.serverCert, 'server certificate')!,
            ...opt('key', input(io, o.serverKey, 'server key')),
            ...opt('chain', input(io, o.serverChain, 'server chain')),
            ca: input(io, o.serverCa, 'server CA bundle')!,
          },
          client: {
            ...opt('cert', input(io, o.clientCert, 'client certificate')),
            ...opt('key', input(io, o.clientKey, 'client key')),
            ...opt('chain', input(io, o.clientChain, 'client chain')),
            ca: input(io, o.clientCa, 'client CA bundle')!,
          },
          name: o.name,
          ...opt('serverCrl', input(io, o.serverCrl, 'CRL')),
          ...opt('verifyDepth', verifyDepth),
          ...opt('passphrase', pass),
          at,
        });
        finish(emit, 'pair', report);
      },
    );
  registerDoctorConnect(doctor, io, emit);
  registerDoctorConfig(doctor, io, emit);
  return doctor;
}

export function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
