// The agent engine: one worker per identity. Each worker loads its published files, decides what is
// due (enroll, renew, refresh the trust bundle, retry after a failure), does it, publishes a new
// version atomically, runs the reload hooks, writes status.json and sleeps until the next deadline.
import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createCaClient, fetchPinnedRoots } from '../ca/index.js';
import { MtlsError } from '../errors/index.js';
import { readInput } from '../files/index.js';
import {
  createCsr,
  encodePem,
  exportPrivateKeyPem,
  generateKey,
  keyMatchesSpki,
  OID,
  readCertificates,
  systemClock,
  type Clock,
  type DistinguishedName,
  type San,
} from '../pki/index.js';
import type { Logger } from '../telemetry/index.js';
import type { AgentConfig, IdentityConfig } from './config.js';
import {
  publishVersion,
  pruneVersions,
  readStatus,
  tryReadAgentFiles,
  writeStatus,
  type AgentFiles,
  type AgentStatus,
} from './files.js';
import { describeHook, hookKind, runHook } from './hooks.js';
import { createAgentMetrics, failureOf, type AgentMetrics } from './metrics.js';
import {
  backoffDelay,
  lifetimeRemainingRatio,
  renewalTime,
  retryTime,
  whatIsDue,
  type Due,
} from './schedule.js';
import { describeRoots, mergeTrust, type TrustRoot } from './trust.js';

export interface AgentChange {
  identity: string;
  dir: string;
  /** enrolled: a first (or new) certificate from a token; renewed; trust: only ca.pem changed. */
  reason: 'enrolled' | 'renewed' | 'trust';
  serial: string;
  notAfter: Date;
  version: string;
}

export interface AgentOptions {
  logger: Logger;
  clock?: Clock;
  /** Called after each published change (after the hooks); errors are logged, never fatal. */
  onChange?: (change: AgentChange) => void | Promise<void>;
  metrics?: AgentMetrics;
  /** Uniform [0, 1) source for jitter and backoff (tests pin it). */
  random?: () => number;
}

export interface RunningAgent {
  /** Resolves once every identity holds a valid certificate; rejects if stopped before. */
  ready: Promise<void>;
  status(): AgentStatus[];
  stop(): Promise<void>;
  metrics: AgentMetrics;
  /** http://host:port of the metrics listener, when configured. */
  metricsUrl: string | undefined;
}

interface CaAnswer {
  serial: string;
  certificate: string;
  chain: string;
  ca: string;
  notAfter: string;
}

const MAX_SLEEP_MS = 60_000;

function ttlString(ms: number | undefined): Record<string, string> {
  return ms === undefined ? {} : { ttl: `${Math.max(1, Math.ceil(ms / 1000))}s` };
}

/** uid/gid from a number or a name in /etc/passwd, /etc/group. */
function resolveId(v: string | number | undefined, db: '/etc/passwd' | '/etc/group'): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  if (/^\d+$/.test(v)) return Number(v);
  let text = '';
  try {
    text = readFileSync(db, 'utf8');
  } catch {
    // fall through to the error
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === v && f[2] !== undefined) return Number(f[2]);
  }
  throw new MtlsError(
    'MTLS_CONFIG_INVALID',
    `"${v}" is not a ${db === '/etc/passwd' ? 'user' : 'group'} on this machine.`,
    {
      fix: `Create it, or give a numeric ${db === '/etc/passwd' ? 'uid' : 'gid'} in agent.yaml.`,
    },
  );
}

