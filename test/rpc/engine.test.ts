/**
 * The call engine and the lifecycle of servers and clients, the same for
 * every protocol: each test runs over drpc and zrpc (inproc, virtual time),
 * and over drpc's in-process calls (drpc+local).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { from, interval, map, take } from "rxjs";
import { VirtualLoop } from "../../adapters/virtual.js";
import { toRxScheduler } from "../../adapters/rxjs.js";
import { TimeoutError, isTilthError } from "../../core/errors.js";
import type { Connection } from "../../core/Transport.js";
import { Scope } from "../../core/Scope.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient, RpcError, RpcServer, close, connect, contextual, serve, withOptions, type CallContext, type Middleware } from "../../rpc/index.js";

const setup = (): VirtualLoop => registerTransports(new VirtualLoop({ stallWarningMs: 0 }));
/** drpc and zrpc over inproc (encoded), and drpc's in-process calls (no encoding): one engine under all three. */
const PROTOCOLS = ["drpc", "zrpc", "local"] as const;
let n = 0;
const url = (p: string): string => (p === "local" ? `drpc+local://engine-${n++}` : `${p}+inproc://engine-${n++}`);

for (const p of PROTOCOLS) {
  test(`${p}: a handler that returns an Observable streams its items`, async () => {
    const loop = setup();
    await loop.run(async () => {
      const sched = toRxScheduler(loop);
      const server = await serve(
        {
          letters: () => from(["a", "b", "c"]),
          ticks: (k: number) => interval(10, sched).pipe(take(k), map((i) => i * 2)),
        },
        url(p),
        { loop },
      );
      const api = await connect<{ letters(): AsyncIterable<string>; ticks(k: number): AsyncIterable<number> }>(server.urls[0]!, { loop });
      const got: unknown[] = [];
      for await (const x of api.letters()) got.push(x);
      for await (const x of api.ticks(3)) got.push(x);
      assert.deepEqual(got, ["a", "b", "c", 0, 2, 4]);
      await close(api);
      await server.close();
    });
  });

  test(`${p}: middleware may be async; hooks run in one documented order; a refusing before hook answers with its code`, async () => {
    const loop = setup();
    const log: string[] = [];
    await loop.run(async () => {
      const mw: Middleware = {
        async before(ctx) {
          log.push(`before ${ctx.method}`);
          await sleep(loop, 50); // an auth lookup
          if (ctx.method === "secret") throw new RpcError("ERR_DENIED", "no token");
        },
        after(ctx) {
          log.push(`after ${ctx.method}`);
        },
        async error(ctx, e) {
          await sleep(loop, 10);
          log.push(`error ${ctx.method} ${(e as { code?: string }).code}`);
        },
      };
      const server = await serve(
        {
          ok: () => {
            log.push("handler ok");
            return 1;
          },
          boom: () => {
            log.push("handler boom");
            throw new RpcError("ERR_BOOM", "boom");
          },
          secret: () => {
            log.push("handler secret");
            return "leaked";
          },
        },
        url(p),
        { loop, middleware: [mw] },
      );
      const api = await connect<{ ok(): Promise<number>; boom(): Promise<never>; secret(): Promise<string> }>(server.urls[0]!, { loop });
      const t0 = loop.now();
      assert.equal(await api.ok(), 1);
      log.push("client got ok");
      assert.equal(loop.now() - t0, 50, "the answer waited for the async before hook");
      await api.boom().catch((e: unknown) => log.push(`client got ${(e as { code: string }).code}`));
      await api.secret().catch((e: unknown) => log.push(`client got ${(e as { code: string }).code}: ${(e as Error).message}`));
      await close(api);
      await server.close();
    });
    assert.deepEqual(log, [
      "before ok",
      "handler ok",
      "after ok",
      "client got ok",
      "before boom",
      "handler boom",
      "error boom ERR_BOOM",
      "client got ERR_BOOM",
      "before secret",
      "error secret ERR_DENIED",
      "client got ERR_DENIED: no token",
    ]);
  });

  test(`${p}: client middleware may be async too; client and server hooks run in one order; what a client hook throws is the call's error with its code`, async () => {
    const loop = setup();
    const log: string[] = [];
    let handled = 0;
    const hooks = (side: string): Middleware => ({
      async before(ctx) {
        await sleep(loop, 10); // a token lookup
        log.push(`${side} before ${ctx.method}`);
        if (side === "client" && ctx.method === "denied") throw new RpcError("ERR_NO_TOKEN", "no token on the client");
      },
      async after(ctx, result) {
        await sleep(loop, 10);
        log.push(`${side} after ${ctx.method} ${String(result)}`);
        if (side === "client" && ctx.method === "checked") throw new RpcError("ERR_CHECK", "the client refused the result");
      },
      async error(ctx, e) {
        await sleep(loop, 10);
        log.push(`${side} error ${ctx.method} ${(e as { code?: string }).code}`);
      },
    });
    await loop.run(async () => {
      const answer = (v: number) => () => {
        handled++;
        return v;
      };
      const server = await serve({ ok: answer(1), denied: answer(2), checked: answer(3) }, url(p), { loop, middleware: [hooks("server")] });
      const api = await connect<{ ok(): number; denied(): number; checked(): number }>(server.urls[0]!, { loop, middleware: [hooks("client")] });
      await api.ok(); // connected
      log.length = 0;
      const t0 = loop.now();
      assert.equal(await api.ok(), 1);
      assert.equal(loop.now() - t0, 40, "the four hooks waited in turn, 10 ms each");
      await assert.rejects(api.denied(), (e) => isTilthError(e, "ERR_NO_TOKEN") && (e as Error).message === "no token on the client");
      await assert.rejects(api.checked(), (e) => isTilthError(e, "ERR_CHECK") && (e as Error).message === "the client refused the result");
      await close(api);
      await server.close();
    });
    assert.deepEqual(log, [
      "client before ok",
      "server before ok",
      "server after ok 1",
      "client after ok 1",
      "client before denied",
      "client error denied ERR_NO_TOKEN",
      "client before checked",
      "server before checked",
      "server after checked 3",
      "client after checked 3",
      "client error checked ERR_CHECK",
    ]);
    assert.equal(handled, 3, "the call the client refused never reached the server");
  });

  test(`${p}: a call's time limit error names the limit the caller set, even when connecting took part of it`, async () => {
    const loop = setup();
    await loop.run(async () => {
      const u = url(p);
      const hold = contextual((ctx: CallContext) => new Promise((_r, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))));
      let server: RpcServer | undefined;
      loop.timer(300, () => void serve({ hold }, u, { loop }).then((s) => (server = s)));
      const api = await import("../../rpc/index.js").then(({ RpcClient, remoteOf }) => remoteOf<{ hold(): Promise<never> }>(new RpcClient(u, { loop, waitForReady: true })));
      const t0 = loop.now();
      await assert.rejects(withOptions(api, { timeout: 1500 }).hold(), (e: unknown) => e instanceof TimeoutError && e.limitMs === 1500 && /1500 ms/.test(e.message));
      assert.equal(loop.now() - t0, 1500);
      await close(api);
      await server?.close();
    });
  });

  test(`${p}: listen() still binding when close() runs: the listener is closed and listen rejects ERR_CLOSED`, async () => {
    const loop = setup();
    await loop.run(async () => {
      const server = new RpcServer({ ping: () => "pong" }, { loop });
      const u = url(p);
      const listening = server.listen(u);
      const closing = server.close();
      await closing;
      if (p === "local") {
        // In-process, binding takes no time: it was bound before close() began, and close() unbound it.
        assert.equal(await listening, u);
        await assert.rejects(connect(u, { loop }), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"));
        return;
      }
      await assert.rejects(listening, (e) => isTilthError(e, "ERR_CLOSED"));
      await assert.rejects(loop.connect(u.slice(5)), (e) => isTilthError(e, "ERR_CONNECTION_REFUSED"));
      assert.deepEqual(server.urls, []);
    });
  });

  // A server that reads nothing is a stopped process at the other end of a connection; in-process there is none.
  if (p !== "local") test(`${p}: closing a client whose server never answers is bounded by the close timeout, whatever the heartbeat`, async () => {
    const loop = setup();
    await loop.run(async () => {
      // A server that accepts and then reads nothing, ever (a stopped process: not even the client's end is read).
      const u = url(p);
      const listener = await loop.listen(u.slice(5));
      const accepted: Connection[] = [];
      listener.start((conn) => void accepted.push(conn));
      const api = await import("../../rpc/index.js").then(({ RpcClient, remoteOf }) => remoteOf<{ add(a: number, b: number): Promise<number> }>(new RpcClient(u, { loop })));
      await assert.rejects(withOptions(api, { timeout: 1500 }).add(1, 2), (e) => isTilthError(e, "ERR_TIMEOUT"));
      const t0 = loop.now();
      await close(api);
      assert.ok(loop.now() - t0 <= 2000, `close took ${loop.now() - t0} ms`);
      for (const c of accepted) c.destroy();
      await listener.close();
    });
  });
}

