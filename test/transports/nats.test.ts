/**
 * nats:// transport against a real nats-server (started here on loopback and
 * a random port): the shared conformance suite (in a child process, leaving
 * out the one case that cannot apply: any number of listeners may take one
 * service name, by design), and what is particular to NATS.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import type { Endpoint } from "../../core/Transport.js";
import { NatsListener, registerTransports, type NatsTransport } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { natsSkip, startNats, type NatsServer } from "../helpers/nats.js";
import { collect, pattern } from "./util.js";

/** Conformance cases that cannot apply to NATS, and why. */
export const NOT_FOR_NATS: Record<string, string> = {
  "listen on an address in use: ERR_ADDRESS_IN_USE": "any number of processes listen on one service: that is a fleet (tested below: both take connections)",
};

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const childFile = fileURLToPath(new URL("./nats-conformance.js", import.meta.url));
let seq = 0;
const service = (): string => `t${process.pid}x${++seq}`;

describe("nats transport", { skip: natsSkip }, () => {
  let nats: NatsServer;
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await nats.stop();
  });

  test(`the shared conformance suite: every case but the ${Object.keys(NOT_FOR_NATS).length} that cannot apply`, { timeout: 200_000 }, async () => {
    const pattern = `^(?!<root>|transport conformance|${Object.keys(NOT_FOR_NATS).map(escape).join("|")}).+`;
    const { NODE_TEST_CONTEXT: _ctx, ...env } = process.env;
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn(process.execPath, ["--test", "--test-reporter=tap", `--test-name-pattern=${pattern}`, childFile], {
        env: { ...env, TILTH_NATS_SERVER: nats.hostPort },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      const guard = setTimeout(() => p.kill("SIGKILL"), 150_000);
      p.stdout.on("data", (d) => (out += String(d)));
      p.stderr.on("data", (d) => (out += String(d)));
      p.on("close", (code) => {
        clearTimeout(guard);
        resolve({ code, out });
      });
    });
    const count = (k: string): number => Number(new RegExp(`^# ${k} (\\d+)$`, "m").exec(out)?.[1] ?? NaN);
    const failed = out.split("\n").filter((l) => /^\s*not ok/.test(l));
    assert.equal(code, 0, `conformance failed:\n${failed.join("\n")}\n${out.slice(-4000)}`);
    assert.equal(count("fail"), 0);
    assert.equal(count("skipped"), Object.keys(NOT_FOR_NATS).length, "exactly the cases that cannot apply are left out");
    assert.ok(count("pass") >= 20, `only ${count("pass")} cases ran`);
  });

  test("two listeners on one service are two instances: discovery reports both, each is reached by its id, leaving is announced", async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    const url = `nats://${nats.hostPort}/${service()}`;
    const a = (await loop.listen(url)) as NatsListener;
    const b = (await loop.listen(url)) as NatsListener;
    assert.ok(a instanceof NatsListener && a.instanceId !== b.instanceId);
    for (const l of [a, b]) l.start((c) => c.start({ message: (m) => c.send([Buffer.from(l.instanceId), ...m]), end() {} }));
    const ups: Endpoint[] = [];
    const left: string[] = [];
    let settled!: () => void;
    const isSettled = new Promise<void>((r) => (settled = r));
    const transport = loop.transports.get("nats") as NatsTransport;
    const d = await transport.discover(loop, new URL(url), { up: (e) => ups.push(e), leaving: (id) => left.push(id), settled }, {});
    await isSettled;
    const until = async (f: () => boolean): Promise<void> => {
      for (let i = 0; i < 500 && !f(); i++) await new Promise((r) => setTimeout(r, 5));
    };
    await until(() => ups.length >= 2);
    assert.deepEqual(ups.map((e) => e.id).sort(), [a.instanceId, b.instanceId].sort());
    assert.equal(ups[0]!.info.pid, process.pid);
    for (const l of [a, b]) {
      const conn = await loop.connect(`${url}/${l.instanceId}`);
      const got = collect(conn);
      conn.send([pattern(10)]);
      await got.until(1);
      assert.equal(Buffer.from(got.msgs[0]![0]!).toString(), l.instanceId);
      await conn.close();
    }
    await a.close();
    await until(() => left.length > 0);
    assert.deepEqual(left, [a.instanceId]);
    await assert.rejects(loop.connect(`${url}/${a.instanceId}`), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"));
    await b.close();
    await d.close();
    await done();
  });

  test("a NATS server that goes away ends every connection over it with ERR_BROKEN", async () => {
    const done = leakCheck();
    const own = await startNats();
    const loop = registerTransports(new NodeLoop());
    const url = `nats://${own.hostPort}/${service()}`;
    const l = await loop.listen(url);
    const accepted: ReturnType<typeof collect>[] = [];
    l.start((c) => accepted.push(collect(c)));
    const conn = await loop.connect(url);
    const mine = collect(conn);
    await own.stop("SIGKILL");
    const end = await mine.end;
    assert.equal(end.by, "peer");
    assert.ok(isTilthError(end.error, "ERR_BROKEN"), String(end.error));
    assert.ok(isTilthError((await accepted[0]!.end).error, "ERR_BROKEN"));
    await l.close();
    await done();
  });

  test("messages sent in one run of code travel as one NATS message, in order; a malformed batch ends only its connection with ERR_MALFORMED_FRAME", async () => {
    const done = leakCheck();
    const { connect } = await import("nats");
    const spy = await connect({ servers: nats.hostPort });
    const loop = registerTransports(new NodeLoop());
    const url = `nats://${nats.hostPort}/${service()}`;
    const l = await loop.listen(url);
    const accepted: ReturnType<typeof collect>[] = [];
    l.start((c) => accepted.push(collect(c)));
    const conn = await loop.connect(url);
    const published: { subject: string; data: Uint8Array }[] = [];
    const sub = spy.subscribe(">", { callback: (_e, m) => m.subject.endsWith(".d") && published.push({ subject: m.subject, data: m.data }) });
    await spy.flush();
    for (let i = 0; i < 100; i++) conn.send([Buffer.from(`m${i}`)]);
    await new Promise((r) => setTimeout(r, 0));
    while (accepted.length === 0) await new Promise((r) => setTimeout(r, 5));
    const got = accepted[0]!;
    await got.until(100);
    assert.deepEqual(got.msgs.map((m) => Buffer.from(m[0]!).toString()), Array.from({ length: 100 }, (_, i) => `m${i}`));
    await spy.flush();
    const toServer = published.filter((p) => p.data[0] === 6);
    assert.equal(toServer.length, 1, `100 sends in one turn: ${published.length} NATS messages`);
    // A batch whose second message claims more bytes than the batch has.
    const bad = Uint8Array.from([6, 0, 0, 0, 2, 0, 0x61, 0, 0, 0, 99, 0, 0x62]);
    spy.publish(toServer[0]!.subject, bad);
    const end = await got.end;
    assert.ok(isTilthError(end.error, "ERR_MALFORMED_FRAME"), String(end.error));
    assert.equal(got.msgs.length, 101, "the well-formed message before the bad one is delivered");
    sub.unsubscribe();
    await spy.close();
    await conn.closed;
    await l.close();
    await done();
  });

  test("bad URLs: no service, a bad name, an instance id given to listen", async () => {
    const loop = registerTransports(new NodeLoop());
    for (const bad of [`nats://${nats.hostPort}`, `nats://${nats.hostPort}/a.b`, `nats://${nats.hostPort}/a/b/c`]) {
      await assert.rejects(loop.connect(bad), (e) => isTilthError(e, "ERR_INVALID_URL"), bad);
    }
    await assert.rejects(loop.listen(`nats://${nats.hostPort}/svc/someid`), (e) => isTilthError(e, "ERR_INVALID_URL"));
  });
});
