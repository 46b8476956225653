import { ClassCounts } from './ClassCounts.js';
import { Moments } from './Moments.js';
import { DEFAULT_COMPRESSION, TDigest } from './TDigest.js';
import { TopK } from './TopK.js';

/**
 * Everything sketchwatch keeps about one feature (an input column, an output, the latency) in
 * one window: how many observations came, how many were missing, NaN or infinite, and either
 * moments plus a t-digest (numeric) or counts per class (a fixed class vector, or bounded top-k
 * counts for an open set of labels).
 *
 * Invariant: count = missing + nan + posInf + negInf + observed, where observed is the weight in
 * the digest (numeric) or in the class counts (categorical).
 */
export type FeatureKind = 'numeric' | 'classes' | 'labels';

export class FeatureProfileError extends Error {
  override name = 'FeatureProfileError';
}

/** Longest feature name, in UTF-16 code units. */
export const MAX_FEATURE_NAME = 128;

export interface FeatureOptions {
  /** t-digest compression for numeric features. */
  compression?: number;
  /** Class labels, for kind 'classes'. */
  classes?: readonly string[];
  /** Counter capacity, for kind 'labels'. */
  capacity?: number;
}

export class FeatureProfile {
  readonly name: string;
  readonly kind: FeatureKind;
  count = 0;
  missing = 0;
  nan = 0;
  posInf = 0;
  negInf = 0;
  readonly moments: Moments | null;
  readonly digest: TDigest | null;
  readonly classes: ClassCounts | null;
  readonly labels: TopK | null;

