/**
 * The commands of `tilth` as the command line and the help see them: their
 * options, usage and examples. Each command's file parses its arguments by
 * its spec here (cli/args.ts).
 * @module
 */
import { isOverride } from "../app/overrides.js";
import type { CommandSpec, OptionSpec } from "./args.js";
import { FAULT_PROFILES } from "../app/simulation.js";
import { BENCH } from "./bench/spec.js";

const SETTINGS: OptionSpec = { type: "string", short: "s", value: "FILE", help: "the settings file (default: $TILTH_SETTINGS, else tilth.json or tilth.settings.{mjs,js,json} here)" };

export const RUN: CommandSpec = {
  name: "run",
  summary: "Run apps from the settings file, each in its own process (restarted by its restart policy), until Ctrl-C.",
  usage: [
    "run APP... [--settings FILE] [--together] [--json] [--reload] [--level LEVEL] [--set APP.OPTION=VALUE]...",
    "run --list | --status [APP...] | --stop [APP...]",
  ],
  description:
    "Ctrl-C or SIGTERM stops the apps gracefully, a second one forces. An app option is overridden with\n" +
    "--set APP.OPTION=VALUE or --APP.OPTION=VALUE (svc.tick.interval=5000).",
  options: {
    settings: SETTINGS,
    together: { type: "boolean", help: "run the apps in this process, on one loop" },
    json: { type: "boolean", help: "log JSON lines" },
    reload: { type: "boolean", help: "restart the apps when a file under the settings' folder changes" },
    level: { type: "string", value: "LEVEL", help: "lowest log level: debug, info, warn, error" },
    set: { type: "string", multiple: true, value: "APP.OPTION=VALUE", help: "override an app option (repeatable)" },
    list: { type: "boolean", help: "list the apps of the settings, with their class and bind URLs" },
    status: { type: "boolean", help: "say which apps run (exit 3 when one does not)" },
    stop: { type: "boolean", help: "stop running apps (SIGTERM, SIGKILL after run.stopTimeout); not restarted" },
    child: { type: "boolean", hidden: true, help: "run as a child of the runner" },
  },
  acceptsOption: (raw) => raw.startsWith("--") && isOverride(raw.slice(2)),
  examples: [
    ["run ping long_running --settings examples/ping/settings.js", "the ping pair, each app in its own process"],
    ["run svc --together --svc.tick.interval=5000", "one app in this process, with an option overridden"],
    ["run --status", "which apps of ./tilth.json run"],
    ["run --stop ping", "stop app ping, wherever it was started"],
  ],
};

const CALL_TARGET = "URL|APP";

export const CALL: CommandSpec = {
  name: "call",
  summary: "Call one method of an app's API and print the result as JSON (a stream: one item a line).",
  usage: [`call ${CALL_TARGET} METHOD [ARG...] [--json] [--raw] [--timeout MS] [--settings FILE]`],
  description:
    "APP is an app name of the settings (its remote or bind URL, or its Service's RPC task). Arguments are JSON\n" +
    "where they parse as JSON, else strings; integers beyond 2^53 are sent exactly, as BigInt. A bytes result is\n" +
    "shown as hex (short) or base64 with a note on stderr; --raw writes its bytes. Ctrl-C cancels the call on\n" +
    "the server and exits 130. Anything after METHOD that is not one of these options is an argument; after --,\n" +
    "everything is.",
  options: {
    json: { type: "boolean", help: "arguments must be valid JSON (no bare strings)" },
    raw: { type: "boolean", help: "write a bytes result (or a string) as it is, without JSON" },
    timeout: { type: "string", value: "MS", help: "the call's time limit in milliseconds (default 30000)" },
    settings: SETTINGS,
  },
  positionalsBeforeArgs: 2,
  examples: [
    ["call drpc+tcp://127.0.0.1:9990 ping", "call ping() on a URL"],
    ["call calc add 1 2", "call add(1, 2) on app calc of ./tilth.json"],
    ['call kv put greeting \'"hello"\'', "a string argument, as JSON"],
    ["call store read blob --raw > blob.bin", "write a bytes result to a file"],
    ["call ticker ticks 10 --timeout 60000", "print a stream's items, one a line"],
  ],
};

export const INSPECT: CommandSpec = {
  name: "inspect",
  summary: "List the methods of an app's API: signature, call or stream, doc.",
  usage: [`inspect ${CALL_TARGET} [--json] [--settings FILE]`],
  options: {
    json: { type: "boolean", help: "print the introspection as JSON" },
    timeout: { type: "string", value: "MS", help: "time limit in milliseconds" },
    settings: SETTINGS,
  },
  examples: [
    ["inspect ping", "the API of app ping of ./tilth.json"],
    ["inspect zrpc+tcp://127.0.0.1:4242 --json", "a ZeroRPC server's methods, as JSON"],
  ],
};

