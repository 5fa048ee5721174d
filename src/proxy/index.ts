// mtls proxy: mTLS listeners that classify every peer into the shared reason vocabulary, check
// revocation, authorize identities with allow rules, and forward to plaintext upstreams with the
// identity in headers (HTTP) or a PROXY v2 header (TCP). Reloads on file change or SIGHUP: a new
// configuration is prepared completely, then swapped in; a bad one is logged and the old one serves.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { MtlsError, isMtlsError } from '../errors/index.js';
import { createProxyMetrics, proxyChannels, type Logger, type MetricsEndpoint } from '../telemetry/index.js';
import { loadProxyConfig, type ListenerConfig, type ProxyConfig } from './config.js';
import { listenOn, startHttpListener, type RunningListener } from './http.js';
import type { PreparedListener } from './listener.js';
import { loadListenerMaterial, TicketKeys } from './material.js';
import { outboundName, startOutbound, type RunningOutbound } from './outbound.js';
import { encodeProxyV2, tlsFacts } from './proxy-protocol.js';
import { loadCrlFiles } from './revocation.js';
import { startTcpListener } from './tcp.js';
import { watchFiles, type FileWatch } from './watch.js';

export * from './config.js';
export * from './verdict.js';
export * from './policy.js';
export * from './material.js';
export { startHttpListener, xfccValue, type RunningListener } from './http.js';

export interface ReloadResult {
  ok: boolean;
  /** Listeners whose configuration or files changed. */
  changed: string[];
  error?: MtlsError;
}

export interface RunningProxy {
  listeners: RunningListener[];
  outbound: RunningOutbound[];
  admin?: { host: string; port: number };
  /** Reads the config file (when started from one) and every file it names again; see module comment. */
  reload(why?: string): Promise<ReloadResult>;
  close(): Promise<void>;
}

export interface StartProxyOptions {
  /** The file the config came from: reload reads it again. */
  configPath?: string;
  /** Reload when the config or a file it names changes (default: true when configPath is set). */
  watch?: boolean;
}

function readFeedCa(l: ListenerConfig): Buffer | undefined {
  if (!l.revocation?.feed) return undefined;
  const path = l.revocation.feedCa ?? l.tls.clientCa;
  try {
    return readFileSync(path);
  } catch (e) {
    throw new MtlsError(
      'MTLS_PROXY_TLS_CONFIG',
      `Listener ${l.name}: cannot read revocation.feedCa ${path}.`,
      {
        cause: e,
        fix: 'Point revocation.feedCa at the PEM root of the CA that serves the feed.',
      },
    );
  }
}

/** Everything a listener needs from disk, read and checked; throws before anything is applied. */
export function prepareListener(l: ListenerConfig): PreparedListener {
  const material = loadListenerMaterial(l);
  const crls = l.revocation ? loadCrlFiles(l.revocation.crl, material.trust, l.name) : [];
  return { config: l, material, crls, feedCa: readFeedCa(l) };
}

/** The files whose change triggers a reload. */
function watchedFiles(config: ProxyConfig, configPath: string | undefined): string[] {
  const out: string[] = configPath ? [configPath] : [];
  for (const l of config.listeners) {
    out.push(l.tls.cert, l.tls.key, l.tls.clientCa, ...(l.revocation?.crl ?? []));
    if (l.revocation?.feedCa) out.push(l.revocation.feedCa);
  }
  for (const o of config.outbound ?? []) out.push(o.tls.cert, o.tls.key, o.tls.ca);
  return out;
}

/** Differences a reload cannot apply to a running process (they need a restart). */
function restartOnly(a: ProxyConfig, b: ProxyConfig): string[] {
  const out: string[] = [];
  const names = (c: ProxyConfig): string => c.listeners.map((l) => l.name).join(',');
  if (names(a) !== names(b)) out.push('the set of listeners');
  for (const l of b.listeners) {
    const o = a.listeners.find((x) => x.name === l.name);
    if (!o) continue;
    if (o.listen !== l.listen) out.push(`listeners.${l.name}.listen`);
    if (o.protocol !== l.protocol) out.push(`listeners.${l.name}.protocol`);
    if (JSON.stringify(o.limits) !== JSON.stringify(l.limits)) out.push(`listeners.${l.name}.limits`);
  }
  if (JSON.stringify(a.admin) !== JSON.stringify(b.admin)) out.push('admin');
  if (JSON.stringify(a.sessions) !== JSON.stringify(b.sessions)) out.push('sessions');
  const outNames = (c: ProxyConfig): string => (c.outbound ?? []).map((o) => outboundName(o)).join(',');
  if (outNames(a) !== outNames(b)) out.push('the set of outbound entries');
  for (const o of b.outbound ?? []) {
    const prev = a.outbound?.find((x) => outboundName(x) === outboundName(o));
    if (prev && prev.listen !== o.listen) out.push(`outbound.${outboundName(o)}.listen`);
  }
  return out;
}

