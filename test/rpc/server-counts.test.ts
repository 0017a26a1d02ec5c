/**
 * What an RPC server counts for metrics beside its calls: bytes received and
 * sent on its connections (ended ones included), read from the transport's
 * own counts, and peers declared lost because their heartbeats stopped (a
 * silent drpc connection, a silent zrpc channel).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, contextual, serve, type CallContext } from "../../rpc/index.js";
import { T, encode } from "../../rpc/drpc/codec.js";
import { encodeEvent } from "../../rpc/zerorpc/codec.js";
import { leakCheck } from "../helpers/leaks.js";
import { drpcMessages } from "../helpers/raw-drpc.js";

/** A raw drpc exchange of a 5000-character echo with a server on `url`; the server's byte counts must equal the client socket's. */
async function countsMatch(url: string): Promise<void> {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ echo: (x: unknown) => x }, url, { loop });
  assert.deepEqual(server.bytes, { received: 0, sent: 0 });
  const conn = await loop.connect(server.urls[0]!.replace("drpc+", ""));
  const next = drpcMessages(conn);
  conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
  assert.equal(((await next()) as unknown[])[0], T.HELLO);
  const big = "x".repeat(5000);
  conn.send([encode([T.CALL, 1, "echo", [big], null, null, 0])]);
  assert.deepEqual(await next(), [T.RESULT, 1, big]);
  assert.ok(conn.bytesOut! > 5000 && conn.bytesIn! > 5000, `client: ${conn.bytesOut} out, ${conn.bytesIn} in`);
  assert.deepEqual(server.bytes, { received: conn.bytesOut, sent: conn.bytesIn });
  await conn.close();
  while (server.connections > 0) await sleep(loop, 5);
  assert.deepEqual(server.bytes, { received: conn.bytesOut, sent: conn.bytesIn }, "an ended connection's bytes stay counted");
  assert.equal(server.heartbeatsLost, 0);
  await server.close();
  await done();
}

test("drpc over tcp: the server's bytes received and sent are exactly what the client's socket sent and received, ended connections included", () => countsMatch("drpc+tcp://127.0.0.1:0"));

test("drpc over ws: the server counts the socket's bytes each way, WebSocket framing included, as the client's socket counts them", () => countsMatch("drpc+ws://127.0.0.1:0/rpc"));

test("zrpc over zmq+tcp: the accepting end counts the bytes of the messages each way", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ echo: (x: unknown) => x }, "zrpc+tcp://127.0.0.1:0", { loop });
  const api = await connect<{ echo(x: string): string }>(server.urls[0]!, { loop });
  const big = "y".repeat(5000);
  assert.equal(await api.echo(big), big);
  const { received, sent } = server.bytes;
  assert.ok(received > 5000 && received < 5200, `received ${received}`);
  assert.ok(sent > 5000 && sent < 5200, `sent ${sent}`);
  await close(api);
  await server.close();
  await done();
});

test("heartbeats lost: a drpc client that falls silent is counted once, when its connection is dropped", async () => {
  const loop = registerTransports(new VirtualLoop({ stallWarningMs: 0 }));
  await loop.run(async () => {
    const server = await serve({ hi: () => "hi" }, "drpc+inproc://hb-drpc", { loop, heartbeatMs: 100 });
    const conn = await loop.connect("inproc://hb-drpc");
    const next = drpcMessages(conn);
    conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 100, maxMessageSize: 1 << 20 }])]);
    await next(); // the server's HELLO; from now on this client says nothing
    await sleep(loop, 250);
    assert.equal(server.heartbeatsLost, 0, "not before the limit (three intervals)");
    await sleep(loop, 200);
    assert.ok(conn.ended !== undefined, "the server dropped the silent connection");
    assert.equal(server.heartbeatsLost, 1);
    assert.equal(server.connections, 0);
    // A client that closes cleanly is not a lost heartbeat.
    const ok = await connect<{ hi(): string }>("drpc+inproc://hb-drpc", { loop, heartbeatMs: 100 });
    assert.equal(await ok.hi(), "hi");
    await close(ok);
    await sleep(loop, 500);
    assert.equal(server.heartbeatsLost, 1);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("heartbeats lost: a zrpc channel whose client falls silent is dropped and counted", async () => {
  const loop = registerTransports(new VirtualLoop({ stallWarningMs: 0 }));
  await loop.run(async () => {
    let aborted = false;
    const server = await serve(
      {
        wait: contextual(
          (ctx: CallContext) =>
            new Promise((_, reject) =>
              ctx.signal.addEventListener("abort", () => {
                aborted = true;
                reject(ctx.signal.reason as Error);
              }),
            ),
        ),
      },
      "zrpc+inproc://hb-zrpc",
      { loop, heartbeatMs: 100 },
    );
    const conn = await loop.connect("inproc://hb-zrpc");
    conn.start({ message() {}, end() {} }); // reads the server's heartbeats, answers none
    conn.send(encodeEvent({ message_id: "00000000000000000000000000000001", v: 3 }, "wait", []));
    await sleep(loop, 200);
    assert.equal(server.heartbeatsLost, 0);
    await sleep(loop, 200);
    assert.equal(aborted, true, "the handler's signal aborted");
    assert.equal(server.heartbeatsLost, 1);
    await conn.close();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});
