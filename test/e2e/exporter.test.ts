// mtls exporter, the built binary: certificate files made at test time (one appearing after the
// start), a real nginx that requires mTLS (probed with our client certificate) and a second nginx
// that presents an expired certificate; /metrics is scraped and its values checked.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createIssuer,
  exportPrivateKeyPem,
  generateKey,
  parseCertificate,
  parseName,
  readCertificates,
  selfSign,
  spkiOf,
} from '../../src/pki/index.js';
import { MTLS_BIN, assertBuilt, errorCode, mtls } from '../support/cli.js';
import { startNginx, type Peer } from '../support/peers.js';
import { createPki, type Pki } from '../support/pki.js';
import { makeTempDir, removeTempDir } from '../support/tmp.js';

let root: string;
let pki: Pki;
let nginx: Peer | undefined;
let expiredNginx: Peer | undefined;
let exporter: ChildProcess | undefined;
let metricsUrl: string;
let stderr = '';
let expiredNotAfter: Date;

async function notAfterOf(path: string): Promise<number> {
  return readCertificates(await readFile(path), path)[0]!.notAfter.getTime() / 1000;
}

/** An expired server certificate (for 127.0.0.1) from a throwaway root, written as chain + key + root. */
async function writeExpired(dir: string): Promise<{ chain: string; key: string; ca: string }> {
  await mkdir(dir, { recursive: true });
  const rootKey = generateKey('p256');
  const ca = selfSign(rootKey, { profile: 'root', subject: parseName('CN=exporter e2e expired root') });
  const key = generateKey('p256');
  const now = Date.now();
  const leaf = createIssuer(parseCertificate(ca.der), rootKey).issue({
    profile: 'server',
    subject: parseName('CN=expired.e2e.example'),
    sans: [{ type: 'ip', value: '127.0.0.1' }],
    publicKey: spkiOf(key),
    notBefore: new Date(now - 48 * 3_600_000),
    notAfter: new Date(now - 3_600_000),
    unchecked: true,
  });
  expiredNotAfter = leaf.notAfter;
  const paths = { chain: join(dir, 'expired.pem'), key: join(dir, 'expired.key'), ca: join(dir, 'ca.pem') };
  await writeFile(paths.chain, leaf.pem);
  await writeFile(paths.key, exportPrivateKeyPem(key), { mode: 0o600 });
  await writeFile(paths.ca, ca.pem);
  return paths;
}

