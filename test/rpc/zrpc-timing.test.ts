/**
 * ZeroRPC timing, in virtual time over inproc (the protocol runs over any
 * tilth transport): per-channel heartbeats, lost remotes on both sides,
 * heartbeats off, call time limits, stream credit after the first reply.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Connection, Message } from "../../core/Transport.js";
import { TimeoutError, isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, contextual, serve, withOptions, type CallContext } from "../../rpc/index.js";
import { decodeEvent, encodeEvent, type ZEvent } from "../../rpc/zerorpc/codec.js";

const setup = (): VirtualLoop => registerTransports(new VirtualLoop({ stallWarningMs: 0 }));

function api(loop: VirtualLoop, seen: { aborted: unknown[] }) {
  return {
    slow: contextual(async (ctx: CallContext, ms: number) => {
      ctx.signal.addEventListener("abort", () => seen.aborted.push(ctx.signal.reason));
      await sleep(loop, ms, { signal: ctx.signal });
      return ms;
    }),
    hold: contextual((ctx: CallContext) => {
      return new Promise((_r, reject) => {
        ctx.signal.addEventListener("abort", () => {
          seen.aborted.push(ctx.signal.reason);
          reject(ctx.signal.reason);
        });
      });
    }),
    async *count(n: number) {
      for (let i = 0; i < n; i++) yield i;
    },
  };
}

/** A raw zrpc peer on inproc: records every event with its loop time. */
async function rawPeer(loop: VirtualLoop, url: string): Promise<{ conn: Connection; got: { t: number; ev: ZEvent }[] }> {
  const conn = await loop.connect(url);
  const got: { t: number; ev: ZEvent }[] = [];
  conn.start({ message: (m: Message) => got.push({ t: loop.now(), ev: decodeEvent(m) }), end() {} });
  return { conn, got };
}

