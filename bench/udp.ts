/**
 * The udp rows of `npm run bench -- transports`: echo round trips per second
 * over udp:// (tilth on both sides: a listener with a conversation per peer,
 * `loop.connect` conversations), sequential (1 in flight) and 100 in flight
 * with 16 B datagrams, and 1000 concurrent conversations on one listener
 * (one in flight each); each against a raw node:dgram echo of the same shape
 * in the same run, interleaved (bench/udp/echo.ts). Client and server are
 * separate processes. A datagram unanswered for 1 s counts as lost and is
 * replaced on both sides alike; `extra.lost` reports them.
 */
import { fileURLToPath } from "node:url";
import { type BenchResult, type SuiteOptions, formatRate, median, result } from "./lib.js";
import { echoRun, rate, round, type EchoRun, type Timing } from "./transports.js";

const script = fileURLToPath(new URL("./udp/echo.js", import.meta.url));

export async function udpRows({ quick, pin, progress }: Pick<SuiteOptions, "quick" | "pin" | "progress">): Promise<BenchResult[]> {
  const timing: Timing = quick ? { warmupMs: 100, runMs: 300, pin } : { warmupMs: 300, runMs: 1500, pin };
  const repeats = quick ? 1 : 3;
  const shapes = [
    { label: "sequential 16 B", size: 16, inflight: 1, peers: 1 },
    { label: "x100 in flight 16 B", size: 16, inflight: 100, peers: 1 },
    { label: "1000 conversations, 1 in flight each, 16 B", size: 16, inflight: 1, peers: 1000 },
  ];
  const out: BenchResult[] = [];
  for (const shape of shapes) {
    const raw: EchoRun[] = [];
    const mine: EchoRun[] = [];
    for (let rep = 0; rep < repeats; rep++) {
      for (const kind of ["raw", "tilth"] as const) {
        progress(`udp ${shape.label}: ${kind === "raw" ? "raw node:dgram" : "tilth"} (run ${rep + 1}/${repeats})`);
        (kind === "raw" ? raw : mine).push(await echoRun(kind, "udp://127.0.0.1:0", shape.size, shape.inflight, timing, script, [String(shape.peers)]));
      }
    }
    const extra: Record<string, unknown> = {
      pinned: pin ? "taskset -c 0 (client and server)" : false,
      runs: mine.map((r) => Math.round(rate(r))),
      baselineRuns: raw.map((r) => Math.round(rate(r))),
      spread: `${formatRate(Math.min(...mine.map(rate)))}..${formatRate(Math.max(...mine.map(rate)))}`,
      lost: mine.map((r) => (r as EchoRun & { lost?: number }).lost ?? 0),
      baselineLost: raw.map((r) => (r as EchoRun & { lost?: number }).lost ?? 0),
    };
    if (shape.inflight === 1 && shape.peers === 1) {
      extra.p50_us = round(median(mine.map((r) => r.p50)));
      extra.p99_us = round(median(mine.map((r) => r.p99)));
      extra.baseline_p50_us = round(median(raw.map((r) => r.p50)));
      extra.baseline_p99_us = round(median(raw.map((r) => r.p99)));
    }
    out.push(result(`udp ${shape.label}`, "round trips/s", median(mine.map(rate)), "raw node:dgram echo, 1 send/datagram", median(raw.map(rate)), extra));
  }
  return out;
}
