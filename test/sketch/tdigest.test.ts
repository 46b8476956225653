import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { CodecError, TDigest, TDigestError } from '../../src/sketch/index.js';
import { QUANTILES, datasets, exactQuantile, rankError, rankErrorWithin, rng, shuffle, sorted } from '../helpers.js';

/** Rank-error bound the laws hold to at the default compression, for every generator. */
const BOUND = 2e-3;

function digestOf(values: ArrayLike<number>, compression?: number): TDigest {
  return new TDigest(compression).addAll(values);
}

function maxRankError(d: TDigest, s: Float64Array): number {
  let worst = 0;
  for (const q of QUANTILES) worst = Math.max(worst, rankError(s, d.quantile(q), q));
  return worst;
}

/** Every own property of a digest, buffers included, as plain data. */
function snapshot(d: TDigest): unknown {
  return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, ArrayBuffer.isView(v) ? Array.from(v as Float64Array) : v]));
}

describe('TDigest API', () => {
  it('is empty before any value: count 0, NaN quantiles, NaN min/max, NaN cdf', () => {
    const d = new TDigest();
    assert.equal(d.count, 0);
    assert.ok(Number.isNaN(d.quantile(0.5)));
    assert.ok(Number.isNaN(d.cdf(0)));
    assert.ok(Number.isNaN(d.min));
    assert.ok(Number.isNaN(d.max));
  });

  it('rejects NaN and ±Infinity with a TDigestError and keeps its state', () => {
    const d = digestOf([1, 2, 3]);
    for (const bad of [NaN, Infinity, -Infinity]) {
      assert.throws(() => d.add(bad), (e: unknown) => e instanceof TDigestError && /only finite numbers/.test(e.message));
    }
    assert.throws(() => d.addAll([4, NaN, 5]), /values\[1\] = NaN/);
    assert.equal(d.count, 3, 'a rejected addAll adds nothing');
    assert.equal(d.quantile(1), 3);
  });

  it('rejects bad weights, compressions and quantiles', () => {
    const d = new TDigest();
    for (const w of [0, -1, 1.5, NaN, 2 ** 40]) assert.throws(() => d.add(1, w), TDigestError);
    for (const c of [0, 9, 10_001, 50.5, NaN]) assert.throws(() => new TDigest(c), TDigestError);
    for (const q of [-0.1, 1.1, NaN]) assert.throws(() => d.quantile(q), TDigestError);
    assert.throws(() => d.cdf(NaN), TDigestError);
    assert.throws(() => d.merge({} as TDigest), TDigestError);
  });

  it('counts weights and keeps exact min and max', () => {
    const d = new TDigest().add(5, 3).add(-2).add(9, 10);
    assert.equal(d.count, 14);
    assert.equal(d.min, -2);
    assert.equal(d.max, 9);
    assert.equal(d.quantile(0), -2);
    assert.equal(d.quantile(1), 9);
  });

  it('answers exact quantiles and CDF for n = 1, 2, 5 and any n up to the compression', () => {
    const r = rng(7);
    for (const n of [1, 2, 5, 40, 100]) {
      const values = Array.from({ length: n }, () => Math.round(r() * 2000) / 8 - 100);
      const s = sorted(values);
      const d = digestOf(values);
      for (let k = 0; k <= 200; k++) {
        const q = k / 200;
        assert.equal(d.quantile(q), exactQuantile(s, q), `n=${n} q=${q}`);
      }
      for (const x of s) {
        const atOrBelow = s.filter((v) => v <= x).length / n;
        assert.equal(d.cdf(x), atOrBelow, `n=${n} cdf(${x})`);
      }
      assert.equal(d.cdf(s[0] - 1), 0);
      assert.equal(d.cdf(s[n - 1] + 1), 1);
    }
  });

  it('keeps the extreme values exact in large digests (single points in the tails)', () => {
    const values = datasets(100_000, 3).find((x) => x.name === 'lognormal')!.values;
    const s = sorted(values);
    const d = digestOf(values);
    for (let k = 0; k < 5; k++) {
      assert.equal(d.quantile(k / s.length), s[k], `rank ${k}`);
      assert.equal(d.quantile((s.length - 1 - k) / s.length), s[s.length - 1 - k], `rank n-1-${k}`);
    }
  });

  it('answers constants exactly', () => {
    const d = digestOf(new Float64Array(50_000).fill(-3.3));
    for (const q of QUANTILES) assert.equal(d.quantile(q), -3.3);
    assert.equal(d.cdf(-3.3), 1);
    assert.equal(d.cdf(-3.31), 0);
  });

  it('compact() folds the buffer in without changing what the digest answers', () => {
    const r = rng(77);
    const values = Array.from({ length: 20_000 }, () => r() * 100 - 50);
    const plain = new TDigest().addAll(values);
    const compacted = new TDigest().addAll(values.slice(0, 7_000)).compact().addAll(values.slice(7_000)).compact();
    // Compacting at 7,000 is a flush the buffer would otherwise have done later: same count,
    // min and max, quantiles within the digest's own error.
    assert.deepEqual([compacted.count, compacted.min, compacted.max], [plain.count, plain.min, plain.max]);
    for (const q of [0.001, 0.25, 0.5, 0.75, 0.999]) assert.ok(Math.abs(compacted.quantile(q) - plain.quantile(q)) < 0.5, `q=${q}`);
    const state = compacted.toState();
    assert.deepEqual(compacted.compact().toState(), state, 'compacting a compacted digest changes nothing');
  });

  it('cdf is monotone and consistent with quantile', () => {
    for (const { name, values } of datasets(20_000, 5)) {
      if (values.length === 0) continue;
      const d = digestOf(values);
      let prev = 0;
      for (let k = 0; k <= 100; k++) {
        const x = d.quantile(k / 100);
        const c = d.cdf(x);
        assert.ok(c >= prev - 1e-12, `${name}: cdf not monotone at ${x}`);
        assert.ok(c >= k / 100 - BOUND, `${name}: cdf(quantile(${k / 100})) = ${c}`);
        prev = c;
      }
    }
  });
});

