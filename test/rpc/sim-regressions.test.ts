/**
 * The bugs the simulator found in the RPC client, staged directly (their
 * seeded runs are in test/app/simulation.test.ts).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { HostLoop, SimLoop } from "../../adapters/sim.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { abortReason, isTilthError } from "../../core/errors.js";
import type { Connection, Transport } from "../../core/Transport.js";
import { RpcClient } from "../../rpc/Client.js";
import { RpcServer } from "../../rpc/Server.js";
import type { Middleware } from "../../rpc/context.js";
import { SimNetwork } from "../../transports/sim.js";
import "../../rpc/index.js";

test("closing a client while it connects aborts the connect and leaves no deadline timer behind", async () => {
  const loop = new VirtualLoop({ stallWarningMs: 0 });
  let aborted = false;
  // A host that never answers: the connect ends only when its signal aborts.
  const silent: Transport = {
    schemes: ["hang"],
    connect: (_loop, _url, options) =>
      new Promise<Connection>((_resolve, reject) => {
        options.signal?.addEventListener("abort", () => {
          aborted = true;
          reject(abortReason(options.signal!));
        });
      }),
    listen: () => Promise.reject(new Error("no")),
  };
  loop.transports.register(silent);
  const client = new RpcClient("drpc+hang://nowhere", { loop, waitForReady: true });
  await loop.run(async () => {
    const call = client.call("ping", [], { timeout: 30_000 });
    await loop.advance(0).catch(() => undefined);
    await client.close();
    await assert.rejects(Promise.resolve(call), (e) => isTilthError(e) && !isTilthError(e, "ERR_TIMEOUT"));
  });
  assert.ok(aborted, "the connect was aborted");
  assert.equal(loop.pendingTimers, 0, "no timer left behind");
  assert.equal(loop.now(), 0, "nothing waited for the call's 30 s");
});

test("a call whose send fails after its before hooks gets its error hooks", async () => {
  const world = new SimLoop({ seed: 1 });
  const net = new SimNetwork(world);
  const a = net.attach(new HostLoop(world, "a"));
  const b = net.attach(new HostLoop(world, "b"));
  const seen: string[] = [];
  const mw: Middleware = {
    before: (c) => void seen.push(`before ${c.method}`),
    after: (c) => void seen.push(`after ${c.method}`),
    error: (c, e) => void seen.push(`error ${c.method} ${(e as { code?: string }).code}`),
  };
  const server = new RpcServer({ ping: () => "pong" }, { loop: b });
  const client = new RpcClient("drpc+tcp://127.0.0.1:7300", { loop: a, middleware: [mw] });
  await world.run(async () => {
    await server.listen("drpc+tcp://127.0.0.1:7300");
    assert.equal(await client.call("ping"), "pong");
    // The connection breaks; before the session hears of it, a call goes out.
    net.reset(net.openEnds().find((e) => e.host === a)!);
    await assert.rejects(Promise.resolve(client.call("ping")), (e) => isTilthError(e));
    await client.close();
    await server.close();
  });
  assert.deepEqual(seen, ["before ping", "after ping", "before ping", "error ping ERR_BROKEN"]);
});
