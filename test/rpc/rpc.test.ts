/**
 * RPC behaviour over every transport: tcp, ipc, tls, inproc, and nats (a
 * service behind drpc+nats://, through the balancing client) when nats-server
 * is installed.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { CancelledError, isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RemoteError, clientOf, close, connect, serve, withOptions, type Middleware, type Remote } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { natsPlaces, newCounters, places, testApi, turns, until } from "./fixtures.js";

type API = ReturnType<typeof testApi>;

for (const place of [...places(), ...(await natsPlaces())]) {
  describe(`RPC over ${place.name}`, () => {
    after(() => place.cleanup());

    const withPair = async (fn: (ctx: { api: Remote<API>; counters: ReturnType<typeof newCounters>; loop: NodeLoop; url: string }) => Promise<void>, opts: { server?: Record<string, unknown>; client?: Record<string, unknown> } = {}): Promise<void> => {
      const done = leakCheck();
      const loop = registerTransports(new NodeLoop());
      const counters = newCounters();
      const server = await serve(testApi(loop, counters), place.url(), { loop, transport: place.server, ...opts.server });
      const api = await connect<API>(server.urls[0]!, { loop, transport: place.client, ...opts.client });
      try {
        await fn({ api, counters, loop, url: server.urls[0]! });
      } finally {
        await close(api);
        await server.close({ graceMs: 0 });
      }
      await done();
      assert.equal(loop.pendingTimers, 0, "timers left pending");
    };

    test("plain calls, default and named arguments", async () => {
      await withPair(async ({ api }) => {
        assert.equal(await api.ping(), "pong");
        assert.equal(await api.add(2, 3), 5);
        assert.equal(await api.greet("ada"), "hello, ada");
        assert.equal(await withOptions(api, { kwargs: { greeting: "hi" } }).greet("bob"), "hi, bob");
        assert.equal(await clientOf(api).call("greet", [], { kwargs: { name: "eve", greeting: "yo" } }), "yo, eve");
        assert.equal(await api.inherited(), "from the base class");
      });
    });

    test("values survive the wire: binary, nested, big integers, null", async () => {
      await withPair(async ({ api }) => {
        const v = { bin: new Uint8Array([0, 1, 255]), list: [1, "two", { three: 3 }], big: 2n ** 60n, nil: null, f: 1.5 };
        const back = (await api.echo(v)) as typeof v;
        assert.deepEqual(new Uint8Array(back.bin), v.bin);
        assert.deepEqual(back.list, v.list);
        assert.equal(back.big, 2n ** 60n);
        assert.equal(back.nil, null);
        assert.equal(back.f, 1.5);
      });
    });

    test("many calls in flight on one connection", async () => {
      await withPair(async ({ api }) => {
        const results = await Promise.all(Array.from({ length: 500 }, (_, i) => api.add(i, 1)));
        assert.deepEqual(results, Array.from({ length: 500 }, (_, i) => i + 1));
      });
    });

    test("errors carry name, message, code, data and the retry hint; no stack unless opted in", async () => {
      await withPair(async ({ api }) => {
        await assert.rejects(api.fail(), (e) => {
          assert.ok(e instanceof RemoteError);
          assert.equal(e.code, "ERR_OUT_OF_STOCK");
          assert.equal(e.remoteName, "RpcError");
          assert.equal(e.message, "no more widgets");
          assert.deepEqual(e.data, { left: 0 });
          assert.equal(e.retryable, true);
          assert.equal(e.remoteStack, undefined);
          return true;
        });
        await assert.rejects(api.failPlain(), (e) => e instanceof RemoteError && e.code === "ERR_REMOTE" && e.remoteName === "TypeError" && !e.retryable);
        await assert.rejects(api.throwString(), (e) => isTilthError(e, "ERR_NON_ERROR") && /just a string/.test((e as Error).message));
      });
    });

    test("the remote stack is sent when the server opts in", async () => {
      await withPair(
        async ({ api }) => {
          await assert.rejects(api.failPlain(), (e) => e instanceof RemoteError && /plain failure/.test(e.remoteStack ?? ""));
        },
        { server: { exposeStack: true } },
      );
    });

    test("unknown methods, hidden names and wrong argument counts are refused with codes", async () => {
      await withPair(async ({ api }) => {
        const c = clientOf(api);
        for (const name of ["nope", "_hidden", "constructor", "toString", "__proto__", "hasOwnProperty", "accessor", "field"])
          await assert.rejects(c.call(name, []), (e) => isTilthError(e, "ERR_UNKNOWN_METHOD"), name);
        await assert.rejects(c.call("add", [1]), (e) => isTilthError(e, "ERR_BAD_ARGUMENTS"));
        await assert.rejects(c.call("add", [1, 2, 3]), (e) => isTilthError(e, "ERR_BAD_ARGUMENTS"));
        await assert.rejects(c.call("greet", [], { kwargs: { who: "x" } }), (e) => isTilthError(e, "ERR_BAD_ARGUMENTS"));
        assert.equal(await api.ping(), "pong", "the connection still serves");
      });
    });

    test("introspection lists methods with parameters and docs", async () => {
      await withPair(async ({ api }) => {
        const { methods } = await clientOf(api).inspect();
        const by = new Map(methods.map((m) => [m.name, m]));
        assert.deepEqual(by.get("add")?.params, ["a", "b"]);
        assert.equal(by.get("greet")?.required, 1);
        assert.equal(by.get("ping")?.doc, "Answers pong.");
        assert.equal(by.get("count")?.stream, true);
        assert.deepEqual(by.get("wait")?.params, ["ms"], "the context parameter is not shown");
        assert.ok(!by.has("_hidden") && !by.has("constructor") && !by.has("field") && !by.has("accessor"));
      });
    });

    test("streams: items in order, then the end", async () => {
      await withPair(async ({ api, counters }) => {
        const got: number[] = [];
        for await (const x of api.count(200)) got.push(x);
        assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
        assert.equal(counters.finallyRan, 1);
        const empty: number[] = [];
        for await (const x of api.count(0)) empty.push(x);
        assert.deepEqual(empty, []);
        // awaiting a streamed call gives the stream to iterate
        const awaited: number[] = [];
        for await (const x of await api.count(3)) awaited.push(x);
        assert.deepEqual(awaited, [0, 1, 2]);
      });
    });

    test("streams: a slow consumer holds the producer back (credit)", async () => {
      await withPair(async ({ api, counters, loop }) => {
        const it = api.count(100_000)[Symbol.asyncIterator]();
        assert.deepEqual(await it.next(), { value: 0, done: false });
        await turns(loop, 2000); // the producer could run far ahead now, if nothing held it
        assert.ok(counters.produced <= 64 + 1, `produced ${counters.produced} items ahead of a consumer that took 1`);
        await it.return!();
      });
    });

    test("streams abandoned midway stop the server's generator (its finally runs)", async () => {
      await withPair(async ({ api, counters, loop }) => {
        for await (const x of api.count(1_000_000)) if (x === 2) break;
        await until(loop, () => counters.finallyRan === 1);
        assert.ok(counters.produced < 1000);
      });
    });

    test("cancellation: the client aborts, the handler's signal fires with the reason", async () => {
      await withPair(async ({ api, counters, loop }) => {
        const ac = new AbortController();
        const p = withOptions(api, { signal: ac.signal }).hold();
        await until(loop, () => counters.entered === 1);
        ac.abort(new CancelledError("user pressed stop"));
        await assert.rejects(p, /user pressed stop/);
        await until(loop, () => counters.cancelReasons.length === 1);
        assert.match(String((counters.cancelReasons[0] as Error).message), /user pressed stop/);
      });
    });

    test("the deadline travels with the call", async () => {
      await withPair(async ({ api }) => {
        const left = (await withOptions(api, { timeout: 5000 }).deadlineOf()) as number;
        assert.ok(left > 4000 && left <= 5000, `server saw ${left} ms left`);
      });
    });

    test("middleware sees every call, result and error", async () => {
      const seen: string[] = [];
      const mw: Middleware = {
        before: (c) => seen.push(`before ${c.method}`),
        after: (c) => seen.push(`after ${c.method}`),
        error: (c, e) => seen.push(`error ${c.method} ${(e as { code?: string }).code}`),
      };
      await withPair(
        async ({ api }) => {
          await api.add(1, 2);
          await api.fail().then(undefined, () => {});
        },
        { server: { middleware: [mw] }, client: { middleware: [mw] } },
      );
      assert.deepEqual(seen, [
        "before add", // client
        "before add", // server
        "after add", // server
        "after add", // client
        "before fail",
        "before fail",
        "error fail ERR_OUT_OF_STOCK",
        "error fail ERR_OUT_OF_STOCK",
      ]);
    });

    test("a limit on concurrent calls per connection answers ERR_BUSY", async () => {
      await withPair(
        async ({ api, counters, loop }) => {
          const calls = Array.from({ length: 5 }, () => api.hold());
          let refused = 0;
          for (const c of calls) c.catch(() => refused++);
          await until(loop, () => refused === 3 && counters.entered === 2);
          counters.gate.set();
          const results = await Promise.allSettled(calls);
          const busy = results.filter((r) => r.status === "rejected" && isTilthError(r.reason, "ERR_BUSY"));
          assert.equal(busy.length, 3);
          assert.equal(results.filter((r) => r.status === "fulfilled").length, 2);
        },
        { server: { maxConcurrentCalls: 2 } },
      );
    });

    test("graceful close lets calls in flight finish, refuses new ones", async () => {
      const done = leakCheck();
      const loop = registerTransports(new NodeLoop());
      const counters = newCounters();
      const server = await serve(testApi(loop, counters), place.url(), { loop, transport: place.server });
      const api = await connect<API>(server.urls[0]!, { loop, transport: place.client });
      const slow = api.hold();
      await until(loop, () => counters.entered === 1);
      const closing = server.close({ graceMs: 60_000 });
      await turns(loop, 50);
      counters.gate.set();
      assert.equal(await slow, "released");
      await closing;
      await assert.rejects(api.ping(), (e) => isTilthError(e) && ["ERR_CONNECTION_REFUSED", "ERR_UNAVAILABLE", "ERR_CONNECTION_LOST"].includes((e as { code: string }).code));
      await close(api);
      await done();
    });

    test("close with no grace cancels handlers and answers ERR_UNAVAILABLE", async () => {
      const done = leakCheck();
      const loop = registerTransports(new NodeLoop());
      const counters = newCounters();
      const server = await serve(testApi(loop, counters), place.url(), { loop, transport: place.server });
      const api = await connect<API>(server.urls[0]!, { loop, transport: place.client });
      const stuck = api.hold();
      await until(loop, () => counters.entered === 1);
      await server.close({ graceMs: 0 });
      await assert.rejects(stuck, (e) => isTilthError(e, "ERR_UNAVAILABLE") || isTilthError(e, "ERR_CONNECTION_LOST"));
      assert.equal(counters.cancelReasons.length, 1, "the handler's signal fired");
      await close(api);
      await done();
    });
  });
}

test("one server listens on several URLs with the same handlers", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  let hits = 0;
  const server = await serve({ hit: () => ++hits }, ["drpc+tcp://127.0.0.1:0", "drpc+inproc://multi"], { loop });
  assert.equal(server.urls.length, 2);
  for (const url of server.urls) {
    const api = await connect<{ hit(): number }>(url, { loop });
    await api.hit();
    await close(api);
  }
  assert.equal(hits, 2);
  await server.close();
  await done();
});

test("a message above the maximum size is refused without breaking the connection", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ echo: (x: unknown) => x, ok: () => "ok" }, "drpc+tcp://127.0.0.1:0", { loop, maxMessageSize: 64 * 1024 });
  const api = await connect<{ echo(x: unknown): unknown; ok(): string }>(server.urls[0]!, { loop, maxMessageSize: 64 * 1024 });
  await assert.rejects(api.echo("x".repeat(100_000)), (e) => isTilthError(e, "ERR_MESSAGE_TOO_LARGE"));
  assert.equal(await api.ok(), "ok");
  await close(api);
  await server.close();
  await done();
});

test("a proxy is not thenable and ignores promise machinery", async () => {
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ ok: () => "ok" }, "drpc+inproc://thenable", { loop });
  const api = await connect<{ ok(): string; other(): string }>(server.urls[0]!, { loop });
  assert.equal((api as unknown as { then?: unknown }).then, undefined);
  assert.equal(await Promise.resolve(api), api, "awaiting a proxy gives the proxy, no remote call");
  assert.equal((api as unknown as { toJSON?: unknown }).toJSON, undefined);
  assert.equal(JSON.stringify(api), "{}");
  assert.equal(await api.ok(), "ok");
  assert.deepEqual(Object.keys(api), [], "methods used are kept, but not listed as keys");
  // A frozen proxy works on, for methods used before and after freezing.
  Object.freeze(api);
  assert.equal(await api.ok(), "ok");
  await assert.rejects(api.other(), (e: unknown) => isTilthError(e, "ERR_UNKNOWN_METHOD"));
  await close(api);
  await server.close();
});
