/**
 * Interop with a ZeroRPC implementation nobody here wrote: npm zerorpc 0.9.8
 * (zerorpc-node on zeromq 5 and the system libzmq), each side in its own
 * process. Its client calls tilth's zrpc server; tilth's client calls its
 * server. The peer's known quirks are tested around, not copied (see
 * docs/zerorpc.md, "Deviations of zerorpc-node").
 *
 * The peer is installed by scripts/setup-interop.mjs (run by `npm test`);
 * when it could not be installed these tests are skipped with the reason.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { openZmqSockets } from "../../adapters/zeromq.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RpcError, clientOf, close, connect, contextual, doc, serve, withOptions, type CallContext, type RemoteError } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { freePort, repoRoot } from "../transports/util.js";

const interopDir = join(repoRoot, "test", "interop");
const peerScript = join(interopDir, "peer.cjs");
const unavailable = (): string | undefined => {
  if (existsSync(join(interopDir, "node_modules", "zerorpc"))) return undefined;
  const why = join(interopDir, ".interop-unavailable");
  return existsSync(why) ? readFileSync(why, "utf8").trim() : "npm zerorpc is not installed: run `node scripts/setup-interop.mjs`";
};
const skip = unavailable();

function peer(args: string[]): ChildProcess {
  return spawn(process.execPath, [peerScript, ...args], { cwd: interopDir, stdio: ["ignore", "pipe", "pipe"] });
}

async function line(p: ChildProcess): Promise<string> {
  let out = "";
  let err = "";
  p.stderr!.on("data", (d) => (err += String(d)));
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    const i = out.indexOf("\n");
    if (i >= 0) return out.slice(0, i);
  }
  throw new Error(`peer exited without output: ${err}`);
}

function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once("exit", () => resolve());
    p.kill("SIGKILL");
  });
}

const HB = 300;

describe("interop: npm zerorpc 0.9.8 client -> tilth zrpc server", { skip }, () => {
  test("plain calls, streams, errors, inspect, ping, values, and a call kept alive by heartbeats past twice the interval", { timeout: 60_000 }, async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    const slowMs = 4 * HB;
    const api = {
      hello: doc("Greets.", (name: string) => `Hello, ${name}`),
      echo: (x: unknown) => x,
      async *count(n: number) {
        for (let i = 0; i < n; i++) yield i;
      },
      fail(msg: string) {
        const e = new Error(msg);
        e.name = "ValueError";
        throw e;
      },
      seen: contextual((ctx: CallContext) => Object.fromEntries(Object.entries(ctx.meta).map(([k, v]) => [k, v instanceof Uint8Array ? `bytes:${Buffer.from(v).toString("hex")}` : v]))),
      coded: () => {
        throw new RpcError("ERR_DENIED", "denied");
      },
      slow: contextual(async (ctx: CallContext, ms: number) => {
        await new Promise<void>((resolve, reject) => {
          const t = loop.timer(ms, resolve);
          ctx.signal.addEventListener("abort", () => {
            t.cancel();
            reject(ctx.signal.reason);
          });
        });
        return ms;
      }),
    };
    const server = await serve(api, `zrpc+tcp://127.0.0.1:${await freePort()}`, { loop, heartbeatMs: HB, name: "Tilth" });
    const p = peer(["client", server.urls[0]!.replace(/^zrpc\+/, ""), String(HB), String(slowMs)]);
    try {
      const out = JSON.parse(await line(p)) as Record<string, { ok?: unknown; stream?: unknown[]; error?: { name: string; message: string } }> & { slowMs: number };
      assert.deepEqual(out.hello, { ok: "Hello, Wire" });
      assert.deepEqual(out.count, { stream: [0, 1, 2, 3, 4] });
      // An empty stream is STREAM_DONE at once (not zerorpc-node's own OK [nil]).
      assert.deepEqual(out.countEmpty, { stream: [] });
      assert.equal(out.fail!.error!.name, "ValueError");
      assert.equal(out.fail!.error!.message, "bad");
      // Unknown method: tilth answers ERR NameError (zerorpc-node's own server would not answer).
      assert.equal(out.unknown!.error!.name, "NameError");
      const inspect = out.inspect!.ok as { name: string; methods: Record<string, { args: { name: string }[]; doc: string | null }> };
      assert.equal(inspect.name, "Tilth");
      assert.deepEqual(inspect.methods.hello, { args: [{ name: "name" }], doc: "Greets." });
      assert.deepEqual(out.ping, { ok: ["pong", "Tilth"] });
      assert.deepEqual(out.echo, { ok: { a: [1, 2.5, "x", null, true] } });
      assert.deepEqual(out.big, { ok: 2 ** 40 });
      // Extra header keys from a ZeroRPC client are the call's metadata; a request without them has none.
      assert.deepEqual(out.meta, { ok: { tenant: "acme", blob: "bytes:0001ff" } });
      assert.deepEqual(out.metaNone, { ok: {} });
      // An error with a code: its ERR header carries error_code, which the peer ignores.
      assert.deepEqual([out.coded!.error!.name, out.coded!.error!.message], ["RpcError", "denied"]);
      assert.deepEqual(out.slow, { ok: slowMs }, "a call longer than twice the heartbeat interval completes");
      assert.ok(out.slowMs >= slowMs && slowMs > 2 * HB);
    } finally {
      await stop(p);
      await server.close({ graceMs: 0 });
    }
    assert.equal(openZmqSockets(), 0);
    await done();
  });
});

describe("interop: tilth zrpc client -> npm zerorpc 0.9.8 server", { skip }, () => {
  test("call metadata as extra header keys: the peer receives them as sent (strings and bytes) and answers every call", { timeout: 60_000 }, async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const p = peer(["server", endpoint, String(HB)]);
    try {
      assert.equal(await line(p), "ready");
      const c = await connect<{ hello(n: string): string; count(n: number): AsyncGenerator<number>; headers(): Record<string, string> }>(`zrpc+${endpoint}`, {
        loop,
        heartbeatMs: HB,
        meta: { tenant: "acme", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      });
      const m = withOptions(c, { meta: { auth: "t0k3n", blob: new Uint8Array([0, 1, 2]) } });
      assert.equal(await m.hello("Meta"), "Hello, Meta");
      const got: number[] = [];
      for await (const x of m.count(3)) got.push(x);
      assert.deepEqual(got, [0, 1, 2]);
      assert.equal(await c.hello("Plain"), "Hello, Plain");
      // What the peer's server saw in the request's header: the client's defaults and the call's own, bytes as bin.
      assert.deepEqual(await m.headers(), { tenant: "acme", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", auth: "t0k3n", blob: "bytes:000102" });
      assert.deepEqual(await c.headers(), { tenant: "acme", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
      const plain = await connect<{ headers(): Record<string, string> }>(`zrpc+${endpoint}`, { loop, heartbeatMs: HB });
      assert.deepEqual(await plain.headers(), {}, "no metadata: no extra keys");
      await close(plain);
      await close(c);
    } finally {
      await stop(p);
    }
    await done();
  });

  test("plain calls, streams, errors, inspect, heartbeats past twice the interval; the peer's quirks", { timeout: 60_000 }, async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const p = peer(["server", endpoint, String(HB)]);
    try {
      assert.equal(await line(p), "ready");
      type PeerApi = {
        hello(n: string): string;
        add(a: number, b: number): number;
        echo(x: unknown): unknown;
        count(n: number): AsyncGenerator<number>;
        empty(): void;
        fail(m: string): void;
        slow(ms: number): number;
        no_such_method(): void;
      };
      const c = await connect<PeerApi>(`zrpc+${endpoint}`, { loop, heartbeatMs: HB });
      assert.equal(await c.hello("Wire"), "Hello, Wire");
      assert.equal(await c.add(2, 3), 5);
      const xs: unknown[] = [];
      for await (const x of c.count(150)) xs.push(x);
      assert.deepEqual(xs, Array.from({ length: 150 }, (_, i) => i), "a stream longer than one credit window");
      await assert.rejects(c.fail("bad"), (e: RemoteError) => e.remoteName === "ValueError" && e.message === "bad" && isTilthError(e, "ERR_REMOTE") && !!e.remoteStack);
      // Quirk: an empty stream ends with OK [nil], not STREAM_DONE: it reads as a plain result.
      assert.equal(await c.empty(), undefined);
      // Quirk: no answer at all for an unknown method: the call meets its time limit.
      await assert.rejects(withOptions(c, { timeout: 800 }).no_such_method(), (e) => isTilthError(e, "ERR_TIMEOUT"));
      // Quirk: integers beyond 32 bits come back as float64 (exact up to 2**53, rounded beyond).
      assert.equal(await c.echo(2 ** 40), 2 ** 40);
      assert.equal(await c.echo(2n ** 60n + 1n), 2 ** 60);
      assert.deepEqual(await c.echo({ a: [1, 2.5, "x", null, true] }), { a: [1, 2.5, "x", null, true] });
      const inspect = (await clientOf(c).call("_zerorpc_inspect")) as { methods: Record<string, { args: { name: string }[] }> };
      assert.deepEqual(inspect.methods.add!.args, [{ name: "a" }, { name: "b" }]);
      // what `tilth inspect` shows for a ZeroRPC server nobody here wrote
      const listed = await clientOf(c).inspect();
      assert.deepEqual(listed.methods.find((m) => m.name === "add")?.params, ["a", "b"]);
      assert.deepEqual(await clientOf(c).call("_zerorpc_ping"), ["pong", ""]);
      // Heartbeats both ways keep a call alive well past twice the interval.
      assert.equal(await c.slow(4 * HB), 4 * HB);
      await close(c);
    } finally {
      await stop(p);
    }
    assert.equal(openZmqSockets(), 0);
    await done();
  });
});
