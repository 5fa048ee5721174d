// The CA service's client side: mtls ca token | ca list | ca audit verify, and mtls enroll | renew | revoke.
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { createCaClient, fetchPinnedRoots, normalizeSerial, type CaClient } from '../ca/index.js';
import { parseDuration } from '../config/index.js';
import { MtlsError } from '../errors/index.js';
import { readInput, writeFilesAtomic } from '../files/index.js';
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  createCsr,
  encodePem,
  exportPrivateKeyPem,
  generateKey,
  parseKeyType,
  parseSanList,
  readCertificates,
  readPrivateKey,
  type KeyType,
} from '../pki/index.js';
import { openStore, verifyAuditChain } from '../store/index.js';
import { collect, defaultCaDir, usage, type CliIo } from './context.js';
import { safeBaseName, writeLeafFiles } from './leaf-output.js';

type Emit = (human: string[], json: unknown, code?: number) => void;

interface ApiOptions {
  caUrl?: string;
  caFile?: string;
  cert?: string;
  key?: string;
  dir?: string;
}

function withApiOptions(
  cmd: Command,
  listener: 'mTLS' | 'public',
  identity: 'admin' | 'holder' | 'none',
): Command {
  cmd
    .option('--ca-url <url>', `the CA's ${listener} listener URL (default $MTLS_CA_URL)`)
    .option('--ca-file <file>', "the CA's trust bundle (default <dir>/ca.pem)")
    .option('--dir <dir>', 'CA directory used for defaults (default $MTLS_CA_DIR or ./mtls-data)');
  if (identity !== 'none') {
    const who =
      identity === 'admin'
        ? 'an admin certificate (default <dir>/admin/mtls-admin.chain.pem)'
        : 'the certificate (chain) to use';
    cmd.option('--cert <file>', `client certificate: ${who}`).option('--key <file>', 'its private key');
  }
  return cmd;
}

function apiClient(io: CliIo, o: ApiOptions, needsClientCert: boolean): CaClient {
  const url = o.caUrl ?? io.env.MTLS_CA_URL;
  if (!url)
    throw usage(
      'No CA URL.',
      'Give --ca-url https://HOST:PORT (mtls ca serve prints its URLs) or set MTLS_CA_URL.',
    );
  const dir = resolve(io.cwd, defaultCaDir(io, o.dir));
  const caFile = o.caFile ? resolve(io.cwd, o.caFile) : join(dir, 'ca.pem');
  let cert = o.cert ? resolve(io.cwd, o.cert) : undefined;
  let key = o.key ? resolve(io.cwd, o.key) : undefined;
  if (needsClientCert && !cert && existsSync(join(dir, 'admin', 'mtls-admin.chain.pem'))) {
    cert = join(dir, 'admin', 'mtls-admin.chain.pem');
    key = join(dir, 'admin', 'mtls-admin.key');
  }
  if (needsClientCert && (!cert || !key)) {
    throw usage(
      'This call needs a client certificate and key.',
      'Give --cert FILE --key FILE (an admin certificate for admin calls).',
    );
  }
  return createCaClient({
    url,
    ca: readInput(caFile, 'CA trust bundle (--ca-file)'),
    ...(cert ? { cert: readInput(cert, 'client certificate') } : {}),
    ...(key ? { key: readInput(key, 'client key') } : {}),
  });
}

function toGrant(identities: string[], cn: string | undefined): { sans: string[]; commonName?: string } {
  const sans: string[] = [];
  let commonName = cn;
  for (const id of identities) {
    if (id.startsWith('cn:')) commonName = id.slice(3);
    else if (id.startsWith('spiffe://') || /^(dns|ip|uri|email):/.test(id)) sans.push(id);
    else
      throw usage(
        `"${id}" is not an identity.`,
        'Write identities as dns:NAME, ip:ADDR, spiffe://TD/PATH, uri:URI, email:ADDR or cn:NAME (globs allowed: dns:*.svc.example.org).',
      );
  }
  return { sans, ...(commonName ? { commonName } : {}) };
}

interface IssueAnswer {
  serial: string;
  certificate: string;
  chain: string;
  ca: string;
  notAfter: string;
}

