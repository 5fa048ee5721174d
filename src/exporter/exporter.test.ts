// The exporter's pieces against real files and real TLS servers on 127.0.0.1: globs, file reads,
// the lifetime ratio, probes (verified, expired, refused, client certificate) and the metrics text.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMtlsError } from '../errors/index.js';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  selfSign,
  spkiOf,
  type Clock,
  type IssuedCertificate,
} from '../pki/index.js';
import { remainingRatio, readCertificateFile } from './certs.js';
import { parseExporterConfig } from './config.js';
import { startExporter } from './exporter.js';
import { expandGlob, segmentRegExp } from './glob.js';
import { probeEndpoint, reasonForError } from './probe.js';

const HOUR = 3_600_000;
let root: string;
const rootKey = generateKey('p256');
const ca = selfSign(rootKey, { profile: 'root', subject: parseName('CN=exporter test root') });
const issuer = createIssuer(parseCertificate(ca.der), rootKey);

function leaf(profile: 'server' | 'client', cn: string, o: { notBefore?: Date; notAfter?: Date } = {}) {
  const key = generateKey('p256');
  const cert = issuer.issue({
    profile,
    subject: parseName(`CN=${cn}`),
    ...(profile === 'server' ? { sans: [{ type: 'ip' as const, value: '127.0.0.1' }] } : {}),
    publicKey: spkiOf(key),
    ttlMs: 2 * HOUR,
    ...o,
    unchecked: o.notAfter !== undefined,
  });
  return { key: exportPrivateKeyPem(key), cert };
}

function write(rel: string, data: string): string {
  const p = join(root, rel);
  mkdirSync(join(p, '..'), { recursive: true });
  writeFileSync(p, data);
  return p;
}

interface TlsPeer {
  port: number;
  close(): Promise<void>;
}

async function tlsServer(cert: IssuedCertificate, key: string, requireClient = false): Promise<TlsPeer> {
  const server: Server = createServer(
    {
      cert: cert.pem,
      key,
      ...(requireClient ? { ca: ca.pem, requestCert: true, rejectUnauthorized: true } : {}),
    },
    // Like a real server: keep the connection open until the client leaves.
    (s) => s.on('error', () => undefined),
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

let good: TlsPeer;
let expired: TlsPeer;
let mtls: TlsPeer;
const goodLeaf = leaf('server', 'good.exporter.test');
const expiredLeaf = leaf('server', 'expired.exporter.test', {
  notBefore: new Date(Date.now() - 3 * HOUR),
  notAfter: new Date(Date.now() - HOUR),
});
const clientLeaf = leaf('client', 'probe-client');
const clock: Clock = { now: () => new Date() };

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'mtls-exporter-'));
  [good, expired, mtls] = await Promise.all([
    tlsServer(goodLeaf.cert, goodLeaf.key),
    tlsServer(expiredLeaf.cert, expiredLeaf.key),
    tlsServer(goodLeaf.cert, goodLeaf.key, true),
  ]);
});

afterAll(async () => {
  await Promise.all([good.close(), expired.close(), mtls.close()]);
  rmSync(root, { recursive: true, force: true });
});

describe('globs', () => {
  it('matches *, ?, [..] and ** like a shell, skipping dot entries such as ..data', () => {
    write('g/a/cert.pem', 'x');
    write('g/b/cert.pem', 'x');
    write('g/b/deep/er/c1.crt', 'x');
    write('g/b/..v-1/cert.pem', 'x');
    write('g/.hidden.pem', 'x');
    symlinkSync(join(root, 'g/a/cert.pem'), join(root, 'g/link.pem'));
    expect(expandGlob(join(root, 'g/*/cert.pem'))).toEqual([
      join(root, 'g/a/cert.pem'),
      join(root, 'g/b/cert.pem'),
    ]);
    expect(expandGlob(join(root, 'g/**/*.crt'))).toEqual([join(root, 'g/b/deep/er/c1.crt')]);
    expect(expandGlob(join(root, 'g/*.pem'))).toEqual([join(root, 'g/link.pem')]);
    expect(expandGlob(join(root, 'g/[ab]/cert.pem'))).toHaveLength(2);
    expect(expandGlob(join(root, 'g/[!a]/cert.pem'))).toEqual([join(root, 'g/b/cert.pem')]);
    expect(expandGlob('g/a/cert.pem', { cwd: root })).toEqual([join(root, 'g/a/cert.pem')]);
    expect(expandGlob(join(root, 'g/nope/*.pem'))).toEqual([]);
    expect(segmentRegExp('c?rt.pem').test('cert.pem')).toBe(true);
    expect(segmentRegExp('*.pem').test('a.pem.bak')).toBe(false);
    expect(expandGlob(join(root, 'g/**/*'), { maxFiles: 2 })).toHaveLength(2);
  });
});

