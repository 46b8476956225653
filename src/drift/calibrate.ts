import type { FeatureProfile } from '../sketch/index.js';
import { binsFromBaseline } from './bins.js';
import { metricValues, type StatisticsOptions } from './statistics.js';
import { DEFAULT_THRESHOLDS, resolveThresholds, type Metric, type Thresholds } from './thresholds.js';

export interface CalibrationOptions extends StatisticsOptions {
  /** Standard deviations above the mean; default 3. */
  k?: number;
  /** Lowest threshold calibration may give; default a quarter of DEFAULT_THRESHOLDS. */
  floor?: Partial<Thresholds>;
}

/** A calibrated threshold may tighten a default up to 4×, never to 0 (a constant baseline). */
const DEFAULT_FLOOR_FRACTION = 0.25;

/**
 * Thresholds from the baseline's own chunk-to-chunk variation: for each chunk (e.g. the
 * baseline's windows, each the size of the windows to be judged), the statistic between it and
 * the merge of all other chunks — leave-one-out, because a chunk compared with a whole that
 * contains it looks closer than a new window would. Each metric's threshold is
 * max(floor, mean + k·std) of those values. This is how much the feature varies when nothing
 * has changed: a naturally noisy feature gets a looser threshold, a stable one a tighter one.
 *
 * Bins are fixed from the merged baseline, as comparisons against it will use. Metrics that do
 * not apply to the feature's kind keep their default; so do all with fewer than two chunks.
 */
export function calibrateThresholds(chunks: readonly FeatureProfile[], options: CalibrationOptions = {}): Thresholds {
  const k = options.k ?? 3;
  if (!(k >= 0 && Number.isFinite(k))) throw new RangeError(`k must be a finite number ≥ 0, got ${k}`);
  const thresholds = resolveThresholds();
  if (chunks.length < 2) return thresholds;
  const whole = chunks[0].emptyLike();
  for (const chunk of chunks) whole.merge(chunk);
  const bins = options.bins ?? (whole.digest !== null ? binsFromBaseline(whole.digest) : undefined);
  const samples = new Map<Metric, number[]>();
  chunks.forEach((chunk, i) => {
    const rest = chunk.emptyLike();
    chunks.forEach((other, j) => j !== i && rest.merge(other));
    const { values } = metricValues(rest, chunk, { ...options, bins });
    for (const [metric, value] of Object.entries(values) as Array<[Metric, number]>) {
      samples.set(metric, [...(samples.get(metric) ?? []), value]);
    }
  });
  for (const [metric, values] of samples) {
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
    const floor = options.floor?.[metric] ?? DEFAULT_FLOOR_FRACTION * DEFAULT_THRESHOLDS[metric];
    thresholds[metric] = Math.max(floor, mean + k * Math.sqrt(variance));
  }
  return thresholds;
}
