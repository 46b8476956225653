import type { FeatureProfile } from '../sketch/index.js';
import { binCount, binnedProportions, binsFromBaseline, type Bins } from './bins.js';
import { alignCategories, chiSquare, lInf, type CategoricalSketch } from './categorical.js';
import { hellinger, jensenShannon } from './divergence.js';
import { ks } from './ks.js';
import { binnedNoiseFloors, effectiveSize, ksNoiseFloor, wassersteinNoiseFloor } from './noise.js';
import { psi } from './psi.js';
import type { Metric } from './thresholds.js';
import { sketchMoments, wasserstein, wassersteinScale } from './wasserstein.js';

export interface StatisticsOptions {
  /** Bins fixed when the baseline was created; default: binsFromBaseline(baseline digest). */
  bins?: Bins;
  /** PSI's floor for empty bins. */
  epsilon?: number;
}

export interface MetricValues {
  values: Partial<Record<Metric, number>>;
  noiseFloors: Partial<Record<Metric, number>>;
}

/** The categorical sketch of a categorical profile (class vector or top-k labels). */
export function categoricalSketch(profile: FeatureProfile): CategoricalSketch | null {
  return profile.classes ?? profile.labels;
}

/**
 * Every statistic that applies to two profiles of one kind, with its noise floor at the two
 * sides' sizes. Numeric: ks, psi, wasserstein, jensenShannon, hellinger; categorical: chiSquare,
 * lInf. Kinds that differ give nothing: a schema problem, reported by the caller.
 */
export function metricValues(baseline: FeatureProfile, current: FeatureProfile, options: StatisticsOptions = {}): MetricValues {
  const nEffective = effectiveSize(baseline.observed, current.observed);
  if (baseline.digest !== null && current.digest !== null) {
    const bins = options.bins ?? binsFromBaseline(baseline.digest);
    const p = binnedProportions(bins, baseline.digest);
    const q = binnedProportions(bins, current.digest);
    // The profile's moments are exact; the digest's are the fallback (a bare digest).
    const exact = baseline.moments !== null && baseline.moments.count > 0;
    const own = exact ? { mean: baseline.moments!.mean, std: baseline.moments!.std } : sketchMoments(baseline.digest);
    const scale = wassersteinScale(own.std, own.mean);
    const binned = binnedNoiseFloors(nEffective, binCount(bins));
    return {
      values: {
        ks: ks(baseline.digest, current.digest),
        psi: psi(p, q, { epsilon: options.epsilon }),
        wasserstein: wasserstein(baseline.digest, current.digest, { baselineStd: own.std, baselineMean: own.mean }),
        jensenShannon: jensenShannon(p, q),
        hellinger: hellinger(p, q),
      },
      noiseFloors: {
        ks: ksNoiseFloor(nEffective),
        psi: binned.psi,
        wasserstein: wassersteinNoiseFloor(baseline.digest, scale, nEffective),
        jensenShannon: binned.jensenShannon,
        hellinger: binned.hellinger,
      },
    };
  }
  const b = categoricalSketch(baseline);
  const c = categoricalSketch(current);
  if (b === null || c === null || baseline.kind !== current.kind) return { values: {}, noiseFloors: {} };
  const shape = categoricalShape(b, c);
  const binned = binnedNoiseFloors(nEffective, shape.cells, shape.shareVariance);
  return {
    values: { chiSquare: chiSquare(b, c), lInf: lInf(b, c) },
    noiseFloors: { chiSquare: binned.chiSquare, lInf: binned.lInf },
  };
}

/** Classes present on either side (remainder included) and the largest p(1 − p) of a share. */
function categoricalShape(baseline: CategoricalSketch, current: CategoricalSketch): { cells: number; shareVariance: number } {
  const { baseline: b, current: c } = alignCategories(baseline, current);
  let cells = 0;
  let shareVariance = 0;
  const bTotal = b.reduce((s, n) => s + n, 0);
  const cTotal = c.reduce((s, n) => s + n, 0);
  for (let i = 0; i < b.length; i++) {
    if (b[i] + c[i] === 0) continue;
    cells++;
    const m = ((bTotal > 0 ? b[i] / bTotal : 0) + (cTotal > 0 ? c[i] / cTotal : 0)) / 2;
    shareVariance = Math.max(shareVariance, m * (1 - m));
  }
  return { cells: Math.max(2, cells), shareVariance };
}
