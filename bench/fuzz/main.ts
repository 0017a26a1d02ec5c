/**
 * `npm run fuzz -- [--target drpc|zrpc|msgpack|framing]… [--cases N] [--seed S] [--path P] [--tcp] [--allow-known [IDS]]`
 *
 * Property-based and mutation fuzzing of tilth's protocols against a live
 * server (see docs/operators.md, "Fuzzing and soak"). Each target runs in a
 * worker process of its own, so that a crash of the process is a finding
 * too: the supervisor names the case that was running and how to replay it.
 *
 * Options:
 *   --target T        drpc, zrpc, msgpack or framing (repeat, or a comma list; default all)
 *   --cases N         cases per target (default 10000; 1 with --path)
 *   --seed S          fast-check seed (default: a random one, printed)
 *   --path P          replay from a fast-check path (as a finding prints it)
 *   --tcp             over tcp on 127.0.0.1 (zrpc: zmq+tcp) in real time, instead of inproc in virtual time
 *   --allow-known [IDS]  count known issues (all, or a comma list) and go on instead of failing
 *   --control-ms MS   bound on each control call (default 2000)
 *   --case-mem-mib N  memory a case may hold with its connection open (default 32)
 *   --run-mem-mib N   growth of memory over a run that is a finding (default 64)
 *   --in-process      run the targets in this process (no crash detection)
 *
 * Exit status: 0 when no finding, 1 with findings, 2 for a usage error.
 */
import { fileURLToPath } from "node:url";
import { cli } from "./cli.js";

cli(process.argv.slice(2), { script: fileURLToPath(import.meta.url) }).then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(e);
    process.exitCode = 2;
  },
);
