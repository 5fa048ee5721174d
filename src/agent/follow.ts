// Node helpers that follow the agent's rotations: an https.Agent, an undici dispatcher and a gRPC
// certificate provider that read an identity directory consistently and pick up new versions.
import { watch, readFileSync, readlinkSync, type FSWatcher } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { Agent as UndiciAgent, Dispatcher } from 'undici';
import { MtlsError } from '../errors/index.js';
import { keyMatchesSpki, readCertificates, readPrivateKey } from '../pki/index.js';

/** One consistent version of an identity's files. */
export interface MtlsMaterial {
  /** The identity directory. */
  dir: string;
  /** The version directory read (`..v-…`), or '' when the directory has no `..data` link. */
  version: string;
  key: Buffer;
  /** fullchain.pem: the leaf and its intermediates, what the client presents. */
  cert: Buffer;
  /** ca.pem: the trust bundle used to verify servers. */
  ca: Buffer;
  /** The leaf's serial (lowercase hex) and validity. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** Options shared by the helpers. */
export interface FollowOptions {
  /** The identity directory the agent writes (`<dir>/..data -> ..v-…`). */
  dir: string;
  /** How often the `..data` link is checked, besides fs.watch (ms; default 1000). */
  pollMs?: number;
  /** Called after new material is in use for new connections. */
  onRotate?: (material: MtlsMaterial) => void;
  /** Called when a change was seen but the new files could not be used (the old ones stay). */
  onError?: (error: MtlsError) => void;
}

const DATA_LINK = '..data';

function filesError(dir: string, what: string, cause?: unknown): MtlsError {
  return new MtlsError('MTLS_NODE_FILES', `The identity directory ${dir} cannot be used: ${what}.`, {
    cause,
    fix: `Check that mtls agent has written this identity (ls -la ${dir}; mtls agent status) and that this process may read it.`,
    details: { dir },
  });
}

function isMissing(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function assemble(dir: string, version: string, key: Buffer, cert: Buffer, ca: Buffer): MtlsMaterial {
  let leaf;
  try {
    leaf = readCertificates(cert, join(dir, 'fullchain.pem'))[0];
    readCertificates(ca, join(dir, 'ca.pem'));
    const { key: privateKey } = readPrivateKey(key, undefined, join(dir, 'key.pem'));
    if (!leaf || !keyMatchesSpki(privateKey, leaf.spki))
      throw filesError(dir, 'key.pem does not match fullchain.pem');
  } catch (e) {
    if (e instanceof MtlsError && e.code === 'MTLS_NODE_FILES') throw e;
    throw filesError(dir, e instanceof Error ? e.message : String(e), e);
  }
  return {
    dir,
    version,
    key,
    cert,
    ca,
    serial: leaf.serial,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
  };
}

function resolveVersion(dir: string, link: () => string): string {
  try {
    return link();
  } catch (e) {
    // No ..data: a directory of plain files (written by hand or another tool); read them as they are.
    const code = (e as NodeJS.ErrnoException).code;
    if (isMissing(e) || code === 'EINVAL') return '';
    throw e;
  }
}

const FILES = ['key.pem', 'fullchain.pem', 'ca.pem'] as const;

async function readOnce(dir: string): Promise<MtlsMaterial> {
  let version: string;
  try {
    version = await readlink(join(dir, DATA_LINK));
  } catch (e) {
    version = resolveVersion(dir, () => {
      throw e;
    });
  }
  const base = version ? join(dir, version) : dir;
  const [key, cert, ca] = await Promise.all(FILES.map((f) => readFile(join(base, f))));
  return assemble(dir, version, key!, cert!, ca!);
}

function readOnceSync(dir: string): MtlsMaterial {
  const version = resolveVersion(dir, () => readlinkSync(join(dir, DATA_LINK)));
  const base = version ? join(dir, version) : dir;
  const [key, cert, ca] = FILES.map((f) => readFileSync(join(base, f)));
  return assemble(dir, version, key!, cert!, ca!);
}

/**
 * Reads key.pem, fullchain.pem and ca.pem of one version: resolves `<dir>/..data` once and reads
 * from that version directory; retries once when the version vanished or the pair did not match
 * (a rotation in between). Throws MTLS_NODE_FILES.
 */
export async function readMtlsMaterial(dir: string): Promise<MtlsMaterial> {
  try {
    try {
      return await readOnce(dir);
    } catch {
      return await readOnce(dir);
    }
  } catch (e) {
    throw e instanceof MtlsError ? e : filesError(dir, describeIoError(e), e);
  }
}

/** The same read, synchronous (used once at construction so that the helpers are ready at once). */
export function readMtlsMaterialSync(dir: string): MtlsMaterial {
  try {
    try {
      return readOnceSync(dir);
    } catch {
      return readOnceSync(dir);
    }
  } catch (e) {
    throw e instanceof MtlsError ? e : filesError(dir, describeIoError(e), e);
  }
}

function describeIoError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return `${err.path ?? 'a file'} does not exist`;
  if (err.code === 'EACCES') return `${err.path ?? 'a file'} is not readable by this process`;
  return err.message ?? String(e);
}

/**
 * Watches an identity directory and keeps the newest consistent material. fs.watch on the directory
 * reacts at once; a cheap readlink of `..data` every pollMs catches what fs.watch misses (network
 * file systems, a rename over the link on some platforms). Timers are unref'd.
 */
class MaterialFollower {
  readonly dir: string;
  #current: MtlsMaterial;
  #listeners = new Set<(m: MtlsMaterial) => void>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;
  #closed = false;
  #onError: ((e: MtlsError) => void) | undefined;
  #lastError: string | undefined;

