import { MAX_SORT, sortCentroids } from './sortCentroids.js';
import { decodeDigest, encodeDigest, mergeEncodedDigest } from './codec.js';

/**
 * A merging t-digest (Dunning & Ertl, "Computing extremely accurate quantiles using t-digests",
 * 2019): values are buffered in typed arrays, and each flush sorts the buffer and folds it with
 * the existing centroids in one pass that caps every centroid's weight by where it sits in the
 * distribution.
 *
 * Scale function. A centroid whose nearer tail is a fraction t of the mass away (t = min(q, 1-q))
 * may hold at most the fraction
 *
 *     s(t) = t / (δ·t + κ)        i.e. 1/s = δ + κ/t   centroids per unit of quantile
 *
 * which is flat (≈ 1/δ) through the body and proportional to t in the tails, so the extremes are
 * kept as single points: the sum of Dunning's k0 (uniform) and k2 (logarithmic) densities. k2
 * alone, normalized as in the reference MergingDigest, lets one centroid hold ~15% of the mass
 * at the median (rank error ~1e-2 on lognormal data, as measured for the foundation issue).
 * Measured here on 1e6 uniform, normal and lognormal(0, 1.5) values, δ = 100:
 *   κ = 1: 139 centroids, ~690 B, worst rank error at q = 0.001 after a 10,000-client merge 1.1e-4
 *   κ = 2: 166 centroids, ~780 B, same 3.7e-5, worst over all quantiles 2.6e-4
 *   κ = 3: 192 centroids, ~850 B, same 2.0e-5
 * κ = 2 meets the targets (≤ 1 KiB, ≤ 1e-3 everywhere, ≤ 1e-4 in the tails) with room to spare.
 * δ = 70 would save a fifth of the bytes (~620 B) but doubles the body error after a fleet
 * merge (4.1e-4); δ = 100 also keeps a 100-value client digest all single points (~240 B).
 * A digest of n ≤ ~δ values keeps every value (centroids of weight one).
 *
 * Must: never mutate another digest; keep exact min/max; keep single values exact wherever the
 * scale function allows a centroid of weight one (n small, and the tails); reject NaN/±Infinity.
 */
export const DEFAULT_COMPRESSION = 100;
/** κ above. */
const TAIL_FACTOR = 2;

/** Largest buffer a digest grows to: the most the radix sort takes at once. */
const MAX_BUFFER = MAX_SORT;
const MIN_BUFFER = 32;
/** Largest weight one add may carry, so that counts stay exact integers in a float64. */
const MAX_WEIGHT = 2 ** 32;
const EMPTY: Float64Array = new Float64Array(0);

export class TDigestError extends Error {
  override name = 'TDigestError';
}

/** The digest's state: what the codec writes, and what a decoded digest is built from. */
export interface DigestState {
  compression: number;
  min: number;
  max: number;
  /** Centroid means, non-decreasing. */
  means: Float64Array;
  /** Centroid weights, positive integers. */
  weights: Float64Array;
  /**
   * 1 where every value in the centroid equals its mean (a run of ties), else 0. Such a centroid
   * is a step in the quantile function, not a point to interpolate through: this is what keeps
   * quantiles of integer and other discrete data exact. Omitted: only weight-one centroids.
   */
  pure?: Uint8Array;
}

export class TDigest {
  readonly compression: number;

  private means: Float64Array;
  /**
   * Centroid weights, negated for centroids that mix distinct values (see DigestState.pure):
   * one sign bit carries the flag through sorts and merges at no cost. The buffer's weights
   * follow the same rule.
   */
  private weights: Float64Array;
  private size = 0;
  private total = 0;

  private bufMeans: Float64Array;
  private bufWeights: Float64Array;
  private bufLen = 0;
  private bufTotal = 0;
  /** While true every buffered weight is one and bufWeights is not kept up to date. */
  private bufUnit = true;

  private lo = Infinity;
  private hi = -Infinity;

  /** Piecewise-linear quantile function, built on first query after a change. */
  private anchorPos: Float64Array | null = null;
  private anchorVal: Float64Array | null = null;
  private anchorLen = 0;

