/**
 * In-process calls: `drpc+local://NAME`. A client and a server on one loop
 * talk through a pair of sessions that hand each other JavaScript values, with
 * no encoding and no transport, keeping every rule of a call: the call engine
 * on both sides (rpc/ClientCalls, rpc/ServerCalls) runs unchanged, so
 * deadlines, cancellation, streams with credit, middleware, coded errors,
 * `maxConcurrentCalls` and introspection behave as over drpc+tcp.
 *
 * What differs from a connection, and is the point:
 * - Values pass by reference: the handler gets the caller's arguments, the
 *   caller the handler's result and stream items, as they are (no copy, no
 *   value-model check). With `copy: "structured"` (client option) each is a
 *   `structuredClone` instead: what `postMessage` carries, which is more than
 *   the value model (a Map stays a Map) and refuses what it cannot clone.
 * - Calls reach the server on a later microtask of the same loop turn
 *   (several calls made in one run of code go together), never inside the
 *   caller's own statement; answers reach the caller as the server gives them.
 * - A handler's error reaches the caller as it would over the wire: a
 *   RemoteError with the handler's code, message and data (and an
 *   ERR_TIMEOUT from the server's deadline as the caller's TimeoutError).
 * - No heartbeats: the other end cannot go silent. Closing either end fails
 *   the other's calls in flight with ERR_CONNECTION_LOST, as a lost peer.
 *
 * `drpc+inproc://` keeps encoding everything: it stays the faithful model of a
 * remote peer for tests.
 * @module
 */
import type { Loop } from "../core/Loop.js";
import { CancelledError, ClosedError, TilthError } from "../core/errors.js";
import { RESOLVED } from "../core/resolved.js";
import { AddressInUseError, ConnectionRefusedError } from "../transports/errors.js";
import { ClientCalls, type CallSender } from "./ClientCalls.js";
import { ConnectionLostError, errorInfo } from "./errors.js";
import { IdCounter } from "./internal/IdTable.js";
import { STREAM_WINDOW, type CallOptions, type PendingCall } from "./PendingCall.js";
import type { Metadata } from "./meta.js";
import type { ClientSessionHooks, ClientSessionLike, ServerCore, ServerSessionLike } from "./protocol.js";
import { ServerCalls, type CallWire, type ServerCall } from "./ServerCalls.js";
import { clientSlots } from "./internal/clientSlots.js";

/** The transport part of an in-process URL: `local://NAME`. */
export const LOCAL_SCHEME = "local:";

/** How values cross between caller and handler in-process. */
export type LocalCopy = "reference" | "structured";

/** A server's end of `local://NAME`: what a client of the name reaches. */
interface LocalListener {
  readonly server: ServerCore;
  /** A client session opened: the server's side of the pair. */
  accept(client: LocalClientSession): LocalServerSession;
}

/** The local listeners of each loop, by name. */
const registry = new WeakMap<Loop, Map<string, LocalListener>>();

/** In-process calls speak drpc's rules: another protocol's URL with `local://` is an error saying so. */
export function checkLocalProtocol(protocol: string, url: string): void {
  if (protocol !== "drpc") throw new TilthError("ERR_INVALID_URL", `${url}: in-process calls are drpc+local://NAME (${protocol} has no in-process form; ${protocol}+inproc:// encodes as over a socket)`, { context: { url } });
}

function nameOf(transportUrl: string): string {
  const name = transportUrl.slice("local://".length);
  if (name === "" || name.includes("/")) throw new TilthError("ERR_INVALID_URL", `bad in-process URL ${transportUrl}: expected drpc+local://NAME (a name without "/")`, { context: { url: transportUrl } });
  return name;
}

/**
 * Serve `server` in-process at `local://NAME` on its loop. `onSession` is told
 * of each client's session (the server tracks it as a connection). Returns a
 * function that stops accepting. ERR_ADDRESS_IN_USE when the name is taken.
 */
export function listenLocal(server: ServerCore, transportUrl: string, onSession: (s: LocalServerSession) => void): () => void {
  const name = nameOf(transportUrl);
  let names = registry.get(server.loop);
  if (names === undefined) registry.set(server.loop, (names = new Map()));
  if (names.has(name)) throw new AddressInUseError(transportUrl);
  const listener: LocalListener = {
    server,
    accept(client) {
      const s = new LocalServerSession(server, client, transportUrl);
      onSession(s);
      return s;
    },
  };
  names.set(name, listener);
  return () => {
    if (names.get(name) === listener) names.delete(name);
  };
}

export interface LocalClientOptions extends ClientSessionHooks {
  /** How values cross: by reference (default) or as structured copies. */
  copy?: LocalCopy | undefined;
}

