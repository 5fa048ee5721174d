// HAProxy as a PROXY protocol v2 receiver: `bind … accept-proxy` in mode http, answering every request
// with what it parsed from the header. HAProxy 2.6 has src/dst fetches, fc_pp_authority and
// fc_pp_unique_id (fc_pp_tlv() for other TLVs arrived in 2.9); it also verifies a PP2_TYPE_CRC32C.
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { program } from './cli.js';
import { startPeer, type Peer } from './peers.js';
import { LOOPBACK } from './ports.js';

/** The body HAProxy answers: one `key=value` per line, parsed by parsePpReport. */
const REPORT = [
  'src=%[src]',
  'src_port=%[src_port]',
  'dst=%[dst]',
  'dst_port=%[dst_port]',
  'authority=%[fc_pp_authority]',
  'unique_id=%[fc_pp_unique_id]',
].join('\\n');

export function haproxyPpConfig(port: number): string {
  return `global
  maxconn 64

defaults
  mode http
  timeout connect 5s
  timeout client 10s
  timeout server 10s

frontend pp
  bind ${LOOPBACK}:${port} accept-proxy
  http-request return status 200 content-type text/plain lf-string "${REPORT}\\n"
`;
}

/** Starts HAProxy with accept-proxy on a free 127.0.0.1 port (config in `dir`). */
export async function startHaproxyPp(dir: string): Promise<Peer> {
  const conf = join(dir, 'haproxy-pp.cfg');
  return startPeer('haproxy-pp', async (port) => {
    await writeFile(conf, haproxyPpConfig(port));
    return { command: program('haproxy'), args: ['-f', conf, '-db'], cwd: dir };
  });
}

export interface PpReport {
  src: string;
  src_port: string;
  dst: string;
  dst_port: string;
  authority: string;
  unique_id: string;
}

export function parsePpReport(body: string): PpReport {
  const out: Record<string, string> = {};
  for (const line of body.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out as unknown as PpReport;
}
