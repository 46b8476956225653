/**
 * The digest's buffer sort (src/sketch/sortCentroids.ts) against Float64Array.prototype.sort,
 * side by side on the same 8,192-value buffers: what a flush sorts, on the data kinds that
 * decide its speed.
 *
 *   node --import tsx bench/sort.ts [--rounds N]
 *
 * Kinds: "fleet merge" — the means of many client digests of one feature, concatenated as a
 * collector's fold buffers them (bench/loadgen.ts buildWindow, every numeric input); normal and
 * lognormal raw values (an agent's add path); narrow data whose high words hardly differ
 * (epoch milliseconds within 5 minutes, epoch seconds within an hour) and a dense clump beside a
 * far outlier — the inputs that once made the final insertion pass quadratic. Prints the
 * minimum over rounds of ns per value (the least disturbed run: these machines are noisy).
 */
import { parseArgs } from 'node:util';
import { sortCentroids, MAX_SORT } from '../src/sketch/sortCentroids.js';
import { TDigest, WindowProfile } from '../src/sketch/index.js';
import { buildWindow, SEGMENTS } from './loadgen.js';
import { rng } from './rng.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '15' } }, strict: true });
const ROUNDS = Number(args.rounds);
const r = rng(11);
const normal = (): number => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());

const fleet: Float64Array[] = [];
const start = WindowProfile.alignedStart(Date.now(), 300_000);
const windows = Array.from({ length: 240 }, (_, i) => buildWindow(r, start, 300_000, i % SEGMENTS));
for (const name of windows[0].inputs.keys()) {
  const values: number[] = [];
  for (const w of windows) values.push(...TDigest.decode(w.inputs.get(name)!.digest!.encode()).toState().means);
  for (let i = 0; i + MAX_SORT <= values.length; i += MAX_SORT) fleet.push(Float64Array.from(values.slice(i, i + MAX_SORT)));
}
const buffers = (gen: () => number): Float64Array[] => Array.from({ length: 8 }, () => Float64Array.from({ length: MAX_SORT }, gen));
const kinds: Array<[string, Float64Array[]]> = [
  [`fleet merge (${fleet.length} buffers)`, fleet],
  ['normal', buffers(normal)],
  ['lognormal(0, 2)', buffers(() => Math.exp(2 * normal()))],
  ['epoch ms within 5 min', buffers(() => 1.7e12 + Math.floor(r() * 300_000))],
  ['epoch s within 1 h', buffers(() => 1.7e9 + Math.floor(r() * 3_600))],
  ['clump beside an outlier', buffers(() => (r() < 0.001 ? -1e300 : 1 + r() * 1e-12))],
];

const work = new Float64Array(MAX_SORT);
function nsPerValue(sort: (a: Float64Array) => void, list: Float64Array[]): number {
  let ms = 0;
  for (const b of list) {
    work.set(b);
    const t = performance.now();
    sort(work);
    ms += performance.now() - t;
    for (let i = 1; i < work.length; i++) if (work[i] < work[i - 1]) throw new Error('not sorted');
  }
  return (ms * 1e6) / (list.length * MAX_SORT);
}
const ours = (a: Float64Array): void => sortCentroids(a, null, a.length);
const builtin = (a: Float64Array): void => void a.sort();

console.log(`buffer sort, ${MAX_SORT} values per buffer, min of ${ROUNDS} rounds (ns/value)`);
console.log(`${'data'.padEnd(32)}  sortCentroids  Float64Array#sort  ratio`);
for (const [name, list] of kinds) {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    a.push(nsPerValue(ours, list));
    b.push(nsPerValue(builtin, list));
  }
  const x = Math.min(...a);
  const y = Math.min(...b);
  console.log(`${name.padEnd(32)}  ${x.toFixed(1).padStart(13)}  ${y.toFixed(1).padStart(17)}  ${(y / x).toFixed(1).padStart(5)}×`);
}
