/**
 * ZeroMQ transports: the shared conformance suite on zmq+tcp, zmq+tcp over ::1
 * and zmq+ipc, and what is particular to ZeroMQ (ROUTER-side ends, listener
 * close, a raw DEALER's frames, sockets accounted for).
 *
 * Two cases of the shared suite cannot apply to ZeroMQ (NOT_FOR_ZMQ below,
 * and docs/zeromq.md, "How connections end"). The suite runs unchanged for
 * every other transport; for zmq it runs in a child process whose test-name
 * pattern leaves those two out, and the parts of them that do hold on ZeroMQ
 * are tested here.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { openZmqSockets, ZmqSocket } from "../../adapters/zeromq.js";
import { isTilthError } from "../../core/errors.js";
import type { Connection } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { collect, connectPair, defer, echo, pattern, seqFrame, seqOf } from "./util.js";
import { zmqCases } from "./zmq-conformance.js";

/** Conformance cases that cannot apply to ZeroMQ, and why. */
export const NOT_FOR_ZMQ: Record<string, string> = {
  "a message above the receiver's maxMessageSize ends only that connection, with ERR_MESSAGE_TOO_LARGE":
    "libzmq refuses the frame itself (ZMQ_MAXMSGSIZE) and disconnects the sender without saying why: the sender ends with ERR_BROKEN (naming maxMessageSize), the listener side as when a peer leaves, and the listener serves on (tested below)",
  "listener: close stops accepting (ERR_CONNECTION_REFUSED after) and keeps accepted connections open":
    "libzmq drops every accepted connection on unbind and cannot refuse a TCP peer while bound: a closed zmq listener keeps its accepted connections and drops new peers' messages (tested below), and is refused once the last accepted connection ends",
};

/**
 * Cases that do not hold on zmq+ipc only. libzmq (4.3, through zeromq.js 6) loses
 * messages over ipc when a DEALER closes while the ROUTER holds back its input:
 * raw zeromq.js shows the same with linger 2000 ms (a ROUTER that pauses after
 * 2000 of 5000 messages gets 3000-4500 of them over ipc, all of them over tcp).
 */
export const NOT_FOR_ZMQ_IPC: Record<string, string> = {
  "messages() iterates until the peer closes":
    "libzmq over ipc drops what a closing DEALER still has in flight while the ROUTER's input is held back (the case pauses the reader at 4096 messages); docs/zeromq.md",
};

const skippedFor = (which: string): Record<string, string> => (which === "ipc" ? { ...NOT_FOR_ZMQ, ...NOT_FOR_ZMQ_IPC } : NOT_FOR_ZMQ);

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const childFile = fileURLToPath(new URL("./zmq-conformance.js", import.meta.url));

function runConformance(which: string): Promise<{ code: number | null; out: string }> {
  const pattern = `^(?!<root>|transport conformance|${Object.keys(skippedFor(which)).map(escape).join("|")}).+`;
  // Without NODE_TEST_CONTEXT: the child is a test run of its own, reporting TAP.
  const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ["--test", "--test-reporter=tap", `--test-name-pattern=${pattern}`, childFile], {
      env: { ...env, TILTH_ZMQ_CONFORMANCE: which },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    // Bounded: a run that hangs (seen once, under heavy load, on zmq+ipc) is killed after 90 s.
    const guard = setTimeout(() => {
      out += "\n# killed: the conformance run did not finish within 90 s\n";
      p.kill("SIGKILL");
    }, 90_000);
    p.stdout.on("data", (d) => (out += String(d)));
    p.stderr.on("data", (d) => (out += String(d)));
    p.on("close", (code) => {
      clearTimeout(guard);
      resolve({ code, out });
    });
  });
}

describe("zmq transports: the shared conformance suite", () => {
  for (const which of Object.keys(zmqCases)) {
    test(`zmq+${which === "tcp6" ? "tcp over ::1" : which}: every case but the ${Object.keys(skippedFor(which)).length} that cannot apply`, { timeout: 200_000 }, async () => {
      let { code, out } = await runConformance(which);
      if (out.includes("# killed:")) {
        // A hung run is retried once and reported; a second hang fails the test.
        process.stderr.write(`zmq ${which} conformance run hung; retrying once. Its output ended with:\n${out.slice(-2000)}\n`);
        ({ code, out } = await runConformance(which));
      }
      const count = (k: string): number => Number(new RegExp(`^# ${k} (\\d+)$`, "m").exec(out)?.[1] ?? NaN);
      const failed = out.split("\n").filter((l) => /^\s*not ok/.test(l));
      assert.equal(code, 0, `conformance failed:\n${failed.join("\n")}\n${out.slice(-4000)}`);
      assert.equal(count("fail"), 0);
      assert.equal(count("skipped"), Object.keys(skippedFor(which)).length, "exactly the cases that cannot apply are left out");
      assert.ok(count("pass") >= 20, `only ${count("pass")} cases ran`);
    });
  }
});

