// Event channels (node:diagnostics_channel): components publish what happened; telemetry turns it
// into metrics. Publishing costs nothing when nobody subscribes.
import { channel } from 'node:diagnostics_channel';

export interface CaIssuedEvent {
  action: 'issue' | 'renew';
  profile: string;
  /** From the request's arrival to the stored certificate. */
  seconds: number;
}

export interface CaRefusedEvent {
  action: string;
  /** The MTLS_* code of the refusal. */
  reason: string;
}

export interface CaOcspEvent {
  result: 'cached' | 'signed' | 'malformed' | 'error';
  seconds: number;
}

export interface CaTokenEvent {
  event: 'created' | 'used';
}

export interface CaCrlEvent {
  number: bigint;
  thisUpdate: Date;
  entries: number;
}

export interface StoreErrorEvent {
  code: string;
}

export const caChannels = {
  issued: channel('mtls:ca:issued'),
  refused: channel('mtls:ca:refused'),
  ocsp: channel('mtls:ca:ocsp'),
  token: channel('mtls:ca:token'),
  crl: channel('mtls:ca:crl'),
  storeError: channel('mtls:store:error'),
} as const;

export interface ProxyHandshakeEvent {
  listener: string;
  /** 'accepted' or a reason from the shared catalog (pki/reasons.ts), or handshake_failed/_aborted. */
  result: string;
  /** From the TCP accept to the end of the handshake. */
  seconds?: number;
  resumed?: boolean;
}

export interface ProxyRequestEvent {
  listener: string;
  /** The HTTP status answered to the client. */
  status: number;
  /** forwarded, or why not: unauthenticated, forbidden, revocation_unavailable, bad_request, upstream_error. */
  decision?: string;
  /** The index of the allow rule that admitted it ("any" for allow: any, "" when none). */
  rule?: string;
  /** Set when the request was forwarded without a verified identity (permissive mode). */
  unauthenticated?: boolean;
  /** Upstream time to response headers, for forwarded requests. */
  upstreamSeconds?: number;
}

export interface ProxyConnectionEvent {
  listener: string;
  delta: 1 | -1;
}

export interface ProxyClosedEvent {
  listener: string;
  reason: string;
}

export interface ProxyUpstreamErrorEvent {
  listener: string;
  code: string;
}

export interface ProxyOutboundEvent {
  outbound: string;
  /** 'ok' or the reason the connection to the upstream failed. */
  result: string;
  /** Whose fault: server (the upstream's certificate), client (ours), both, network. */
  side?: string;
}

export interface ProxyReloadEvent {
  /** applied (the new configuration and files serve new connections) or rejected (the old ones kept). */
  result: 'applied' | 'rejected';
  /** What asked for it: file change, SIGHUP, a caller. */
  why: string;
}

export const proxyChannels = {
  reload: channel('mtls:proxy:reload'),
  outbound: channel('mtls:proxy:outbound'),
  handshake: channel('mtls:proxy:handshake'),
  request: channel('mtls:proxy:request'),
  connection: channel('mtls:proxy:connection'),
  closed: channel('mtls:proxy:closed'),
  upstreamError: channel('mtls:proxy:upstream-error'),
} as const;
