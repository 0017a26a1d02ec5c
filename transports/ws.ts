/**
 * `ws://host:port/path` and `wss://host:port/path` message connections on
 * WebSocket (the `ws` library), the way into a browser.
 *
 * - One binary WebSocket message is one tilth message; its frames ride
 *   inside in the stream framing of tcp (4 bytes of header per frame). A text
 *   message ends the connection with ERR_TEXT_MESSAGE (close code 1003).
 * - The receiver's `maxMessageSize` is the WebSocket's maximum payload (plus
 *   the frame headers): a larger message is refused from its header, before
 *   it is buffered, and ends that connection with ERR_MESSAGE_TOO_LARGE (close
 *   code 1009; the sender sees ERR_BROKEN).
 * - Send side backpressure from the socket's buffered bytes (`send` returns
 *   false past the high-water mark, throws ERR_BUSY past `maxBuffered`);
 *   receive side: `pause()` stops reading the socket.
 * - Liveness: every `pingIntervalMs` (default 30 s) each end pings; a peer
 *   that answered none of the last interval's pings (and sent nothing) is
 *   dropped with ERR_BROKEN. Browsers answer pings by themselves.
 * - A listener owns its port (an http or https server of its own), or
 *   attaches to an existing `http.Server` (Express, Fastify…: the `server`
 *   option) and takes the upgrades on the URL's path, leaving the others
 *   alone. `origins` is an allow-list of browser origins: an upgrade whose
 *   Origin header is not in it gets 403 (a request without Origin, from a
 *   program rather than a browser, passes).
 * - `wss://` takes the TLS options of `tls://` (key, cert, ca, passphrase,
 *   requestCert, rejectUnauthorized; servername and ca on the client).
 * - perMessageDeflate is off: tilth messages are mostly small and binary.
 *
 * @example
 * ```ts
 * import { NodeLoop } from "tilth/adapters/node";
 * import { registerTransports } from "tilth/transports";
 * const loop = registerTransports(new NodeLoop());
 * const listener = await loop.listen("ws://127.0.0.1:0/tilth", { origins: ["https://app.example"] });
 * listener.start((conn) => conn.start({ message: (m) => conn.send(m), end() {} }));
 * const conn = await loop.connect(listener.url);
 * ```
 * @module
 */
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { BrokenError, formatMs } from "../core/errors.js";
import type { Loop, Timer } from "../core/Loop.js";
import { schemeOf, type Connection, type ConnectOptions, type FrameWriter, type Listener, type ListenOptions, type Message, type Transport } from "../core/Transport.js";
import { RESOLVED } from "../core/resolved.js";
import { ConnectFailedError, connectError, ioError, listenError, ListenFailedError, MalformedFrameError, MessageTooLargeError, TextMessageError } from "./errors.js";
import { checkFrameSize, checkMessage } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";
import { ListenerBase } from "./internal/ListenerBase.js";
import { connectionParams, defined, formatHostPort, hostPort, waitFor } from "./internal/socket.js";
import { decodeWsMessage, putWsHeader, putWsMessage, WS_HEADER, wsWireSize } from "./internal/wsCodec.js";
import type { TlsConnectOptions, TlsListenOptions } from "./tls.js";


/** Default interval of the WebSocket pings that prove a peer alive: 30 s. */
export const DEFAULT_WS_PING_INTERVAL_MS = 30_000;

/**
 * Options of `connect("ws://…")` and `connect("wss://…")`. wss takes the TLS
 * options of `tls://` (ca, cert, key, passphrase, servername,
 * rejectUnauthorized).
 */
export interface WsConnectOptions extends ConnectOptions, Pick<TlsConnectOptions, "ca" | "cert" | "key" | "passphrase" | "servername" | "rejectUnauthorized"> {
  /** Ping the peer this often, ms; a peer silent for a whole interval after a ping is dropped. Default 30 s; 0 or Infinity: no pings. */
  pingIntervalMs?: number;
  /** The Origin header to send (a browser sends its page's origin by itself). */
  origin?: string;
  /** Further HTTP headers of the upgrade request. */
  headers?: Record<string, string>;
}

