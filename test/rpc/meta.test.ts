/**
 * Call metadata on the wire: client defaults and per-call metadata reach the
 * handler's `ctx.meta` over drpc, zrpc and drpc+local; limits answer
 * ERR_BAD_METADATA; drpc sends it only to a server that announced `meta`, so
 * peers of before it never see it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { NodeLoop } from "../../adapters/node.js";
import type { Connection } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";
import { MAX_META_KEYS, close, connect, contextual, serve, withOptions, type CallContext, type Middleware } from "../../rpc/index.js";
import { T, decode, encode } from "../../rpc/drpc/codec.js";
import { leakCheck } from "../helpers/leaks.js";
import { drpcMessages } from "../helpers/raw-drpc.js";

const setup = (): VirtualLoop => registerTransports(new VirtualLoop({ stallWarningMs: 0 }));
const PROTOCOLS = ["drpc", "zrpc", "local"] as const;
let n = 0;
const url = (p: string): string => (p === "local" ? `drpc+local://meta-${n++}` : `${p}+inproc://meta-${n++}`);

type Api = { seen(): Record<string, unknown> };
const api = {
  seen: contextual((ctx: CallContext) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(ctx.meta)) out[k] = v instanceof Uint8Array ? `bytes:${Buffer.from(v).toString("hex")}` : v;
    return out;
  }),
};

for (const p of PROTOCOLS) {
  test(`${p}: client defaults, per-call metadata and what a before hook adds reach ctx.meta; other values stay on the client`, async () => {
    const loop = setup();
    await loop.run(async () => {
      const server = await serve(api, url(p), { loop });
      const mw: Middleware = {
        before(ctx) {
          ctx.meta["x-hook"] = "from-hook";
          ctx.meta.local = 42; // not a string or bytes: middleware's own
        },
      };
      const remote = await connect<Api>(server.urls[0]!, { loop, meta: { tenant: "t1", auth: "default" }, middleware: [mw] });
      assert.deepEqual(await remote.seen(), { tenant: "t1", auth: "default", "x-hook": "from-hook" });
      const per = withOptions(withOptions(remote, { meta: { auth: "Bearer abc" } }), { meta: { bin: new Uint8Array([1, 2, 255]) } });
      assert.deepEqual(await per.seen(), { tenant: "t1", auth: "Bearer abc", bin: "bytes:0102ff", "x-hook": "from-hook" });
      await close(remote);
      const plain = await connect<Api>(server.urls[0]!, { loop });
      assert.deepEqual(await plain.seen(), {}, "no metadata: an empty ctx.meta");
      await close(plain);
      await server.close();
    });
  });

  test(`${p}: metadata over its limits fails the call with ERR_BAD_METADATA; the connection goes on`, async () => {
    const loop = setup();
    await loop.run(async () => {
      const server = await serve(api, url(p), { loop });
      const remote = await connect<Api>(server.urls[0]!, { loop });
      const many: Record<string, string> = {};
      for (let i = 0; i <= MAX_META_KEYS; i++) many[`k${i}`] = "v";
      await assert.rejects(withOptions(remote, { meta: many }).seen(), (e) => (e as { code?: string }).code === "ERR_BAD_METADATA");
      await assert.rejects(withOptions(remote, { meta: { big: "x".repeat(10_000) } }).seen(), (e) => (e as { code?: string }).code === "ERR_BAD_METADATA");
      assert.deepEqual(await withOptions(remote, { meta: { ok: "1" } }).seen(), { ok: "1" });
      await close(remote);
      await server.close();
    });
  });
}

/** A drpc peer of before metadata: its HELLO has no `meta`; it answers each CALL with the number of items the CALL had on the wire. */
async function oldServer(loop: NodeLoop): Promise<{ url: string; close(): Promise<void> }> {
  const listener = await loop.listen("tcp://127.0.0.1:0");
  const conns: Connection[] = [];
  listener.start((conn) => {
    conns.push(conn);
    conn.start({
      message: (m) => {
        const msg = decode(m[0]!);
        if (msg[0] === T.HELLO) conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
        // The decoder gives 7 items for a CALL of 7 on the wire, 8 for one with metadata.
        else if (msg[0] === T.CALL) conn.send([encode([T.RESULT, msg[1], msg.length])]);
      },
      end() {},
    });
  });
  return {
    url: `drpc+${listener.url}`,
    async close() {
      await listener.close();
      for (const c of conns) await c.close();
    },
  };
}

