/**
 * The fuzz command (bench/fuzz/cli.ts) serving an API with a bug planted in
 * `echo`, for the tool's own tests: with TILTH_FUZZ_PLANT=crash an echo of an
 * array ends the process (exit code 9); with =reject it leaves a rejected
 * promise unhandled. The recorded sessions echo an array, so the fuzzer
 * meets it within its first cases.
 */
import { fileURLToPath } from "node:url";
import type { Loop } from "../../core/Loop.js";
import { fuzzApi } from "../../bench/fuzz/api.js";
import { cli } from "../../bench/fuzz/cli.js";

const plant = process.env.TILTH_FUZZ_PLANT;

function planted(loop: Loop): object {
  return {
    ...fuzzApi(loop),
    echo: (x: unknown) => {
      if (Array.isArray(x)) {
        if (plant === "crash") process.exit(9);
        if (plant === "reject") void Promise.reject(new Error("planted rejection"));
      }
      return x;
    },
  };
}

process.exitCode = await cli(process.argv.slice(2), { script: fileURLToPath(import.meta.url), api: planted });