/** Starts the exporter and reads the bound address from its --json ready line. */
async function startExporter(configPath: string): Promise<string> {
  const proc = spawn(process.execPath, [MTLS_BIN, 'exporter', '--config', configPath, '--json'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  exporter = proc;
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`exporter not ready in 30 s: ${out}\n${stderr}`)),
      30_000,
    );
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      try {
        const ready = JSON.parse(out) as { ok: boolean; metrics: string };
        clearTimeout(timer);
        resolve(ready.metrics);
      } catch {
        // not the whole JSON document yet
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exporter exited ${code}: ${out}\n${stderr}`));
    });
  });
}

async function scrape(): Promise<string> {
  const r = await fetch(metricsUrl);
  expect(r.status).toBe(200);
  return r.text();
}

/** The value of the one sample whose name and labels match `re` (a capture group for the value). */
function sample(text: string, re: RegExp): number | undefined {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

beforeAll(async () => {
  assertBuilt();
  root = await makeTempDir('exporter');
  pki = await createPki(root);
  const expired = await writeExpired(join(root, 'expired'));
  [nginx, expiredNginx] = await Promise.all([
    startNginx({
      prefix: join(root, 'nginx'),
      certChain: pki.server.chain,
      key: pki.server.key,
      clientCa: pki.clientCa.bundle,
    }),
    startNginx({
      prefix: join(root, 'nginx-expired'),
      certChain: expired.chain,
      key: expired.key,
      clientCa: pki.clientCa.bundle,
    }),
  ]);
  await mkdir(join(root, 'watched'));
  await copyFile(pki.client.cert, join(root, 'watched', 'client.pem'));
  await copyFile(pki.client.key, join(root, 'watched', 'client.key.pem')); // a key: skipped, not an error
  const config = join(root, 'exporter.yaml');
  await writeFile(
    config,
    `listen: 127.0.0.1:0
interval: 2s
fileInterval: 1s
timeout: 5s
files: ["watched/*.pem"]
endpoints:
  - address: 127.0.0.1:${nginx.port}
    name: nginx-mtls
    servername: localhost
    ca: ${pki.server.ca}
    cert: ${pki.client.chain}
    key: ${pki.client.key}
  - address: 127.0.0.1:${expiredNginx.port}
    name: nginx-expired
    ca: ${expired.ca}
    cert: ${pki.client.chain}
    key: ${pki.client.key}
`,
  );
  metricsUrl = await startExporter(config);
});

afterAll(async () => {
  if (exporter && exporter.exitCode === null) {
    const gone = new Promise((r) => exporter!.once('exit', r));
    exporter.kill('SIGTERM');
    await gone;
  }
  await Promise.all([nginx?.stop(), expiredNginx?.stop()]);
  await removeTempDir(root);
});

describe('mtls exporter (built binary, real nginx)', () => {
  it('exports the watched file: expiry timestamp equals notAfter, ratio in (0, 1]', async () => {
    const text = await scrape();
    const file = esc(join(root, 'watched', 'client.pem'));
    const labels = `source="${file}",kind="file",subject="[^"]*",serial="[0-9a-f]+",position="leaf"`;
    expect(
      sample(
        text,
        new RegExp(`^mtls_exporter_certificate_expiry_timestamp_seconds\\{${labels}\\} (\\S+)$`, 'm'),
      ),
    ).toBe(await notAfterOf(pki.client.cert));
    const ratio = sample(
      text,
      new RegExp(`^mtls_exporter_certificate_lifetime_remaining_ratio\\{${labels}\\} (\\S+)$`, 'm'),
    );
    expect(ratio).toBeGreaterThan(0.9);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(sample(text, /^mtls_exporter_files_read_errors_total (\S+)$/m)).toBe(0);
  });

  it('probes nginx with our client certificate: success 1, the chain with leaf and intermediate', async () => {
    const text = await scrape();
    expect(sample(text, /^mtls_exporter_probe_success\{endpoint="nginx-mtls"\} (\S+)$/m)).toBe(1);
    expect(sample(text, /^mtls_exporter_probe_verified\{endpoint="nginx-mtls"\} (\S+)$/m)).toBe(1);
    expect(text).not.toMatch(/mtls_exporter_probe_error\{endpoint="nginx-mtls"/);
    const leafExpiry = sample(
      text,
      /^mtls_exporter_certificate_expiry_timestamp_seconds\{source="nginx-mtls",kind="endpoint",[^}]*position="leaf"\} (\S+)$/m,
    );
    expect(leafExpiry).toBe(await notAfterOf(pki.server.cert));
    expect(text).toMatch(
      /mtls_exporter_certificate_expiry_timestamp_seconds\{source="nginx-mtls",kind="endpoint",[^}]*position="intermediate"\}/,
    );
    const duration = sample(text, /^mtls_exporter_probe_duration_seconds\{endpoint="nginx-mtls"\} (\S+)$/m);
    expect(duration).toBeGreaterThan(0);
    console.log(
      `probe of nginx (mTLS, TLS 1.3, P-256): connect + handshake ${(duration! * 1000).toFixed(1)} ms`,
    );
  });

  it('an endpoint presenting an expired certificate: success 0, reason expired, ratio 0, expiry = notAfter', async () => {
    const text = await scrape();
    expect(sample(text, /^mtls_exporter_probe_success\{endpoint="nginx-expired"\} (\S+)$/m)).toBe(0);
    expect(
      sample(text, /^mtls_exporter_probe_error\{endpoint="nginx-expired",reason="expired"\} (\S+)$/m),
    ).toBe(1);
    expect(
      sample(
        text,
        /^mtls_exporter_certificate_lifetime_remaining_ratio\{source="nginx-expired",kind="endpoint",[^}]*\} (\S+)$/m,
      ),
    ).toBe(0);
    expect(
      sample(
        text,
        /^mtls_exporter_certificate_expiry_timestamp_seconds\{source="nginx-expired",kind="endpoint",[^}]*\} (\S+)$/m,
      ),
    ).toBe(expiredNotAfter.getTime() / 1000);
  });

  it('a file created after the start is picked up by the glob', async () => {
    const late = join(root, 'watched', 'late-server.pem');
    await copyFile(pki.server.chain, late);
    const re = new RegExp(
      `^mtls_exporter_certificate_expiry_timestamp_seconds\\{source="${esc(late)}",kind="file",[^}]*position="leaf"\\} (\\S+)$`,
      'm',
    );
    let value: number | undefined;
    for (let i = 0; i < 50 && value === undefined; i++) {
      value = sample(await scrape(), re);
      if (value === undefined) await sleep(200);
    }
    expect(value).toBe(await notAfterOf(pki.server.cert));
    const text = await scrape();
    // The chain file also holds the intermediate.
    expect(text).toMatch(new RegExp(`source="${esc(late)}",kind="file",[^}]*position="intermediate"`));
  });

  it('serves /healthz and stops cleanly on SIGTERM', async () => {
    const health = await fetch(metricsUrl.replace('/metrics', '/healthz'));
    expect(health.status).toBe(200);
    const code = await new Promise<number | null>((resolve) => {
      exporter!.once('exit', (c) => resolve(c));
      exporter!.kill('SIGTERM');
    });
    expect(code).toBe(0);
  });
});

