/**
 * Run the gateway:
 *
 *     ZMQ_PUB=zmq+tcp://127.0.0.1:5556 PORT=8080 node dist/examples/gateway/main.js
 *
 * then open http://127.0.0.1:8080/ and publish on the PUB socket
 * (`[topic, text]` messages). Ctrl-C stops it.
 */
import { NodeLoop } from "tilth/adapters/node";
import { registerTransports } from "tilth/transports";
import { startGateway } from "./gateway.js";

const loop = registerTransports(new NodeLoop());
const running = await startGateway(Number(process.env.PORT ?? 8080), { loop, zmqPub: process.env.ZMQ_PUB ?? "zmq+tcp://127.0.0.1:5556" });
process.stdout.write(`gateway at ${running.url}\n`);
const stop = (): void => {
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  void running.stop();
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
