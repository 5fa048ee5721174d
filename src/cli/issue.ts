// mtls issue <profile> <name>: key + certificate + chain + trust bundle from the file CA.
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadFileCa, type FileCa } from '../ca/index.js';
import { parseDuration } from '../config/index.js';
import { MtlsError } from '../errors/index.js';
import {
  exportPrivateKeyPem,
  formatGeneralName,
  generateKey,
  getProfile,
  isValidDnsName,
  parseKeyType,
  parseName,
  parseSanList,
  spiffeTrustDomain,
  spkiOf,
  type DistinguishedName,
  type ProfileName,
  type San,
} from '../pki/index.js';
import { caPassphrase, collect, defaultCaDir, withCaOptions, type CliIo } from './context.js';
import { safeBaseName, writeLeaf, type LeafFiles } from './leaf-output.js';

export const LEAF_PROFILES = ['server', 'client', 'spiffe', 'peer'] as const;

/** The names a leaf gets from its positional name: CN, and a SAN for server/peer/spiffe. */
export function namesFor(
  profile: ProfileName,
  name: string,
  extra: San[],
  subjectText?: string,
): { subject: DistinguishedName; sans: San[]; notes: string[] } {
  const notes: string[] = [];
  const sans = [...extra];
  const has = (t: string, v: string): boolean =>
    sans.some((s) => s.type === t && s.value.toLowerCase() === v.toLowerCase());
  let subject: DistinguishedName = subjectText !== undefined ? parseName(subjectText) : [];
  if (profile === 'spiffe') {
    if (!name.startsWith('spiffe://')) {
      throw new MtlsError(
        'MTLS_PKI_BAD_SPIFFE_ID',
        `The spiffe profile takes a SPIFFE ID as its name, not "${name}".`,
        {
          fix: 'Write it as spiffe://<trust domain>/<path>, e.g. mtls issue spiffe spiffe://example.org/ns/prod/sa/api',
        },
      );
    }
    if (!has('uri', name)) sans.unshift(...parseSanList(`uri:${name}`));
    return { subject, sans, notes };
  }
  if (subjectText === undefined) subject = [[{ oid: '2.5.4.3', value: name }]];
  if (profile === 'server' || profile === 'peer') {
    const v = name.toLowerCase();
    if (isIP(name) && !has('ip', name)) sans.unshift(...parseSanList(`ip:${name}`));
    else if (!isIP(name) && isValidDnsName(v, profile === 'server') && !has('dns', v))
      sans.unshift(...parseSanList(`dns:${v}`, { allowWildcard: profile === 'server' }));
    else if (
      !isIP(name) &&
      !isValidDnsName(v, true) &&
      !sans.some((s) => s.type === 'dns' || s.type === 'ip')
    ) {
      notes.push(`"${name}" is not a DNS name, so it is only the CN; clients match the SANs`);
    }
  }
  return { subject, sans, notes };
}

export function checkTrustDomain(ca: FileCa, sans: readonly San[]): void {
  const td = ca.meta.trustDomain;
  if (!td) return;
  for (const s of sans) {
    if (s.type === 'uri' && s.value.startsWith('spiffe://') && spiffeTrustDomain(s.value) !== td) {
      throw new MtlsError(
        'MTLS_PKI_PROFILE_VIOLATION',
        `${s.value} is outside this CA's trust domain ${td}.`,
        {
          fix: `Use spiffe://${td}/… or a CA created for that trust domain.`,
        },
      );
    }
  }
}

export interface IssueResult {
  profile: ProfileName;
  subject: string;
  sans: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
  files: LeafFiles;
  notes: string[];
}

export function registerIssue(
  program: Command,
  io: CliIo,
  emit: (human: string[], json: unknown) => void,
): void {
  withCaOptions(program.command('issue'))
    .description('issue a key and certificate from the file CA, with the right extensions for the profile')
    .argument('<profile>', `one of ${LEAF_PROFILES.join(', ')}`)
    .argument(
      '<name>',
      'the identity: a host name or IP (server, peer), a service name (client), a SPIFFE ID (spiffe)',
    )
    .option('--san <list>', 'extra SANs: dns:NAME,ip:ADDR,uri:URI,email:ADDR (repeatable)', collect)
    .option('--subject <dn>', 'subject DN instead of CN=<name>, e.g. "CN=api,O=Example"')
    .option('--ttl <duration>', 'lifetime, e.g. 24h, 7d', '24h')
    .option('--key-type <type>', 'p256 | p384 | rsa2048 | rsa3072 | rsa4096 | ed25519', 'p256')
    .option('--out <dir>', 'where to write the files', '.')
    .option('--file-name <base>', 'base name of the files (default from <name>)')
    .option('--force', 'replace existing files', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      `
Examples:
  mtls issue server api.internal --san ip:10.0.0.5
  mtls issue client payments --out certs/
  mtls issue spiffe spiffe://example.org/ns/prod/sa/api --ttl 1h
Writes <name>.key (0600), <name>.crt, <name>.chain.pem (leaf + intermediate) and ca.pem (trust bundle).`,
    )
    .action(
      (
        profileName: string,
        name: string,
        o: {
          san?: string[];
          subject?: string;
          ttl: string;
          keyType: string;
          out: string;
          fileName?: string;
          dir?: string;
          passphraseFile?: string;
          force: boolean;
        },
      ) => {
        const profile = getProfile(profileName);
        if (profile.ca) {
          throw new MtlsError(
            'MTLS_PKI_UNKNOWN_PROFILE',
            `"${profileName}" certificates are made by "mtls ca init", not "mtls issue".`,
            {
              fix: `Use one of: ${LEAF_PROFILES.join(', ')}.`,
            },
          );
        }
        const ttlMs = parseDuration(o.ttl, '--ttl');
        const keyType = parseKeyType(o.keyType);
        const extra = parseSanList(o.san, { allowWildcard: profile.allowWildcard });
        const { subject, sans, notes } = namesFor(profile.name, name, extra, o.subject);
        const ca = loadFileCa(defaultCaDir(io, o.dir), caPassphrase(io, o.passphraseFile));
        checkTrustDomain(ca, sans);
        const key = generateKey(keyType);
        const issued = ca.issuer.issue({
          profile: profile.name,
          subject,
          sans,
          publicKey: spkiOf(key),
          ttlMs,
        });
        const files = writeLeaf(
          ca,
          resolve(io.cwd, o.out),
          o.fileName ?? safeBaseName(name),
          issued,
          exportPrivateKeyPem(key),
          o.force,
        );
        const result: IssueResult = {
          profile: profile.name,
          subject: subject.map((r) => r.map((a) => a.value).join('+')).join(','),
          sans: sans.map(formatGeneralName),
          serial: issued.serial,
          notBefore: issued.notBefore.toISOString(),
          notAfter: issued.notAfter.toISOString(),
          files,
          notes,
        };
        emit(
          [
            `issued ${profile.name} certificate for ${name} (${keyType}, valid until ${issued.notAfter.toISOString()})`,
            ...(result.sans.length ? [`  SANs    ${result.sans.join(', ')}`] : []),
            `  serial  ${issued.serial}`,
            ...(files.key ? [`  key     ${files.key} (0600)`] : []),
            `  cert    ${files.cert}`,
            `  chain   ${files.chain}   (send this one: leaf + intermediate)`,
            `  trust   ${files.bundle}`,
            ...notes.map((n) => `  note: ${n}`),
          ],
          { ok: true, ...result },
        );
      },
    );
}
