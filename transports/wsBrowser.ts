/**
 * `ws://` and `wss://` connections on the host's own WebSocket (a browser's,
 * or any class with its interface, such as the `ws` library's): the client
 * side of the ws transport for `tilth/browser`. Messages as on the Node side
 * (one binary WebSocket message each, frames inside); listening is the
 * server's business and not offered here. No Node module is imported.
 *
 * A browser's WebSocket cannot stop reading: `pause()` holds the messages
 * that arrive (the RPC client's own credit keeps that bounded). Send-side
 * backpressure comes from the socket's `bufferedAmount`, watched with the
 * loop's timers while someone waits in `drain()`.
 * @module
 */
import { BrokenError } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import { schemeOf, type Connection, type ConnectOptions, type Listener, type Message, type Transport } from "../core/Transport.js";
import { ConnectFailedError, ListenFailedError, MalformedFrameError, MessageTooLargeError, TextMessageError } from "./errors.js";
import { checkMessage, framingLimits, type FramingOptions } from "./framing.js";
import { ConnectionBase, validHighWaterMark, validMaxBuffered } from "./internal/ConnectionBase.js";
import { decodeWsMessage, encodeWsMessage, wsWireSize } from "./internal/wsCodec.js";

/** What tilth needs of a WebSocket: the browser's interface. */
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket class: the browser's global `WebSocket`, or the `ws` library's. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Options of connect on the browser transport. */
export interface BrowserWsConnectOptions extends ConnectOptions {
  /** The WebSocket class to use. Default: the host's global `WebSocket`. */
  WebSocket?: WebSocketConstructor;
}

const OPEN = 1;
const DRAIN_POLL_MS = 10;

/** One browser WebSocket as one tilth connection. */
export class BrowserWsConnection extends ConnectionBase {
  readonly #ws: WebSocketLike;
  #held: Message[] = [];
  #paused = false;
  #reading = false;
  #posted = false;
  #polling = false;

  /** @internal */
  constructor(loop: Loop, ws: WebSocketLike, url: string, options: ConnectOptions) {
    const highWaterMark = validHighWaterMark(options.highWaterMark);
    const limits = framingLimits({ maxMessageSize: options.maxMessageSize, maxFrames: typeof options.maxFrames === "number" ? options.maxFrames : undefined } as FramingOptions);
    super(loop, {
      scheme: url.slice(0, url.indexOf(":")),
      localUrl: "browser:",
      remoteUrl: url,
      highWaterMark,
      maxBuffered: validMaxBuffered(options.maxBuffered, highWaterMark, limits.maxMessageSize),
      limits,
      ...(typeof options.closeTimeoutMs === "number" ? { closeTimeoutMs: options.closeTimeoutMs } : {}),
    });
    this.#ws = ws;
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onclose = (ev) => this.#onClose(ev.code, ev.reason);
    ws.onerror = () => this.setReason({ by: "peer", error: new BrokenError("the WebSocket failed") });
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(msg: Message): boolean {
    if (this.reason !== undefined || this.ended !== undefined || this.#ws.readyState !== OPEN) throw this.sendError();
    const n = checkMessage(msg, this.limits);
    this.checkBuffered(wsWireSize(n, msg.length));
    this.#ws.send(encodeWsMessage(msg, n, (k) => new Uint8Array(k)));
    return this.#ws.bufferedAmount < this.highWaterMark;
  }

  override drain(): Promise<void> {
    const p = super.drain();
    if (this.draining && !this.#polling) this.#poll();
    return p;
  }

  #poll(): void {
    this.#polling = true;
    this.loop.timer(DRAIN_POLL_MS, () => {
      this.#polling = false;
      if (this.ended !== undefined) return;
      this.checkDrain();
      if (this.draining) this.#poll();
    });
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#schedule();
  }

  protected onStart(): void {
    this.#reading = true;
    this.#schedule();
  }

  #schedule(): void {
    if (this.#posted || !this.#reading || this.#paused || this.#held.length === 0) return;
    this.#posted = true;
    this.loop.post(() => {
      this.#posted = false;
      while (this.#held.length > 0 && !this.#paused && this.ended === undefined) this.deliver(this.#held.shift()!);
    });
  }

  #onMessage(data: unknown): void {
    if (this.reason !== undefined) return;
    if (typeof data === "string") return this.#fail(new TextMessageError(), 1003);
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data instanceof Uint8Array ? data : undefined;
    if (bytes === undefined) return this.#fail(new MalformedFrameError("a WebSocket message that is neither text nor an ArrayBuffer"), 1002);
    const d = decodeWsMessage(bytes, this.limits.maxMessageSize, this.limits.maxFrames);
    if ("error" in d) {
      return this.#fail(d.tooLarge === true ? new MessageTooLargeError(d.size!, this.limits.maxMessageSize) : new MalformedFrameError(d.error), d.tooLarge === true ? 1009 : 1002);
    }
    if (this.#reading && !this.#paused && this.#held.length === 0) this.deliver(d.frames);
    else {
      this.#held.push(d.frames);
      this.#schedule();
    }
  }

  #fail(error: Error, code: number): void {
    this.setReason({ by: "peer", error });
    this.#ws.close(code);
  }

  #onClose(code: number, reason: string): void {
    if (code === 1000) this.setReason({ by: "peer" });
    else this.setReason({ by: "peer", error: new BrokenError(code === 1005 || code === 1006 ? "the WebSocket connection dropped" : `the peer closed the WebSocket with code ${code}${reason ? `: ${reason}` : ""}`) });
    this.#held = [];
    this.loop.post(() => this.finish());
  }

  protected beginClose(): void {
    this.#ws.close(1000);
  }

  protected beginDestroy(): void {
    this.#held = [];
    this.#ws.close(1000);
    // The browser gives no way to drop a socket at once: it ends now for us.
    this.loop.post(() => this.finish());
  }
}

/** The client side of ws and wss on the host's WebSocket. */
export class BrowserWsTransport implements Transport {
  readonly schemes = ["ws", "wss"] as const;
  readonly #WebSocket: WebSocketConstructor | undefined;

  constructor(WebSocketClass?: WebSocketConstructor) {
    this.#WebSocket = WebSocketClass;
  }

  connect(loop: Loop, url: URL, options: BrowserWsConnectOptions): Promise<Connection> {
    const WS = options.WebSocket ?? this.#WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    const href = url.href;
    if (WS === undefined) return Promise.reject(new ConnectFailedError(href, "this host has no WebSocket: pass the WebSocket option (e.g. the ws library's class)"));
    schemeOf(url);
    return new Promise<Connection>((resolve, reject) => {
      const ws = new WS(href);
      ws.binaryType = "arraybuffer";
      const signal = options.signal;
      const onAbort = (): void => {
        ws.onopen = ws.onerror = ws.onclose = null;
        ws.close();
        reject(signal!.reason instanceof Error ? signal!.reason : new Error("aborted"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      ws.onopen = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve(new BrowserWsConnection(loop, ws, href, options));
      };
      ws.onerror = () => undefined;
      ws.onclose = (ev) => {
        signal?.removeEventListener("abort", onAbort);
        reject(new ConnectFailedError(href, `the WebSocket closed before it opened (code ${ev.code}): nobody listens, or the server refused the upgrade (origin, path)`));
      };
    });
  }

  listen(_loop: Loop, url: URL): Promise<Listener> {
    return Promise.reject(new ListenFailedError(url.href, "a browser cannot listen: serve ws:// from Node (tilth/transports)"));
  }
}
