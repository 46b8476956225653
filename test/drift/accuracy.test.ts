import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TDigest } from '../../src/sketch/index.js';
import {
  binnedProportions,
  binsFromBaseline,
  hellinger,
  jensenShannon,
  ks,
  psi,
  sketchMoments,
  wasserstein,
  wasserstein1,
  wassersteinScale,
} from '../../src/drift/index.js';
import { sorted } from '../helpers.js';
import { driftCases } from './cases.js';
import { exactKs, exactMeanStd, exactProportions, exactWasserstein1 } from './exact.js';

/**
 * Sketch statistics (default compression 100, n = 20,000 per side) against the same statistics
 * on the raw values. The bounds are what docs/drift.md states; the worst errors measured are
 * printed as a diagnostic and listed there too.
 */
const KS_BOUND = 0.003;
/** Wasserstein / std: absolute plus relative part (heavy tails carry W1 in a few extreme values). */
const W_ABS = 0.005;
const W_REL = 0.02;
/** PSI: absolute plus relative (large PSIs come from near-empty bins, where ε dominates). */
const PSI_ABS = 0.002;
const PSI_REL = 0.01;
const JS_BOUND = 0.003;
const HELLINGER_BOUND = 0.003;
/**
 * Bin proportions: differences of two CDF values. A body centroid holds up to ~1/δ = 1% of the
 * mass; where the data have a gap inside one (mixed-sign data around 0) the sketch CDF
 * interpolates across it, off by up to half that.
 */
const PROPORTION_BOUND = 0.005;

const digestOf = (values: Float64Array): TDigest => new TDigest().addAll(values);

describe('sketch statistics agree with the exact ones on raw data', () => {
  const worst = { ks: 0, w: 0, psi: 0, js: 0, h: 0, p: 0 };
  for (const c of driftCases()) {
    const b = digestOf(c.baseline);
    const d = digestOf(c.current);
    const bs = sorted(c.baseline);
    const cs = sorted(c.current);

    it(`${c.name}: KS within ${KS_BOUND}`, () => {
      const error = Math.abs(ks(b, d) - exactKs(bs, cs));
      worst.ks = Math.max(worst.ks, error);
      assert.ok(error <= KS_BOUND, `|KS_sketch − KS_exact| = ${error}`);
    });

    it(`${c.name}: Wasserstein / std within ${W_ABS} + ${W_REL}·W`, () => {
      const { mean, std } = exactMeanStd(bs);
      const scale = wassersteinScale(std, mean);
      const exact = exactWasserstein1(bs, cs) / scale;
      const sketch = wasserstein(b, d, { baselineStd: std, baselineMean: mean });
      const error = Math.abs(sketch - exact);
      worst.w = Math.max(worst.w, error - W_REL * exact);
      assert.ok(error <= W_ABS + W_REL * exact, `W sketch ${sketch} vs exact ${exact}`);
      assert.ok(Math.abs(wasserstein1(b, d) - exact * scale) <= (W_ABS + W_REL * exact) * scale, 'W1 in data units');
    });

    it(`${c.name}: the digest's own std is within 2% of the exact std`, () => {
      const { std } = exactMeanStd(bs);
      const own = sketchMoments(b).std;
      assert.ok(Math.abs(own - std) <= 0.02 * std, `sketch std ${own} vs exact ${std}`);
    });

    it(`${c.name}: PSI, Jensen–Shannon and Hellinger on baseline-fixed bins`, () => {
      const bins = binsFromBaseline(b);
      const [p, q] = [binnedProportions(bins, b), binnedProportions(bins, d)];
      const [pe, qe] = [exactProportions(bins, bs), exactProportions(bins, cs)];
      for (let i = 0; i < p.length; i++) {
        worst.p = Math.max(worst.p, Math.abs(p[i] - pe[i]), Math.abs(q[i] - qe[i]));
        assert.ok(Math.abs(p[i] - pe[i]) <= PROPORTION_BOUND && Math.abs(q[i] - qe[i]) <= PROPORTION_BOUND, `bin ${i}: ${p[i]}/${pe[i]}, ${q[i]}/${qe[i]}`);
      }
      const psiExact = psi(pe, qe);
      const psiError = Math.abs(psi(p, q) - psiExact);
      const jsError = Math.abs(jensenShannon(p, q) - jensenShannon(pe, qe));
      const hError = Math.abs(hellinger(p, q) - hellinger(pe, qe));
      worst.psi = Math.max(worst.psi, psiError - PSI_REL * psiExact);
      worst.js = Math.max(worst.js, jsError);
      worst.h = Math.max(worst.h, hError);
      assert.ok(psiError <= PSI_ABS + PSI_REL * psiExact, `PSI error ${psiError} at ${psiExact}`);
      assert.ok(jsError <= JS_BOUND, `JS error ${jsError}`);
      assert.ok(hError <= HELLINGER_BOUND, `Hellinger error ${hError}`);
    });
  }

  it('reports the worst errors measured', (t) => {
    t.diagnostic(`worst |Δ|: ${JSON.stringify(worst)}`);
    assert.ok(worst.ks > 0, 'the sketch is not the raw data: some error is expected');
  });
});
