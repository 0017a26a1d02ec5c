/**
 * The gateway embedded in an Express app: Express serves the page, the
 * browser client and routes of its own (`/stats` here); `attachGateway`
 * takes only the WebSocket upgrades of `/rpc` on the `http.Server` that
 * `app.listen()` returns.
 */
import type http from "node:http";
import express from "express";
import { attachOwned, clientBundle, type GatewayOptions, type RunningGateway } from "./gateway.js";
import { page } from "./page.js";

const RPC_PATH = "/rpc";

/** The gateway on an Express app listening on 127.0.0.1:`port` (0: any). */
export async function startExpressGateway(port: number, options: GatewayOptions): Promise<RunningGateway> {
  const app = express();
  let running: RunningGateway | undefined;
  app.get("/", (_req, res) => {
    res.type("html").send(page(RPC_PATH));
  });
  app.get("/tilth-browser.js", (_req, res, next) => {
    clientBundle().then((js) => void res.type("text/javascript").send(js), next);
  });
  // An Express route of the app's own, beside the gateway.
  app.get("/stats", (_req, res) => {
    const gw = running?.gateway;
    res.json({ received: gw?.received ?? 0, topics: gw ? [...gw.topics].sort() : [], subscriptions: gw?.activeStreams ?? 0 });
  });
  const server: http.Server = await new Promise((resolve, reject) => {
    const s = app.listen(port, "127.0.0.1", (e?: Error) => (e ? reject(e) : resolve(s)));
  });
  running = await attachOwned(server, RPC_PATH, options);
  return running;
}
