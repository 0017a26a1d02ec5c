/**
 * `tls://host:port` message connections on node:tls: the same framing and
 * connection semantics as tcp://, over TLS.
 *
 * Keys and certificates come through the options: `key`, `cert`, `ca`,
 * `passphrase`, `rejectUnauthorized`, `servername`, `requestCert`, or any
 * node:tls option under `tls`. Connections are handed out after the TLS
 * handshake; a handshake or certificate failure when connecting is
 * ERR_CONNECT_FAILED with the node:tls error as `cause`. A client that fails
 * the handshake with a listener is dropped without disturbing it, and so is
 * one that has not finished it within `handshakeTimeoutMs` of its TCP accept
 * (default 10 s), whether it sends nothing or trickles. A connection whose
 * peer presented a certificate that was verified carries it as
 * `peerIdentity` (subject, issuer, subject alternative names, SHA-256
 * fingerprint): under mutual TLS, who the client is.
 *
 * @example
 * ```ts
 * const listener = await loop.listen("tls://127.0.0.1:0", { key, cert, ca: clientCa, requestCert: true });
 * listener.start((conn) => console.log("client", conn.peerIdentity?.subject.CN));
 * const conn = await loop.connect(listener.url, { ca: cert, key: clientKey, cert: clientCert });
 * ```
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import type { Loop, Timer } from "../core/Loop.js";
import { type Connection, type ConnectOptions, type Listener, type ListenOptions, type PeerIdentity, type Transport } from "../core/Transport.js";
import { connectError, listenError, ListenFailedError } from "./errors.js";
import { abortListen } from "./net.js";
import { StreamConnection } from "./StreamConnection.js";
import { connectionParams, defined, formatHostPort, hostPort, waitFor } from "./internal/socket.js";
import { StreamListener } from "./internal/StreamListener.js";
import type { ConnectionParams } from "./internal/ConnectionBase.js";

type Pem = string | Buffer | (string | Buffer)[];

/** Options of `connect("tls://…")`. */
export interface TlsConnectOptions extends ConnectOptions {
  /** Certificate authorities to trust instead of the system's (e.g. a self-signed server certificate). */
  ca?: Pem;
  /** Client certificate and key, for servers that ask for one. */
  cert?: Pem;
  key?: Pem;
  passphrase?: string;
  /** Server name for SNI and certificate checks; defaults to the URL host unless it is an IP address. */
  servername?: string;
  /** Verify the server's certificate (default true). */
  rejectUnauthorized?: boolean;
  /** Further node:tls connect options, applied last. */
  tls?: tls.ConnectionOptions;
}

/** Options of `listen("tls://…")`: a key and certificate are required. */
export interface TlsListenOptions extends ListenOptions {
  key?: Pem;
  cert?: Pem;
  ca?: Pem;
  passphrase?: string;
  /** Ask clients for a certificate. */
  requestCert?: boolean;
  /** With `requestCert`, refuse clients without a valid one (default true). */
  rejectUnauthorized?: boolean;
  /**
   * How long an accepted TCP connection has to finish the TLS handshake, ms,
   * counted from the accept (bytes that trickle in do not extend it); past it
   * the socket is destroyed and the listener goes on. Default
   * {@link DEFAULT_HANDSHAKE_TIMEOUT_MS} (10 s); `Infinity`: no limit.
   */
  handshakeTimeoutMs?: number;
  /** Further node:tls server options, applied last. */
  tls?: tls.TlsOptions;
}

/** Default time an accepted connection has to finish the TLS handshake: 10 s. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;

function validHandshakeTimeout(v: unknown): number {
  if (v === undefined) return DEFAULT_HANDSHAKE_TIMEOUT_MS;
  if (typeof v !== "number" || !(v > 0)) throw new RangeError(`handshakeTimeoutMs must be a number of ms above 0 (Infinity: no limit), got ${String(v)}`);
  return v;
}

type Names = Readonly<Record<string, string | readonly string[]>>;

/** A plain frozen copy of a certificate's subject or issuer (node gives a null-prototype object). */
function names(n: tls.Certificate | undefined): Names {
  return Object.freeze({ ...(n as unknown as Record<string, string | string[]> | undefined) });
}

/**
 * `subjectaltname` as node:tls writes it (`DNS:a, URI:b`, a value with a
 * separator or quote in it JSON-quoted: `DNS:"a, b"`) → `["DNS:a", "URI:b"]`.
 */
export function parseAltNames(s: string | undefined): string[] {
  const out: string[] = [];
  if (!s) return out;
  for (let i = 0; i < s.length; ) {
    const colon = s.indexOf(":", i);
    if (colon < 0) break;
    const type = s.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        value = s.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const end = s.indexOf(", ", j);
      value = s.slice(j, end < 0 ? s.length : end);
      j = end < 0 ? s.length : end;
    }
    out.push(`${type}:${value}`);
    i = s.startsWith(", ", j) ? j + 2 : j;
  }
  return out;
}

/** The verified certificate of `socket`'s peer, if it presented one that was verified. */
function peerIdentityOf(socket: tls.TLSSocket): PeerIdentity | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (cert === null || typeof cert !== "object" || !cert.fingerprint256) return undefined;
  return Object.freeze({
    subject: names(cert.subject),
    issuer: names(cert.issuer),
    subjectAltNames: Object.freeze(parseAltNames(cert.subjectaltname)),
    fingerprint256: cert.fingerprint256,
  });
}

/**
 * The handshakes in progress on one listener, each destroyed at its deadline.
 * node:tls hands out the TLS socket only once the handshake is over, so an
 * accepted socket is known by its remote address until then.
 */
