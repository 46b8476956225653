import { encodeBatch, WindowProfile } from '../sketch/index.js';

/**
 * Packs sealed windows into batches of at most `maxBytes` encoded bytes (the agent's payloads
 * must stay under the browser's 64 KiB keepalive quota, shared by fetch keepalive and
 * sendBeacon). A window too large for one batch is split by features: the first part carries
 * the prediction count, the latency and the events, the others only features — so a collector
 * that merges the parts counts every prediction once.
 */

/** Room for the batch header: magic, version, agent id (≤ 128 bytes), sequence, send time. */
const HEADER_ROOM = 200;

export class PackingError extends Error {
  override name = 'PackingError';
}

/** Encoded size of one window on its own (as it will be inside a batch, plus the header). */
function windowBytes(w: WindowProfile): number {
  return encodeBatch({ agentId: 'x', sequence: 0, sentAt: 0, windows: [w] }).length - 8;
}

/** Splits a window whose encoding exceeds `budget` bytes into parts that fit. */
export function splitWindow(w: WindowProfile, budget: number): WindowProfile[] {
  if (windowBytes(w) <= budget) return [w];
  const parts: WindowProfile[] = [];
  let part = w.emptyLike();
  part.predictions = w.predictions;
  part.latency.merge(w.latency);
  for (const [name, c] of w.events) part.events.set(name, c);
  let used = windowBytes(part);
  const features: [Map<string, unknown>, 'inputs' | 'outputs', string][] = [];
  for (const name of w.inputs.keys()) features.push([w.inputs, 'inputs', name]);
  for (const name of w.outputs.keys()) features.push([w.outputs, 'outputs', name]);
  for (const [, side, name] of features) {
    const f = w[side].get(name)!;
    const single = w.emptyLike();
    single[side].set(name, f);
    // The feature's own cost: its encoding minus an empty window's.
    const cost = windowBytes(single) - windowBytes(w.emptyLike());
    if (cost > budget - windowBytes(w.emptyLike())) {
      throw new PackingError(`feature ${name} alone encodes to ${cost} bytes, more than a batch may hold (${budget})`);
    }
    if (used + cost > budget && (part.inputs.size > 0 || part.outputs.size > 0 || part.predictions > 0)) {
      parts.push(part);
      part = w.emptyLike();
      used = windowBytes(part);
    }
    part[side].set(name, f.clone());
    used += cost;
  }
  parts.push(part);
  return parts;
}

/**
 * Groups windows into lists whose batch encodes to at most `maxBytes`. The windows are not
 * changed; parts of split windows are new objects.
 */
export function pack(windows: readonly WindowProfile[], maxBytes: number): WindowProfile[][] {
  const budget = maxBytes - HEADER_ROOM;
  if (budget < 1024) throw new PackingError(`maxBytes ${maxBytes} is too small for a batch`);
  const out: WindowProfile[][] = [];
  let current: WindowProfile[] = [];
  let used = 0;
  for (const w of windows) {
    for (const part of splitWindow(w, budget)) {
      const size = windowBytes(part);
      if (used + size > budget && current.length > 0) {
        out.push(current);
        current = [];
        used = 0;
      }
      current.push(part);
      used += size;
    }
  }
  if (current.length > 0) out.push(current);
  return out;
}
