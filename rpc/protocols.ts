/**
 * The registry of RPC protocols, by URL prefix (`drpc` in `drpc+tcp://…`).
 * A protocol module registers itself when imported, as transports do on a
 * loop, so servers and clients import no protocol: a third protocol is a new
 * folder that calls {@link registerProtocol}, not an edit of the core.
 * `tilth/rpc` imports drpc and zrpc, so both are known to anyone who imports it.
 * A server or client may also name its protocols (`options.protocols`).
 * @module
 */
import { TilthError } from "../core/errors.js";
import type { RpcProtocol } from "./protocol.js";

const registry = new Map<string, RpcProtocol>();

/** Make `protocol` known by its name. A second registration of a name replaces the first. */
export function registerProtocol(protocol: RpcProtocol): void {
  registry.set(protocol.name, protocol);
}

/** The protocols known now (or those given), by name. */
export function knownProtocols(given?: readonly RpcProtocol[]): ReadonlyMap<string, RpcProtocol> {
  return given === undefined ? registry : new Map(given.map((p) => [p.name, p]));
}

/** The protocol named `name` for `url`; ERR_UNKNOWN_PROTOCOL, naming the known ones, when there is none. */
export function protocolFor(name: string, url: string, given?: readonly RpcProtocol[]): RpcProtocol {
  const known = knownProtocols(given);
  const p = known.get(name);
  if (p !== undefined) return p;
  throw new TilthError(
    "ERR_UNKNOWN_PROTOCOL",
    `no RPC protocol "${name}" for ${url} (known: ${[...known.keys()].join(", ") || "none"}); import the module that registers it (tilth/rpc registers drpc and zrpc) or pass it in options.protocols`,
    { context: { protocol: name, known: [...known.keys()] } },
  );
}
