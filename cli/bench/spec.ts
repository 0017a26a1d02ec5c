/**
 * `tilth bench`'s options, usage and examples, as the help and the parser
 * read them (cli/args.ts).
 * @module
 */
import type { CommandSpec } from "../args.js";

export const BENCH: CommandSpec = {
  name: "bench",
  summary: "Load-test one method of a drpc or ZeroRPC service: calls/s, latency percentiles, errors by code.",
  usage: [
    "bench URL|APP METHOD [ARG...] [-c N] [-m M] [--rate R|R1:R2:STEP] [-d D] [-n N] [--workers K] [--json FILE] ...",
    "bench --compare A.json B.json",
  ],
  description:
    "Closed loop by default: each connection keeps --in-flight calls in flight. --rate makes an open loop: calls\n" +
    "start at a fixed rate, spread evenly, and latency counts from each call's intended start, so a server stall\n" +
    "shows for every call it delayed (coordinated omission corrected). --rate R1:R2:STEP runs one step per rate.\n" +
    "A run ends after --duration or --calls, whichever comes first (defaults: 10s, 100 million). Durations take\n" +
    "ms, s or m (a bare number is seconds). A streamed method is measured in items/s and time to first item.\n" +
    "Only loopback targets (127.0.0.0/8, ::1, localhost, inproc, ipc) unless --allow-remote. Ctrl-C prints the\n" +
    "summary so far and exits 130. Arguments parse as with tilth call; {\"$hex\": \"00ff\"} and {\"$base64\": ...} are bytes.",
  options: {
    connections: { type: "string", short: "c", value: "N", help: "connections, one client each (default 1)" },
    "in-flight": { type: "string", short: "m", value: "M", help: "calls in flight per connection (default 10; with --rate, the most in flight, default 1000)" },
    rate: { type: "string", short: "r", value: "R", help: "open loop: calls per second; R1:R2:STEP steps the rate from R1 to R2" },
    duration: { type: "string", short: "d", value: "D", help: "measured time of a run (of each rate step), e.g. 30s (default 10s)" },
    calls: { type: "string", short: "n", value: "N", help: "measured calls of a run at most (default 100000000)" },
    warmup: { type: "string", value: "D", help: "calls made and not measured first (default 1s)" },
    timeout: { type: "string", value: "MS", help: "a call's time limit in milliseconds (default 10000)" },
    args: { type: "string", value: "FILE", help: "a JSON file of argument lists, [[1, 2], [3, 4]], used in turn" },
    workers: { type: "string", short: "w", value: "K", help: "client processes (default 1); their histograms are merged" },
    json: { type: "string", value: "FILE", help: "write the whole run (histograms included) as JSON" },
    html: { type: "string", value: "FILE", help: "write a page with the latency-over-time and percentile plots" },
    svg: { type: "string", value: "FILE", help: "write the two plots as one SVG" },
    compare: { type: "boolean", help: "compare two --json files: the differences, and whether they are beyond noise" },
    "allow-remote": { type: "boolean", help: "allow a target that is not this machine" },
    live: { type: "boolean", help: "print the live line even when stderr is not a terminal" },
    settings: { type: "string", short: "s", value: "FILE", help: "the settings file, for APP" },
    worker: { type: "string", hidden: true, help: "run as worker I of K" },
  },
  positionalsBeforeArgs: 2,
  examples: [
    ["bench drpc+tcp://127.0.0.1:9990 ping -c 4 -m 50 -d 30s", "closed loop: 4 connections, 50 calls in flight each, 30 s"],
    ["bench ping ping --rate 20000 --json run.json", "open loop at 20 000 calls/s against app ping; the run as JSON"],
    ["bench zrpc+tcp://127.0.0.1:4242 add 1 2 --rate 1000:10000:1000 -d 5s", "rate steps: where does latency break?"],
    ["bench calc add --args args.json --workers 2 --html run.html", "arguments from a file, two client processes, plots"],
    ["bench --compare before.json after.json", "the difference of two runs, with a verdict"],
  ],
};
