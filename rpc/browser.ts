/**
 * `tilth/browser`: the RPC client in a browser. Typed `connect<T>`, streams
 * as async iterables (and Observables on the server side recognised by
 * shape), cancellation, deadlines, heartbeats and reconnection, as with
 * `tilth/rpc`, over the browser's own WebSocket to a `drpc+ws://` or
 * `drpc+wss://` server. Nothing in its import graph imports a Node module;
 * bytes are Uint8Array.
 *
 * A loop of its own ({@link browserLoop}) runs the client; pass `loop` to
 * share one. `WebSocket` may name another WebSocket class (the `ws`
 * library's, to run this client on a Node without a global WebSocket).
 *
 * @example
 * ```ts
 * import { connect, close } from "tilth/browser";
 * type Api = { add(a: number, b: number): Promise<number>; ticks(n: number): AsyncGenerator<number> };
 * const api = await connect<Api>("drpc+ws://127.0.0.1:8080/rpc");
 * console.log(await api.add(1, 2));
 * for await (const t of api.ticks(3)) console.log(t);
 * await close(api);
 * ```
 * @module
 */
import { BrowserLoop } from "../adapters/browser.js";
import type { Loop } from "../core/Loop.js";
import { BrowserWsTransport, type WebSocketConstructor } from "../transports/wsBrowser.js";
import { connect as connectWith, type ClientOptions, type Remote } from "./Client.js";
import { drpcClient } from "./drpc/client.js";

export { BrowserLoop } from "../adapters/browser.js";
export { BrowserWsTransport, BrowserWsConnection, type WebSocketConstructor, type WebSocketLike } from "../transports/wsBrowser.js";
export { clientOf, close, withOptions, type Remote, type RemoteCall, type RemoteStream, type ObservableLike, type CallOptions } from "./Client.js";
export { isTilthError, TilthError } from "../core/errors.js";

let shared: BrowserLoop | undefined;

/** The loop the browser client runs on by default (one per page). */
export function browserLoop(): BrowserLoop {
  return (shared ??= withWs(new BrowserLoop()));
}

function withWs<L extends Loop>(loop: L, WS?: WebSocketConstructor): L {
  if (!loop.transports.has("ws")) loop.transports.register(new BrowserWsTransport(WS));
  return loop;
}

/** Options of the browser's connect: those of `tilth/rpc`'s, with the loop optional. */
export interface BrowserClientOptions extends Omit<ClientOptions, "loop"> {
  /** The loop to run on. Default: {@link browserLoop}. */
  loop?: Loop;
  /** The WebSocket class. Default: the host's global `WebSocket`. */
  WebSocket?: WebSocketConstructor;
}

/**
 * Connect to a `drpc+ws://HOST:PORT/PATH` (or `drpc+wss://`) server. One URL
 * only: a browser client does not balance over several (that is
 * ERR_NO_BALANCER).
 */
export async function connect<T>(url: string, options: BrowserClientOptions = {}): Promise<Remote<T>> {
  if (typeof url !== "string") {
    const { TilthError } = await import("../core/errors.js");
    throw new TilthError("ERR_NO_BALANCER", "the browser client connects to one URL: balancing over several is tilth/rpc's, on Node");
  }
  const { loop: given, WebSocket: WS, ...rest } = options;
  const loop = withWs(given ?? browserLoop(), WS);
  return await connectWith<T>(url, {
    ...rest,
    loop,
    protocols: [drpcClient],
    transport: { ...rest.transport, ...(WS === undefined ? {} : { WebSocket: WS }) },
  });
}
