import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EVENTS, FeatureProfile } from '../../src/sketch/index.js';
import { binsFromBaseline, compareFeatures, compareWindows, type QualityCheck } from '../../src/drift/index.js';
import { poissonAtLeast } from '../../src/drift/quality.js';
import { normal, rng, sampleWindow } from '../helpers.js';

function numeric(seed: number, n: number, value: (r: () => number, i: number) => number | null): FeatureProfile {
  const r = rng(seed);
  const f = new FeatureProfile('x');
  for (let i = 0; i < n; i++) f.add(value(r, i));
  return f;
}

const exceeded = (f: ReturnType<typeof compareFeatures>): QualityCheck[] => f.quality.filter((q) => q.exceeded).map((q) => q.check);

describe('compareFeatures: data quality', () => {
  const baseline = numeric(1, 20_000, (r) => (r() < 0.02 ? null : normal(r)));

  it('the same distribution: every check passes', () => {
    const result = compareFeatures(baseline, numeric(2, 5_000, (r) => (r() < 0.02 ? null : normal(r))));
    assert.deepEqual(exceeded(result), []);
    assert.ok(Math.abs(result.quality.find((q) => q.check === 'missing')!.current - 0.02) < 0.01);
  });

  it('small windows of the same distribution: stray values beyond the range or a single NaN are chance', () => {
    // Over many small windows (as the detector sees an open window fill), at most a stray one.
    let flagged = 0;
    for (let seed = 100; seed < 1100; seed++) {
      const n = 40 + (seed % 7) * 30;
      const result = compareFeatures(baseline, numeric(seed, n, (r) => (r() < 0.02 ? null : normal(r))));
      flagged += exceeded(result).length;
    }
    assert.ok(flagged <= 1, `${flagged} of 1,000 small stationary windows flagged`);
    // One NaN among 70: not yet a fault; 5 among 70 (7 %): a fault.
    assert.deepEqual(exceeded(compareFeatures(baseline, numeric(9, 70, (r, i) => (i === 0 ? NaN : normal(r))))), []);
    assert.deepEqual(exceeded(compareFeatures(baseline, numeric(9, 70, (r, i) => (i < 5 ? NaN : normal(r))))), ['nan']);
    // Out of range: 10 % of 100 values beyond the baseline's max is a fault.
    assert.ok(exceeded(compareFeatures(baseline, numeric(9, 100, (r, i) => (i < 10 ? 50 + i : normal(r))))).includes('outOfRange'));
  });

  it('poissonAtLeast: exact tails, no cancellation for small rates', () => {
    assert.equal(poissonAtLeast(0, 3), 1);
    assert.ok(Math.abs(poissonAtLeast(1, 0.5) - (1 - Math.exp(-0.5))) < 1e-15);
    const lambda = 0.02;
    assert.ok(Math.abs(poissonAtLeast(3, lambda) / (Math.exp(-lambda) * lambda ** 3 / 6 * (1 + lambda / 4 + lambda ** 2 / 20)) - 1) < 1e-6);
    assert.ok(Math.abs(poissonAtLeast(10, 10) - 0.5420702855281478) < 1e-12);
    assert.equal(poissonAtLeast(5, 0), 0);
  });

  it('NaN, ±Infinity and missing values beyond the baseline rates, and values beyond its range', () => {
    const current = numeric(3, 5_000, (r, i) => {
      if (i % 50 === 0) return NaN;
      if (i % 50 === 1) return Infinity;
      if (i % 50 === 2) return -Infinity;
      if (i % 10 === 3) return null;
      return i % 20 === 4 ? 100 + normal(r) : normal(r);
    });
    const result = compareFeatures(baseline, current);
    assert.deepEqual(exceeded(result).sort(), ['missing', 'nan', 'negInf', 'outOfRange', 'posInf']);
    const outOfRange = result.quality.find((q) => q.check === 'outOfRange')!;
    // From the digest's CDF: a tail centroid straddling the gap up to 100 blurs it by < 1%.
    assert.ok(Math.abs(outOfRange.current - 250 / current.observed) < 0.01, `${outOfRange.current}`);
  });

  it('a rise beyond the tolerance but within noise is not reported: 9 missing in 200 values (2% expected)', () => {
    const result = compareFeatures(baseline, numeric(4, 200, (r, i) => (i % 22 === 7 ? null : normal(r))));
    const missing = result.quality.find((q) => q.check === 'missing')!;
    assert.ok(missing.current - missing.baseline > 0.02, `${missing.current}`);
    assert.equal(missing.exceeded, false);
  });

  it('unseen classes: indexes outside the class vector, and labels the baseline never tracked', () => {
    const classes = ['a', 'b'];
    const b = new FeatureProfile('c', 'classes', { classes });
    const c = new FeatureProfile('c', 'classes', { classes });
    for (let i = 0; i < 1_000; i++) b.addLabel(i % 2);
    for (let i = 0; i < 1_000; i++) c.addLabel(i % 20 === 0 ? 5 : i % 2);
    const result = compareFeatures(b, c);
    assert.deepEqual(exceeded(result), ['unseenClass']);
    const lb = new FeatureProfile('l', 'labels');
    const lc = new FeatureProfile('l', 'labels');
    for (let i = 0; i < 1_000; i++) lb.addLabel(['x', 'y'][i % 2]);
    for (let i = 0; i < 1_000; i++) lc.addLabel(['x', 'y', 'new'][i % 3]);
    const labels = compareFeatures(lb, lc);
    const unseen = labels.quality.find((q) => q.check === 'unseenClass')!;
    assert.equal(unseen.exceeded, true);
    assert.deepEqual(unseen.labels, ['new']);
    assert.ok(labels.drifted.includes('lInf'));
  });

  it('a kind change yields no metrics and says which kinds', () => {
    const labels = new FeatureProfile('x', 'labels').addLabel('a');
    const result = compareFeatures(baseline, labels);
    assert.deepEqual(result.kindChanged, { baseline: 'numeric', current: 'labels' });
    assert.deepEqual(result.metrics, {});
  });

  it('drift is reported with value, threshold and noise floor', () => {
    const bins = binsFromBaseline(baseline.digest!);
    const result = compareFeatures(baseline, numeric(5, 5_000, (r) => normal(r) + 1), { bins, thresholds: { psi: 5 } });
    assert.ok(result.drifted.includes('ks') && !result.drifted.includes('psi'), 'overridden threshold applies');
    const ks = result.metrics.ks!;
    assert.ok(ks.value > ks.threshold && ks.threshold > ks.noiseFloor && ks.drifted);
  });
});

