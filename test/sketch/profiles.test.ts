import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ClassCounts,
  FeatureProfile,
  Moments,
  TopK,
  WindowProfile,
  WindowProfileError,
  decodeBatch,
  encodeBatch,
} from '../../src/sketch/index.js';
import { datasets, rng, sampleWindow } from '../helpers.js';

function exactMoments(values: ArrayLike<number>): { mean: number; variance: number } {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i];
  const mean = sum / values.length;
  let ss = 0;
  for (let i = 0; i < values.length; i++) ss += (values[i] - mean) ** 2;
  return { mean, variance: ss / values.length };
}

describe('Moments', () => {
  for (const { name, values } of datasets(10_000, 21)) {
    it(`${name}: merged parts equal the whole (Chan et al.), inputs unchanged`, () => {
      const whole = new Moments();
      for (const x of values) whole.add(x);
      const parts = [new Moments(), new Moments(), new Moments()];
      values.forEach((x, i) => parts[i % 3].add(x));
      const before = parts.map((p) => ({ ...p }));
      const merged = new Moments().merge(parts[0]).merge(parts[1]).merge(parts[2]);
      assert.deepEqual(parts.map((p) => ({ ...p })), before, 'merge leaves its argument alone');
      assert.equal(merged.count, values.length);
      if (values.length === 0) {
        assert.ok(Number.isNaN(merged.variance));
        assert.deepEqual(new Moments().merge(new Moments()), new Moments(), 'empty is the identity');
        return;
      }
      const exact = exactMoments(values);
      const tol = (x: number) => 1e-9 * Math.max(1, Math.abs(x));
      assert.ok(Math.abs(merged.mean - exact.mean) <= tol(exact.mean), `mean ${merged.mean} vs ${exact.mean}`);
      assert.ok(Math.abs(merged.variance - exact.variance) <= 1e-8 * Math.max(1, exact.variance), `variance ${merged.variance} vs ${exact.variance}`);
      assert.equal(merged.min, whole.min);
      assert.equal(merged.max, whole.max);
    });
  }

  it('stays accurate where the naive formula cancels (1e9 + small noise)', () => {
    const m = new Moments();
    for (let i = 0; i < 1000; i++) m.add(1e9 + (i % 2 === 0 ? 1 : -1));
    assert.ok(Math.abs(m.variance - 1) < 1e-6, `variance ${m.variance}`);
  });
});

describe('ClassCounts', () => {
  it('counts classes, counts unseen indexes, merges only with the same labels', () => {
    const a = new ClassCounts(['a', 'b', 'c']).add(0).add(2).add(2).add(7).add(-1).add(1.5);
    assert.deepEqual(Array.from(a.counts), [1, 0, 2]);
    assert.equal(a.unseen, 3);
    assert.equal(a.total, 6);
    const b = a.clone();
    b.merge(a);
    assert.deepEqual(Array.from(b.counts), [2, 0, 4]);
    assert.deepEqual(Array.from(a.counts), [1, 0, 2], 'merge leaves its argument alone');
    assert.throws(() => b.merge(new ClassCounts(['a', 'c', 'b'])), /different labels/);
    assert.throws(() => new ClassCounts(['x', 'x']), /distinct/);
    assert.throws(() => new ClassCounts([]), /1 to/);
  });
});