const newLoop = (): NodeLoop => registerTransports(new NodeLoop());
const zmqCase = zmqCases.tcp!();

function assertCode(e: unknown, code: string): true {
  assert.ok(isTilthError(e, code), `expected ${code}, got ${String(e)}`);
  return true;
}

describe("zmq transports: what is particular to ZeroMQ", () => {
  test("a frame above the listener's maxMessageSize is refused by libzmq at its header: the sender's Connection ends ERR_BROKEN, nothing is delivered, the listener serves on and the sender can come back", { timeout: 30_000 }, async () => {
    const done = leakCheck();
    const loop = newLoop();
    const { listener, client, server, nextServer } = await connectPair(zmqCase, loop, { listen: { maxMessageSize: 4096 } });
    const b = collect(server);
    const a = collect(client);
    client.send([pattern(4097)]);
    // libzmq (ZMQ_MAXMSGSIZE) disconnects the sender: its DEALER is told, and ends.
    const end = await a.end;
    assert.equal(end.by, "peer");
    assertCode(end.error, "ERR_BROKEN");
    assert.match(end.error!.message, /maxMessageSize/);
    // The listener side sees that peer leave (libzmq does not say why), having received nothing of it.
    assert.equal((await b.end).by, "peer");
    assert.equal(b.msgs.length, 0);
    // The listener serves on, the sender included once it connects again.
    const second = await loop.connect(listener.url);
    const got = collect(second);
    const server2 = await nextServer();
    void echo(server2);
    second.send([pattern(4096)]);
    await got.until(1);
    await second.close();
    await listener.close();
    await server2.closed;
    assert.equal(openZmqSockets(), 0);
    await done();
  });

  test("a closed listener keeps accepted Connections, drops new peers, and unbinds when the last Connection ends", async () => {
    const done = leakCheck();
    const loop = newLoop();
    const { listener, client, server } = await connectPair(zmqCase, loop);
    const got = collect(client);
    void echo(server);
    await listener.close();
    // A newcomer still completes the ZMTP handshake (libzmq cannot refuse it while bound), but is not accepted.
    const late = await loop.connect(listener.url);
    const lateGot = collect(late);
    late.send([Buffer.from("anyone?")]);
    client.send([Buffer.from("still here")]);
    await got.until(1);
    assert.equal(String(got.msgs[0]![0]), "still here");
    await client.close();
    await server.closed;
    // Now the ROUTER is closed: the newcomer's connection drops, a new connect is refused.
    const lateEnd = await lateGot.end;
    assert.equal(lateEnd.by, "peer");
    assert.equal(lateGot.msgs.length, 0);
    await assert.rejects(loop.connect(listener.url), (e) => assertCode(e, "ERR_CONNECTION_REFUSED"));
    assert.equal(openZmqSockets(), 0);
    await done();
  });

  test("closing a ROUTER-side Connection flushes what it sent; the peer's later messages are dropped", async () => {
    const done = leakCheck();
    const loop = newLoop();
    const { listener, client, server } = await connectPair(zmqCase, loop);
    const got = collect(client);
    const b = collect(server);
    for (let i = 0; i < 100; i++) server.send([Buffer.from(`m${i}`)]);
    await server.close();
    assert.deepEqual(server.ended, { by: "local" });
    await got.until(100);
    client.send([Buffer.from("into the void")]);
    assert.equal(b.msgs.length, 0);
    await client.close();
    await listener.close();
    await done();
  });

  test("a raw DEALER's [\"\", payload] arrives as two frames, and two frames go back as they are", async () => {
    const done = leakCheck();
    const loop = newLoop();
    const listener = await loop.listen("zmq+tcp://127.0.0.1:0");
    const accepted = defer<Connection>();
    listener.start(accepted.resolve);
    const dealer = ZmqSocket.open(loop, "dealer");
    dealer.connect(listener.url.replace(/^zmq\+/, ""));
    const reply = defer<Buffer[]>();
    dealer.start({ message: reply.resolve });
    dealer.send([new Uint8Array(0), Buffer.from("payload")]);
    const server = await accepted.promise;
    const got = collect(server);
    await got.until(1);
    assert.deepEqual(got.msgs[0]!.map((f) => Buffer.from(f).toString()), ["", "payload"]);
    server.send([new Uint8Array(0), Buffer.from("answer")]);
    assert.deepEqual((await reply.promise).map((f) => f.toString()), ["", "answer"]);
    await dealer.close();
    await server.closed;
    await listener.close();
    assert.equal(openZmqSockets(), 0);
    await done();
  });
});

