import type { FeatureProfile, WindowProfile } from '../sketch/index.js';
import { emptyWindowFor, mergeWindowView, newFeature, viewCompatible, type FeatureView, type WindowView } from '../sketch/codec.js';

/**
 * What one group commit merges: the windows of its applied batches, folded per (project, model,
 * segment, window) into one WindowProfile each, straight from the batches' bytes.
 *
 * The feature profiles it merges into are reused from commit to commit (cleared, with their
 * digests' arrays): a commit of 60 batches of 40 features otherwise grows and drops a few
 * hundred digest buffers, which measured a fifth of the merge's time. Features come back to the
 * pool only through `release`, after the commit has encoded them.
 *
 * Must: merge a batch all or nothing (`canMerge` first); hand out only empty profiles.
 */
export interface MergedWindow {
  project: string;
  model: string;
  window: WindowProfile;
}

/** Bounds on the pool: spare profiles per feature shape, and shapes (hostile names churn it). */
const MAX_SPARE_PER_SHAPE = 64;
const MAX_SHAPES = 8192;

export class FlushMerge {
  private readonly groups = new Map<string, MergedWindow>();
  private readonly spare = new Map<string, FeatureProfile[]>();
  private readonly make = (fv: FeatureView): FeatureProfile => this.take(fv);

  get size(): number {
    return this.groups.size;
  }

  /** Whether every window of a batch can merge with what this commit holds already. */
  canMerge(project: string, windows: readonly WindowView[]): boolean {
    for (const w of windows) {
      const group = this.groups.get(groupKey(project, w));
      if (group && !viewCompatible(group.window, w)) return false;
    }
    return true;
  }

  /** Folds a window in (after canMerge said yes for its batch). */
  merge(project: string, w: WindowView, bytes: Uint8Array): void {
    const key = groupKey(project, w);
    let group = this.groups.get(key);
    if (group === undefined) {
      // Its latency profile comes from the pool too, shaped after this window's.
      group = { project, model: w.segment.model, window: emptyWindowFor(w, this.make) };
      this.groups.set(key, group);
    }
    mergeWindowView(group.window, w, bytes, this.make);
  }

  windows(): MergedWindow[] {
    return [...this.groups.values()];
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

function groupKey(project: string, w: WindowView): string {
  return `${project}\u0000${w.segment.model}\u0000${w.segmentKey}\u0000${w.start}\u0000${w.length}`;
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
