import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FeatureProfile } from '../../src/sketch/index.js';
import {
  DEFAULT_THRESHOLDS,
  MIN_OBSERVATIONS,
  NUMERIC_METRICS,
  binsFromBaseline,
  calibrateThresholds,
  compareFeatures,
  metricValues,
} from '../../src/drift/index.js';
import { driftCases, lognormal, normalValue, sample, type Generator } from './cases.js';

function profileOf(values: Float64Array, name = 'x'): FeatureProfile {
  const f = new FeatureProfile(name);
  for (const x of values) f.add(x);
  return f;
}

describe('default thresholds', () => {
  for (const c of driftCases()) {
    it(`${c.name}: ${c.drift ? 'flags drift' : 'flags nothing'}`, () => {
      const result = compareFeatures(profileOf(c.baseline), profileOf(c.current));
      assert.equal(result.insufficientData, false);
      if (c.drift) assert.ok(result.drifted.length > 0, `no metric flagged: ${JSON.stringify(result.metrics)}`);
      else assert.deepEqual(result.drifted, [], JSON.stringify(result.metrics));
    });
  }

  it('a shift of 1 std: every numeric metric flags; a ×1.5 scale change: the binned metrics and W do', () => {
    const baseline = profileOf(sample(20_000, 5, normalValue));
    const shifted = compareFeatures(baseline, profileOf(sample(5_000, 6, normalValue, (x) => x + 1)));
    assert.deepEqual([...shifted.drifted].sort(), [...NUMERIC_METRICS].sort());
    const scaled = compareFeatures(baseline, profileOf(sample(5_000, 7, normalValue, (x) => 1.5 * x)));
    // KS barely sees a symmetric scale change (≈ 0.10 at ×1.5, on the threshold): the others do.
    for (const metric of ['hellinger', 'jensenShannon', 'psi', 'wasserstein'] as const) assert.ok(scaled.drifted.includes(metric), metric);
  });

  const noDrift: Array<[string, Generator]> = [['normal', normalValue], ['lognormal', lognormal]];
  for (const [name, generate] of noDrift) {
    it(`${name}: 60 fixed-seed no-drift windows of 5,000 values raise no flag`, () => {
      const baseline = profileOf(sample(20_000, 1, generate));
      const bins = binsFromBaseline(baseline.digest!);
      let flags = 0;
      let largestKs = 0;
      for (let seed = 100; seed < 160; seed++) {
        const result = compareFeatures(baseline, profileOf(sample(5_000, seed, generate)), { bins });
        flags += result.drifted.length;
        largestKs = Math.max(largestKs, result.metrics.ks!.value);
      }
      assert.equal(flags, 0);
      assert.ok(largestKs < DEFAULT_THRESHOLDS.ks / 2, `no-drift KS stays far below the threshold: ${largestKs}`);
    });

    it(`${name}: 200 no-drift windows of ${MIN_OBSERVATIONS} values flag at most 1% of the time (noise floors)`, () => {
      const baseline = profileOf(sample(20_000, 2, generate));
      const bins = binsFromBaseline(baseline.digest!);
      let flagged = 0;
      for (let seed = 1000; seed < 1200; seed++) {
        if (compareFeatures(baseline, profileOf(sample(MIN_OBSERVATIONS, seed, generate)), { bins }).drifted.length > 0) flagged++;
      }
      assert.ok(flagged <= 2, `${flagged} of 200 windows flagged`);
    });
  }

  it('fewer than MIN_OBSERVATIONS values: statistics computed, nothing flagged, insufficientData set', () => {
    const baseline = profileOf(sample(20_000, 3, normalValue));
    const result = compareFeatures(baseline, profileOf(sample(MIN_OBSERVATIONS - 1, 4, normalValue, (x) => x + 5)));
    assert.equal(result.insufficientData, true);
    assert.deepEqual(result.drifted, []);
    assert.ok(result.metrics.ks!.value > 0.9, 'the huge shift is still measured');
  });
});

describe('calibrateThresholds', () => {
  // A baseline of 20 chunks of 1,000 values; windows of the same size are then judged.
  const chunks = Array.from({ length: 20 }, (_, i) => profileOf(sample(1_000, 300 + i, normalValue)));
  const whole = chunks[0].emptyLike();
  for (const c of chunks) whole.merge(c);
  const bins = binsFromBaseline(whole.digest!);
  const calibrated = calibrateThresholds(chunks, { bins });

  it('sits above the no-drift statistics and below the drift statistics of new windows', () => {
    for (let seed = 500; seed < 520; seed++) {
      const same = metricValues(whole, profileOf(sample(1_000, seed, normalValue)), { bins }).values;
      const drifted = metricValues(whole, profileOf(sample(1_000, seed, normalValue, (x) => 1.5 * x)), { bins }).values;
      for (const metric of NUMERIC_METRICS) {
        assert.ok(same[metric]! < calibrated[metric], `${metric}: no-drift ${same[metric]} vs threshold ${calibrated[metric]}`);
        assert.ok(drifted[metric]! > calibrated[metric], `${metric}: drift ${drifted[metric]} vs threshold ${calibrated[metric]}`);
      }
    }
  });

  it('is tighter than the defaults for a stable feature, and never below a quarter of them', () => {
    for (const metric of NUMERIC_METRICS) {
      assert.ok(calibrated[metric] >= DEFAULT_THRESHOLDS[metric] / 4, metric);
      assert.ok(calibrated[metric] < DEFAULT_THRESHOLDS[metric], `${metric}: ${calibrated[metric]}`);
    }
    assert.equal(calibrated.chiSquare, DEFAULT_THRESHOLDS.chiSquare, 'metrics of another kind keep their default');
  });

  it('on a stable feature, flags a +0.25 std shift of a 1,000-value window on more metrics than the defaults', () => {
    const current = profileOf(sample(1_000, 777, normalValue, (x) => x + 0.25));
    const withDefaults = compareFeatures(whole, current, { bins });
    const withCalibrated = compareFeatures(whole, current, { bins, thresholds: calibrated });
    assert.ok(withCalibrated.drifted.length > withDefaults.drifted.length, `${withDefaults.drifted} vs ${withCalibrated.drifted}`);
  });

  it('a constant baseline calibrates to the floors, and fewer than two chunks to the defaults', () => {
    const constant = Array.from({ length: 5 }, () => profileOf(new Float64Array(200).fill(7)));
    const t = calibrateThresholds(constant);
    for (const metric of NUMERIC_METRICS) assert.equal(t[metric], DEFAULT_THRESHOLDS[metric] / 4, metric);
    assert.deepEqual(calibrateThresholds(chunks.slice(0, 1)), { ...DEFAULT_THRESHOLDS });
  });
});
