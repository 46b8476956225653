import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SORT, sortCentroids } from '../../src/sketch/sortCentroids.js';
import { meanFromKey, meanKey } from '../../src/sketch/codec.js';
import { normal, rng } from '../helpers.js';

describe('sortCentroids', () => {
  const r = rng(17);
  const kinds: Record<string, () => number> = {
    normal: () => normal(r),
    'wide magnitudes': () => (r() < 0.5 ? -1 : 1) * 10 ** (600 * r() - 300),
    subnormal: () => (r() - 0.5) * 1e-310,
    ties: () => Math.floor(r() * 4) - 2,
    'close values': () => 1 + r() * 1e-9,
    zeros: () => (r() < 0.5 ? 0 : -0),
    // Narrow: high words that hardly differ (keyed on the low word too), of either sign.
    'timestamps in ms': () => 1.7e12 + Math.floor(r() * 300_000),
    'negative narrow': () => -1.7e12 - r() * 1e5,
    'narrow across a power of two': () => 2 ** 40 + (r() - 0.5) * 1e3,
    // A dense clump beside a far value: ties in bulk even so (the quicksort takes over).
    'clump and an outlier': () => (r() < 0.001 ? -1e300 : 1 + r() * 1e-12),
  };
  for (const [name, gen] of Object.entries(kinds)) {
    for (const len of [0, 1, 15, 16, 17, 500, 1023, 1024, 3000, MAX_SORT]) {
      it(`${name}, ${len} values: same order as a comparison sort, weights follow their means`, () => {
        const means = Float64Array.from({ length: len }, gen);
        const weights = Float64Array.from(means, (_, i) => i + 1);
        const pairs = Array.from(means, (m, i) => [m, weights[i]] as const);
        sortCentroids(means, weights, len);
        const expected = [...pairs].sort((a, b) => a[0] - b[0]);
        // -0 and +0 compare equal, and either order of the two is right: normalize before comparing.
        assert.deepEqual(Array.from(means, (m) => m + 0), expected.map((p) => p[0] + 0));
        // Every (mean, weight) pair is still present.
        const got = Array.from(means, (m, i) => `${m}:${weights[i]}`).sort();
        assert.deepEqual(got, pairs.map((p) => `${p[0]}:${p[1]}`).sort());
        const valuesOnly = Float64Array.from(pairs, (p) => p[0]);
        sortCentroids(valuesOnly, null, len);
        assert.deepEqual(Array.from(valuesOnly, (m) => m + 0), expected.map((p) => p[0] + 0));
      });
    }
  }

  it('sorts reversed and already sorted input of every size', () => {
    for (const len of [100, 2000, MAX_SORT]) {
      const asc = Float64Array.from({ length: len }, (_, i) => i - len / 2);
      const desc = asc.slice().reverse();
      sortCentroids(desc, null, len);
      assert.deepEqual(desc, asc);
      sortCentroids(asc, null, len);
      assert.deepEqual(desc, asc);
    }
  });
});

describe('mean keys on the wire grid', () => {
  it('map values to order-preserving integers, and grid values to themselves', () => {
    const r = rng(5);
    const view = new DataView(new ArrayBuffer(8));
    for (let i = 0; i < 100_000; i++) {
      view.setUint32(0, Math.floor(r() * 2 ** 32), true);
      view.setUint32(4, Math.floor(r() * 2 ** 32), true);
      let x = view.getFloat64(0, true);
      if (!Number.isFinite(x)) continue;
      if (i % 3 === 0) x = (r() - 0.5) * 10 ** (20 * r() - 10);
      const p = 16 + (i % 26);
      const k = meanKey(x, p);
      const v = meanFromKey(k, p);
      assert.ok(Number.isFinite(v), `${x} at P=${p}`);
      assert.equal(meanKey(v, p), k, `${x} at P=${p}: the grid value keeps its key`);
      // Half a grid step: relative for normal numbers, absolute (fewer bits) for subnormals.
      const step = Math.max(Math.abs(x) * 2 ** -p, 2 ** -1074 * 2 ** (52 - p));
      assert.ok(Math.abs(v - x) <= step, `${x} at P=${p}: rounded to nearest`);
      const y = x * (1 + 2 ** -20 * r());
      assert.ok(x <= y ? meanKey(x, p) <= meanKey(y, p) : meanKey(x, p) >= meanKey(y, p), 'monotone');
    }
    assert.ok(Number.isFinite(meanFromKey(meanKey(Number.MAX_VALUE, 16), 16)), 'the largest double does not round to Infinity');
    assert.equal(meanFromKey(meanKey(0.5, 16), 16), 0.5);
    assert.equal(meanFromKey(meanKey(-3, 20), 20), -3);
  });
});