  constructor(compression: number = DEFAULT_COMPRESSION) {
    if (!Number.isInteger(compression) || compression < 10 || compression > 10_000) {
      throw new TDigestError(`compression must be an integer from 10 to 10000, got ${compression}`);
    }
    this.compression = compression;
    // Arrays are allocated on first use: a collector decodes thousands of digests at a time.
    this.means = EMPTY;
    this.weights = EMPTY;
    this.bufMeans = EMPTY;
    this.bufWeights = EMPTY;
  }

  /** Total weight added. */
  get count(): number {
    return this.total + this.bufTotal;
  }

  /** Smallest value added (exact); NaN when empty. */
  get min(): number {
    this.flush();
    return this.count === 0 ? NaN : this.lo;
  }

  /** Largest value added (exact); NaN when empty. */
  get max(): number {
    this.flush();
    return this.count === 0 ? NaN : this.hi;
  }

  /** Number of centroids after compression. */
  /** Folds the buffered values into the centroids now (queries and encoding do it anyway). */
  compact(): this {
    this.flush();
    return this;
  }

  /** @internal Values and centroids buffered, not yet folded in (a collector paces its flushes by it). */
  get buffered(): number {
    return this.bufLen;
  }

  get centroidCount(): number {
    this.flush();
    return this.size;
  }

  /** Adds `x` with a positive integer `weight` (default 1). Throws on NaN, ±Infinity, bad weight. */
  add(x: number, weight = 1): this {
    // The per-prediction path: a finite value of weight one into a buffer with room. (x - x is
    // 0 for every finite number and NaN for NaN and ±Infinity.)
    const len = this.bufLen;
    if (weight === 1 && x - x === 0 && this.bufUnit && len < this.bufMeans.length) {
      this.bufMeans[len] = x;
      this.bufLen = len + 1;
      this.bufTotal++;
      return this;
    }
    return this.addSlow(x, weight);
  }

  private addSlow(x: number, weight: number): this {
    if (x - x !== 0) throw new TDigestError(`cannot add ${x}: only finite numbers (profiles count NaN and ±Infinity)`);
    if (weight !== 1) checkWeight(weight);
    if (this.bufLen === this.bufMeans.length) this.makeRoom();
    if (weight !== 1) this.weighBuffer();
    this.bufMeans[this.bufLen] = x;
    if (!this.bufUnit) this.bufWeights[this.bufLen] = weight;
    this.bufLen++;
    this.bufTotal += weight;
    return this;
  }

  /** Adds every value with weight 1. Checks them all first: on a bad value nothing is added. */
  addAll(values: ArrayLike<number>): this {
    const n = values.length;
    for (let i = 0; i < n; i++) {
      const x = values[i];
      if (typeof x !== 'number' || x - x !== 0) {
        throw new TDigestError(`cannot add values[${i}] = ${String(x)}: only finite numbers`);
      }
    }
    for (let i = 0; i < n; i++) {
      if (this.bufLen === this.bufMeans.length) this.makeRoom();
      this.bufMeans[this.bufLen] = values[i];
      if (!this.bufUnit) this.bufWeights[this.bufLen] = 1;
      this.bufLen++;
    }
    this.bufTotal += n;
    return this;
  }

  /** Folds `other` into this digest and returns this. `other` is read, never changed. */
  merge(other: TDigest): this {
    if (!(other instanceof TDigest)) throw new TDigestError('merge() takes a TDigest');
    if (other === this) return this.merge(other.clone());
    if (this.count + other.count > Number.MAX_SAFE_INTEGER) throw new TDigestError('merged total weight would pass 2^53');
    // Read other's centroids and buffer without flushing it: a flush would change its layout.
    if (other.size > 0) {
      if (other.lo < this.lo) this.lo = other.lo;
      if (other.hi > this.hi) this.hi = other.hi;
    }
    this.appendCentroids(other.means, other.weights, other.size);
    this.appendCentroids(other.bufMeans, other.bufUnit ? null : other.bufWeights, other.bufLen);
    return this;
  }

  /**
   * Folds an encoded digest (from `encode()`) into this one, as `merge(TDigest.decode(bytes))`
   * would but without building the intermediate digest. Throws CodecError on bad bytes, and
   * then leaves this digest unchanged.
   */
  mergeEncoded(bytes: Uint8Array): this {
    mergeEncodedDigest(this, bytes);
    return this;
  }