describe('TDigest.mergeEncoded', () => {
  it('is all or nothing: a bad payload throws a CodecError and leaves the digest unchanged', () => {
    const d = digestOf([1, 2, 3, 4, 5]);
    const before = d.toState();
    const good = digestOf([10, 20, 30]).encode();
    for (const bad of [good.subarray(0, good.length - 1), Uint8Array.of(1, 2, 3), new Uint8Array(0)]) {
      assert.throws(() => d.mergeEncoded(bad), CodecError);
      assert.deepEqual(d.toState(), before);
    }
    d.mergeEncoded(good);
    assert.equal(d.count, 8);
    assert.equal(d.max, 30);
  });
});

describe('TDigest laws, over every data generator', () => {
  for (const { name, values } of datasets(20_000, 11)) {
    const s = sorted(values);
    const n = values.length;

    describe(name, () => {
      it('is accurate against exact quantiles', () => {
        const d = digestOf(values);
        assert.equal(d.count, n);
        if (n === 0) return;
        assert.equal(d.min, s[0]);
        assert.equal(d.max, s[n - 1]);
        assert.ok(maxRankError(d, s) <= BOUND, `max rank error ${maxRankError(d, s)}`);
      });

      it('has the empty digest as identity', () => {
        const d = digestOf(values);
        const before = d.toState();
        d.merge(new TDigest());
        assert.ok(isDeepStrictEqual(d.toState(), before), 'd ⊕ ∅ = d');
        const e = new TDigest().merge(d);
        assert.equal(e.count, n);
        if (n === 0) return;
        assert.equal(e.min, d.min);
        assert.equal(e.max, d.max);
        assert.ok(maxRankError(e, s) <= BOUND, '∅ ⊕ d ≈ d');
      });

      it('merges parts into a digest of the union, whatever the split', () => {
        for (const parts of [2, 7, 50]) {
          for (const split of ['contiguous', 'interleaved', 'sorted-ranges'] as const) {
            const chunks: number[][] = Array.from({ length: parts }, () => []);
            const source = split === 'sorted-ranges' ? s : values;
            for (let i = 0; i < n; i++) {
              const c = split === 'interleaved' ? i % parts : Math.floor((i * parts) / Math.max(n, 1));
              chunks[c].push(source[i]);
            }
            const merged = TDigest.mergeAll(chunks.map((c) => digestOf(c)));
            assert.equal(merged.count, n, `${parts} ${split}: count`);
            if (n === 0) continue;
            assert.equal(merged.min, s[0]);
            assert.equal(merged.max, s[n - 1]);
            const err = maxRankError(merged, s);
            assert.ok(err <= BOUND, `${parts} ${split}: rank error ${err}`);
          }
        }
      });

      it('never changes the digest it merges from (buffered or compressed)', () => {
        const half = Math.floor(n / 2);
        const other = digestOf(values.subarray(0, half));
        other.quantile(0.5); // compress the first half…
        other.addAll(values.subarray(half)); // …and leave the rest in the buffer
        const before = snapshot(other);
        const target = digestOf([1, 2, 3]);
        target.merge(other);
        target.quantile(0.5);
        assert.deepEqual(snapshot(other), before);
        assert.equal(target.count, n + 3);
      });

      it('round-trips through encode/decode to the encoding precision, byte for byte', () => {
        const d = digestOf(values);
        const bytes = d.encode();
        const back = TDigest.decode(bytes);
        assert.deepEqual(back.encode(), bytes, 'encode(decode(b)) = b');
        assert.equal(back.count, d.count);
        assert.equal(back.compression, d.compression);
        if (n === 0) return;
        assert.equal(back.min, d.min);
        assert.equal(back.max, d.max);
        // Means sit on a grid of 2^-16 of the spread or finer, never coarser than |x|·2^-17
        // away from where they were (rounded to nearest).
        const eps = Math.max(Math.abs(d.min), Math.abs(d.max)) * 2 ** -17;
        for (const q of QUANTILES) {
          const a = d.quantile(q);
          const b = back.quantile(q);
          assert.ok(Math.abs(a - b) <= eps, `q=${q}: ${a} vs ${b}`);
          assert.ok(rankErrorWithin(s, b, q, eps) <= BOUND, `q=${q}: rank error of ${b}`);
        }
        assert.equal(back.quantile(0), d.min, 'the min survives exactly');
        assert.equal(back.quantile(1), d.max, 'the max survives exactly');
      });

      it('mergeEncoded(bytes) folds in exactly what merge(decode(bytes)) does', () => {
        const parts = [values.subarray(0, n / 3), values.subarray(n / 3)].map((v) => digestOf(v).encode());
        const a = new TDigest();
        const b = new TDigest();
        for (const p of parts) {
          a.mergeEncoded(p);
          b.merge(TDigest.decode(p));
        }
        assert.deepEqual(a.toState(), b.toState());
      });

      it('mergeAll is independent of input order within the error bound', () => {
        const r = rng(99);
        const chunks = Array.from({ length: 20 }, (_, c) => values.filter((_, i) => i % 20 === c));
        const digests = chunks.map((c) => digestOf(c));
        const a = TDigest.mergeAll(digests);
        const b = TDigest.mergeAll(shuffle(digests, r));
        assert.equal(a.count, b.count);
        if (n === 0) return;
        assert.equal(a.min, b.min);
        assert.equal(a.max, b.max);
        for (const q of QUANTILES) {
          assert.ok(rankError(s, a.quantile(q), q) <= BOUND && rankError(s, b.quantile(q), q) <= BOUND, `q=${q}`);
        }
      });
    });
  }
});