describe('TopK (Misra–Gries)', () => {
  it('is exact while the labels fit', () => {
    const t = new TopK(4);
    for (const l of ['a', 'b', 'a', 'c', 'a', 'b']) t.add(l);
    assert.deepEqual(t.entries(), [['a', 3], ['b', 2], ['c', 1]]);
    assert.equal(t.other, 0);
    assert.equal(t.total, 6);
  });

  it('keeps the heavy hitters within the Misra–Gries bound, through adds and merges', () => {
    const r = rng(4);
    const capacity = 10;
    const parts = Array.from({ length: 5 }, () => new TopK(capacity));
    const truth = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      // Zipf-like: a few labels dominate, a long tail of rare ones.
      const label = `l${Math.floor(1 / (r() + 0.002)) % 500}`;
      truth.set(label, (truth.get(label) ?? 0) + 1);
      parts[i % 5].add(label);
    }
    const snapshots = parts.map((p) => p.entries());
    const merged = parts.reduce((acc, p) => acc.merge(p), new TopK(capacity));
    assert.deepEqual(parts.map((p) => p.entries()), snapshots, 'merge leaves its argument alone');
    assert.equal(merged.total, 20_000);
    assert.ok(merged.size <= capacity);
    const bound = merged.total / (capacity + 1);
    for (const [label, count] of truth) {
      const est = merged.count(label);
      assert.ok(est <= count, `${label}: never overestimates`);
      assert.ok(count - est <= bound, `${label}: ${est} vs ${count}, bound ${bound}`);
    }
    const top = [...truth].sort((a, b) => b[1] - a[1])[0][0];
    assert.equal(merged.entries()[0][0], top, 'the heaviest label comes first');
  });

  it('cuts over-long labels without splitting a surrogate pair', () => {
    const t = new TopK(2).add('x'.repeat(127) + '😀' + 'tail');
    const [[label]] = t.entries();
    assert.equal(label, 'x'.repeat(127));
  });
});

describe('FeatureProfile', () => {
  it('counts missing, NaN, ±Infinity and non-numbers apart from values', () => {
    const f = new FeatureProfile('x');
    for (const v of [1, null, undefined, NaN, Infinity, -Infinity, 2, 'oops' as unknown as number, 3]) f.add(v);
    assert.deepEqual([f.count, f.missing, f.nan, f.posInf, f.negInf, f.observed], [9, 3, 1, 1, 1, 3]);
    assert.equal(f.digest!.count, 3);
    assert.equal(f.moments!.sum, 6);
  });

  it('merges counts, moments and digests; refuses a different feature', () => {
    const a = new FeatureProfile('x').add(1).add(NaN);
    const b = new FeatureProfile('x').add(5).add(null);
    a.merge(b);
    assert.deepEqual([a.count, a.missing, a.nan, a.observed, a.moments!.mean], [4, 1, 1, 2, 3]);
    assert.equal(b.count, 2, 'merge leaves its argument alone');
    assert.throws(() => a.merge(new FeatureProfile('y')), /cannot merge feature y/);
    assert.throws(() => a.merge(new FeatureProfile('x', 'labels')), /cannot merge/);
  });

  it('takes labels and class indexes for categorical features', () => {
    const c = new FeatureProfile('cls', 'classes', { classes: ['no', 'yes'] }).addLabel('yes').addLabel(0).addLabel('maybe').addLabel(null);
    assert.deepEqual(Array.from(c.classes!.counts), [1, 1]);
    assert.equal(c.classes!.unseen, 1);
    assert.equal(c.missing, 1);
    assert.throws(() => new FeatureProfile('x').addLabel('a'), /numeric/);
    assert.throws(() => new FeatureProfile(''), /feature name/);
  });
});

