/**
 * Lets the event loop through (I/O, timers, waiting requests) before going on. The collector
 * answers every request on one thread, so work that merges or decodes many sketches does it in
 * slices with this between them: a 20–90 ms stretch of decoding, merging or encoding is a
 * request answered 20–90 ms late (bench/collector.ts, `bench/longtasks.mjs` on its profile).
 *
 * At most one slice runs per turn of the loop, whoever it belongs to: the callers wait in one
 * queue, first come first served, and each turn's check phase wakes the first of them only.
 * A plain `setImmediate` per caller (as this once was) let every waiting slice run back to back
 * in the same check phase — a merge slice, a checkpoint statement and a detector window, one
 * after another — and each step of a request (body read, journal write, its sync, the answer)
 * could wait behind all of them.
 */
const waiting: Array<() => void> = [];
let armed = false;

function turn(): void {
  armed = false;
  const next = waiting.shift();
  // Armed before the slice runs: an immediate queued from inside the check phase runs in the
  // next turn of the loop, after its poll phase has taken in what I/O has arrived.
  if (waiting.length > 0) arm();
  next?.();
}

function arm(): void {
  armed = true;
  setImmediate(turn);
}

export const yieldToLoop = (): Promise<void> =>
  new Promise((resolve) => {
    waiting.push(resolve);
    if (!armed) arm();
  });
