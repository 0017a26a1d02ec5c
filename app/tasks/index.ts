/**
 * The built-in tasks of a Service: periodic, queue worker, RPC server, HTTP
 * health and metrics.
 * @module
 */
export * from "./PeriodicTask.js";
export * from "./QueueTask.js";
export * from "./RpcServerTask.js";
export * from "./HttpTask.js";
export * from "./random.js";
