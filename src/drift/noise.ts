import type { TDigest } from '../sketch/index.js';
import { breakpoints, cdfAndLeftLimit, unionOf } from './cdfGaps.js';
import type { Metric } from './thresholds.js';

/**
 * An effect-size threshold ignores sample size, which is right for large windows and wrong for
 * small ones: two samples of 30 from one distribution differ by KS ≈ 0.25 by chance alone. So a
 * metric flags only above max(threshold, noise floor), where the floor is the value that chance
 * exceeds with probability about NOISE_ALPHA between samples of the two sizes. At the sizes the
 * thresholds are meant for (thousands of rows) the floor is far below the threshold and changes
 * nothing; on a nearly empty open window it prevents a stream of false alarms.
 */
export const NOISE_ALPHA = 1e-3;

/** n_b·n_c / (n_b + n_c): the sample size that sets two-sample noise. */
export function effectiveSize(nBaseline: number, nCurrent: number): number {
  return nBaseline > 0 && nCurrent > 0 ? (nBaseline * nCurrent) / (nBaseline + nCurrent) : 0;
}

/**
 * Standard normal quantile, Acklam's rational approximation (relative error < 1.2e-9), for
 * p in (0, 1).
 */
export function normalQuantile(p: number): number {
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const tail = (q: number): number =>
    (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5;
  const r = q * q;
  return ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

/** Upper α quantile of χ² with df degrees of freedom, Wilson & Hilferty (1931). */
export function chiSquareQuantile(df: number, alpha: number): number {
  const z = normalQuantile(1 - alpha);
  const h = 2 / (9 * df);
  return df * Math.pow(Math.max(0, 1 - h + z * Math.sqrt(h)), 3);
}

/**
 * Noise floors of the binned and categorical metrics over `cells` bins or classes. Under no
 * drift n_eff·D ~ χ²(cells − 1), D = Σ(p − q)²/m (Pearson), and to second order PSI ≈ D,
 * Hellinger² ≈ D/8, JS divergence ≈ D/(8 ln 2) bits, V² = D/4. The L∞ floor is the largest
 * class's two-sided normal bound, Bonferroni-corrected over the classes, where `shareVariance` is
 * the largest p(1 − p) of a class share (at most 1/4).
 */
export function binnedNoiseFloors(nEffective: number, cells: number, shareVariance = 0.25): Partial<Record<Metric, number>> {
  if (nEffective <= 0) return { psi: Number.MAX_VALUE, jensenShannon: 1, hellinger: 1, chiSquare: 1, lInf: 1 };
  const df = Math.max(1, cells - 1);
  const d = chiSquareQuantile(df, NOISE_ALPHA) / nEffective;
  const z = normalQuantile(1 - NOISE_ALPHA / (2 * Math.max(1, cells)));
  return {
    psi: d,
    hellinger: Math.min(1, Math.sqrt(d / 8)),
    jensenShannon: Math.min(1, Math.sqrt(d / (8 * Math.LN2))),
    chiSquare: Math.min(1, Math.sqrt(d) / 2),
    lInf: Math.min(1, z * Math.sqrt(Math.min(0.25, Math.max(0, shareVariance)) / nEffective)),
  };
}

/** KS: the asymptotic two-sample critical value √(−ln(α/2)/2) / √n_eff (Smirnov 1948). */
export function ksNoiseFloor(nEffective: number): number {
  if (nEffective <= 0) return 1;
  return Math.min(1, Math.sqrt(-Math.log(NOISE_ALPHA / 2) / 2) / Math.sqrt(nEffective));
}

/**
 * W1/std: del Barrio, Giné & Matrán (1999) give √n·W1 → ∫|B(F(x))|dx under no drift, whose mean
 * is √(2/π)·∫√(F(1 − F))dx; the floor is WASSERSTEIN_NOISE_FACTOR times that mean at n_eff,
 * with F the baseline sketch's CDF (Simpson's rule on each linear piece).
 */
export const WASSERSTEIN_NOISE_FACTOR = 4;

export function wassersteinNoiseFloor(baseline: TDigest, scale: number, nEffective: number): number {
  if (nEffective <= 0 || baseline.count === 0) return Number.MAX_VALUE;
  const xs = unionOf(breakpoints(baseline));
  const spread = (f: number): number => Math.sqrt(Math.max(0, f * (1 - f)));
  let integral = 0;
  let previousAt = 0;
  for (let i = 0; i < xs.length; i++) {
    const [left, at] = cdfAndLeftLimit(baseline, xs[i]);
    if (i > 0) integral += ((xs[i] - xs[i - 1]) * (spread(previousAt) + 4 * spread((previousAt + left) / 2) + spread(left))) / 6;
    previousAt = at;
  }
  const floor = (WASSERSTEIN_NOISE_FACTOR * Math.sqrt(2 / Math.PI) * integral) / (scale * Math.sqrt(nEffective));
  return Number.isFinite(floor) ? floor : Number.MAX_VALUE;
}
