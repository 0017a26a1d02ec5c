/**
 * Tracing with OpenTelemetry: app A calls B, which calls C (three servers in
 * one process, over tcp), traced by `tracing()` on every server and client;
 * the SDK's in-memory exporter gets one trace whose spans have the right
 * parents and attributes. Also: a failing call's span, a stream's item count,
 * the same over zrpc, and `tracing()` without the API.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { NodeLoop } from "../../adapters/node.js";
import { registerTransports } from "../../transports/index.js";
import { RpcError, close, connect, serve, tracing, type CallContext, contextual } from "../../rpc/index.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { leakCheck } from "../helpers/leaks.js";
import { App } from "../../app/App.js";
import { Settings } from "../../app/Settings.js";
import { startApp, type AppHandle } from "../../app/runtime.js";

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const contextManager = new AsyncLocalStorageContextManager();

before(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
});
after(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

const kindName = (s: ReadableSpan): string => (s.kind === 1 ? "server" : s.kind === 2 ? "client" : String(s.kind));
const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

for (const proto of ["drpc", "zrpc"] as const) {
  test(`${proto}: A calls B calls C: one trace, each server span the child of its client span, each client span the child of the server span whose handler made it`, async () => {
    const done = leakCheck();
    exporter.reset();
    const loop = registerTransports(new NodeLoop());
    const mw = () => ({ loop, middleware: [tracing()] });
    const c = await serve(
      {
        leaf: (x: number) => x * 2,
        fail: () => {
          throw new RpcError("ERR_NOPE", "nope");
        },
        *count(n: number) {
          for (let i = 0; i < n; i++) yield i;
        },
      },
      `${proto}+tcp://127.0.0.1:0`,
      mw(),
    );
    const toC = await connect<{ leaf(x: number): number; fail(): void; count(n: number): AsyncIterable<number> }>(c.urls[0]!, mw());
    const b = await serve({ mid: async (x: number) => (await toC.leaf(x)) + 1 }, `${proto}+tcp://127.0.0.1:0`, mw());
    const toB = await connect<{ mid(x: number): number }>(b.urls[0]!, mw());
    const a = await serve({ top: contextual(async (_ctx: CallContext, x: number) => (await toB.mid(x)) + 100) }, `${proto}+tcp://127.0.0.1:0`, mw());
    const toA = await connect<{ top(x: number): number }>(a.urls[0]!, mw());

    assert.equal(await toA.top(5), 111);
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.length, 6, spans.map((s) => `${kindName(s)} ${s.name}`).join(", "));
    const one = (name: string, kind: string): ReadableSpan => {
      const s = spans.filter((x) => x.name === name && kindName(x) === kind);
      assert.equal(s.length, 1, `${kind} ${name}`);
      return s[0]!;
    };
    const [cTop, sTop, cMid, sMid, cLeaf, sLeaf] = [one("top", "client"), one("top", "server"), one("mid", "client"), one("mid", "server"), one("leaf", "client"), one("leaf", "server")];
    assert.equal(new Set(spans.map((s) => s.spanContext().traceId)).size, 1, "one trace");
    assert.equal(parentOf(cTop), undefined, "the first client span is the root");
    assert.equal(parentOf(sTop), cTop.spanContext().spanId);
    assert.equal(parentOf(cMid), sTop.spanContext().spanId);
    assert.equal(parentOf(sMid), cMid.spanContext().spanId);
    assert.equal(parentOf(cLeaf), sMid.spanContext().spanId);
    assert.equal(parentOf(sLeaf), cLeaf.spanContext().spanId);
    assert.equal(sLeaf.attributes["rpc.system"], proto);
    assert.equal(sLeaf.attributes["rpc.method"], "leaf");
    assert.equal(sLeaf.attributes["rpc.tilth.transport"], proto === "zrpc" ? "zmq+tcp" : "tcp");
    // Every span names its method, protocol, transport and peer.
    for (const s of spans) {
      assert.equal(s.attributes["rpc.system"], proto, s.name);
      assert.equal(s.attributes["rpc.method"], s.name);
      assert.equal(s.attributes["rpc.tilth.transport"], proto === "zrpc" ? "zmq+tcp" : "tcp", s.name);
      assert.match(String(s.attributes["network.peer.address"]), /^(zmq\+)?tcp:\/\/127\.0\.0\.1:\d+(#[0-9a-f]+)?$/, `${kindName(s)} ${s.name}`);
      assert.equal(s.attributes["error.type"], undefined);
      assert.equal(s.attributes["rpc.tilth.stream_items"], undefined, "not a stream");
    }
    assert.equal(cLeaf.attributes["network.peer.address"], c.urls[0]!.replace(/^(drpc|zrpc)\+/, proto === "zrpc" ? "zmq+" : ""), "the client's peer is the server's URL");

    exporter.reset();
    await assert.rejects(toC.fail(), (e) => (e as { code?: string }).code === "ERR_NOPE");
    const failed = exporter.getFinishedSpans();
    assert.equal(failed.length, 2);
    for (const s of failed) {
      assert.equal(s.status.code, 2, "status error");
      assert.equal(s.status.message, "nope");
      assert.equal(s.attributes["error.type"], "ERR_NOPE", kindName(s));
    }

    exporter.reset();
    const got: number[] = [];
    for await (const x of toC.count(4)) got.push(x);
    assert.deepEqual(got, [0, 1, 2, 3]);
    const streamed = exporter.getFinishedSpans();
    assert.equal(streamed.length, 2);
    for (const s of streamed) assert.equal(s.attributes["rpc.tilth.stream_items"], 4, kindName(s));

    // A client middleware after tracing() that refuses the call: the client span still ends, with its code; nothing reaches C.
    exporter.reset();
    const refusing = await connect<{ leaf(x: number): number }>(c.urls[0]!, { loop, middleware: [tracing(), { before: () => Promise.reject(new RpcError("ERR_NO_TOKEN", "no token")) }] });
    await assert.rejects(refusing.leaf(1), (e) => (e as { code?: string }).code === "ERR_NO_TOKEN");
    const refused = exporter.getFinishedSpans();
    assert.deepEqual(refused.map((s) => [kindName(s), s.name, s.attributes["error.type"]]), [["client", "leaf", "ERR_NO_TOKEN"]]);
    await close(refusing);

    for (const p of [toA, toB, toC]) await close(p);
    for (const s of [a, b, c]) await s.close();
    await done();
  });
}

test("three apps of one settings file, A uses B, B uses C, each started with tracing() on its server and its clients: a call to A gives one trace through B and C", async () => {
  const done = leakCheck();
  exporter.reset();
  const loop = registerTransports(new NodeLoop());
  class C extends App {
    override api = { leaf: (x: number) => x * 2 };
  }
  class B extends App {
    override api = { mid: async (x: number) => (await this.ctx.api<{ leaf(x: number): number }>("c").leaf(x)) + 1 };
  }
  class A extends App {
    override api = { top: async (x: number) => (await this.ctx.api<{ mid(x: number): number }>("b").mid(x)) + 100 };
  }
  const settings = Settings.from({
    apps: {
      c: { class: C, bind: `drpc+ipc://${join(tmpdir(), `tilth-trace-${process.pid}.sock`)}` },
      b: { class: B, bind: "zrpc+tcp://127.0.0.1:0", uses: ["c"] },
      a: { class: A, bind: "drpc+tcp://127.0.0.1:0", uses: ["b"] },
    },
  });
  const traced = { loop, server: { middleware: [tracing()] }, client: { middleware: [tracing()] }, log: { write: () => {} } };
  const handles: AppHandle[] = [];
  try {
    // Port 0: each app's bound URL becomes the remote URL its callers use.
    for (const name of ["c", "b", "a"]) {
      const h = await startApp(name, settings, traced);
      handles.push(h);
      settings.data.apps[name]!.remote = h.urls[0]!;
    }
    const toA = await connect<{ top(x: number): number }>(handles[2]!.urls[0]!, { loop, middleware: [tracing()] });
    assert.equal(await toA.top(5), 111);
    await close(toA);
  } finally {
    for (const h of handles.reverse()) await h.stop();
  }
  const spans = exporter.getFinishedSpans();
  const one = (name: string, kind: string): ReadableSpan => {
    const s = spans.filter((x) => x.name === name && kindName(x) === kind);
    assert.equal(s.length, 1, `${kind} ${name}: ${spans.map((x) => `${kindName(x)} ${x.name}`).join(", ")}`);
    return s[0]!;
  };
  const chain = [one("top", "client"), one("top", "server"), one("mid", "client"), one("mid", "server"), one("leaf", "client"), one("leaf", "server")];
  assert.equal(new Set(chain.map((s) => s.spanContext().traceId)).size, 1, "one trace");
  assert.equal(parentOf(chain[0]!), undefined);
  for (let i = 1; i < chain.length; i++) assert.equal(parentOf(chain[i]!), chain[i - 1]!.spanContext().spanId, `${kindName(chain[i]!)} ${chain[i]!.name}`);
  assert.deepEqual(chain.map((s) => s.attributes["rpc.system"]), ["drpc", "drpc", "zrpc", "zrpc", "drpc", "drpc"], "A and C on drpc, B on zrpc");
  assert.deepEqual(chain.map((s) => s.attributes["rpc.tilth.transport"]), ["tcp", "tcp", "zmq+tcp", "zmq+tcp", "ipc", "ipc"]);
  await done();
});

test("tracing() without the OpenTelemetry API: a no-op, or ERR_MISSING_PACKAGE when required", async () => {
  // The API is installed here: a loader that cannot find it stands in for an app without it.
  const missing = (): never => {
    const e = new Error("Cannot find module '@opentelemetry/api'") as Error & { code: string };
    e.code = "MODULE_NOT_FOUND";
    throw e;
  };
  assert.deepEqual(tracing({ load: missing }), {}, "no hooks: calls run as without it");
  assert.throws(() => tracing({ load: missing, required: true }), (e) => (e as { code?: string }).code === "ERR_MISSING_PACKAGE" && /npm install @opentelemetry\/api/.test((e as Error).message));
  assert.deepEqual(Object.keys(tracing()).sort(), ["after", "around", "before", "error"]);
});
