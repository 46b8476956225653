/** Test helpers shared by the suites: a seeded RNG, the data generators, exact statistics. */
import { EVENTS, WindowProfile, type Batch } from '../src/sketch/index.js';

/** The seeded RNG the benchmarks use too (mulberry32). */
import { rng } from '../bench/rng.js';

export { rng };

/** Standard normal by Box–Muller. */
export function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export interface Dataset {
  name: string;
  values: Float64Array;
}

/**
 * Every generator the sketch laws run over (see ../shared/STYLE.md on sketches-js#22: a suite
 * of non-negative data alone once hid a merge that dropped negatives).
 */
export function datasets(n = 20_000, seed = 1): Dataset[] {
  const r = rng(seed);
  const make = (name: string, len: number, f: (i: number) => number): Dataset => {
    const values = new Float64Array(len);
    for (let i = 0; i < len; i++) values[i] = f(i);
    return { name, values };
  };
  return [
    make('uniform', n, () => r()),
    make('normal', n, () => normal(r)),
    make('lognormal', n, () => Math.exp(1.5 * normal(r))),
    make('negative-only', n, () => -Math.exp(normal(r)) - 1),
    make('mixed-sign', n, () => (r() < 0.5 ? -1 : 1) * Math.exp(2 * normal(r))),
    make('constant', n, () => 42.5),
    make('two-value-ties', n, () => (r() < 0.3 ? -1 : 3)),
    make('integer-heavy-ties', n, () => Math.floor(Math.exp(2 * r()) * 3)),
    make('pareto', n, () => 1 / Math.pow(1 - r(), 1 / 1.2)),
    make('n=0', 0, () => 0),
    make('n=1', 1, () => -7.25),
    make('n=2', 2, (i) => (i === 0 ? 3 : -3)),
    make('n=5', 5, (i) => [2, -1, 2, 1e-300, 5e10][i]),
  ];
}

export function sorted(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

/** Exact quantile with the digest's convention: the value of rank floor(q·n), clamped. */
export function exactQuantile(s: Float64Array, q: number): number {
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Fraction of values < x and <= x, by binary search on sorted values. */
export function exactRanks(s: Float64Array, x: number): [number, number] {
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (s[m] < x) lo = m + 1;
    else hi = m;
  }
  const below = lo;
  hi = s.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (s[m] <= x) lo = m + 1;
    else hi = m;
  }
  return [below / s.length, lo / s.length];
}

/**
 * Rank error of an estimate x of the q-quantile: 0 when q lies within [F(x−), F(x)] (which
 * accounts for ties), otherwise the distance from q to that interval.
 */
export function rankError(s: Float64Array, x: number, q: number): number {
  const [a, b] = exactRanks(s, x);
  return q < a ? a - q : q > b ? q - b : 0;
}

/**
 * Rank error of an estimate known only to within ±eps (a decoded digest's means sit on a grid):
 * the distance from q to [F(x − eps −), F(x + eps)].
 */
export function rankErrorWithin(s: Float64Array, x: number, q: number, eps: number): number {
  const a = exactRanks(s, x - eps)[0];
  const b = exactRanks(s, x + eps)[1];
  return q < a ? a - q : q > b ? q - b : 0;
}

export const QUANTILES = [0, 0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1];

export function shuffle<T>(items: T[], r: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}


/**
 * A window as an agent would fill it: numeric inputs (one with missing, NaN and infinite
 * values), a classifier's probabilities and argmax class, an open-set label input, latency and
 * events. `rows` predictions, deterministic for a seed.
 */
export function sampleWindow(seed: number, rows = 500, start = 1_700_000_100_000 - (1_700_000_100_000 % 300_000)): WindowProfile {
  const r = rng(seed);
  const w = new WindowProfile(start, 300_000, { model: 'weather', version: '3', backend: 'cpu' });
  const classes = ['drizzle', 'fog', 'rain', 'snow', 'sun'];
  for (let i = 0; i < rows; i++) {
    w.predictions++;
    w.input('temp_max').add(10 + 8 * normal(r));
    w.input('precipitation').add(r() < 0.02 ? null : r() < 0.01 ? NaN : Math.max(0, 3 * normal(r)));
    w.input('wind').add(i % 97 === 13 ? Infinity : i % 89 === 5 ? -Infinity : Math.exp(normal(r)));
    w.input('station', 'labels', { capacity: 8 }).addLabel(`st-${Math.floor(r() * r() * 20)}`);
    let best = 0;
    let sum = 0;
    const p = classes.map(() => r());
    for (const x of p) sum += x;
    for (let c = 0; c < classes.length; c++) {
      w.output(`p_${classes[c]}`).add(p[c] / sum);
      if (p[c] > p[best]) best = c;
    }
    w.output('class', 'classes', { classes }).addLabel(r() < 0.002 ? 9 : best);
    w.latency.add(0.05 + Math.exp(normal(r)) * 0.1);
  }
  w.event(EVENTS.shapeMismatch, 2).event(EVENTS.unseenClass, 1);
  return w;
}

export function sampleBatch(seed: number, windows = 2): Batch {
  return {
    agentId: `agent-${seed}-é`,
    sequence: seed * 7,
    sentAt: 1_700_000_400_000 + seed,
    windows: Array.from({ length: windows }, (_, i) => sampleWindow(seed + i, 300, 1_700_000_100_000 - (1_700_000_100_000 % 300_000) + i * 300_000)),
  };
}

/** Polls `f` until it returns true or `ms` pass. */
export async function until(f: () => boolean | Promise<boolean>, ms = 15_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
