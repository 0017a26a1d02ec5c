/**
 * Introspection reads parameters from a function's source and never makes
 * one up: commas in default strings, comments and templates do not split
 * parameters, literal defaults are reported, and where the source cannot be
 * read reliably the answer says so instead of guessing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { formatMethods } from "../../cli/call.js";
import { registerTransports } from "../../transports/index.js";
import { bindArguments, exposedMethods, params, parseParams, type MethodInfo } from "../../rpc/api.js";
import { RpcClient, serve } from "../../rpc/index.js";

test("a default string with a comma is one parameter, with its default value", () => {
  const join = (a: string, b: string, sep = ", ") => a + sep + b;
  assert.deepEqual(parseParams(join), { params: ["a", "b", "sep"], rest: false, required: 2, defaults: { sep: ", " } });
});

test("comments, strings, templates and patterns in a parameter list", () => {
  // Written as source text so that the compiler leaves it as it is.
  const f = new Function("return function f(a /* (x, y) */, b = \"(,)\", c = 'it\\'s', d = `p,q`, { e, g } = {}, [h] = [1, 2], ...rest) {}")() as Function;
  assert.deepEqual(parseParams(f), {
    params: ["a", "b", "c", "d", "arg4", "arg5", "rest"],
    rest: true,
    required: 1,
    defaults: { b: "(,)", c: "it's", d: "p,q" },
  });
  const arrow = new Function("return async x => x")() as Function;
  assert.deepEqual(parseParams(arrow), { params: ["x"], rest: false, required: 1 });
  const method = { async *"odd (name)"(n: number, step = 1.5, on = true, none = null) { yield n + step + Number(on) + Number(none); } }["odd (name)"];
  assert.deepEqual(parseParams(method), { params: ["n", "step", "on", "none"], rest: false, required: 1, defaults: { step: 1.5, on: true, none: null } });
  const computed = (k: number) => ({ x: k, y: k === 1 ? 2 : 3 });
  assert.deepEqual(parseParams((a = computed(1), b = { z: 1 }) => [a, b]), { params: ["a", "b"], rest: false, required: 0 }, "non-literal defaults are not reported");
  assert.deepEqual(parseParams((a: number, b: number,) => a + b), { params: ["a", "b"], rest: false, required: 2 }, "a trailing comma");
});

test("a bound or proxied function: parameters unknown, said so; required from its length; any count accepted", () => {
  function add(this: unknown, a: number, b: number) {
    return a + b;
  }
  for (const f of [add.bind(null), new Proxy(add, {})]) {
    const sig = parseParams(f);
    assert.deepEqual(sig.params, []);
    assert.equal(sig.required, 2);
    assert.equal(sig.rest, true);
    assert.match(sig.unknownParams!, /bound or native function/);
    const m: MethodInfo = { name: "add", stream: false, ...sig };
    assert.deepEqual(bindArguments(m, [1, 2, 3], null), [1, 2, 3]);
    assert.match(String(bindArguments(m, [1], null)), /takes at least 2/);
    assert.match(String(bindArguments(m, [], { a: 1, b: 2 })), /parameter names are unknown .*: pass its arguments by position/);
  }
});

test("a source that disagrees with the function's arity is not believed", () => {
  const f = (a: number, b: number) => a + b;
  Object.defineProperty(f, "length", { value: 3 });
  const sig = parseParams(f);
  assert.deepEqual(sig.params, []);
  assert.match(sig.unknownParams!, /the source shows 2 required parameter\(s\) but the function takes 3/);
});

test("minified code: params() declares the names the source lost", () => {
  const minified = new Function("return (e,t,n=\", \")=>e+n+t")() as Function;
  assert.deepEqual(parseParams(minified).params, ["e", "t", "n"], "the source's own names, nothing else");
  const declared = params(["a", "b", "sep"], minified as (...a: unknown[]) => unknown, { sep: ", " });
  assert.deepEqual(parseParams(declared), { params: ["a", "b", "sep"], rest: false, required: 2, defaults: { sep: ", " } });
});

test("tilth inspect over drpc shows defaults and says when parameters are unknown", async () => {
  const loop = registerTransports(new VirtualLoop());
  const api = {
    join: (a: string, b: string, sep = ", ") => a + sep + b,
    bound: function (this: unknown, x: number) {
      return x;
    }.bind(null),
  };
  assert.deepEqual(exposedMethods(api).get("join")?.defaults, { sep: ", " });
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://introspect", { loop });
    const client = new RpcClient("drpc+inproc://introspect", { loop });
    const { methods } = await client.inspect();
    const table = formatMethods("drpc+inproc://introspect", methods);
    assert.match(table, /join\(a, b, sep = ", "\) +call/);
    assert.doesNotMatch(table, /arg3/);
    assert.match(table, /bound\(\?\) +call +\(parameters unknown: a bound or native function has no readable source; at least 1 argument\(s\)\)/);
    assert.equal(await client.call("join", ["x", "y"]), "x, y");
    assert.equal(await client.call("bound", [7, "extra"]), 7);
    await client.close();
    await server.close();
  });
});

test("_zerorpc_inspect lists default values, as zerorpc-python does; tilth inspect reads them back", async () => {
  const loop = registerTransports(new VirtualLoop());
  const api = { join: (a: string, b: string, sep = ", ", times = 1) => (a + sep + b).repeat(times) };
  await loop.run(async () => {
    const server = await serve(api, "zrpc+inproc://introspect", { loop });
    const client = new RpcClient("zrpc+inproc://introspect", { loop });
    const raw = (await client.call("_zerorpc_inspect", [])) as { methods: Record<string, { args: unknown[] }> };
    assert.deepEqual(raw.methods.join!.args, [{ name: "a" }, { name: "b" }, { name: "sep", default: ", " }, { name: "times", default: 1 }]);
    const { methods } = await client.inspect();
    const join = methods.find((m) => m.name === "join")!;
    assert.deepEqual([join.params, join.required, join.defaults], [["a", "b", "sep", "times"], 2, { sep: ", ", times: 1 }]);
    await client.close();
    await server.close();
  });
});
