// The authority: decides whether a request may get a certificate, issues it, stores it with its
// audit record before answering, revokes, and keeps the CRL current. Transport-free: the HTTP API
// calls it with what TLS proved (a verified client certificate) and what the body carried.
import { createHash, randomBytes, verify as cryptoVerify } from 'node:crypto';
import { MtlsError, type ErrorCode } from '../errors/index.js';
import {
  CLOCK_SKEW_MS,
  createCrl,
  fingerprint256,
  formatGeneralName,
  formatName,
  keyIdentifier,
  parseCertificate,
  publicKeyObject,
  readCertificates,
  readVerifiedCsr,
  requestedSans,
  systemClock,
  validateSan,
  getProfile,
  type Certificate,
  type Clock,
  type CrlReason,
  type ProfileName,
  type San,
} from '../pki/index.js';
import type { AuditInput, CertificateRecord, Store, TokenGrant } from '../store/index.js';
import { caChannels } from '../telemetry/index.js';
import type { FileCa } from './file-ca.js';
import {
  anyMatches,
  certificateIdentities,
  identityMatches,
  primaryIdentity,
  type CaConfig,
  type Provisioner,
} from './policy.js';

export interface AuthorityOptions {
  ca: FileCa;
  store: Store;
  config: CaConfig;
  clock?: Clock;
  /** URLs embedded in issued certificates (read per issuance: listeners may bind port 0 first). */
  urls?: () => { ocsp?: string; crl?: string };
}

export interface IssueResponse {
  serial: string;
  certificate: string;
  /** Leaf + intermediate: what a workload sends in its handshakes. */
  chain: string;
  /** The trust bundle (the root). */
  ca: string;
  notBefore: string;
  notAfter: string;
}

export interface RequestContext {
  requestId: string;
  /** The verified client certificate, when the request came over the mTLS listener. */
  clientCert?: Certificate;
  /** performance.now() at the request's arrival, for the issuance latency metric. */
  started?: number;
}

export interface TokenRequest {
  grant: TokenGrant;
  ttlMs?: number;
}

export interface CrlSnapshot {
  der: Buffer;
  pem: string;
  number: bigint;
  thisUpdate: Date;
  nextUpdate: Date;
  revocationSeq: number;
}

const TOKEN_PREFIX = 'mtls_';