/** Splits the CA's answer into leaf, intermediates and roots, and checks it is for our key. */
function checkAnswer(
  r: CaAnswer,
  key: KeyObject,
): { certPem: string; chainPem: string; serial: string; notAfter: Date; notBefore: Date } {
  try {
    const leaf = readCertificates(Buffer.from(r.certificate), 'certificate from the CA')[0]!;
    if (!keyMatchesSpki(key, leaf.spki)) {
      throw new MtlsError(
        'MTLS_AGENT_BAD_ANSWER',
        'The CA answered with a certificate for another key; nothing was written.',
        {
          fix: 'Check that agent.yaml points at the right CA; report it to the CA operator with the serial.',
          details: { serial: leaf.serial },
        },
      );
    }
    const chain =
      typeof r.chain === 'string' && r.chain.includes('-----BEGIN')
        ? readCertificates(Buffer.from(r.chain), 'chain from the CA')
        : [];
    const intermediates = chain.filter((c) => !c.der.equals(leaf.der) && !c.subjectDer.equals(c.issuerDer));
    return {
      certPem: encodePem('CERTIFICATE', leaf.der),
      chainPem: intermediates.map((c) => encodePem('CERTIFICATE', c.der)).join(''),
      serial: leaf.serial,
      notAfter: leaf.notAfter,
      notBefore: leaf.notBefore,
    };
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_AGENT_BAD_ANSWER') throw e;
    throw new MtlsError(
      'MTLS_AGENT_BAD_ANSWER',
      `The CA's answer cannot be read: ${(e as Error).message}; nothing was written.`,
      {
        cause: e,
        fix: 'Check that ca.url / ca.mtlsUrl in agent.yaml point at an mtlskit CA.',
      },
    );
  }
}

class IdentityWorker {
  readonly id: IdentityConfig;
  readonly #cfg: AgentConfig;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #metrics: AgentMetrics;
  readonly #random: () => number;
  readonly #onChange: AgentOptions['onChange'];
  readonly #uid: number | undefined;
  readonly #gid: number | undefined;
  files: AgentFiles | undefined;
  #renewAt: Date | undefined;
  #retryAt: Date | undefined;
  #attempt = 0;
  #revoked = false;
  #trustPem: string | undefined;
  #trustRoots: TrustRoot[] = [];
  #lastPublished = new Map<string, Date>();
  #nextTrustAt: Date | undefined;
  #status: AgentStatus;

