import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
// The npm `tdigest` package (a CommonJS port of Dunning's original) is the reference.
import reference from 'tdigest';
import { TDigest } from '../../src/sketch/index.js';
import { QUANTILES, datasets, rankError, rng, sorted } from '../helpers.js';

/** Generators of continuous data, where the reference is accurate; the others are discrete. */
const CONTINUOUS = new Set(['uniform', 'normal', 'lognormal', 'negative-only', 'mixed-sign', 'pareto']);

describe('differential: ours vs the npm tdigest package vs exact quantiles', () => {
  for (const { name, values } of datasets(50_000, 31)) {
    if (values.length < 100) continue;
    const s = sorted(values);
    const ours = new TDigest().addAll(values);
    // The reference shuffles centroids with Math.random when it compresses: seed it, or the
    // test would not be repeatable.
    const random = Math.random;
    Math.random = rng(77);
    const ref = new reference.TDigest();
    try {
      ref.push(Array.from(values));
      ref.compress();
    } finally {
      Math.random = random;
    }
    const refBytes = Buffer.byteLength(JSON.stringify(ref.toArray()));

    if (CONTINUOUS.has(name)) {
      it(`${name}: both agree with exact quantiles and with each other; ours is 10× smaller`, () => {
        for (const q of QUANTILES) {
          const a = ours.quantile(q);
          const b = ref.percentile(q);
          assert.ok(rankError(s, a, q) <= 1e-3, `q=${q}: ours ${a} has rank error ${rankError(s, a, q)}`);
          // The reference is context, not the claim: its own error reaches ~2e-3 on some seeds.
          assert.ok(rankError(s, b, q) <= 3e-3, `q=${q}: reference ${b} has rank error ${rankError(s, b, q)}`);
          // The two estimates sit within 4e-3 of each other in rank.
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const between = s.filter((x) => x > lo && x < hi).length / s.length;
          assert.ok(between <= 4e-3, `q=${q}: ${between} of the data lies between ours (${a}) and the reference (${b})`);
        }
        assert.ok(ours.encode().length * 10 <= refBytes, `ours ${ours.encode().length} B vs reference ${refBytes} B of JSON`);
      });
    } else {
      it(`${name} (discrete): ours is exact where the reference interpolates between ties`, () => {
        let worstRef = 0;
        for (const q of QUANTILES) {
          assert.equal(rankError(s, ours.quantile(q), q), 0, `q=${q}: ours ${ours.quantile(q)}`);
          worstRef = Math.max(worstRef, rankError(s, ref.percentile(q), q));
        }
        assert.ok(ours.encode().length <= Math.max(refBytes, 64), `ours ${ours.encode().length} B vs reference ${refBytes} B`);
        // Recorded so a change in the reference shows up here rather than silently.
        assert.ok(name === 'constant' || worstRef > 0.01, `the reference's rank error on ${name} is ${worstRef}`);
      });
    }
  }
});
