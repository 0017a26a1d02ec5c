/**
 * float64(): a whole number a ZeroRPC peer sees as a float (a Python peer
 * gets 3.0, not 3), anywhere in the arguments or results.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient, float64, serve } from "../../rpc/index.js";
import { decodeEvent, encodeEvent } from "../../rpc/zerorpc/codec.js";

const F64_3 = "cb4008000000000000"; // msgpack float64 3.0
const header = { message_id: "id-1", v: 3 };

test("a Float64 is written as msgpack float64, a plain whole number as an integer", () => {
  const hex = (args: unknown): string => Buffer.from(encodeEvent(header, "m", args)[1]!).toString("hex");
  assert.ok(hex([float64(3)]).endsWith(`91${F64_3}`), hex([float64(3)]));
  assert.ok(hex([3]).endsWith("9103"), "3 stays the integer 3");
  const nested = hex([1, float64(3), { x: float64(0.5), y: [float64(-2)] }, "3"]);
  assert.ok(nested.includes(F64_3));
  assert.ok(nested.includes("cb3fe0000000000000"), "0.5");
  assert.ok(nested.includes("cbc000000000000000"), "-2.0");
  const back = decodeEvent(encodeEvent(header, "m", [1, float64(3), { x: float64(0.5), y: [float64(-2)] }, "3"]));
  assert.deepEqual(back.args, [1, 3, { x: 0.5, y: [-2] }, "3"], "a peer reads the numbers");
});

test("over zrpc, a call's Float64 arguments and results arrive as numbers", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const seen: unknown[] = [];
    const server = await serve({ scale: (x: number) => (seen.push(x), float64(x * 2)) }, "zrpc+inproc://f64", { loop });
    const client = new RpcClient("zrpc+inproc://f64", { loop });
    assert.equal(await client.call("scale", [float64(3)]), 6);
    assert.deepEqual(seen, [3]);
    assert.equal(typeof seen[0], "number");
    await client.close();
    await server.close();
  });
});

test("float64 in JSON and arithmetic is its number", () => {
  const f = float64(2);
  assert.equal(JSON.stringify({ f }), '{"f":2}');
  assert.equal(Number(f) + 1, 3);
});