describe('files and lifetime', () => {
  it('reads every certificate of a bundle, skips key files, and reports garbage', async () => {
    const bundle = write('f/bundle.pem', goodLeaf.cert.pem + ca.pem);
    const r = await readCertificateFile(bundle);
    expect(r.ok && r.certificates.map((c) => c.position)).toEqual(['leaf', 'root']);
    expect(r.ok && r.certificates[0]?.notAfter.getTime()).toBe(goodLeaf.cert.notAfter.getTime());
    const keyOnly = await readCertificateFile(write('f/key.pem', goodLeaf.key));
    expect(keyOnly).toMatchObject({ ok: true, certificates: [] });
    const bad = await readCertificateFile(write('f/bad.pem', 'not a certificate'));
    expect(bad.ok).toBe(false);
  });

  it('the remaining ratio is 1 at notBefore, 0.5 halfway, 0 after expiry, clamped', () => {
    const f = { notBefore: new Date(0), notAfter: new Date(1000) };
    expect(remainingRatio(f, new Date(0))).toBe(1);
    expect(remainingRatio(f, new Date(500))).toBe(0.5);
    expect(remainingRatio(f, new Date(2000))).toBe(0);
    expect(remainingRatio(f, new Date(-5000))).toBe(1);
  });
});

describe('config', () => {
  it('rejects unknown keys, bad addresses, a cert without key, and an empty watch list', () => {
    const bad = (doc: unknown): string | undefined => {
      try {
        parseExporterConfig(doc);
        return undefined;
      } catch (e) {
        return isMtlsError(e, 'MTLS_CONFIG_INVALID') ? e.message : 'other';
      }
    };
    expect(bad({ files: ['a'], extra: 1 })).toMatch(/extra/);
    expect(bad({ endpoints: [{ address: 'nohost' }] })).toMatch(/endpoints\.0\.address/);
    expect(bad({ endpoints: [{ address: 'a:443', cert: 'c.pem' }] })).toMatch(/cert and key/);
    expect(bad({})).toMatch(/nothing to watch/);
    expect(bad({ files: ['a'], interval: 'soon' })).toMatch(/interval/);
    expect(bad({ endpoints: [{ address: 'a:1' }, { address: 'a:1' }] })).toMatch(/twice/);
    const ok = parseExporterConfig({ files: ['certs/*.pem'], interval: '15s' }, 'x', '/base');
    expect(ok).toMatchObject({ files: ['/base/certs/*.pem'], interval: 15_000, listen: '127.0.0.1:9102' });
  });
});

describe('docs/exporter.md', () => {
  it('its exporter.yaml example is valid and its alert rules are YAML with the documented alerts', () => {
    const doc = readFileSync(new URL('../../docs/exporter.md', import.meta.url), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => parseYaml(m[1]!) as unknown);
    const config = parseExporterConfig(blocks[0], 'docs/exporter.md', '/');
    expect(config.endpoints.map((e) => e.name ?? e.address)).toEqual(['api.example.org:443', 'orders']);
    const rules = blocks[1] as { groups: { rules: { alert: string; expr: string }[] }[] };
    const alerts = rules.groups.flatMap((g) => g.rules);
    expect(alerts.map((r) => r.alert)).toContain('CertificateRenewalLate');
    expect(alerts.find((r) => r.alert === 'CertificateRenewalLate')?.expr).toMatch(
      /mtls_exporter_certificate_lifetime_remaining_ratio\{position="leaf"\}\) < 1\/3/,
    );
    expect(alerts.find((r) => r.alert === 'TlsProbeFailing')?.expr).toBe('mtls_exporter_probe_success == 0');
  });
});

