/**
 * The time limits a call may carry: beyond a host timer's range, infinite,
 * negative, not a number. None reaches a host timer unchecked or breaks the
 * connection.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient, close, connect, contextual, serve, withOptions, type CallContext } from "../../rpc/index.js";
import { T, decode, encode } from "../../rpc/drpc/codec.js";
import { leakCheck } from "../helpers/leaks.js";

interface API {
  /** ms left until the call's deadline (null: none) and who called. */
  left(): Promise<{ left: number | null; peer: string }>;
}

const api = (now: () => number): Record<string, unknown> => ({
  left: contextual((ctx: CallContext) => ({ left: ctx.deadline === undefined ? null : ctx.deadline - now(), peer: ctx.peer })),
});

for (const p of ["drpc", "zrpc"] as const) {
  test(`${p} over tcp on NodeLoop: a 3e9 ms limit runs on both sides without a host timer overflow; NaN is refused and a negative limit times out at once, on the same connection`, async () => {
    const done = leakCheck();
    let overflows = 0;
    const onWarning = (w: Error): void => {
      if (w.name === "TimeoutOverflowWarning") overflows++;
    };
    process.on("warning", onWarning);
    const loop = registerTransports(new NodeLoop());
    const server = await serve(api(() => loop.now()), `${p}+tcp://127.0.0.1:0`, { loop });
    const remote = await connect<API>(server.urls[0]!, { loop });
    try {
      const first = await withOptions(remote, { timeout: 3e9 }).left();
      if (p === "drpc") assert.ok(first.left !== null && first.left > 3e9 - 60_000 && first.left <= 3e9, `the server saw ${first.left} ms left`);
      else assert.equal(first.left, null, "ZeroRPC carries no deadline");
      await assert.rejects(withOptions(remote, { timeout: NaN }).left(), RangeError);
      await assert.rejects(withOptions(remote, { timeout: "5" as unknown as number }).left(), RangeError);
      await assert.rejects(withOptions(remote, { timeout: -5 }).left(), (e) => isTilthError(e, "ERR_TIMEOUT"));
      const last = await remote.left();
      assert.equal(last.peer, first.peer, "the calls with bad limits did not break the connection");
      await new Promise<void>((r) => setImmediate(r)); // warnings are emitted on a later tick
      assert.equal(overflows, 0, "a delay beyond 2^31-1 ms reached setTimeout");
    } finally {
      process.off("warning", onWarning);
      await close(remote);
      await server.close();
    }
    await done();
  });
}

test("a client that is not connected yet refuses a NaN limit too; so does its constructor", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const client = new RpcClient("drpc+inproc://nobody", { loop });
    await assert.rejects(client.call("left", [], { timeout: NaN }), RangeError);
    await client.close();
  });
  assert.throws(() => new RpcClient("drpc+inproc://nobody", { loop, timeout: NaN }), RangeError);
});

test("drpc: a CALL whose deadline is Infinity on the wire is a call without a deadline", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve(api(() => loop.now()), "drpc+inproc://inf", { loop });
    const conn = await loop.connect("inproc://inf");
    const got: unknown[] = [];
    conn.start({ message: (m) => got.push(decode(m[0]!)), end() {} });
    conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 5000, maxMessageSize: 1 << 20 }])]);
    conn.send([encode([T.CALL, 1, "left", [], null, Infinity, 0])]);
    await new Promise<void>((r) => loop.timer(10, r));
    const answer = got.find((m) => (m as unknown[])[0] === T.RESULT) as [number, number, { left: number | null }] | undefined;
    assert.ok(answer !== undefined, `no RESULT among ${JSON.stringify(got)}`);
    assert.equal(answer[2].left, null);
    await conn.close();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("drpc: the time left goes on the wire in whole ms (an integer, not a float64), from a client given a fraction (as a balancer's time left is, on a real clock) and through a balancer, so both ends take the CALL's fast paths", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const listener = await loop.listen("inproc://whole-ms");
    const deadlines: string[] = [];
    listener.start((conn) => {
      conn.start({
        message: (m) => {
          const f = m[0]!;
          const msg = decode(f) as unknown[];
          if (msg[0] === T.HELLO) conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
          else if (msg[0] === T.CALL) {
            // [CALL, id, method, kwargs, deadline, ...]: the byte that starts the deadline says how it was encoded.
            const name = msg[2] as string;
            const at = 2 + 1 + 1 + name.length + 1;
            deadlines.push(`${msg[5]}:${f[at] === 0xcb ? "float64" : "integer"}`);
            conn.send([encode([T.RESULT, msg[1] as number, 1])]);
          }
        },
        end() {},
      });
    });
    const direct = await connect<{ m(): number }>("drpc+inproc://whole-ms", { loop, timeout: 1500.25, heartbeatMs: 0 });
    await direct.m();
    const balanced = await connect<{ m(): number }>(["drpc+inproc://whole-ms"], { loop, timeout: 2000, heartbeatMs: 0 });
    await balanced.m();
    assert.deepEqual(deadlines, ["1501:integer", "2000:integer"]);
    await close(direct);
    await close(balanced);
    await listener.close();
  });
  assert.equal(loop.pendingTimers, 0);
});
