/**
 * Embedding: `embed()` in-process (an API object, a service class, an app
 * from settings, wiring by URL, isolation), and examples/embed end to end
 * (a real process: HTTP and RPC against it, then SIGTERM, and it exits by
 * itself).
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { inject, injectable } from "tsyringe";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { App, AppContext, client } from "../../app/App.js";
import { embed } from "../../app/embed.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { close, connect, type Remote } from "../../rpc/index.js";
import { registerTransports } from "../../transports/index.js";
import { startServer, type KvAPI } from "../../examples/embed/server.js";
import { leakCheck } from "../helpers/leaks.js";
import { capture } from "./svc-helpers.js";

/** A loop for the test's own RPC clients. */
function clientLoop(): NodeLoop {
  const loop = new NodeLoop();
  registerTransports(loop);
  return loop;
}

function request(url: string, method = "GET", body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode!, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("embed an API object with one call: served on its URL, stopped with the handle, nothing left", async () => {
  const done = leakCheck();
  const h = await embed({ add: (a: number, b: number) => a + b }, { bind: "drpc+tcp://127.0.0.1:0", log: { write: () => {} } });
  assert.equal(h.name, "embedded");
  try {
    const api = await connect<{ add(a: number, b: number): number }>(h.urls[0]!, { loop: h.loop });
    assert.equal(await api.add(2, 3), 5);
    await close(api);
  } finally {
    await h.stop();
  }
  assert.equal(h.loop.pendingTimers, 0);
  await done();
});

interface EchoAPI {
  echo(s: string): string;
}

@injectable()
class Caller extends App {
  constructor(
    ctx: AppContext,
    @inject(client("echo")) readonly echo: Remote<EchoAPI>,
  ) {
    super(ctx);
  }
}

test("embedded apps see each other only when wired by URL (uses); the same inproc name on two loops is two apps", async () => {
  const loop = new VirtualLoop();
  const other = new VirtualLoop();
  await loop.run(async () => {
    const a = await embed({ echo: (s: string) => `a:${s}` }, { loop, name: "echo", bind: "drpc+inproc://echo", log: { write: () => {} } });
    const b = await embed({ echo: (s: string) => `b:${s}` }, { loop: other, name: "echo", bind: "drpc+inproc://echo", log: { write: () => {} } });
    const c = await embed(Caller, { loop, uses: { echo: "drpc+inproc://echo" }, log: { write: () => {} } });
    assert.equal(c.name, "Caller");
    assert.equal(await (c.app as Caller).echo.echo("hi"), "a:hi");
    await c.stop();
    await b.stop();
    await a.stop();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("embed an app by name from settings data; a bad target is refused", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  await loop.run(async () => {
    const h = await embed("hello", {
      loop,
      settings: { apps: { hello: { class: class Hello extends App {
        override async serve(signal: AbortSignal) {
          while (!signal.aborted) {
            this.log.info("hello");
            await this.sleep(1000).catch(() => undefined);
          }
        }
      } } } },
      log: { write: out.write, color: false },
    });
    await sleep(loop, 2500);
    await h.stop();
  });
  assert.equal(out.grep(/hello INFO Hello: hello/).length, 3);
  await assert.rejects(embed("hello", { loop }), TypeError);
  await assert.rejects(embed({ x: () => 1 }, { loop, bind: "nonsense" }), (e) => isTilthError(e, "ERR_SETTINGS"));
});

test("examples/embed in-process: HTTP and RPC share the program's store; stop closes both", { timeout: 20_000 }, async () => {
  const done = leakCheck();
  const running = await startServer({ port: 0, rpcUrl: "drpc+tcp://127.0.0.1:0", log: { write: () => {} } });
  try {
    assert.equal((await request(`${running.httpUrl}/kv/greeting`, "PUT", "hello")).status, 204);
    const kv = await connect<KvAPI>(running.rpcUrl, { loop: clientLoop() });
    try {
      assert.equal(await kv.get("greeting"), "hello");
      await kv.set("from-rpc", "42");
      assert.deepEqual(await request(`${running.httpUrl}/kv/from-rpc`), { status: 200, body: "42" });
      assert.equal(await kv.get("missing"), null);
    } finally {
      await close(kv);
    }
  } finally {
    await running.stop();
  }
  await assert.rejects(request(`${running.httpUrl}/kv/greeting`), (e) => (e as NodeJS.ErrnoException).code === "ECONNREFUSED");
  await done();
});

test("examples/embed end to end: run it, call its RPC API and its HTTP endpoint, SIGTERM, it exits by itself", { timeout: 30_000 }, async () => {
  const main = fileURLToPath(new URL("../../examples/embed/main.js", import.meta.url));
  const child = spawn(process.execPath, [main], { env: { ...process.env, PORT: "0", RPC_URL: "drpc+tcp://127.0.0.1:0" }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += String(c)));
  child.stderr.on("data", (c: Buffer) => (out += String(c)));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  try {
    const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ready line in:\n${out}`)), 15_000);
      const check = (): void => {
        const m = /ready http=(\S+) rpc=(\S+)/.exec(out);
        if (m) {
          clearTimeout(t);
          child.stdout.off("data", check);
          resolve(m);
        }
      };
      child.stdout.on("data", check);
      check();
    });
    const [, httpUrl, rpcUrl] = ready;
    assert.match(out, /kv INFO rpc: serving on drpc\+tcp:\/\/127\.0\.0\.1:\d+/);
    assert.equal((await request(`${httpUrl}/kv/a`, "PUT", "1")).status, 204);
    const kv = await connect<KvAPI>(rpcUrl!, { loop: clientLoop() });
    try {
      assert.equal(await kv.get("a"), "1");
      await kv.set("b", "2");
      assert.deepEqual(await kv.keys(), ["a", "b"]);
    } finally {
      await close(kv);
    }
    assert.deepEqual(await request(`${httpUrl}/kv/b`), { status: 200, body: "2" });
    child.kill("SIGTERM");
    // main.ts never calls process.exit: the process ends only if nothing is left open
    assert.equal(await exited, 0, out);
    assert.match(out, /SIGTERM: stopping[\s\S]*kv INFO tilth\.app: stopped[\s\S]*stopped\n/);
  } finally {
    child.kill("SIGKILL");
  }
});
