/**
 * RPC URLs name a protocol and a transport: `drpc+tcp://127.0.0.1:9990`,
 * `zrpc+tcp://127.0.0.1:4242`, `drpc+inproc://ping`.
 * @module
 */
import { InvalidUrlError } from "../core/Transport.js";

export interface RpcUrl {
  /** `drpc`, `zrpc`. */
  protocol: string;
  /** The transport URL: the same URL without the protocol part, e.g. `tcp://127.0.0.1:9990`. */
  transport: string;
}

/** Split `proto+scheme://rest` into protocol and transport URL. */
export function parseRpcUrl(url: string, defaultProtocol = "drpc"): RpcUrl {
  const m = /^([a-z][a-z0-9.-]*)(?:\+([a-z][a-z0-9.+-]*))?:\/\//i.exec(url);
  if (!m) throw new InvalidUrlError(url, "expected PROTOCOL+TRANSPORT://ADDRESS, e.g. drpc+tcp://127.0.0.1:9990");
  const r = m[2] === undefined ? { protocol: defaultProtocol, transport: url } : { protocol: m[1]!.toLowerCase(), transport: url.slice(m[1]!.length + 1) };
  refuseDatagrams(url, r.transport);
  return r;
}

/** RPC needs a reliable, ordered stream: no protocol runs over datagrams (udp://). */
function refuseDatagrams(url: string, transport: string): void {
  if (/^udp:/i.test(transport)) {
    throw new InvalidUrlError(url, "no RPC protocol runs over udp (datagrams may be lost, duplicated or reordered): serve RPC on tcp, ipc, tls or inproc");
  }
}

/** Put a protocol back in front of a transport URL. */
export function formatRpcUrl(protocol: string, transport: string): string {
  return `${protocol}+${transport}`;
}
