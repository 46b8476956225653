import type { TDigest } from '../sketch/index.js';
import { breakpoints, cdfAndLeftLimit, cdfGaps, unionOf } from './cdfGaps.js';

/**
 * Wasserstein-1 (earth mover's) distance between the sketches, in the data's units:
 *
 *     W1 = ∫ |F_b(x) − F_c(x)| dx = ∫₀¹ |Q_b(u) − Q_c(u)| du
 *
 * Between consecutive breakpoints the CDF difference is linear, so each piece is integrated in
 * closed form (a trapezoid, or two triangles where the difference changes sign): exact for the
 * sketch CDFs. 0 when either side is empty.
 */
export function wasserstein1(baseline: TDigest, current: TDigest): number {
  if (baseline.count === 0 || current.count === 0) return 0;
  const { xs, at, before } = cdfGaps(baseline, current);
  let area = 0;
  for (let i = 0; i + 1 < xs.length; i++) area += absLinearIntegral(at[i], before[i + 1], xs[i + 1] - xs[i]);
  return area;
}

/** ∫₀ʰ |d0 + (d1 − d0)·t/h| dt. */
function absLinearIntegral(d0: number, d1: number, h: number): number {
  if ((d0 >= 0 && d1 >= 0) || (d0 <= 0 && d1 <= 0)) return (h * Math.abs(d0 + d1)) / 2;
  const a = Math.abs(d0);
  const b = Math.abs(d1);
  return (h * (a * a + b * b)) / (2 * (a + b));
}

/**
 * A constant baseline has no spread to measure a move in. Its W1 is then divided by 0.1% of the
 * constant's magnitude (at least 0.001 of a unit), so that any visible change of a constant
 * feature reads as large; the same rule as evidently's normalized Wasserstein, which floors the
 * reference std at 0.001, made relative to the value's scale.
 */
export const CONSTANT_SCALE_FRACTION = 1e-3;

/** The scale W1 is divided by: the baseline std, or the constant-baseline fallback above. */
export function wassersteinScale(baselineStd: number, baselineMean: number): number {
  if (baselineStd > 0 && Number.isFinite(baselineStd)) return baselineStd;
  const magnitude = Number.isFinite(baselineMean) ? Math.max(Math.abs(baselineMean), 1) : 1;
  return CONSTANT_SCALE_FRACTION * magnitude;
}

export interface WassersteinOptions {
  /**
   * The baseline's std and mean, when known exactly (FeatureProfile.moments). Default: those of
   * the baseline digest's own distribution (sketchMoments).
   */
  baselineStd?: number;
  baselineMean?: number;
}

/**
 * W1 in units of the baseline's standard deviation: a mean shift of δ std gives δ, whatever the
 * feature's units. Finite for any input (see CONSTANT_SCALE_FRACTION); 0 when a side is empty.
 */
export function wasserstein(baseline: TDigest, current: TDigest, options: WassersteinOptions = {}): number {
  if (baseline.count === 0 || current.count === 0) return 0;
  const own = options.baselineStd === undefined || options.baselineMean === undefined ? sketchMoments(baseline) : null;
  const scale = wassersteinScale(options.baselineStd ?? own!.std, options.baselineMean ?? own!.mean);
  const w = wasserstein1(baseline, current) / scale;
  return Number.isFinite(w) ? w : Number.MAX_VALUE;
}

/**
 * Mean and std of the distribution a digest's CDF describes (uniform between breakpoints, point
 * masses at jumps): closer to the data than the centroids' weighted moments, which drop the
 * spread inside each centroid. {0, 0} when empty.
 */
export function sketchMoments(digest: TDigest): { mean: number; std: number } {
  if (digest.count === 0) return { mean: 0, std: 0 };
  const xs = unionOf(breakpoints(digest));
  const pieces = massPieces(digest, xs);
  let mean = 0;
  for (const p of pieces) mean += p.mass * (p.lo + p.hi) / 2;
  let variance = 0;
  for (const p of pieces) {
    const a = p.lo - mean;
    const b = p.hi - mean;
    // E[(X − μ)²] for X uniform on [lo, hi] is (a² + ab + b²)/3; a point mass has a = b.
    variance += (p.mass * (a * a + a * b + b * b)) / 3;
  }
  return { mean, std: Math.sqrt(Math.max(0, variance)) };
}

interface MassPiece {
  lo: number;
  hi: number;
  mass: number;
}

/** The sketch distribution as point masses (jumps) and uniform pieces (linear stretches). */
function massPieces(digest: TDigest, xs: Float64Array): MassPiece[] {
  const pieces: MassPiece[] = [];
  let previousAt = 0;
  let previousX = xs[0];
  for (let i = 0; i < xs.length; i++) {
    const [left, at] = cdfAndLeftLimit(digest, xs[i]);
    if (i > 0 && left > previousAt) pieces.push({ lo: previousX, hi: xs[i], mass: left - previousAt });
    if (at > left) pieces.push({ lo: xs[i], hi: xs[i], mass: at - left });
    previousAt = at;
    previousX = xs[i];
  }
  return pieces;
}
