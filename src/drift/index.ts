export { ks } from './ks.js';
export { wasserstein, wasserstein1, sketchMoments, wassersteinScale, CONSTANT_SCALE_FRACTION, type WassersteinOptions } from './wasserstein.js';
export { binsFromBaseline, binnedProportions, binCount, DEFAULT_BIN_COUNT, type Bins } from './bins.js';
export { psi, DEFAULT_PSI_EPSILON, type PsiOptions } from './psi.js';
export { jensenShannon, hellinger } from './divergence.js';
export { chiSquare, lInf, alignCategories, type AlignedCategories, type CategoricalSketch } from './categorical.js';
export {
  DEFAULT_THRESHOLDS,
  NUMERIC_METRICS,
  CATEGORICAL_METRICS,
  resolveThresholds,
  type Metric,
  type NumericMetric,
  type CategoricalMetric,
  type Thresholds,
} from './thresholds.js';
export { calibrateThresholds, type CalibrationOptions } from './calibrate.js';
export { NOISE_ALPHA, WASSERSTEIN_NOISE_FACTOR, effectiveSize, ksNoiseFloor, binnedNoiseFloors, wassersteinNoiseFloor } from './noise.js';
export { DEFAULT_QUALITY_TOLERANCES, qualityFindings, rateExceeded, type QualityCheck, type QualityFinding } from './quality.js';
export { metricValues, type MetricValues, type StatisticsOptions } from './statistics.js';
export { compareFeatures, MIN_OBSERVATIONS, type CompareOptions, type FeatureComparison, type MetricResult } from './compareFeatures.js';
export {
  compareWindows,
  DEFAULT_EVENT_TOLERANCE,
  type EventComparison,
  type FeatureRole,
  type SchemaProblem,
  type WindowCompareOptions,
  type WindowComparison,
} from './compareWindows.js';
