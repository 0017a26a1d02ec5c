/**
 * Bad input reaches one connection only: it gets a protocol error and ends,
 * and the server goes on serving everyone else.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Packr } from "msgpackr";
import { NodeLoop } from "../../adapters/node.js";
import type { Message } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";
import { RemoteError, close, connect, serve } from "../../rpc/index.js";
import { T, decode, encode } from "../../rpc/drpc/codec.js";
import { leakCheck } from "../helpers/leaks.js";
import { newCounters, testApi, until } from "./fixtures.js";

type API = ReturnType<typeof testApi>;
const hello = encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }]);
const raw = new Packr({ useRecords: false });

const cases: { name: string; frames: (Uint8Array | Message)[] }[] = [
  { name: "garbage bytes", frames: [hello, new Uint8Array([0xc1, 0xff, 0x00, 0x13, 0x37])] },
  { name: "garbage instead of HELLO", frames: [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])] },
  { name: "a msgpack value of the wrong shape", frames: [hello, raw.pack({ call: "ping" })] },
  { name: "a CALL with fields of the wrong type", frames: [hello, raw.pack([T.CALL, "one", 42, "args", null, null, 0])] },
  { name: "an unknown message type", frames: [hello, raw.pack([99, 1, "x"])] },
  { name: "a message a client must not send", frames: [hello, raw.pack([T.RESULT, 1, "x"])] },
  { name: "a second HELLO", frames: [hello, hello] },
  { name: "a message of two frames", frames: [hello, [encode([T.PING]), encode([T.PING])]] },
  {
    name: "a call id reused while in flight",
    frames: [hello, encode([T.CALL, 7, "hold", [], null, null, 0]), encode([T.CALL, 7, "hold", [], null, null, 0])],
  },
];

for (const c of cases) {
  test(`bad input: ${c.name} ends that connection with ERR_PROTOCOL; others are served`, async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    const counters = newCounters();
    const server = await serve(testApi(loop, counters), "drpc+tcp://127.0.0.1:0", { loop });
    const good = await connect<API>(server.urls[0]!, { loop });
    const inFlight = good.hold(); // a call of another client, in flight throughout
    const bad = await loop.connect(server.urls[0]!.replace("drpc+", ""));
    const got: unknown[] = [];
    bad.start({ message: (m) => got.push(decode(m[0]!)), end() {} });
    for (const f of c.frames) bad.send(f instanceof Uint8Array ? [f] : f);
    const end = await bad.closed;
    assert.equal(end.by, "peer");
    const last = got.at(-1) as [number, number, { code: string }];
    assert.equal(last[0], T.ERROR);
    assert.equal(last[1], 0, "a connection-level error");
    assert.equal(last[2].code, "ERR_PROTOCOL");
    // The server is fine: the other client's call completes, new calls work.
    assert.equal(await good.ping(), "pong");
    await until(loop, () => counters.entered >= 1);
    counters.gate.set();
    assert.equal(await inFlight, "released");
    const again = await connect<API>(server.urls[0]!, { loop });
    assert.equal(await again.add(1, 1), 2);
    await close(again);
    await close(good);
    await server.close();
    await done();
  });
}

test("bad input: a handler that throws a non-Error value answers ERR_NON_ERROR; the server goes on", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ bad: () => Promise.reject(undefined), ok: () => "ok" }, "drpc+tcp://127.0.0.1:0", { loop });
  const api = await connect<{ bad(): void; ok(): string }>(server.urls[0]!, { loop });
  await assert.rejects(api.bad(), (e) => (e as { code?: string }).code === "ERR_NON_ERROR");
  assert.equal(await api.ok(), "ok");
  await close(api);
  await server.close();
  await done();
});

test("bad input: a result that cannot be encoded (a cycle) answers ERR_VALUE_LIMIT instead", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const cyclic = (): unknown => {
    const o: Record<string, unknown> = {};
    o.self = o;
    return o;
  };
  const server = await serve({ cyclic, ok: () => "ok" }, "drpc+tcp://127.0.0.1:0", { loop });
  const api = await connect<{ cyclic(): unknown; ok(): string }>(server.urls[0]!, { loop });
  await assert.rejects(api.cyclic(), (e) => e instanceof RemoteError && e.code === "ERR_VALUE_LIMIT" && e.message.length < 300);
  assert.equal(await api.ok(), "ok");
  await close(api);
  await server.close();
  await done();
});