describe('probes', () => {
  it('a good server verifies; its chain is read', async () => {
    const r = await probeEndpoint(
      { endpoint: 'good', host: '127.0.0.1', port: good.port, trust: [parseCertificate(ca.der)] },
      { timeoutMs: 5_000, clock },
    );
    expect(r).toMatchObject({ success: true, verified: true });
    expect(r.chain[0]?.serial).toBe(goodLeaf.cert.serial);
  });

  it('an expired server certificate is read but fails with reason expired', async () => {
    const r = await probeEndpoint(
      { endpoint: 'expired', host: '127.0.0.1', port: expired.port, trust: [parseCertificate(ca.der)] },
      { timeoutMs: 5_000, clock },
    );
    expect(r).toMatchObject({ success: false, verified: false, reason: 'expired' });
    expect(r.chain[0]?.notAfter.getTime()).toBe(expiredLeaf.cert.notAfter.getTime());
  });

  it('an unknown CA, a refused port, and a server that never answers get their reasons', async () => {
    const other = selfSign(generateKey('p256'), { profile: 'root', subject: parseName('CN=other') });
    const unknown = await probeEndpoint(
      { endpoint: 'u', host: '127.0.0.1', port: good.port, trust: [parseCertificate(other.der)] },
      { timeoutMs: 5_000, clock },
    );
    expect(['unknown_ca', 'missing_intermediate']).toContain(unknown.reason);
    const closedPort = await new Promise<number>((r) => {
      const s = createNetServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => r(p));
      });
    });
    const refused = await probeEndpoint(
      { endpoint: 'r', host: '127.0.0.1', port: closedPort },
      { timeoutMs: 5_000, clock },
    );
    expect(refused.reason).toBe('connect_refused');
    const held: Socket[] = [];
    const silent: NetServer = createNetServer((sock) => void held.push(sock));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const t = await probeEndpoint(
        { endpoint: 't', host: '127.0.0.1', port: (silent.address() as AddressInfo).port },
        { timeoutMs: 300, clock },
      );
      expect(t.reason).toBe('connect_timeout');
    } finally {
      for (const sock of held) sock.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
    expect(
      reasonForError(Object.assign(new Error('x'), { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' })),
    ).toBe('client_cert_rejected');
  });

  it('an mTLS server: refused without a client certificate, verified with one', async () => {
    const trust = [parseCertificate(ca.der)];
    const without = await probeEndpoint(
      { endpoint: 'm', host: '127.0.0.1', port: mtls.port, trust },
      { timeoutMs: 5_000, clock },
    );
    expect(without.success).toBe(false);
    const withCert = await probeEndpoint(
      {
        endpoint: 'm',
        host: '127.0.0.1',
        port: mtls.port,
        trust,
        cert: Buffer.from(clientLeaf.cert.pem),
        key: Buffer.from(clientLeaf.key),
      },
      { timeoutMs: 5_000, clock },
    );
    expect(withCert).toMatchObject({ success: true, verified: true });
  });
});

describe('startExporter', () => {
  it('serves the metrics: expiry = notAfter, ratio within [0,1], probe success 1/0, errors counted', async () => {
    const caFile = write('e/ca.pem', ca.pem);
    write('e/certs/good.pem', goodLeaf.cert.pem);
    write('e/certs/broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    const config = parseExporterConfig({
      listen: '127.0.0.1:0',
      files: [join(root, 'e/certs/*.pem')],
      endpoints: [
        { address: `127.0.0.1:${good.port}`, name: 'good', ca: caFile },
        { address: `127.0.0.1:${expired.port}`, name: 'expired', ca: caFile },
      ],
    });
    const running = await startExporter(config, { defaultMetrics: false, clock });
    try {
      const res = await fetch(`http://127.0.0.1:${running.port}/metrics`);
      const text = await res.text();
      if (process.env.SHOW_METRICS) console.log(text);
      const value = (re: RegExp): number => Number(re.exec(text)?.[1]);
      const file = join(root, 'e/certs/good.pem');
      expect(
        value(
          new RegExp(
            `mtls_exporter_certificate_expiry_timestamp_seconds\\{source="${file}",kind="file",[^}]*position="leaf"\\} (\\S+)`,
          ),
        ),
      ).toBe(goodLeaf.cert.notAfter.getTime() / 1000);
      const ratio = value(
        /mtls_exporter_certificate_lifetime_remaining_ratio\{source="good",kind="endpoint"[^}]*\} (\S+)/,
      );
      expect(ratio).toBeGreaterThan(0.4);
      expect(ratio).toBeLessThanOrEqual(1);
      expect(value(/mtls_exporter_certificate_lifetime_remaining_ratio\{source="expired"[^}]*\} (\S+)/)).toBe(
        0,
      );
      expect(value(/mtls_exporter_probe_success\{endpoint="good"\} (\S+)/)).toBe(1);
      expect(value(/mtls_exporter_probe_success\{endpoint="expired"\} (\S+)/)).toBe(0);
      expect(value(/mtls_exporter_probe_error\{endpoint="expired",reason="expired"\} (\S+)/)).toBe(1);
      expect(text).not.toMatch(/mtls_exporter_probe_error\{endpoint="good"/);
      expect(value(/^mtls_exporter_files_read_errors_total (\S+)/m)).toBe(1);
      expect(value(/^mtls_exporter_files_matched (\S+)/m)).toBe(2);
      const health = await fetch(`http://127.0.0.1:${running.port}/healthz`);
      expect(health.status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${running.port}/nope`)).status).toBe(404);
    } finally {
      await running.close();
    }
  });

  it('a taken port is MTLS_EXPORTER_LISTEN', async () => {
    const first = await startExporter(
      parseExporterConfig({ listen: '127.0.0.1:0', files: ['/nonexistent/*.pem'] }),
      {
        defaultMetrics: false,
      },
    );
    try {
      await expect(
        startExporter(
          parseExporterConfig({ listen: `127.0.0.1:${first.port}`, files: ['/nonexistent/*.pem'] }),
          {
            defaultMetrics: false,
          },
        ),
      ).rejects.toSatisfy((e: unknown) => isMtlsError(e, 'MTLS_EXPORTER_LISTEN'));
    } finally {
      await first.close();
    }
  });
});
