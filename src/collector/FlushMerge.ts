import type { FeatureProfile, TDigest, WindowProfile } from '../sketch/index.js';
import { MAX_SORT } from '../sketch/sortCentroids.js';
import { emptyWindowFor, mergeWindowView, newFeature, type FeatureView, type WindowView } from '../sketch/codec.js';

/**
 * What one checkpoint writes: the windows of the batches acknowledged since the last one,
 * folded per (project, model, segment, window) into one WindowProfile each, straight from the
 * batches' bytes.
 *
 * A batch is admitted in two steps: `reserve` decides (before the batch is made durable) that
 * its features can merge with everything admitted so far — same kind, same classes, same
 * capacity per feature name — and records their shapes; `merge` folds it in once it is durable.
 * A batch refused by `reserve` leaves nothing behind.
 *
 * The feature profiles it merges into are reused from commit to commit (cleared, with their
 * digests' arrays): a commit of 60 batches of 40 features otherwise grows and drops a few
 * hundred digest buffers, which measured a fifth of the merge's time. Features come back to the
 * pool only through `release`, after the commit has encoded them.
 *
 * Must: merge only batches `reserve` admitted; hand out only empty profiles.
 */
export interface MergedWindow {
  project: string;
  model: string;
  window: WindowProfile;
}

/** A window being folded, and which of its digests have had their first flush set apart. */
interface Group extends MergedWindow {
  digests: TDigest[];
  /** Features the window had when `digests` was listed. */
  features: number;
  /** Per digest: 1 once its first flush came at its own point (see staggerFlushes). */
  staggered: Uint8Array;
  /** How many of them are staggered (all: nothing left to check). */
  done: number;
}

/** Bounds on the pool: spare profiles per feature shape, and shapes (hostile names churn it). */
const MAX_SPARE_PER_SHAPE = 64;
const MAX_SHAPES = 8192;

/**
 * The shapes a fold has admitted, per group: the latency feature's name, and per input and
 * output feature name what must match to merge. A fold in another thread keeps its book here,
 * on the thread that decides what to acknowledge.
 */
interface Shapes {
  latency: string | null;
  inputs: Map<string, string>;
  outputs: Map<string, string>;
}

export class ShapeBook {
  private readonly shapes = new Map<string, Shapes>();

  /**
   * Admits a batch's windows if every feature agrees with the shapes admitted so far (and
   * records its own); false, with nothing recorded, if one does not. (A batch's windows are
   * distinct, so they fall in distinct groups: checking all before recording any is enough.)
   */
  reserve(project: string, windows: readonly WindowView[]): boolean {
    for (const w of windows) {
      const shapes = this.shapes.get(groupKey(project, w));
      if (shapes !== undefined && !fits(shapes, w)) return false;
    }
    for (const w of windows) {
      const key = groupKey(project, w);
      let shapes = this.shapes.get(key);
      if (shapes === undefined) this.shapes.set(key, (shapes = { latency: null, inputs: new Map(), outputs: new Map() }));
      shapes.latency ??= w.latency.name;
      record(shapes.inputs, w.inputs);
      record(shapes.outputs, w.outputs);
    }
    return true;
  }

  clear(): void {
    this.shapes.clear();
  }
}

function fits(shapes: Shapes, w: WindowView): boolean {
  if (shapes.latency !== null && shapes.latency !== w.latency.name) return false;
  return fitsAll(shapes.inputs, w.inputs) && fitsAll(shapes.outputs, w.outputs);
}

function fitsAll(admitted: Map<string, string>, features: readonly FeatureView[]): boolean {
  for (const fv of features) {
    const have = admitted.get(fv.name);
    if (have !== undefined && have !== compatKey(fv)) return false;
  }
  return true;
}

function record(admitted: Map<string, string>, features: readonly FeatureView[]): void {
  for (const fv of features) if (!admitted.has(fv.name)) admitted.set(fv.name, compatKey(fv));
}

export class FlushMerge {
  private readonly groups = new Map<string, Group>();
  private readonly spare = new Map<string, FeatureProfile[]>();
  private readonly book = new ShapeBook();
  private readonly make = (fv: FeatureView): FeatureProfile => this.take(fv);
  /** Batches merged since the last release. */
  batches = 0;

  get size(): number {
    return this.groups.size;
  }

  /** ShapeBook.reserve for this fold's batches. */
  reserve(project: string, windows: readonly WindowView[]): boolean {
    return this.book.reserve(project, windows);
  }

