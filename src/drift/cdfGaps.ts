import type { TDigest } from '../sketch/index.js';

/**
 * The CDF of a t-digest (TDigest.cdf) is piecewise linear in x: its breakpoints are the centroid
 * means (clamped into [min, max]) and the exact min and max, and a pure centroid (a run of ties)
 * is a jump. Between two consecutive breakpoints of the union of two digests both CDFs are
 * therefore linear, and so is their difference. Everything that integrates or maximizes a CDF
 * difference (KS, Wasserstein-1) only needs the difference just at and just before each union
 * breakpoint. That makes the statistic exact *for the sketches*, with no grid or resolution to
 * tune (whylogs#684 reports sketch-based KS as unstable; here the only error left is the
 * digests' own CDF error).
 */
export interface CdfGaps {
  /** Union breakpoints, strictly increasing. */
  xs: Float64Array;
  /** F_a(x) − F_b(x) at each breakpoint (CDFs are right-continuous: fraction ≤ x). */
  at: Float64Array;
  /** F_a(x−) − F_b(x−): the left limit at each breakpoint. */
  before: Float64Array;
}

/** The largest double below x (x finite): F(nextDown(x)) is the CDF's left limit at x. */
const view = new DataView(new ArrayBuffer(8));
export function nextDown(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  // Stepping the bit pattern moves one ulp toward −∞ for negatives when incremented.
  view.setBigUint64(0, x > 0 ? bits - 1n : bits + 1n);
  return view.getFloat64(0);
}

/** Every breakpoint of a digest's CDF: its centroid means clamped to [min, max], plus min and max. */
export function breakpoints(digest: TDigest): Float64Array {
  if (digest.count === 0) return new Float64Array(0);
  const { means, min, max } = digest.toState();
  const xs = new Float64Array(means.length + 2);
  xs[0] = min;
  for (let i = 0; i < means.length; i++) xs[i + 1] = Math.min(max, Math.max(min, means[i]));
  xs[means.length + 1] = max;
  return xs;
}

/** Sorted, deduplicated union of breakpoint lists. */
export function unionOf(...lists: Float64Array[]): Float64Array {
  let total = 0;
  for (const l of lists) total += l.length;
  const all = new Float64Array(total);
  let k = 0;
  for (const l of lists) {
    all.set(l, k);
    k += l.length;
  }
  all.sort();
  let out = 0;
  for (let i = 0; i < all.length; i++) if (out === 0 || all[i] !== all[out - 1]) all[out++] = all[i];
  return all.slice(0, out);
}

/** [F(x−), F(x)] of the sketch: its left limit at x and its value; [0, 0] when empty (never NaN). */
export function cdfAndLeftLimit(digest: TDigest, x: number): [number, number] {
  if (digest.count === 0) return [0, 0];
  return [digest.cdf(nextDown(x)), digest.cdf(x)];
}

/** CDF differences of `a` and `b` at and just before every breakpoint of either. */
export function cdfGaps(a: TDigest, b: TDigest): CdfGaps {
  const xs = unionOf(breakpoints(a), breakpoints(b));
  const at = new Float64Array(xs.length);
  const before = new Float64Array(xs.length);
  for (let i = 0; i < xs.length; i++) {
    const [aLeft, aAt] = cdfAndLeftLimit(a, xs[i]);
    const [bLeft, bAt] = cdfAndLeftLimit(b, xs[i]);
    at[i] = aAt - bAt;
    before[i] = aLeft - bLeft;
  }
  return { xs, at, before };
}