  constructor(
    cfg: AgentConfig,
    id: IdentityConfig,
    opts: Required<Pick<AgentOptions, 'logger' | 'clock' | 'metrics' | 'random'>> &
      Pick<AgentOptions, 'onChange'>,
  ) {
    this.#cfg = cfg;
    this.id = id;
    this.#log = opts.logger.child({ identity: id.name });
    this.#clock = opts.clock;
    this.#metrics = opts.metrics;
    this.#random = opts.random;
    this.#onChange = opts.onChange;
    this.#uid = resolveId(id.owner, '/etc/passwd');
    this.#gid = resolveId(id.group, '/etc/group');
    const prev = readStatus(id.dir);
    this.#status = {
      identity: id.name,
      renewals: prev?.renewals ?? { ok: 0, failed: 0 },
      ...(prev?.lastRenewalAt ? { lastRenewalAt: prev.lastRenewalAt } : {}),
      expired: false,
      trustBundle: { roots: [] },
      updatedAt: this.#clock.now().toISOString(),
    };
    for (const r of prev?.trustBundle.roots ?? []) {
      if (r.lastPublishedAt) this.#lastPublished.set(r.fingerprint, new Date(r.lastPublishedAt));
    }
  }

  status(): AgentStatus {
    return this.#status;
  }

  hasValidCertificate(now = this.#clock.now()): boolean {
    return this.files !== undefined && now < this.files.certificate.notAfter;
  }

  /** Loads the published files (if any) and the trust bundle; cleans leftovers of a crash. */
  init(): void {
    pruneVersions(this.id.dir);
    try {
      this.files = tryReadAgentFiles(this.id.dir);
    } catch (e) {
      this.#log.error(
        { code: (e as MtlsError).code, err: e },
        `ignoring the published files: ${(e as Error).message}`,
      );
      this.files = undefined;
    }
    if (this.files) this.#scheduleFor(this.files);
    const now = this.#clock.now();
    this.#setTrust(
      mergeTrust({
        currentPem: this.files?.caPem,
        publishedPem: this.#cfg.ca.caFile
          ? readInput(this.#cfg.ca.caFile, 'CA trust bundle (ca.caFile)').toString('latin1')
          : undefined,
        lastPublished: this.#lastPublished,
        now,
        retainUnpublishedMs: this.#cfg.trust.retainUnpublished,
      }).roots,
    );
    this.#refreshStatus();
  }

  #setTrust(roots: TrustRoot[]): void {
    this.#trustRoots = roots;
    this.#trustPem = roots.length
      ? roots.map((r) => encodePem('CERTIFICATE', r.cert.der)).join('')
      : undefined;
    for (const r of roots) this.#lastPublished.set(r.fingerprint, r.lastPublishedAt);
    this.#metrics.trustRoots(this.id.name, roots.length);
  }

  #scheduleFor(f: AgentFiles): void {
    this.#renewAt = renewalTime(
      {
        notBefore: f.certificate.notBefore,
        notAfter: f.certificate.notAfter,
        ...(f.writtenAt ? { obtainedAt: f.writtenAt } : {}),
      },
      this.id.renewAt,
      this.id.jitter,
      this.#random(),
    );
  }

  async #trust(): Promise<string> {
    if (this.#trustPem) return this.#trustPem;
    const { rootFingerprint, rootsUrl } = this.#cfg.ca;
    if (rootFingerprint && rootsUrl) {
      const pem = await fetchPinnedRoots(rootsUrl, rootFingerprint);
      this.#setTrust(
        mergeTrust({
          currentPem: undefined,
          publishedPem: pem,
          now: this.#clock.now(),
          retainUnpublishedMs: this.#cfg.trust.retainUnpublished,
        }).roots,
      );
      this.#nextTrustAt = new Date(this.#clock.now().getTime() + this.#cfg.trust.refreshEvery);
      return pem;
    }
    throw new MtlsError('MTLS_CA_TLS', 'No trust bundle for the CA.', {
      fix: 'Set ca.caFile, or ca.rootFingerprint with ca.rootsUrl, in agent.yaml.',
    });
  }

  /** Does what is due now; returns when to wake up next. */
  async step(opts: { forceTrust?: boolean } = {}): Promise<Date> {
    const now = this.#clock.now();
    if (opts.forceTrust || !this.#nextTrustAt || now >= this.#nextTrustAt) await this.#refreshTrust();
    const due = this.#due(now);
    if (due.action !== 'wait') await this.#attemptIssue(due);
    return this.#nextWake();
  }

  #due(now: Date): Due {
    return whatIsDue({
      now,
      hasCertificate: this.files !== undefined,
      ...(this.files ? { notAfter: this.files.certificate.notAfter } : {}),
      ...(this.#renewAt ? { renewAt: this.#renewAt } : {}),
      ...(this.#retryAt ? { retryAt: this.#retryAt } : {}),
      reenroll: this.id.reenroll,
      revoked: this.#revoked,
    });
  }

  /** True when something is due now (for --once). */
  isDue(): boolean {
    return this.#due(this.#clock.now()).action !== 'wait';
  }

  #nextWake(): Date {
    const now = this.#clock.now();
    const due = this.#due(now);
    let t = due.action === 'wait' ? due.until.getTime() : now.getTime();
    if (this.#nextTrustAt) t = Math.min(t, this.#nextTrustAt.getTime());
    // Wake at expiry too, to say so.
    if (this.files && this.files.certificate.notAfter > now)
      t = Math.min(t, this.files.certificate.notAfter.getTime());
    return new Date(Math.max(t, now.getTime()));
  }

  async #refreshTrust(): Promise<void> {
    const now = this.#clock.now();
    if (!this.#trustPem && !this.#cfg.ca.rootFingerprint) return;
    try {
      const trust = await this.#trust();
      const published = (
        await createCaClient({ url: this.#cfg.ca.url, ca: trust }).getRaw(
          '/v1/roots',
          'application/x-pem-file',
        )
      ).toString('latin1');
      await this.#applyTrust(published, now);
      this.#nextTrustAt = new Date(now.getTime() + this.#cfg.trust.refreshEvery);
    } catch (e) {
      const err =
        e instanceof MtlsError ? e : new MtlsError('MTLS_CA_UNREACHABLE', (e as Error).message, { cause: e });
      this.#log.warn({ code: err.code }, `trust bundle refresh failed: ${err.message}`);
      this.#nextTrustAt = new Date(
        now.getTime() + Math.min(this.#cfg.trust.refreshEvery, Math.max(this.#cfg.retry.initial, 5000)),
      );
    }
  }

  /** Merges published roots into the bundle; republishes ca.pem when it changed. */
  async #applyTrust(publishedPem: string, now: Date): Promise<void> {
    const merged = mergeTrust({
      currentPem: this.#trustPem,
      publishedPem,
      lastPublished: this.#lastPublished,
      now,
      retainUnpublishedMs: this.#cfg.trust.retainUnpublished,
    });
    if (merged.roots.length === 0) return;
    const changed = merged.added.length > 0 || merged.removed.length > 0;
    this.#setTrust(merged.roots);
    if (merged.added.length)
      this.#log.info({ added: merged.added }, `trust bundle: ${merged.added.length} new root(s) from the CA`);
    if (merged.removed.length)
      this.#log.info(
        { removed: merged.removed },
        `trust bundle: ${merged.removed.length} root(s) dropped (expired or unpublished)`,
      );
    const f = this.files;
    if (changed && f && f.caPem !== merged.pem) {
      const version = publishVersion(
        this.id.dir,
        { keyPem: f.keyPem, certPem: f.certPem, chainPem: f.chainPem, caPem: merged.pem },
        this.#ownership(now),
      );
      this.files = tryReadAgentFiles(this.id.dir);
      await this.#changed({
        reason: 'trust',
        serial: f.certificate.serial,
        notAfter: f.certificate.notAfter,
        version,
      });
    }
    this.#refreshStatus();
  }

  #ownership(now: Date): { uid?: number; gid?: number; keyMode: number; now: Date } {
    return {
      ...(this.#uid !== undefined ? { uid: this.#uid } : {}),
      ...(this.#gid !== undefined ? { gid: this.#gid } : {}),
      keyMode: this.id.mode,
      now,
    };
  }

  #token(reason: string): string {
    if (this.id.tokenFile) {
      const t = readInput(this.id.tokenFile, 'enrollment token file (tokenFile)').toString('utf8').trim();
      if (t) return t;
    }
    if (this.id.token && reason === 'no_certificate') return this.id.token;
    throw new MtlsError(
      'MTLS_AGENT_NO_TOKEN',
      `${this.id.name} needs an enrollment token (${reason.replace('_', ' ')}) and has none.`,
      {
        fix: this.id.tokenFile
          ? `Put a new token (mtls ca token …) into ${this.id.tokenFile}; the agent reads it at its next attempt.`
          : 'Add token or tokenFile to this identity in agent.yaml (mtls ca token … prints one).',
      },
    );
  }

  async #attemptIssue(due: Exclude<Due, { action: 'wait' }>): Promise<void> {
    const now = this.#clock.now();
    const expired = this.files !== undefined && now >= this.files.certificate.notAfter;
    if (expired) {
      this.#log.error(
        { event: 'expired', notAfter: this.files!.certificate.notAfter.toISOString(), action: due.action },
        `RUNNING ON AN EXPIRED CERTIFICATE: ${this.id.name} expired at ${this.files!.certificate.notAfter.toISOString()}; ${due.action === 'enroll' ? 're-enrolling with tokenFile' : 'trying to renew (set reenroll: true with tokenFile to recover without an operator)'}`,
      );
    }
    try {
      const trust = await this.#trust();
      const key = generateKey(this.id.keyType);
      let answer: CaAnswer;
      if (due.action === 'enroll') {
        const token = this.#token(due.reason);
        const sans = this.id.sans.map((s): San =>
          s.startsWith('spiffe://')
            ? { type: 'uri', value: s }
            : ({ type: s.slice(0, s.indexOf(':')), value: s.slice(s.indexOf(':') + 1) } as San),
        );
        const subject: DistinguishedName = this.id.commonName
          ? [[{ oid: '2.5.4.3', value: this.id.commonName }]]
          : [];
        const csr = createCsr({ key, subject, sans });
        answer = await createCaClient({ url: this.#cfg.ca.url, ca: trust }).post<CaAnswer>('/v1/sign', {
          token,
          csr: csr.pem,
          ...ttlString(this.id.ttl),
        });
      } else {
        const f = this.files!;
        const csr = createCsr({ key, subject: f.certificate.subject });
        // A certificate without clientAuth (a server certificate) cannot authenticate a TLS client:
        // the mTLS listener would refuse it in the handshake, so it renews at the public endpoint
        // with a proof of possession of its key (as `mtls renew` does). Same for an expired one:
        // the public endpoint lets the CA apply its renewAfterExpiry grace.
        const eku = f.certificate.extKeyUsage;
        const canAuthenticate = !eku || eku.includes(OID.clientAuth) || eku.includes(OID.anyExtendedKeyUsage);
        if (expired || !canAuthenticate) {
          const proof = cryptoSign(
            f.key.asymmetricKeyType === 'ed25519' ? null : 'sha256',
            createHash('sha256').update(csr.der).digest(),
            f.key,
          ).toString('base64');
          answer = await createCaClient({ url: this.#cfg.ca.url, ca: trust }).post<CaAnswer>('/v1/renew', {
            certificate: f.certPem,
            csr: csr.pem,
            proof,
            ...ttlString(this.id.ttl),
          });
        } else {
          answer = await createCaClient({
            url: this.#cfg.ca.mtlsUrl,
            ca: trust,
            cert: f.fullchainPem,
            key: f.keyPem,
          }).post<CaAnswer>('/v1/renew', { csr: csr.pem, ...ttlString(this.id.ttl) });
        }
      }
      const leaf = checkAnswer(answer, key);
      const merged = mergeTrust({
        currentPem: trust,
        publishedPem: typeof answer.ca === 'string' ? answer.ca : undefined,
        lastPublished: this.#lastPublished,
        now,
        retainUnpublishedMs: this.#cfg.trust.retainUnpublished,
      });
      const version = publishVersion(
        this.id.dir,
        {
          keyPem: exportPrivateKeyPem(key),
          certPem: leaf.certPem,
          chainPem: leaf.chainPem,
          caPem: merged.pem || trust,
        },
        this.#ownership(now),
      );
      if (merged.roots.length) this.#setTrust(merged.roots);
      this.files = tryReadAgentFiles(this.id.dir);
      this.#scheduleFor(this.files!);
      this.#retryAt = undefined;
      this.#attempt = 0;
      this.#revoked = false;
      this.#status.renewals.ok++;
      this.#status.lastRenewalAt = now.toISOString();
      delete this.#status.lastError;
      this.#metrics.renewal(this.id.name, due.action, 'ok');
      this.#metrics.backoff(this.id.name, 0);
      this.#log.info(
        {
          event: due.action === 'enroll' ? 'enrolled' : 'renewed',
          serial: leaf.serial,
          notAfter: leaf.notAfter.toISOString(),
          nextRenewalAt: this.#renewAt?.toISOString(),
          version,
        },
        `${due.action === 'enroll' ? 'enrolled' : 'renewed'} ${this.id.name}: serial ${leaf.serial}, valid until ${leaf.notAfter.toISOString()}, next renewal ${this.#renewAt?.toISOString() ?? '?'}`,
      );
      this.#refreshStatus();
      await this.#changed({
        reason: due.action === 'enroll' ? 'enrolled' : 'renewed',
        serial: leaf.serial,
        notAfter: leaf.notAfter,
        version,
      });
    } catch (e) {
      this.#failed(e, due, now, expired);
    }
  }

  #failed(e: unknown, due: Exclude<Due, { action: 'wait' }>, now: Date, expired: boolean): void {
    const err =
      e instanceof MtlsError ? e : new MtlsError('MTLS_FILE_WRITE', (e as Error).message, { cause: e });
    const result = failureOf(err.code);
    if (err.code === 'MTLS_CA_REVOKED') this.#revoked = true;
    const delay = backoffDelay(
      { initialMs: this.#cfg.retry.initial, maxMs: this.#cfg.retry.max },
      this.#attempt,
      this.#random(),
    );
    this.#attempt++;
    const valid =
      this.files && now < this.files.certificate.notAfter ? this.files.certificate.notAfter : undefined;
    this.#retryAt = retryTime(now, delay, valid);
    this.#status.renewals.failed++;
    this.#status.lastError = {
      code: err.code,
      message: err.message,
      at: now.toISOString(),
      attempt: this.#attempt,
    };
    this.#metrics.renewal(this.id.name, due.action, result);
    this.#metrics.lastError(this.id.name, now);
    this.#metrics.backoff(this.id.name, delay / 1000);
    const what = due.action === 'enroll' ? 'enrollment' : 'renewal';
    const revokedHint =
      err.code === 'MTLS_CA_REVOKED'
        ? this.id.reenroll
          ? ' The certificate is revoked: re-enrolling with tokenFile.'
          : ' The certificate is revoked and can never renew: put a new token in tokenFile with reenroll: true, or enroll again.'
        : '';
    const fields = {
      event: `${due.action}_failed`,
      code: err.code,
      result,
      attempt: this.#attempt,
      retryInSeconds: Math.round(delay / 100) / 10,
      retryAt: this.#retryAt.toISOString(),
      ...(err.fix ? { fix: err.fix } : {}),
    };
    const msg = `${what} of ${this.id.name} failed (${err.code}): ${err.message}${revokedHint} Retrying in ${(delay / 1000).toFixed(1)}s${valid ? `; the current certificate stays in use until ${valid.toISOString()}` : ''}.`;
    if (expired || !this.files || err.code === 'MTLS_CA_REVOKED' || result === 'bad_answer')
      this.#log.error(fields, msg);
    else this.#log.warn(fields, msg);
    this.#refreshStatus();
  }

  async #changed(c: Omit<AgentChange, 'identity' | 'dir'>): Promise<void> {
    const change: AgentChange = { identity: this.id.name, dir: this.id.dir, ...c };
    for (const h of this.id.hooks) {
      const kind = hookKind(h);
      try {
        await runHook(h, { identity: this.id.name, dir: this.id.dir });
        this.#metrics.hook(this.id.name, kind, true);
        this.#log.debug({ hook: kind }, `hook ${describeHook(h)} ok`);
      } catch (e) {
        this.#metrics.hook(this.id.name, kind, false);
        this.#log.warn(
          { event: 'hook_failed', hook: kind, code: (e as MtlsError).code },
          (e as Error).message,
        );
      }
    }
    if (this.#onChange) {
      try {
        await this.#onChange(change);
      } catch (e) {
        this.#log.warn({ err: e }, `onChange failed: ${(e as Error).message}`);
      }
    }
  }

  #refreshStatus(): void {
    const now = this.#clock.now();
    const f = this.files;
    const c = f?.certificate;
    const lifetime = c
      ? { notBefore: c.notBefore, notAfter: c.notAfter, ...(f.writtenAt ? { obtainedAt: f.writtenAt } : {}) }
      : undefined;
    const due = this.#due(now);
    const next = due.action === 'wait' ? due.until : now;
    const s = this.#status;
    this.#status = {
      identity: this.id.name,
      ...(c
        ? { serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() }
        : {}),
      nextRenewalAt: next.toISOString(),
      ...(s.lastError ? { lastError: s.lastError } : {}),
      ...(s.lastRenewalAt ? { lastRenewalAt: s.lastRenewalAt } : {}),
      renewals: s.renewals,
      expired: c ? now >= c.notAfter : false,
      ...(this.#retryAt
        ? { retryBackoffSeconds: Math.max(0, (this.#retryAt.getTime() - now.getTime()) / 1000) }
        : {}),
      trustBundle: { roots: describeRoots(this.#trustRoots) },
      updatedAt: now.toISOString(),
    };
    this.#metrics.certificate(
      this.id.name,
      c?.notAfter,
      lifetime ? lifetimeRemainingRatio(lifetime, now) : undefined,
    );
    this.#metrics.nextRenewal(this.id.name, next);
    try {
      writeStatus(this.id.dir, this.#status);
    } catch (e) {
      this.#log.warn({ err: e }, `cannot write status.json: ${(e as Error).message}`);
    }
  }

  /** Metrics that move with time (the lifetime ratio) are refreshed at scrape. */
  touch(): void {
    const f = this.files;
    if (!f) return;
    const c = f.certificate;
    this.#metrics.certificate(
      this.id.name,
      c.notAfter,
      lifetimeRemainingRatio(
        { notBefore: c.notBefore, notAfter: c.notAfter, ...(f.writtenAt ? { obtainedAt: f.writtenAt } : {}) },
        this.#clock.now(),
      ),
    );
  }
}

function makeWorkers(
  config: AgentConfig,
  opts: AgentOptions,
): { workers: IdentityWorker[]; metrics: AgentMetrics } {
  const metrics = opts.metrics ?? createAgentMetrics();
  const full = {
    logger: opts.logger,
    clock: opts.clock ?? systemClock,
    metrics,
    random: opts.random ?? Math.random,
    ...(opts.onChange ? { onChange: opts.onChange } : {}),
  };
  return { workers: config.identities.map((id) => new IdentityWorker(config, id, full)), metrics };
}

/**
 * --once: each identity's due work once (trust refresh included). ok is false when any identity ends
 * without a valid certificate or its attempt failed.
 */
export async function runAgentOnce(
  config: AgentConfig,
  opts: AgentOptions,
): Promise<{ ok: boolean; statuses: AgentStatus[] }> {
  const { workers } = makeWorkers(config, opts);
  let ok = true;
  for (const w of workers) {
    w.init();
    const before = w.status().renewals.failed;
    await w.step({ forceTrust: true });
    if (w.status().renewals.failed > before || !w.hasValidCertificate()) ok = false;
  }
  return { ok, statuses: workers.map((w) => w.status()) };
}

export async function startAgent(config: AgentConfig, opts: AgentOptions): Promise<RunningAgent> {
  const clock = opts.clock ?? systemClock;
  const { workers, metrics } = makeWorkers(config, opts);
  let stopped = false;
  const wakers = new Set<() => void>();
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.max(0, Math.min(ms, MAX_SLEEP_MS)));
      wakers.add(done);
    });
  let resolveReady!: () => void;
  let rejectReady!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  ready.catch(() => undefined);
  const checkReady = (): void => {
    if (workers.every((w) => w.hasValidCertificate())) resolveReady();
  };
  for (const w of workers) w.init();
  let server: Server | undefined;
  let metricsUrl: string | undefined;
  if (config.metrics) {
    const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(config.metrics.listen)!;
    server = createServer((req, res) => {
      if (req.url === '/metrics') {
        for (const w of workers) w.touch();
        metrics.render().then(
          (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
          (e: unknown) => res.writeHead(500).end(String(e)),
        );
        return;
      }
      if (req.url === '/healthz') {
        const bad = workers.filter((w) => !w.hasValidCertificate()).map((w) => w.id.name);
        res
          .writeHead(bad.length ? 503 : 200, { 'content-type': 'application/json' })
          .end(
            JSON.stringify(
              bad.length ? { status: 'unhealthy', withoutValidCertificate: bad } : { status: 'ok' },
            ),
          );
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve, reject) => {
      server!.once('error', (e) =>
        reject(
          new MtlsError(
            'MTLS_CONFIG_INVALID',
            `The agent metrics listener cannot bind ${config.metrics!.listen}: ${e.message}.`,
            { cause: e, fix: 'Choose a free port for metrics.listen.' },
          ),
        ),
      );
      server!.listen(Number(m[2]), m[1], () => resolve());
    });
    const a = server.address() as AddressInfo;
    metricsUrl = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }
  const loops = workers.map(async (w) => {
    while (!stopped) {
      let wake: Date;
      try {
        wake = await w.step();
      } catch (e) {
        opts.logger.error({ identity: w.id.name, err: e }, `agent step failed: ${(e as Error).message}`);
        wake = new Date(clock.now().getTime() + config.retry.initial);
      }
      checkReady();
      if (stopped) break;
      await sleep(wake.getTime() - clock.now().getTime());
    }
  });
  return {
    ready,
    metrics,
    metricsUrl,
    status: () => workers.map((w) => w.status()),
    stop: async () => {
      stopped = true;
      for (const wake of [...wakers]) wake();
      await Promise.all(loops);
      const srv = server;
      if (srv) await new Promise<void>((r) => srv.close(() => r()));
      rejectReady(new Error('the agent stopped before every identity had a certificate'));
    },
  };
}
