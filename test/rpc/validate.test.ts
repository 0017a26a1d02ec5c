/**
 * Arguments and results declared with zod schemas (`validated`): checked by
 * the server before middleware and handler (ERR_BAD_ARGUMENTS with the path
 * and message of each problem, in the message and in `data.issues`), parsed
 * values handed to the handler, ERR_BAD_RESULT for a result that does not
 * fit, the JSON Schemas in introspection over drpc and zrpc, types a typed
 * client infers from the schemas, and the call counted under its code.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { VirtualLoop } from "../../adapters/virtual.js";
import { Metrics } from "../../app/Metrics.js";
import { rpcServerStats } from "../../app/tasks/RpcServerTask.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient, close, connect, serve, validated, type Remote } from "../../rpc/index.js";

let ran = 0;
const api = {
  add: validated({ params: [z.number(), z.number()], result: z.number() }, (a, b) => {
    ran++;
    return a + b;
  }),
  greet: validated({ params: [z.object({ name: z.string().min(1), tags: z.array(z.string()) }), z.number().int().default(1)] }, async (who, times) => `hi ${who.name} `.repeat(times).trim()),
  half: validated({ params: [z.number()], result: z.number().int() }, async (n) => n / 2),
  plain: (x: unknown) => x,
};

test("bad arguments: ERR_BAD_ARGUMENTS with each problem's path and message; neither middleware nor handler runs", async () => {
  const loop = registerTransports(new VirtualLoop());
  const metrics = new Metrics();
  let hooks = 0;
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://validate", { loop, stats: rpcServerStats(metrics, "t"), middleware: [{ before: () => void hooks++ }] });
    const calc = await connect<typeof api>("drpc+inproc://validate", { loop });
    ran = 0;
    assert.equal(await calc.add(2, 3), 5);
    assert.equal(ran, 1);
    assert.equal(hooks, 1);
    const bad = (calc.add as unknown as (...a: unknown[]) => Promise<number>)("2", 3);
    await assert.rejects(bad, (e) => {
      assert.ok(isTilthError(e, "ERR_BAD_ARGUMENTS"), String(e));
      assert.equal((e as Error).message, "add(): argument 0: Invalid input: expected number, received string");
      assert.deepEqual((e as { data?: unknown }).data, { issues: [{ path: [0], message: "Invalid input: expected number, received string" }] });
      return true;
    });
    assert.equal(ran, 1, "the handler did not run");
    assert.equal(hooks, 1, "nor did the before hook");
    await assert.rejects((calc.greet as unknown as (...a: unknown[]) => Promise<string>)({ name: "", tags: ["a", 3] }), (e) => {
      assert.ok(isTilthError(e, "ERR_BAD_ARGUMENTS"));
      assert.match((e as Error).message, /argument 0\.name: Too small/);
      assert.match((e as Error).message, /argument 0\.tags\[1\]: Invalid input: expected string, received number/);
      assert.deepEqual((e as unknown as { data: { issues: { path: unknown[] }[] } }).data.issues.map((i) => i.path), [[0, "name"], [0, "tags", 1]]);
      return true;
    });
    await assert.rejects((calc.add as unknown as (...a: unknown[]) => Promise<number>)(1, 2, 3), (e) => isTilthError(e, "ERR_BAD_ARGUMENTS"));
    // Parsed values: the default of an optional parameter is applied.
    assert.equal(await calc.greet({ name: "ann", tags: [] }), "hi ann");
    assert.equal(await calc.greet({ name: "bo", tags: ["x"] }, 2), "hi bo hi bo");
    await assert.rejects(calc.half(3), (e) => isTilthError(e, "ERR_BAD_RESULT") && /result: Invalid input: expected int/.test((e as Error).message));
    assert.equal(await calc.half(4), 2);
    const d = "tilth_rpc_server_call_duration_seconds_count";
    assert.equal(metrics.value(d, { task: "t", method: "add", code: "ERR_BAD_ARGUMENTS" }), 2);
    assert.equal(metrics.value(d, { task: "t", method: "half", code: "ERR_BAD_RESULT" }), 1);
    assert.equal(metrics.value(d, { task: "t", method: "add", code: "ok" }), 1);
    await close(calc);
    await server.close();
  });
});

test("the same check over zrpc and drpc+local: ERR_BAD_ARGUMENTS with its code and the problem's path and message; the handler does not run", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve(api, ["zrpc+inproc://validate-zl", "drpc+local://validate-zl"], { loop });
    for (const url of server.urls) {
      const calc = await connect<typeof api>(url, { loop });
      ran = 0;
      await assert.rejects((calc.add as unknown as (...a: unknown[]) => Promise<number>)("2", 3), (e) => {
        assert.ok(isTilthError(e, "ERR_BAD_ARGUMENTS"), `${url}: ${String(e)}`);
        assert.equal((e as Error).message, "add(): argument 0: Invalid input: expected number, received string");
        return true;
      });
      assert.equal(ran, 0, url);
      assert.equal(await calc.add(2, 3), 5);
      await close(calc);
    }
    await server.close();
  });
});

test("introspection reports each parameter's and the result's JSON Schema, over drpc and in _zerorpc_inspect", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve(api, ["drpc+inproc://validate-d", "zrpc+inproc://validate-z"], { loop });
    for (const url of ["drpc+inproc://validate-d", "zrpc+inproc://validate-z"]) {
      const client = new RpcClient(url, { loop });
      const { methods } = await client.inspect();
      const add = methods.find((m) => m.name === "add")!;
      assert.deepEqual(add.schema, { params: [{ type: "number" }, { type: "number" }], result: { type: "number" } }, url);
      const greet = methods.find((m) => m.name === "greet")!;
      assert.equal((greet.schema!.params[0] as { type: string }).type, "object");
      assert.deepEqual((greet.schema!.params[0] as { required: string[] }).required, ["name", "tags"]);
      if (url.startsWith("drpc")) assert.equal(greet.required, 1, "the parameter with a default may be left out");
      assert.equal(methods.find((m) => m.name === "plain")!.schema, undefined);
      await client.close();
    }
    await server.close();
  });
});

test("types: a typed client takes the schemas' input types and returns their output types", () => {
  type Calc = Remote<typeof api>;
  const check = (calc: Calc): void => {
    void calc.add(1, 2);
    // @ts-expect-error a string where the schema says number
    void calc.add("2", 3);
    // @ts-expect-error too few arguments
    void calc.add(1);
    void calc.greet({ name: "a", tags: [] });
    void calc.greet({ name: "a", tags: [] }, 3);
    // @ts-expect-error tags is string[]
    void calc.greet({ name: "a", tags: [1] });
  };
  const result = (calc: Calc): Promise<number> => calc.add(1, 2);
  // @ts-expect-error the result is a number, not a string
  const wrong = (calc: Calc): Promise<string> => calc.add(1, 2);
  assert.equal(typeof check, "function");
  assert.equal(typeof result, "function");
  assert.equal(typeof wrong, "function");
});

test("tilth/rpc does not load zod: no compiled module of core, adapters, transports or rpc imports it at run time (the schemas a user passes bring their own methods; app settings use it)", async () => {
  const { readdirSync, readFileSync, statSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { fileURLToPath } = await import("node:url");
  const dist = join(fileURLToPath(new URL(".", import.meta.url)), "..", "..");
  const runtimeZod = /(?:^|\n)\s*import\s[^;]*?from\s*["']zod(?:\/[^"']*)?["']|import\(\s*["']zod|require\(\s*["']zod/;
  const offenders: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".js") && runtimeZod.test(readFileSync(p, "utf8"))) offenders.push(p.slice(dist.length + 1));
    }
  };
  for (const layer of ["core", "adapters", "transports", "rpc"]) walk(join(dist, layer));
  assert.deepEqual(offenders, []);
  // The check finds such an import where there is one (app/Settings validates settings files with zod).
  assert.ok(runtimeZod.test(readFileSync(join(dist, "app", "Settings.js"), "utf8")));
});