  constructor(opts: FollowOptions) {
    this.dir = opts.dir;
    this.#current = readMtlsMaterialSync(opts.dir);
    this.#onError = opts.onError;
    if (opts.onRotate) this.#listeners.add(opts.onRotate);
    try {
      this.#watcher = watch(opts.dir, { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', () => {
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch {
      this.#watcher = undefined; // polling alone still follows rotations
    }
    this.#timer = setInterval(() => void this.#poll(), opts.pollMs ?? 1000);
    this.#timer.unref();
  }

  get current(): MtlsMaterial {
    return this.#current;
  }

  onChange(listener: (m: MtlsMaterial) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Re-reads now; resolves when the newest material is in use (or the read failed and was reported). */
  async refresh(): Promise<void> {
    if (this.#reloading) {
      this.#again = true;
      return this.#reloading;
    }
    this.#reloading = this.#reload().finally(() => (this.#reloading = undefined));
    return this.#reloading;
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    clearInterval(this.#timer);
    clearTimeout(this.#debounce);
    this.#listeners.clear();
  }

  #schedule(): void {
    if (this.#closed) return;
    // The agent writes a version directory, then a temp link, then renames it: settle for 20 ms.
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.refresh(), 20);
    this.#debounce.unref();
  }

  async #poll(): Promise<void> {
    if (this.#closed || this.#reloading) return;
    const version = await readlink(join(this.dir, DATA_LINK)).catch(() => '');
    // Plain-file directories (no ..data) are followed through fs.watch only.
    if (version && version !== this.#current.version) await this.refresh();
  }

  async #reload(): Promise<void> {
    do {
      this.#again = false;
      if (this.#closed) return;
      let next: MtlsMaterial;
      try {
        next = await readMtlsMaterial(this.dir);
        this.#lastError = undefined;
      } catch (e) {
        const err = e instanceof MtlsError ? e : filesError(this.dir, String(e), e);
        // Report a failure once, not on every poll: the old material keeps serving.
        if (err.message !== this.#lastError) this.#onError?.(err);
        this.#lastError = err.message;
        continue;
      }
      const prev = this.#current;
      if (next.version === prev.version && next.cert.equals(prev.cert) && next.ca.equals(prev.ca)) continue;
      this.#current = next;
      for (const l of this.#listeners) {
        try {
          l(next);
        } catch {
          // a listener's failure must not stop the others
        }
      }
    } while (this.#again && !this.#closed);
  }
}

/** TLS options that belong to the secure context (the rest are per connection). */
const CONTEXT_KEYS = [
  'ciphers',
  'ecdhCurve',
  'sigalgs',
  'minVersion',
  'maxVersion',
  'secureOptions',
  'secureProtocol',
  'honorCipherOrder',
  'dhparam',
] as const;

type ContextOptions = Pick<tls.SecureContextOptions, (typeof CONTEXT_KEYS)[number]>;

function pickContextOptions(o: Record<string, unknown>): ContextOptions {
  const out: Record<string, unknown> = {};
  for (const k of CONTEXT_KEYS) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

function secureContextFor(m: MtlsMaterial, extra: ContextOptions): tls.SecureContext {
  return tls.createSecureContext({ ...extra, key: m.key, cert: m.cert, ca: m.ca });
}

/** Options given to the helpers that would let a server go unverified or replace the material. */
function refuseUnsafe(o: Record<string, unknown>, who: string): void {
  if (o.rejectUnauthorized === false) {
    throw new MtlsError('MTLS_NODE_UNSAFE_OPTION', `${who} never turns server verification off.`, {
      fix: "Remove the rejectUnauthorized option (verification stays on); put the server's CA in the agent's trust bundle (ca.pem) instead.",
    });
  }
  for (const k of ['key', 'cert', 'ca', 'pfx', 'secureContext'] as const) {
    if (o[k] !== undefined) {
      throw new MtlsError('MTLS_NODE_UNSAFE_OPTION', `${who} takes its ${k} from the identity directory.`, {
        fix: `Remove the ${k} option; the key, certificate and trust bundle come from <dir>.`,
      });
    }
  }
}

// ---------------------------------------------------------------- https.Agent

export type MtlsAgentOptions = FollowOptions & Omit<https.AgentOptions, 'key' | 'cert' | 'ca' | 'pfx'>;

/** Generation tag kept on each socket this agent created. */
const GENERATION = Symbol('mtlskit.generation');

type TaggedSocket = Duplex & { [GENERATION]?: number };

/** The generation a socket's options were created in (kept on Node's per-socket options object). */
const GENERATION_OPTION = 'mtlskitGeneration';
type GenerationTagged = { [GENERATION_OPTION]?: number };

/**
 * An https.Agent whose new connections always use the newest key and certificate of `<dir>`.
 * The pool name carries the material's generation, so after a rotation no request reuses an old
 * connection or TLS session (a resumed session would show the server the old certificate); idle
 * old connections are closed at once and busy ones when their request ends.
 */
export class MtlsHttpsAgent extends https.Agent {
  readonly #follower: MaterialFollower;
  readonly #contextOptions: ContextOptions;
  #context: tls.SecureContext;
  #generation = 0;
  #unsubscribe: () => void;

  constructor(options: MtlsAgentOptions) {
    const { dir: _dir, pollMs: _p, onRotate: _r, onError: _e, ...agentOptions } = options;
    refuseUnsafe(agentOptions, 'createMtlsAgent');
    super({ keepAlive: true, ...agentOptions, rejectUnauthorized: true });
    this.#follower = new MaterialFollower(options);
    this.#contextOptions = pickContextOptions(agentOptions);
    this.#context = secureContextFor(this.#follower.current, this.#contextOptions);
    this.#unsubscribe = this.#follower.onChange((m) => this.#rotate(m));
    // A socket of an older generation that went back to the pool idle is retired. One that Node
    // handed straight to a request queued before the rotation (maxSockets) serves it first.
    this.on('free', (socket: TaggedSocket) => {
      if (socket[GENERATION] === this.#generation) return;
      const idle = Object.values(this.freeSockets).some((list) => list?.includes(socket as never));
      if (idle) socket.destroy();
    });
  }

  /** The material new connections use. */
  get material(): MtlsMaterial {
    return this.#follower.current;
  }

  /** Re-reads the directory now (also happens by itself on a change). */
  refresh(): Promise<void> {
    return this.#follower.refresh();
  }

  // Node's Agent computes a socket's pool name again from the options the socket was created with
  // (on 'free' and on close): those options carry the generation the socket was created in, so a
  // socket stays in its pool across a rotation; a new request (options without the tag) gets the
  // current generation's pool.
  override getName(options?: Parameters<https.Agent['getName']>[0]): string {
    const tagged = (options as GenerationTagged | undefined)?.[GENERATION_OPTION];
    return `${super.getName(options)}:mtls-gen=${tagged ?? this.#generation}`;
  }

  override createConnection(
    options: Parameters<https.Agent['createConnection']>[0],
    callback?: Parameters<https.Agent['createConnection']>[1],
  ): Duplex | null | undefined {
    // Tag the options object Node keeps for this socket (it is the one passed to 'free' later).
    const tagged = options as GenerationTagged;
    tagged[GENERATION_OPTION] ??= this.#generation;
    // Per-request options cannot turn verification off or replace the identity.
    const socket: TaggedSocket | null | undefined = super.createConnection(
      { ...options, secureContext: this.#context, rejectUnauthorized: true } as typeof options,
      callback,
    );
    if (socket) socket[GENERATION] = tagged[GENERATION_OPTION];
    return socket;
  }

  /** Stops following the directory and closes every connection. */
  close(): void {
    this.#unsubscribe();
    this.#follower.close();
    this.destroy();
  }

  #rotate(m: MtlsMaterial): void {
    // assemble() parsed these files already; a context that still fails keeps the old one.
    try {
      this.#context = secureContextFor(m, this.#contextOptions);
    } catch {
      return;
    }
    this.#generation++;
    for (const sockets of Object.values(this.freeSockets)) {
      for (const s of [...(sockets ?? [])]) s.destroy();
    }
  }
}

/** An https.Agent that follows `<dir>`: `https.request(url, { agent: createMtlsAgent({ dir }) })`. */
export function createMtlsAgent(options: MtlsAgentOptions): MtlsHttpsAgent {
  return new MtlsHttpsAgent(options);
}

// ---------------------------------------------------------------- undici

export type MtlsDispatcherOptions = FollowOptions &
  Omit<UndiciAgent.Options, 'connect'> & {
    /** TLS options for each connection (not key/cert/ca, not a custom connector). */
    connect?: Omit<tls.ConnectionOptions, 'key' | 'cert' | 'ca' | 'pfx' | 'secureContext'> & {
      timeout?: number;
    };
  };

/**
 * An undici Dispatcher whose new connections use the newest material: each rotation builds a new
 * inner Agent for new requests and closes the old one gracefully (its in-flight requests finish).
 */
export class MtlsDispatcher extends Dispatcher {
  readonly #follower: MaterialFollower;
  readonly #agentOptions: Omit<UndiciAgent.Options, 'connect'>;
  readonly #connect: NonNullable<MtlsDispatcherOptions['connect']>;
  #agent: UndiciAgent;
  #retiring = new Set<Promise<void>>();
  #unsubscribe: () => void;

  constructor(options: MtlsDispatcherOptions) {
    super();
    const { dir: _d, pollMs: _p, onRotate: _r, onError: _e, connect, ...agentOptions } = options;
    if (typeof connect === 'function') {
      throw new MtlsError(
        'MTLS_NODE_UNSAFE_OPTION',
        'createMtlsDispatcher does not take a custom connector.',
        {
          fix: 'Pass TLS options as an object in connect; the dispatcher makes the connections.',
        },
      );
    }
    refuseUnsafe(connect ?? {}, 'createMtlsDispatcher');
    this.#connect = connect ?? {};
    this.#agentOptions = agentOptions;
    this.#follower = new MaterialFollower(options);
    this.#agent = this.#build(this.#follower.current);
    this.#unsubscribe = this.#follower.onChange((m) => this.#rotate(m));
  }

  get material(): MtlsMaterial {
    return this.#follower.current;
  }

  refresh(): Promise<void> {
    return this.#follower.refresh();
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#agent.dispatch(options, handler);
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#unsubscribe();
    this.#follower.close();
    const done = Promise.all([this.#agent.close(), ...this.#retiring]).then(() => undefined);
    if (callback) {
      void done.then(callback, callback);
      return;
    }
    return done;
  }

  override destroy(err: Error | null, callback: () => void): void;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null): Promise<void>;
  override destroy(): Promise<void>;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const err = typeof a === 'function' ? null : (a ?? null);
    const callback = typeof a === 'function' ? a : b;
    this.#unsubscribe();
    this.#follower.close();
    const done = this.#agent.destroy(err).then(() => undefined);
    if (callback) {
      void done.then(callback, callback);
      return;
    }
    return done;
  }

  #build(m: MtlsMaterial): UndiciAgent {
    const secureContext = secureContextFor(m, pickContextOptions(this.#connect));
    return new UndiciAgent({
      ...this.#agentOptions,
      connect: { ...this.#connect, secureContext, rejectUnauthorized: true },
    });
  }

  #rotate(m: MtlsMaterial): void {
    const old = this.#agent;
    this.#agent = this.#build(m);
    // close() lets queued and running requests finish, then closes the old connections.
    const closing: Promise<void> = old.close().catch(() => undefined);
    this.#retiring.add(closing);
    void closing.finally(() => this.#retiring.delete(closing));
  }
}

/** An undici Dispatcher that follows `<dir>`: `fetch(url, { dispatcher: createMtlsDispatcher({ dir }) })`. */
export function createMtlsDispatcher(options: MtlsDispatcherOptions): MtlsDispatcher {
  return new MtlsDispatcher(options);
}

// ---------------------------------------------------------------- gRPC (@grpc/grpc-js)

/** The shape of @grpc/grpc-js's experimental CertificateProvider (structural: no import needed). */
export interface GrpcCertificateProvider {
  addCaCertificateListener(listener: (update: { caCertificate: Buffer } | null) => void): void;
  removeCaCertificateListener(listener: (update: { caCertificate: Buffer } | null) => void): void;
  addIdentityCertificateListener(
    listener: (update: { certificate: Buffer; privateKey: Buffer } | null) => void,
  ): void;
  removeIdentityCertificateListener(
    listener: (update: { certificate: Buffer; privateKey: Buffer } | null) => void,
  ): void;
  close(): void;
}

/**
 * A certificate provider for grpc-js that follows `<dir>`:
 * `experimental.createCertificateProviderChannelCredentials(p, p)` gives channel credentials whose
 * new connections use the newest identity and trust bundle.
 */
export function createMtlsCertificateProvider(options: FollowOptions): GrpcCertificateProvider {
  const follower = new MaterialFollower(options);
  type CaListener = (u: { caCertificate: Buffer } | null) => void;
  type IdListener = (u: { certificate: Buffer; privateKey: Buffer } | null) => void;
  const ca = new Set<CaListener>();
  const id = new Set<IdListener>();
  follower.onChange((m) => {
    for (const l of ca) l({ caCertificate: m.ca });
    for (const l of id) l({ certificate: m.cert, privateKey: m.key });
  });
  return {
    addCaCertificateListener(l) {
      ca.add(l);
      l({ caCertificate: follower.current.ca });
    },
    removeCaCertificateListener: (l) => void ca.delete(l),
    addIdentityCertificateListener(l) {
      id.add(l);
      l({ certificate: follower.current.cert, privateKey: follower.current.key });
    },
    removeIdentityCertificateListener: (l) => void id.delete(l),
    close: () => follower.close(),
  };
}