test("drpc compatibility: a client with metadata talking to a server without meta support sends the CALL it knows (7 items)", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const old = await oldServer(loop);
  const remote = await connect<{ m(): number }>(old.url, { loop, meta: { auth: "x" } });
  assert.equal(await withOptions(remote, { meta: { more: "y" } }).m(), 7);
  await close(remote);
  // The same client against a server that reads metadata sends 8 (checked by the server's view of it).
  const server = await serve(api, "drpc+tcp://127.0.0.1:0", { loop });
  const now = await connect<Api>(server.urls[0]!, { loop, meta: { auth: "x" } });
  assert.deepEqual(await now.seen(), { auth: "x" });
  await close(now);
  await server.close();
  await old.close();
  await done();
});

test("drpc compatibility: a client without meta support (its HELLO has no `meta`, its CALL 7 items) is served; a bad map on CALL answers ERR_BAD_METADATA", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve(api, "drpc+tcp://127.0.0.1:0", { loop });
  const conn = await loop.connect(server.urls[0]!.replace("drpc+", ""));
  const next = drpcMessages(conn);
  conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
  const hello = (await next()) as [number, string, number, { meta?: boolean }];
  assert.equal(hello[0], T.HELLO);
  assert.equal(hello[3].meta, true, "the server announces it reads metadata");
  conn.send([encode([T.CALL, 1, "seen", [], null, null, 0])]);
  assert.deepEqual(await next(), [T.RESULT, 1, {}]);
  // A map whose value is neither a string nor bytes: that call only is refused.
  conn.send([encode([T.CALL, 2, "seen", [], null, null, 0, { n: 1 } as never])]);
  const err = (await next()) as [number, number, { code: string }];
  assert.equal(err[0], T.ERROR);
  assert.equal(err[1], 2);
  assert.equal(err[2].code, "ERR_BAD_METADATA");
  conn.send([encode([T.CALL, 3, "seen", [], null, null, 0, { a: "b" }])]);
  assert.deepEqual(await next(), [T.RESULT, 3, { a: "b" }]);
  await conn.close();
  await server.close();
  await done();
});

for (const p of PROTOCOLS) {
  test(`${p}: the order of hooks with around (server side: before hooks, then around outermost first, then the handler, then after); an around hook's throw is the call's error with its code`, async () => {
    const loop = setup();
    const log: string[] = [];
    await loop.run(async () => {
      const hooks = (name: string): Middleware => ({
        async before(ctx) {
          await Promise.resolve();
          log.push(`${name} before ${ctx.method}`);
        },
        around(ctx, next) {
          log.push(`${name} around in`);
          if (ctx.meta.refuse === name) throw Object.assign(new Error("refused by around"), { code: "ERR_AROUND" });
          const r = next();
          log.push(`${name} around out`);
          return r;
        },
        after() {
          log.push(`${name} after`);
        },
        error(_ctx, e) {
          log.push(`${name} error ${(e as { code?: string }).code}`);
        },
      });
      const server = await serve(
        {
          work: () => {
            log.push("handler");
            return 1;
          },
        },
        url(p),
        { loop, middleware: [hooks("one"), hooks("two")] },
      );
      const remote = await connect<{ work(): number }>(server.urls[0]!, { loop });
      assert.equal(await remote.work(), 1);
      assert.deepEqual(log, ["one before work", "two before work", "one around in", "two around in", "handler", "two around out", "one around out", "one after", "two after"]);
      log.length = 0;
      await assert.rejects(withOptions(remote, { meta: { refuse: "two" } }).work(), (e) => (e as { code?: string }).code === "ERR_AROUND" && /refused by around/.test((e as Error).message));
      assert.deepEqual(log, ["one before work", "two before work", "one around in", "two around in", "one error ERR_AROUND", "two error ERR_AROUND"]);
      await close(remote);
      await server.close();
    });
  });
}
