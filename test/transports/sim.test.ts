import assert from "node:assert/strict";
import { test } from "node:test";
import { HostLoop, SimLoop } from "../../adapters/sim.js";
import type { Connection, ConnectionEnd, Message } from "../../core/Transport.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { SIM_SCHEMES, SimNetwork, type LinkPolicy } from "../../transports/sim.js";
import { transportConformance } from "../../testing/index.js";

let n = 0;
const unique = (): number => ++n;

for (const scheme of ["tcp", "inproc"] as const) {
  transportConformance(() => ({
    name: `sim ${scheme}`,
    makeLoop: () => {
      const world = new SimLoop({ seed: 1 });
      return new SimNetwork(world).attach(new HostLoop(world, "h"));
    },
    listenUrl: () => (scheme === "tcp" ? "tcp://127.0.0.1:0" : `inproc://s-${unique()}`),
    refusedUrl: async () => (scheme === "tcp" ? "tcp://127.0.0.1:1" : `inproc://nobody-${unique()}`),
    listenOptions: {},
    connectOptions: {},
    run: (loop, body) => (loop as HostLoop).world.run(body, { deadlockMs: 5000 }),
    cleanup: () => {},
  }));
}

/** Two hosts on one network, a listener on `b`, a connection from `a`; `policy` decides delays and cuts. */
async function pair(policy: LinkPolicy, url = "tcp://127.0.0.1:7000") {
  const world = new SimLoop({ seed: 3 });
  const net = new SimNetwork(world);
  net.policy = policy;
  const a = net.attach(new HostLoop(world, "a"));
  const b = net.attach(new HostLoop(world, "b"));
  const got: { at: number; text: string }[] = [];
  const ends: ConnectionEnd[] = [];
  let server!: Connection;
  const client = await world.run(async () => {
    const l = await b.listen(url);
    l.start((c) => {
      server = c;
      c.start({ message: (m: Message) => got.push({ at: world.now(), text: String(m[0]) }), end: (e) => ends.push(e) });
    });
    return a.connect(url);
  });
  return { world, net, a, b, client, server: () => server, got, ends };
}

test("the simulated network serves every stream scheme of tilth", () => {
  assert.deepEqual([...SIM_SCHEMES].sort(), ["inproc", "ipc", "tcp", "tls", "zmq+ipc", "zmq+tcp"]);
});

test("messages arrive after the link's delay, in order, even when a later one draws a shorter delay", async () => {
  const delays = [50, 5, 5];
  const p = await pair({ delay: (_f, _t, bytes) => (bytes === 0 ? 10 : delays.shift() ?? 1), cutUntil: () => undefined });
  const t0 = p.world.now();
  assert.equal(t0, 20, "connect takes a round trip");
  await p.world.run(async () => {
    p.client.send([Buffer.from("one")]);
    p.client.send([Buffer.from("two")]);
    p.client.send([Buffer.from("three")]);
    await sleep(p.world, 100);
  });
  assert.deepEqual(p.got.map((g) => g.text), ["one", "two", "three"]);
  assert.deepEqual(p.got.map((g) => g.at - t0), [50, 50, 50], "later messages wait behind the first (a stream)");
  await p.world.run(() => p.client.close());
});

test("across a cut link messages wait until it heals; a reset across it is lost", async () => {
  let cutUntil: number | undefined;
  let now = (): number => 0;
  const p = await pair({ delay: () => 1, cutUntil: () => (cutUntil !== undefined && now() < cutUntil ? cutUntil : undefined) });
  now = () => p.world.now();
  await p.world.run(async () => {
    cutUntil = p.world.now() + 5000;
    p.client.send([Buffer.from("held")]);
    await sleep(p.world, 1000);
    assert.equal(p.got.length, 0, "nothing crosses a cut link");
    await sleep(p.world, 4100);
    assert.deepEqual(p.got.map((g) => g.text), ["held"]);
    assert.equal(p.got[0]!.at, cutUntil, "delivered when the link heals");
    cutUntil = p.world.now() + 5000;
    p.client.destroy();
    await sleep(p.world, 6000);
    assert.equal(p.ends.length, 0, "the reset was lost: the server end does not know");
    p.server().destroy();
  });
});

test("a reset fault breaks both ends; a crash drops the host's end silently and resets its peer", async () => {
  const p = await pair({ delay: () => 2, cutUntil: () => undefined });
  const clientEnd = p.client.closed;
  await p.world.run(async () => {
    p.net.reset(p.net.openEnds().find((e) => e.side === ">")!);
    const e = await clientEnd;
    assert.ok(isTilthError(e.error, "ERR_BROKEN"));
    await sleep(p.world, 10);
    assert.equal(p.ends.length, 1);
    assert.ok(isTilthError(p.ends[0]!.error, "ERR_BROKEN"));
  });
  const q = await pair({ delay: () => 2, cutUntil: () => undefined }, "tcp://127.0.0.1:7001");
  let clientHeard = false;
  q.client.start({ message() {}, end: () => (clientHeard = true) });
  await q.world.run(async () => {
    await sleep(q.world, 1);
    q.b.kill();
    q.net.crash(q.b);
    await sleep(q.world, 10);
    assert.equal(q.ends.length, 0, "the crashed host's code hears nothing");
    assert.ok(clientHeard, "the peer gets a reset");
    assert.ok(isTilthError(q.client.ended?.error, "ERR_BROKEN"));
    await assert.rejects(q.a.connect("tcp://127.0.0.1:7001"), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"), "its listener is gone");
  });
  assert.equal(q.net.openEnds().length, 0);
  assert.equal(q.b.pendingTimers, 0);
});

test("a killed host runs nothing more: its timers and posts are dropped", async () => {
  const world = new SimLoop({ seed: 1 });
  const h = new HostLoop(world, "h");
  const ran: string[] = [];
  h.timer(10, () => ran.push("timer"));
  h.post(() => ran.push("post"));
  h.kill();
  h.timer(1, () => ran.push("late timer"));
  await world.run(() => sleep(world, 100));
  assert.deepEqual(ran, []);
  assert.equal(h.pendingTimers, 0);
});
