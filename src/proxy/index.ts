// mtls proxy: mTLS listeners that classify every peer into the shared reason vocabulary, authorize
// identities with allow rules, and forward to plaintext upstreams with the identity in headers.
import { createServer, type Server } from 'node:http';
import { MtlsError } from '../errors/index.js';
import { createProxyMetrics, type Logger } from '../telemetry/index.js';
import { unsupportedFeatures, type ProxyConfig } from './config.js';
import { splitHostPort, startHttpListener, type RunningListener } from './http.js';

export * from './config.js';
export * from './verdict.js';
export * from './policy.js';
export { startHttpListener, xfccValue, type RunningListener } from './http.js';

export interface RunningProxy {
  listeners: RunningListener[];
  admin?: { host: string; port: number };
  close(): Promise<void>;
}

export async function startProxy(config: ProxyConfig, logger: Logger): Promise<RunningProxy> {
  const unsupported = unsupportedFeatures(config);
  if (unsupported.length)
    throw new MtlsError(
      'MTLS_PROXY_UNSUPPORTED',
      `This version of mtls proxy does not run: ${unsupported.join(', ')}.`,
      {
        fix: 'Remove those keys; this version runs HTTP listeners to http://host:port upstreams, without revocation or outbound mode.',
      },
    );
  const listeners: RunningListener[] = [];
  let adminServer: Server | undefined;
  let metricsClose: (() => void) | undefined;
  let ready = false;
  try {
    for (const l of config.listeners) listeners.push(await startHttpListener({ config: l, logger }));
    let admin: RunningProxy['admin'];
    if (config.admin) {
      const metrics = createProxyMetrics();
      metricsClose = () => metrics.close();
      const srv = createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path === '/metrics') {
          metrics.render().then(
            (text) => {
              res.writeHead(200, { 'content-type': metrics.contentType });
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
          res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
          res.end(ready ? 'ready\n' : 'stopping\n');
        } else {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('not found\n');
        }
      });
      adminServer = srv;
      const { host, port } = splitHostPort(config.admin.listen);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', (e: NodeJS.ErrnoException) =>
          reject(
            new MtlsError(
              'MTLS_PROXY_LISTEN',
              `The admin listener cannot listen on ${config.admin!.listen}: ${e.code ?? e.message}.`,
              {
                cause: e,
                fix: 'Pick a free port for admin.listen.',
              },
            ),
          ),
        );
        srv.listen({ host, port }, resolve);
      });
      const a = srv.address();
      admin = { host, port: typeof a === 'object' && a ? a.port : port };
    }
    ready = true;
    return {
      listeners,
      ...(admin ? { admin } : {}),
      close: async () => {
        ready = false;
        await Promise.all(listeners.map((l) => l.close()));
        if (adminServer) {
          adminServer.closeAllConnections();
          await new Promise<void>((r) => adminServer!.close(() => r()));
        }
        metricsClose?.();
      },
    };
  } catch (e) {
    await Promise.all(listeners.map((l) => l.close(0)));
    adminServer?.close();
    metricsClose?.();
    throw e;
  }
}
