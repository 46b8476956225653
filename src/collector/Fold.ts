import type { WindowProfile } from '../sketch/index.js';
import { encodeBatch } from '../sketch/index.js';
import type { BatchView, WindowView } from '../sketch/codec.js';
import { FlushMerge, type MergedWindow } from './FlushMerge.js';
import { yieldToLoop } from './yieldToLoop.js';

/**
 * The fold of one checkpoint: the batches acknowledged since the last one, merged per (project,
 * model, segment, window), and written as partial rows. Ingest asks a `Folder` for one fold per
 * checkpoint; two kinds exist:
 *  - `WorkerFolder` (FoldWorker.ts; the collector's choice when it may use two or more cores):
 *    the merges run on a worker thread. Ingest's own thread only checks, commits and answers; a
 *    merge (~200 µs a beacon of 32 features) never stands between a request and its answer.
 *    Measured (bench/collector.ts --collector-cores 0,1): 5,814 / 5,313 beacons/s in memory / on
 *    disk against 3,882 / 3,661 on one core.
 *  - `LocalFolder`: merges on this thread, in slices between turns of the event loop — on one
 *    core, where a worker only competes with ingest for it (measured there: ~25% fewer
 *    beacons/s and no better p99, niced or not), and where a worker cannot start.
 *
 * A fold's shape check (`reserve`) always runs on ingest's thread, before the batch is made
 * durable: a batch refused there is never acknowledged.
 *
 * Must: merge each added batch exactly once into the fold it was added to; resolve `rows`
 * only once every batch added before it is merged; never lose a batch that was added (a worker
 * that dies is replaced and given the batches of every fold not yet written).
 */
export interface Fold {
  /** Batches added since the fold was created or released. */
  readonly batches: number;
  /** Admits a batch into this fold (FlushMerge.reserve); false: it cannot merge here. */
  reserve(project: string, windows: readonly WindowView[]): boolean;
  /** Queues the merge of durable batches that `reserve` admitted. */
  add(items: readonly FoldItem[]): void;
  /** Once every added batch is merged: the partial rows, one per (project, model, segment, window). */
  rows(): Promise<PartialRow[]>;
  /** Ends the fold once its rows are written: what it holds goes back to its folder. */
  release(): void;
}

export interface FoldItem {
  project: string;
  batch: BatchView;
}

export interface Folder {
  create(): Fold;
  /** Resolves once at most `n` batches added to its folds wait for their merge. */
  below(n: number): Promise<void>;
  close(): Promise<void>;
}

/** Batches waiting for their merge, and who waits for there to be few enough (Folder.below). */
export class Backlog {
  count = 0;
  private waiters: Array<{ n: number; wake: () => void }> = [];

  below(n: number): Promise<void> {
    if (this.count <= n) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ n, wake }));
  }

  /** Changes the count by `delta` and wakes whoever it now lets through. */
  add(delta: number): void {
    this.count += delta;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters) (this.count <= w.n ? w.wake() : still.push(w));
    this.waiters = still;
  }

  /** Wakes every waiter whatever the count (shutting down). */
  release(): void {
    for (const w of this.waiters) w.wake();
    this.waiters = [];
  }
}

/** What a merge failure (a bug: `reserve` admitted the batch) is reported with. */
export type MergeFailure = (agentId: string, message: string) => void;

/** A partial row as written: its key columns and the window in the wire format. */
export interface PartialRow {
  project: string;
  model: string;
  segmentKey: string;
  start: number;
  length: number;
  predictions: number;
  profile: Uint8Array;
}

/** A window as stored in a partial row: a one-window batch in the wire format. */
export function encodeWindow(window: WindowProfile): Uint8Array {
  return encodeBatch({ agentId: 'collector', sequence: 0, sentAt: 0, windows: [window] });
}

export function partialRow({ project, model, window }: MergedWindow): PartialRow {
  return {
    project, model, segmentKey: window.segmentKey, start: window.start, length: window.length,
    predictions: window.predictions, profile: encodeWindow(window),
  };
}