/**
 * Options of `listen("ws://…")` and `listen("wss://…")`. wss on a port of its
 * own takes the TLS server options of `tls://` (key, cert, ca, passphrase,
 * requestCert, rejectUnauthorized, tls).
 */
export interface WsListenOptions extends ListenOptions, Pick<TlsListenOptions, "key" | "cert" | "ca" | "passphrase" | "requestCert" | "rejectUnauthorized" | "tls"> {
  /** Take the upgrades on the URL's path of this server instead of opening a port (its host and port are the server's). */
  server?: http.Server | https.Server;
  /** Browser origins allowed to connect (`https://app.example`); absent: any. An upgrade without Origin always passes. */
  origins?: readonly string[];
  /** As for connect. */
  pingIntervalMs?: number;
}

function validPing(v: unknown): number {
  if (v === undefined) return DEFAULT_WS_PING_INTERVAL_MS;
  if (typeof v !== "number" || !(v >= 0)) throw new RangeError(`pingIntervalMs must be a number of ms (0 or Infinity: no pings), got ${String(v)}`);
  return v === 0 ? Infinity : v;
}

/** The largest WebSocket payload a receiver with these limits takes: the message and one header per frame. */
function maxPayloadOf(p: ConnectionParams): number {
  return wsWireSize(p.limits.maxMessageSize, Math.min(p.limits.maxFrames, 65_536));
}

/** Messages up to this size are sent as one buffer (one copy); larger ones as fragments (no copy). */
const COPY_MAX = 64 * 1024;

/** Bytes of the header of a final binary WebSocket frame of `len` bytes (RFC 6455 §5.2), with the 4-byte mask key when `masked`. */
function wsFrameHeaderSize(len: number, masked: boolean): number {
  return (len < 126 ? 2 : len < 65_536 ? 4 : 10) + (masked ? 4 : 0);
}

/** Write that header at the start of `buf`: FIN, opcode 2 (binary), no RSV bits; a mask key of zeros (the payload goes as it is). */
function putFrameHeader(buf: Buffer, len: number, masked: boolean): void {
  const m = masked ? 0x80 : 0;
  buf[0] = 0x82;
  let p: number;
  if (len < 126) {
    buf[1] = m | len;
    p = 2;
  } else if (len < 65_536) {
    buf[1] = m | 126;
    buf.writeUInt16BE(len, 2);
    p = 4;
  } else {
    buf[1] = m | 127;
    buf.writeUInt32BE(0, 2);
    buf.writeUInt32BE(len, 6);
    p = 10;
  }
  if (masked) buf.writeUInt32BE(0, p);
}
const SEND_LAST = { binary: true, compress: false, fin: true } as const;
const SEND_MORE = { binary: true, compress: false, fin: false } as const;

const noop = (): void => {};
const EMPTY = Buffer.alloc(0);
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};
const allocBuffer = (n: number): Buffer => Buffer.allocUnsafe(n);

/** One WebSocket as one tilth connection. */
export class WsConnection extends ConnectionBase {
  readonly #ws: WebSocket;
  readonly #socket: net.Socket;
  readonly #pingMs: number;
  #pingTimer: Timer | undefined = undefined;
  #alive = true;
  #paused = false;
  #reading = false;
  #held: Message[] = [];
  #heldAt = 0;
  #posted = false;
  #corked = false;
  #discard = false;
  #writeClosed = false;
  #watching = false;
  /** A client's frames are masked (RFC 6455 §5.3), a server's are not. */
  readonly #masked: boolean;

