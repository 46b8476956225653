import { EVENTS, WindowProfile, type FeatureProfile, type Segment } from '../sketch/index.js';

/**
 * Turns predictions into window profiles. Pure data in, sketches out: no DOM, no tfjs, no
 * storage — the worker feeds it, and the fleet simulation runs the same code in Node.
 *
 * What is recorded per prediction (one row of a batch):
 * - inputs: tabular ([rows, columns]) → one numeric feature per column, named by `inputs`;
 *   images ([rows, height, width] or [rows, height, width, channels]) → per image and channel the
 *   mean and standard deviation of the pixels (`mean_<channel>`, `std_<channel>`), never pixels;
 * - outputs: a classifier ([rows, classes], task 'classification') → the probability of each
 *   class (`p_<class>`), the predicted class (`class`, counts per class), the top-1 confidence
 *   (`confidence`) and the entropy of the probabilities in bits (`entropy`); a regression
 *   ([rows, k]) → one numeric feature per output, named by `outputs`;
 * - latency per call in milliseconds, spread over the call's rows (each row records the call's
 *   time divided by the number of rows), and events: wrong input shape, unseen class, NaN or
 *   infinite inputs and outputs, prediction errors.
 */
export type Task = 'classification' | 'regression';

export interface ProfilerOptions {
  /** Model name (segment label `model`). */
  model: string;
  version?: string;
  /** Input feature names: tabular columns, or image channel names. */
  inputs?: readonly string[];
  /** Output names: class labels (classification) or regression outputs. */
  outputs?: readonly string[];
  task?: Task;
  /** Window length in milliseconds (UTC-aligned). */
  window: number;
}

/** A tensor as the profiler sees it: its values in row-major order and its shape. */
export interface TensorData {
  data: ArrayLike<number>;
  shape: readonly number[];
}

/** Events that count as tripwires: the agent sends early when one of them is recorded. */
export const TRIPWIRES: ReadonlySet<string> = new Set([
  EVENTS.predictError, EVENTS.shapeMismatch, EVENTS.unseenClass, EVENTS.nonFiniteInput, EVENTS.nonFiniteOutput,
]);

const LOG2E = Math.LOG2E;

/**
 * One open window with its features looked up once: the per-prediction path then indexes arrays
 * instead of looking names up in maps (a 32-feature row went from ~7 µs to ~2 µs in Node).
 */
interface Slot {
  w: WindowProfile;
  backend: string;
  /** Tabular input features by column, for `columns` columns (null until first used). */
  columns: FeatureProfile[] | null;
  /** Image features: mean and std per channel. */
  means: FeatureProfile[] | null;
  stds: FeatureProfile[] | null;
  /** Regression outputs by column. */
  regression: FeatureProfile[] | null;
  /** Classification: class, confidence, entropy, probabilities (for `width` outputs). */
  cls: FeatureProfile | null;
  confidence: FeatureProfile | null;
  entropy: FeatureProfile | null;
  probs: FeatureProfile[] | null;
}

export class Profiler {
  readonly options: Readonly<ProfilerOptions>;
  /** Open windows by `${start}|${backend}`: what was recorded since the last take(). */
  private windows = new Map<string, Slot>();
  /** The slot used last (predictions come in runs of the same window and backend). */
  private last: Slot | null = null;
  private tripped = false;

  constructor(options: ProfilerOptions) {
    this.options = Object.freeze({ ...options });
  }

  /** The segment a prediction on `backend` belongs to. */
  segment(backend: string): Segment {
    const s: Record<string, string> = { model: this.options.model, backend };
    if (this.options.version !== undefined) s.version = this.options.version;
    return s;
  }

  private slot(time: number, backend: string): Slot {
    const last = this.last;
    if (last !== null && last.backend === backend && time >= last.w.start && time < last.w.start + last.w.length) return last;
    const length = this.options.window;
    const start = WindowProfile.alignedStart(time, length);
    const key = `${start}|${backend}`;
    let slot = this.windows.get(key);
    if (slot === undefined) {
      slot = this.newSlot(new WindowProfile(start, length, this.segment(backend)), backend);
      this.windows.set(key, slot);
    }
    this.last = slot;
    return slot;
  }

