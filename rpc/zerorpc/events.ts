/**
 * ZeroRPC one-way events: PUSH/PULL (each event to one puller) and PUB/SUB
 * (each event to every subscriber), as zerorpc's Pusher/Puller and
 * Publisher/Subscriber. An event is `[header, name, args]` like a request,
 * but nobody answers it.
 *
 * @example
 * ```ts
 * const puller = await zrpcReceiver(loop, "pull", "tcp://127.0.0.1:4243", { log: (line: string) => console.log(line) }, { bind: true });
 * const pusher = await zrpcEmitter(loop, "push", "tcp://127.0.0.1:4243");
 * pusher.emit("log", "hello");
 * ```
 * @module
 */
import type { Loop } from "../../core/Loop.js";
import { ZmqSocket } from "../../adapters/zeromq.js";
import { exposedMethods, type ExposeOptions } from "../api.js";
import { decodeEvent, encodeEvent, IdGenerator, ZRPC_VERSION } from "./codec.js";

export interface EventEndpointOptions {
  /** Bind to the endpoint (default: connect to it). */
  bind?: boolean;
}

/** Sends one-way events on a PUSH or PUB socket. */
export interface ZrpcEmitter extends AsyncDisposable {
  /** The bound endpoint (when bound), else the one connected to. */
  readonly endpoint: string;
  /** Send `name(...args)`; false when the queue is past its high-water mark. */
  emit(name: string, ...args: unknown[]): boolean;
  drain(): Promise<void>;
  close(): Promise<void>;
}

export async function zrpcEmitter(loop: Loop, kind: "push" | "pub", endpoint: string, options: EventEndpointOptions = {}): Promise<ZrpcEmitter> {
  const sock = ZmqSocket.open(loop, kind);
  const ids = new IdGenerator();
  let where = endpoint;
  try {
    if (options.bind) where = await sock.bind(endpoint);
    else sock.connect(endpoint);
  } catch (e) {
    sock.destroy();
    throw e;
  }
  return {
    endpoint: where,
    emit: (name, ...args) => sock.send(encodeEvent({ message_id: ids.next(), v: ZRPC_VERSION }, name, args)),
    drain: () => sock.drain(),
    close: () => sock.close(),
    [Symbol.asyncDispose]: () => sock.close(),
  };
}

export interface ReceiverOptions extends EventEndpointOptions, ExposeOptions {
  /** SUB: event names (prefixes of the raw message, as ZeroMQ filters) to take; default everything. */
  subscribe?: string[];
  /** Called with an event that could not be dispatched (unknown method, bad payload) or a handler's error. */
  onError?: (error: unknown, name: string | undefined) => void;
}

export interface ZrpcReceiver extends AsyncDisposable {
  readonly endpoint: string;
  close(): Promise<void>;
}

/** Dispatch one-way events from a PULL or SUB socket to `api`'s exposed methods. */
export async function zrpcReceiver(loop: Loop, kind: "pull" | "sub", endpoint: string, api: object, options: ReceiverOptions = {}): Promise<ZrpcReceiver> {
  const methods = exposedMethods(api, options);
  const sock = ZmqSocket.open(loop, kind, kind === "sub" ? { subscribe: [""] } : {});
  let where = endpoint;
  try {
    if (options.bind) where = await sock.bind(endpoint);
    else sock.connect(endpoint);
  } catch (e) {
    sock.destroy();
    throw e;
  }
  const report = (e: unknown, name: string | undefined): void => options.onError?.(e, name);
  sock.start({
    message(frames) {
      let ev;
      try {
        ev = decodeEvent(frames);
      } catch (e) {
        report(e, undefined);
        return;
      }
      const m = methods.get(ev.name);
      if (m === undefined) {
        report(new Error(`unknown event "${ev.name}"`), ev.name);
        return;
      }
      const args = Array.isArray(ev.args) ? ev.args : [ev.args];
      try {
        const r = m.fn(...args);
        if (r instanceof Promise) r.catch((e: unknown) => report(e, ev.name));
      } catch (e) {
        report(e, ev.name);
      }
    },
  });
  return {
    endpoint: where,
    close: () => sock.close(),
    [Symbol.asyncDispose]: () => sock.close(),
  };
}
