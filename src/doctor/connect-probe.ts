// The live probe of `mtls doctor connect`: one TLS handshake from the client's side with node:tls,
// which verifies the server against the client's trust bundle as any client would, the bytes on the
// wire tapped to read what Node does not expose (the chain exactly as sent, TLS 1.2's
// CertificateRequest and its CA names, whether a TLS 1.3 server asked for a certificate), then, only
// when the server verified, one HTTP/1.1 GET to read the answer or the alert a TLS 1.3 server sends
// after the client's Finished. A server that does not verify gets nothing but the handshake.
import { lookup } from 'node:dns/promises';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import {
  HANDSHAKE,
  alertFromErrorCode,
  certificateList12,
  certificateList13,
  serverHelloCipher13,
  clientFlightTls13,
  decryptServerHandshake13,
  parseCertificateRequest13,
  tls13HashLength,
  looksLikeTls,
  parseCertificateRequest12,
  parseHttpAnswer,
  parseRecords,
  plaintextAlerts,
  plaintextHandshake,
  serverHelloVersion,
  type Alert,
  type HttpAnswer,
} from './connect-wire.js';

export interface ProbeOptions {
  host: string;
  port: number;
  /** SNI and Host header (default: host). Never sent as SNI when it is an IP address. */
  servername?: string;
  /** The client's chain (leaf first) and key, PEM. */
  cert?: string;
  key?: string;
  timeoutMs: number;
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** Send the HTTP probe after the handshake (false: stop once the handshake is read). */
  http: boolean;
  /**
   * What the server is verified against (PEM; default: Node's public roots). node:tls verifies it
   * and ends the connection when it does not verify: nothing is written to a server the client
   * cannot verify, and the doctor reads its chain from the captured handshake instead.
   */
  ca?: string | Buffer;
}

export type Stage = 'dns' | 'tcp' | 'handshake' | 'answer';

export interface Observation {
  target: string;
  address?: string;
  /** Where it stopped: the stage of the error or timeout, or 'answer' when everything was read. */
  stage: Stage;
  error?: { code: string; message: string };
  timedOut: boolean;
  tcpConnected: boolean;
  /** The server's first bytes when they are not TLS (a plain HTTP server answers the ClientHello). */
  notTls?: string;
  protocol?: string;
  cipher?: string;
  /** What the server sent, leaf first (DER). */
  serverChain: Buffer[];
  /** Whether the server asked for a client certificate; undefined when it cannot be told. */
  certRequested?: boolean;
  /** Whether the client sent a (non-empty) certificate. */
  certSent?: boolean;
  /** TLS 1.2 CertificateRequest: the CA names the server accepts (undefined: not seen). */
  caNames?: string[];
  caNamesDer?: Buffer[];
  alert?: Alert & { when: 'handshake' | 'after-handshake' };
  http?: HttpAnswer;
  /** The connection closed after the handshake without an answer or an alert. */
  closedSilently?: boolean;
  /** node:tls refused the server's chain or name (code such as CERT_HAS_EXPIRED): no probe was sent. */
  serverVerifyError?: { code: string; message: string };
  ms: number;
}

/** A Duplex between node:tls and the TCP socket that keeps a copy of every byte each way. */
function tap(sock: Socket, seen: { in: Buffer[]; out: Buffer[] }, onOut: () => void): Duplex {
  const d = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      seen.out.push(Buffer.from(chunk));
      onOut();
      sock.write(chunk, cb);
    },
    final(cb) {
      sock.end();
      cb();
    },
    destroy(err, cb) {
      sock.destroy();
      cb(err);
    },
  });
  sock.on('data', (c: Buffer) => {
    seen.in.push(c);
    d.push(c);
  });
  sock.on('end', () => d.push(null));
  sock.on('close', () => d.destroy());
  sock.on('error', (e) => d.destroy(e));
  return d;
}