  private newSlot(w: WindowProfile, backend: string): Slot {
    return { w, backend, columns: null, means: null, stds: null, regression: null, cls: null, confidence: null, entropy: null, probs: null };
  }

  /**
   * Records one call of the model: `rows` predictions with their inputs and outputs, and the
   * call's latency. Returns the number of predictions recorded.
   */
  record(time: number, backend: string, input: TensorData | null, output: TensorData, latencyMs: number): number {
    const slot = this.slot(time, backend);
    const w = slot.w;
    const rows = output.shape.length === 0 ? 1 : output.shape[0];
    if (!Number.isSafeInteger(rows) || rows <= 0) {
      this.event(w, EVENTS.shapeMismatch);
      return 0;
    }
    w.predictions += rows;
    const perRow = latencyMs / rows;
    for (let i = 0; i < rows; i++) w.latency.add(perRow);
    if (input !== null) this.recordInputs(slot, input, rows);
    this.recordOutputs(slot, output, rows);
    return rows;
  }

  /** Records a failed call (the model threw). */
  recordError(time: number, backend: string): void {
    this.event(this.slot(time, backend).w, EVENTS.predictError);
  }

  /** Records an event that is not tied to a prediction (e.g. batches dropped from a full outbox). */
  recordEvent(time: number, backend: string, name: string, count = 1): void {
    this.event(this.slot(time, backend).w, name, count);
  }

  private event(w: WindowProfile, name: string, count = 1): void {
    w.event(name, count);
    if (TRIPWIRES.has(name)) this.tripped = true;
  }

  private recordInputs(slot: Slot, input: TensorData, rows: number): void {
    const w = slot.w;
    const { data, shape } = input;
    const names = this.options.inputs;
    if (shape.length < 1 || shape[0] !== rows || data.length !== product(shape)) {
      this.event(w, EVENTS.shapeMismatch);
      return;
    }
    let nonFinite = 0;
    if (shape.length <= 2) {
      const cols = shape.length === 1 ? 1 : shape[1];
      if (names !== undefined && names.length !== cols) {
        this.event(w, EVENTS.shapeMismatch);
        return;
      }
      if (slot.columns === null || slot.columns.length !== cols) {
        slot.columns = Array.from({ length: cols }, (_, c) => w.input(names?.[c] ?? `x${c}`));
      }
      const columns = slot.columns;
      for (let c = 0; c < cols; c++) {
        const f = columns[c];
        for (let r = 0; r < rows; r++) {
          const x = data[r * cols + c];
          if (x - x !== 0) nonFinite++;
          f.add(x);
        }
      }
    } else {
      // Images: [rows, h, w] or [rows, h, w, channels] (channels last, as tf.js uses).
      const channels = shape.length === 3 ? 1 : shape[3];
      if (shape.length > 4 || (names !== undefined && names.length !== channels)) {
        this.event(w, EVENTS.shapeMismatch);
        return;
      }
      const pixels = shape[1] * shape[2];
      const stride = pixels * channels;
      if (slot.means === null || slot.means.length !== channels) {
        const labels = Array.from({ length: channels }, (_, c) => names?.[c] ?? `c${c}`);
        slot.means = labels.map((l) => w.input(`mean_${l}`));
        slot.stds = labels.map((l) => w.input(`std_${l}`));
      }
      for (let c = 0; c < channels; c++) {
        const mean = slot.means[c];
        const std = slot.stds![c];
        for (let r = 0; r < rows; r++) {
          let s = 0;
          let s2 = 0;
          let bad = 0;
          const base = r * stride + c;
          for (let p = 0; p < pixels; p++) {
            const x = data[base + p * channels];
            if (x - x !== 0) bad++;
            else {
              s += x;
              s2 += x * x;
            }
          }
          if (bad > 0) {
            nonFinite += bad;
            mean.add(NaN);
            std.add(NaN);
          } else {
            const m = s / pixels;
            mean.add(m);
            std.add(Math.sqrt(Math.max(0, s2 / pixels - m * m)));
          }
        }
      }
    }
    if (nonFinite > 0) this.event(w, EVENTS.nonFiniteInput, nonFinite);
  }

