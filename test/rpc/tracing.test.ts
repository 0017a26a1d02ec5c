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
import { leakCheck } from "../helpers/leaks.js";

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
