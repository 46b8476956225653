/**
 * Lets the event loop through (I/O, timers, waiting requests) before going on. The collector
 * answers every request on one thread, so work that merges or decodes many sketches does it in
 * slices with this between them: a 20–90 ms stretch of decoding, merging or encoding is a
 * request answered 20–90 ms late (bench/collector.ts, `bench/longtasks.mjs` on its profile).
 */
export const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
