/**
 * `tcp://host:port` and `ipc:///path/to.sock` message connections on node:net.
 *
 * Listening on port 0 picks a free port; the listener's `url` has the real
 * one. An ipc listener refuses a path that exists (ERR_ADDRESS_IN_USE: another
 * listener, or a stale socket file to remove), and its socket file is removed
 * when it closes. Connecting to an ipc path that does not exist is
 * ERR_CONNECTION_REFUSED, like a tcp port nobody listens on.
 *
 * @example
 * ```ts
 * const loop = registerTransports(new NodeLoop());
 * const listener = await loop.listen("tcp://127.0.0.1:0");
 * listener.start((conn) => conn.start({ message: (m) => conn.send(m), end() {} }));
 * const conn = await loop.connect(listener.url);
 * ```
 * @module
 */
import net from "node:net";
import type { Loop } from "../core/Loop.js";
import { schemeOf, type Connection, type ConnectOptions, type Listener, type ListenOptions, type Transport } from "../core/Transport.js";
import { connectError, listenError } from "./errors.js";
import { SocketReader, StreamConnection } from "./StreamConnection.js";
import { connectionParams, formatHostPort, hostPort, ipcPath, waitFor } from "./internal/socket.js";
import { StreamListener } from "./internal/StreamListener.js";

const IPC_IN_USE_HINT = "the path exists: another listener uses it, or a stale socket file is left (remove it)";

/** The node:net transport for `tcp:` and `ipc:` URLs. Stateless; one value serves any number of loops. */
export class NetTransport implements Transport {
  readonly schemes = ["tcp", "ipc"] as const;

  async connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection> {
    const scheme = schemeOf(url);
    const href = url.href;
    connectionParams(scheme, href, href, options); // validate before connecting
    const reader = new SocketReader();
    let socket: net.Socket;
    if (scheme === "ipc") {
      socket = net.connect({ path: ipcPath(url), allowHalfOpen: true, onread: reader.onread });
    } else {
      const { host, port } = hostPort(url);
      socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true, onread: reader.onread });
    }
    return await waitFor(
      socket,
      "connect",
      options.signal,
      (e) => {
        socket.destroy();
        return connectError(e, href);
      },
      () => socket.destroy(),
      () => {
        const local = scheme === "ipc" ? href : formatHostPort(scheme, socket.localAddress, socket.localPort);
        return new StreamConnection(loop, socket, connectionParams(scheme, local, href, options), reader);
      },
    );
  }

  async listen(loop: Loop, url: URL, options: ListenOptions): Promise<Listener> {
    const scheme = schemeOf(url);
    const href = url.href;
    // Validate URL and options before anything listens.
    connectionParams(scheme, href, href, options);
    const where = scheme === "ipc" ? { path: ipcPath(url) } : hostPort(url);
    const backlog = options.backlog;
    const server = net.createServer({ allowHalfOpen: true, noDelay: true });
    server.listen({ ...where, backlog });
    const params = (socket: net.Socket): ReturnType<typeof connectionParams> =>
      scheme === "ipc"
        ? connectionParams(scheme, href, href, options)
        : connectionParams(
            scheme,
            formatHostPort(scheme, socket.localAddress, socket.localPort),
            formatHostPort(scheme, socket.remoteAddress, socket.remotePort),
            options,
          );
    return await waitFor<Listener>(
      server,
      "listening",
      options.signal,
      (e) => listenError(e, href, scheme === "ipc" ? IPC_IN_USE_HINT : ""),
      () => abortListen(server),
      () => {
        let bound = href;
        if (scheme !== "ipc") {
          const a = server.address() as net.AddressInfo;
          bound = formatHostPort(scheme, a.address, a.port);
        }
        return new StreamListener(loop, scheme, bound, server, "connection", params, backlog);
      },
    );
  }
}

/** Stop a server whose listen was aborted, also when it binds later (after a DNS lookup). */
export function abortListen(server: net.Server): void {
  if (server.listening) server.close();
  else server.once("listening", () => server.close());
  server.on("error", () => {});
}

/** The shared node:net transport value. */
export const netTransport: NetTransport = new NetTransport();
