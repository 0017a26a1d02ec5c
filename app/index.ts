/**
 * tilth apps: App, settings, DI, the runtime that starts and stops apps.
 * @module
 */
export * from "./App.js";
export * from "./Logger.js";
export * from "./Settings.js";
export * from "./runloop.js";
export * from "./runtime.js";
