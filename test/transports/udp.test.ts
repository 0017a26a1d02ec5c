/**
 * udp:// beyond the conformance suite: bad input from raw node:dgram peers
 * (oversized and empty datagrams, a flood from many source ports against the
 * conversation cap, with the queued memory bounded), plain datagrams on the
 * wire, URL and option errors.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import type { Connection } from "../../core/Transport.js";
import { registerTransports, UdpListener, type UdpConversation } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { connect, parseRpcUrl, serve } from "../../rpc/index.js";

const loopback = (): NodeLoop => registerTransports(new NodeLoop());
const portOf = (url: string): number => Number(url.slice(url.lastIndexOf(":") + 1));

async function rawSocket(): Promise<dgram.Socket> {
  const s = dgram.createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", r));
  return s;
}
const closeRaw = (s: dgram.Socket): Promise<void> => new Promise((r) => s.close(() => r()));

async function until(loop: NodeLoop, cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = loop.now() + ms;
  while (!cond()) {
    if (loop.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(loop, 2);
  }
}

test("udp: a raw node:dgram peer talks to a listener in plain datagrams; empty and oversized datagrams from it are handled", async () => {
  const done = leakCheck();
  const loop = loopback();
  const listener = (await loop.listen("udp://127.0.0.1:0", { maxMessageSize: 512 })) as UdpListener;
  const convs: Connection[] = [];
  listener.start((c) => {
    convs.push(c);
    c.start({ message: (m) => c.send([Buffer.concat([Buffer.from("echo:"), m[0]!])]), end() {} });
  });
  const raw = await rawSocket();
  const replies: Buffer[] = [];
  raw.on("message", (m) => replies.push(m));
  const port = portOf(listener.url);
  // An oversized first datagram opens nothing and is counted.
  raw.send(Buffer.alloc(65_507, 1), port, "127.0.0.1");
  await until(loop, () => listener.stats().oversized === 1, 2000, "the oversized datagram is counted");
  assert.equal(convs.length, 0);
  // An empty datagram opens the conversation and is delivered as one empty frame.
  raw.send(Buffer.alloc(0), port, "127.0.0.1");
  await until(loop, () => replies.length === 1, 2000, "the empty datagram's echo");
  assert.equal(replies[0]!.toString(), "echo:");
  raw.send(Buffer.from("hello"), port, "127.0.0.1");
  await until(loop, () => replies.length === 2, 2000, "the echo");
  assert.equal(replies[1]!.toString(), "echo:hello", "one datagram each way, no framing on the wire");
  assert.equal(convs.length, 1);
  assert.equal(convs[0]!.remoteUrl, `udp://127.0.0.1:${raw.address().port}`);
  // An oversized datagram on the open conversation: dropped, counted, the conversation goes on.
  raw.send(Buffer.alloc(513), port, "127.0.0.1");
  raw.send(Buffer.from("still"), port, "127.0.0.1");
  await until(loop, () => replies.length === 3, 2000, "the echo after an oversized datagram");
  assert.equal((convs[0] as UdpConversation).stats.oversized, 1);
  assert.equal(listener.stats().oversized, 2);
  assert.equal(convs[0]!.ended, undefined);
  await closeRaw(raw);
  await listener.close();
  await done();
});

test("udp: a flood from 400 source ports hits the conversation cap; refused datagrams are counted, queued memory stays within its bounds, others are served after", async (t) => {
  const done = leakCheck();
  const loop = loopback();
  const maxConversations = 64;
  const maxQueuedBytes = 8 * 1024;
  const listener = (await loop.listen("udp://127.0.0.1:0", {
    maxConversations,
    maxQueuedBytes,
    maxQueued: 16,
    recvBufferSize: 4 * 1024 * 1024,
  })) as UdpListener;
  const held: UdpConversation[] = [];
  // A handler that never reads: every datagram of a conversation queues, up to its bounds.
  listener.start((c) => {
    const conv = c as UdpConversation;
    held.push(conv);
    conv.pause();
    conv.start({ message() {}, end() {} });
  });
  const port = portOf(listener.url);
  const peers = await Promise.all(Array.from({ length: 400 }, () => rawSocket()));
  const payload = Buffer.alloc(1000, 7);
  const heapBefore = process.memoryUsage();
  // Bounded: rounds until the cap is hit and queues overflow (the kernel drops some too), at most 200 rounds.
  let rounds = 0;
  while (rounds < 40 || listener.stats().dropped === 0 || listener.stats().refused < 1000) {
    assert.ok(++rounds <= 200, `after ${rounds} rounds: ${JSON.stringify(listener.stats())}`);
    for (const p of peers) p.send(payload, port, "127.0.0.1");
    await sleep(loop, 1);
  }
  await until(loop, () => listener.stats().refused > 0 && held.length === maxConversations, 5000, "the cap is reached");
  await sleep(loop, 50);
  const s = listener.stats();
  t.diagnostic(`flood: ${rounds} rounds of 400 datagrams, ${JSON.stringify(s)}, queued ${listener.queueBudgetUsed} B`);
  assert.ok(listener.queueBudgetUsed <= maxConversations * maxQueuedBytes);
  assert.equal(s.live, maxConversations, "never more live conversations than the cap");
  assert.equal(s.opened, maxConversations);
  assert.ok(s.refused > 1000, `datagrams from peers past the cap are refused and counted (${s.refused})`);
  assert.ok(s.dropped > 0, `full queues drop and count (${s.dropped})`);
  let queued = 0;
  for (const c of held) {
    assert.ok(c.stats.received * payload.length <= maxQueuedBytes, `a conversation queued ${c.stats.received} datagrams`);
    queued += c.stats.received * payload.length;
  }
  assert.ok(queued <= maxConversations * maxQueuedBytes);
  const heapAfter = process.memoryUsage();
  const grown = heapAfter.arrayBuffers - heapBefore.arrayBuffers;
  // 16 MB were sent; what is held is at most the conversations' queues (1 MiB here) plus receive buffers in flight.
  assert.ok(grown < 8 * 1024 * 1024, `buffer memory grew by ${grown} bytes`);
  // The listener goes on serving: once the flood's conversations end, a new peer is answered.
  await Promise.all(peers.map(closeRaw));
  // The listener goes on serving: a new peer is answered once places are free. What the kernel still
  // holds of the flood opens conversations too, so the handler keeps ending those while the peer retries.
  const client = await loop.connect(listener.url);
  client.start({ message() {}, end() {} });
  const mine = (): boolean => held.some((c) => c.remoteUrl === client.localUrl && c.ended === undefined);
  for (let i = 0; !mine(); i++) {
    assert.ok(i < 500, `no conversation for a new peer after the flood: ${JSON.stringify(listener.stats())}`);
    for (const c of held) if (c.remoteUrl !== client.localUrl) c.destroy();
    client.send([Buffer.from("after the flood")]);
    await sleep(loop, 10);
  }
  await client.close();
  await listener.close();
  await done();
});

test("udp: URL, address and option errors are coded; nothing is left open", async () => {
  const done = leakCheck();
  const loop = loopback();
  const code = (c: string) => (e: unknown) => isTilthError(e, c);
  await assert.rejects(loop.listen("udp://127.0.0.1"), code("ERR_INVALID_URL"));
  await assert.rejects(loop.connect("udp://:9"), code("ERR_INVALID_URL"));
  await assert.rejects(loop.connect("udp://127.0.0.1:0"), code("ERR_CONNECT_FAILED"));
  const listener = await loop.listen("udp://127.0.0.1:0");
  await assert.rejects(loop.listen(listener.url), code("ERR_ADDRESS_IN_USE"));
  await assert.rejects(loop.listen("udp://127.0.0.1:0", { maxMessageSize: 65_508 }), RangeError);
  await assert.rejects(loop.listen("udp://[::1]:0", { maxMessageSize: 65_528 }), RangeError);
  await assert.rejects(loop.listen("udp://127.0.0.1:0", { maxConversations: 0 }), RangeError);
  await assert.rejects(loop.connect(listener.url, { idleTimeoutMs: -1 }), RangeError);
  const six = await loop.listen("udp://[::1]:0", { maxMessageSize: 65_527 });
  assert.match(six.url, /^udp:\/\/\[::1\]:\d+$/);
  const c6 = (await loop.connect(six.url)) as UdpConversation;
  assert.equal(c6.maxMessageSize, 65_527, "udp6 allows 65,527 B");
  const ac = new AbortController();
  ac.abort(new Error("stop"));
  await assert.rejects(loop.connect(listener.url, { signal: ac.signal }), /stop/);
  await c6.close();
  await six.close();
  await listener.close();
  await done();
});

test("udp: no RPC protocol runs over udp: drpc+udp:// and zrpc+udp:// are ERR_INVALID_URL, for servers and clients", async () => {
  const done = leakCheck();
  const loop = loopback();
  const invalid = (e: unknown): boolean => isTilthError(e, "ERR_INVALID_URL") && /no RPC protocol runs over udp/.test((e as Error).message);
  assert.throws(() => parseRpcUrl("drpc+udp://127.0.0.1:9"), invalid);
  assert.throws(() => parseRpcUrl("zrpc+udp://127.0.0.1:9"), invalid);
  assert.throws(() => parseRpcUrl("udp://127.0.0.1:9"), invalid);
  await assert.rejects(serve({ ping: async () => "pong" }, ["drpc+udp://127.0.0.1:0"], { loop }), invalid);
  await assert.rejects(connect("drpc+udp://127.0.0.1:9", { loop }), invalid);
  assert.deepEqual(parseRpcUrl("drpc+tcp://127.0.0.1:9"), { protocol: "drpc", transport: "tcp://127.0.0.1:9" });
  await done();
});
