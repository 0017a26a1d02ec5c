/**
 * Clients that wait for a server to come up (`waitForReady`): bounded by the
 * call's limit, named in whole ms, and cancelled at once by the owner's stop.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { TimeoutError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient } from "../../rpc/index.js";

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
