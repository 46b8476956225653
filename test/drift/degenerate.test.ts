import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClassCounts, FeatureProfile, TDigest, TopK, WindowProfile } from '../../src/sketch/index.js';
import {
  binnedProportions,
  binsFromBaseline,
  chiSquare,
  compareFeatures,
  compareWindows,
  hellinger,
  jensenShannon,
  ks,
  lInf,
  psi,
  sketchMoments,
  wasserstein,
  wasserstein1,
} from '../../src/drift/index.js';
import { datasets } from '../helpers.js';

const finite = (x: number): boolean => typeof x === 'number' && Number.isFinite(x);

/** Every statistic between two digests, with its promised range. */
function allStatistics(a: TDigest, b: TDigest): Array<[string, number, number]> {
  const bins = binsFromBaseline(a);
  const [p, q] = [binnedProportions(bins, a), binnedProportions(bins, b)];
  return [
    ['ks', ks(a, b), 1],
    ['wasserstein', wasserstein(a, b), Number.MAX_VALUE],
    ['wasserstein1', wasserstein1(a, b), Number.MAX_VALUE],
    ['psi', psi(p, q), Number.MAX_VALUE],
    ['jensenShannon', jensenShannon(p, q), 1],
    ['hellinger', hellinger(p, q), 1],
  ];
}

describe('degenerate inputs never throw and never give NaN', () => {
  const sets = datasets(2_000, 3);
  it(`every pair of the ${sets.length} generators (empty, one value, constants, ties, heavy tails, both signs)`, () => {
    for (const x of sets) {
      for (const y of sets) {
        const a = new TDigest().addAll(x.values);
        const b = new TDigest().addAll(y.values);
        for (const [name, value, max] of allStatistics(a, b)) {
          assert.ok(finite(value) && value >= 0 && value <= max, `${x.name} vs ${y.name}: ${name} = ${value}`);
        }
        const p = binnedProportions(binsFromBaseline(a), b);
        assert.ok(p.every((v) => v >= 0 && v <= 1), `${x.name} vs ${y.name}: proportions`);
        if (y.values.length > 0) assert.ok(Math.abs(p.reduce((s, v) => s + v, 0) - 1) < 1e-12, 'proportions sum to 1');
      }
    }
  });

  it('empty digests: every statistic is 0, sketchMoments is {0, 0}, bins hold everything in one', () => {
    const empty = new TDigest();
    const some = new TDigest().addAll([1, 2, 3]);
    for (const [a, b] of [[empty, empty], [empty, some], [some, empty]]) {
      for (const [name, value] of allStatistics(a, b)) assert.equal(value, 0, name);
    }
    assert.deepEqual(sketchMoments(empty), { mean: 0, std: 0 });
    assert.deepEqual(binsFromBaseline(empty), { edges: [] });
    assert.deepEqual([...binnedProportions({ edges: [] }, some)], [1]);
  });

  it('identical single values: 0 everywhere; a single value against another: KS = JS = Hellinger = 1', () => {
    const one = new TDigest().add(-7.25);
    for (const [name, value] of allStatistics(one, new TDigest().add(-7.25))) assert.equal(value, 0, name);
    const other = new TDigest().add(3);
    const stats = Object.fromEntries(allStatistics(one, other).map(([n, v]) => [n, v]));
    assert.equal(stats.ks, 1);
    assert.equal(stats.jensenShannon, 1);
    assert.equal(stats.hellinger, 1);
    assert.equal(stats.wasserstein1, 10.25);
  });

  it('a constant baseline: one interior bin, W divided by 0.1% of the constant', () => {
    const constant = new TDigest().addAll(new Float64Array(1_000).fill(42.5));
    assert.deepEqual(binsFromBaseline(constant), { edges: [42.49999999999999, 42.5] });
    assert.deepEqual([...binnedProportions(binsFromBaseline(constant), constant)], [0, 1, 0]);
    const moved = new TDigest().addAll(new Float64Array(1_000).fill(43));
    assert.ok(Math.abs(wasserstein(constant, moved) - 0.5 / 0.0425) < 1e-9);
    assert.equal(wasserstein(constant, constant), 0);
    const zero = new TDigest().addAll(new Float64Array(100));
    assert.ok(Math.abs(wasserstein(zero, new TDigest().add(0.001)) - 1) < 1e-9, 'constant 0: scale 0.001');
  });

  it('ties at the min get a bin of their own: a two-value shift shows in PSI, JS and Hellinger', () => {
    const thirty = new TDigest().add(-1, 300).add(3, 700);
    const fifty = new TDigest().add(-1, 500).add(3, 500);
    const bins = binsFromBaseline(thirty);
    assert.deepEqual([...binnedProportions(bins, thirty)], [0, 0.3, 0.7, 0]);
    assert.deepEqual([...binnedProportions(bins, fifty)], [0, 0.5, 0.5, 0]);
    assert.ok(hellinger(binnedProportions(bins, thirty), binnedProportions(bins, fifty)) > 0.1);
  });

  it('disjoint supports: KS = JS = Hellinger = 1, PSI large but finite', () => {
    const low = new TDigest().addAll(Float64Array.from({ length: 5_000 }, (_, i) => i / 5_000));
    const high = new TDigest().addAll(Float64Array.from({ length: 5_000 }, (_, i) => 10 + i / 5_000));
    const stats = Object.fromEntries(allStatistics(low, high).map(([n, v]) => [n, v]));
    assert.equal(stats.ks, 1);
    assert.equal(stats.jensenShannon, 1);
    assert.equal(stats.hellinger, 1);
    assert.ok(Math.abs(stats.wasserstein1 - 10) < 1e-9, `W1 = ${stats.wasserstein1}`);
    assert.ok(stats.psi > 10 && finite(stats.psi));
  });

  it('categorical: empty and disjoint class counts', () => {
    const empty = new ClassCounts(['a', 'b']);
    const a = new ClassCounts(['a', 'b']).add(0, 10);
    const b = new ClassCounts(['a', 'b']).add(1, 10);
    assert.equal(chiSquare(empty, a), 0);
    assert.equal(lInf(a, empty), 0);
    assert.equal(chiSquare(a, b), 1);
    assert.equal(lInf(a, b), 1);
    assert.equal(chiSquare(new TopK(), new TopK()), 0);
  });

  it('compareFeatures and compareWindows on empty profiles: flagged insufficient, numbers only', () => {
    for (const kind of ['numeric', 'classes', 'labels'] as const) {
      const f = new FeatureProfile('f', kind, { classes: ['a', 'b'] });
      const result = compareFeatures(f, f.emptyLike());
      assert.equal(result.insufficientData, true, kind);
      assert.deepEqual(result.drifted, []);
      for (const m of Object.values(result.metrics)) assert.ok(finite(m!.value) && finite(m!.noiseFloor), JSON.stringify(m));
      for (const q of result.quality) assert.ok(finite(q.baseline) && finite(q.current) && !q.exceeded, JSON.stringify(q));
    }
    const w = new WindowProfile(0, 60_000);
    const result = compareWindows(w, w.emptyLike());
    assert.deepEqual(result.schema, []);
    assert.equal(result.features.length, 1, 'latency only');
    JSON.stringify(result, (key, value: unknown) => {
      if (typeof value === 'number') assert.ok(finite(value), `${key} = ${value}`);
      return value;
    });
  });
});
