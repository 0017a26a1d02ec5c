#!/usr/bin/env node
/**
 * The `tilth` command.
 *
 *     tilth run APP... [--settings FILE] [--together] [--json] [--reload]
 *     tilth run --list | --status [APP...] | --stop [APP...]
 *     tilth call URL|APP METHOD [ARG...]
 *     tilth inspect URL|APP
 */
import { backdoorCommand } from "./backdoor.js";
import { callCommand, inspectCommand } from "./call.js";
import { shellCommand } from "./shell.js";
import { EXIT_CONFIG, UsageError, reportError, runCommand } from "./run.js";

const USAGE = `usage:
  tilth run APP... [--settings FILE] [--together] [--json] [--reload] [--level LEVEL]
            [--set APP.OPTION=VALUE]... (or --APP.OPTION=VALUE)
  tilth run --list | --status [APP...] | --stop [APP...]
  tilth call URL|APP METHOD [ARG...] [--json] [--timeout MS] [--settings FILE]
  tilth inspect URL|APP [--json] [--settings FILE]
  tilth shell URL|APP... [--settings FILE] [--history FILE] [--log FILE]
  tilth backdoor APP|ADDRESS [--token T] [--settings FILE]`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case "run":
      return runCommand(rest);
    case "call":
      return callCommand(rest);
    case "inspect":
      return inspectCommand(rest);
    case "shell":
      return shellCommand(rest);
    case "backdoor":
      return backdoorCommand(rest);
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(`${USAGE}\n`);
      return cmd === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${cmd}"\n${USAGE}`);
  }
}

const argv = process.argv.slice(2);
// A command that has finished exits, even if a library left a handle open:
// a runner that hangs after "stopped" is worse than one that exits.
const finish = (code: number): void => {
  process.exitCode = code;
  if (process.connected) process.disconnect();
  process.stdout.write("", () => process.exit(code));
};
main(argv).then(finish, (e: unknown) => {
  const code = reportError(e);
  // A child that cannot start must not be restarted by its parent.
  finish(argv.includes("--child") && code === 2 ? EXIT_CONFIG : code);
});
