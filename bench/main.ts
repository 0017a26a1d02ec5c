/**
 * `npm run bench -- [suite…] [--quick] [--json FILE] [--pin]`
 *
 * Runs the named suites (all when none is named), shows a live line per
 * scenario, prints a table of ratios against the same-run baselines and, with
 * `--json`, writes `{ suite, results }` (one object per suite; several suites
 * give an array of them).
 */
import { writeFileSync } from "node:fs";
import type { BenchResult, Suite } from "./lib.js";
import { formatRate } from "./lib.js";

const ALL = ["core", "transports", "rpc", "zmq", "rxjs", "peers"];

function usage(): never {
  console.error(`usage: npm run bench -- [${ALL.join("|")}]… [--quick] [--pin] [--json FILE]`);
  process.exit(2);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let json: string | undefined;
  let quick = false;
  let pin = false;
  const suites: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--quick") quick = true;
    else if (a === "--pin") pin = true;
    else if (a === "--json") json = argv[++i] ?? usage();
    else if (a === "--help" || a === "-h") usage();
    else if (a.startsWith("-")) usage();
    else suites.push(a);
  }
  const names = suites.length ? suites : ALL;
  const out: { suite: string; results: BenchResult[] }[] = [];
  const tty = process.stderr.isTTY;
  const progress = (line: string): void => {
    if (tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  };
  for (const name of names) {
    let mod: { run?: Suite; tables?: (results: BenchResult[]) => string };
    try {
      mod = (await import(`./${name}.js`)) as typeof mod;
    } catch (e) {
      if (suites.length === 0 && (e as { code?: string }).code === "ERR_MODULE_NOT_FOUND") continue;
      throw e;
    }
    if (!mod.run) throw new Error(`bench suite "${name}" exports no run()`);
    progress(`[${name}] starting${quick ? " (quick)" : ""}`);
    const results = await mod.run({ quick, pin, progress: (l) => progress(`[${name}] ${l}`) });
    if (tty) process.stderr.write("\r\x1b[K");
    out.push({ suite: name, results });
    // A suite may print its own tables (peers: one per scenario).
    if (mod.tables) console.log(`\n## ${name}\n\n${mod.tables(results)}`);
    else printTable(name, results);
  }
  if (json) {
    writeFileSync(json, JSON.stringify(out.length === 1 ? out[0] : out, null, 2) + "\n");
    console.log(`wrote ${json}`);
  }
}

function printTable(suite: string, results: BenchResult[]): void {
  const rows = results.map((r) => [
    r.name,
    `${formatRate(r.value)} ${r.unit}`,
    r.baseline,
    `${formatRate(r.baselineValue)} ${r.unit}`,
    r.ratio.toFixed(2),
  ]);
  const head = ["scenario", "tilth", "baseline", "baseline value", "ratio"];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(`\n## ${suite}\n`);
  console.log(line(head));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of rows) console.log(line(r));
  console.log("");
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
