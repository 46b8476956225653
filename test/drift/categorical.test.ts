import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClassCounts, FeatureProfile, TopK } from '../../src/sketch/index.js';
import { chiSquare, compareFeatures, lInf } from '../../src/drift/index.js';
import { rng } from '../helpers.js';

/** Labels drawn from the given shares. */
function draw(n: number, shares: number[], seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => {
    let u = r();
    for (let i = 0; i < shares.length; i++) if ((u -= shares[i]) < 0) return i;
    return shares.length - 1;
  });
}

/** Exact shares per label from raw labels. */
function shares(labels: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const l of labels) m.set(l, (m.get(l) ?? 0) + 1 / labels.length);
  return m;
}

/** V = ½√Σ(p − q)²/m and max|p − q| over every raw label (or those in `only`), from the definitions. */
function exact(a: number[], b: number[], only?: Set<number>): { v: number; lInf: number } {
  const p = shares(a);
  const q = shares(b);
  let sum = 0;
  let max = 0;
  for (const label of new Set([...p.keys(), ...q.keys()])) {
    if (only !== undefined && !only.has(label)) continue;
    const [x, y] = [p.get(label) ?? 0, q.get(label) ?? 0];
    sum += ((x - y) ** 2) / ((x + y) / 2);
    max = Math.max(max, Math.abs(x - y));
  }
  return { v: Math.sqrt(sum) / 2, lInf: max };
}

const FIVE = [0.4, 0.25, 0.2, 0.1, 0.05];
const SHIFTED = [0.25, 0.25, 0.2, 0.15, 0.15];
/** Zipf-like shares over 200 labels: more labels than a TopK of capacity 64 tracks. */
const ZIPF = (() => {
  const w = Array.from({ length: 200 }, (_, i) => 1 / (i + 1));
  const total = w.reduce((s, x) => s + x, 0);
  return w.map((x) => x / total);
})();

const classCountsOf = (labels: number[]): ClassCounts => {
  const c = new ClassCounts(FIVE.map((_, i) => `c${i}`));
  for (const l of labels) c.add(l);
  return c;
};
const topKOf = (labels: number[], capacity = 64): TopK => {
  const t = new TopK(capacity);
  for (const l of labels) t.add(`l${l}`);
  return t;
};

describe('categorical statistics', () => {
  const cases: Array<[string, number[], number[], boolean]> = [
    ['no drift', draw(20_000, FIVE, 1), draw(5_000, FIVE, 2), false],
    ['category shift', draw(20_000, FIVE, 3), draw(5_000, SHIFTED, 4), true],
  ];
  for (const [name, a, b, drift] of cases) {
    it(`${name}: class vectors are exact (error 0)`, () => {
      const e = exact(a, b);
      assert.ok(Math.abs(chiSquare(classCountsOf(a), classCountsOf(b)) - e.v) < 1e-12);
      assert.ok(Math.abs(lInf(classCountsOf(a), classCountsOf(b)) - e.lInf) < 1e-12);
      assert.equal(e.v > 0.1, drift, `V = ${e.v}`);
    });

    it(`${name}: top-k with every label tracked is exact`, () => {
      const e = exact(a, b);
      assert.ok(Math.abs(chiSquare(topKOf(a), topKOf(b)) - e.v) < 1e-12);
      assert.ok(Math.abs(lInf(topKOf(a), topKOf(b)) - e.lInf) < 1e-12);
    });
  }

  it('top-k over more labels than its capacity, against the exact values over the tracked labels', (t) => {
    // The tail beyond the capacity is invisible to a top-k by design; its count errors are not.
    // Bounds: [V, L∞] for a no-drift pair, then for a reversed Zipf (Misra–Gries under-counts
    // grow with the weight a summary had to evict, so a large shift is measured less precisely).
    const pairs: Array<[number[], number[], number, number]> = [
      [draw(20_000, ZIPF, 5), draw(5_000, ZIPF, 6), 0.01, 0.005],
      [draw(20_000, ZIPF, 7), draw(5_000, [...ZIPF].reverse(), 8), 0.15, 0.01],
    ];
    for (const [a, b, vBound, lBound] of pairs) {
      const tracked = new Set([...topKOf(a).entries(), ...topKOf(b).entries()].map(([label]) => Number(label.slice(1))));
      const e = exact(a, b, tracked);
      const v = chiSquare(topKOf(a), topKOf(b));
      const l = lInf(topKOf(a), topKOf(b));
      t.diagnostic(`V ${v.toFixed(4)} vs ${e.v.toFixed(4)}, L∞ ${l.toFixed(4)} vs ${e.lInf.toFixed(4)}`);
      assert.ok(Math.abs(v - e.v) <= vBound, `V ${v} vs ${e.v}`);
      assert.ok(Math.abs(l - e.lInf) <= lBound, `L∞ ${l} vs ${e.lInf}`);
      assert.equal(v > 0.1, e.v > 0.1, 'the same verdict at the default threshold');
    }
  });

  it('a 50/50 → 60/40 binary move is V ≈ 0.1005, L∞ = 0.1', () => {
    const a = new ClassCounts(['yes', 'no']).add(0, 50).add(1, 50);
    const b = new ClassCounts(['yes', 'no']).add(0, 60).add(1, 40);
    assert.ok(Math.abs(chiSquare(a, b) - 0.1005) < 1e-4);
    assert.ok(Math.abs(lInf(a, b) - 0.1) < 1e-12);
  });

  it('default thresholds: 60 no-drift windows of 5,000 raise no flag; the category shift is flagged', () => {
    const classes = FIVE.map((_, i) => `c${i}`);
    const profile = (labels: number[]): FeatureProfile => {
      const f = new FeatureProfile('class', 'classes', { classes });
      for (const l of labels) f.addLabel(l);
      return f;
    };
    const baseline = profile(draw(20_000, FIVE, 10));
    let flags = 0;
    for (let seed = 11; seed < 71; seed++) flags += compareFeatures(baseline, profile(draw(5_000, FIVE, seed))).drifted.length;
    assert.equal(flags, 0);
    assert.deepEqual(compareFeatures(baseline, profile(draw(5_000, SHIFTED, 99))).drifted, ['chiSquare', 'lInf']);
  });

  it("labels on one side only and class vectors' unseen count are classes; top-k's untracked weight is not", () => {
    const a = new TopK().add('x', 50).add('y', 50);
    const b = new TopK().add('x', 50).add('z', 50);
    assert.equal(lInf(a, b), 0.5);
    const withUnseen = new ClassCounts(['x', 'y']).add(0, 50).add(7, 50);
    assert.equal(lInf(new ClassCounts(['x', 'y']).add(0, 50).add(1, 50), withUnseen), 0.5);
    // Capacity 1: 'y' evicts 'x' and both end untracked; nothing left to compare but the shares.
    const evicted = new TopK(1).add('x', 10).add('y', 10);
    assert.equal(lInf(new TopK(1).add('x', 20), evicted), 1, "x's share falls from 1 to 0");
  });
});