  /** @internal */
  constructor(loop: Loop, ws: WebSocket, socket: net.Socket, params: ConnectionParams, pingMs: number, client: boolean) {
    super(loop, params);
    this.#masked = client;
    this.#ws = ws;
    this.#socket = socket;
    this.#pingMs = pingMs;
    ws.binaryType = "nodebuffer";
    // Nothing is read before start(): held by the socket (and TCP) until then.
    ws.pause();
    ws.on("message", (data: RawData, isBinary: boolean) => this.#onMessage(data as Buffer, isBinary));
    ws.on("pong", this.#onPong);
    ws.on("error", (e: Error & { code?: string }) => this.#onError(e));
    ws.on("close", (code: number, reason: Buffer) => this.#onClose(code, reason));
    socket.on("drain", this.#onDrain);
    if (pingMs !== Infinity) this.#armPing();
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  /** The socket's own count of bytes read, WebSocket framing and the upgrade request included (no work per message). */
  get bytesIn(): number {
    return this.#socket.bytesRead;
  }

  /** The socket's own count of bytes written (queued included), WebSocket framing included. */
  get bytesOut(): number {
    return this.#socket.bytesWritten;
  }

  send(msg: Message): boolean {
    if (this.#writeClosed || this.ended !== undefined || this.#ws.readyState !== WebSocket.OPEN) throw this.sendError();
    const n = checkMessage(msg, this.limits);
    const wire = wsWireSize(n, msg.length);
    this.checkBuffered(wire);
    this.#cork();
    const ws = this.#ws;
    if (wire <= COPY_MAX) {
      // One WebSocket frame, header and payload in one buffer, written to the socket as it is.
      const buf = this.#frameBuffer(wire);
      putWsMessage(msg, buf, buf.length - wire);
      this.#socket.write(buf);
    } else {
      // One WebSocket message in fragments: each frame's header, then the frame as it is.
      const last = msg.length - 1;
      for (let i = 0; i <= last; i++) {
        const f = msg[i]!;
        const h = Buffer.allocUnsafe(WS_HEADER);
        putWsHeader(h, 0, f.byteLength, i < last);
        ws.send(h, SEND_MORE);
        ws.send(f, i < last ? SEND_MORE : SEND_LAST);
      }
    }
    return ws.bufferedAmount < this.highWaterMark;
  }

  /** A message of one frame of `size` bytes, written by `writer` straight into the WebSocket frame that carries it. */
  sendFrame(size: number, writer: FrameWriter): boolean {
    if (this.#writeClosed || this.ended !== undefined || this.#ws.readyState !== WebSocket.OPEN) throw this.sendError();
    checkFrameSize(size, this.limits);
    const wire = size + WS_HEADER;
    if (wire > COPY_MAX) {
      const f = Buffer.allocUnsafe(size);
      writer.writeFrame(f, 0);
      return this.send([f]);
    }
    this.checkBuffered(wire);
    this.#cork();
    const buf = this.#frameBuffer(wire);
    const at = buf.length - wire;
    putWsHeader(buf, at, size, false);
    writer.writeFrame(buf, at + WS_HEADER);
    this.#socket.write(buf);
    return this.#ws.bufferedAmount < this.highWaterMark;
  }

  /**
   * A buffer for one WebSocket frame (FIN, binary) of `wire` payload bytes,
   * its header written; the payload goes in its last `wire` bytes. What ws's
   * sender would write (no compression; from a client, masked with the
   * all-zero key, see connect), without its header buffer, its second write
   * per message and its option handling.
   */
  #frameBuffer(wire: number): Buffer {
    const buf = allocBuffer(wsFrameHeaderSize(wire, this.#masked) + wire);
    putFrameHeader(buf, wire, this.#masked);
    return buf;
  }

  /** Writes of one run of code go out together: corked until the microtask after it. */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    void RESOLVED.then(this.#uncork);
  }

  readonly #uncork = (): void => {
    this.#corked = false;
    this.#socket.uncork();
  };

  readonly #onDrain = (): void => {
    if (this.draining) this.checkDrain();
  };

  override drain(): Promise<void> {
    const p = super.drain();
    if (this.draining) this.#watchDrain();
    return p;
  }

  /** The socket says 'drain' only past its own high-water mark: an empty write calls back once what came before is written. */
  #watchDrain(): void {
    if (this.#watching) return;
    this.#watching = true;
    this.#socket.write(EMPTY, (err) => {
      this.#watching = false;
      // Destroyed: the end rejects drain(), not this.
      if (err || this.#discard || this.#socket.destroyed) return;
      this.checkDrain();
      if (this.draining && this.ended === undefined && !this.#socket.destroyed) this.#watchDrain();
    });
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    if (!this.#discard) this.#ws.pause();
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
    if (this.#posted || !this.#reading || this.#paused || this.#discard) return;
    this.#posted = true;
    this.loop.post(this.#deliverHeld);
  }

  readonly #deliverHeld = (): void => {
    this.#posted = false;
    while (this.#heldAt < this.#held.length) {
      if (this.#paused || this.#discard) return;
      const m = this.#held[this.#heldAt]!;
      this.#held[this.#heldAt++] = undefined as unknown as Message;
      this.deliver(m);
    }
    this.#held = [];
    this.#heldAt = 0;
    if (!this.#paused && !this.#discard) this.#ws.resume();
  };

  #onMessage(data: Buffer, isBinary: boolean): void {
    this.#alive = true;
    if (this.#discard) return;
    if (!isBinary) {
      this.#fail(new TextMessageError(), 1003, "binary messages only");
      return;
    }
    const deliverNow = this.#reading && !this.#paused && !this.#posted && this.#heldAt === this.#held.length;
    if (deliverNow && data.length >= WS_HEADER && data[0]! < 0x40) {
      // The usual message, one frame (no MORE or reserved bit) filling it: its bounds, without a view or an array.
      const n = ((data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!) >>> 0;
      if (n === data.length - WS_HEADER && n <= this.limits.maxMessageSize) {
        this.deliverFrame(data, WS_HEADER, data.length);
        return;
      }
    }
    const d = decodeWsMessage(data, this.limits.maxMessageSize, this.limits.maxFrames);
    if ("error" in d) {
      if (d.tooLarge === true) {
        const e = d.error.startsWith("more")
          ? new MessageTooLargeError(d.size!, this.limits.maxFrames, "frames")
          : new MessageTooLargeError(d.size!, this.limits.maxMessageSize);
        this.#fail(e, 1009, "message too large");
      } else this.#fail(new MalformedFrameError(d.error), 1002, "malformed tilth message");
      return;
    }
    if (deliverNow) {
      this.deliver(d.frames);
      return;
    }
    // Not started, paused, or earlier messages wait: hold this one and stop reading.
    this.#held.push(d.frames);
    this.#ws.pause();
    this.#schedule();
  }

  /** The peer broke the rules: end with `error`, telling it why with a close code. */
  #fail(error: Error, code: number, why: string): void {
    this.setReason({ by: "peer", error });
    this.#discard = true;
    this.#writeClosed = true;
    this.#stopPing();
    try {
      this.#ws.close(code, why);
    } catch {
      this.#ws.terminate();
    }
    // A peer that does not finish the close is not waited for long.
    const t = this.loop.timer(1000, () => this.#ws.terminate());
    t.unref();
    void this.closed.then(() => t.cancel());
  }

  readonly #onPong = (): void => {
    this.#alive = true;
  };

  #armPing(): void {
    this.#pingTimer = this.loop.timer(this.#pingMs, this.#pingTick).unref();
  }

  readonly #pingTick = (): void => {
    this.#pingTimer = undefined;
    if (this.ended !== undefined || this.#discard) return;
    if (!this.#alive) {
      this.setReason({ by: "peer", error: new BrokenError(`the WebSocket peer answered no ping for ${formatMs(this.#pingMs)}`) });
      this.#discard = true;
      this.#ws.terminate();
      return;
    }
    this.#alive = false;
    try {
      this.#ws.ping();
    } catch {
      // closing: the close event ends us
    }
    this.#armPing();
  };

  #stopPing(): void {
    this.#pingTimer?.cancel();
    this.#pingTimer = undefined;
  }

  #onError(e: Error & { code?: string }): void {
    if (e.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
      this.setReason({ by: "peer", error: new MessageTooLargeError(this.limits.maxMessageSize + 1, this.limits.maxMessageSize, "bytes or more", { cause: e }) });
    } else if (typeof e.code === "string" && e.code.startsWith("WS_ERR_")) {
      this.setReason({ by: "peer", error: new MalformedFrameError(`bad WebSocket frame: ${e.message}`, { cause: e }) });
    } else this.setReason({ by: "peer", error: ioError(e) });
  }

  #onClose(code: number, reason: Buffer): void {
    this.#stopPing();
    this.#discard = true;
    this.#writeClosed = true;
    this.#socket.removeListener("drain", this.#onDrain);
    if (code === 1000) this.setReason({ by: "peer" });
    else {
      const why = reason.length > 0 ? `: ${reason.toString("utf8")}` : "";
      this.setReason({ by: "peer", error: new BrokenError(code === 1005 || code === 1006 ? "the WebSocket connection dropped" : `the peer closed the WebSocket with code ${code}${why}`, { context: { closeCode: code } }) });
    }
    this.loop.post(() => this.finish());
  }

  protected beginClose(): void {
    this.#writeClosed = true;
    this.#stopPing();
    // Flush what is corked, then the close handshake; the close event ends us.
    if (this.#corked) this.#uncork();
    try {
      this.#ws.close(1000);
    } catch {
      this.#ws.terminate();
    }
  }

  protected beginDestroy(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#stopPing();
    this.#held = [];
    this.#heldAt = 0;
    this.#ws.terminate();
  }
}

/** A ws:// or wss:// listener: its own http(s) server, or the upgrades of a path on an existing one. */
export class WsListener extends ListenerBase {
  readonly #server: http.Server | https.Server;
  readonly #owned: boolean;
  readonly #wss: WebSocketServer;
  readonly #onUpgrade: (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void;

  /** @internal */
  constructor(
    loop: Loop,
    scheme: string,
    url: string,
    server: http.Server | https.Server,
    owned: boolean,
    path: string,
    origins: readonly string[] | undefined,
    params: ConnectionParams,
    pingMs: number,
    backlog?: number,
  ) {
    super(loop, scheme, url, backlog);
    this.#server = server;
    this.#owned = owned;
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: maxPayloadOf(params), skipUTF8Validation: true, clientTracking: false });
    const allowed = origins === undefined ? undefined : new Set(origins);
    this.#onUpgrade = (req, socket, head) => {
      const pathname = (req.url ?? "/").split("?")[0];
      if (pathname !== path) {
        // Someone else's upgrade on a shared server; on our own server, nobody's.
        if (owned || server.listenerCount("upgrade") <= 1) refuse(socket, 404, "Not Found");
        return;
      }
      if (this.closing) return refuse(socket, 503, "Service Unavailable");
      const origin = req.headers.origin;
      if (allowed !== undefined && origin !== undefined && !allowed.has(origin)) return refuse(socket, 403, "Forbidden");
      socket.on("error", noop);
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        socket.removeListener("error", noop);
        const local = formatHostPort(scheme, socket.localAddress, socket.localPort) + path;
        const remote = formatHostPort(scheme, socket.remoteAddress, socket.remotePort);
        const conn = new WsConnection(loop, ws, socket, { ...params, localUrl: local, remoteUrl: remote }, pingMs, false);
        this.accept(conn);
      });
    };
    server.on("upgrade", this.#onUpgrade);
    if (owned) {
      // A plain HTTP request on a ws-only port.
      server.on("request", (_req: http.IncomingMessage, res: http.ServerResponse) => {
        res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket" }).end("a WebSocket endpoint\n");
      });
      server.on("error", noop);
    }
  }

  /** The http(s) server the listener takes upgrades from. */
  get server(): http.Server | https.Server {
    return this.#server;
  }

  protected stopAccepting(): Promise<void> {
    this.#server.removeListener("upgrade", this.#onUpgrade);
    this.#wss.close();
    if (!this.#owned) return RESOLVED;
    // As StreamListener: the listening handle closes now, accepted sockets stay.
    this.#server.close();
    return new Promise<void>((resolve) => this.loop.timer(0, () => this.loop.timer(0, resolve)));
  }
}

function refuse(socket: net.Socket, status: number, text: string): void {
  socket.on("error", noop);
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroySoon?.();
}

/** The path of a ws URL: `/` when none. */
function pathOf(url: URL): string {
  return url.pathname === "" ? "/" : url.pathname;
}

/** The ws transport for `ws:` and `wss:` URLs. Stateless. */
export class WsTransport implements Transport {
  readonly schemes = ["ws", "wss"] as const;

  async connect(loop: Loop, url: URL, options: WsConnectOptions): Promise<Connection> {
    const scheme = schemeOf(url);
    const href = url.href;
    const params = connectionParams(scheme, href, href, options);
    const pingMs = validPing(options.pingIntervalMs);
    const { host } = hostPort(url);
    const ws = new WebSocket(href, {
      perMessageDeflate: false,
      // An all-zero mask: ws then sends the payload as it is (no random bytes, no masked copy per message).
      // Masking protects browsers' network paths from script-made payloads; a Node client is no browser.
      generateMask: zeroMask,
      maxPayload: maxPayloadOf(params),
      skipUTF8Validation: true,
      ...defined({
        origin: options.origin,
        headers: options.headers,
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        passphrase: options.passphrase,
        rejectUnauthorized: options.rejectUnauthorized,
        servername: options.servername ?? (scheme === "wss" && !/^[0-9.]+$|:/.test(host) ? host : undefined),
      }),
    } as WebSocket.ClientOptions);
    // Errors after connect gave up (an abort) are nobody's.
    ws.on("error", noop);
    let refusedWith: Error | undefined;
    ws.once("unexpected-response", (_req: http.ClientRequest, res: http.IncomingMessage) => {
      refusedWith = new ConnectFailedError(href, `the server answered the upgrade with HTTP ${res.statusCode ?? "?"}`, { context: { status: res.statusCode } });
      res.resume();
      ws.terminate();
    });
    return await waitFor(
      ws as unknown as NodeJS.EventEmitter,
      "open",
      options.signal,
      (e) => {
        ws.terminate();
        return refusedWith ?? connectError(e, href);
      },
      () => ws.terminate(),
      () => {
        const socket = (ws as unknown as { _socket: net.Socket })._socket;
        const local = formatHostPort(scheme, socket.localAddress, socket.localPort);
        return new WsConnection(loop, ws, socket, { ...params, localUrl: local }, pingMs, true);
      },
    ).catch((e: unknown) => {
      throw refusedWith ?? e;
    });
  }

  async listen(loop: Loop, url: URL, options: WsListenOptions): Promise<Listener> {
    const scheme = schemeOf(url);
    const href = url.href;
    const params = connectionParams(scheme, href, href, options);
    const pingMs = validPing(options.pingIntervalMs);
    const path = pathOf(url);
    const backlog = options.backlog;
    if (options.origins !== undefined && (!Array.isArray(options.origins) || options.origins.some((o) => typeof o !== "string"))) {
      throw new RangeError("origins must be an array of origins such as https://app.example");
    }
    const existing = options.server;
    if (existing !== undefined) {
      if (!existing.listening) throw new ListenFailedError(href, "the server given as `server` is not listening yet (listen first, then attach)");
      const a = existing.address() as net.AddressInfo;
      const bound = formatHostPort(scheme, a.address, a.port) + path;
      return new WsListener(loop, scheme, bound, existing, false, path, options.origins, params, pingMs, backlog);
    }
    const where = hostPort(url);
    let server: http.Server | https.Server;
    if (scheme === "wss") {
      const extra = options.tls ?? {};
      if (options.key === undefined && extra.key === undefined && extra.pfx === undefined && extra.SNICallback === undefined) {
        throw new ListenFailedError(href, "a key and certificate are needed (options key and cert)");
      }
      server = https.createServer({
        ...defined({
          key: options.key,
          cert: options.cert,
          ca: options.ca,
          passphrase: options.passphrase,
          requestCert: options.requestCert,
          rejectUnauthorized: options.rejectUnauthorized,
        }),
        ...extra,
        noDelay: true,
      });
      server.on("tlsClientError", (_e, socket) => socket.destroy());
    } else server = http.createServer({ noDelay: true });
    server.listen({ host: where.host, port: where.port, backlog: backlog ?? 511 });
    return await waitFor(
      server,
      "listening",
      options.signal,
      (e) => {
        server.close();
        return listenError(e, href);
      },
      () => {
        if (server.listening) server.close();
        else server.once("listening", () => server.close());
        server.on("error", noop);
      },
      () => {
        const a = server.address() as net.AddressInfo;
        const bound = formatHostPort(scheme, a.address, a.port) + path;
        return new WsListener(loop, scheme, bound, server, true, path, options.origins, params, pingMs, backlog);
      },
    );
  }
}

/** The shared ws transport value. */
export const wsTransport: WsTransport = new WsTransport();