export const SHELL: CommandSpec = {
  name: "shell",
  summary: "A REPL with a client per app bound to its name, top-level await and completion of method names.",
  usage: [`shell ${CALL_TARGET}... [--settings FILE] [--history FILE] [--log FILE]`],
  description: "Piped input runs line by line (exit 1 if a line failed).",
  options: {
    settings: SETTINGS,
    history: { type: "string", value: "FILE", help: "history file (default: $TILTH_HISTORY or ~/.tilth_history)" },
    log: { type: "string", value: "FILE", help: "append every call and its answer as a JSON line" },
  },
  examples: [
    ["shell ping", "then: await ping.ping()"],
    ["shell drpc+tcp://127.0.0.1:9990", "bound as api: await api.ping()"],
    ["shell calc < calls.txt", "run the lines of a file, each once the one before has settled"],
  ],
};

export const BACKDOOR: CommandSpec = {
  name: "backdoor",
  summary: "Attach the terminal to a running app's backdoor REPL (.exit or Ctrl-D detaches; the app runs on).",
  usage: ["backdoor APP|ADDRESS [--token T] [--settings FILE]"],
  options: {
    token: { type: "string", value: "T", help: "the backdoor's token (default: $TILTH_BACKDOOR_TOKEN, or the app's backdoor file)" },
    settings: SETTINGS,
  },
  examples: [
    ["backdoor ping", "the backdoor of app ping, found through its run folder"],
    ["backdoor ipc:///run/ping.sock", "a backdoor by address"],
  ],
};

export const HELP_COMMAND: CommandSpec = {
  name: "help",
  summary: "Show the help of a command.",
  usage: ["help [COMMAND]"],
  options: {},
  examples: [["help call", "the options and examples of tilth call"]],
};

export const SIM: CommandSpec = {
  name: "sim",
  summary: "Run apps in simulated time over a simulated network with faults, from a seed; print the trace hash.",
  usage: ["sim [APP...] [--settings FILE] [--seed N] [--duration TIME] [--faults PROFILE] [--trace FILE | --replay FILE] [--log]"],
  description:
    "The apps (default: every app of the settings) run in this process, each on a simulated host, in virtual time:\n" +
    "an hour takes seconds. The last line is `trace <hash>` over every message and timer event; the same seed\n" +
    "gives the same hash. Invariants (calls get an outcome by their deadline, heartbeats bound silence, nothing\n" +
    "is left at the end, and each app's own invariants()) are checked every simulated second; exit 1 when one\n" +
    `fails. TIME: 500ms, 30s, 10m, 1h (a bare number is ms). Fault profiles: ${Object.keys(FAULT_PROFILES).join(", ")} (default mild).\n` +
    "--replay FILE runs with the seed, duration, faults and apps of the trace FILE (unless given) and names\n" +
    "the first event that differs.",
  options: {
    settings: SETTINGS,
    seed: { type: "string", value: "N", help: "the seed of the run (default: a random one, printed)" },
    duration: { type: "string", value: "TIME", help: "simulated time before the apps stop (default 1h)" },
    faults: { type: "string", value: "PROFILE", help: `fault profile: ${Object.keys(FAULT_PROFILES).join(", ")} (default mild)` },
    trace: { type: "string", value: "FILE", help: "write every event of the run to FILE" },
    replay: { type: "string", value: "FILE", help: "check the run against the trace in FILE; name the first divergence" },
    log: { type: "boolean", help: "print the apps' log lines (with simulated timestamps)" },
    level: { type: "string", value: "LEVEL", help: "lowest log level: debug, info, warn, error" },
    set: { type: "string", multiple: true, value: "APP.OPTION=VALUE", help: "override an app option (repeatable)" },
  },
  examples: [
    ["sim ping long_running --settings examples/ping/settings.js --seed 7 --duration 1h", "an hour of the ping pair, mild faults"],
    ["sim --seed 42 --duration 10m --faults chaos --trace run.trace", "every app of ./tilth.json, many faults, the trace kept"],
    ["sim --replay run.trace", "run it again and say where it differs"],
  ],
};

export const COMMANDS: readonly CommandSpec[] = [RUN, CALL, INSPECT, SHELL, BACKDOOR, BENCH, SIM, HELP_COMMAND];
