/**
 * The loop in a browser (or any host with the web's timers and no Node):
 * turns on a MessageChannel (no 4 ms clamp of nested timeouts), timers on
 * `setTimeout`, time from `performance.now()`. Nothing here imports Node.
 *
 * @example
 * ```ts
 * import { BrowserLoop } from "tilth/adapters/browser";
 * const loop = new BrowserLoop();
 * loop.timer(100, () => console.log("100 ms later"));
 * ```
 * @module
 */
import { LoopBase, type LoopOptions } from "../core/LoopBase.js";

type Handle = ReturnType<typeof setTimeout>;
/** The web's MessageChannel, as much of it as the loop uses. */
interface Port {
  onmessage: (() => void) | null;
  postMessage(v: unknown): void;
  close(): void;
  unref?: () => void;
}
type Channel = { port1: Port; port2: Port };
const MessageChannelClass = (globalThis as unknown as { MessageChannel?: new () => Channel }).MessageChannel;

export class BrowserLoop extends LoopBase {
  #timeout: Handle | undefined;
  #deadline: number | undefined;
  readonly #channel: Channel | undefined;
  readonly #runTurn = (): void => this.runTurn();
  readonly #wake = (): void => {
    this.#timeout = undefined;
    this.#deadline = undefined;
    this.wake();
  };

  constructor(options: LoopOptions = {}) {
    super({ name: "browser", random: Math.random, ...options });
    if (MessageChannelClass !== undefined) {
      const ch = new MessageChannelClass();
      ch.port1.onmessage = this.#runTurn;
      // On Node (tests), a started port would keep the process alive: unref it where it can be.
      ch.port1.unref?.();
      this.#channel = ch;
    }
  }

  now(): number {
    return performance.now();
  }

  override wallTime(): number {
    return Date.now();
  }

  protected requestTurn(): void {
    if (this.#channel !== undefined) this.#channel.port2.postMessage(0);
    else setTimeout(this.#runTurn, 0);
  }

  protected wakeAt(deadline: number | undefined, ref: boolean): void {
    if (deadline !== undefined && deadline === this.#deadline && this.#timeout !== undefined) {
      refTimer(this.#timeout, ref);
      return;
    }
    this.#deadline = deadline;
    if (this.#timeout !== undefined) {
      clearTimeout(this.#timeout);
      this.#timeout = undefined;
    }
    if (deadline === undefined) return;
    this.#timeout = setTimeout(this.#wake, Math.max(0, Math.ceil(deadline - this.now())));
    refTimer(this.#timeout, ref);
  }

  /** Stop the loop's message port (only needed where a port keeps a process alive). */
  dispose(): void {
    this.#channel?.port1.close();
  }
}

/** Node's timers can stop holding the process; a browser's are numbers. */
function refTimer(t: Handle, ref: boolean): void {
  const h = t as unknown as { ref?: () => void; unref?: () => void };
  if (ref) h.ref?.();
  else h.unref?.();
}
