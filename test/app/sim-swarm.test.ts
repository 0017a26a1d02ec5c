/**
 * The swarm: 100 seeds of the ping pair and 100 of the 3-app system (a
 * client, a queue service and a store, with periodic tasks and streams)
 * under the chaos fault profile. Every invariant must hold on every seed; a
 * failing seed is printed with the command that replays it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Settings } from "../../app/Settings.js";
import { simulate } from "../../app/simulation.js";
import pingSettings from "../../examples/ping/settings.js";
import systemSettings from "../../examples/sim/settings.js";

const SEEDS = 100;

const systems = [
  { name: "the ping pair", file: "dist/examples/ping/settings.js", data: pingSettings, apps: ["ping", "long_running"], durationMs: 300_000, duration: "5m" },
  { name: "the 3-app system", file: "dist/examples/sim/settings.js", data: systemSettings, apps: ["store", "queue", "client"], durationMs: 120_000, duration: "2m" },
];

for (const s of systems) {
  test(`swarm: ${SEEDS} seeds of ${s.name} under chaos, every invariant held`, async (t) => {
    const settings = Settings.from(s.data);
    const failures: string[] = [];
    let calls = 0;
    let faults = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const r = await simulate({ settings, apps: s.apps, seed, durationMs: s.durationMs, faults: "chaos" });
      calls += r.calls.ok;
      faults += r.faultsInjected.crashes + r.faultsInjected.resets + r.faultsInjected.partitions;
      if (r.violations.length > 0) {
        failures.push(
          `seed ${seed}: ${r.violations.slice(0, 3).join("; ")}\n` +
            `  replay: node dist/cli/main.js sim ${s.apps.join(" ")} --settings ${s.file} --seed ${seed} --duration ${s.duration} --faults chaos --log`,
        );
      }
    }
    t.diagnostic(`${SEEDS} seeds: ${calls} calls answered, ${faults} faults injected`);
    assert.ok(calls > SEEDS * 10, "the systems do work between the faults");
    assert.ok(faults > SEEDS, "chaos injects faults");
    assert.deepEqual(failures, [], failures.join("\n"));
  });
}