describe("zeromq adapter: PUSH/PULL, PUB/SUB, bounded queue, close", () => {
  test("PUSH/PULL carries multi-frame messages in order; PUB/SUB filters by topic", async () => {
    const done = leakCheck();
    const loop = new NodeLoop();
    const pull = ZmqSocket.open(loop, "pull");
    const url = await pull.bind("tcp://127.0.0.1:*");
    const got: string[] = [];
    const all = defer();
    pull.start({
      message(f) {
        got.push(f.map(String).join("|"));
        if (got.length === 100) all.resolve();
      },
    });
    const push = ZmqSocket.open(loop, "push");
    push.connect(url);
    for (let i = 0; i < 100; i++) push.send([Buffer.from(`a${i}`), Buffer.from("b")]);
    await all.promise;
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => `a${i}|b`));
    await push.close();
    await pull.close();

    const pub = ZmqSocket.open(loop, "pub");
    const purl = await pub.bind("tcp://127.0.0.1:*");
    const sub = ZmqSocket.open(loop, "sub", { subscribe: ["news."] });
    const heard: string[] = [];
    const first = defer();
    sub.start({
      message(f) {
        heard.push(String(f[0]));
        first.resolve();
      },
    });
    sub.connect(purl);
    // PUB drops messages until the subscription arrives: publish until one is heard.
    for (let i = 0; i < 200 && heard.length === 0; i++) {
      pub.send([Buffer.from("weather.x")]);
      pub.send([Buffer.from(`news.${i}`)]);
      await new Promise<void>((r) => loop.timer(5, r));
    }
    await first.promise;
    assert.ok(heard.every((h) => h.startsWith("news.")), heard.join(","));
    assert.throws(() => sub.send([Buffer.from("x")]), TypeError);
    await sub.close();
    await pub.close();
    assert.equal(openZmqSockets(), 0);
    await done();
  });

  test("the send queue is bounded: false past the high-water mark, ERR_BUSY past the limit; close rejects drain with ERR_CLOSED; close is idempotent", async () => {
    const done = leakCheck();
    const loop = new NodeLoop();
    // A DEALER with no peer: libzmq takes up to its send high-water mark, then the queue here fills.
    const d = ZmqSocket.open(loop, "dealer", { highWaterMark: 1000, maxQueuedBytes: 4000, sendHighWaterMark: 1 });
    d.connect("tcp://127.0.0.1:1");
    const results: boolean[] = [];
    let busy: unknown;
    try {
      for (let i = 0; i < 100; i++) results.push(d.send([pattern(300)]));
    } catch (e) {
      busy = e;
    }
    assert.ok(results.includes(false), "send returned false past the high-water mark");
    assertCode(busy, "ERR_BUSY");
    assert.ok(d.bufferedAmount <= 4000 + 300);
    const drained = d.drain();
    d.destroy();
    await assert.rejects(drained, (e) => assertCode(e, "ERR_CLOSED"));
    assert.throws(() => d.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_CLOSED"));
    await d.close();
    d.destroy();
    assert.equal(openZmqSockets(), 0);
    await done();
  });
});