/** Open a client session to the server at `local://NAME` of `loop`; ERR_CONNECTION_REFUSED when none serves there. */
export function connectLocal(loop: Loop, transportUrl: string, options: LocalClientOptions): ClientSessionLike {
  const listener = registry.get(loop)?.get(nameOf(transportUrl));
  if (listener === undefined) throw new ConnectionRefusedError(transportUrl);
  const client = new LocalClientSession(loop, transportUrl, options);
  client.pair(listener.accept(client));
  return client;
}

const identity = <T>(v: T): T => v;
/** An outbox entry that cancels. */
const CANCEL = Symbol("cancel");

/** The client's end of an in-process pair: calls go to the server's engine on a microtask, answers come back as values. */
export class LocalClientSession implements ClientSessionLike, CallSender {
  readonly protocol = "drpc";
  readonly peerUrl: string;
  readonly #calls: ClientCalls;
  readonly #ids = new IdCounter(0x7fffffff);
  readonly #hooks: ClientSessionHooks;
  /** Values from caller to handler, and back. */
  readonly copy: <T>(v: T) => T;
  /** The server's engine keeps each call's deadline, on this loop. */
  readonly serverKeepsDeadlines = true;
  #server!: LocalServerSession;
  #draining = false;
  #ended = false;
  /**
   * Calls and cancels made in this run of code, delivered together on a
   * microtask, three slots each: a call (its call, kwargs, time left) or a
   * cancel (its id, CANCEL, the reason).
   */
  #outbox: unknown[] = [];

  constructor(loop: Loop, peerUrl: string, options: LocalClientOptions) {
    this.peerUrl = peerUrl;
    this.#hooks = options;
    this.copy = options.copy === "structured" ? structuredClone : identity;
    this.#calls = new ClientCalls(loop, options.middleware, this, options.meta);
  }

  /** @internal */
  pair(server: LocalServerSession): void {
    this.#server = server;
  }

  /** @internal the engine of calls, for the server's answers */
  get calls(): ClientCalls {
    return this.#calls;
  }

  get usable(): boolean {
    return !this.#ended && !this.#draining;
  }

  get inFlight(): number {
    return this.#calls.size;
  }

  idle(): Promise<void> {
    return this.#calls.idle();
  }

  call<R>(method: string, args: readonly unknown[], timeoutMs: number | undefined, options: CallOptions | undefined): PendingCall<R> {
    if (this.#ended) throw new ClosedError(`in-process connection to ${this.peerUrl} is closed`);
    return this.#calls.start<R>(this.#ids.next(this.#calls.table), method, args, timeoutMs, options);
  }

  // ---- CallSender ----

  sendCall(call: PendingCall<any>, kwargs: Record<string, unknown> | null, timeoutMs: number | undefined): void {
    const copy = this.copy;
    // Copied now (a structured copy), so what cannot be copied fails the call before it is sent.
    const args = copy === identity ? call.args : copy(call.args);
    let wire = call._wireMeta();
    if (wire !== undefined && copy !== identity) wire = copy(wire);
    this.#post(copy === identity && wire === undefined ? call : { id: call.id, method: call.method, args, wire }, kwargs === null || copy === identity ? kwargs : copy(kwargs), timeoutMs ?? null);
  }

  grant(call: PendingCall<any>, n: number): void {
    this.#server.grant(call.id, n);
  }

  cancelled(call: PendingCall<any>, reason: Error): void {
    // After the CALL it cancels, as on a connection.
    this.#post(call.id, CANCEL, reason.message);
  }

  closed(): void {
    this.#closeIfDrained();
  }

  #post(a: unknown, b: unknown, c: unknown): void {
    const out = this.#outbox;
    if (out.length === 0) void RESOLVED.then(this.#deliver);
    out.push(a, b, c);
  }

  readonly #deliver = (): void => {
    const out = this.#outbox;
    this.#outbox = [];
    const server = this.#server;
    for (let i = 0; i < out.length; i += 3) {
      const b = out[i + 1];
      if (b === CANCEL) server.cancel(out[i] as number, out[i + 2] as string);
      else {
        const call = out[i] as { id: number; method: string; args: readonly unknown[]; wire?: Metadata | undefined };
        server.dispatch(call.id, call.method, call.args as unknown[], b as Record<string, unknown> | null, out[i + 2] as number | null, call.wire);
      }
    }
  };

  /** @internal the server takes no new calls from this client */
  goaway(): void {
    if (this.#draining || this.#ended) return;
    this.#draining = true;
    this.#hooks.onGoaway(this);
    this.#closeIfDrained();
  }

  #closeIfDrained(): void {
    if (this.#draining && this.#calls.size === 0) void this.close();
  }

  /** @internal the pair has ended: calls in flight fail with `error` */
  ended(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#outbox = [];
    this.#calls.endAll(error);
    this.#hooks.onEnded(this, error);
  }

  close(): Promise<void> {
    if (!this.#ended) {
      // Calls still queued for the server are dropped with the rest.
      this.ended(new ConnectionLostError("connection closed by this side"));
      this.#server.ended(new ConnectionLostError("connection closed by peer"));
    }
    return Promise.resolve();
  }
}

/** The server's end of an in-process pair: the server's call engine, answering with values. */
export class LocalServerSession implements ServerSessionLike, CallWire<number> {
  readonly protocol = "drpc";
  readonly #server: ServerCore;
  readonly #client: LocalClientSession;
  readonly #calls: ServerCalls<number>;
  #ended = false;
  /** Calls with stream items held for the end of the turn (each call's in its `out` array). */
  #batched: ServerCall<number>[] = [];

