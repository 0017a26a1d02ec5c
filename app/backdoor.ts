/**
 * The backdoor: a REPL into a live app, for an operator at 3 a.m.
 *
 * It listens on a unix socket (mode 0600: only the app's user may connect) or
 * on loopback TCP with a token; never on another interface (refused with
 * ERR_BACKDOOR_ADDRESS). Each connection gets its own REPL whose scope holds
 * what the app put there (its container, loop, app object, settings, stats).
 * Leaving the REPL (`.exit`, Ctrl-D) detaches; the app runs on.
 *
 * Wire: on TCP the client's first line is `TOKEN <token>`; the server answers
 * `ok` and starts the REPL, or `refused: <why>` and closes.
 *
 * @example
 * ```ts
 * const door = await openBackdoor({ address: "ipc:///run/ping.sock", context: { app, loop }, name: "ping" });
 * // $ tilth backdoor ipc:///run/ping.sock
 * await door.close();
 * ```
 * @module
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { chmodSync, rmSync } from "node:fs";
import net from "node:net";
import repl from "node:repl";
import { TilthError } from "../core/errors.js";
import { claimIpcPath } from "../transports/index.js";

export interface BackdoorOptions {
  /** `ipc:///path/to.sock` (or a plain path), or `tcp://127.0.0.1:PORT` / `tcp://[::1]:PORT`. */
  address: string;
  /** Names bound in the REPL's scope. */
  context: Record<string, unknown>;
  /** App name, shown in the prompt. */
  name: string;
  /** TCP: the token a client must send; generated when omitted. Unix sockets need none. */
  token?: string;
}

export interface Backdoor {
  /** Where it listens, with the real port. */
  readonly address: string;
  /** The token TCP clients must send (undefined for unix sockets). */
  readonly token: string | undefined;
  /** Stop listening and end every session. Idempotent. */
  close(): Promise<void>;
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost", "[::1]"]);

type Where = { path: string } | { host: string; port: number };

/** Parse a backdoor address; refuses anything that is not a unix socket or loopback TCP. */
export function parseBackdoorAddress(address: string): Where {
  if (address.startsWith("ipc://")) return { path: address.slice("ipc://".length) };
  if (address.startsWith("/") || address.startsWith("./")) return { path: address };
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(address);
  if (!m) throw new TilthError("ERR_BACKDOOR_ADDRESS", `backdoor address "${address}": expected ipc:///path or tcp://127.0.0.1:PORT`);
  const host = m[1]!;
  const bare = host.replace(/^\[|\]$/g, "");
  if (!LOOPBACK.has(host) && !/^127\.\d+\.\d+\.\d+$/.test(bare))
    throw new TilthError("ERR_BACKDOOR_ADDRESS", `backdoor address "${address}" is not loopback: a backdoor listens only on a unix socket or 127.0.0.1/::1`, {
      context: { address },
    });
  return { host: bare === "localhost" ? "127.0.0.1" : bare, port: Number(m[2]) };
}

export async function openBackdoor(options: BackdoorOptions): Promise<Backdoor> {
  const where = parseBackdoorAddress(options.address);
  const isTcp = "host" in where;
  const token = isTcp ? (options.token ?? randomBytes(16).toString("hex")) : options.token;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (token === undefined) startRepl(socket);
    else authenticate(socket, token);
  });

  const startRepl = (socket: net.Socket): void => {
    const r = repl.start({
      prompt: `${options.name}> `,
      input: socket,
      output: socket,
      terminal: true,
      useGlobal: false,
      ignoreUndefined: true,
    });
    Object.assign(r.context, options.context);
    r.on("exit", () => socket.end());
    // The REPL re-emits its input's errors (a client that resets): the socket's own handler has them.
    r.on("error", () => socket.destroy());
    socket.on("close", () => r.close());
  };

  const authenticate = (socket: net.Socket, expected: string): void => {
    let buf = "";
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl < 0) {
        if (buf.length > 1024) socket.end("refused: no token line\n");
        return;
      }
      socket.off("data", onData);
      const line = buf.slice(0, nl).trim();
      const rest = buf.slice(nl + 1);
      const given = Buffer.from(line.startsWith("TOKEN ") ? line.slice(6) : "");
      const want = Buffer.from(expected);
      if (given.length !== want.length || !timingSafeEqual(given, want)) {
        socket.end("refused: bad token\n");
        return;
      }
      socket.write("ok\n");
      if (rest) socket.unshift(Buffer.from(rest, "latin1"));
      startRepl(socket);
    };
    socket.on("data", onData);
  };

  // A stale socket file (its app was killed) is taken over; a live one is ERR_ADDRESS_IN_USE.
  if ("path" in where) await claimIpcPath(where.path, options.address);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new TilthError(e.code === "EADDRINUSE" ? "ERR_ADDRESS_IN_USE" : "ERR_BACKDOOR", `backdoor cannot listen on ${options.address}: ${e.message}`, { cause: e })),
    );
    if ("path" in where) {
      // The socket is created 0600 (umask during the bind) and chmod'ed again
      // after, so no other user can connect in between.
      const old = process.umask(0o177);
      try {
        server.listen(where.path, () => {
          chmodSync(where.path, 0o600);
          resolve();
        });
      } finally {
        process.umask(old);
      }
    } else server.listen(where.port, where.host, () => resolve());
  });

  const a = server.address();
  const address = typeof a === "string" ? `ipc://${a}` : `tcp://${a!.family === "IPv6" ? `[${a!.address}]` : a!.address}:${a!.port}`;
  let closing: Promise<void> | undefined;
  return {
    address,
    token: isTcp ? token : undefined,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          if ("path" in where) rmSync(where.path, { force: true });
          resolve();
        });
      })),
  };
}
