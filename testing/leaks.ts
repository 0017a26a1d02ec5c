/**
 * Leak checks for tests: a test proves it leaves no timer, socket, server or
 * child process behind by comparing Node's active resources before and after
 * (libuv's `MAKE_VALGRIND_HAPPY`, for a Node process). It waits on host
 * turns and real time, as it must: it watches the host, not a loop.
 *
 * @example
 * ```ts
 * import { leakCheck } from "tilth/testing";
 * test("closes cleanly", async () => {
 *   const done = leakCheck();
 *   ... // open and close things
 *   await done(); // throws if a handle outlives the test
 * });
 * ```
 * @module
 */
import assert from "node:assert/strict";

function counts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Snapshot the active resources now; the returned function waits a few turns
 * (closing sockets need one or two) and fails if any kind grew.
 */
export function leakCheck(): () => Promise<void> {
  const before = counts();
  return async () => {
    let grown: string[] = [];
    for (let i = 0; i < 50; i++) {
      await turn();
      const after = counts();
      grown = [];
      for (const [k, n] of after) {
        const was = before.get(k) ?? 0;
        if (n > was && k !== "Immediate") grown.push(`${k}: ${was} -> ${n}`);
      }
      if (grown.length === 0) return;
      // Sockets report closed a little after close(); give them real time.
      if (i > 5) await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail(`resources left behind: ${grown.join(", ")}`);
  };
}
