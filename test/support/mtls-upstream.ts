// mTLS upstreams in-process for outbound tests: an HTTPS (HTTP/1.1) or HTTP/2 server that requires a
// client certificate from `ca` and answers with what it saw of the caller (certificate, ALPN, TLS
// version), and a server-speaks-first TLS server (a banner, like SMTP or a database).
import { readFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { createServer as createTlsServer, type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import { LOOPBACK } from './ports.js';

export interface Seen {
  /** The client certificate's URI SANs (SPIFFE ID) and subject CN. */
  uri: string | undefined;
  cn: string | undefined;
  fingerprint256: string | undefined;
  alpn: string | false;
  protocol: string | null;
  servername: string | undefined;
  path?: string;
}

export interface MtlsUpstream {
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

export interface MtlsUpstreamOptions {
  /** Server chain and key (PEM paths). */
  cert: string;
  key: string;
  /** Client CA bundle (PEM path). */
  ca: string;
  kind?: 'https' | 'http2' | 'banner';
  /** Node's own refusal (no alert) when true; default true. */
  rejectUnauthorized?: boolean;
}

function seenOf(sock: TLSSocket, path?: string): Seen {
  const pc = sock.getPeerCertificate(false) as DetailedPeerCertificate | null;
  const uri = pc?.subjectaltname
    ?.split(', ')
    .find((s) => s.startsWith('URI:'))
    ?.slice(4);
  const cn = pc?.subject?.CN;
  const servername = (sock as TLSSocket & { servername?: string | false }).servername;
  return {
    uri,
    cn: Array.isArray(cn) ? cn[0] : cn,
    fingerprint256: pc?.fingerprint256,
    alpn: sock.alpnProtocol ?? false,
    protocol: sock.getProtocol(),
    servername: typeof servername === 'string' ? servername : undefined,
    ...(path !== undefined ? { path } : {}),
  };
}

export async function startMtlsUpstream(o: MtlsUpstreamOptions): Promise<MtlsUpstream> {
  const [cert, key, ca] = await Promise.all([readFile(o.cert), readFile(o.key), readFile(o.ca)]);
  const tls = { cert, key, ca, requestCert: true, rejectUnauthorized: o.rejectUnauthorized ?? true };
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  let server;
  if (o.kind === 'http2') {
    server = createSecureServer({ ...tls, allowHTTP1: false }, (req, res) => {
      const s = seenOf(req.socket as TLSSocket, req.url);
      seen.push(s);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(s));
    });
  } else if (o.kind === 'banner') {
    server = createTlsServer(tls, (sock) => {
      const s = seenOf(sock);
      seen.push(s);
      sock.on('error', () => undefined);
      sock.write(`220 banner ${JSON.stringify(s)}\r\n`);
      sock.on('data', (d: Buffer) => sock.end(`250 got ${d.toString('utf8').trim()}\r\n`));
    });
  } else {
    server = createHttpsServer({ ...tls, ALPNProtocols: ['http/1.1'] }, (req, res) => {
      const s = seenOf(req.socket as TLSSocket, req.url);
      seen.push(s);
      res.writeHead(200, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify(s));
    });
  }
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  const srv = server;
  await new Promise<void>((r) => srv.listen(0, LOOPBACK, r));
  return {
    port: (srv.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}
