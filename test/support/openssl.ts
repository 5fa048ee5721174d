// The openssl command line as an independent judge of what mtlskit writes.
import { run, type RunResult } from './cli.js';

export function openssl(args: readonly string[], cwd?: string): Promise<RunResult> {
  return run('openssl', args, { cwd, timeoutMs: 30_000 });
}

/** `openssl verify -purpose P -CAfile ca -untrusted chain cert`. */
export function opensslVerify(o: {
  purpose: 'sslclient' | 'sslserver';
  caFile: string;
  untrusted?: string;
  cert: string;
}): Promise<RunResult> {
  const args = ['verify', '-purpose', o.purpose, '-CAfile', o.caFile];
  if (o.untrusted) args.push('-untrusted', o.untrusted);
  args.push(o.cert);
  return openssl(args);
}

/** `openssl x509 -noout -text`. */
export async function x509Text(cert: string): Promise<string> {
  const r = await openssl(['x509', '-in', cert, '-noout', '-text']);
  if (r.code !== 0) throw new Error(`openssl x509 failed on ${cert}: ${r.stderr}`);
  return r.stdout;
}

/** The lines of one extension block in `openssl x509 -text` (header line + its values). */
export function extensionBlock(text: string, name: string): { critical: boolean; body: string } | undefined {
  const lines = text.split('\n');
  const i = lines.findIndex((l) => l.trim().startsWith(`X509v3 ${name}:`) || l.trim().startsWith(`${name}:`));
  if (i < 0) return undefined;
  const header = lines[i]!;
  const indent = header.length - header.trimStart().length;
  const body: string[] = [];
  for (const l of lines.slice(i + 1)) {
    if (l.trim() === '' || l.length - l.trimStart().length <= indent) break;
    body.push(l.trim());
  }
  return { critical: header.includes('critical'), body: body.join('\n') };
}
