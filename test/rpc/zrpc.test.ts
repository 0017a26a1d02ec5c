/**
 * ZeroRPC over real ZeroMQ: one API served on drpc and zrpc at once, the same
 * typed proxy over both, drpc over zmq+tcp, the built-ins, and tilth's bytes
 * checked frame by frame with a plain zeromq DEALER against the recorded
 * examples of the reference (docs/zerorpc.md).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Packr } from "msgpackr";
import { NodeLoop } from "../../adapters/node.js";
import { openZmqSockets } from "../../adapters/zeromq.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { clientOf, close, connect, doc, serve, type RemoteError } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { rawDealer } from "./fixtures.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ""), "hex");
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" } as unknown as ConstructorParameters<typeof Packr>[0]);

class Api {
  hello = doc("Greets.", (name: string) => `Hello, ${name}`);
  echo(x: unknown) {
    return x;
  }
  tuple() {
    return [1, "two", 3.5];
  }
  nothing() {
    return undefined;
  }
  bytes() {
    return Buffer.from([0, 1, 0xfe, 0xff]);
  }
  fail(msg: string) {
    const e = new Error(msg);
    e.name = "ValueError";
    throw e;
  }
  async *count(n: number) {
    for (let i = 0; i < n; i++) yield i;
  }
  async *failing(n: number) {
    for (let i = 0; i < n; i++) yield i;
    throw new Error(`stream failed after ${n} items`);
  }
}
type API = Api;

async function withServer(fn: (urls: string[], loop: NodeLoop) => Promise<void>): Promise<void> {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve(new Api(), ["drpc+tcp://127.0.0.1:0", "zrpc+tcp://127.0.0.1:0", "drpc+zmq+tcp://127.0.0.1:0"], { loop, name: "TestApi" });
  try {
    await fn(server.urls, loop);
  } finally {
    await server.close({ graceMs: 0 });
  }
  assert.equal(openZmqSockets(), 0, "every zmq socket closed");
  await done();
}

describe("one API on drpc+tcp, zrpc+tcp and drpc+zmq+tcp: the same proxy", () => {
  test("plain calls, values, 64-bit integers, errors, streams, stream errors, abandoned streams", async () => {
    await withServer(async (urls, loop) => {
      assert.match(urls[1]!, /^zrpc\+tcp:\/\/127\.0\.0\.1:\d+$/);
      for (const url of urls) {
        const c = await connect<API>(url, { loop });
        assert.equal(await c.hello("Wire"), "Hello, Wire", url);
        assert.deepEqual(await c.tuple(), [1, "two", 3.5]);
        assert.equal(await c.nothing(), undefined);
        assert.deepEqual(Buffer.from((await c.bytes()) as Uint8Array), Buffer.from([0, 1, 0xfe, 0xff]));
        for (const v of [2 ** 40, -(2 ** 40), 2 ** 53 - 1, 18446744073709551615n, -9223372036854775808n, { a: [1, null, "x"] }]) {
          assert.deepEqual(await c.echo(v), v, `${url} ${String(v)}`);
        }
        await assert.rejects(c.fail("bad"), (e: RemoteError) => e.remoteName === "ValueError" && e.message === "bad" && typeof e.code === "string");
        const xs: unknown[] = [];
        for await (const x of c.count(200)) xs.push(x);
        assert.deepEqual(xs, Array.from({ length: 200 }, (_, i) => i));
        const ys: unknown[] = [];
        for await (const y of c.count(0)) ys.push(y);
        assert.deepEqual(ys, []);
        const zs: unknown[] = [];
        await assert.rejects(
          (async () => {
            for await (const z of c.failing(2)) zs.push(z);
          })(),
          (e: RemoteError) => /stream failed after 2 items/.test(e.message),
        );
        assert.deepEqual(zs, [0, 1]);
        // Leave a long stream early: the proxy stays usable.
        let n = 0;
        for await (const _ of c.count(100_000)) if (++n === 3) break;
        assert.equal(await c.hello("again"), "Hello, again");
        await close(c);
      }
    });
  });

  test("zrpc: unknown method is ERR NameError (code ERR_UNKNOWN_METHOD from a tilth server), bad arity is TypeError (ERR_BAD_ARGUMENTS); built-ins", async () => {
    await withServer(async (urls, loop) => {
      const c = await connect<API & { nope(): Promise<void> }>(urls[1]!, { loop });
      await assert.rejects(c.nope(), (e: RemoteError) => e.remoteName === "NameError" && e.message === "nope" && isTilthError(e, "ERR_UNKNOWN_METHOD"));
      await assert.rejects((c as unknown as { hello(): Promise<string> }).hello(), (e: RemoteError) => e.remoteName === "TypeError" && isTilthError(e, "ERR_BAD_ARGUMENTS"));
      const raw = clientOf(c);
      assert.deepEqual(await raw.call("_zerorpc_ping"), ["pong", "TestApi"]);
      assert.equal(await raw.call("_zerorpc_name"), "TestApi");
      const list = (await raw.call("_zerorpc_list")) as string[];
      assert.ok(list.includes("hello") && list.includes("count") && !list.some((m) => m.startsWith(".")));
      const inspect = (await raw.call("_zerorpc_inspect")) as { name: string; methods: Record<string, { args: { name: string }[]; doc: string | null }> };
      assert.equal(inspect.name, "TestApi");
      assert.deepEqual(inspect.methods.hello, { args: [{ name: "name" }], doc: "Greets." });
      assert.equal(await raw.call("_zerorpc_help", ["hello"]), "Greets.");
      assert.deepEqual(await raw.call("_zerorpc_args", ["echo"]), [{ name: "x" }]);
      await assert.rejects(raw.call("_zerorpc_help", ["missing"]), (e: RemoteError) => e.remoteName === "NameError");
      await close(c);
    });
  });
});

describe("tilth's zrpc bytes against the recorded examples (plain zeromq DEALER)", () => {
  test("hello(\"Wire\") as zerorpc-python sent it; str ids; no delimiter; unknown method; garbage; 64-bit integers", async () => {
    await withServer(async (urls, loop) => {
      const endpoint = urls[1]!.replace(/^zrpc\+/, "");
      const dealer = rawDealer(loop, endpoint);
      const next = dealer.next;
      const E = Buffer.alloc(0);

      // The request recorded from zerorpc-python's client (62 bytes).
      const request = hex("9382aa6d6573736167655f6964c4203464373930656563656634313465396162383161383635313962396436633837a17603a568656c6c6f91a457697265");
      dealer.send([E, request]);
      let r = await next();
      assert.equal(r.length, 2, "[b'', payload]");
      assert.equal(r[0]!.length, 0);
      const payload = r[1]!;
      // 93 83, then "message_id" (str key) with a str id of 32 chars.
      assert.equal(payload.subarray(0, 14).toString("hex"), "9383aa6d6573736167655f6964b8", payload.toString("hex"));
      const rest = payload.subarray(14 + 24);
      // "v": 3, "response_to": the same bin id, "OK", ["Hello, Wire"] — byte for byte as zerorpc-python answers.
      assert.equal(
        rest.toString("hex"),
        "a17603" + "ab726573706f6e73655f746f" + "c420" + Buffer.from("4d790eecef414e9ab81a86519b9d6c87").toString("hex") + "a24f4b" + "91ab48656c6c6f2c2057697265",
      );
      const hdr = (packr.unpack(payload) as [Record<string, unknown>])[0];
      assert.match(String(hdr.message_id), /^[0-9a-f]{24}$/);

      // A str id comes back as str; a request without the delimiter is answered with one.
      dealer.send([packr.pack([{ message_id: "my-string-id-1", v: 3 }, "hello", ["Probe"]])]);
      r = await next();
      assert.equal(r.length, 2);
      const [h2, name2, args2] = packr.unpack(r[1]!) as [Record<string, unknown>, string, unknown];
      assert.equal(h2.response_to, "my-string-id-1");
      assert.equal(name2, "OK");
      assert.deepEqual(args2, ["Hello, Probe"]);

      // Garbage and a 2-item array get no reply; an unknown method gets ERR NameError.
      dealer.send([E, Buffer.from("not msgpack")]);
      dealer.send([E, packr.pack([{ message_id: "x", v: 3 }, "hello"])]);
      dealer.send([E, packr.pack([{ message_id: "u1", v: 3 }, "unknown_method", []])]);
      r = await next();
      const [h3, name3, args3] = packr.unpack(r[1]!) as [Record<string, unknown>, string, string[]];
      assert.equal(h3.response_to, "u1");
      assert.equal(name3, "ERR");
      assert.equal(args3[0], "NameError");
      assert.equal(args3[1], "unknown_method");

      // uint64 max, int64 min, 2**40: exact, as 64-bit integers (cf / d3), never float64.
      dealer.send([E, Buffer.concat([hex("9382 aa6d6573736167655f6964 a26964 a17603 a46563686f 91"), hex("93cfffffffffffffffffd38000000000000000cf0000010000000000")])]);
      r = await next();
      // (2**40 goes as int64 d3, where zerorpc-python picks uint64 cf: both exact 64-bit integers.)
      assert.equal(r[1]!.subarray(-32).toString("hex"), "a24f4b9193cfffffffffffffffffd38000000000000000d30000010000000000");

      // A stream: STREAM items bare, STREAM_DONE nil, one credit until _zpc_more.
      dealer.send([E, packr.pack([{ message_id: "s1", v: 3 }, "count", [2]])]);
      r = await next();
      assert.deepEqual((packr.unpack(r[1]!) as unknown[]).slice(1), ["STREAM", 0]);
      dealer.send([E, packr.pack([{ message_id: "s2", v: 3, response_to: "s1" }, "_zpc_more", [100]])]);
      const tail: unknown[] = [];
      for (let i = 0; i < 2; i++) tail.push((packr.unpack((await next())[1]!) as unknown[]).slice(1));
      assert.deepEqual(tail, [["STREAM", 1], ["STREAM_DONE", null]]);
      await dealer.close();
    });
  });
});

describe("zrpc one-way events", () => {
  test("PUSH/PULL delivers each event to the puller's method; PUB/SUB to every subscriber; bad events are reported, not fatal", async () => {
    const done = leakCheck();
    const loop = new NodeLoop();
    const { zrpcEmitter, zrpcReceiver } = await import("../../rpc/index.js");
    const got: unknown[][] = [];
    const errors: string[] = [];
    let wake: (() => void) | undefined;
    const api = {
      log(level: string, n: unknown) {
        got.push([level, n]);
        wake?.();
      },
    };
    const until = async (n: number): Promise<void> => {
      while (got.length < n) await new Promise<void>((r) => (wake = r));
    };
    const puller = await zrpcReceiver(loop, "pull", "tcp://127.0.0.1:*", api, { bind: true, onError: (e, name) => errors.push(`${name}: ${String(e)}`) });
    const pusher = await zrpcEmitter(loop, "push", puller.endpoint);
    pusher.emit("nope", 1);
    for (let i = 0; i < 10; i++) pusher.emit("log", "info", i === 9 ? 2 ** 40 : i);
    await until(10);
    assert.deepEqual(got.map((g) => g[1]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 2 ** 40]);
    assert.equal(errors.length, 1);
    await pusher.close();
    await puller.close();

    got.length = 0;
    const pub = await zrpcEmitter(loop, "pub", "tcp://127.0.0.1:*", { bind: true });
    const subs = [await zrpcReceiver(loop, "sub", pub.endpoint, api), await zrpcReceiver(loop, "sub", pub.endpoint, api)];
    // PUB drops events until a subscriber's subscription has arrived: publish until both heard one.
    for (let i = 0; i < 400 && got.length < 2; i++) {
      pub.emit("log", "pub", i);
      await new Promise<void>((r) => loop.timer(5, r));
    }
    assert.ok(got.length >= 2);
    await pub.close();
    for (const s of subs) await s.close();
    assert.equal(openZmqSockets(), 0);
    await done();
  });
});