function sha256Hex(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Splits "mtls_<id>.<secret>"; the id is public, the secret is only ever hashed. */
export function parseToken(token: string): { id: string; secret: string } | undefined {
  const m = /^mtls_([A-Za-z0-9_-]{8,32})\.([A-Za-z0-9_-]{32,128})$/.exec(token.trim());
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** "01:A2:…", "0x01a2", "00a2" → the Certificate.serial form: lowercase hex, whole bytes, no leading zero bytes. */
export function normalizeSerial(text: string): string {
  let hex = text.trim().toLowerCase().replace(/^0x/, '').replace(/[:\s]/g, '');
  if (hex.length % 2) hex = '0' + hex;
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  return hex;
}

function sanToIdentity(s: San): string {
  if (s.type === 'uri') return s.value.startsWith('spiffe://') ? s.value : `uri:${s.value}`;
  return `${s.type}:${s.value.toLowerCase()}`;
}

function identityToSan(id: string): San | undefined {
  if (id.startsWith('spiffe://')) return { type: 'uri', value: id };
  const i = id.indexOf(':');
  const type = id.slice(0, i);
  const value = id.slice(i + 1);
  if (type === 'dns' || type === 'ip' || type === 'email' || type === 'uri') return { type, value };
  return undefined;
}

export class Authority {
  readonly #ca: FileCa;
  readonly #store: Store;
  readonly #config: CaConfig;
  readonly #clock: Clock;
  readonly #urls: () => { ocsp?: string; crl?: string };
  readonly #issuerKeyId: string;
  #crl: CrlSnapshot | undefined;
  #crlBuilding: Promise<CrlSnapshot> | undefined;
  /** Called after any revocation this process learns of (its own or another replica's). */
  onRevocation: ((serials: string[]) => void) | undefined;

  constructor(opts: AuthorityOptions) {
    this.#ca = opts.ca;
    this.#store = opts.store;
    this.#config = opts.config;
    this.#clock = opts.clock ?? systemClock;
    this.#urls = opts.urls ?? (() => ({}));
    this.#issuerKeyId = (
      opts.ca.intermediate.subjectKeyId ?? keyIdentifier(opts.ca.intermediate.spki)
    ).toString('hex');
  }

  get store(): Store {
    return this.#store;
  }

  get rootPem(): string {
    return this.#ca.rootPem;
  }

  get rootFingerprint(): string {
    return fingerprint256(this.#ca.root);
  }

  // ---------------------------------------------------------------- refusals

  /** Appends the refusal to the audit log, then throws it: nothing else is stored. */
  async #refuse(
    action: string,
    actor: string,
    code: ErrorCode,
    message: string,
    fix: string,
    ctx: RequestContext,
    data: Record<string, unknown> = {},
  ): Promise<never> {
    if (caChannels.refused.hasSubscribers) caChannels.refused.publish({ action, reason: code });
    await this.#store.appendAudit({
      at: this.#clock.now(),
      action,
      actor,
      outcome: 'refused',
      reason: code,
      data: { requestId: ctx.requestId, ...data },
    });
    throw new MtlsError(code, message, { fix });
  }

  #actorOf(ctx: RequestContext): string {
    return ctx.clientCert ? `cert:${ctx.clientCert.serial}` : 'anonymous';
  }

  // ---------------------------------------------------------------- admin

  isAdmin(cert: Certificate | undefined): boolean {
    if (!cert) return false;
    return certificateIdentities(cert).some((id) => anyMatches(this.#config.admins, id));
  }

  async requireAdmin(ctx: RequestContext, action: string): Promise<string> {
    if (!ctx.clientCert) {
      return this.#refuse(
        action,
        'anonymous',
        'MTLS_CA_UNAUTHENTICATED',
        'This endpoint needs an admin client certificate.',
        'Call it on the mTLS listener with an admin certificate (mtls ca serve prints where the admin credential is).',
        ctx,
      );
    }
    if (!this.isAdmin(ctx.clientCert)) {
      const ids = certificateIdentities(ctx.clientCert);
      return this.#refuse(
        action,
        this.#actorOf(ctx),
        'MTLS_CA_NOT_ADMIN',
        `${ids.join(', ') || formatName(ctx.clientCert.subject)} is not an admin of this CA.`,
        'Use a certificate whose identity is listed under admins in the CA config.',
        ctx,
        { identities: ids },
      );
    }
    return `admin:${primaryIdentity(ctx.clientCert.subject, ctx.clientCert.subjectAltNames)}`;
  }

  // ---------------------------------------------------------------- tokens

  async createToken(
    req: TokenRequest,
    ctx: RequestContext,
  ): Promise<{ token: string; id: string; expiresAt: string }> {
    const actor = await this.requireAdmin(ctx, 'token.create');
    const grant = req.grant;
    const profile = getProfile(grant.profile);
    if (profile.ca || profile.name === ('ocsp' as ProfileName)) {
      return this.#refuse(
        'token.create',
        actor,
        'MTLS_CA_POLICY',
        `Tokens cannot grant the ${grant.profile} profile.`,
        'Use client, server, peer or spiffe.',
        ctx,
      );
    }
    const ttlMs = req.ttlMs ?? this.#config.tokens.ttl;
    if (ttlMs > this.#config.tokens.maxTtl || ttlMs <= 0) {
      return this.#refuse(
        'token.create',
        actor,
        'MTLS_CA_POLICY',
        `A token may live at most ${this.#config.tokens.maxTtl / 1000}s.`,
        'Ask for a shorter token lifetime (default 5m).',
        ctx,
      );
    }
    const tokenProvisioners = this.#config.provisioners.filter((p) => p.type === 'token');
    if (tokenProvisioners.length) {
      const granted = [...grant.sans, ...(grant.commonName ? [`cn:${grant.commonName}`] : [])];
      const fits = tokenProvisioners.find(
        (p) =>
          (p.profiles as string[]).includes(grant.profile) &&
          grant.maxTtlMs <= p.maxTtl &&
          granted.every((id) => anyMatches(p.identities, id)),
      );
      if (!fits) {
        return this.#refuse(
          'token.create',
          actor,
          'MTLS_CA_POLICY',
          `No token provisioner allows ${grant.profile} certificates for ${granted.join(', ')} up to ${Math.round(grant.maxTtlMs / 1000)}s.`,
          'Ask for identities, a profile and a lifetime that a provisioner in the CA config allows (see docs/ca.md).',
          ctx,
          { granted },
        );
      }
    }
    const id = randomBytes(9).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const now = this.#clock.now();
    const expiresAt = new Date(now.getTime() + ttlMs);
    await this.#store.createToken(
      { id, hash: sha256Hex(secret), grant, createdBy: actor, createdAt: now, expiresAt },
      {
        at: now,
        action: 'token.create',
        actor,
        outcome: 'ok',
        data: { requestId: ctx.requestId, tokenId: id, grant, expiresAt: expiresAt.toISOString() },
      },
    );
    if (caChannels.token.hasSubscribers) caChannels.token.publish({ event: 'created' });
    return { token: `${TOKEN_PREFIX}${id}.${secret}`, id, expiresAt: expiresAt.toISOString() };
  }

  // ---------------------------------------------------------------- enrollment

  async enroll(
    req: { token: string; csr: string; ttlMs?: number },
    ctx: RequestContext,
  ): Promise<IssueResponse> {
    const parsed = parseToken(req.token);
    if (!parsed)
      return this.#refuse(
        'certificate.issue',
        'anonymous',
        'MTLS_CA_TOKEN_INVALID',
        'The token is not an mtlskit enrollment token.',
        'Use the whole token printed by "mtls ca token" (mtls_<id>.<secret>).',
        ctx,
      );
    const actor = `token:${parsed.id}`;
    const hash = sha256Hex(parsed.secret);
    const token = await this.#store.getToken(hash);
    // Looked up by the hash of a 256-bit secret: nothing to compare in constant time.
    if (!token || token.id !== parsed.id) {
      return this.#refuse(
        'certificate.issue',
        actor,
        'MTLS_CA_TOKEN_INVALID',
        'The token is unknown to this CA.',
        'Ask an admin for a new token (mtls ca token …).',
        ctx,
      );
    }
    const now = this.#clock.now();
    if (token.usedAt)
      return this.#refuse(
        'certificate.issue',
        actor,
        'MTLS_CA_TOKEN_USED',
        `The token ${token.id} was already used at ${token.usedAt.toISOString()}.`,
        'Tokens are single-use: ask for a new one; renew existing certificates with mtls renew.',
        ctx,
      );
    if (token.expiresAt <= now)
      return this.#refuse(
        'certificate.issue',
        actor,
        'MTLS_CA_TOKEN_EXPIRED',
        `The token ${token.id} expired at ${token.expiresAt.toISOString()}.`,
        'Ask for a new token and use it within its lifetime (5 minutes by default).',
        ctx,
      );

    const csr = await this.#readCsr(req.csr, 'certificate.issue', actor, ctx);
    const grant = token.grant;
    const profile = getProfile(grant.profile);
    let sans = requestedSans(csr);
    // A CSR without names takes the token's exact names (the token is bound to an identity).
    if (sans.length === 0)
      sans = grant.sans
        .filter((p) => !p.includes('*'))
        .map(identityToSan)
        .filter((s): s is San => s !== undefined);
    const subject = csr.subject.length
      ? csr.subject
      : grant.commonName
        ? [[{ oid: '2.5.4.3', value: grant.commonName }]]
        : [];
    const notAllowed = sans
      .map(sanToIdentity)
      .filter((id) => !grant.sans.some((p) => identityMatches(p, id)));
    const cn = subject.flat().find((a) => a.oid === '2.5.4.3')?.value;
    if (grant.commonName !== undefined && cn !== grant.commonName) notAllowed.push(`cn:${cn ?? '(none)'}`);
    if (notAllowed.length) {
      return this.#refuse(
        'certificate.issue',
        actor,
        'MTLS_CA_NAME_NOT_ALLOWED',
        `The token does not allow ${notAllowed.join(', ')}.`,
        `Request only names the token grants (${[...grant.sans, ...(grant.commonName ? [`cn:${grant.commonName}`] : [])].join(', ')}).`,
        ctx,
        { notAllowed },
      );
    }
    const prov = this.#provisionerFor('token', profile.name, [
      ...sans.map(sanToIdentity),
      ...(cn ? [`cn:${cn}`] : []),
    ]);
    if (prov && !(prov.keyTypes as string[]).includes(csr.publicKey.description)) {
      return this.#refuse(
        'certificate.issue',
        actor,
        'MTLS_CA_POLICY',
        `${csr.publicKey.description} keys are not allowed by provisioner ${prov.name}.`,
        `Use one of: ${prov.keyTypes.join(', ')}.`,
        ctx,
      );
    }
    const ceiling = Math.min(grant.maxTtlMs, prov?.maxTtl ?? Infinity);
    const ttlMs = Math.min(req.ttlMs ?? prov?.defaultTtl ?? grant.maxTtlMs, ceiling);
    const issued = this.#issue(profile.name, subject, sans, csr.spki, ttlMs);
    return this.#commit(issued, profile.name, { tokenHash: hash, action: 'certificate.issue', actor, ctx });
  }

  // ---------------------------------------------------------------- renewal

  /**
   * Renewal over mTLS: TLS verified the current certificate (chain, dates, signature); here we check
   * it is ours, not revoked, and re-issue the same identity; with a CSR, for a new key.
   */
  async renew(req: { csr?: string; ttlMs?: number }, ctx: RequestContext): Promise<IssueResponse> {
    const current = ctx.clientCert;
    if (!current)
      return this.#refuse(
        'certificate.renew',
        'anonymous',
        'MTLS_CA_UNAUTHENTICATED',
        'Renewal needs the current certificate as the client certificate.',
        'Call /v1/renew on the mTLS listener with the certificate to renew (mtls renew does this).',
        ctx,
      );
    return this.#renewFrom(current, req, ctx, false);
  }

  /**
   * Renewal without a client certificate (any profile, also behind an L7 proxy): the body carries the
   * current certificate and a CSR. Possession of the current key is proven by the CSR's own signature
   * when it is for the same key, or, for a new key, by `proof`: the current key's signature over
   * SHA-256 of the new CSR (base64). A certificate that expired less than renewAfterExpiry ago (off by
   * default) may renew this way too.
   */
  async renewWithProof(
    req: { certificate: string; csr: string; proof?: string; ttlMs?: number },
    ctx: RequestContext,
  ): Promise<IssueResponse> {
    let current: Certificate;
    try {
      current = readCertificates(Buffer.from(req.certificate), 'certificate')[0]!;
    } catch {
      return this.#refuse(
        'certificate.renew',
        'anonymous',
        'MTLS_CA_BAD_REQUEST',
        'The certificate to renew cannot be read.',
        'Send the current certificate as PEM.',
        ctx,
      );
    }
    const actor = `cert:${current.serial}`;
    const csr = await this.#readCsr(req.csr, 'certificate.renew', actor, ctx);
    if (!csr.spki.equals(current.spki)) {
      let proven: boolean;
      try {
        const key = publicKeyObject(current);
        const hash = key.asymmetricKeyType === 'ed25519' ? null : 'sha256';
        proven =
          req.proof !== undefined &&
          cryptoVerify(
            hash,
            createHash('sha256').update(csr.der).digest(),
            key,
            Buffer.from(req.proof, 'base64'),
          );
      } catch {
        proven = false;
      }
      if (!proven) {
        return this.#refuse(
          'certificate.renew',
          actor,
          'MTLS_CA_BAD_REQUEST',
          'The request does not prove possession of the current key.',
          "Sign the new CSR's SHA-256 with the current key and send it as proof (mtls renew --rekey does this), or renew with the same key.",
          ctx,
        );
      }
    }
    const expired = this.#clock.now() > current.notAfter;
    return this.#renewFrom(
      current,
      { csr: req.csr, ...(req.ttlMs !== undefined ? { ttlMs: req.ttlMs } : {}) },
      ctx,
      expired,
    );
  }

  async #renewFrom(
    current: Certificate,
    req: { csr?: string; ttlMs?: number },
    ctx: RequestContext,
    expiredPath: boolean,
  ): Promise<IssueResponse> {
    const actor = `cert:${current.serial}`;
    const record = await this.#store.getCertificate(current.serial);
    if (!record || !Buffer.from(record.der).equals(current.der)) {
      return this.#refuse(
        'certificate.renew',
        actor,
        'MTLS_CA_UNKNOWN_CERTIFICATE',
        `This CA has no record of the certificate ${current.serial}.`,
        'Enroll with a token (mtls enroll) to get a certificate from this CA.',
        ctx,
      );
    }
    if (record.status === 'revoked') {
      return this.#refuse(
        'certificate.renew',
        actor,
        'MTLS_CA_REVOKED',
        `The certificate ${current.serial} was revoked at ${record.revokedAt?.toISOString() ?? '?'} and can never renew.`,
        'Enroll again with a new token after the cause of the revocation is fixed.',
        ctx,
      );
    }
    const now = this.#clock.now();
    if (expiredPath) {
      const grace = this.#config.renewAfterExpiry;
      const expiredFor = now.getTime() - current.notAfter.getTime();
      if (grace === false || expiredFor > grace) {
        return this.#refuse(
          'certificate.renew',
          actor,
          'MTLS_CA_RENEW_EXPIRED',
          `The certificate expired at ${current.notAfter.toISOString()} and renewal after expiry is ${grace === false ? 'off' : `limited to ${grace / 1000}s`}.`,
          'Enroll again with a new token (mtls enroll), or set renewAfterExpiry in the CA config.',
          ctx,
        );
      }
    }
    const renewProvisioners = this.#config.provisioners.filter((p) => p.type === 'renew');
    const identities = certificateIdentities(current);
    const prov = this.#provisionerFor('renew', record.profile, identities);
    if (renewProvisioners.length && !prov) {
      return this.#refuse(
        'certificate.renew',
        actor,
        'MTLS_CA_POLICY',
        `No renew provisioner covers ${identities.join(', ')} (${record.profile}).`,
        'Enroll again with a token, or add a renew provisioner for this identity to the CA config.',
        ctx,
      );
    }
    let spki = current.spki;
    if (req.csr) {
      const csr = await this.#readCsr(req.csr, 'certificate.renew', actor, ctx);
      if (prov && !(prov.keyTypes as string[]).includes(csr.publicKey.description)) {
        return this.#refuse(
          'certificate.renew',
          actor,
          'MTLS_CA_POLICY',
          `${csr.publicKey.description} keys are not allowed by provisioner ${prov.name}.`,
          `Use one of: ${prov.keyTypes.join(', ')}.`,
          ctx,
        );
      }
      spki = csr.spki;
    }
    // notBefore was backdated for clock skew: the lifetime granted was notAfter - notBefore - skew.
    const lifetime = record.notAfter.getTime() - record.notBefore.getTime() - CLOCK_SKEW_MS;
    const ttlMs = Math.min(req.ttlMs ?? lifetime, lifetime);
    const sans = current.subjectAltNames.filter(
      (s): s is San => s.type === 'dns' || s.type === 'ip' || s.type === 'uri' || s.type === 'email',
    );
    const issued = this.#issue(record.profile, current.subject, sans, spki, ttlMs);
    return this.#commit(issued, record.profile, {
      action: 'certificate.renew',
      actor,
      ctx,
      renewedFrom: current.serial,
    });
  }

  // ---------------------------------------------------------------- revocation

  async revoke(
    req: { serial: string; reason?: CrlReason },
    ctx: RequestContext,
  ): Promise<{ serial: string; revokedAt: string; reason: CrlReason }> {
    const serial = normalizeSerial(req.serial);
    if (!/^[0-9a-f]{2,40}$/.test(serial)) {
      throw new MtlsError(
        'MTLS_CA_BAD_REQUEST',
        `"${req.serial.slice(0, 60)}" is not a certificate serial.`,
        {
          fix: 'Give the serial in hex, as mtls inspect prints it (colons allowed).',
        },
      );
    }
    const reason = req.reason ?? 'unspecified';
    let actor: string;
    if (ctx.clientCert && ctx.clientCert.serial === serial) actor = `cert:${serial}`;
    else actor = await this.requireAdmin(ctx, 'certificate.revoke');
    const at = this.#clock.now();
    const outcome = await this.#store.recordRevocation({
      serial,
      at,
      reason,
      audit: {
        at,
        action: 'certificate.revoke',
        actor,
        outcome: 'ok',
        data: { requestId: ctx.requestId, serial, reason },
      },
    });
    if (!outcome.ok) {
      if (outcome.reason === 'unknown_serial')
        return this.#refuse(
          'certificate.revoke',
          actor,
          'MTLS_CA_UNKNOWN_CERTIFICATE',
          `This CA issued no certificate with serial ${serial}.`,
          'Check the serial (mtls inspect FILE shows it; mtls ca list lists them).',
          ctx,
          { serial },
        );
      return this.#refuse(
        'certificate.revoke',
        actor,
        'MTLS_CA_ALREADY_REVOKED',
        `The certificate ${serial} is already revoked.`,
        'Nothing to do.',
        ctx,
        { serial },
      );
    }
    this.#crl = undefined;
    this.onRevocation?.([serial]);
    return { serial, revokedAt: at.toISOString(), reason };
  }

  // ---------------------------------------------------------------- CRL

  /** The current CRL; rebuilt after a revocation (here or on another replica) and before nextUpdate. */
  async crl(): Promise<CrlSnapshot> {
    const now = this.#clock.now();
    const cur = this.#crl;
    if (cur && cur.nextUpdate.getTime() - now.getTime() > this.#config.crl.refreshBefore) return cur;
    this.#crlBuilding ??= this.#buildCrl().finally(() => (this.#crlBuilding = undefined));
    return this.#crlBuilding;
  }

  /** Drops the cached CRL when the store has revocations this process has not seen. */
  async syncRevocations(): Promise<string[]> {
    const last = await this.#store.lastRevocationSeq();
    if (this.#crl && this.#crl.revocationSeq < last) this.#crl = undefined;
    // Its own cursor, not the CRL's: a CRL built after a revocation committed (on a request that came
    // before this poll) already lists it, but the OCSP cache and the streams must still hear of it.
    const seen = this.#lastSeenSeq;
    if (last <= seen) return [];
    const events = await this.#store.revocationsSince(seen, 10_000);
    const upTo = events.length === 10_000 ? events[events.length - 1]!.seq : last;
    this.#lastSeenSeq = Math.max(this.#lastSeenSeq, upTo);
    const serials = events.map((e) => e.serial);
    if (serials.length) this.onRevocation?.(serials);
    return serials;
  }

  #lastSeenSeq = 0;

  async #buildCrl(): Promise<CrlSnapshot> {
    const revocationSeq = await this.#store.lastRevocationSeq();
    const revoked = [];
    for (let after: string | undefined; ;) {
      const page = await this.#store.listCertificates({
        revoked: true,
        limit: 10_000,
        ...(after ? { afterSerial: after } : {}),
      });
      revoked.push(...page);
      if (page.length < 10_000) break;
      after = page[page.length - 1]!.serial;
    }
    const number = await this.#store.nextCrlNumber();
    const thisUpdate = new Date(Math.floor(this.#clock.now().getTime() / 1000) * 1000);
    const nextUpdate = new Date(thisUpdate.getTime() + this.#config.crl.validity);
    const { der, pem } = createCrl({
      issuerCert: this.#ca.intermediate,
      issuerKey: this.#ca.issuerKey,
      entries: revoked.map((r) => ({
        serial: r.serial,
        revokedAt: r.revokedAt ?? thisUpdate,
        reason: r.revocationReason ?? 'unspecified',
      })),
      thisUpdate,
      nextUpdate,
      crlNumber: number,
    });
    const snap: CrlSnapshot = { der, pem, number, thisUpdate, nextUpdate, revocationSeq };
    if (caChannels.crl.hasSubscribers)
      caChannels.crl.publish({ number, thisUpdate, entries: revoked.length });
    this.#crl = snap;
    return snap;
  }

  // ---------------------------------------------------------------- internals

  /** The first provisioner of this type that allows the profile and every identity; undefined when none does. */
  #provisionerFor(
    type: Provisioner['type'],
    profile: ProfileName,
    identities: readonly string[],
  ): Provisioner | undefined {
    return this.#config.provisioners.find(
      (p) =>
        p.type === type &&
        (p.profiles as string[]).includes(profile) &&
        identities.every((id) => anyMatches(p.identities, id)),
    );
  }

  async #readCsr(pem: string, action: string, actor: string, ctx: RequestContext) {
    try {
      return readVerifiedCsr(pem, 'CSR');
    } catch (e) {
      const err =
        e instanceof MtlsError
          ? e
          : new MtlsError('MTLS_PKI_BAD_CSR', 'The CSR cannot be read.', { cause: e });
      await this.#store.appendAudit({
        at: this.#clock.now(),
        action,
        actor,
        outcome: 'refused',
        reason: err.code,
        data: { requestId: ctx.requestId },
      });
      throw err;
    }
  }

  #issue(profile: ProfileName, subject: Certificate['subject'], sans: San[], spki: Buffer, ttlMs: number) {
    const p = getProfile(profile);
    for (const s of sans) validateSan(s, { allowWildcard: p.allowWildcard });
    const ttl = Math.min(
      ttlMs,
      p.maxTtlMs,
      this.#ca.intermediate.notAfter.getTime() - this.#clock.now().getTime(),
    );
    const urls = this.#urls();
    return this.#ca.issuer.issue({
      profile,
      subject,
      sans,
      publicKey: spki,
      ttlMs: ttl,
      ...(urls.ocsp ? { ocspUrls: [urls.ocsp] } : {}),
      ...(urls.crl ? { crlUrls: [urls.crl] } : {}),
    });
  }

  async #commit(
    issued: ReturnType<FileCa['issuer']['issue']>,
    profile: ProfileName,
    op: { tokenHash?: string; action: string; actor: string; ctx: RequestContext; renewedFrom?: string },
  ): Promise<IssueResponse> {
    const cert = parseCertificate(issued.der);
    const now = this.#clock.now();
    const record: CertificateRecord = {
      serial: cert.serial,
      issuerKeyId: this.#issuerKeyId,
      profile,
      identity: primaryIdentity(cert.subject, cert.subjectAltNames),
      subject: formatName(cert.subject),
      sans: cert.subjectAltNames.map(formatGeneralName),
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      der: issued.der,
      status: 'valid',
      createdAt: now,
      ...(op.renewedFrom ? { renewedFrom: op.renewedFrom } : {}),
    };
    const audit: AuditInput = {
      at: now,
      action: op.action,
      actor: op.actor,
      outcome: 'ok',
      data: {
        requestId: op.ctx.requestId,
        serial: cert.serial,
        identity: record.identity,
        profile,
        notAfter: cert.notAfter.toISOString(),
        ...(op.renewedFrom ? { renewedFrom: op.renewedFrom } : {}),
      },
    };
    const outcome = await this.#store.recordIssuance({
      ...(op.tokenHash ? { tokenHash: op.tokenHash } : {}),
      now,
      certificate: record,
      audit,
    });
    if (!outcome.ok) {
      const map = {
        token_unknown: ['MTLS_CA_TOKEN_INVALID', 'The token is unknown to this CA.'],
        token_used: ['MTLS_CA_TOKEN_USED', 'The token was used by another request at the same time.'],
        token_expired: ['MTLS_CA_TOKEN_EXPIRED', 'The token expired.'],
        serial_exists: ['MTLS_CA_INTERNAL', 'A serial collision happened; retry.'],
      } as const;
      const [code, message] = map[outcome.reason];
      return this.#refuse(op.action, op.actor, code, message, 'Ask for a new token.', op.ctx);
    }
    if (caChannels.issued.hasSubscribers) {
      const seconds = op.ctx.started === undefined ? 0 : (performance.now() - op.ctx.started) / 1000;
      caChannels.issued.publish({
        action: op.action === 'certificate.renew' ? 'renew' : 'issue',
        profile,
        seconds,
      });
    }
    if (op.tokenHash && caChannels.token.hasSubscribers) caChannels.token.publish({ event: 'used' });
    return {
      serial: cert.serial,
      certificate: issued.pem,
      chain: issued.pem + this.#ca.intermediatePem,
      ca: this.#ca.trustPem,
      notBefore: cert.notBefore.toISOString(),
      notAfter: cert.notAfter.toISOString(),
    };
  }
}
