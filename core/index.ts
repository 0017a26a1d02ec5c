/// <reference types="node" preserve="true" />
/**
 * tilth core: the Loop contract and cooperative tasks on it.
 * @module
 */
export * from "./errors.js";
export * from "./Loop.js";
export * from "./LoopBase.js";
export * from "./Transport.js";
export * from "./Scope.js";
export * from "./Channel.js";
export * from "./Event.js";
export * from "./Semaphore.js";
export * from "./Lock.js";
export * from "./time.js";
export * from "./Deadlines.js";
export * from "./Ring.js";
export * from "./abort.js";
export * from "./resolved.js";
export * from "./Budget.js";
export * from "./suggest.js";
export * from "./random.js";
