/**
 * Sketch benchmark: sketchwatch's TDigest against the npm `tdigest` package and DataDog's
 * `@datadog/sketches-js` (DDSketch), side by side in one process, on the built package.
 *
 *   npm run bench:sketch            (builds first)
 *   npm run bench:sketch -- --quick (fewer runs, for a smoke check)
 *
 * Prints, per library and distribution (1e6 values, fixed seed): ns/add (median of the timed
 * runs after warm-up), the ratio to npm tdigest, encoded bytes, rank error |F(estimate) − q| at
 * seven quantiles; then the fleet case — 10,000 clients of 100 values each, iid and
 * range-partitioned — encoded, then decoded and merged: mean payload bytes, decode+merge ms
 * (median), merged rank errors. Ends with our figures against the foundation issue's targets.
 */
import { DDSketch } from '@datadog/sketches-js';
import reference from 'tdigest';
import { TDigest } from 'sketchwatch/sketch';
import { rng } from './rng.js';

const QUICK = process.argv.includes('--quick');
const N = 1_000_000;
const CLIENTS = 10_000;
const PER_CLIENT = N / CLIENTS;
const ADD_RUNS = QUICK ? 3 : 7;
const MERGE_RUNS = QUICK ? 2 : 5;
const QS = [0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999];

/**
 * Each library's loops live in its own adapter, so every call site in them sees one library
 * (a shared generic loop would make the calls megamorphic and slow the fastest library most).
 */
interface Library<S> {
  name: string;
  make(): S;
  /** Adds values[from..to) one call per value, as an agent does per prediction. */
  addEach(s: S, values: Float64Array, from: number, to: number): void;
  /** Whatever must happen before a query (a final compression). */
  finish(s: S): void;
  quantile(s: S, q: number): number;
  encode(s: S): Uint8Array;
  decode(bytes: Uint8Array): S;
  /** Decodes every payload and merges it into a new sketch. */
  decodeAndMerge(payloads: Uint8Array[]): S;
}

const ours: Library<TDigest> = {
  name: 'sketchwatch TDigest',
  make: () => new TDigest(),
  addEach: (s, v, from, to) => {
    for (let i = from; i < to; i++) s.add(v[i]);
  },
  finish: (s) => void s.centroidCount,
  quantile: (s, q) => s.quantile(q),
  encode: (s) => s.encode(),
  decode: (b) => TDigest.decode(b),
  // mergeEncoded decodes straight into the target, as the collector does.
  decodeAndMerge: (payloads) => {
    const into = new TDigest();
    for (const p of payloads) into.mergeEncoded(p);
    return into;
  },
};

/** The same digest through the two-step path, decode() then merge(), for comparison. */
const oursTwoStep: Library<TDigest> = {
  ...ours,
  name: 'sketchwatch decode+merge',
  decodeAndMerge: (payloads) => {
    const into = new TDigest();
    for (const p of payloads) into.merge(TDigest.decode(p));
    return into;
  },
};

type Ref = InstanceType<typeof reference.TDigest>;
const text = new TextEncoder();
const untext = new TextDecoder();
const npmTdigest: Library<Ref> = {
  name: 'npm tdigest 0.1.3',
  make: () => new reference.TDigest(),
  addEach: (s, v, from, to) => {
    for (let i = from; i < to; i++) s.push(v[i]);
  },
  finish: (s) => s.compress(),
  quantile: (s, q) => s.percentile(q),
  // It has no serialization: JSON of its centroids is what a user would send.
  encode: (s) => text.encode(JSON.stringify(s.toArray())),
  decode: (b) => {
    const t = new reference.TDigest();
    t.push_centroid(JSON.parse(untext.decode(b)));
    return t;
  },
  decodeAndMerge: (payloads) => {
    const into = new reference.TDigest();
    for (const p of payloads) into.push_centroid(npmTdigest.decode(p).toArray());
    return into;
  },
};

