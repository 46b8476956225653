import type { FeatureProfile } from '../sketch/index.js';
import { cdfAndLeftLimit } from './cdfGaps.js';
import { NOISE_ALPHA, normalQuantile } from './noise.js';

/**
 * Data-quality checks of one feature: rates of missing, NaN and ±Infinity values, of current
 * values outside the baseline's [min, max], and of classes the baseline never had.
 */
export type QualityCheck = 'missing' | 'nan' | 'posInf' | 'negInf' | 'outOfRange' | 'unseenClass';

export interface QualityFinding {
  check: QualityCheck;
  /**
   * The rate in the baseline and in the current window: a fraction of all observations for
   * missing, NaN and ±Infinity; of the observed (finite, present) values for the others.
   */
  baseline: number;
  current: number;
  /** True when the current rate is above the baseline's by more than the tolerance and noise. */
  exceeded: boolean;
  /** unseenClass on label features: the labels the baseline did not have (at most 20). */
  labels?: string[];
}

/**
 * How far a rate may rise over the baseline's before it is reported: absolute fractions of the
 * observations. Non-finite values and unseen classes point at a bug upstream, so a tenth of a
 * percent is enough; missing values and out-of-range values come and go with the traffic.
 */
export const DEFAULT_QUALITY_TOLERANCES: Readonly<Record<QualityCheck, number>> = Object.freeze({
  missing: 0.01,
  nan: 0.001,
  posInf: 0.001,
  negInf: 0.001,
  outOfRange: 0.01,
  unseenClass: 0.001,
});

const MAX_LISTED_LABELS = 20;

/**
 * Whether a count rose beyond both the tolerance and chance. The rate must exceed the
 * baseline's by more than `tolerance`, and the count must be unlikely by chance (below
 * NOISE_ALPHA) at the baseline's rate: for small counts by the exact Poisson tail — a handful of
 * rows is a Poisson matter, where the normal approximation calls one stray value in a window
 * of 70 significant — and for large counts by the one-sided two-proportion z bound (pooled).
 * The baseline's rate is never taken below one observation's worth, (b + 1)/(N + 1), nor below
 * `expectedRate` (what chance alone gives: for values outside the baseline's range, 2/(N + 1)).
 */
export function rateExceeded(
  baselineCount: number,
  baselineTotal: number,
  currentCount: number,
  currentTotal: number,
  tolerance: number,
  expectedRate = 0,
): boolean {
  if (currentTotal <= 0) return false;
  const pb = baselineTotal > 0 ? baselineCount / baselineTotal : 0;
  const pc = currentCount / currentTotal;
  if (!(pc - pb > tolerance)) return false;
  if (currentCount < SMALL_COUNT) {
    const p0 = Math.max(expectedRate, baselineTotal > 0 ? (baselineCount + 1) / (baselineTotal + 1) : 0);
    return poissonAtLeast(Math.round(currentCount), currentTotal * p0) < NOISE_ALPHA;
  }
  const pooled = Math.min(1, (baselineCount + currentCount) / (Math.max(0, baselineTotal) + currentTotal));
  const inverseSizes = (baselineTotal > 0 ? 1 / baselineTotal : 0) + 1 / currentTotal;
  const noise = normalQuantile(1 - NOISE_ALPHA) * Math.sqrt(pooled * (1 - pooled) * inverseSizes);
  return pc - pb > noise;
}

/** Below this many current events, chance is judged by the exact Poisson tail. */
const SMALL_COUNT = 50;

/** P(X ≥ k) for X ~ Poisson(λ), summed from the k-th term up (no cancellation for small λ). */
export function poissonAtLeast(k: number, lambda: number): number {
  if (k <= 0) return 1;
  if (!(lambda > 0)) return 0;
  // log of the k-th term: −λ + k·ln λ − ln k!
  let logTerm = -lambda + k * Math.log(lambda);
  for (let i = 2; i <= k; i++) logTerm -= Math.log(i);
  let term = Math.exp(logTerm);
  let sum = 0;
  for (let i = k; i < k + 10_000; i++) {
    sum += term;
    term *= lambda / (i + 1);
    if (term < sum * 1e-17) break;
  }
  return Math.min(1, sum);
}

