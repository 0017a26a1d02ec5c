/// <reference types="node" preserve="true" />
/**
 * tilth: long-running services that talk over RPC, on one pluggable loop.
 * @module
 */
export * from "./core/index.js";
export { NodeLoop } from "./adapters/node.js";
export { VirtualLoop, DeadlockError } from "./adapters/virtual.js";
export { SimLoop, HostLoop, SimTrace, HostDownError } from "./adapters/sim.js";
export * from "./transports/index.js";
export * from "./rpc/index.js";
// Apps (App, Service, embed, settings, DI). Their task base class is `Task` of
// "tilth/app"; here `Task` is the scope's task of "tilth/core".
export * from "./app/index.js";
export { Task } from "./core/index.js";
