/**
 * StreamConnection over a socket that reads through a SocketReader's
 * `onread` (what tcp:// and ipc:// clients use): bytes read before the
 * connection object exists are kept and delivered first once it starts.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { encodeMessage, registerTransports, SocketReader, StreamConnection } from "../../transports/index.js";
import { connectionParams } from "../../transports/internal/socket.js";
import { leakCheck } from "../helpers/leaks.js";
import { collect, defer } from "./util.js";

test("bytes a SocketReader read before its StreamConnection was built are delivered first, in order, once started", { timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = defer<net.Socket>();
  server.once("connection", (s) => accepted.resolve(s));

  const reader = new SocketReader();
  // Know when the early bytes have been read (both messages come in one write).
  const read = defer<void>();
  const callback = reader.onread.callback;
  reader.onread.callback = (n, buf) => {
    const r = callback(n, buf);
    read.resolve();
    return r;
  };
  const socket = net.connect({ host: "127.0.0.1", port, onread: reader.onread, allowHalfOpen: true });
  await new Promise<void>((r) => socket.once("connect", () => r()));
  const w = await accepted.promise;
  w.write(Buffer.concat([encodeMessage([Buffer.from("one")]), encodeMessage([Buffer.from("two")])]));
  await read.promise;
  assert.equal(reader.early?.length, 1, "the bytes were read before the connection was built");

  const conn = new StreamConnection(loop, socket, connectionParams("tcp", "tcp://127.0.0.1:0", `tcp://127.0.0.1:${port}`, {}), reader);
  assert.equal(reader.early, undefined);
  const got = collect(conn);
  await got.until(2);
  w.write(encodeMessage([Buffer.from("three")]));
  await got.until(3);
  assert.deepEqual(
    got.msgs.map((m) => Buffer.from(m[0]!).toString()),
    ["one", "two", "three"],
  );
  w.end();
  await conn.closed;
  await new Promise<void>((r) => server.close(() => r()));
  assert.equal(loop.pendingTimers, 0, "a timer was left pending");
  await done();
});