  constructor(server: ServerCore, client: LocalClientSession, url: string) {
    this.#server = server;
    this.#client = client;
    this.#calls = new ServerCalls<number>(server, server.loop, this, url);
  }

  get active(): number {
    return this.#calls.size;
  }

  activeCalls(): { id: number; method: string; peer: string; startedAt: number }[] {
    return this.#calls.list();
  }

  /** @internal a call from the client */
  dispatch(id: number, method: string, args: unknown[], kwargs: Record<string, unknown> | null, deadlineMs: number | null, meta?: Metadata): void {
    if (this.#ended) return;
    if (this.#calls.has(id)) {
      // Never from this project's client (its ids are unique in flight, its cancels go first): answered, not dropped.
      this.#client.calls.failRemote(id, { name: "ProtocolError", message: `call id ${id} reused while in flight`, code: "ERR_PROTOCOL" });
      return;
    }
    this.#calls.dispatch(id, id, method, args, kwargs, deadlineMs, STREAM_WINDOW, meta);
  }

  /** @internal */
  grant(id: number, n: number): void {
    this.#calls.grant(id, n);
  }

  /** @internal */
  cancel(id: number, reason: string): void {
    this.#calls.cancel(id, new CancelledError(`cancelled by the client: ${reason}`));
  }

  goaway(_reason: string): void {
    if (this.#calls.draining) return;
    this.#calls.drain();
    this.#client.goaway();
  }

  idle(): Promise<void> {
    return this.#calls.idle();
  }

  async shutdown(reason: string): Promise<void> {
    this.#calls.cancelAll(reason);
    this.destroy(new ConnectionLostError(`connection closed by peer: ${reason}`));
  }

  destroy(reason: Error): void {
    if (this.#ended) return;
    this.#client.ended(reason instanceof ConnectionLostError ? reason : new ConnectionLostError(`connection closed by peer: ${reason.message}`, { cause: reason }));
    this.ended(new ConnectionLostError("connection closed by this side"));
  }

  /** @internal the pair has ended */
  ended(error: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#calls.ended(error);
    this.#server.sessionEnded(this);
  }

  // ---- CallWire ----

  answer(_ref: number, id: number, value: unknown): void {
    if (this.#ended) return;
    this.#client.calls.settle(id, true, this.#client.copy(value));
  }

  /**
   * Stream items go to the consumer once per turn, all of a call's together
   * (as over a connection), so a consumer takes a run of ready items
   * without waiting for each.
   */
  item(call: ServerCall<number>, value: unknown): boolean {
    if (this.#ended) return true;
    const v = this.#client.copy(value);
    const out = call.out as unknown[] | undefined;
    if (out !== undefined && out.length > 0) {
      out.push(v);
      return true;
    }
    if (out === undefined) call.out = [v];
    else out.push(v);
    if (this.#batched.length === 0) this.#server.loop.post(this.#flush);
    this.#batched.push(call);
    return true;
  }

  readonly #flush = (): void => {
    const calls = this.#batched;
    this.#batched = [];
    for (const call of calls) if (!call.done) this.#send(call);
  };

  /** A call's held items to the consumer. */
  #send(call: ServerCall<number>): void {
    const out = call.out as unknown[] | undefined;
    if (out === undefined || out.length === 0 || this.#ended) return;
    call.out = [];
    this.#client.calls.items(call.id, out, 0);
  }

  end(call: ServerCall<number>): void {
    if (this.#ended) return;
    this.#send(call);
    this.#client.calls.end(call.id);
  }

  answerError(_ref: number, id: number, error: unknown): void {
    if (this.#ended) return;
    const call = this.#calls.get(id) ?? this.#batched.find((c) => c.id === id);
    if (call !== undefined) this.#send(call);
    const info = errorInfo(error, this.#server.exposeStack);
    if (info.data !== undefined) {
      try {
        info.data = this.#client.copy(info.data);
      } catch {
        delete info.data; // data that cannot be copied: the error without it, as over the wire
      }
    }
    this.#client.calls.failRemote(id, info);
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }
}

// The client calls in-process with these when this module is loaded (tilth/rpc and every server load it).
clientSlots.local = { scheme: LOCAL_SCHEME, check: checkLocalProtocol, connect: connectLocal };
