/**
 * Logging: JSON lines shaped like pino's, a real pino instance as the app's
 * logger, and the trace id and span id in log lines written during a traced
 * call.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { pino } from "pino";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { registerTransports } from "../../transports/index.js";
import { Logger, embed, type LoggerLike } from "../../app/index.js";
import { close, connect, serve, tracing } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";

test("json lines are shaped like pino's: level number, time in ms, app, name, a child's bindings, msg; levels trace to fatal", () => {
  const loop = new VirtualLoop();
  const lines: string[] = [];
  const log = new Logger({ app: "ping", loop, json: true, level: "trace", write: (l) => lines.push(l) });
  log.child("tilth.app").child({ reqId: 7 }).info("binding to", "drpc+tcp://127.0.0.1:1");
  log.trace("t");
  log.fatal({ code: "ERR_X" }, "down");
  const [a, b, c] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(a, { level: 30, time: loop.wallTime(), app: "ping", name: "tilth.app", reqId: 7, msg: "binding to drpc+tcp://127.0.0.1:1" });
  assert.equal(b!.level, 10);
  assert.deepEqual([c!.level, c!.code, c!.msg], [60, "ERR_X", "down"]);
  assert.equal(Object.keys(a!).at(-1), "msg");
});

test("an app's own pino instance takes every record, with the logger's name and bindings", async () => {
  const lines: Record<string, unknown>[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  const mine: LoggerLike = pino({ level: "trace" }, out);
  const app = await embed({ hello: (n: string) => `hi ${n}` }, { name: "greeter", bind: "drpc+tcp://127.0.0.1:0", log: { sink: mine, level: "debug" } });
  app.container.resolve(Logger).child({ region: "eu" }).warn("custom", 1);
  await app.stop();
  await new Promise((r) => out.end(r));
  const custom = lines.find((l) => l.msg === "custom 1");
  assert.ok(custom, JSON.stringify(lines));
  assert.equal(custom.level, 40);
  assert.equal(custom.app, "greeter");
  assert.equal(custom.name, "tilth.app");
  assert.equal(custom.region, "eu");
  assert.equal(typeof custom.time, "number");
  assert.ok(lines.some((l) => l.name === "tilth.app" && l.level === 30), "the app's own lines went to pino too");
});

test("a log line written during a traced call carries its trace id and span id; one outside a call none", async () => {
  const done = leakCheck();
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  try {
    const loop = registerTransports(new NodeLoop());
    const lines: Record<string, unknown>[] = [];
    const log = new Logger({ app: "svc", loop, json: true, write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) });
    const server = await serve(
      {
        work: async (x: number) => {
          log.info("working on", x);
          await Promise.resolve();
          log.info("still working");
          return x + 1;
        },
      },
      "drpc+tcp://127.0.0.1:0",
      { loop, middleware: [tracing()] },
    );
    const api = await connect<{ work(x: number): number }>(server.urls[0]!, { loop, middleware: [tracing()] });
    assert.equal(await api.work(1), 2);
    log.info("outside");
    const serverSpan = exporter.getFinishedSpans().find((s) => s.kind === 1)!;
    assert.equal(lines.length, 3);
    for (const l of lines.slice(0, 2)) {
      assert.equal(l.trace_id, serverSpan.spanContext().traceId);
      assert.equal(l.span_id, serverSpan.spanContext().spanId);
    }
    assert.equal(lines[2]!.trace_id, undefined);
    await close(api);
    await server.close();
  } finally {
    await provider.shutdown();
    trace.disable();
    context.disable();
  }
  await done();
});
