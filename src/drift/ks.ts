import type { TDigest } from '../sketch/index.js';
import { cdfGaps } from './cdfGaps.js';

/**
 * Two-sample Kolmogorov–Smirnov statistic between the sketches' CDFs:
 *
 *     KS = sup_x |F_b(x) − F_c(x)|   in [0, 1]
 *
 * evaluated at and just before every breakpoint of either digest (see cdfGaps), which is the
 * exact supremum for the two piecewise-linear sketch CDFs. By the triangle inequality the error
 * against the KS of the raw data is at most the sum of the two digests' largest CDF (rank)
 * errors: |KS_sketch − KS_exact| ≤ ε_b + ε_c.
 *
 * Used as an effect size, not a test: no p-value (they flag everything at large n, evidently#50).
 * 0 when either side is empty.
 */
export function ks(baseline: TDigest, current: TDigest): number {
  if (baseline.count === 0 || current.count === 0) return 0;
  const { at, before } = cdfGaps(baseline, current);
  let sup = 0;
  for (let i = 0; i < at.length; i++) sup = Math.max(sup, Math.abs(at[i]), Math.abs(before[i]));
  return Math.min(1, sup);
}