describe('mtls exporter command line', () => {
  it('nothing to watch is a usage error (exit 2); an unknown config key is MTLS_CONFIG_INVALID', async () => {
    const none = await mtls(['exporter'], { cwd: root });
    expect(none.code).toBe(2);
    expect(errorCode(none)).toBe('MTLS_CLI_USAGE');
    const bad = join(root, 'bad-exporter.yaml');
    await writeFile(bad, 'files: ["*.pem"]\nintervall: 10s\n');
    const r = await mtls(['exporter', '--config', bad], { cwd: root });
    expect(r.code).toBe(2);
    expect(errorCode(r)).toBe('MTLS_CONFIG_INVALID');
    expect(r.stderr).toMatch(/intervall/);
  });

  it('--files and --listen 127.0.0.1:0 --json: serves the files given as flags', async () => {
    const proc = spawn(
      process.execPath,
      [MTLS_BIN, 'exporter', '--files', join(root, 'watched', '*.pem'), '--listen', '127.0.0.1:0', '--json'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    try {
      const ready = await new Promise<{ metrics: string; listen: { port: number } }>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`not ready: ${out}`)), 30_000);
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          try {
            resolve(JSON.parse(out) as { metrics: string; listen: { port: number } });
            clearTimeout(timer);
          } catch {
            // partial
          }
        });
        proc.once('exit', (c) => reject(new Error(`exited ${c}: ${out}`)));
      });
      expect(ready.listen.port).toBeGreaterThan(0);
      const text = await (await fetch(ready.metrics)).text();
      expect(
        sample(
          text,
          new RegExp(
            `^mtls_exporter_certificate_expiry_timestamp_seconds\\{source="${esc(join(root, 'watched', 'client.pem'))}",[^}]*\\} (\\S+)$`,
            'm',
          ),
        ),
      ).toBe(await notAfterOf(pki.client.cert));
    } finally {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await gone;
    }
  });
});