  /**
   * @internal For the codec: buffers `len` decoded centroids (means sorted, weights positive
   * integers, pure flags) known valid, and widens min/max.
   */
  appendDecoded(means: Float64Array, weights: Float64Array, pure: Uint8Array, len: number, min: number, max: number, total: number): void {
    if (len === 0) return;
    if (min < this.lo) this.lo = min;
    if (max > this.hi) this.hi = max;
    // All single values (every small client digest): buffered as raw values, which keeps the
    // buffer on the cheaper unit-weight sort and merge path.
    if (total === len) return this.appendCentroids(means, null, len);
    for (let i = 0; i < len; i++) if (pure[i] === 0) weights[i] = -weights[i];
    this.appendCentroids(means, weights, len);
  }

  /** A new digest holding the union of `digests`; none of them is changed. */
  static mergeAll(digests: Iterable<TDigest>, compression?: number): TDigest {
    const list = [...digests];
    const result = new TDigest(compression ?? (list.length > 0 ? list[0].compression : DEFAULT_COMPRESSION));
    for (const d of list) result.merge(d);
    result.flush();
    return result;
  }

  /**
   * Empties the digest in place, keeping its arrays: a collector that merges thousands of
   * digests a second into short-lived targets reuses them instead of growing new buffers.
   */
  clear(): this {
    this.size = 0;
    this.total = 0;
    this.bufLen = 0;
    this.bufTotal = 0;
    this.bufUnit = true;
    this.lo = Infinity;
    this.hi = -Infinity;
    this.anchorLen = -1;
    return this;
  }

  clone(): TDigest {
    this.flush();
    return TDigest.fromState(this.toState());
  }

