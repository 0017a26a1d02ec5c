/** One settled promise, shared: `RESOLVED.then(f)` runs `f` on a microtask; a method with nothing to wait for returns it. @internal */
export const RESOLVED: Promise<void> = Promise.resolve();
