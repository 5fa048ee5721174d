// Free ports on 127.0.0.1 for peers that cannot bind port 0 themselves (nginx, HAProxy).
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export const LOOPBACK = '127.0.0.1';

/** Binds 127.0.0.1:0, reads the port the kernel chose, and closes. The caller retries on EADDRINUSE. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen({ host: LOOPBACK, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** True when something accepts a TCP connection on 127.0.0.1:port. */
export function portAccepts(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: LOOPBACK, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Polls until the port accepts, `gaveUp()` says to stop (the peer died), or the deadline passes.
 * Resolves true when the port accepts.
 */
export async function waitForPort(port: number, gaveUp: () => boolean, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (gaveUp()) return false;
    if (await portAccepts(port)) return true;
    await sleep(50);
  }
  return false;
}
