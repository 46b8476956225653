import type { TDigest } from '../sketch/index.js';
import { nextDown } from './cdfGaps.js';

/**
 * Bins for PSI, Jensen–Shannon and Hellinger, fixed from the baseline when the baseline is
 * created and stored with it: recomputing edges per comparison would let the bins follow the
 * drift they are meant to measure. Plain numbers, so a collector can store them as JSON.
 *
 * Edges c₁ < c₂ < … < c_m cut the line into m + 1 bins closed on the right, matching the CDF
 * (fraction ≤ x):
 *
 *     (−∞, c₁]  (c₁, c₂]  …  (c_{m−1}, c_m]  (c_m, +∞)
 *
 * c₁ is the largest double below the baseline min and c_m its max, so the first and last bins
 * are overflow bins holding whatever falls outside the baseline's range (empty in the baseline
 * itself). The interior edges are baseline quantiles. Because every bin is closed on the right,
 * a heavy tie at a quantile (integers, a dominant value, the min itself) fills a bin of its own
 * instead of sharing one with its neighbour. A constant baseline c has edges [c⁻, c]: one
 * interior bin, [c, c].
 */
export interface Bins {
  readonly edges: readonly number[];
}

/** Interior bins by default: deciles, the usual choice for PSI (Yurdakul 2018). */
export const DEFAULT_BIN_COUNT = 10;

/**
 * Edges at the baseline quantiles i/count between its exact min and max. Ties make equal
 * quantiles; duplicates are dropped, so such a baseline gets fewer, heavier bins rather than
 * empty ones. An empty baseline gives no edges (one bin, everything).
 */
export function binsFromBaseline(baseline: TDigest, count = DEFAULT_BIN_COUNT): Bins {
  if (!(Number.isInteger(count) && count >= 1)) throw new RangeError(`bin count must be a positive integer, got ${count}`);
  if (baseline.count === 0) return { edges: [] };
  const belowMin = nextDown(baseline.min);
  // At −MAX_VALUE there is no double below: the underflow bin cannot hold anything anyway.
  const edges = Number.isFinite(belowMin) ? [belowMin] : [];
  const push = (e: number): void => {
    if (edges.length === 0 || e > edges[edges.length - 1]) edges.push(e);
  };
  for (let i = 1; i < count; i++) push(baseline.quantile(i / count));
  push(baseline.max);
  return { edges };
}

/** Number of bins `bins` makes, overflow bins included. */
export function binCount(bins: Bins): number {
  return bins.edges.length + 1;
}

/**
 * The fraction of the digest's weight in each bin, from its CDF: every entry in [0, 1], summing
 * to 1, never NaN. An empty digest gives all zeros. Each fraction is a difference of two CDF
 * values, so its error is at most twice the digest's CDF error.
 */
export function binnedProportions(bins: Bins, digest: TDigest): Float64Array {
  const { edges } = bins;
  const out = new Float64Array(edges.length + 1);
  if (digest.count === 0) return out;
  let previous = 0;
  for (let i = 0; i < edges.length; i++) {
    // max() keeps the cumulative monotone even for hand-made edges out of order.
    const cumulative = Math.max(previous, Math.min(1, digest.cdf(edges[i])));
    out[i] = cumulative - previous;
    previous = cumulative;
  }
  out[edges.length] = 1 - previous;
  return out;
}