test("a call kept alive by heartbeats: both sides send _zpc_hb every interval while it runs, well past twice the interval", async () => {
  const loop = setup();
  const seen = { aborted: [] as unknown[] };
  await loop.run(async () => {
    const server = await serve(api(loop, seen), "zrpc+inproc://hb", { loop, heartbeatMs: 1000 });
    const c = await connect<ReturnType<typeof api>>("zrpc+inproc://hb", { loop, heartbeatMs: 1000 });
    const t0 = loop.now();
    assert.equal(await c.slow(4500), 4500);
    assert.equal(loop.now() - t0, 4500);
    assert.equal(seen.aborted.length, 0);
    await close(c);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("the server's heartbeats on the wire: _zpc_hb [0] with response_to = the request id, every interval", async () => {
  const loop = setup();
  const seen = { aborted: [] as unknown[] };
  await loop.run(async () => {
    const server = await serve(api(loop, seen), "zrpc+inproc://wire", { loop, heartbeatMs: 1000 });
    const { conn, got } = await rawPeer(loop, "inproc://wire");
    const id = Buffer.from("00000001dealerprobe0000000000000");
    conn.send(encodeEvent({ message_id: id, v: 3 }, "slow", [2500]));
    // Answer the server's heartbeats, as an active client does.
    for (let t = 1000; t <= 2000; t += 1000) {
      await sleep(loop, 1000);
      conn.send(encodeEvent({ message_id: "hb" + t, v: 3, response_to: id }, "_zpc_hb", [0]));
    }
    await sleep(loop, 600);
    const names = got.map((g) => `${g.t}:${g.ev.name}`);
    assert.deepEqual(names, ["1000:_zpc_hb", "2000:_zpc_hb", "2500:OK"]);
    for (const g of got) {
      assert.ok(Buffer.from(g.ev.header.response_to as Uint8Array).equals(id), "response_to echoes the bin id as bin");
      assert.equal(g.ev.header.v, 3);
    }
    assert.deepEqual(got[0]!.ev.args, [0]);
    assert.deepEqual(got[2]!.ev.args, [2500]);
    await conn.close();
    await server.close();
  });
});

test("a client that never heartbeats is lost: the server kills the method after about three intervals and sends nothing more", async () => {
  const loop = setup();
  const seen = { aborted: [] as unknown[] };
  await loop.run(async () => {
    const server = await serve(api(loop, seen), "zrpc+inproc://lost", { loop, heartbeatMs: 5000 });
    const { conn, got } = await rawPeer(loop, "inproc://lost");
    conn.send(encodeEvent({ message_id: "silent-1", v: 3 }, "hold", []));
    await sleep(loop, 20_000);
    assert.deepEqual(
      got.map((g) => `${g.t}:${g.ev.name}`),
      ["5000:_zpc_hb", "10000:_zpc_hb"],
    );
    assert.equal(seen.aborted.length, 1);
    assert.ok(isTilthError(seen.aborted[0], "ERR_CONNECTION_LOST"));
    assert.equal(got[0]!.ev.header.response_to, "silent-1", "a str id is echoed as str");
    await conn.close();
    await server.close();
  });
});

test("a server that never heartbeats is lost: the client's call fails with ERR_CONNECTION_LOST after about three intervals, before its time limit", async () => {
  const loop = setup();
  await loop.run(async () => {
    const listener = await loop.listen("inproc://mute");
    const requests: ZEvent[] = [];
    listener.start((c) => c.start({ message: (m) => requests.push(decodeEvent(m)), end() {} }));
    const c = await connect<{ anything(): Promise<void> }>("zrpc+inproc://mute", { loop, heartbeatMs: 5000, timeout: 30_000 });
    const t0 = loop.now();
    await assert.rejects(c.anything(), (e) => isTilthError(e, "ERR_CONNECTION_LOST"));
    assert.equal(loop.now() - t0, 15_000);
    assert.deepEqual(requests.map((r) => r.name), ["anything", "_zpc_hb", "_zpc_hb"]);
    await close(c);
    await listener.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("heartbeats off (heartbeatMs: 0): no _zpc_hb, a long call completes, the time limit still applies", async () => {
  const loop = setup();
  const seen = { aborted: [] as unknown[] };
  await loop.run(async () => {
    const server = await serve(api(loop, seen), "zrpc+inproc://off", { loop, heartbeatMs: 0 });
    const { conn, got } = await rawPeer(loop, "inproc://off");
    conn.send(encodeEvent({ message_id: "x1", v: 3 }, "slow", [60_000]));
    await sleep(loop, 60_001);
    assert.deepEqual(got.map((g) => g.ev.name), ["OK"]);
    const c = await connect<ReturnType<typeof api>>("zrpc+inproc://off", { loop, heartbeatMs: 0 });
    await assert.rejects(withOptions(c, { timeout: 2000 }).hold(), (e) => e instanceof TimeoutError && e.limitMs === 2000);
    await conn.close();
    await close(c);
    await server.close({ graceMs: 0 });
  });
});

test("stream credit: the server sends one event, then waits for _zpc_more, which the client sends only after the first reply", async () => {
  const loop = setup();
  const seen = { aborted: [] as unknown[] };
  await loop.run(async () => {
    const server = await serve(api(loop, seen), "zrpc+inproc://credit", { loop, heartbeatMs: 1000 });
    const { conn, got } = await rawPeer(loop, "inproc://credit");
    conn.send(encodeEvent({ message_id: "c1", v: 3 }, "count", [3]));
    await sleep(loop, 2500);
    assert.deepEqual(got.map((g) => g.ev.name).filter((n) => n !== "_zpc_hb"), ["STREAM"], "one credit at the start");
    conn.send(encodeEvent({ message_id: "m1", v: 3, response_to: "c1" }, "_zpc_more", [100]));
    await sleep(loop, 1);
    const events = got.map((g) => g.ev).filter((e) => e.name !== "_zpc_hb");
    assert.deepEqual(events.map((e) => [e.name, e.args]), [["STREAM", 0], ["STREAM", 1], ["STREAM", 2], ["STREAM_DONE", null]]);
    await conn.close();

    // The tilth client: its first _zpc_more goes after the first STREAM.
    const spy: string[] = [];
    const listener = await loop.listen("inproc://spy");
    listener.start(async (down) => {
      const up = await loop.connect("inproc://credit");
      up.start({ message: (m) => { spy.push(`<${decodeEvent(m).name}`); down.send(m); }, end() {} });
      down.start({ message: (m) => { spy.push(`>${decodeEvent(m).name}`); up.send(m); }, end: () => void up.close() });
    });
    const c = await connect<ReturnType<typeof api>>("zrpc+inproc://spy", { loop, heartbeatMs: 1000 });
    const items: number[] = [];
    for await (const x of c.count(3)) items.push(x as number);
    assert.deepEqual(items, [0, 1, 2]);
    assert.deepEqual(spy.slice(0, 3), [">count", "<STREAM", ">_zpc_more"]);
    await close(c);
    await listener.close();
    await server.close();
  });
});
