/**
 * Run the gateway:
 *
 *     ZMQ_PUB=zmq+tcp://127.0.0.1:5556 PORT=8080 node dist/examples/gateway/main.js
 *
 * then open http://127.0.0.1:8080/ and publish on the PUB socket
 * (`[topic, text]` messages). With `ZRPC_PUB=tcp://127.0.0.1:4244
 * ZRPC_EVENTS=price,alert` it also takes the events `price` and `alert` of
 * the ZeroRPC publisher bound there (topics `zrpc:price`, `zrpc:alert`);
 * `ZMQ_PUB=` (empty) leaves ZeroMQ out. With `--express` the page and the
 * gateway are mounted on an Express app (express.ts) instead of the
 * gateway's own HTTP server. Ctrl-C stops it.
 */
import { NodeLoop } from "tilth/adapters/node";
import { registerTransports } from "tilth/transports";
import { startExpressGateway } from "./express.js";
import { startGateway, type GatewayOptions } from "./gateway.js";

const loop = registerTransports(new NodeLoop());
const env = process.env;
const options: GatewayOptions = { loop };
const zmqPub = env.ZMQ_PUB ?? "zmq+tcp://127.0.0.1:5556";
if (zmqPub !== "") options.zmqPub = zmqPub;
if (env.ZRPC_PUB) {
  const events = (env.ZRPC_EVENTS ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (events.length === 0) throw new Error("ZRPC_PUB needs ZRPC_EVENTS: the names of the events to forward, comma-separated");
  options.zrpc = { url: env.ZRPC_PUB, events };
}
const port = Number(env.PORT ?? 8080);
const running = process.argv.includes("--express") ? await startExpressGateway(port, options) : await startGateway(port, options);
process.stdout.write(`gateway at ${running.url}\n`);
const stop = (): void => {
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  void running.stop();
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
