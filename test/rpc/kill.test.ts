/**
 * A server process killed mid-call (SIGKILL): the pending call fails with
 * ERR_CONNECTION_LOST; once a server is back on the same address, the same
 * client proxy works again.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";

const script = fileURLToPath(new URL("./child-server.js", import.meta.url));

async function startServer(url: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [script, url], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    if (out.includes("\n")) break;
  }
  const bound = out.trim();
  assert.match(bound, /^drpc\+tcp:\/\/127\.0\.0\.1:\d+$/, `child printed ${JSON.stringify(out)}`);
  return { child, url: bound };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill(signal);
  await exited;
}

test("server killed mid-call: connection-lost, then the same proxy works against the restarted server", { timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  let first = await startServer("drpc+tcp://127.0.0.1:0");
  let second: { child: ChildProcess; url: string } | undefined;
  const api = await connect<{ ping(): string; pid(): number; hang(): void }>(first.url, { loop });
  try {
    const pid1 = await api.pid();
    assert.equal(pid1, first.child.pid);
    const pending = api.hang();
    pending.catch(() => {});
    await stop(first.child, "SIGKILL");
    await assert.rejects(pending, (e) => isTilthError(e, "ERR_CONNECTION_LOST"));

    second = await startServer(first.url); // the same address
    assert.equal(await api.ping(), "pong");
    assert.equal(await api.pid(), second.child.pid);
  } finally {
    await close(api);
    await stop(first.child, "SIGKILL");
    if (second) await stop(second.child, "SIGTERM");
  }
  await done();
});
