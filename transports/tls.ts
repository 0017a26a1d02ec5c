/**
 * `tls://host:port` message connections on node:tls: the same framing and
 * connection semantics as tcp://, over TLS.
 *
 * Keys and certificates come through the options: `key`, `cert`, `ca`,
 * `passphrase`, `rejectUnauthorized`, `servername`, `requestCert`, or any
 * node:tls option under `tls`. Connections are handed out after the TLS
 * handshake; a handshake or certificate failure when connecting is
 * ERR_CONNECT_FAILED with the node:tls error as `cause`. A client that fails
 * the handshake with a listener is dropped without disturbing it.
 *
 * @example
 * ```ts
 * const listener = await loop.listen("tls://127.0.0.1:0", { key, cert });
 * const conn = await loop.connect(listener.url, { ca: cert });
 * ```
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import type { Loop } from "../core/Loop.js";
import { type Connection, type ConnectOptions, type Listener, type ListenOptions, type Transport } from "../core/Transport.js";
import { connectError, listenError, ListenFailedError } from "./errors.js";
import { abortListen } from "./net.js";
import { StreamConnection } from "./StreamConnection.js";
import { connectionParams, formatHostPort, hostPort, waitFor } from "./internal/socket.js";
import { StreamListener } from "./internal/StreamListener.js";

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
  /** Further node:tls server options, applied last. */
  tls?: tls.TlsOptions;
}

function defined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
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
        return new StreamConnection(loop, socket, connectionParams("tls", local, href, options));
      },
    );
  }

  async listen(loop: Loop, url: URL, options: TlsListenOptions): Promise<Listener> {
    const href = url.href;
    connectionParams("tls", href, href, options);
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
    });
    // A client that fails the handshake is dropped; the listener goes on.
    server.on("tlsClientError", (_err, socket) => socket.destroy());
    server.listen({ ...where, backlog: options.backlog });
    return await waitFor<Listener>(
      server,
      "listening",
      options.signal,
      (e) => listenError(e, href),
      () => abortListen(server),
      () => {
        const a = server.address() as net.AddressInfo;
        const params = (socket: net.Socket): ReturnType<typeof connectionParams> =>
          connectionParams(
            "tls",
            formatHostPort("tls", socket.localAddress, socket.localPort),
            formatHostPort("tls", socket.remoteAddress, socket.remotePort),
            options,
          );
        return new StreamListener(loop, "tls", formatHostPort("tls", a.address, a.port), server, "secureConnection", params, options.backlog);
      },
    );
  }
}

/** The shared node:tls transport value. */
export const tlsTransport: TlsTransport = new TlsTransport();
