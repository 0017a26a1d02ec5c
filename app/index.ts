/// <reference types="node" preserve="true" />
/**
 * tilth apps: App, Service and tasks, settings, DI, the runtime that starts
 * and stops apps, embedding.
 * @module
 */
export * from "./App.js";
export * from "./Logger.js";
export * from "./Settings.js";
export * from "./runloop.js";
export * from "./runtime.js";
export * from "./Metrics.js";
export * from "./Service.js";
export * from "./tasks/index.js";
export * from "./embed.js";
export * from "./overrides.js";
export * from "./di.js";
export * from "./simulation.js";
