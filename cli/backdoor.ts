/**
 * `tilth backdoor APP|ADDRESS [--token T] [--settings FILE]`: attach a
 * terminal to an app's backdoor REPL. Line editing and completion are the
 * remote REPL's (the terminal is put in raw mode and bytes go both ways).
 * `.exit` or Ctrl-D detaches; the app runs on.
 * @module
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { parseBackdoorAddress } from "../app/backdoor.js";
import { loadSettings } from "../app/Settings.js";
import { EXIT, UsageError, helpText, parseCommand } from "./args.js";
import { BACKDOOR } from "./commands.js";
import { findSettings } from "./run.js";

/** What an app writes beside its pidfile so `tilth backdoor APP` can find it. */
export interface BackdoorFile {
  address: string;
  token?: string;
}

export async function backdoorCommand(argv: string[]): Promise<number> {
  const p = parseCommand(BACKDOOR, argv);
  if (p.help) {
    process.stdout.write(helpText(BACKDOOR));
    return EXIT.ok;
  }
  const target = p.positionals.at(-1);
  let token = typeof p.values.token === "string" ? p.values.token : process.env.TILTH_BACKDOOR_TOKEN;
  const settingsFile = typeof p.values.settings === "string" ? p.values.settings : undefined;
  if (!target) throw new UsageError(`usage: tilth ${BACKDOOR.usage[0]}`, "backdoor");
  let address = target;
  if (!/^(ipc|tcp):\/\//.test(target) && !target.startsWith("/")) {
    const settings = await loadSettings(findSettings(settingsFile));
    settings.app(target);
    let info: BackdoorFile;
    try {
      info = JSON.parse(readFileSync(join(settings.runDir, `${target}.backdoor`), "utf8")) as BackdoorFile;
    } catch {
      throw new UsageError(`app "${target}" has no open backdoor (is it running, with "backdoor" in its settings?)`);
    }
    address = info.address;
    token ??= info.token;
  }
  const where = parseBackdoorAddress(address);
  const socket = "path" in where ? net.connect(where.path) : net.connect(where.port, where.host);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", (e) => reject(new UsageError(`cannot reach the backdoor at ${address}: ${e.message}`)));
  });
  if (!("path" in where) || token !== undefined) {
    if (token === undefined) throw new UsageError("this backdoor needs a token: --token T or TILTH_BACKDOOR_TOKEN");
    socket.write(`TOKEN ${token}\n`);
    const answer = await firstLine(socket);
    if (answer !== "ok") {
      process.stderr.write(`tilth: backdoor ${answer}\n`);
      socket.destroy();
      return 1;
    }
  }
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  stdin.pipe(socket);
  socket.pipe(process.stdout);
  await new Promise<void>((resolve) => socket.once("close", () => resolve()));
  stdin.unpipe(socket);
  if (raw) stdin.setRawMode(false);
  stdin.pause();
  process.stdout.write("\ndetached\n");
  return 0;
}

function firstLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    let buf = "";
    const onData = (c: Buffer): void => {
      buf += c.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      socket.off("data", onData);
      const rest = buf.slice(nl + 1);
      if (rest) socket.unshift(Buffer.from(rest, "latin1"));
      resolve(buf.slice(0, nl));
    };
    socket.on("data", onData);
    socket.once("close", () => resolve(buf.trim() || "closed"));
  });
}
