/**
 * In-process calls (drpc+local://NAME), in virtual time: values by reference
 * (or structured copies), the handler on a later microtask, errors as over the
 * wire, names that are taken or missing, and both ends closing. The whole RPC
 * suite (rpc.test.ts) and the engine suite (engine.test.ts) run over
 * drpc+local too.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { RemoteError, RpcError, close, connect, contextual, serve, withOptions, type CallContext } from "../../rpc/index.js";

const setup = (): VirtualLoop => registerTransports(new VirtualLoop({ stallWarningMs: 0 }));

function api(seen: { args: unknown[]; x: number; aborted: unknown[] }) {
  const kept = { list: [1, 2, 3] };
  return {
    kept,
    api: {
      take(v: unknown): unknown {
        seen.args.push(v);
        return v;
      },
      give(): { list: number[] } {
        return kept;
      },
      readX(): number {
        return seen.x;
      },
      fail(): never {
        throw new RpcError("ERR_OUT_OF_STOCK", "no more", { data: { left: 0 } });
      },
      hold: contextual(async (ctx: CallContext): Promise<string> => {
        await new Promise<void>((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true })).catch((e) => seen.aborted.push(e));
        return "never";
      }),
      async *items(n: number): AsyncGenerator<{ i: number }> {
        for (let i = 0; i < n; i++) yield { i };
      },
    },
  };
}

test("values pass by reference; with copy: 'structured' each is a structured clone", async () => {
  const loop = setup();
  await loop.run(async () => {
    const seen = { args: [] as unknown[], x: 0, aborted: [] as unknown[] };
    const { kept, api: a } = api(seen);
    const server = await serve(a, "drpc+local://ref", { loop });
    const remote = await connect<typeof a>("drpc+local://ref", { loop });
    const arg = { deep: { map: new Map([["k", 1]]) } };
    assert.equal(await remote.take(arg), arg, "the caller gets back the very object it sent");
    assert.equal(seen.args[0], arg, "the handler got the caller's object");
    assert.equal(await remote.give(), kept);

    const copying = await connect<typeof a>("drpc+local://ref", { loop, copy: "structured" });
    const back = (await copying.take(arg)) as typeof arg;
    assert.notEqual(seen.args[1], arg, "the handler got a copy");
    assert.notEqual(back, arg);
    assert.deepEqual(back, arg);
    assert.ok(back.deep.map instanceof Map, "a structured clone keeps a Map a Map");
    const got = await copying.give();
    assert.notEqual(got, kept);
    assert.deepEqual(got, kept);
    await assert.rejects(copying.take(() => 1), (e: Error) => e.name === "DataCloneError", "what cannot be cloned fails the call before it is sent");
    const streamed: unknown[] = [];
    for await (const x of copying.items(3)) streamed.push(x);
    assert.deepEqual(streamed, [{ i: 0 }, { i: 1 }, { i: 2 }]);
    await close(copying);
    await close(remote);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("the handler runs after the caller's own statement, as over a connection", async () => {
  const loop = setup();
  await loop.run(async () => {
    const seen = { args: [] as unknown[], x: 0, aborted: [] as unknown[] };
    const { api: a } = api(seen);
    const server = await serve(a, "drpc+local://order", { loop });
    const remote = await connect<typeof a>("drpc+local://order", { loop });
    const p = remote.readX();
    seen.x = 42;
    assert.equal(await p, 42);
    await close(remote);
    await server.close();
  });
});

test("a handler's error reaches the caller as over the wire: RemoteError with code and data", async () => {
  const loop = setup();
  await loop.run(async () => {
    const seen = { args: [] as unknown[], x: 0, aborted: [] as unknown[] };
    const { api: a } = api(seen);
    const server = await serve(a, "drpc+local://err", { loop });
    const remote = await connect<typeof a>("drpc+local://err", { loop });
    await assert.rejects(remote.fail(), (e: unknown) => e instanceof RemoteError && e.code === "ERR_OUT_OF_STOCK" && (e.data as { left: number }).left === 0 && e.remoteName === "RpcError");
    await assert.rejects((remote as unknown as { nope(): Promise<void> }).nope(), (e) => isTilthError(e, "ERR_UNKNOWN_METHOD"));
    await assert.rejects(withOptions(remote, { timeout: 100 }).hold(), (e) => isTilthError(e, "ERR_TIMEOUT"));
    await sleep(loop, 1);
    assert.equal(seen.aborted.length, 1, "the deadline aborted the handler's signal");
    await close(remote);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("names: a taken one is ERR_ADDRESS_IN_USE, a missing one ERR_CONNECTION_REFUSED (waitForReady waits), zrpc+local is refused", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve({ ping: () => "pong" }, "drpc+local://names", { loop });
    await assert.rejects(serve({}, "drpc+local://names", { loop }), (e) => isTilthError(e, "ERR_ADDRESS_IN_USE"));
    await assert.rejects(connect("drpc+local://nobody", { loop }), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"));
    await assert.rejects(connect("zrpc+local://names", { loop }), (e) => isTilthError(e, "ERR_INVALID_URL") && /drpc\+local/.test((e as Error).message));
    await assert.rejects(serve({}, "drpc+local://a/b", { loop }), (e) => isTilthError(e, "ERR_INVALID_URL"));
    // Another loop is another process: its names are its own.
    const other = setup();
    await assert.rejects(connect("drpc+local://names", { loop: other }), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"));

    const late = await connect<{ ping(): Promise<string> }>("drpc+local://later", { loop, waitForReady: true }).catch((e) => e);
    assert.ok(isTilthError(late, "ERR_CONNECTION_REFUSED"), "connect() itself does not wait");
    const { RpcClient, remoteOf } = await import("../../rpc/index.js");
    const waiting = remoteOf<{ ping(): Promise<string> }>(new RpcClient("drpc+local://later", { loop, waitForReady: true }));
    const answer = waiting.ping();
    await sleep(loop, 300);
    const laterServer = await serve({ ping: () => "later pong" }, "drpc+local://later", { loop });
    assert.equal(await answer, "later pong");
    await close(waiting);
    await laterServer.close();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("closing: a server's graceful close lets calls finish; a client's close aborts its handlers; the name is free again", async () => {
  const loop = setup();
  await loop.run(async () => {
    const seen = { args: [] as unknown[], x: 0, aborted: [] as unknown[] };
    const server = await serve({ slow: async () => (await sleep(loop, 50), "done"), ...api(seen).api }, "drpc+local://closing", { loop });
    const remote = await connect<{ slow(): Promise<string>; hold(): Promise<string> }>("drpc+local://closing", { loop });
    const slow = remote.slow();
    await sleep(loop, 1);
    const closed = server.close({ graceMs: 1000 });
    assert.equal(await slow, "done", "the call in flight finished");
    await closed;
    await assert.rejects(remote.slow(), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"), "a new call finds nobody at the name");
    assert.equal(server.connections, 0);

    const again = await serve(api(seen).api, "drpc+local://closing", { loop });
    const held = remote.hold();
    await sleep(loop, 200); // the client's backoff after the refused attempt (100 ms)
    assert.equal(again.connections, 1);
    await close(remote);
    await assert.rejects(held, (e) => isTilthError(e, "ERR_CONNECTION_LOST"));
    await sleep(loop, 1);
    assert.equal(seen.aborted.length, 1, "the handler's signal aborted when its caller went away");
    assert.equal(again.connections, 0);
    await again.close();
  });
  assert.equal(loop.pendingTimers, 0);
});
