/**
 * Clients that wait for a server to come up (`waitForReady`): bounded by the
 * call's limit, named in whole ms, and cancelled at once by the owner's stop.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { CancelledError, TimeoutError } from "../../core/errors.js";
import { Event } from "../../core/Event.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient, serve } from "../../rpc/index.js";

test("a call that waits for a server that never comes fails at its limit with ERR_TIMEOUT naming that limit in whole ms", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    await sleep(loop, 0.37); // loop times are fractional on a real clock
    const client = new RpcClient("drpc+inproc://nobody", { loop, waitForReady: true });
    const t0 = loop.now();
    await assert.rejects(client.call("ping", [], { timeout: 30_000 }), (e) => {
      assert.ok(e instanceof TimeoutError, String(e));
      assert.equal(e.limitMs, 30_000);
      assert.equal(e.message, "connecting to drpc+inproc://nobody timed out after 30000 ms");
      return true;
    });
    assert.equal(loop.now() - t0, 30_000);
    await client.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("the client's signal ends calls waiting for a connection at once, with its reason; calls on an open connection go on", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const stop = new AbortController();
    const reason = new CancelledError("owner stopping");
    const waiting = new RpcClient("drpc+inproc://later", { loop, waitForReady: true, signal: stop.signal });
    const call = waiting.call("ping", [], { timeout: 30_000 });
    const t0 = loop.now();
    loop.timer(1000, () => stop.abort(reason));
    await assert.rejects(call, (e) => e === reason);
    assert.equal(loop.now() - t0, 1000, "the wait ended with the stop, not at the call's limit");
    await assert.rejects(waiting.call("ping", [], { timeout: 30_000 }), (e) => e === reason, "a call after the stop does not wait either");
    await waiting.close();

    const gate = new Event();
    const server = await serve({ slow: async () => (await gate.wait(), "done") }, "drpc+inproc://up", { loop });
    const own = new AbortController();
    const open = new RpcClient("drpc+inproc://up", { loop, waitForReady: true, signal: own.signal });
    await open.connect();
    const inFlight = open.call("slow", []);
    own.abort(reason);
    loop.timer(10, () => gate.set());
    assert.equal(await inFlight, "done");
    assert.equal(await open.call("slow", []), "done", "an open connection still takes calls");
    await open.close();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});