  /**
   * The value below which a fraction `q` of the weight lies, for q in [0, 1]. q = 0 gives the
   * min, q = 1 the max. NaN for an empty digest.
   */
  quantile(q: number): number {
    if (!(q >= 0 && q <= 1)) throw new TDigestError(`quantile() takes q in [0, 1], got ${q}`);
    const len = this.anchors();
    if (len === 0) return NaN;
    const pos = this.anchorPos!;
    const val = this.anchorVal!;
    const p = q * this.total;
    // Last anchor at or before p.
    let lo = 0;
    let hi = len - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (pos[mid] <= p) lo = mid;
      else hi = mid - 1;
    }
    if (lo === len - 1) return val[lo];
    const v0 = val[lo];
    const v1 = val[lo + 1];
    if (v0 === v1) return v0;
    const span = pos[lo + 1] - pos[lo];
    const v = v0 + ((p - pos[lo]) / span) * (v1 - v0);
    return v < v0 ? v0 : v > v1 ? v1 : v;
  }

  /**
   * The fraction of the weight at or below `x`: 0 below the min, 1 from the max on. NaN for an
   * empty digest.
   */
  cdf(x: number): number {
    if (Number.isNaN(x)) throw new TDigestError('cdf() of NaN');
    const len = this.anchors();
    if (len === 0) return NaN;
    const pos = this.anchorPos!;
    const val = this.anchorVal!;
    if (x < val[0]) return 0;
    if (x >= val[len - 1]) return 1;
    // Last anchor whose value is <= x.
    let lo = 0;
    let hi = len - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (val[mid] <= x) lo = mid;
      else hi = mid - 1;
    }
    const v0 = val[lo];
    const v1 = val[lo + 1];
    const p = v0 === x ? pos[lo] : pos[lo] + ((x - v0) / (v1 - v0)) * (pos[lo + 1] - pos[lo]);
    return p / this.total;
  }

  encode(): Uint8Array<ArrayBuffer> {
    return encodeDigest(this);
  }

  static decode(bytes: Uint8Array): TDigest {
    return decodeDigest(bytes);
  }

  /**
   * @internal For the codec: the compressed centroids without copying (flushes first). Weights
   * are signed: negative for a centroid that mixes distinct values. Read-only.
   */
  codecView(): { compression: number; size: number; means: Float64Array; weights: Float64Array; min: number; max: number } {
    this.flush();
    return { compression: this.compression, size: this.size, means: this.means, weights: this.weights, min: this.lo, max: this.hi };
  }

  /** A copy of the compressed state (flushes first). */
  toState(): DigestState {
    this.flush();
    return {
      compression: this.compression,
      min: this.size === 0 ? NaN : this.lo,
      max: this.size === 0 ? NaN : this.hi,
      means: this.means.slice(0, this.size),
      weights: this.weights.slice(0, this.size).map(Math.abs),
      pure: Uint8Array.from(this.weights.subarray(0, this.size), (w) => (w > 0 ? 1 : 0)),
    };
  }

  /**
   * Builds a digest from a state, checking every invariant: finite sorted means, positive
   * integer weights, a total below 2^53. Throws TDigestError otherwise. With `adopt` the digest
   * takes the state's arrays instead of copying them; the caller must not change them after.
   */
  static fromState(state: DigestState, { adopt = false } = {}): TDigest {
    const d = new TDigest(state.compression);
    const { means, weights, min, max, pure } = state;
    const len = means.length;
    if (weights.length !== len) throw new TDigestError('means and weights differ in length');
    if (pure !== undefined && pure.length !== len) throw new TDigestError('means and pure flags differ in length');
    if (len === 0) return d;
    if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
      throw new TDigestError(`min ${min} and max ${max} are not an ordered pair of finite numbers`);
    }
    // Means may sit a rounding step outside [min, max] (the codec writes them on a grid and
    // checks that bound itself); queries clamp them. Order and finiteness are checked here.
    let total = 0;
    let prev = -Infinity;
    for (let i = 0; i < len; i++) {
      const m = means[i];
      const w = weights[i];
      if (!(m >= prev) || !Number.isFinite(m)) throw new TDigestError(`centroid ${i}: mean ${m} is not finite and >= the mean before it`);
      if (!(w >= 1 && Number.isInteger(w))) throw new TDigestError(`centroid ${i}: weight ${w} is not a positive integer`);
      prev = m;
      total += w;
    }
    if (!(total <= Number.MAX_SAFE_INTEGER)) throw new TDigestError(`total weight ${total} is beyond 2^53`);
    const signed = adopt ? weights : weights.slice();
    for (let i = 0; i < len; i++) {
      if (signed[i] > 1 && (pure === undefined || pure[i] === 0)) signed[i] = -signed[i];
    }
    d.means = adopt ? means : means.slice();
    d.weights = signed;
    d.size = len;
    d.total = total;
    d.lo = min;
    d.hi = max;
    return d;
  }

  // ---- internals ----

  private makeRoom(): void {
    if (this.bufMeans.length < MAX_BUFFER) {
      // Grow with the stream: a digest that only ever sees a few values stays small.
      const size = Math.min(MAX_BUFFER, Math.max(MIN_BUFFER, this.bufMeans.length * 2));
      const means = new Float64Array(size);
      means.set(this.bufMeans.subarray(0, this.bufLen));
      this.bufMeans = means;
      const weights = new Float64Array(size);
      if (!this.bufUnit) weights.set(this.bufWeights.subarray(0, this.bufLen));
      this.bufWeights = weights;
    } else {
      this.flush();
    }
  }

  /** From now until the next flush, buffered weights are written out. */
  private weighBuffer(): void {
    if (!this.bufUnit) return;
    if (this.bufWeights.length < this.bufMeans.length) this.bufWeights = new Float64Array(this.bufMeans.length);
    this.bufWeights.fill(1, 0, this.bufLen);
    this.bufUnit = false;
  }

  /** Buffers `len` centroids; `weights === null` means all weights are one. */
  private appendCentroids(means: Float64Array, weights: Float64Array | null, len: number): void {
    if (len === 0) return;
    let i = 0;
    while (i < len) {
      if (this.bufLen === this.bufMeans.length) this.makeRoom();
      if (weights !== null) this.weighBuffer();
      const n = Math.min(len - i, this.bufMeans.length - this.bufLen);
      // Element by element: a subarray view per call was a third of what a merge allocated.
      const bm = this.bufMeans;
      const at = this.bufLen - i;
      for (let j = i; j < i + n; j++) bm[at + j] = means[j];
      if (weights !== null) {
        const bw = this.bufWeights;
        let added = 0;
        for (let j = i; j < i + n; j++) {
          const w = weights[j];
          bw[at + j] = w;
          added += w < 0 ? -w : w;
        }
        this.bufTotal += added;
      } else {
        if (!this.bufUnit) this.bufWeights.fill(1, this.bufLen, this.bufLen + n);
        this.bufTotal += n;
      }
      this.bufLen += n;
      i += n;
    }
  }

  /** Sorts the buffer and folds it into the centroids. */
  private flush(): void {
    const len = this.bufLen;
    if (len === 0) return;
    const bm = this.bufMeans;
    const unit = this.bufUnit;
    const bw = this.bufWeights;
    sortCentroids(bm, unit ? null : bw, len);
    if (bm[0] < this.lo) this.lo = bm[0];
    if (bm[len - 1] > this.hi) this.hi = bm[len - 1];

    const n = this.total + this.bufTotal;
    const oldMeans = this.means;
    const oldWeights = this.weights;
    const oldSize = this.size;
    // Output can never exceed the inputs' count; the old arrays are read while writing new ones.
    const capacity = oldSize + len;
    let outMeans = this.spareMeans;
    let outWeights = this.spareWeights;
    if (outMeans.length < capacity) {
      outMeans = new Float64Array(Math.max(capacity, 2 * outMeans.length));
      outWeights = new Float64Array(outMeans.length);
    }

    const out = compress(bm, unit ? null : bw, len, oldMeans, oldWeights, oldSize, outMeans, outWeights, n, this.compression);
    this.spareMeans = oldMeans;
    this.spareWeights = oldWeights;
    this.means = outMeans;
    this.weights = outWeights;
    this.size = out;
    this.total = n;
    this.bufLen = 0;
    this.bufTotal = 0;
    this.bufUnit = true;
    this.anchorLen = -1;
  }

  private spareMeans: Float64Array = EMPTY;
  private spareWeights: Float64Array = EMPTY;

  /** Builds (once per change) the anchors of the piecewise-linear quantile function. */
  private anchors(): number {
    this.flush();
    if (this.anchorLen >= 0 && this.anchorPos !== null) return this.anchorLen;
    const size = this.size;
    if (size === 0) return (this.anchorLen = 0);
    const cap = 2 * size + 4;
    if (this.anchorPos === null || this.anchorPos.length < cap) {
      this.anchorPos = new Float64Array(cap);
      this.anchorVal = new Float64Array(cap);
    }
    const pos = this.anchorPos;
    const val = this.anchorVal!;
    const means = this.means;
    const weights = this.weights;
    const lo = this.lo;
    const hi = this.hi;
    let k = 0;
    // The min is one value: it occupies [0, 1] of the rank axis. A pure centroid (a single
    // value, or a run of ties) is likewise a flat step as wide as its weight; a mixed centroid
    // is a point at its centre of mass, and the quantile function is linear between points.
    // Means are clamped into [min, max]: a decoded digest may carry means rounded by the codec.
    if (weights[0] < 0) {
      pos[k] = 0;
      val[k++] = lo;
      pos[k] = 1;
      val[k++] = lo;
    }
    let before = 0;
    for (let i = 0; i < size; i++) {
      const signed = weights[i];
      const m = means[i] < lo ? lo : means[i] > hi ? hi : means[i];
      if (signed > 0) {
        pos[k] = before;
        val[k++] = m;
        pos[k] = before + signed;
        val[k++] = m;
        before += signed;
      } else {
        pos[k] = before - signed / 2;
        val[k++] = m;
        before -= signed;
      }
    }
    if (weights[size - 1] < 0) {
      pos[k] = before - 1;
      val[k++] = hi;
      pos[k] = before;
      val[k++] = hi;
    }
    // quantile(0) is the min and quantile(1) the max even when a rounded singleton stands there.
    val[0] = lo;
    val[k - 1] = hi;
    this.anchorLen = k;
    return k;
  }
}