  /** Folds a window in (after `reserve` admitted its batch). */
  merge(project: string, w: WindowView, bytes: Uint8Array): void {
    const key = groupKey(project, w);
    let group = this.groups.get(key);
    if (group === undefined) {
      // Its latency profile comes from the pool too, shaped after this window's.
      group = { project, model: w.segment.model, window: emptyWindowFor(w, this.make), digests: [], features: -1, staggered: new Uint8Array(0), done: 0 };
      this.groups.set(key, group);
    }
    const { window } = group;
    mergeWindowView(window, w, bytes, this.make);
    staggerFlushes(group);
  }

  /** Folds in every window of an admitted batch. */
  mergeBatch(project: string, windows: readonly WindowView[], bytes: Uint8Array): void {
    for (const w of windows) this.merge(project, w, bytes);
    this.batches++;
  }

  windows(): MergedWindow[] {
    return [...this.groups.values()].map(({ project, model, window }) => ({ project, model, window }));
  }

  /** Ends the commit's merge: its profiles go back to the pool (their contents are dropped). */
  release(): void {
    if (this.spare.size > MAX_SHAPES) this.spare.clear();
    for (const { window } of this.groups.values()) {
      for (const f of window.inputs.values()) this.give(f);
      for (const f of window.outputs.values()) this.give(f);
      this.give(window.latency);
    }
    this.groups.clear();
    this.book.clear();
    this.batches = 0;
  }

  private take(fv: FeatureView): FeatureProfile {
    const list = this.spare.get(shapeKey(fv));
    const f = list?.pop();
    return f ? f.clear() : newFeature(fv);
  }

  private give(f: FeatureProfile): void {
    const key = shapeOf(f);
    let list = this.spare.get(key);
    if (list === undefined) this.spare.set(key, (list = []));
    if (list.length < MAX_SPARE_PER_SHAPE) list.push(f);
  }
}

/**
 * Sets a window's digests' buffer flushes apart. Every batch brings each of a window's features
 * about as many values, so their 8,192-value buffers fill in step, and the one merge that fills
 * them sorts and compresses all ~40 at once: per-batch merge p50 0.16 ms but p99 6 ms and max
 * 43–68 ms (slow day) — a stretch no slicing can cut, and every request behind it waits. So the
 * first flush of digest i of n comes early, once it holds (i + 1) / (n + 1) of a buffer; filling
 * at the same pace from there, their later flushes stay that far apart. Measured: one batch's
 * merge p99 6.2 → 1.4 ms (bench/ingest.ts), mean cost unchanged within the noise.
 */
function staggerFlushes(group: Group): void {
  const { window } = group;
  const features = window.inputs.size + window.outputs.size;
  if (group.features !== features) {
    group.digests = digestsOf(window);
    group.features = features;
    group.staggered = new Uint8Array(group.digests.length);
    group.done = 0;
  }
  const n = group.digests.length;
  if (group.done === n) return;
  for (let i = 0; i < n; i++) {
    if (group.staggered[i] === 1) continue;
    const d = group.digests[i];
    if (d.buffered >= (MAX_SORT * (i + 1)) / (n + 1)) {
      d.compact();
      group.staggered[i] = 1;
      group.done++;
    }
  }
}

/** The window's digests (its numeric features' and latency's). */
function digestsOf(window: WindowProfile): TDigest[] {
  const out: TDigest[] = [];
  for (const f of window.inputs.values()) if (f.digest) out.push(f.digest);
  for (const f of window.outputs.values()) if (f.digest) out.push(f.digest);
  if (window.latency.digest) out.push(window.latency.digest);
  return out;
}

function groupKey(project: string, w: WindowView): string {
  return `${project}\u0000${w.segment.model}\u0000${w.segmentKey}\u0000${w.start}\u0000${w.length}`;
}

/** What two features of one name must share to merge (compression may differ). */
function compatKey(fv: FeatureView): string {
  if (fv.kind === 'numeric') return 'n';
  if (fv.kind === 'classes') return `c\u0000${fv.classes!.labels.join('\u0000')}`;
  return `l\u0000${fv.labels!.capacity}`;
}

/** Profiles of the same shape are interchangeable once cleared. */
function shapeKey(fv: FeatureView): string {
  if (fv.kind === 'numeric') return `n\u0000${fv.compression}\u0000${fv.name}`;
  if (fv.kind === 'classes') return `c\u0000${fv.classes!.labels.join('\u0000')}\u0000${fv.name}`;
  return `l\u0000${fv.labels!.capacity}\u0000${fv.name}`;
}

function shapeOf(f: FeatureProfile): string {
  if (f.kind === 'numeric') return `n\u0000${f.digest!.compression}\u0000${f.name}`;
  if (f.kind === 'classes') return `c\u0000${f.classes!.labels.join('\u0000')}\u0000${f.name}`;
  return `l\u0000${f.labels!.capacity}\u0000${f.name}`;
}
