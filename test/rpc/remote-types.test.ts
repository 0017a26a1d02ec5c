/**
 * The client-side type of an API (`Remote<T>`): this file compiling is half
 * the test. A handler returning an Observable streams, so its remote method
 * is an async iterable (`for await` over it compiles: TS2504 before), as an
 * async generator's is; plain handlers are promises.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Observable, interval, map, take } from "rxjs";
import { VirtualLoop } from "../../adapters/virtual.js";
import { toRxScheduler } from "../../adapters/rxjs.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, serve, type Remote, type RemoteCall, type RemoteStream } from "../../rpc/index.js";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

function api(loop: VirtualLoop) {
  const scheduler = toRxScheduler(loop);
  return {
    ticks: (n: number): Observable<string> => interval(10, scheduler).pipe(take(n), map((i) => `tick ${i}`)),
    async *count(n: number) {
      for (let i = 0; i < n; i++) yield i;
    },
    add: (a: number, b: number) => a + b,
    later: async () => "done",
    _hidden: () => 1,
  };
}
type R = Remote<ReturnType<typeof api>>;

export type Checks = [
  Expect<Equal<ReturnType<R["ticks"]>, RemoteStream<string>>>,
  Expect<Equal<Parameters<R["ticks"]>, [n: number]>>,
  Expect<Equal<ReturnType<R["count"]>, RemoteStream<number>>>,
  Expect<Equal<ReturnType<R["add"]>, RemoteCall<number>>>,
  Expect<Equal<ReturnType<R["later"]>, RemoteCall<string>>>,
  Expect<Equal<keyof R, "ticks" | "count" | "add" | "later">>,
];

test("a handler returning an Observable is an async iterable on Remote<T>, and streams", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve(api(loop), "drpc+inproc://types", { loop });
    const remote = await connect<ReturnType<typeof api>>("drpc+inproc://types", { loop });
    const got: string[] = [];
    for await (const t of remote.ticks(3)) got.push(t.toUpperCase()); // t: string
    assert.deepEqual(got, ["TICK 0", "TICK 1", "TICK 2"]);
    assert.equal(await remote.add(2, 3), 5);
    await close(remote);
    await server.close();
  });
});