/**
 * One pass over the sorted buffer and the old centroids (both sorted by mean), writing the new
 * centroids to outMeans/outWeights; returns how many. `bw === null` means unit weights. A
 * function of its own, not part of flush(): V8 compiled the loop 3× slower inside the method.
 */
function compress(
  bm: Float64Array, bw: Float64Array | null, len: number,
  oldMeans: Float64Array, oldWeights: Float64Array, oldSize: number,
  outMeans: Float64Array, outWeights: Float64Array, n: number, delta: number,
): number {
  let out = 0;
  let done = 0; // weight already emitted
  // The open centroid: its first mean, the weighted sum of its means' distances above that
  // one, its weight, and whether a mixed centroid went into it. Summing distances keeps the
  // loop free of a division chain (one per item halved the flush's speed), stays exact when
  // every merged mean is equal, and tells purity for free: values are merged in sorted order,
  // so `above` stays 0 exactly when they are all equal to the first.
  let first = 0;
  let above = 0;
  let weight = 0;
  let mixed = false;
  let limit = 0;
  let i = 0;
  let j = 0;
  while (i < oldSize || j < len) {
    if (bw === null && j < len) {
      // Fast path for raw values: absorb the run of buffered values that fit in the open
      // centroid and come before the next old centroid, one subtract-and-add each.
      const bound = i < oldSize ? oldMeans[i] : Infinity;
      const room = limit - weight;
      const stop = room >= len - j ? len : j + (room >= 1 ? Math.floor(room) : 0);
      const start = j;
      while (j < stop && bm[j] < bound) above += bm[j++] - first;
      // Values equal to a pure centroid's join it whatever its size: a run of ties is one
      // exact step, so constants and heavy ties cost one centroid, not a hundred.
      if (above === 0 && !mixed && weight > 0) while (j < len && bm[j] === first && bm[j] < bound) j++;
      weight += j - start;
      if (j > start) continue;
    } else if (bw !== null && j < len) {
      // The same for weighted centroids (merges).
      const bound = i < oldSize ? oldMeans[i] : Infinity;
      const start = j;
      while (j < len && bm[j] < bound) {
        const signed = bw[j];
        const w = signed < 0 ? -signed : signed;
        if (weight + w > limit) break;
        weight += w;
        above += (bm[j++] - first) * w;
        if (signed < 0) mixed = true;
      }
      if (j > start) continue;
    }
    let m: number;
    let signed: number;
    if (j >= len || (i < oldSize && oldMeans[i] <= bm[j])) {
      m = oldMeans[i];
      signed = oldWeights[i++];
    } else {
      m = bm[j];
      signed = bw === null ? 1 : bw[j];
      j++;
    }
    const w = signed < 0 ? -signed : signed;
    if (weight + w <= limit || (m === first && signed > 0 && above === 0 && !mixed && weight > 0)) {
      weight += w;
      above += (m - first) * w;
      if (signed < 0) mixed = true;
      continue;
    }
    if (weight > 0) {
      out = emit(outMeans, outWeights, out, first + above / weight, mixed || above !== 0 ? -weight : weight);
      done += weight;
    }
    first = m;
    above = 0;
    weight = w;
    mixed = signed < 0;
    limit = maxCentroidWeight(done / n, n, delta);
  }
  if (weight > 0) out = emit(outMeans, outWeights, out, first + above / weight, mixed || above !== 0 ? -weight : weight);
  return out;
}

