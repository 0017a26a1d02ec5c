/// <reference types="node" preserve="true" />
/**
 * RxJS and tilth on one loop, both directions (RxJS 7):
 *
 * - {@link toRxScheduler}`(loop)`: an RxJS scheduler on a tilth Loop, so
 *   `delay`, `interval`, `timeout`, `debounceTime`… run on tilth's loop, and
 *   so in virtual time under `VirtualLoop`.
 * - {@link loopFromRx}`(scheduler)`: a tilth Loop on an RxJS scheduler, so
 *   tilth tasks, deadlines and heartbeats run inside an app that lives on
 *   RxJS schedulers (`VirtualTimeScheduler` driven by {@link runVirtual},
 *   `asyncScheduler`, `asapScheduler`, or the app's own).
 * - {@link toObservable} and {@link fromObservable}: Channels and async
 *   iterables to Observables and back, with bounded buffers and cancellation
 *   flowing upstream. docs/rxjs.md writes the semantics down.
 *
 * @example
 * ```ts
 * import { debounceTime, Subject } from "rxjs";
 * import { VirtualLoop } from "tilth/adapters/virtual";
 * import { toRxScheduler } from "tilth/adapters/rxjs";
 *
 * const loop = new VirtualLoop();
 * const keys = new Subject<string>();
 * keys.pipe(debounceTime(300, toRxScheduler(loop))).subscribe((k) => console.log(k, loop.now()));
 * keys.next("a"); keys.next("b");
 * await loop.advance(1000); // logs "b 300"
 * ```
 * @module
 */
export { LoopScheduler, toRxScheduler } from "./rxjs/scheduler.js";
export { RxLoop, loopFromRx, runVirtual, type RunVirtualOptions, type RxLoopOptions } from "./rxjs/loop.js";
export {
  ObservableChannel,
  OverflowError,
  fromObservable,
  toObservable,
  type FromObservableOptions,
  type ObservableSource,
  type OverflowPolicy,
  type ToObservableOptions,
} from "./rxjs/streams.js";