test("a server and a client given a scope live in it: closing the scope closes both, gracefully", async () => {
  const loop = setup();
  await loop.run(async () => {
    const scope = new Scope(loop, { name: "app" });
    const done: string[] = [];
    const server = await serve({ slow: async () => { await sleep(loop, 100); done.push("slow finished"); return 1; } }, url("drpc"), { loop, scope });
    const client = new RpcClient(server.urls[0]!, { loop, scope });
    const pending = client.call("slow", []);
    await sleep(loop, 10);
    await scope.close();
    assert.equal(await pending, 1, "the call in flight finished in the grace period");
    assert.deepEqual(done, ["slow finished"]);
    await assert.rejects(client.call("slow", []), (e) => isTilthError(e, "ERR_CLOSED"));
    await assert.rejects(server.listen(url("drpc")), (e) => isTilthError(e, "ERR_CLOSED"));
  });
});

test("rpc/ and its protocols import no rxjs (an Observable is recognised by its shape)", () => {
  const root = fileURLToPath(new URL("../../../rpc/", import.meta.url));
  const files = (dir: string): string[] => readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : f.endsWith(".ts") ? [join(dir, f)] : []));
  const offenders = files(root).filter((f) => /from\s+["'](rxjs|[./]+adapters\/rxjs[^"']*)["']/.test(readFileSync(f, "utf8")));
  assert.deepEqual(offenders, []);
});

test("rpc/Client.ts and rpc/Server.ts import no protocol folder (protocols register themselves)", () => {
  const root = fileURLToPath(new URL("../../../rpc/", import.meta.url));
  for (const f of ["Client.ts", "Server.ts", "ServerCalls.ts", "ClientCalls.ts", "protocol.ts", "protocols.ts"]) {
    const src = readFileSync(join(root, f), "utf8");
    assert.doesNotMatch(src, /from\s+["']\.\/(drpc|zerorpc)\//, `${f} imports a protocol folder`);
  }
});
