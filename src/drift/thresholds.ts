/**
 * Drift thresholds are effect sizes: how different two distributions are, not how sure a test is
 * that they differ. A p-value shrinks with n until every window of a busy model "drifts"
 * (evidently#50, #20); an effect size means the same at a hundred and at a million rows.
 *
 * The defaults aim at one effect, a shift of about a quarter of a standard deviation — just
 * above Cohen's "small" (d = 0.2) — and each is given below as the mean shift δ (in std) of a
 * normal feature at which the metric reaches it (measured at n = 20,000, decile bins):
 */
export type NumericMetric = 'ks' | 'psi' | 'wasserstein' | 'jensenShannon' | 'hellinger';
export type CategoricalMetric = 'chiSquare' | 'lInf';
export type Metric = NumericMetric | CategoricalMetric;

export const NUMERIC_METRICS: readonly NumericMetric[] = ['ks', 'psi', 'wasserstein', 'jensenShannon', 'hellinger'];
export const CATEGORICAL_METRICS: readonly CategoricalMetric[] = ['chiSquare', 'lInf'];

export type Thresholds = Record<Metric, number>;

export const DEFAULT_THRESHOLDS: Readonly<Thresholds> = Object.freeze({
  /** δ ≈ 0.25: KS of a normal shift is 2Φ(δ/2) − 1 ≈ 0.4·δ. */
  ks: 0.1,
  /**
   * δ ≈ 0.47: the industry rule of thumb (Siddiqi 2006: < 0.1 stable, 0.1–0.2 moderate, > 0.2
   * significant), kept because users read PSI on that scale; KS, JS and W catch smaller shifts.
   */
  psi: 0.2,
  /** δ = 0.2 exactly: for a pure shift, W1 / std is |Cohen's d|, and 0.2 is his "small". */
  wasserstein: 0.2,
  /** δ ≈ 0.24; evidently's default for the same JS distance. */
  jensenShannon: 0.1,
  /** δ ≈ 0.29. */
  hellinger: 0.1,
  /** Cohen's w "small"; a balanced binary class moving from 50/50 to 60/40 gives 0.1005. */
  chiSquare: 0.1,
  /** Some class's share moving by 10 percentage points. */
  lInf: 0.1,
});

/** Defaults overridden by whatever `overrides` sets. */
export function resolveThresholds(overrides: Partial<Thresholds> = {}): Thresholds {
  const out = { ...DEFAULT_THRESHOLDS };
  for (const [metric, value] of Object.entries(overrides) as Array<[Metric, number | undefined]>) {
    if (value === undefined) continue;
    if (!(value >= 0 && Number.isFinite(value))) throw new RangeError(`threshold for ${metric} must be a finite number ≥ 0, got ${value}`);
    out[metric] = value;
  }
  return out;
}
