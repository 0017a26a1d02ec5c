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
  if (m[2] === undefined) return { protocol: defaultProtocol, transport: url };
  return { protocol: m[1]!.toLowerCase(), transport: url.slice(m[1]!.length + 1) };
}

/** Put a protocol back in front of a transport URL. */
export function formatRpcUrl(protocol: string, transport: string): string {
  return `${protocol}+${transport}`;
}