function finding(check: QualityCheck, b: number, bTotal: number, c: number, cTotal: number, tolerances: Record<QualityCheck, number>, expectedRate = 0): QualityFinding {
  return {
    check,
    baseline: bTotal > 0 ? b / bTotal : 0,
    current: cTotal > 0 ? c / cTotal : 0,
    exceeded: rateExceeded(b, bTotal, c, cTotal, tolerances[check], expectedRate),
  };
}

/** Every check that applies to the pair, exceeded or not. Never throws; rates are 0 on empty sides. */
export function qualityFindings(
  baseline: FeatureProfile,
  current: FeatureProfile,
  tolerances: Record<QualityCheck, number> = DEFAULT_QUALITY_TOLERANCES,
): QualityFinding[] {
  const nb = baseline.count;
  const nc = current.count;
  const out = [
    finding('missing', baseline.missing, nb, current.missing, nc, tolerances),
    finding('nan', baseline.nan, nb, current.nan, nc, tolerances),
    finding('posInf', baseline.posInf, nb, current.posInf, nc, tolerances),
    finding('negInf', baseline.negInf, nb, current.negInf, nc, tolerances),
  ];
  if (baseline.digest !== null && current.digest !== null) {
    // A new value from the baseline's own distribution falls outside its [min, max] with
    // probability 2/(N + 1) (continuous data): that much is chance, not a fault.
    out.push(finding('outOfRange', 0, baseline.observed, outOfRangeMass(baseline, current), current.observed, tolerances, 2 / (baseline.observed + 1)));
  }
  const unseen = unseenClasses(baseline, current);
  if (unseen !== null) {
    const f = finding('unseenClass', unseen.baseline, baseline.observed, unseen.current, current.observed, tolerances);
    if (unseen.labels.length > 0) f.labels = unseen.labels.slice(0, MAX_LISTED_LABELS);
    out.push(f);
  }
  return out;
}

/**
 * Current weight below the baseline min or above its max, from the current digest's CDF:
 * F_c(min_b−) + 1 − F_c(max_b). The baseline's own rate is 0 by definition.
 */
function outOfRangeMass(baseline: FeatureProfile, current: FeatureProfile): number {
  const b = baseline.digest!;
  const c = current.digest!;
  if (b.count === 0 || c.count === 0) return 0;
  const below = cdfAndLeftLimit(c, b.min)[0];
  const above = 1 - c.cdf(b.max);
  return Math.max(0, below + above) * c.count;
}

/**
 * Class vectors: the `unseen` counts (indexes outside the declared classes) on both sides. Label
 * features: the weight of labels tracked in the current window that the baseline did not track;
 * the baseline's rate is 0 by definition.
 */
function unseenClasses(baseline: FeatureProfile, current: FeatureProfile): { baseline: number; current: number; labels: string[] } | null {
  if (baseline.classes !== null && current.classes !== null) {
    // A relabelled class vector: classes only the current declares count as unseen too.
    const declared = new Set(baseline.classes.labels);
    const fresh = current.classes.labels.flatMap((label, i) => (declared.has(label) || current.classes!.counts[i] === 0 ? [] : [[label, current.classes!.counts[i]] as const]));
    const freshWeight = fresh.reduce((s, [, n]) => s + n, 0);
    return { baseline: baseline.classes.unseen, current: current.classes.unseen + freshWeight, labels: fresh.map(([label]) => label) };
  }
  if (baseline.labels !== null && current.labels !== null) {
    const tracked = new Set(baseline.labels.entries().map(([label]) => label));
    const fresh = current.labels.entries().filter(([label]) => !tracked.has(label));
    return { baseline: 0, current: fresh.reduce((s, [, n]) => s + n, 0), labels: fresh.map(([label]) => label) };
  }
  return null;
}