  private recordOutputs(slot: Slot, output: TensorData, rows: number): void {
    const w = slot.w;
    const { data, shape } = output;
    const width = shape.length <= 1 ? 1 : product(shape.slice(1));
    if (data.length !== rows * width) {
      this.event(w, EVENTS.shapeMismatch);
      return;
    }
    const names = this.options.outputs;
    const task = this.options.task ?? (width > 1 && names !== undefined ? 'classification' : 'regression');
    let nonFinite = 0;
    if (task === 'regression') {
      if (slot.regression === null || slot.regression.length !== width) {
        slot.regression = Array.from({ length: width }, (_, c) => w.output(names?.[c] ?? `y${c}`));
      }
      const outputs = slot.regression;
      for (let c = 0; c < width; c++) {
        const f = outputs[c];
        for (let r = 0; r < rows; r++) {
          const y = data[r * width + c];
          if (y - y !== 0) nonFinite++;
          f.add(y);
        }
      }
    } else {
      if (slot.cls === null || (names === undefined && slot.probs!.length !== width)) {
        const labels = names ?? Array.from({ length: width }, (_, i) => `class${i}`);
        slot.cls = w.output('class', 'classes', { classes: labels });
        slot.confidence = w.output('confidence');
        slot.entropy = w.output('entropy');
        slot.probs = labels.map((l) => w.output(`p_${l}`));
      }
      const cls = slot.cls;
      const confidence = slot.confidence!;
      const entropy = slot.entropy!;
      const probs = slot.probs!;
      const classes = probs.length;
      let unseen = 0;
      for (let r = 0; r < rows; r++) {
        const base = r * width;
        let best = -1;
        let top = -Infinity;
        let h = 0;
        let bad = false;
        for (let c = 0; c < width; c++) {
          const p = data[base + c];
          if (p - p !== 0) {
            bad = true;
            continue;
          }
          if (p > top) {
            top = p;
            best = c;
          }
          if (p > 0) h -= p * Math.log(p) * LOG2E;
          if (c < probs.length) probs[c].add(p);
        }
        if (bad) {
          nonFinite++;
          cls.addLabel(null);
          confidence.add(NaN);
          entropy.add(NaN);
          for (let c = 0; c < probs.length; c++) {
            const p = data[base + c];
            if (p - p !== 0) probs[c].add(p);
          }
          continue;
        }
        // A model wider than its class list predicts classes nobody named: unseen.
        if (best >= classes) unseen++;
        cls.addLabel(best);
        confidence.add(top);
        entropy.add(h);
      }
      if (unseen > 0) this.event(w, EVENTS.unseenClass, unseen);
    }
    if (nonFinite > 0) this.event(w, EVENTS.nonFiniteOutput, nonFinite);
  }

  /** True when something was recorded since the last take(). */
  get dirty(): boolean {
    return this.windows.size > 0;
  }

  /** True (once) when a tripwire event was recorded since the last call. */
  takeTripped(): boolean {
    const t = this.tripped;
    this.tripped = false;
    return t;
  }

  /**
   * Hands over everything recorded so far and starts empty. The caller owns the windows; if it
   * cannot store them it gives them back with restore().
   */
  take(): WindowProfile[] {
    const out = [...this.windows.values()].map((s) => s.w);
    this.windows = new Map();
    this.last = null;
    return out;
  }

  /** Puts windows back (a checkpoint that failed): they merge with what came since. */
  restore(windows: readonly WindowProfile[]): void {
    for (const w of windows) {
      const backend = w.segment.backend ?? '';
      const key = `${w.start}|${backend}`;
      const mine = this.windows.get(key);
      if (mine === undefined) this.windows.set(key, this.newSlot(w, backend));
      else mine.w.merge(w);
    }
  }
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Merges lists of windows: equal (start, length, segment) merge into one. The inputs are not
 * changed (merges are pure).
 */
export function mergeWindows(...lists: readonly (readonly WindowProfile[])[]): WindowProfile[] {
  const out = new Map<string, WindowProfile>();
  for (const list of lists) {
    for (const w of list) {
      const key = `${w.start}/${w.length}/${w.segmentKey}`;
      const mine = out.get(key);
      if (mine === undefined) out.set(key, w.clone());
      else mine.merge(w);
    }
  }
  return [...out.values()];
}