  constructor(name: string, kind: FeatureKind = 'numeric', options: FeatureOptions = {}) {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_FEATURE_NAME) {
      throw new FeatureProfileError(`a feature name must be a string of 1 to ${MAX_FEATURE_NAME} characters, got ${JSON.stringify(name)}`);
    }
    this.name = name;
    this.kind = kind;
    this.moments = kind === 'numeric' ? new Moments() : null;
    this.digest = kind === 'numeric' ? new TDigest(options.compression ?? DEFAULT_COMPRESSION) : null;
    if (kind === 'classes') {
      if (!options.classes) throw new FeatureProfileError(`feature ${name}: kind 'classes' needs the class labels`);
      this.classes = new ClassCounts(options.classes);
    } else {
      this.classes = null;
    }
    this.labels = kind === 'labels' ? new TopK(options.capacity) : null;
    if (kind !== 'numeric' && kind !== 'classes' && kind !== 'labels') {
      throw new FeatureProfileError(`feature ${name}: unknown kind ${JSON.stringify(kind)}`);
    }
  }

  /**
   * Records one numeric observation: null or undefined count as missing, NaN and ±Infinity are
   * counted, anything finite goes into the moments and the digest.
   */
  add(x: number | null | undefined): this {
    this.count++;
    if (typeof x !== 'number') {
      // null, undefined, or not a number at all (a string in a numeric column): missing.
      this.missing++;
    } else if (x - x === 0) {
      // Only finite numbers give 0 here. A categorical feature takes a number as a class
      // index or a label.
      if (this.digest !== null) {
        this.moments!.addFinite(x);
        this.digest.add(x);
      } else if (this.classes !== null) {
        this.classes.add(x);
      } else {
        this.labels!.add(String(x));
      }
    } else if (x !== x) {
      this.nan++;
    } else if (x > 0) {
      this.posInf++;
    } else {
      this.negInf++;
    }
    return this;
  }

  /** Records a categorical observation by label (kind 'labels') or class index (kind 'classes'). */
  addLabel(label: string | number | null | undefined): this {
    if (this.kind === 'numeric') throw new FeatureProfileError(`feature ${this.name} is numeric: use add()`);
    if (label === null || label === undefined) {
      this.count++;
      this.missing++;
    } else if (this.classes !== null) {
      this.count++;
      const index = typeof label === 'number' ? label : this.classes.labels.indexOf(label);
      this.classes.add(index);
    } else {
      this.count++;
      this.labels!.add(String(label));
    }
    return this;
  }

  /** Observations that were neither missing, NaN nor infinite. */
  get observed(): number {
    return this.count - this.missing - this.nan - this.posInf - this.negInf;
  }

  /** True when `other` describes the same feature and the two can merge. */
  compatible(other: FeatureProfile): boolean {
    if (other.name !== this.name || other.kind !== this.kind) return false;
    if (this.classes !== null) return this.classes.sameLabels(other.classes!);
    if (this.labels !== null) return this.labels.capacity === other.labels!.capacity;
    return true;
  }

  /** Folds `other` in and returns this; `other` is never changed. */
  merge(other: FeatureProfile): this {
    if (!this.compatible(other)) {
      throw new FeatureProfileError(`cannot merge feature ${other.name} (${other.kind}) into ${this.name} (${this.kind})`);
    }
    this.count += other.count;
    this.missing += other.missing;
    this.nan += other.nan;
    this.posInf += other.posInf;
    this.negInf += other.negInf;
    this.moments?.merge(other.moments!);
    this.digest?.merge(other.digest!);
    this.classes?.merge(other.classes!);
    this.labels?.merge(other.labels!);
    return this;
  }

  /**
   * Builds a profile from decoded parts, checking that they agree: the counts add up, the
   * digest or class counts hold exactly the observed weight. Throws FeatureProfileError.
   */
  static fromParts(parts: {
    name: string;
    kind: FeatureKind;
    count: number;
    missing: number;
    nan: number;
    posInf: number;
    negInf: number;
    moments?: { mean: number; m2: number; sum: number };
    digest?: TDigest;
    classes?: ClassCounts;
    labels?: TopK;
  }): FeatureProfile {
    const f = new FeatureProfile(parts.name, parts.kind, {
      compression: parts.digest?.compression,
      classes: parts.classes?.labels,
      capacity: parts.labels?.capacity,
    });
    const { count, missing, nan, posInf, negInf } = parts;
    for (const [k, v] of Object.entries({ count, missing, nan, posInf, negInf })) {
      if (!(Number.isSafeInteger(v) && v >= 0)) throw new FeatureProfileError(`feature ${parts.name}: ${k} is ${v}`);
    }
    const observed = count - missing - nan - posInf - negInf;
    if (observed < 0) throw new FeatureProfileError(`feature ${parts.name}: missing, NaN and infinite counts exceed the count ${count}`);
    Object.assign(f, { count, missing, nan, posInf, negInf });
    const self = f as { -readonly [K in keyof FeatureProfile]: FeatureProfile[K] };
    if (parts.kind === 'numeric') {
      const d = parts.digest;
      const m = parts.moments;
      if (d === undefined || m === undefined) throw new FeatureProfileError(`feature ${parts.name}: numeric without digest or moments`);
      if (d.count !== observed) throw new FeatureProfileError(`feature ${parts.name}: digest holds ${d.count} values, counts say ${observed}`);
      if (!Number.isFinite(m.mean) || !Number.isFinite(m.sum) || !(m.m2 >= 0 && Number.isFinite(m.m2))) {
        throw new FeatureProfileError(`feature ${parts.name}: moments must be finite with M2 >= 0`);
      }
      if (observed === 0 && (m.mean !== 0 || m.m2 !== 0 || m.sum !== 0)) {
        throw new FeatureProfileError(`feature ${parts.name}: moments of no values must be zero`);
      }
      Object.assign(f.moments!, { count: observed, mean: m.mean, m2: m.m2, sum: m.sum, min: observed ? d.min : Infinity, max: observed ? d.max : -Infinity });
      self.digest = d;
    } else if (parts.kind === 'classes') {
      const c = parts.classes;
      if (c === undefined) throw new FeatureProfileError(`feature ${parts.name}: no class counts`);
      if (c.total !== observed) throw new FeatureProfileError(`feature ${parts.name}: class counts total ${c.total}, counts say ${observed}`);
      self.classes = c;
    } else {
      const t = parts.labels;
      if (t === undefined) throw new FeatureProfileError(`feature ${parts.name}: no label counts`);
      if (t.total !== observed) throw new FeatureProfileError(`feature ${parts.name}: label counts total ${t.total}, counts say ${observed}`);
      self.labels = t;
    }
    return f;
  }

  /** Empties the profile in place (same name, kind, classes, capacity), keeping its arrays. */
  clear(): this {
    this.count = 0;
    this.missing = 0;
    this.nan = 0;
    this.posInf = 0;
    this.negInf = 0;
    this.moments?.clear();
    this.digest?.clear();
    this.classes?.clear();
    this.labels?.clear();
    return this;
  }

  /** An empty profile of the same feature (name, kind, classes, capacity, compression). */
  emptyLike(): FeatureProfile {
    return new FeatureProfile(this.name, this.kind, {
      compression: this.digest?.compression,
      classes: this.classes?.labels,
      capacity: this.labels?.capacity,
    });
  }

  clone(): FeatureProfile {
    return this.emptyLike().merge(this);
  }
}