/**
 * Appends a centroid (weight negated when it mixes values), its mean raised to the previous
 * one's if rounding put it below.
 */
function emit(means: Float64Array, weights: Float64Array, out: number, mean: number, weight: number): number {
  means[out] = out > 0 && mean < means[out - 1] ? means[out - 1] : mean;
  weights[out] = weight;
  return out + 1;
}

function checkWeight(weight: number): void {
  if (!(Number.isInteger(weight) && weight >= 1 && weight <= MAX_WEIGHT)) {
    throw new TDigestError(`weight must be an integer from 1 to 2^32, got ${weight}`);
  }
}

/**
 * The largest weight a centroid that starts at quantile `q0` may reach, in a digest of total
 * weight `n`: the fraction s(t) of the scale function above, applied at whichever end of the
 * centroid is nearer a tail.
 */
function maxCentroidWeight(q0: number, n: number, delta: number): number {
  const kappa = TAIL_FACTOR;
  // Left end nearer the lower tail: s(q0).
  const left = q0 <= 0.5 ? q0 / (delta * q0 + kappa) : Infinity;
  // Right end nearer the upper tail: the largest Δ with Δ <= s(u - Δ), u = 1 - q0, which is the
  // smaller root of δΔ² - (δu + κ + 1)Δ + u = 0, written in the form that does not cancel.
  const u = 1 - q0;
  const b = delta * u + kappa + 1;
  const right = (2 * u) / (b + Math.sqrt(b * b - 4 * delta * u));
  return n * (left < right ? left : right);
}
