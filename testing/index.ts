/// <reference types="node" preserve="true" />
/**
 * tilth/testing: the conformance suites every Loop adapter and every
 * transport of tilth passes, published so that a third party's adapter or
 * transport is checked by the same tests. Each suite is a function that takes
 * a factory and registers `node:test` tests; run the file with `node --test`.
 *
 * - {@link loopConformance}: the Loop contract, for an adapter (a subclass of
 *   `LoopBase` or any `Loop`).
 * - {@link transportConformance}: message connections, for a transport.
 * - {@link startNats}: a real nats-server on loopback for a test (Debian's
 *   `nats-server` on the PATH), and a cluster of three.
 * - {@link leakCheck} and the connection helpers the transport suite uses,
 *   for tests of your own.
 *
 * docs/core.md states an adapter's duties and walks through one driven by a
 * game loop's `tick()` (examples/tick-loop).
 * @module
 */
export * from "./loop.js";
export * from "./transport.js";
export * from "./leaks.js";
export * from "./helpers.js";
export * from "./datagram.js";
export * from "./nats.js";