const ddsketch: Library<DDSketch> = {
  name: 'DDSketch (1% rel.)',
  make: () => new DDSketch(),
  addEach: (s, v, from, to) => {
    for (let i = from; i < to; i++) s.accept(v[i]);
  },
  finish: () => {},
  quantile: (s, q) => s.getValueAtQuantile(q),
  encode: (s) => s.toProto(),
  decode: (b) => DDSketch.fromProto(b),
  decodeAndMerge: (payloads) => {
    const into = new DDSketch();
    for (const p of payloads) into.merge(DDSketch.fromProto(p));
    return into;
  },
};

const LIBRARIES = [ours, npmTdigest, ddsketch] as Library<unknown>[];

// ---------------------------------------------------------------- data


function generate(kind: string, seed: number): Float64Array {
  const r = rng(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const v = new Float64Array(N);
  for (let i = 0; i < N; i++) v[i] = kind === 'uniform' ? r() : kind === 'normal' ? normal() : Math.exp(1.5 * normal());
  return v;
}

function rankError(sorted: Float64Array, x: number, q: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sorted[m] < x) lo = m + 1;
    else hi = m;
  }
  const below = lo / sorted.length;
  hi = sorted.length;
  while (lo < hi) {
    const m = (lo + hi) >>> 1;
    if (sorted[m] <= x) lo = m + 1;
    else hi = m;
  }
  const upto = lo / sorted.length;
  return q < below ? below - q : q > upto ? q - upto : 0;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

// ---------------------------------------------------------------- measurements

interface Row {
  lib: string;
  dist: string;
  nsPerAdd: number;
  bytes: number;
  errors: number[];
}

function singleStream<S>(lib: Library<S>, dist: string, values: Float64Array, sorted: Float64Array): Row {
  const runs = lib === (npmTdigest as unknown) ? Math.max(5, ADD_RUNS - 2) : ADD_RUNS;
  const times: number[] = [];
  let sketch = lib.make();
  for (let run = -1; run < runs; run++) {
    sketch = lib.make();
    const t0 = now();
    lib.addEach(sketch, values, 0, N);
    lib.finish(sketch);
    if (run >= 0) times.push(((now() - t0) * 1e6) / N); // run -1 is the warm-up
  }
  return {
    lib: lib.name,
    dist,
    nsPerAdd: median(times),
    bytes: lib.encode(sketch).length,
    errors: QS.map((q) => rankError(sorted, lib.quantile(sketch, q), q)),
  };
}

interface FleetRow {
  lib: string;
  dist: string;
  split: string;
  payload: number;
  mergeMs: number;
  errors: number[];
}

function fleet<S>(lib: Library<S>, dist: string, split: string, clients: Float64Array, sorted: Float64Array): FleetRow {
  const payloads: Uint8Array[] = [];
  let bytes = 0;
  for (let c = 0; c < CLIENTS; c++) {
    const s = lib.make();
    lib.addEach(s, clients, c * PER_CLIENT, (c + 1) * PER_CLIENT);
    lib.finish(s);
    const p = lib.encode(s);
    bytes += p.length;
    payloads.push(p);
  }
  const times: number[] = [];
  let merged = lib.make();
  for (let run = -1; run < MERGE_RUNS; run++) {
    const t0 = now();
    merged = lib.decodeAndMerge(payloads);
    lib.finish(merged);
    if (run >= 0) times.push(now() - t0);
  }
  return {
    lib: lib.name,
    dist,
    split,
    payload: bytes / CLIENTS,
    mergeMs: median(times),
    errors: QS.map((q) => rankError(sorted, lib.quantile(merged, q), q)),
  };
}

// ---------------------------------------------------------------- report

const e = (x: number) => (x === 0 ? '0' : x.toExponential(1));
const pad = (s: string | number, n: number) => String(s).padStart(n);
const qHeader = QS.map((q) => pad(`q=${q}`, 8)).join('');

console.log(`sketch benchmark — node ${process.version}, ${N.toLocaleString('en')} values per distribution, seed-fixed`);
console.log(`${ADD_RUNS} timed add runs after one warm-up (npm tdigest: ${Math.max(5, ADD_RUNS - 2)}), ${MERGE_RUNS} timed fleet merges; medians\n`);

