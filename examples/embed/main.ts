/**
 * Run the embed example:
 *
 *     node dist/examples/embed/main.js        # PORT=8080 RPC_URL=drpc+tcp://127.0.0.1:9993 by default
 *     curl -X PUT -d hello http://127.0.0.1:8080/kv/greeting
 *     tilth call drpc+tcp://127.0.0.1:9993 get '"greeting"'
 *
 * Ctrl-C (or SIGTERM) stops tilth and the HTTP server; the process then ends
 * by itself, because nothing is left open.
 */
import { startServer } from "./server.js";

const running = await startServer({
  port: Number(process.env.PORT ?? 8080),
  rpcUrl: process.env.RPC_URL ?? "drpc+tcp://127.0.0.1:9993",
});
process.stdout.write(`ready http=${running.httpUrl} rpc=${running.rpcUrl}\n`);

const onSignal = (sig: NodeJS.Signals): void => {
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  process.stdout.write(`${sig}: stopping\n`);
  running.stop().then(
    () => process.stdout.write("stopped\n"),
    (e: unknown) => {
      process.stderr.write(`stop failed: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
