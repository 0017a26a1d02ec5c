/**
 * The gateway (examples/gateway) in a real headless Chromium: a message
 * published on ZeroMQ appears in the page within 100 ms, and so does an event
 * of a ZeroRPC publisher (tilth's zrpcEmitter over zmq+tcp); a call from the
 * page returns; a stream cancelled from the page stops the server's
 * generator; the page carries on after the gateway restarts; the Express
 * variant's page connects and calls. Saves a screenshot to
 * test-output/gateway.png. Needs /usr/bin/chromium
 * (scripts/setup-browser.mjs installs it) and the optional zeromq package.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import type { Connection, Listener } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";
import { zrpcEmitter } from "../../rpc/index.js";
import { startExpressGateway } from "../../examples/gateway/express.js";
import { startGateway, type GatewayOptions, type RunningGateway } from "../../examples/gateway/gateway.js";

// The page's globals, inside page.evaluate / waitForFunction (no DOM library in this project's types).
declare const document: any;
declare const window: any;

const CHROMIUM = "/usr/bin/chromium";
const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
let zmqOk = true;
try {
  await import("zeromq");
} catch {
  zmqOk = false;
}
const skip = !existsSync(CHROMIUM)
  ? "needs Chromium at /usr/bin/chromium: run `sudo apt-get install -y chromium` (or node scripts/setup-browser.mjs as root)"
  : !zmqOk
    ? "needs the optional zeromq package (npm install zeromq)"
    : false;

/** Wait for something the browser or the network does (real time: a real browser), bounded. */
const until = async (what: string, f: () => boolean | Promise<boolean>, ms = 5000): Promise<void> => {
  const end = performance.now() + ms;
  while (!(await f())) {
    if (performance.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test("the gateway page in headless Chromium: live ZeroMQ messages and ZeroRPC events, a call, cancellation, a server restart, the Express variant", { skip, timeout: 120_000 }, async () => {
  const { chromium } = await import("playwright-core");
  const loop = registerTransports(new NodeLoop());
  const pubListener: Listener = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "pub" });
  const pub: Connection = await new Promise((r) => pubListener.start(r));
  pub.start({ message() {}, end() {} });
  const events = await zrpcEmitter(loop, "pub", "zrpc+tcp://127.0.0.1:*", { bind: true });
  const options: GatewayOptions = { loop, zmqPub: pubListener.url, zrpc: { url: events.endpoint, events: ["alert"] }, maxQueued: 64 };
  let gw: RunningGateway = await startGateway(0, options);
  const port = Number(new URL(gw.url).port);
  const profile = mkdtempSync(join(tmpdir(), "tilth-chromium-"));
  // A fresh profile (--user-data-dir, which playwright passes for a persistent context).
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.goto(gw.url);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "connected", undefined, { timeout: 10_000 });
    await page.click("#subscribe");
    await until("the subscription", () => gw.gateway.activeStreams === 1);
    // The SUB socket may join a moment after connect: publish until the first arrives.
    await until("the first message through", async () => {
      pub.send([Buffer.from("prices"), Buffer.from("warm-up")]);
      return (await page.evaluate(() => window.gateway.received)) > 0;
    });
    // A message published on ZeroMQ appears in the page within 100 ms.
    // Measured in the page: the wall clock (one machine, one clock) when the message was in the DOM,
    // less when it was published; the test's own polling of the page does not count.
    const t0 = Date.now();
    pub.send([Buffer.from("prices"), Buffer.from("EURUSD 1.0842")]);
    await page.waitForFunction(() => document.querySelector("#messages li")?.textContent === "prices: EURUSD 1.0842", undefined, { timeout: 2000 });
    const ms = (await page.evaluate(() => window.gateway.lastAt as number)) - t0;
    console.log(`ZeroMQ to page: ${ms.toFixed(1)} ms`);
    assert.ok(ms <= 100, `the message took ${ms.toFixed(1)} ms to appear`);
    // A ZeroRPC event too (its SUB socket may also join late: emit until one arrives).
    await until("the first ZeroRPC event through", async () => {
      events.emit("alert", "warm-up");
      return await page.evaluate(() => [...document.querySelectorAll("#messages li")].some((li: any) => li.textContent.startsWith("zrpc:alert")));
    });
    const t1 = Date.now();
    events.emit("alert", "margin call");
    await page.waitForFunction(() => document.querySelector("#messages li")?.textContent === "zrpc:alert: margin call", undefined, { timeout: 2000 });
    const zrpcMs = (await page.evaluate(() => window.gateway.lastAt as number)) - t1;
    console.log(`ZeroRPC event to page: ${zrpcMs.toFixed(1)} ms`);
    assert.ok(zrpcMs <= 100, `the event took ${zrpcMs.toFixed(1)} ms to appear`);
    // A call from the page returns.
    await page.click("#call");
    await page.waitForFunction(() => document.getElementById("result")?.textContent?.startsWith("time() = "), undefined, { timeout: 5000 });
    await page.click("#refresh");
    await page.waitForFunction(() => document.getElementById("topics")?.textContent === "prices, zrpc:alert");
    // Cancelling from the page stops the server's generator.
    await page.click("#unsubscribe");
    await until("the generator to stop", () => gw.gateway.activeStreams === 0);
    // The gateway restarts (same port): the page carries on.
    await page.click("#subscribe");
    await until("the second subscription", () => gw.gateway.activeStreams === 1);
    await gw.stop();
    gw = await startGateway(port, options);
    await until("the page to subscribe again", () => gw.gateway.activeStreams === 1, 15_000);
    await until("a message after the restart", async () => {
      pub.send([Buffer.from("news"), Buffer.from("after restart")]);
      return await page.evaluate(() => [...document.querySelectorAll("#messages li")].some((li: any) => li.textContent === "news: after restart"));
    });
    await page.click("#call");
    await page.waitForFunction(() => document.getElementById("result")?.textContent?.startsWith("time() = "), undefined, { timeout: 10_000 });
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "connected", undefined, { timeout: 10_000 });
    mkdirSync(join(root, "test-output"), { recursive: true });
    await page.screenshot({ path: join(root, "test-output", "gateway.png"), fullPage: true });
    // The Express variant: its page (served by Express) connects over /rpc and calls.
    const ex = await startExpressGateway(0, options);
    try {
      const page2 = await browser.newPage();
      await page2.goto(ex.url);
      await page2.waitForFunction(() => document.getElementById("status")?.textContent === "connected", undefined, { timeout: 10_000 });
      await page2.click("#call");
      await page2.waitForFunction(() => document.getElementById("result")?.textContent?.startsWith("time() = "), undefined, { timeout: 5000 });
      await page2.close();
    } finally {
      await ex.stop();
    }
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
    await gw.stop();
    await events.close();
    await pub.close();
    await pubListener.close();
  }
});