function chainOf(s: TLSSocket): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set<string>();
  let c: PeerCertificate | undefined = s.getPeerCertificate(true);
  while (c?.raw && !seen.has(c.fingerprint256) && out.length < 16) {
    seen.add(c.fingerprint256);
    out.push(c.raw);
    c = (c as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return out;
}

const MAX_ANSWER = 64 * 1024;

export async function probe(o: ProbeOptions): Promise<Observation> {
  const started = performance.now();
  const target = `${o.host}:${o.port}`;
  const obs: Observation = {
    target,
    stage: 'dns',
    timedOut: false,
    tcpConnected: false,
    serverChain: [],
    ms: 0,
  };
  const done = (): Observation => ({ ...obs, ms: Math.round(performance.now() - started) });
  const deadline = Date.now() + o.timeoutMs;

  // ---- name resolution (its own stage, so a DNS failure is named as one)
  try {
    const host = o.host.replace(/^\[(.*)\]$/, '$1');
    obs.address = isIP(host)
      ? host
      : (
          await withTimeout(lookup(host), deadline, () => {
            obs.timedOut = true;
          })
        ).address;
  } catch (e) {
    if (!obs.timedOut) {
      const err = e as NodeJS.ErrnoException;
      obs.error = { code: err.code ?? 'EDNS', message: err.message };
    }
    return done();
  }

  obs.stage = 'tcp';
  const servername = o.servername ?? o.host;
  return new Promise<Observation>((resolve) => {
    const seen = { in: [] as Buffer[], out: [] as Buffer[] };
    const answer: Buffer[] = [];
    let answerBytes = 0;
    let finished = false;
    let secure = false;
    let tls: TLSSocket | undefined;
    let flightWaiter: (() => void) | undefined;
    /** The client's TLS 1.3 flight, read before anything else is written. */
    let flight: ReturnType<typeof clientFlightTls13>;
    let serverSecret: Buffer | undefined;
    const raw = netConnect({ host: obs.address!, port: o.port });

    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      const inRecords = parseRecords(Buffer.concat(seen.in));
      const hs = plaintextHandshake(inRecords);
      const sh = hs.find((m) => m.type === HANDSHAKE.serverHello);
      if (!obs.protocol && sh) {
        const v = serverHelloVersion(sh.body);
        if (v) obs.protocol = v;
      }
      // The chain exactly as the server sent it (node:tls appends the root from the trust store):
      // TLS 1.2's Certificate message is plaintext; TLS 1.3's is decrypted below.
      const cm = hs.find((m) => m.type === HANDSHAKE.certificate);
      if (cm) obs.serverChain = certificateList12(cm.body);
      if (!obs.cipher && sh && obs.protocol === 'TLSv1.3') obs.cipher = serverHelloCipher13(sh.body);
      const cr = hs.find((m) => m.type === HANDSHAKE.certificateRequest);
      if (cr && obs.protocol !== 'TLSv1.3') {
        obs.certRequested = true;
        try {
          const names = parseCertificateRequest12(cr.body);
          obs.caNames = names.caNames;
          obs.caNamesDer = names.caNamesDer;
        } catch {
          obs.caNames = [];
        }
      } else if (obs.protocol && obs.protocol !== 'TLSv1.3' && hs.some((m) => m.type === 14)) {
        obs.certRequested = false; // ServerHelloDone seen without a CertificateRequest
      }
      let decrypted = false;
      if (obs.protocol === 'TLSv1.3' && serverSecret && obs.cipher) {
        // The server's encrypted handshake, read with the secret node:tls gives on 'keylog'.
        const msgs = decryptServerHandshake13(inRecords, serverSecret, obs.cipher);
        const cert13 = msgs?.find((m) => m.type === HANDSHAKE.certificate);
        if (cert13) {
          const list = certificateList13(cert13.body);
          if (list.length) obs.serverChain = list;
        }
        if (msgs?.some((m) => m.type === 20)) {
          decrypted = true;
          const cr13 = msgs.find((m) => m.type === HANDSHAKE.certificateRequest);
          obs.certRequested = cr13 !== undefined;
          if (cr13) {
            try {
              const names = parseCertificateRequest13(cr13.body);
              obs.caNames = names?.caNames ?? [];
              obs.caNamesDer = names?.caNamesDer ?? [];
            } catch {
              obs.caNames = [];
            }
          }
        }
      }
      if (obs.protocol === 'TLSv1.3') {
        // When node:tls refused the server, the client's flight was never waited for: read it now.
        flight ??= clientFlightTls13(parseRecords(Buffer.concat(seen.out)), tls13HashLength(obs.cipher));
        if (flight) {
          if (!decrypted) obs.certRequested = flight.certRequested;
          obs.certSent = flight.certSent;
        }
      } else if (obs.certRequested !== undefined && obs.certSent === undefined) {
        // TLS 1.2: the client's Certificate message is in plaintext; empty means no certificate.
        const outHs = plaintextHandshake(parseRecords(Buffer.concat(seen.out)));
        const cm = outHs.find((m) => m.type === HANDSHAKE.certificate);
        if (cm) obs.certSent = cm.body.length > 3;
      }
      if (!obs.alert) {
        const a = plaintextAlerts(inRecords).find((x) => x.fatal);
        if (a) obs.alert = { ...a, when: secure ? 'after-handshake' : 'handshake' };
      }
      if (secure && o.http) {
        const bytes = Buffer.concat(answer);
        const http = parseHttpAnswer(bytes);
        if (http) obs.http = http;
        else if (!obs.alert && !obs.timedOut) obs.closedSilently = true;
      }
      tls?.destroy();
      raw.destroy();
      resolve(done());
    };

    const timer = setTimeout(
      () => {
        obs.timedOut = true;
        finish();
      },
      Math.max(1, deadline - Date.now()),
    );

    raw.once('error', (e: NodeJS.ErrnoException) => {
      if (!obs.tcpConnected) {
        obs.error = { code: e.code ?? 'ECONNECT', message: e.message };
        finish();
      }
    });
    raw.once('connect', () => {
      obs.tcpConnected = true;
      obs.stage = 'handshake';
      let first = true;
      raw.on('data', (c: Buffer) => {
        if (first && !looksLikeTls(c)) {
          obs.notTls = c.subarray(0, 200).toString('latin1').split(/\r?\n/)[0]!.slice(0, 120);
          obs.error = { code: 'NOT_TLS', message: `the server answered ${JSON.stringify(obs.notTls)}` };
          setImmediate(finish); // let the first line be recorded
        }
        first = false;
      });
      const sock = tap(raw, seen, () => flightWaiter?.());
      try {
        tls = tlsConnect({
          socket: sock,
          ...(isIP(servername) ? {} : { servername }),
          // The name node:tls checks the server certificate against (the socket is the tap, not a host).
          host: servername,
          ...(o.ca ? { ca: o.ca } : {}),
          ALPNProtocols: ['http/1.1'],
          ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
          ...(o.cert && o.key ? { cert: o.cert, key: o.key } : {}),
        });
      } catch (e) {
        // node:tls refuses the client's own certificate or key (OpenSSL's security level).
        const err = e as NodeJS.ErrnoException;
        obs.error = { code: err.code ?? 'ETLS', message: err.message };
        finish();
        return;
      }
      tls.on('keylog', (line: Buffer) => {
        const m = /^SERVER_HANDSHAKE_TRAFFIC_SECRET [0-9a-f]+ ([0-9a-f]+)/i.exec(line.toString('latin1'));
        if (m) serverSecret = Buffer.from(m[1]!, 'hex');
      });
      tls.on('error', (e: NodeJS.ErrnoException) => {
        if (finished) return;
        if (tls?.authorizationError) {
          // The handshake completed and node:tls refused the server's chain or name: the probe is
          // not sent; the doctor judges the chain read from the handshake.
          obs.serverVerifyError = { code: e.code ?? String(tls.authorizationError), message: e.message };
          obs.stage = 'answer';
          finish();
          return;
        }
        if (!obs.notTls) obs.error = { code: e.code ?? 'ETLS', message: e.message };
        const a = alertFromErrorCode(e.code);
        if (a) obs.alert = { ...a, when: secure ? 'after-handshake' : 'handshake' };
        finish();
      });
      tls.once('secureConnect', () => {
        const t = tls!;
        secure = true;
        obs.stage = 'answer';
        obs.protocol = t.getProtocol() ?? undefined;
        obs.cipher = t.getCipher()?.name;
        obs.serverChain = chainOf(t);
        if (!o.http) {
          // Wait for the client's flight (it tells whether a certificate was asked for), then stop.
          void waitForFlight().then(finish);
          return;
        }
        // TLS 1.3: the server judges the client's certificate after the client's Finished. Writing at
        // once races its alert (the write then fails with EPIPE and the alert is lost), so wait for a
        // sign it accepted (a session ticket, or data) or for its alert, briefly.
        const sign = new Promise<void>((res) => {
          if (obs.protocol !== 'TLSv1.3') return res();
          const t0 = setTimeout(res, 250);
          const go = (): void => {
            clearTimeout(t0);
            res();
          };
          t.once('session', go);
          t.once('data', go);
          t.once('error', go);
          t.once('close', go);
        });
        void Promise.all([waitForFlight(), sign]).then(() => {
          if (finished) return;
          const hostHeader = isIP(servername) && servername.includes(':') ? `[${servername}]` : servername;
          t.write(
            `GET / HTTP/1.1\r\nHost: ${hostHeader}${o.port === 443 ? '' : `:${o.port}`}\r\nUser-Agent: mtls-doctor\r\nAccept: */*\r\nConnection: close\r\n\r\n`,
          );
        });
      });
      tls.on('data', (d: Buffer) => {
        if (answerBytes < MAX_ANSWER) {
          answer.push(d);
          answerBytes += d.length;
        }
      });
      tls.once('end', () => setImmediate(finish));
      tls.once('close', () => setImmediate(finish));
      raw.once('close', () => setImmediate(finish));
    });

    /** Resolves once the client's handshake flight is on the wire (at most ~100 ms). */
    function waitForFlight(): Promise<void> {
      return new Promise((res) => {
        const ready = (): boolean => {
          if (obs.protocol !== 'TLSv1.3') return true;
          flight = clientFlightTls13(parseRecords(Buffer.concat(seen.out)), tls13HashLength(obs.cipher));
          return flight !== undefined;
        };
        if (ready()) return res();
        const give = setTimeout(() => {
          flightWaiter = undefined;
          res();
        }, 100);
        flightWaiter = () => {
          if (!ready()) return;
          clearTimeout(give);
          flightWaiter = undefined;
          setImmediate(res);
        };
      });
    }
  });
}

async function withTimeout<T>(p: Promise<T>, deadline: number, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => {
        onTimeout();
        reject(new Error('timeout'));
      },
      Math.max(1, deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
