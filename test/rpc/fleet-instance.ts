/**
 * One instance of the `fleet` test service in its own process, for the tests
 * that start, stop (SIGTERM: graceful) and kill (SIGKILL) instances. Serves on
 * the URL in argv[2]; prints `ready PID URL` once it listens, `start TAG` when a
 * call begins, `stopping` when SIGTERM arrives and `stopped` when the server
 * has closed (calls and streams in flight done). argv[3]: heartbeat ms.
 */
import { NodeLoop } from "../../adapters/node.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { serve } from "../../rpc/index.js";

const loop = registerTransports(new NodeLoop());
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const server = await serve(
  {
    /** Answers this process's pid after `ms` (0: at once); `tag` names the call in the log. */
    async work(tag: string, ms: number): Promise<number> {
      say(`start ${tag}`);
      if (ms > 0) await sleep(loop, ms);
      return process.pid;
    },
    /** `n` items, `ms` apart, each this process's pid. */
    async *count(tag: string, n: number, ms: number): AsyncGenerator<number> {
      say(`start ${tag}`);
      for (let i = 0; i < n; i++) {
        if (ms > 0) await sleep(loop, ms);
        yield process.pid;
      }
    },
  },
  process.argv[2]!,
  { loop, heartbeatMs: Number(process.argv[3] ?? 5000) },
);
say(`ready ${process.pid} ${server.urls[0]}`);
process.once("SIGTERM", () => {
  say("stopping");
  void server.close({ graceMs: 10_000 }).then(() => {
    say("stopped");
    process.exit(0);
  });
});