class Handshakes {
  readonly #loop: Loop;
  readonly #ms: number;
  readonly #pending = new Map<string, { raw: net.Socket; timer: Timer }>();

  constructor(loop: Loop, ms: number) {
    this.#loop = loop;
    this.#ms = ms;
  }

  /** A TCP connection was accepted: its handshake has `ms` from now. */
  readonly begin = (raw: net.Socket): void => {
    if (this.#ms === Infinity) return;
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    const timer = this.#loop.timer(this.#ms, () => {
      this.#pending.delete(key);
      raw.destroy();
    });
    this.#pending.set(key, { raw, timer });
    raw.once("close", () => {
      const p = this.#pending.get(key);
      if (p?.raw !== raw) return;
      p.timer.cancel();
      this.#pending.delete(key);
    });
  };

  /** The handshake of `socket` is over: no deadline any more. */
  readonly done = (socket: tls.TLSSocket): void => {
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const p = this.#pending.get(key);
    if (p === undefined) return;
    p.timer.cancel();
    this.#pending.delete(key);
  };

  /** The listener closes: no handshake in progress will be handed out. */
  destroyAll(): void {
    for (const p of this.#pending.values()) {
      p.timer.cancel();
      p.raw.destroy();
    }
    this.#pending.clear();
  }
}

/** A tls:// listener: a stream listener that also ends the handshakes in progress when it closes. */
class TlsListener extends StreamListener {
  readonly #handshakes: Handshakes;

  constructor(loop: Loop, url: string, server: tls.Server, params: (socket: net.Socket) => ConnectionParams, handshakes: Handshakes, backlog?: number) {
    super(loop, "tls", url, server, "secureConnection", params, backlog);
    this.#handshakes = handshakes;
  }

  protected override stopAccepting(): Promise<void> {
    this.#handshakes.destroyAll();
    return super.stopAccepting();
  }
}

/** The node:tls transport for `tls:` URLs. Stateless. */
export class TlsTransport implements Transport {
  readonly schemes = ["tls"] as const;

  async connect(loop: Loop, url: URL, options: TlsConnectOptions): Promise<Connection> {
    const href = url.href;
    connectionParams("tls", href, href, options);
    const { host, port } = hostPort(url);
    const socket = tls.connect({
      ...defined({
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        passphrase: options.passphrase,
        rejectUnauthorized: options.rejectUnauthorized,
        servername: options.servername ?? (net.isIP(host) ? undefined : host),
      }),
      ...options.tls,
      host,
      port,
      // Not in the typings, but tls.connect passes it to the TLSSocket.
      allowHalfOpen: true,
    } as tls.ConnectionOptions);
    return await waitFor(
      socket,
      "secureConnect",
      options.signal,
      (e) => {
        socket.destroy();
        return connectError(e, href);
      },
      () => socket.destroy(),
      () => {
        socket.setNoDelay(true);
        const local = formatHostPort("tls", socket.localAddress, socket.localPort);
        return new StreamConnection(loop, socket, { ...connectionParams("tls", local, href, options), peerIdentity: peerIdentityOf(socket) });
      },
    );
  }

  async listen(loop: Loop, url: URL, options: TlsListenOptions): Promise<Listener> {
    const href = url.href;
    connectionParams("tls", href, href, options);
    const handshakeMs = validHandshakeTimeout(options.handshakeTimeoutMs);
    const where = hostPort(url);
    const extra = options.tls ?? {};
    if (options.key === undefined && extra.key === undefined && extra.pfx === undefined && extra.SNICallback === undefined) {
      throw new ListenFailedError(href, "a key and certificate are needed (options key and cert)");
    }
    const server = tls.createServer({
      ...defined({
        key: options.key,
        cert: options.cert,
        ca: options.ca,
        passphrase: options.passphrase,
        requestCert: options.requestCert,
        rejectUnauthorized: options.rejectUnauthorized,
      }),
      ...extra,
      // Not half-open: a client that hangs up during the handshake must close
      // the server's socket (half-open, it would linger with no TLS error).
      allowHalfOpen: false,
      noDelay: true,
      // node's own limit is an idle timeout that each byte restarts: ours
      // (below) counts from the accept, so node's stays off.
      handshakeTimeout: 0,
    });
    // A client that fails the handshake, or does not finish it in time, is dropped; the listener goes on.
    const handshakes = new Handshakes(loop, handshakeMs);
    server.prependListener("connection", handshakes.begin);
    server.on("secureConnection", handshakes.done);
    server.on("tlsClientError", (_err, socket) => socket.destroy());
    server.listen({ ...where, backlog: options.backlog });
    return await waitFor<Listener>(
      server,
      "listening",
      options.signal,
      (e) => listenError(e, href),
      () => {
        handshakes.destroyAll();
        abortListen(server);
      },
      () => {
        const a = server.address() as net.AddressInfo;
        const params = (socket: net.Socket): ConnectionParams => ({
          ...connectionParams(
            "tls",
            formatHostPort("tls", socket.localAddress, socket.localPort),
            formatHostPort("tls", socket.remoteAddress, socket.remotePort),
            options,
          ),
          peerIdentity: peerIdentityOf(socket as tls.TLSSocket),
        });
        return new TlsListener(loop, formatHostPort("tls", a.address, a.port), server, params, handshakes, options.backlog);
      },
    );
  }
}

/** The shared node:tls transport value. */
export const tlsTransport: TlsTransport = new TlsTransport();