describe('WindowProfile', () => {
  it('aligns windows to UTC and validates start, length and segment', () => {
    assert.equal(WindowProfile.alignedStart(1_700_000_123_456, 300_000), 1_700_000_100_000);
    assert.equal(WindowProfile.alignedStart(1_700_000_099_999, 300_000), 1_699_999_800_000);
    assert.throws(() => new WindowProfile(1_700_000_000_001, 300_000), WindowProfileError);
    assert.throws(() => new WindowProfile(0, 10), /window length/);
    assert.throws(() => new WindowProfile(0, 60_000, { '': 'x' }), /segment label/);
    const w = new WindowProfile(0, 60_000, { version: '2', model: 'm' });
    assert.deepEqual(Object.keys(w.segment), ['model', 'version'], 'segment labels are sorted');
  });

  it('merges windows of the same segment exactly; counts add up; inputs unchanged', () => {
    const a = sampleWindow(1, 200);
    const b = sampleWindow(2, 300);
    const bBytes = encodeBatch({ agentId: 'x', sequence: 0, sentAt: 0, windows: [b] });
    const merged = a.clone().merge(b);
    assert.deepEqual(encodeBatch({ agentId: 'x', sequence: 0, sentAt: 0, windows: [b] }), bBytes, 'b unchanged');
    assert.equal(merged.predictions, 500);
    assert.equal(merged.inputs.get('temp_max')!.count, 500);
    assert.equal(merged.outputs.get('class')!.classes!.total, 500);
    assert.equal(merged.latency.digest!.count, 500);
    assert.equal(merged.events.get('shape_mismatch'), 4);
    const other = new WindowProfile(a.start, a.length, { model: 'other' });
    assert.throws(() => merged.merge(other), /cannot merge window/);
    // Round trip of a merged window through the codec keeps the counts.
    const back = decodeBatch(encodeBatch({ agentId: 'x', sequence: 1, sentAt: 1, windows: [merged] })).windows[0];
    assert.equal(back.inputs.get('precipitation')!.missing, merged.inputs.get('precipitation')!.missing);
  });
});

describe('FeatureProfile laws, over every data generator (with missing, NaN and ±Infinity mixed in)', () => {
  for (const { name, values } of datasets(6_000, 41)) {
    it(`${name}: parts merge to the whole; the wire keeps it; merge leaves its argument alone`, () => {
      const r = rng(3);
      const stream = Array.from(values, (x) => {
        const u = r();
        return u < 0.01 ? null : u < 0.02 ? NaN : u < 0.025 ? Infinity : u < 0.03 ? -Infinity : x;
      });
      const whole = new FeatureProfile('f');
      for (const x of stream) whole.add(x);
      const parts = [new FeatureProfile('f'), new FeatureProfile('f'), new FeatureProfile('f')];
      stream.forEach((x, i) => parts[(i * 7) % 3].add(x));
      const snapshot = parts.map((p) => [p.count, p.missing, p.digest!.count, p.moments!.mean]);
      const merged = parts.reduce((acc, p) => acc.merge(p), new FeatureProfile('f'));
      assert.deepEqual(parts.map((p) => [p.count, p.missing, p.digest!.count, p.moments!.mean]), snapshot);
      for (const k of ['count', 'missing', 'nan', 'posInf', 'negInf', 'observed'] as const) assert.equal(merged[k], whole[k], k);
      assert.equal(merged.digest!.count, whole.observed);
      if (whole.observed > 0) {
        assert.equal(merged.digest!.min, whole.digest!.min);
        assert.equal(merged.digest!.max, whole.digest!.max);
        assert.ok(Math.abs(merged.moments!.mean - whole.moments!.mean) <= 1e-9 * Math.max(1, Math.abs(whole.moments!.mean)));
      }
      const w = new WindowProfile(0, 60_000);
      w.inputs.set('f', merged);
      const back = decodeBatch(encodeBatch({ agentId: 'a', sequence: 0, sentAt: 0, windows: [w] })).windows[0].inputs.get('f')!;
      for (const k of ['count', 'missing', 'nan', 'posInf', 'negInf'] as const) assert.equal(back[k], merged[k], `${k} on the wire`);
      assert.equal(back.moments!.mean, merged.moments!.mean);
    });
  }
});

describe('bad input never changes a sketch', () => {
  it('rejects non-finite moments, bad weights and labels with a clear error', () => {
    const m = new Moments().add(1);
    assert.throws(() => m.add(NaN), /only finite numbers/);
    assert.equal(m.count, 1);
    const c = new ClassCounts(['a']);
    assert.throws(() => c.add(0, -2), /positive integer/);
    assert.equal(c.total, 0);
    const t = new TopK(2);
    assert.throws(() => t.add('a', 1.5), /positive integer/);
    assert.throws(() => t.add(7 as unknown as string), /must be a string/);
    assert.equal(t.total, 0);
  });
});
