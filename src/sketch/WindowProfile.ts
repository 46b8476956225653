import { FeatureProfile, type FeatureKind, type FeatureOptions } from './FeatureProfile.js';

/**
 * One time window × one segment (model, version, backend, …) of one model's traffic: a
 * FeatureProfile per input and per output, the inference latency in milliseconds, the number of
 * predictions, and counts of events such as prediction errors, wrong input shapes and unseen
 * classes.
 *
 * Windows are aligned to UTC: `start` is a multiple of `length` (both in milliseconds since the
 * epoch), so every agent and collector agrees on which window a moment belongs to.
 */
export class WindowProfileError extends Error {
  override name = 'WindowProfileError';
}

export const MIN_WINDOW_MS = 1_000;
export const MAX_WINDOW_MS = 7 * 24 * 3_600_000;
/** Limits that bound memory and the wire: a profile beyond them is refused, not truncated. */
export const MAX_SEGMENT_LABELS = 16;
export const MAX_LABEL_BYTES = 256;
export const MAX_FEATURES = 4096;
export const MAX_EVENT_KINDS = 64;

/** Event names the agent records; other names are allowed (an agent may add its own). */
export const EVENTS = {
  predictError: 'predict_error',
  shapeMismatch: 'shape_mismatch',
  unseenClass: 'unseen_class',
  nonFiniteInput: 'nonfinite_input',
  nonFiniteOutput: 'nonfinite_output',
} as const;

export type Segment = Readonly<Record<string, string>>;

export class WindowProfile {
  readonly start: number;
  readonly length: number;
  readonly segment: Segment;
  predictions = 0;
  readonly inputs = new Map<string, FeatureProfile>();
  readonly outputs = new Map<string, FeatureProfile>();
  readonly latency: FeatureProfile;
  readonly events = new Map<string, number>();

  constructor(start: number, length: number, segment: Record<string, string> = {}) {
    if (!Number.isSafeInteger(length) || length < MIN_WINDOW_MS || length > MAX_WINDOW_MS) {
      throw new WindowProfileError(`window length must be whole milliseconds from ${MIN_WINDOW_MS} to ${MAX_WINDOW_MS}, got ${length}`);
    }
    if (!Number.isSafeInteger(start) || start < 0 || start % length !== 0) {
      throw new WindowProfileError(`window start ${start} is not a non-negative multiple of the window length ${length}`);
    }
    const entries = Object.entries(segment);
    if (entries.length > MAX_SEGMENT_LABELS) throw new WindowProfileError(`a segment has at most ${MAX_SEGMENT_LABELS} labels, got ${entries.length}`);
    for (const [k, v] of entries) {
      if (typeof v !== 'string' || k.length === 0 || k.length > MAX_LABEL_BYTES || v.length > MAX_LABEL_BYTES) {
        throw new WindowProfileError(`segment label ${JSON.stringify(k)} must map a non-empty name to a string of at most ${MAX_LABEL_BYTES} characters`);
      }
    }
    this.start = start;
    this.length = length;
    // Sorted by name: the same segment always has the same key and the same bytes.
    this.segment = Object.freeze(Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    this.latency = new FeatureProfile('latency_ms');
  }

  /** The UTC-aligned window start that holds `time` (ms since the epoch). */
  static alignedStart(time: number, length: number): number {
    return Math.floor(time / length) * length;
  }

  /** A string that names the segment: equal segments give equal keys. */
  get segmentKey(): string {
    return JSON.stringify(this.segment);
  }

  /** The input feature `name`, created on first use. */
  input(name: string, kind: FeatureKind = 'numeric', options?: FeatureOptions): FeatureProfile {
    return this.feature(this.inputs, name, kind, options);
  }

  /** The output feature `name`, created on first use. */
  output(name: string, kind: FeatureKind = 'numeric', options?: FeatureOptions): FeatureProfile {
    return this.feature(this.outputs, name, kind, options);
  }

  private feature(map: Map<string, FeatureProfile>, name: string, kind: FeatureKind, options?: FeatureOptions): FeatureProfile {
    let f = map.get(name);
    if (f === undefined) {
      if (this.inputs.size + this.outputs.size >= MAX_FEATURES) {
        throw new WindowProfileError(`a window holds at most ${MAX_FEATURES} features`);
      }
      f = new FeatureProfile(name, kind, options);
      map.set(name, f);
    }
    return f;
  }

  /** Adds `count` to the event `name`. */
  event(name: string, count = 1): this {
    const c = this.events.get(name);
    if (c === undefined && this.events.size >= MAX_EVENT_KINDS) {
      throw new WindowProfileError(`a window holds at most ${MAX_EVENT_KINDS} kinds of event`);
    }
    this.events.set(name, (c ?? 0) + count);
    return this;
  }

  /** True when `other` is the same window of the same segment. */
  sameWindow(other: WindowProfile): boolean {
    return other.start === this.start && other.length === this.length && other.segmentKey === this.segmentKey;
  }

  /**
   * Folds `other` (the same window and segment) in and returns this; `other` is never changed.
   * Features present in only one side are taken as they are.
   */
  merge(other: WindowProfile): this {
    if (!this.sameWindow(other)) {
      throw new WindowProfileError(`cannot merge window ${other.start}+${other.length} ${other.segmentKey} into ${this.start}+${this.length} ${this.segmentKey}`);
    }
    for (const [map, from] of [[this.inputs, other.inputs], [this.outputs, other.outputs]] as const) {
      for (const f of from.values()) {
        const mine = map.get(f.name);
        if (mine !== undefined && !mine.compatible(f)) {
          throw new WindowProfileError(`feature ${f.name} differs in kind or classes between the two windows`);
        }
      }
    }
    this.predictions += other.predictions;
    for (const [map, from] of [[this.inputs, other.inputs], [this.outputs, other.outputs]] as const) {
      for (const f of from.values()) {
        const mine = map.get(f.name);
        if (mine === undefined) map.set(f.name, f.clone());
        else mine.merge(f);
      }
    }
    this.latency.merge(other.latency);
    for (const [name, c] of other.events) this.events.set(name, (this.events.get(name) ?? 0) + c);
    return this;
  }

  /**
   * A copy of this window's data in another frame: another start (a collector moving the window
   * of a client whose clock was off), length or segment labels (merging across segments).
   */
  reframed(frame: { start?: number; length?: number; segment?: Record<string, string> }): WindowProfile {
    const out = new WindowProfile(frame.start ?? this.start, frame.length ?? this.length, frame.segment ?? { ...this.segment });
    const copy = this.clone();
    out.predictions = copy.predictions;
    for (const [name, f] of copy.inputs) out.inputs.set(name, f);
    for (const [name, f] of copy.outputs) out.outputs.set(name, f);
    out.latency.merge(copy.latency);
    for (const [name, c] of copy.events) out.events.set(name, c);
    return out;
  }

  /** A copy of this window at another start (same length and segment). */
  movedTo(start: number): WindowProfile {
    return this.reframed({ start });
  }

  /** An empty window with the same start, length and segment. */
  emptyLike(): WindowProfile {
    return new WindowProfile(this.start, this.length, { ...this.segment });
  }

  clone(): WindowProfile {
    return this.emptyLike().merge(this);
  }
}