export function registerCaClient(program: Command, ca: Command, io: CliIo, emit: Emit): void {
  withApiOptions(ca.command('token'), 'mTLS', 'admin')
    .description('create a one-time enrollment token bound to identities (admin)')
    .argument(
      '<identity...>',
      'what the token grants: dns:NAME, ip:ADDR, spiffe://TD/PATH, uri:…, email:…, cn:NAME; globs allowed',
    )
    .option('--profile <profile>', 'client | server | peer | spiffe', 'client')
    .option('--max-ttl <duration>', 'longest certificate lifetime the token allows', '24h')
    .option('--ttl <duration>', 'how long the token itself is valid', '5m')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls ca token spiffe://example.org/ns/prod/sa/api --profile spiffe --ca-url https://ca.internal:8444\nThe token is shown once; only its hash is stored.',
    )
    .action(
      async (identities: string[], o: ApiOptions & { profile: string; maxTtl: string; ttl: string }) => {
        const grant = toGrant(identities, undefined);
        parseDuration(o.maxTtl, '--max-ttl');
        parseDuration(o.ttl, '--ttl');
        const r = await apiClient(io, o, true).post<{ token: string; id: string; expiresAt: string }>(
          '/v1/tokens',
          { profile: o.profile, ...grant, maxTtl: o.maxTtl, ttl: o.ttl },
        );
        emit(
          [
            r.token,
            `  id ${r.id}, single use, valid until ${r.expiresAt}`,
            `  grants ${o.profile}: ${[...grant.sans, ...(grant.commonName ? [`cn:${grant.commonName}`] : [])].join(', ')}`,
            '  next: mtls enroll --ca-url <public URL> --token <this token> --root-fingerprint <CA root sha256> --roots-url <http URL>/v1/roots',
          ],
          { ok: true, ...r },
        );
      },
    );

  withApiOptions(ca.command('list'), 'mTLS', 'admin')
    .description('the inventory of issued certificates (admin)')
    .option('--expiring <duration>', 'only those expiring within this duration, e.g. 7d')
    .option('--revoked', 'only revoked certificates')
    .option('--identity <id>', 'only this identity')
    .option('--profile <profile>', 'only this profile')
    .option('--json', 'print the result as JSON', false)
    .addHelpText('after', '\nExample:\n  mtls ca list --expiring 7d --ca-url https://ca.internal:8444')
    .action(
      async (
        o: ApiOptions & { expiring?: string; revoked?: boolean; identity?: string; profile?: string },
      ) => {
        if (o.expiring) parseDuration(o.expiring, '--expiring');
        const q = new URLSearchParams({ limit: '10000' });
        if (o.expiring) q.set('expiring', o.expiring);
        if (o.revoked) q.set('revoked', 'true');
        if (o.identity) q.set('identity', o.identity);
        if (o.profile) q.set('profile', o.profile);
        const r = await apiClient(io, o, true).get<{
          certificates: {
            serial: string;
            identity: string;
            profile: string;
            notAfter: string;
            status: string;
          }[];
        }>(`/v1/certificates?${q.toString()}`);
        emit(
          [
            `${r.certificates.length} certificate(s)`,
            ...r.certificates.map(
              (c) =>
                `  ${c.serial}  ${c.status.padEnd(7)}  ${c.notAfter}  ${c.profile.padEnd(6)}  ${c.identity}`,
            ),
          ],
          { ok: true, certificates: r.certificates },
        );
      },
    );

  const audit = ca.command('audit').description('the audit log');
  audit
    .command('verify')
    .description("verify the audit log's hash chain straight from the database")
    .option('--dir <dir>', 'CA directory (default $MTLS_CA_DIR or ./mtls-data); the database is <dir>/ca.db')
    .option('--db <url>', 'sqlite:PATH or postgres://… instead')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls ca audit verify --db postgres://ca@db.internal/mtls\nExit 1 when a record was modified, removed or inserted.',
    )
    .action(async (o: { dir?: string; db?: string }) => {
      const url =
        o.db ?? io.env.MTLS_CA_DB ?? `sqlite:${join(resolve(io.cwd, defaultCaDir(io, o.dir)), 'ca.db')}`;
      const store = await openStore(url);
      try {
        let after = { seq: 0, hash: '' };
        let count = 0;
        for (;;) {
          const page = await store.listAudit(after.seq, 5000);
          if (page.length === 0) break;
          const v = verifyAuditChain(page, after);
          if (!v.ok) {
            emit(
              [`audit chain BROKEN at record ${v.seq}: ${v.problem}: ${v.message}`],
              { ok: false, seq: v.seq, problem: v.problem, message: v.message },
              1,
            );
            return;
          }
          count += v.count;
          after = { seq: v.lastSeq, hash: v.lastHash };
        }
        emit([`audit chain OK: ${count} record(s), last hash ${after.hash || '(none)'}`], {
          ok: true,
          count,
          lastSeq: after.seq,
          lastHash: after.hash,
        });
      } finally {
        await store.close();
      }
    });

  withApiOptions(program.command('enroll'), 'public', 'none')
    .description('get a first certificate with a one-time token; the key is generated here and never leaves')
    .requiredOption('--token <token>', 'the token from mtls ca token')
    .option(
      '--root-fingerprint <sha256>',
      'pin the CA root by fingerprint (with --roots-url) instead of --ca-file',
    )
    .option(
      '--roots-url <url>',
      "where to fetch the CA's trust bundle for pinning, e.g. http://ca.internal:8080/v1/roots",
    )
    .option('--name <name>', 'CN of the request and base name of the files')
    .option('--san <list>', 'SANs to request (default: what the token grants)', collect)
    .option('--key-type <type>', 'p256 | p384 | rsa2048 | rsa3072 | rsa4096 | ed25519', 'p256')
    .option('--ttl <duration>', 'requested lifetime (at most what the token allows)')
    .option('--out <dir>', 'where to write the files', '.')
    .option('--force', 'replace existing files', false)
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls enroll --ca-url https://ca.internal:8443 --token mtls_… --root-fingerprint 3F:9A:… --roots-url http://ca.internal:8080/v1/roots --name api --out /etc/mtls\nWrites <name>.key (0600), <name>.crt, <name>.chain.pem and ca.pem.',
    )
    .action(
      async (
        o: ApiOptions & {
          token: string;
          rootFingerprint?: string;
          rootsUrl?: string;
          name?: string;
          san?: string[];
          keyType: string;
          ttl?: string;
          out: string;
          force: boolean;
        },
      ) => {
        const url = o.caUrl ?? io.env.MTLS_CA_URL;
        if (!url)
          throw usage(
            'No CA URL.',
            'Give --ca-url https://HOST:PORT (the public listener) or set MTLS_CA_URL.',
          );
        const keyType = parseKeyType(o.keyType);
        const sans = parseSanList(o.san, { allowWildcard: true });
        if (o.ttl) parseDuration(o.ttl, '--ttl');
        let rootPem: string;
        if (o.rootFingerprint) {
          if (!o.rootsUrl)
            throw usage(
              '--root-fingerprint needs --roots-url.',
              "Give the CA's roots URL, e.g. --roots-url http://ca.internal:8080/v1/roots (mtls ca serve prints it), or use --ca-file.",
            );
          rootPem = await fetchPinnedRoots(o.rootsUrl, o.rootFingerprint);
        } else if (o.caFile) {
          rootPem = readInput(resolve(io.cwd, o.caFile), 'CA trust bundle').toString('latin1');
        } else
          throw usage(
            'No way to trust the CA.',
            'Pin its root with --root-fingerprint SHA256 --roots-url URL, or give its trust bundle with --ca-file.',
          );
        const key = generateKey(keyType);
        const subject = o.name ? [[{ oid: '2.5.4.3', value: o.name }]] : [];
        const csr = createCsr({ key, subject, sans });
        const r = await createCaClient({ url, ca: rootPem }).post<IssueAnswer>('/v1/sign', {
          token: o.token,
          csr: csr.pem,
          ...(o.ttl ? { ttl: o.ttl } : {}),
        });
        const base = safeBaseName(o.name ?? 'workload');
        const files = writeLeafFiles(
          resolve(io.cwd, o.out),
          base,
          { certPem: r.certificate, chainPem: r.chain, rootPem: r.ca },
          exportPrivateKeyPem(key),
          o.force,
        );
        emit(
          [
            `enrolled: serial ${r.serial}, valid until ${r.notAfter}`,
            `  key    ${files.key ?? ''} (0600, generated here)`,
            `  chain  ${files.chain}`,
            `  trust  ${files.bundle}`,
          ],
          { ok: true, serial: r.serial, notAfter: r.notAfter, files },
        );
      },
    );

  withApiOptions(program.command('renew'), 'public', 'holder')
    .description(
      'renew a certificate of any profile, proving possession of its key; the files are replaced atomically',
    )
    .option('--rekey', 'generate a new key (the old key signs the request)', false)
    .option('--ttl <duration>', 'requested lifetime (at most the current one)')
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls renew --ca-url https://ca.internal:8443 --cert /etc/mtls/api.chain.pem --key /etc/mtls/api.key --ca-file /etc/mtls/ca.pem\nWorks for server certificates too (no client certificate needed) and through L7 proxies.',
    )
    .action(async (o: ApiOptions & { rekey: boolean; ttl?: string }) => {
      if (!o.cert || !o.key)
        throw usage('renew needs --cert and --key.', 'Give the current certificate (chain) and its key.');
      if (o.ttl) parseDuration(o.ttl, '--ttl');
      const certPath = resolve(io.cwd, o.cert);
      const keyPath = resolve(io.cwd, o.key);
      const current = readCertificates(readInput(certPath, 'certificate'), o.cert)[0]!;
      const oldKey = readPrivateKey(readInput(keyPath, 'key'), undefined, o.key).key;
      const newKey = o.rekey ? generateKey(keyTypeOf(oldKey)) : undefined;
      const csr = createCsr({ key: newKey ?? oldKey, subject: current.subject });
      const proof = newKey
        ? cryptoSign(
            oldKey.asymmetricKeyType === 'ed25519' ? null : 'sha256',
            createHash('sha256').update(csr.der).digest(),
            oldKey,
          ).toString('base64')
        : undefined;
      const { cert: _c, key: _k, ...publicOpts } = o;
      const r = await apiClient(io, publicOpts, false).post<IssueAnswer>('/v1/renew', {
        certificate: encodePem('CERTIFICATE', current.der),
        csr: csr.pem,
        ...(proof ? { proof } : {}),
        ...(o.ttl ? { ttl: o.ttl } : {}),
      });
      const dir = dirname(certPath);
      const stem = basename(certPath).replace(/(\.chain)?\.(pem|crt)$/, '');
      const files = [
        { path: join(dir, `${stem}.crt`), data: r.certificate },
        { path: join(dir, `${stem}.chain.pem`), data: r.chain },
        ...(newKey ? [{ path: keyPath, data: exportPrivateKeyPem(newKey), mode: 0o600 }] : []),
      ];
      writeFilesAtomic(files, { overwrite: true });
      emit(
        [
          `renewed: serial ${r.serial}, valid until ${r.notAfter}${newKey ? ' (new key)' : ''}`,
          ...files.map((f) => `  wrote ${f.path}`),
        ],
        { ok: true, serial: r.serial, notAfter: r.notAfter, files: files.map((f) => f.path) },
      );
    });

  withApiOptions(program.command('revoke'), 'mTLS', 'admin')
    .description('revoke a certificate (admin, or the holder with its own certificate)')
    .argument('<serial>', 'the serial in hex (colons allowed), as mtls inspect prints it')
    .option(
      '--reason <reason>',
      'keyCompromise, superseded, cessationOfOperation, affiliationChanged, …',
      'unspecified',
    )
    .option('--json', 'print the result as JSON', false)
    .addHelpText(
      'after',
      '\nExample:\n  mtls revoke 3f9a… --reason keyCompromise --ca-url https://ca.internal:8444\nThe CRL and OCSP answers reflect it at once; proxies following /v1/revocations within a second.',
    )
    .action(async (serial: string, o: ApiOptions & { reason: string }) => {
      const r = await apiClient(io, o, true).post<{ serial: string; revokedAt: string; reason: string }>(
        '/v1/revoke',
        { serial: normalizeSerial(serial), reason: o.reason },
      );
      emit([`revoked ${r.serial} at ${r.revokedAt} (${r.reason})`], { ok: true, ...r });
    });
}

function keyTypeOf(k: KeyObject): KeyType {
  const d = k.asymmetricKeyDetails ?? {};
  if (k.asymmetricKeyType === 'ec') return d.namedCurve === 'secp384r1' ? 'p384' : 'p256';
  if (k.asymmetricKeyType === 'ed25519') return 'ed25519';
  if (k.asymmetricKeyType === 'rsa')
    return (d.modulusLength ?? 2048) >= 4096
      ? 'rsa4096'
      : (d.modulusLength ?? 2048) >= 3072
        ? 'rsa3072'
        : 'rsa2048';
  throw new MtlsError('MTLS_PKI_UNSUPPORTED_KEY', `Cannot re-key a ${String(k.asymmetricKeyType)} key.`, {
    fix: 'Use a P-256, P-384, RSA or Ed25519 key.',
  });
}