const rows: Row[] = [];
const fleetRows: FleetRow[] = [];
const dists = ['uniform', 'normal', 'lognormal'];
console.log(`single stream                    ${pad('ns/add', 8)}${pad('× tdigest', 10)}${pad('bytes', 8)}  rank error at ${qHeader}`);
for (const [d, dist] of dists.entries()) {
  const values = generate(dist, 1000 + d);
  const sorted = Float64Array.from(values).sort();
  const distRows = LIBRARIES.map((lib) => singleStream(lib, dist, values, sorted));
  const base = distRows.find((r) => r.lib === npmTdigest.name)!.nsPerAdd;
  for (const r of distRows) {
    rows.push(r);
    const speedup = base / r.nsPerAdd;
    console.log(`${`${r.lib} / ${dist}`.padEnd(33)}${pad(r.nsPerAdd.toFixed(1), 8)}${pad(speedup.toFixed(1), 10)}${pad(r.bytes, 8)}  ${' '.repeat(13)}${r.errors.map((x) => pad(e(x), 8)).join('')}`);
  }
  // Fleet: iid clients take consecutive slices of the shuffled stream; range-partitioned
  // clients each take a narrow slice of the sorted data.
  for (const [split, clients] of [['iid', values], ['range', sorted]] as const) {
    for (const lib of [...LIBRARIES, oursTwoStep as Library<unknown>]) fleetRows.push(fleet(lib, dist, split, clients, sorted));
  }
}

console.log(`\nfleet: ${CLIENTS.toLocaleString('en')} clients × ${PER_CLIENT} values, encode → decode + merge`);
console.log(`${''.padEnd(40)}${pad('B/client', 9)}${pad('merge ms', 10)}  merged rank error at ${qHeader}`);
for (const r of fleetRows) {
  console.log(`${`${r.lib} / ${r.dist} / ${r.split}`.padEnd(40)}${pad(r.payload.toFixed(0), 9)}${pad(r.mergeMs.toFixed(1), 10)}  ${' '.repeat(20)}${r.errors.map((x) => pad(e(x), 8)).join('')}`);
}

// ---------------------------------------------------------------- targets

const mine = rows.filter((r) => r.lib === ours.name);
const mineFleet = fleetRows.filter((r) => r.lib === ours.name);
const tail = (errs: number[]) => Math.max(errs[0], errs[errs.length - 1]);
const worst = (errs: number[]) => Math.max(...errs);
const ratio = Math.min(...dists.map((d) => rows.find((r) => r.dist === d && r.lib === npmTdigest.name)!.nsPerAdd / rows.find((r) => r.dist === d && r.lib === ours.name)!.nsPerAdd));
const checks: Array<[string, number, number, string]> = [
  ['add: × npm tdigest adds/s (worst distribution)', ratio, 10, '>='],
  ['add: ns/add (worst distribution)', Math.max(...mine.map((r) => r.nsPerAdd)), 25, '<='],
  ['encoded bytes for 1e6 values (largest)', Math.max(...mine.map((r) => r.bytes)), 1024, '<='],
  ['max rank error, single stream', Math.max(...mine.map((r) => worst(r.errors))), 1e-3, '<='],
  ['tail rank error (q=0.001, 0.999), single stream', Math.max(...mine.map((r) => tail(r.errors))), 1e-4, '<='],
  ['max rank error, merged fleet', Math.max(...mineFleet.map((r) => worst(r.errors))), 1e-3, '<='],
  ['tail rank error, merged fleet', Math.max(...mineFleet.map((r) => tail(r.errors))), 1e-4, '<='],
  ['100-value client payload bytes (largest mean)', Math.max(...mineFleet.map((r) => r.payload)), 300, '<='],
  ['decode + merge of 10,000 payloads, ms (slowest)', Math.max(...mineFleet.map((r) => r.mergeMs)), 50, '<='],
];
console.log('\ntargets (foundation issue), sketchwatch figures:');
for (const [what, value, target, op] of checks) {
  const ok = op === '<=' ? value <= target : value >= target;
  const shown = value < 0.01 ? e(value) : value.toFixed(value < 10 ? 2 : 1);
  console.log(`  ${ok ? 'met   ' : 'MISSED'} ${what.padEnd(50)} ${pad(shown, 9)}  (target ${op} ${target})`);
}
