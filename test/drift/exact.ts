/**
 * Exact drift statistics on raw values, for comparing the sketch-based ones against. Written
 * directly from the definitions, independently of src/drift: sorted-array walks, no digests.
 */
import type { Bins } from '../../src/drift/index.js';

/** Fraction of sorted values ≤ x (right = true) or < x. */
function fractionBelow(s: Float64Array, x: number, right: boolean): number {
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (right ? s[m] <= x : s[m] < x) lo = m + 1;
    else hi = m;
  }
  return lo / s.length;
}

/** Distinct values of both sorted arrays, ascending. */
function unionValues(a: Float64Array, b: Float64Array): Float64Array {
  const all = new Float64Array(a.length + b.length);
  all.set(a);
  all.set(b, a.length);
  all.sort();
  let out = 0;
  for (let i = 0; i < all.length; i++) if (out === 0 || all[i] !== all[out - 1]) all[out++] = all[i];
  return all.slice(0, out);
}

/** sup |F_a − F_b| of the empirical CDFs: attained at a data value, both CDFs being step functions. */
export function exactKs(a: Float64Array, b: Float64Array): number {
  let sup = 0;
  for (const x of unionValues(a, b)) sup = Math.max(sup, Math.abs(fractionBelow(a, x, true) - fractionBelow(b, x, true)));
  return sup;
}

/** ∫ |F_a − F_b| dx of the empirical CDFs: constant between consecutive data values. */
export function exactWasserstein1(a: Float64Array, b: Float64Array): number {
  const xs = unionValues(a, b);
  let area = 0;
  for (let i = 0; i + 1 < xs.length; i++) {
    area += Math.abs(fractionBelow(a, xs[i], true) - fractionBelow(b, xs[i], true)) * (xs[i + 1] - xs[i]);
  }
  return area;
}

export function exactMeanStd(s: Float64Array): { mean: number; std: number } {
  let sum = 0;
  for (const x of s) sum += x;
  const mean = sum / s.length;
  let ss = 0;
  for (const x of s) ss += (x - mean) ** 2;
  return { mean, std: Math.sqrt(ss / s.length) };
}

/** Fractions of sorted values in each bin of `bins`: (−∞, c₁], (c₁, c₂], …, (c_m, ∞). */
export function exactProportions(bins: Bins, s: Float64Array): Float64Array {
  const { edges } = bins;
  const out = new Float64Array(edges.length + 1);
  let previous = 0;
  edges.forEach((edge, i) => {
    const cumulative = fractionBelow(s, edge, true);
    out[i] = cumulative - previous;
    previous = cumulative;
  });
  out[edges.length] = 1 - previous;
  return out;
}
