/**
 * `tcp://host:port` and `ipc:///path/to.sock` message connections on node:net.
 *
 * Listening on port 0 picks a free port; the listener's `url` has the real
 * one. An ipc listener takes over a stale socket file (one nobody accepts on,
 * left by a process that died without closing its listener: see
 * {@link claimIpcPath}) and refuses a live one or a file that is not a socket
 * (ERR_ADDRESS_IN_USE); its socket file is removed when it closes. Connecting
 * to an ipc path that does not exist is ERR_CONNECTION_REFUSED, like a tcp
 * port nobody listens on.
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
import { lstat, unlink } from "node:fs/promises";
import net from "node:net";
import type { Loop } from "../core/Loop.js";
import { schemeOf, type Connection, type ConnectOptions, type Listener, type ListenOptions, type Transport } from "../core/Transport.js";
import { AddressInUseError, connectError, errnoOf, listenError } from "./errors.js";
import { SocketReader, StreamConnection } from "./StreamConnection.js";
import { connectionParams, formatHostPort, hostPort, ipcPath, waitFor } from "./internal/socket.js";
import { StreamListener } from "./internal/StreamListener.js";

const IPC_LIVE_HINT = "a live listener accepts connections on this socket (another process, or another listener of this one): stop it first (an app: tilth run --stop APP), or listen on another path";
const IPC_NOT_SOCKET_HINT = "the path exists and is not a socket: listen on another path, or remove the file if nothing needs it";

/**
 * Make `path` free for a unix socket listener. A socket file nobody accepts
 * on (its process died without closing its listener, e.g. SIGKILL) is
 * removed; one where someone accepts is {@link AddressInUseError}
 * (ERR_ADDRESS_IN_USE) saying another process serves there; a path that is not
 * a socket is left alone and refused the same way. `url` names the address in
 * errors. The probe is a connect, which a unix socket answers at once
 * (accepted, refused, or EAGAIN when the listener's backlog is full: live).
 *
 * Two processes that claim the same stale path at the same moment may both
 * remove it; the later bind wins and the earlier listener is orphaned. Give
 * each app its own path.
 */
export async function claimIpcPath(path: string, url: string): Promise<void> {
  const st = await lstat(path).catch((e: unknown) => {
    if (errnoOf(e) === "ENOENT") return undefined;
    throw listenError(e, url);
  });
  if (st === undefined) return;
  if (!st.isSocket()) throw new AddressInUseError(url, IPC_NOT_SOCKET_HINT);
  const live = await new Promise<boolean>((resolve, reject) => {
    const probe = net.connect({ path });
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", (e) => {
      probe.destroy();
      const code = errnoOf(e);
      if (code === "ECONNREFUSED" || code === "ENOENT") resolve(false);
      else if (code === "EAGAIN") resolve(true);
      else reject(listenError(e, url));
    });
  });
  if (live) throw new AddressInUseError(url, IPC_LIVE_HINT);
  // Remove only the file probed: not one that replaced it meanwhile.
  const again = await lstat(path).catch(() => undefined);
  if (again === undefined || again.ino !== st.ino || again.dev !== st.dev) return;
  await unlink(path).catch((e: unknown) => {
    if (errnoOf(e) !== "ENOENT") throw listenError(e, url);
  });
}

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
    if ("path" in where) await claimIpcPath(where.path, href);
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
      (e) => listenError(e, href, scheme === "ipc" ? IPC_LIVE_HINT : ""),
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