export async function startProxy(
  config: ProxyConfig,
  logger: Logger,
  opts: StartProxyOptions = {},
): Promise<RunningProxy> {
  const tickets = TicketKeys.fromConfig(config.sessions);
  const prepared = config.listeners.map((l) => prepareListener(l));
  const listeners: RunningListener[] = [];
  const outbound: RunningOutbound[] = [];
  let current = config;
  let adminServer: Server | undefined;
  let metrics: MetricsEndpoint | undefined;
  let ready = false;
  let watcher: FileWatch | undefined;

  if (config.admin)
    metrics = createProxyMetrics({
      sources: {
        certificateExpiry: () =>
          listeners.flatMap((l) => {
            const leaf = l.core.state.material.own[0];
            return leaf ? [{ listener: l.name, notAfter: leaf.notAfter }] : [];
          }),
        revocation: () =>
          listeners.flatMap((l) => {
            const r = l.core.revocation;
            if (!r.enabled) return [];
            const age = r.feed?.ageMs();
            return [
              {
                listener: l.name,
                stale: r.stale(),
                ...(age !== undefined ? { feedAgeSeconds: age / 1000 } : {}),
              },
            ];
          }),
      },
    });

  try {
    for (const p of prepared)
      listeners.push(
        p.config.protocol === 'tcp'
          ? await startTcpListener({
              prepared: p,
              tickets,
              logger,
              proxyHeader: (sock, id, known) =>
                encodeProxyV2({ ...tlsFacts(sock, known), uniqueId: id, crc32c: true }),
            })
          : await startHttpListener({ prepared: p, tickets, logger }),
      );
    // The first requests should be judged with the CA's revocations, not before them.
    for (const o of config.outbound ?? [])
      outbound.push(
        await startOutbound(o, logger, {
          onEvent: (e) =>
            proxyChannels.outbound.publish({ outbound: e.outbound, result: e.result, side: e.side }),
        }),
      );
    await Promise.all(listeners.map((l) => l.core.revocation.ready(5_000)));
    let admin: RunningProxy['admin'];
    if (config.admin && metrics) {
      const m = metrics;
      const srv = createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/metrics') {
          m.render().then(
            (text) => {
              res.writeHead(200, { 'content-type': m.contentType });
              res.end(text);
            },
            () => {
              res.writeHead(500);
              res.end();
            },
          );
        } else if (path === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('ok\n');
        } else if (path === '/readyz') {
          // Not ready while stopping, or while a fail-closed listener cannot establish revocation status.
          const blocked = listeners.filter(
            (l) => l.core.state.config.revocation?.failMode === 'closed' && l.core.revocation.stale(),
          );
          const ok = ready && blocked.length === 0;
          res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
          res.end(
            ok
              ? 'ready\n'
              : !ready
                ? 'stopping\n'
                : `revocation status stale: ${blocked.map((l) => l.name).join(', ')}\n`,
          );
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found\n');
        }
      });
      adminServer = srv;
      admin = await listenOn(srv, config.admin.listen, 'The admin listener');
    }

    let chain: Promise<unknown> = Promise.resolve();
    const reloadNow = (why: string): ReloadResult => {
      let next = current;
      try {
        if (opts.configPath) next = loadProxyConfig(opts.configPath);
        const blocked = restartOnly(current, next);
        if (blocked.length)
          throw new MtlsError(
            'MTLS_CONFIG_INVALID',
            `A reload cannot change ${blocked.join(', ')}; the running configuration is kept.`,
            { fix: 'Restart mtls proxy to apply those changes (everything else reloads in place).' },
          );
        const all = next.listeners.map((l) => prepareListener(l));
        const changed: string[] = [];
        for (const p of all) {
          const running = listeners.find((l) => l.name === p.config.name)!;
          const before = running.core.state;
          if (
            before.material.digest !== p.material.digest ||
            JSON.stringify(before.config) !== JSON.stringify(p.config) ||
            p.crls.length > 0
          )
            changed.push(p.config.name);
          running.apply(p);
        }
        for (const o of next.outbound ?? []) {
          const running = outbound.find((x) => x.name === outboundName(o))!;
          const before = current.outbound?.find((x) => outboundName(x) === running.name);
          running.reload(o);
          if (JSON.stringify(before) !== JSON.stringify(o)) changed.push(`outbound ${running.name}`);
        }
        current = next;
        watcher?.update(watchedFiles(next, opts.configPath));
        logger.info({ event: 'reloaded', why, listeners: changed }, 'configuration reloaded');
        proxyChannels.reload.publish({ result: 'applied', why });
        return { ok: true, changed };
      } catch (e) {
        const err = isMtlsError(e)
          ? e
          : new MtlsError('MTLS_CONFIG_INVALID', `Reload failed: ${(e as Error).message}`, {
              cause: e,
              fix: 'Fix the configuration; the running one is kept.',
            });
        logger.error(
          { event: 'reload_rejected', why, code: err.code, err: err.message, fix: err.fix },
          'reload rejected; the running configuration is kept',
        );
        proxyChannels.reload.publish({ result: 'rejected', why });
        return { ok: false, changed: [], error: err };
      }
    };
    const reload = (why = 'request'): Promise<ReloadResult> => {
      const r = chain.then(() => reloadNow(why));
      chain = r.catch(() => undefined);
      return r;
    };
    if (opts.watch ?? opts.configPath !== undefined)
      watcher = watchFiles(watchedFiles(config, opts.configPath), () => void reload('file change'));

    ready = true;
    return {
      listeners,
      outbound,
      ...(admin ? { admin } : {}),
      reload,
      close: async () => {
        ready = false;
        watcher?.close();
        await Promise.all([...listeners.map((l) => l.close()), ...outbound.map((o) => o.close())]);
        if (adminServer) {
          adminServer.closeAllConnections();
          await new Promise<void>((r) => adminServer!.close(() => r()));
        }
        metrics?.close();
      },
    };
  } catch (e) {
    await Promise.all([...listeners.map((l) => l.close(0)), ...outbound.map((o) => o.close(0))]);
    adminServer?.close();
    metrics?.close();
    throw e;
  }
}