/**
 * How long a slice of merging or encoding may run before the event loop is let through. By
 * time, not by count: a batch usually merges in ~100–150 µs, but the one that fills its
 * features' buffers sorts and compresses all of them (~40 × 150 µs: the features of a group
 * fill in step), so eight batches a slice (as this once was) ran up to 7–10 ms.
 *
 * Short, because a request crosses the event loop four or five times (body, handler, commit,
 * its sync, the answer) and each turn of the loop may carry one slice (yieldToLoop.ts): at
 * 1,000 beacons/s on one core, disk store, 1.5 → 0.5 ms took p95 18.4 / 18.8 / 17.0 →
 * 13.6 / 13.6 / 10.4 ms and p99 47.7 / 41.1 / 56.9 → 37.3 / 42.5 / 33.5 ms (runs alternated),
 * throughput within the noise. 0.25 ms measured no better than 0.5.
 */
const SLICE_MS = 0.5;

/**
 * Sorts and compresses every digest's buffer of `window`, one feature at a time with the event
 * loop let through every SLICE_MS: encoding a window does that first, ~6 ms for 40 features in
 * one stretch; after this the encoding proper takes ~0.5 ms.
 */
export async function compactSliced(window: WindowProfile): Promise<void> {
  let until = 0;
  for (const f of [...window.inputs.values(), ...window.outputs.values(), window.latency]) {
    if (performance.now() >= until) {
      await yieldToLoop();
      until = performance.now() + SLICE_MS;
    }
    f.digest?.compact();
  }
}

/**
 * Folds on this thread. Merges are queued per fold and run in slices of SLICE_MS with the
 * event loop let through between them (a group of 30–100 batches merged in one go held the
 * thread 5–30 ms), the first slice too, so the answers just given go out first.
 */
export class LocalFolder implements Folder {
  /** @internal */
  readonly backlog = new Backlog();
  private readonly spare: FlushMerge[] = [];

  constructor(private readonly failed: MergeFailure) {}

  create(): Fold {
    return new LocalFold(this, this.spare.pop() ?? new FlushMerge());
  }

  below(n: number): Promise<void> {
    return this.backlog.below(n);
  }

  async close(): Promise<void> {
    this.backlog.release();
  }

  /** @internal */
  async mergeSliced(merge: FlushMerge, items: readonly FoldItem[]): Promise<void> {
    let until = 0;
    for (let i = 0; i < items.length; i++) {
      if (performance.now() >= until) {
        await yieldToLoop();
        until = performance.now() + SLICE_MS;
      }
      const { project, batch } = items[i];
      try {
        merge.mergeBatch(project, batch.windows, batch.bytes);
      } catch (e) {
        // `reserve` admitted it, so this is a bug; the batch is answered and must not take the
        // process down with it (nor the rest of the group).
        this.failed(batch.agentId, (e as Error).message);
      }
      this.backlog.add(-1);
    }
  }

  /** @internal */
  recycle(merge: FlushMerge): void {
    merge.release();
    if (this.spare.length < 2) this.spare.push(merge);
  }
}

class LocalFold implements Fold {
  batches = 0;
  private queue: Promise<void> = Promise.resolve();
  private released = false;

  constructor(private readonly folder: LocalFolder, private readonly merge: FlushMerge) {}

  reserve(project: string, windows: readonly WindowView[]): boolean {
    return this.merge.reserve(project, windows);
  }

  add(items: readonly FoldItem[]): void {
    if (items.length === 0) return;
    this.batches += items.length;
    this.folder.backlog.add(items.length);
    const merge = this.merge;
    this.queue = this.queue.then(() => this.folder.mergeSliced(merge, items));
  }

  async rows(): Promise<PartialRow[]> {
    await this.queue; // never rejects: mergeSliced catches per batch
    const rows: PartialRow[] = [];
    for (const w of this.merge.windows()) {
      await compactSliced(w.window);
      rows.push(partialRow(w));
    }
    return rows;
  }

  release(): void {
    if (this.released) return; // twice would hand one FlushMerge to two folds
    this.released = true;
    this.folder.recycle(this.merge);
  }
}