describe("zmq transports: one-way sockets (the socket option)", () => {
  /** Send `msg` on `from` every few ms until `got` has a message (ZeroMQ's PUB drops until a subscription arrives). */
  async function untilHeard(loop: NodeLoop, from: Connection, msg: Buffer, got: { msgs: unknown[] }[]): Promise<void> {
    for (let i = 0; i < 400 && got.some((g) => g.msgs.length === 0); i++) {
      from.send([msg]);
      await new Promise<void>((r) => loop.timer(5, r));
    }
    assert.ok(got.every((g) => g.msgs.length > 0), "every receiver heard one");
  }

  test("a bound PUB fans out to every connected SUB (topics: the subscribe option, default everything); a SUB cannot send", async () => {
    const done = leakCheck();
    const loop = newLoop();
    const listener = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "pub" });
    const accepted = defer<Connection>();
    listener.start(accepted.resolve);
    const pub = await accepted.promise;
    assert.equal(pub.localUrl, listener.url);
    const all = await loop.connect(listener.url, { socket: "sub" });
    const news = await loop.connect(listener.url, { socket: "sub", subscribe: ["news."] });
    const a = collect(all);
    const n = collect(news);
    await untilHeard(loop, pub, Buffer.from("news.first"), [a, n]);
    a.msgs.length = 0;
    n.msgs.length = 0;
    pub.send([Buffer.from("weather.1")]);
    pub.send([Buffer.from("news.1"), Buffer.from("second frame")]);
    await a.until(2);
    await n.until(1);
    assert.deepEqual(a.msgs.map((m) => m.map(String)), [["weather.1"], ["news.1", "second frame"]]);
    assert.deepEqual(n.msgs.map((m) => m.map(String)), [["news.1", "second frame"]]);
    assert.throws(() => all.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_INVALID_STATE"));
    await all.close();
    await news.close();
    await pub.close();
    await listener.close();
    assert.equal(openZmqSockets(), 0);
    await done();
  });

  test("a bound PULL takes from every connected PUSH; a bound PUSH gives each message to one connected PULL", async () => {
    const done = leakCheck();
    const loop = newLoop();
    const pullListener = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "pull" });
    const pulls = defer<Connection>();
    pullListener.start(pulls.resolve);
    const pull = collect(await pulls.promise);
    const pushers = [await loop.connect(pullListener.url, { socket: "push" }), await loop.connect(pullListener.url, { socket: "push" })];
    for (let i = 0; i < 10; i++) pushers[i % 2]!.send([seqFrame(i)]);
    await pull.until(10);
    assert.deepEqual(pull.msgs.map(seqOf).sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const p of pushers) await p.close();
    await (await pulls.promise).close();
    await pullListener.close();

    const pushListener = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "push" });
    const pushes = defer<Connection>();
    pushListener.start(pushes.resolve);
    const push = await pushes.promise;
    const pullers = [await loop.connect(pushListener.url, { socket: "pull" }), await loop.connect(pushListener.url, { socket: "pull" })];
    const got = pullers.map(collect);
    // Both handshakes are done (connect resolved), so libzmq round-robins over the two.
    for (let i = 0; i < 100; i++) push.send([seqFrame(i)]);
    for (let i = 0; i < 400 && got[0]!.msgs.length + got[1]!.msgs.length < 100; i++) await new Promise<void>((r) => loop.timer(5, r));
    const seqs = [...got[0]!.msgs, ...got[1]!.msgs].map(seqOf).sort((x, y) => x - y);
    assert.deepEqual(seqs, Array.from({ length: 100 }, (_, i) => i), "each message reaches exactly one puller");
    assert.ok(got[0]!.msgs.length > 0 && got[1]!.msgs.length > 0, "both pullers take part");
    assert.throws(() => pullers[0]!.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_INVALID_STATE"));
    for (const p of pullers) await p.close();
    await push.close();
    await pushListener.close();
    assert.equal(openZmqSockets(), 0);
    await done();
  });

  test("one-way sockets: a connect before anyone binds succeeds (ZeroMQ connects in the background); a bound socket nobody claimed closes with its listener; a bad socket option is a RangeError", async () => {
    const done = leakCheck();
    const loop = newLoop();
    const refused = await zmqCase.refusedUrl();
    const early = await loop.connect(refused, { socket: "sub" });
    assert.equal(openZmqSockets(), 1);
    await early.close();
    assert.equal(openZmqSockets(), 0);
    const listener = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "sub" });
    assert.equal(openZmqSockets(), 1);
    await listener.close();
    assert.equal(openZmqSockets(), 0);
    await assert.rejects(loop.listen("zmq+tcp://127.0.0.1:0", { socket: "dealer" }), RangeError);
    await assert.rejects(loop.connect(refused, { socket: "router" }), RangeError);
    assert.equal(openZmqSockets(), 0);
    await done();
  });
});