describe('compareWindows', () => {
  it('two windows of the same traffic: no drift, no schema problem, events at the same rate', () => {
    const result = compareWindows(sampleWindow(1, 5_000), sampleWindow(2, 5_000));
    assert.deepEqual(result.schema, []);
    assert.deepEqual(result.features.flatMap((f) => f.drifted.map((m) => `${f.name}:${m}`)), []);
    assert.deepEqual(result.features.flatMap((f) => exceeded(f).map((q) => `${f.name}:${q}`)), []);
    assert.deepEqual(result.events.map((e) => e.name), [EVENTS.shapeMismatch, EVENTS.unseenClass]);
    assert.ok(result.events.every((e) => !e.exceeded));
    assert.equal(result.features.length, 11, '3 numeric + 1 label input, 5 numeric + 1 class output, latency');
  });

  it('schema problems: a feature missing, one added, a kind change; an event surge', () => {
    const baseline = sampleWindow(1, 1_000);
    const current = sampleWindow(2, 1_000);
    current.inputs.delete('wind');
    current.input('humidity').add(0.5);
    current.inputs.delete('temp_max');
    current.input('temp_max', 'labels').addLabel('hot');
    current.event(EVENTS.predictError, 50);
    const result = compareWindows(baseline, current);
    const problems = result.schema.map((s) => `${s.role}:${s.feature}:${s.problem}`).sort();
    assert.deepEqual(problems, ['input:humidity:added', 'input:temp_max:kindChanged', 'input:wind:missing']);
    assert.equal(result.events.find((e) => e.name === EVENTS.predictError)!.exceeded, true);
  });

  it('per-feature options reach compareFeatures', () => {
    const baseline = sampleWindow(1, 1_000);
    const result = compareWindows(baseline, sampleWindow(2, 1_000), {
      featureOptions: (role, name) => (role === 'input' && name === 'temp_max' ? { minObservations: 10_000 } : undefined),
    });
    const temp = result.features.find((f) => f.name === 'temp_max')!;
    assert.equal(temp.insufficientData, true);
    assert.equal(result.features.find((f) => f.name === 'wind')!.insufficientData, false);
  });
});
