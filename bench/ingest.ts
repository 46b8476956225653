/**
 * Per-beacon CPU of the collector's ingest steps, in isolation (no HTTP, no store): what one
 * core can do at best, and where the time goes.
 *
 *   node --import tsx bench/ingest.ts [--batches N] [--rounds N] [--no-keep-keys]
 *
 * Batches are bench/collector.ts's (bench/loadgen.ts buildWindow: 32 numeric inputs, a 5-class
 * output and its probabilities, latency, 50–200 predictions, six segments). Steps, each timed
 * over every batch per round (median of rounds, µs per batch; the minimum too):
 *   scan      readBatchView — the strict check a request pays before it is queued; it keeps the
 *             digests' decoded keys for the merge (keepKeys) as a collector merging on its
 *             own thread does, unless --no-keep-keys (as when a fold worker merges)
 *   merge     FlushMerge.reserve + mergeBatch — folding a durable batch into the open fold (and
 *             the p99 of one batch's merge: the longest stretch it holds the event loop, mostly)
 *   write     encoding the fold's windows at a checkpoint, spread over the batches it holds
 *             (one checkpoint per round: a round is about a checkpoint's worth at 5,000/s)
 */
import { parseArgs } from 'node:util';
import { FlushMerge } from '../src/collector/FlushMerge.js';
import { encodeWindow } from '../src/collector/Fold.js';
import { readBatchView } from '../src/sketch/codec.js';
import { encodeBatch, WindowProfile } from '../src/sketch/index.js';
import { buildWindow, SEGMENTS } from './loadgen.js';
import { rng } from './rng.js';

const { values: args } = parseArgs({
  options: { batches: { type: 'string', default: '2000' }, rounds: { type: 'string', default: '7' }, 'no-keep-keys': { type: 'boolean', default: false } },
  strict: true,
});
const BATCHES = Number(args.batches);
const ROUNDS = Number(args.rounds);
const KEEP_KEYS = !args['no-keep-keys'];
const GROUP = 64;

const r = rng(7);
const start = WindowProfile.alignedStart(Date.now(), 300_000);
const bodies: Uint8Array[] = [];
let centroids = 0;
let bytes = 0;
for (let i = 0; i < BATCHES; i++) {
  const w = buildWindow(r, start, 300_000, i % SEGMENTS);
  if (i < 50) for (const f of [...w.inputs.values(), ...w.outputs.values(), w.latency]) centroids += f.digest?.centroidCount ?? 0;
  const b = encodeBatch({ agentId: `agent-${i % 500}`, sequence: Math.floor(i / 500), sentAt: Date.now(), windows: [w] });
  bytes += b.length;
  bodies.push(b);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const scanUs: number[] = [];
const mergeUs: number[] = [];
const writeUs: number[] = [];
/** Per round: the 99th percentile of one batch's merge (a stretch the event loop cannot cut). */
const mergeP99: number[] = [];
const fold = new FlushMerge();
for (let round = 0; round < ROUNDS; round++) {
  // In groups of GROUP, as the collector does (checked on arrival, merged a group at a time).
  let scanMs = 0;
  let mergeMs = 0;
  const oneMerge: number[] = [];
  for (let g = 0; g < BATCHES; g += GROUP) {
    let t = performance.now();
    const views = bodies.slice(g, g + GROUP).map((b) => readBatchView(b, { keepKeys: KEEP_KEYS }));
    scanMs += performance.now() - t;
    for (const v of views) {
      t = performance.now();
      if (!fold.reserve('p', v.windows)) throw new Error('conflict');
      fold.mergeBatch('p', v.windows, v.bytes);
      const ms = performance.now() - t;
      mergeMs += ms;
      oneMerge.push(ms);
    }
  }
  scanUs.push((scanMs * 1000) / BATCHES);
  mergeUs.push((mergeMs * 1000) / BATCHES);
  oneMerge.sort((a, b) => a - b);
  mergeP99.push(oneMerge[Math.floor(0.99 * oneMerge.length)] * 1000);
  const t = performance.now();
  for (const { window } of fold.windows()) encodeWindow(window);
  writeUs.push(((performance.now() - t) * 1000) / BATCHES);
  fold.release();
}
const s = median(scanUs);
const m = median(mergeUs);
const w = median(writeUs);
const least = (xs: number[]) => Math.min(...xs);
console.log(`sketchwatch ingest steps: ${BATCHES} batches, mean ${Math.round(bytes / BATCHES)} bytes, ~${Math.round(centroids / 50)} centroids each; median of ${ROUNDS} rounds; keys ${KEEP_KEYS ? 'kept by the check' : 'decoded again by the merge'}`);
// The least disturbed round too: on a noisy machine it moves far less from run to run.
console.log(`  (min of rounds: scan ${least(scanUs).toFixed(1)}, merge ${least(mergeUs).toFixed(1)}, scan + merge ${least(scanUs.map((x, i) => x + mergeUs[i])).toFixed(1)} µs/batch)`);
console.log(`  scan   ${s.toFixed(1)} µs/batch  (${((s * 1000) / (centroids / 50)).toFixed(1)} ns/centroid)`);
console.log(`  merge  ${m.toFixed(1)} µs/batch  (${((m * 1000) / (centroids / 50)).toFixed(1)} ns/centroid; one batch's merge p99 ${median(mergeP99).toFixed(0)} µs)`);
console.log(`  write  ${w.toFixed(1)} µs/batch  (fold of ${BATCHES} batches encoded once)`);
console.log(`  total  ${(s + m + w).toFixed(1)} µs/batch → at most ${Math.round(1e6 / (s + m + w)).toLocaleString('en-US')} batches/s on one core before HTTP`);
