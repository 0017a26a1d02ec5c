/**
 * examples/gateway on Node (a drpc+ws client in place of the page): its two
 * sources, a ZeroMQ PUB socket and the events of a ZeroRPC publisher (tilth's
 * own, and one shaped as zerorpc-python's Publisher sends them); the bounded
 * per-subscription queue (drop oldest, counted) for ZeroRPC events; and the
 * Express variant (page and routes served by Express, the RPC upgrade on
 * /rpc). Needs the optional zeromq package.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Packr } from "msgpackr";
import { NodeLoop } from "../../adapters/node.js";
import { ZmqSocket } from "../../adapters/zeromq.js";
import type { Connection, Listener } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { close, connect, zrpcEmitter, type Remote, type ZrpcEmitter } from "../../rpc/index.js";
import { registerTransports } from "../../transports/index.js";
import { startExpressGateway } from "../../examples/gateway/express.js";
import { startGateway, type Message, type RunningGateway } from "../../examples/gateway/gateway.js";
import { httpGet } from "../helpers/http.js";
import { leakCheck } from "../helpers/leaks.js";

let zmqOk = true;
try {
  await import("zeromq");
} catch {
  zmqOk = false;
}
const skip = zmqOk ? false : "needs the optional zeromq package (npm install zeromq)";

interface GatewayApi {
  topics(): Promise<string[]>;
  time(): Promise<number>;
  subscribe(prefix: string): AsyncGenerator<Message>;
}

const rpcUrl = (gw: RunningGateway): string => `drpc+ws://127.0.0.1:${new URL(gw.url).port}/rpc`;

/** Wait (real time, 5 ms steps: real sockets) until `cond` holds; `poke` runs before each check (publishing until a SUB socket has joined). */
async function until(loop: NodeLoop, what: string, cond: () => boolean, poke?: () => void, steps = 1000): Promise<void> {
  for (let i = 0; i < steps; i++) {
    poke?.();
    if (cond()) return;
    await sleep(loop, 5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

/** Read a stream in the background into `got`. */
function collect(stream: AsyncIterable<Message>, got: Message[]): Promise<void> {
  return (async () => {
    for await (const m of stream) got.push(m);
  })().catch(() => {});
}

async function zmqPub(loop: NodeLoop): Promise<{ listener: Listener; pub: Connection }> {
  const listener = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "pub" });
  const pub: Connection = await new Promise((r) => listener.start(r));
  pub.start({ message() {}, end() {} });
  return { listener, pub };
}

test("the gateway forwards a ZeroMQ PUB socket and a ZeroRPC publisher's events (the names it is given) as topics", { skip, timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const { listener, pub } = await zmqPub(loop);
  const events: ZrpcEmitter = await zrpcEmitter(loop, "pub", "zrpc+tcp://127.0.0.1:*", { bind: true });
  const gw = await startGateway(0, { loop, zmqPub: listener.url, zrpc: { url: events.endpoint, events: ["price", "alert"] } });
  const api = await connect<GatewayApi>(rpcUrl(gw), { loop, timeout: 5000 });
  const zrpcGot: Message[] = [];
  const allGot: Message[] = [];
  const zrpcStream = api.subscribe("zrpc:");
  const allStream = api.subscribe("");
  const reading = [collect(zrpcStream, zrpcGot), collect(allStream, allGot)];
  await until(loop, "two subscriptions", () => gw.gateway.activeStreams === 2);
  // Both SUB sockets join a moment after they connect: publish until something of each source went through.
  await until(loop, "a ZeroRPC event through", () => zrpcGot.length > 0, () => events.emit("alert", "warm-up"));
  await until(loop, "a ZeroMQ message through", () => allGot.some((m) => m.topic === "prices"), () => pub.send([Buffer.from("prices"), Buffer.from("warm-up")]));
  // Warm-ups still in flight may land later: the checks below leave them out.
  const real = (ms: Message[]): Message[] => ms.filter((m) => m.text !== "warm-up");

  events.emit("price", "EURUSD", 1.0842);
  events.emit("ignored", "not asked for");
  events.emit("alert", "halt");
  events.emit("price", { pair: "GBPUSD", bid: 2n ** 60n, raw: new Uint8Array(3) });
  pub.send([Buffer.from("prices"), Buffer.from("USDJPY 151.2")]);
  await until(loop, "the events", () => real(zrpcGot).length === 3 && real(allGot).length === 4);
  assert.deepEqual(
    real(zrpcGot).map((m) => [m.topic, m.text]),
    [
      ["zrpc:price", '["EURUSD",1.0842]'],
      ["zrpc:alert", "halt"],
      ["zrpc:price", `[{"pair":"GBPUSD","bid":"${2n ** 60n}","raw":"<3 bytes>"}]`],
    ],
  );
  assert.ok(allGot.some((m) => m.topic === "prices" && m.text === "USDJPY 151.2"), "the ZeroMQ message reached the subscription to every topic");
  assert.equal(real(allGot).filter((m) => m.topic.startsWith("zrpc:")).length, 3, "the ZeroRPC events too");
  assert.deepEqual(await api.topics(), ["prices", "zrpc:alert", "zrpc:price"], "an event not asked for is no topic");
  assert.equal(gw.gateway.zrpcErrors, 0);

  zrpcStream.cancel();
  allStream.cancel();
  await Promise.all(reading);
  await until(loop, "the generators to stop", () => gw.gateway.activeStreams === 0);
  await close(api);
  await gw.stop();
  await events.close();
  await pub.close();
  await listener.close();
  await done();
});

test("the ZeroRPC source alone, from a publisher shaped as zerorpc-python's ([payload] frames, a bin message id)", { skip, timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const raw = ZmqSocket.open(loop, "pub");
  const endpoint = await raw.bind("tcp://127.0.0.1:*");
  const gw = await startGateway(0, { loop, zrpc: { url: endpoint, events: ["hello"] } });
  const api = await connect<GatewayApi>(rpcUrl(gw), { loop, timeout: 5000 });
  const got: Message[] = [];
  const stream = api.subscribe("zrpc:hello");
  const reading = collect(stream, got);
  const packr = new Packr({ useRecords: false });
  let n = 0;
  const pyEvent = (name: string, args: unknown[]): Buffer =>
    packr.pack([{ message_id: Buffer.from(`${(n++).toString(16).padStart(8, "0")}ef414e9ab81a86519b9d6c87`), v: 3 }, name, args]);
  await until(loop, "the subscription", () => gw.gateway.activeStreams === 1);
  await until(loop, "an event through", () => got.length > 0, () => raw.send([pyEvent("hello", ["Wire"])]));
  assert.deepEqual([got[0]!.topic, got[0]!.text], ["zrpc:hello", "Wire"]);
  stream.cancel();
  await reading;
  await close(api);
  await gw.stop();
  await raw.close();
  await done();
});

test("ZeroRPC events to a subscriber that does not read: its queue holds at most maxQueued, the oldest are dropped and counted, the newest arrive", { skip, timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const events = await zrpcEmitter(loop, "pub", "zrpc+tcp://127.0.0.1:*", { bind: true });
  const maxQueued = 8;
  const gw = await startGateway(0, { loop, zrpc: { url: events.endpoint, events: ["tick", "alert"] }, maxQueued });
  const api = await connect<GatewayApi>(rpcUrl(gw), { loop, timeout: 5000 });
  const warm: Message[] = [];
  const warmStream = api.subscribe("zrpc:alert");
  const warming = collect(warmStream, warm);
  await until(loop, "an event through", () => warm.length > 0, () => events.emit("alert", "warm-up"));
  // The subscriber: it takes one message, then reads no more while 2000 are published.
  const slow = api.subscribe("zrpc:tick")[Symbol.asyncIterator]();
  const first = slow.next();
  await until(loop, "the slow subscription", () => gw.gateway.activeStreams === 2);
  const total = 2000;
  const base = gw.gateway.received;
  let longest = 0;
  for (let i = 0; i < total; i++) {
    events.emit("tick", i);
    if (i % 100 === 99) {
      await sleep(loop, 1);
      for (const s of gw.gateway.subs) longest = Math.max(longest, s.queue.length);
    }
  }
  await until(loop, "the gateway to take every event", () => gw.gateway.received === base + total);
  for (const s of gw.gateway.subs) longest = Math.max(longest, s.queue.length);
  assert.ok(longest <= maxQueued, `a subscription's queue held ${longest} messages`);
  // Now it reads everything: what arrived plus what was dropped is all that was published, in order, the newest last.
  const got: number[] = [];
  let dropped = 0;
  for (let r = await first; !r.done; r = await slow.next()) {
    const m = r.value;
    got.push(Number(JSON.parse(m.text)[0]));
    dropped += m.dropped;
    if (got[got.length - 1] === total - 1) break;
  }
  await slow.return?.(undefined);
  assert.ok(dropped > 0, "some were dropped");
  assert.equal(got.length + dropped, total, `${got.length} received + ${dropped} dropped`);
  assert.ok(got.every((v, i) => i === 0 || v > got[i - 1]!), "in order");
  assert.deepEqual(got.slice(-maxQueued), Array.from({ length: maxQueued }, (_, i) => total - maxQueued + i), "the newest are kept");
  warmStream.cancel();
  await warming;
  await until(loop, "the generators to stop", () => gw.gateway.activeStreams === 0);
  await close(api);
  await gw.stop();
  await events.close();
  await done();
});

test("the Express variant: Express serves the page, the client and its own routes; the gateway takes the ws upgrades of /rpc", { skip, timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const { listener, pub } = await zmqPub(loop);
  const gw = await startExpressGateway(0, { loop, zmqPub: listener.url });
  const pageRes = await httpGet(gw.url);
  assert.equal(pageRes.status, 200);
  assert.equal(pageRes.headers["x-powered-by"], "Express", "served by Express");
  assert.match(pageRes.headers["content-type"] ?? "", /^text\/html/);
  assert.match(pageRes.body, /<title>tilth gateway<\/title>/);
  assert.match(pageRes.body, /"\/rpc"/);
  const js = await httpGet(new URL("/tilth-browser.js", gw.url).href);
  assert.equal(js.status, 200);
  assert.match(js.headers["content-type"] ?? "", /javascript/);
  assert.ok(js.body.length > 10_000 && !/from\s*"node:/.test(js.body), "the bundled browser client");
  assert.equal((await httpGet(new URL("/nope", gw.url).href)).status, 404);

  const api = await connect<GatewayApi>(rpcUrl(gw), { loop, timeout: 5000 });
  assert.equal(typeof (await api.time()), "number");
  const got: Message[] = [];
  const stream = api.subscribe("");
  const reading = collect(stream, got);
  await until(loop, "a message through", () => got.length > 0, () => pub.send([Buffer.from("news"), Buffer.from("via express")]));
  assert.deepEqual([got[0]!.topic, got[0]!.text], ["news", "via express"]);
  // Express's own route still answers while the gateway serves, and sees the gateway's state.
  const stats = await httpGet(new URL("/stats", gw.url).href);
  assert.equal(stats.status, 200);
  const s = JSON.parse(stats.body) as { received: number; topics: string[]; subscriptions: number };
  assert.deepEqual(s.topics, ["news"]);
  assert.equal(s.subscriptions, 1);
  assert.ok(s.received >= 1);
  stream.cancel();
  await reading;
  await close(api);
  await gw.stop();
  await pub.close();
  await listener.close();
  await done();
});
