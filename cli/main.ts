#!/usr/bin/env node
/**
 * The `tilth` command: `tilth help` lists the commands, `tilth help CMD` (or
 * `tilth CMD --help`) shows one with its options and examples. Exit codes:
 * 0 done, 1 runtime failure, 2 usage or settings mistake, 3 not running,
 * 130 interrupted (docs/operators.md).
 */
import { EXIT, UsageError, didYouMean, helpText, styler, version, type CommandSpec } from "./args.js";
import { backdoorCommand } from "./backdoor.js";
import { benchCommand } from "./bench/command.js";
import { callCommand, inspectCommand } from "./call.js";
import { COMMANDS } from "./commands.js";
import { shellCommand } from "./shell.js";
import { simCommand } from "./sim.js";
import { reportError, runCommand } from "./run.js";

const RUNNERS: Record<string, (argv: string[]) => Promise<number>> = {
  run: runCommand,
  call: callCommand,
  inspect: inspectCommand,
  shell: shellCommand,
  backdoor: backdoorCommand,
  bench: benchCommand,
  sim: simCommand,
};

const spec = (name: string): CommandSpec | undefined => COMMANDS.find((c) => c.name === name);

function overview(): string {
  const style = styler(process.stdout);
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return (
    `${style("bold", "usage:")} tilth COMMAND [ARG...] [--help]\n\n${style("bold", "commands:")}\n` +
    COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join("\n") +
    `\n\n${style("bold", "more:")}\n  tilth help COMMAND    a command's options and examples\n  tilth --version       tilth's version\n` +
    `\nExit codes: 0 done, 1 failed, 2 usage or settings mistake, 3 not running, 130 interrupted.\n`
  );
}

function unknownCommand(cmd: string): UsageError {
  return new UsageError(`unknown command "${cmd}"${didYouMean(cmd, COMMANDS.map((c) => c.name), (c) => `"${c}"`)}; \`tilth help\` lists them`);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) {
    process.stderr.write(overview());
    return EXIT.usage;
  }
  if (cmd === "--version" || cmd === "-v" || cmd === "version") {
    process.stdout.write(`tilth ${version()}\n`);
    return EXIT.ok;
  }
  if (cmd === "help" || cmd === "--help" || cmd === "-h") {
    const about = rest.find((x) => !x.startsWith("-"));
    if (about === undefined) process.stdout.write(overview());
    else {
      const s = spec(about);
      if (!s) throw unknownCommand(about);
      process.stdout.write(helpText(s));
    }
    return EXIT.ok;
  }
  const run = RUNNERS[cmd];
  if (!run) throw unknownCommand(cmd);
  return run(rest);
}

const argv = process.argv.slice(2);
// A command that has finished exits, even if a library left a handle open:
// a runner that hangs after "stopped" is worse than one that exits.
const finish = (code: number): void => {
  process.exitCode = code;
  if (process.connected) process.disconnect();
  process.stdout.write("", () => process.exit(code));
};
// A child of the runner that cannot start exits with a code that tells its runner not to restart it.
main(argv).then(finish, (e: unknown) => finish(reportError(e, argv[0] === "run" && argv.includes("--child"))));
