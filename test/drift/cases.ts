/** Fixed-seed pairs of samples (baseline, current) for the drift suites. */
import { normal, rng } from '../helpers.js';

export interface DriftCase {
  name: string;
  baseline: Float64Array;
  current: Float64Array;
  /** Whether the current sample comes from a different distribution than the baseline. */
  drift: boolean;
}

type Generator = (r: () => number) => number;

const normalValue: Generator = (r) => normal(r);
const lognormal: Generator = (r) => Math.exp(1.5 * normal(r));
const negativeOnly: Generator = (r) => -Math.exp(normal(r)) - 1;
const mixedSign: Generator = (r) => (r() < 0.5 ? -1 : 1) * Math.exp(normal(r));
const integers: Generator = (r) => Math.floor(Math.exp(2 * r()) * 3);
const twoValues: Generator = (r) => (r() < 0.3 ? -1 : 3);

export function sample(n: number, seed: number, generate: Generator, transform: (x: number) => number = (x) => x): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => transform(generate(r)));
}

/** The no-drift, shift, scale, heavy-tail, sign, tie and constant cases, n values per side. */
export function driftCases(n = 20_000, seed = 11): DriftCase[] {
  const pair = (name: string, g: Generator, drift: boolean, transform?: (x: number) => number, currentGenerator = g): DriftCase => ({
    name,
    baseline: sample(n, seed, g),
    current: sample(n, seed + 1000, currentGenerator, transform),
    drift,
  });
  return [
    pair('normal, no drift', normalValue, false),
    pair('normal, mean +0.25 std', normalValue, true, (x) => x + 0.25),
    pair('normal, mean +1 std', normalValue, true, (x) => x + 1),
    pair('normal, scale ×1.5', normalValue, true, (x) => 1.5 * x),
    pair('lognormal, no drift', lognormal, false),
    pair('lognormal, scale ×1.5', lognormal, true, (x) => 1.5 * x),
    pair('negative only, no drift', negativeOnly, false),
    pair('negative only, mean −1 std', negativeOnly, true, (x) => x - 1.4),
    pair('mixed sign, no drift', mixedSign, false),
    pair('mixed sign, scale ×1.5', mixedSign, true, (x) => 1.5 * x),
    pair('integer ties, no drift', integers, false),
    pair('integer ties, +1', integers, true, (x) => x + 1),
    pair('two values, no drift', twoValues, false),
    pair('two values, 30% → 50%', twoValues, true, undefined, (r) => (r() < 0.5 ? -1 : 3)),
    pair('constant, no drift', () => 42.5, false),
    pair('constant, moves to 43', () => 42.5, true, () => 43),
    pair('constant baseline, normal current', () => 42.5, true, (x) => 42.5 + x, normalValue),
  ];
}

export { normalValue, lognormal, negativeOnly, mixedSign, integers, twoValues, type Generator };
