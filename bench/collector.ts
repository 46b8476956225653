/**
 * Collector benchmark: ingest throughput and latency on each store.
 *
 *   node --import tsx bench/collector.ts            (full: ~6 minutes)
 *   node --import tsx bench/collector.ts --quick    (smoke check: ~1 minute)
 *   options: --stores pglite-memory,pglite-disk,postgres   --flush-ms N (group-commit interval;
 *            default: the collector's own default)   --runs N (throughput runs per store)
 *            --detect-ms N (detector interval, for diagnosis; default: the collector's)
 *            --rate N (the open-loop phase's beacons/s, for diagnosis; default 1,000, the target's)
 *            --no-pin (do not pin processes to cores)   --collector-cores 0,1 (the collector on both cores, sharing
 *            the second with the load generator; default 0); SKETCHWATCH_BENCH_PROFILE=DIR: a CPU profile
 *            of the collector per throughput run; SKETCHWATCH_SINGLE_THREADED_GC=auto|on|off as for the
 *            collector (auto: a one-core collector runs with V8's GC on its main thread; this process
 *            then runs itself again with the flag) (SKETCHWATCH_BENCH_HEAP=promoted|all: a sampled
 *            heap profile instead, .heapprofile, for Chrome DevTools)   --pg URL (server to create the bench
 *            database on; default postgres://postgres@127.0.0.1:5432/postgres)
 *
 * The collector runs in this process (startCollector; its store too when that is PGlite, which
 * is WASM on the same thread). The load comes from bench/loadgen.ts, a second process talking
 * HTTP/1.1 keep-alive to 127.0.0.1. On a machine with two or more cores this process is pinned
 * to core 0 and the load generator to core 1 (taskset), so "one core" is literal: JS, GC threads
 * and PGlite share core 0. A PostgreSQL server is its own processes and is not pinned.
 *
 * Per store, against a fresh collector: a warm-up, then
 *   1. throughput — THROUGHPUT_BATCHES batches with 64 in flight, as fast as they are answered,
 *      RUNS times; the figure is the median of the runs' beacons/s (acknowledged batches / s);
 *   2. latency — an open-loop 1,000 batches/s for 60 s: p50/p95/p99/max from send to response,
 *      every non-200 counted as an error;
 * then the group-commit figures from GET /metrics, and a check that the predictions the
 * collector reports for the window equal those in the batches it acknowledged as applied.
 *
 * Batches: one 5-minute window each, segment {model, version, backend} (six segments), 32
 * numeric inputs of varied distributions, a 5-class output and its 5 probabilities, latency,
 * 50–200 predictions; from 2,000 agents with increasing sequence numbers (see loadgen.ts).
 * Targets (the issue): ≥ 5,000 beacons/s; p99 ≤ 20 ms with 0 errors at 1,000/s.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as perfConstants, monitorEventLoopDelay, performance, PerformanceObserver, type EventLoopUtilization } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { startCollector, type Collector } from '../src/collector/server.js';
import { relaunchForGc, singleThreadedGc } from '../src/collector/singleThreadedGc.js';
import { WindowProfile } from '../src/sketch/index.js';
import { MODEL, type RunResult, type RunSpec } from './loadgen.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    stores: { type: 'string', default: 'pglite-memory,pglite-disk,postgres' },
    'flush-ms': { type: 'string' },
    runs: { type: 'string' },
    'no-pin': { type: 'boolean', default: false },
    'collector-cores': { type: 'string', default: '0' },
    pg: { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    'detect-ms': { type: 'string' },
    rate: { type: 'string' },
  },
  strict: true,
});

const QUICK = args.quick;
const THROUGHPUT_BATCHES = QUICK ? 3_000 : 30_000;
const RUNS = args.runs ? Number(args.runs) : QUICK ? 1 : 3;
const WARMUP_BATCHES = QUICK ? 1_000 : 3_000;
const CONCURRENCY = 64;
/** The target's fixed rate; --rate changes it for diagnosis (a slow day's machine, a knee). */
const FIXED_RATE = args.rate ? Number(args.rate) : 1_000;
const FIXED_SECONDS = QUICK ? 10 : 60;
/**
 * A throughput run that has not finished by then is cut short (and says so): at the 5,000/s
 * target 30,000 batches take 6 s, so the cap only bites when the target is missed by far, and
 * it keeps the whole benchmark under 10 minutes.
 */
const THROUGHPUT_MAX_MS = QUICK ? 10_000 : 20_000;
/** After sending stops, answers are awaited this long; then the rest are abandoned (errors). */
const DRAIN_MS = 10_000;
const AGENTS = 2_000;
const WINDOW_MS = 300_000;
const SEED = 20_240_601;
const ADMIN_TOKEN = 'bench-admin-token-0123456789';
const FLUSH_MS = args['flush-ms'] === undefined ? undefined : Number(args['flush-ms']);
/** Diagnosis only: the detector's interval (a huge value all but turns it off). */
const DETECT_MS = args['detect-ms'] === undefined ? undefined : Number(args['detect-ms']);
/**
 * Diagnosis: SKETCHWATCH_BENCH_PROFILE=DIR writes a CPU profile of this process (the collector)
 * for each throughput run and for the fixed-rate run, and nothing else (set-up, warm-up and
 * PGlite's start are left out); `node bench/longtasks.mjs FILE` lists a profile's long busy
 * stretches and what they were spent on.
 */
const PROFILE_DIR = process.env.SKETCHWATCH_BENCH_PROFILE;
/**
 * SKETCHWATCH_BENCH_HEAP=promoted: the profiles are instead of the allocations that survived a
 * scavenge (what grows the old generation and brings major GCs); =all: of every allocation.
 */
const HEAP = process.env.SKETCHWATCH_BENCH_HEAP === 'promoted' || process.env.SKETCHWATCH_BENCH_HEAP === 'all';
const HEAP_ALL = process.env.SKETCHWATCH_BENCH_HEAP === 'all';

async function startProfile(): Promise<{ stop(path: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  if (HEAP) {
    // Sampled allocations that a scavenge did not free (=promoted), or all of them (=all);
    // either way including those a major GC freed later.
    await session.post('HeapProfiler.enable');
    await session.post('HeapProfiler.startSampling', { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: HEAP_ALL } as never);
  } else {
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  return {
    async stop(path: string) {
      if (HEAP) {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        writeFileSync(path.replace(/\.cpuprofile$/, '.heapprofile'), JSON.stringify(profile));
      } else {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(path, JSON.stringify(profile));
      }
      session.disconnect();
    },
  };
}

const TARGET_THROUGHPUT = 5_000;
const TARGET_P99_MS = 20;
/** Rate limits far above the offered load: the benchmark measures ingest, not the limiter. */
const NO_LIMIT = 1e9;

type StoreName = 'pglite-memory' | 'pglite-disk' | 'postgres';
const STORE_LABEL: Record<StoreName, string> = {
  'pglite-memory': 'PGlite, in memory',
  'pglite-disk': 'PGlite, on disk',
  postgres: 'PostgreSQL 127.0.0.1',
};

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');

// ---------------------------------------------------------------- pinning

/** Counted before pinning: afterwards this process sees only its own core. */
const CORES = availableParallelism();

function canPin(): boolean {
  if (args['no-pin'] || CORES < 2) return false;
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const PIN = canPin();
/**
 * The collector as `sketchwatch collector` runs it (singleThreadedGc.ts): with one core, V8's
 * GC on the main thread only — so this process runs itself again as node --single-threaded-gc
 * (SKETCHWATCH_SINGLE_THREADED_GC=off: V8's default, for comparison).
 */
const relaunched = await relaunchForGc({ cores: PIN ? args['collector-cores'].split(',').length : CORES });
if (relaunched !== null) process.exit(relaunched);
if (PIN) {
  // -a: every thread of this process (V8's GC and compiler threads, libuv's pool) on core 0
  // (--collector-cores 0,1: on both, the second shared with the load generator — for what the
  // collector does with a core more, e.g. its fold worker; not the issue's one-core figure).
  execFileSync('taskset', ['-a', '-p', '-c', args['collector-cores'], String(process.pid)], { stdio: 'ignore' });
}

// ---------------------------------------------------------------- load generator

class LoadGen {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(r: RunResult): void; reject(e: Error): void }>();

  constructor() {
    const node = [process.execPath, '--import', 'tsx', join(ROOT, 'bench', 'loadgen.ts')];
    const [cmd, ...rest] = PIN ? ['taskset', '-c', '1', ...node] : node;
    this.child = spawn(cmd, rest, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (m: { type: string; id: number; result?: RunResult; error?: string }) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.error) w.reject(new Error(`load generator: ${m.error}`));
      else w.resolve(m.result!);
    });
    this.child.on('exit', (code) => {
      for (const w of this.waiting.values()) w.reject(new Error(`load generator exited with ${code}`));
      this.waiting.clear();
    });
  }

  run(spec: RunSpec): Promise<RunResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child.send({ type: 'run', id, spec });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ type: 'exit' });
    await exited;
  }
}

// ---------------------------------------------------------------- collector side

interface MetricsSnapshot {
  mainCpuUs: number;
  flushSum: number;
  flushCount: number;
  applied: number;
  detectorSum: number;
  detectorCount: number;
  checkpointSum: number;
  checkpointCount: number;
  partialRows: number;
  cpuUs: number;
  wallMs: number;
  elu: EventLoopUtilization;
  /** Event-loop delay since the previous snapshot (ms). */
  delay: { p99: number; max: number };
  /** Garbage-collection pauses of this process so far (cumulative) and the longest since the previous snapshot. */
  gc: GcTotals;
}

interface GcTotals {
  majorCount: number;
  /** Main-thread pauses of major GCs: their final pauses and their incremental-marking steps. */
  majorMs: number;
  minorMs: number;
  /** Longest single pause of any kind since the previous snapshot (ms). */
  maxMs: number;
}

/**
 * Every GC pause on the collector's thread (PerformanceObserver 'gc' entries: a scavenge, a
 * major GC's final pause, an incremental-marking step), so each phase can say how much of its
 * tail the collector's garbage could account for.
 */
const gcTotals: GcTotals = { majorCount: 0, majorMs: 0, minorMs: 0, maxMs: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind;
    if (kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
      gcTotals.majorCount++;
      gcTotals.majorMs += e.duration;
    } else if (kind === perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL) {
      gcTotals.majorMs += e.duration;
    } else if (kind === perfConstants.NODE_PERFORMANCE_GC_MINOR) {
      gcTotals.minorMs += e.duration;
    }
    if (e.duration > gcTotals.maxMs) gcTotals.maxMs = e.duration;
  }
}).observe({ entryTypes: ['gc'] });

/**
 * The collector's event-loop delay (how late timers run: what a request waits behind a long
 * task), reset at each snapshot; 10 ms resolution is the finest that costs nothing measurable.
 */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

async function snapshot(url: string): Promise<MetricsSnapshot> {
  const delay = { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 };
  loopDelay.reset();
  const gc = { ...gcTotals };
  gcTotals.maxMs = 0;
  const text = await (await fetch(`${url}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
  const cpu = process.cpuUsage();
  return {
    mainCpuUs: mainThreadCpuUs(),
    flushSum: value(/^sketchwatch_flush_seconds_sum (\S+)$/m),
    flushCount: value(/^sketchwatch_flush_seconds_count (\S+)$/m),
    applied: value(/^sketchwatch_ingest_batches_total\{outcome="applied"\} (\S+)$/m),
    detectorSum: value(/^sketchwatch_detector_seconds_sum (\S+)$/m),
    detectorCount: value(/^sketchwatch_detector_seconds_count (\S+)$/m),
    checkpointSum: value(/^sketchwatch_checkpoint_seconds_sum (\S+)$/m),
    checkpointCount: value(/^sketchwatch_checkpoint_seconds_count (\S+)$/m),
    partialRows: value(/^sketchwatch_store_partial_rows (\S+)$/m),
    cpuUs: cpu.user + cpu.system,
    wallMs: performance.now(),
    elu: performance.eventLoopUtilization(),
    delay,
    gc,
  };
}

/**
 * CPU time of this process's main thread (µs; Linux: /proc, in clock ticks), NaN elsewhere —
 * told apart from the rest (the fold worker, GC helpers, libuv's pool, PGlite's nothing: WASM
 * runs on the main thread).
 */
function mainThreadCpuUs(): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
const CLOCK_TICKS = 100; // USER_HZ on Linux

interface PhaseStats {
  flushes: number;
  batchesPerFlush: number;
  meanFlushMs: number;
  /** Share of wall time spent inside group commits (they run one at a time). */
  flushBusy: number;
  detectorPasses: number;
  meanDetectorMs: number;
  checkpoints: number;
  meanCheckpointMs: number;
  /** This process's CPU (all threads) over wall time; ~1.0 = its core is saturated. */
  cpu: number;
  /** Its main thread's share of wall time (the rest of `cpu`: the fold worker and helpers). */
  mainCpu: number;
  /** Main-thread event-loop utilization. */
  elu: number;
  /** Event-loop delay over the phase (ms): long tasks, not queueing. */
  delay: { p99: number; max: number };
  partialRows: number;
  /** GC over the phase: major GCs, their pauses (final + incremental steps), scavenges, longest pause (ms). */
  gc: { major: number; majorMs: number; minorMs: number; maxMs: number };
}

function phaseStats(a: MetricsSnapshot, b: MetricsSnapshot): PhaseStats {
  const flushes = b.flushCount - a.flushCount;
  const wall = b.wallMs - a.wallMs;
  const detectorPasses = b.detectorCount - a.detectorCount;
  return {
    flushes,
    batchesPerFlush: flushes ? (b.applied - a.applied) / flushes : 0,
    meanFlushMs: flushes ? ((b.flushSum - a.flushSum) * 1000) / flushes : 0,
    flushBusy: ((b.flushSum - a.flushSum) * 1000) / wall,
    detectorPasses,
    meanDetectorMs: detectorPasses ? ((b.detectorSum - a.detectorSum) * 1000) / detectorPasses : 0,
    checkpoints: b.checkpointCount - a.checkpointCount,
    meanCheckpointMs: b.checkpointCount > a.checkpointCount ? ((b.checkpointSum - a.checkpointSum) * 1000) / (b.checkpointCount - a.checkpointCount) : 0,
    cpu: (b.cpuUs - a.cpuUs) / 1000 / wall,
    mainCpu: (b.mainCpuUs - a.mainCpuUs) / 1000 / wall,
    elu: performance.eventLoopUtilization(b.elu, a.elu).utilization,
    delay: b.delay,
    partialRows: b.partialRows,
    gc: {
      major: b.gc.majorCount - a.gc.majorCount,
      majorMs: b.gc.majorMs - a.gc.majorMs,
      minorMs: b.gc.minorMs - a.gc.minorMs,
      maxMs: b.gc.maxMs,
    },
  };
}

interface StoreReport {
  store: StoreName;
  throughput: Array<{ result: RunResult; rate: number; stats: PhaseStats }>;
  medianRate: number;
  fixed: { result: RunResult; stats: PhaseStats } | null;
  meanBytes: number;
  predictionsAcked: number;
  /** Predictions in every batch sent, answered or not. */
  predictionsSent: number;
  predictionsStored: number;
  appliedAcked: number;
  appliedMetric: number;
  errors: number;
  skipped?: string;
}

async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`create database ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`drop database if exists ${name} with (force)`);
  } finally {
    await client.end();
  }
}

async function benchStore(store: StoreName, loadgen: LoadGen, windowStart: number): Promise<StoreReport> {
  const report: StoreReport = {
    store, throughput: [], medianRate: NaN, fixed: null, meanBytes: NaN,
    predictionsAcked: 0, predictionsSent: 0, predictionsStored: 0, appliedAcked: 0, appliedMetric: 0, errors: 0,
  };
  let dataDir: string | undefined;
  let databaseUrl: string | undefined;
  const dbName = `sketchwatch_bench_${process.pid}`;
  if (store === 'pglite-disk') dataDir = mkdtempSync(join(tmpdir(), 'sketchwatch-bench-'));
  if (store === 'postgres') {
    try {
      databaseUrl = await createDatabase(args.pg, dbName);
    } catch (e) {
      report.skipped = `PostgreSQL unavailable at ${args.pg}: ${(e as Error).message}`;
      return report;
    }
  }
  let collector: Collector | null = null;
  try {
    collector = await startCollector({
      port: 0, adminToken: ADMIN_TOKEN, dataDir, databaseUrl, flushIntervalMs: FLUSH_MS, detectIntervalMs: DETECT_MS,
      agentRate: NO_LIMIT, agentBurst: NO_LIMIT, ipRate: NO_LIMIT, ipBurst: NO_LIMIT,
    });
    const url = collector.url;
    const admin = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };
    const created = await fetch(`${url}/v1/projects`, { method: 'POST', headers: admin, body: JSON.stringify({ id: 'bench' }) });
    if (created.status !== 200) throw new Error(`creating the project: ${created.status} ${await created.text()}`);
    const { ingestKey } = (await created.json()) as { ingestKey: string };

    let first = 0;
    const spec = (mode: RunSpec['mode'], count: number, extra: Partial<RunSpec>): RunSpec => {
      const s: RunSpec = {
        url, ingestKey, windowStart, windowLength: WINDOW_MS, agents: AGENTS, first, count, mode,
        maxMs: THROUGHPUT_MAX_MS, drainMs: DRAIN_MS, seed: SEED, ...extra,
      };
      first += count;
      return s;
    };
    const account = (r: RunResult) => {
      report.predictionsAcked += r.predictionsApplied;
      report.predictionsSent += r.predictionsSent;
      report.appliedAcked += r.applied;
      report.errors += r.errors;
    };

    // Warm-up: JIT, connections, the agents' dedupe rows created. Counted in the check.
    account(await loadgen.run(spec('throughput', WARMUP_BATCHES, { concurrency: CONCURRENCY, maxMs: 10_000 })));

    for (let i = 0; i < RUNS; i++) {
      const before = await snapshot(url);
      const profiler = PROFILE_DIR ? await startProfile() : null;
      const result = await loadgen.run(spec('throughput', THROUGHPUT_BATCHES, { concurrency: CONCURRENCY }));
      if (profiler) await profiler.stop(join(PROFILE_DIR!, `${store}-throughput-${i + 1}.cpuprofile`));
      const stats = phaseStats(before, await snapshot(url));
      account(result);
      report.meanBytes = result.meanBytes;
      report.throughput.push({ result, rate: result.ok / (result.elapsedMs / 1000), stats });
      process.stderr.write(`  ${store}: throughput run ${i + 1}/${RUNS}: ${fmt(result.ok / (result.elapsedMs / 1000))} beacons/s\n`);
    }
    const rates = report.throughput.map((t) => t.rate).sort((a, b) => a - b);
    report.medianRate = rates[Math.floor(rates.length / 2)];

    // Let group commits and the detector settle so the latency run starts from a quiet server.
    await new Promise((r) => setTimeout(r, 2_000));
    const before = await snapshot(url);
    const profiler = PROFILE_DIR ? await startProfile() : null;
    const result = await loadgen.run(spec('fixed', FIXED_RATE * FIXED_SECONDS, { rate: FIXED_RATE, maxMs: FIXED_SECONDS * 1000 + 1_000 }));
    if (profiler) await profiler.stop(join(PROFILE_DIR!, `${store}-fixed.cpuprofile`));
    report.fixed = { result, stats: phaseStats(before, await snapshot(url)) };
    account(result);
    process.stderr.write(`  ${store}: fixed ${FIXED_RATE}/s: p99 ${result.latency.p99.toFixed(1)} ms, ${result.errors} errors\n`);

    // Everything acknowledged must be in the store: the window's prediction count.
    const windows = await fetch(`${url}/v1/projects/bench/models/${MODEL}/windows?from=${windowStart}&to=${windowStart + WINDOW_MS}`, { headers: admin });
    if (windows.status !== 200) throw new Error(`windows query: ${windows.status} ${await windows.text()}`);
    const body = (await windows.json()) as { windows: Array<{ predictions: number }> };
    report.predictionsStored = body.windows.reduce((s, w) => s + w.predictions, 0);
    report.appliedMetric = (await snapshot(url)).applied;
  } finally {
    await collector?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (databaseUrl) await dropDatabase(args.pg, dbName);
  }
  return report;
}

// ---------------------------------------------------------------- report

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/**
 * No data lost. With every request answered the collector must hold exactly the acknowledged
 * predictions (and have applied exactly the acknowledged batches). A request that timed out or
 * was abandoned may still have been committed (the collector answers after COMMIT; the client
 * gave up first), so then only acked ≤ stored ≤ sent can be checked.
 */
function verified(r: StoreReport): { ok: boolean; text: string } {
  if (r.errors === 0) {
    const ok = r.predictionsStored === r.predictionsAcked && r.appliedMetric === r.appliedAcked;
    return { ok, text: ok ? `yes (${fmt(r.predictionsStored)})` : `NO: ${fmt(r.predictionsStored)} stored vs ${fmt(r.predictionsAcked)} acked` };
  }
  const ok = r.predictionsStored >= r.predictionsAcked && r.predictionsStored <= r.predictionsSent;
  return { ok, text: `${ok ? 'within' : 'NO:'} acked ${fmt(r.predictionsAcked)} ≤ stored ${fmt(r.predictionsStored)} ≤ sent ${fmt(r.predictionsSent)}` };
}

function print(reports: StoreReport[], totalMs: number): boolean {
  const out: string[] = [];
  const done = reports.filter((r) => !r.skipped);
  out.push('', `sketchwatch collector benchmark${QUICK ? ' (--quick)' : ''}`);
  out.push(`node ${process.version}, ${CORES} cores; collector ${PIN ? `pinned to core ${args['collector-cores']}, load generator to core 1` : 'not pinned'}; ` +
    `group commit every ${FLUSH_MS ?? 20} ms${FLUSH_MS === undefined ? ' (default)' : ''}` +
    `; detector every ${fmt(DETECT_MS ?? 2000)} ms${DETECT_MS === undefined ? ' (default)' : ' (NOT the default)'}` +
    // What the collector's foldWorker 'auto' sees (the cores this process may run on).
    `; merges ${availableParallelism() >= 2 ? 'on the fold worker thread' : 'on the main thread (one core: no fold worker)'}` +
    `; V8 GC ${singleThreadedGc() ? 'on the main thread only (--single-threaded-gc)' : 'with background threads (V8 default)'}`);
  out.push(`batches: ${AGENTS.toLocaleString('en-US')} agents, 1 window, 6 segments, 32 numeric inputs + class + 5 probabilities + latency, ` +
    `50–200 predictions; mean ${fmt(done[0]?.meanBytes ?? NaN)} bytes`);
  out.push(`throughput: ${fmt(THROUGHPUT_BATCHES)} batches × ${RUNS} run${RUNS > 1 ? 's' : ''}, ${CONCURRENCY} in flight (median)` +
    `; latency: open loop ${fmt(FIXED_RATE)}/s for ${FIXED_SECONDS} s`);
  out.push('');
  out.push(table(
    ['store', 'beacons/s (runs)', 'median', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'errors', 'stored = acked'],
    reports.map((r) => r.skipped ? [STORE_LABEL[r.store], r.skipped, '', '', '', '', '', '', ''] : [
      STORE_LABEL[r.store] + (r.store === 'postgres' ? ' *' : ''),
      r.throughput.map((t) => fmt(t.rate) + (t.result.truncated ? '!' : '')).join(' / '),
      fmt(r.medianRate),
      fmt(r.fixed!.result.latency.p50, 1),
      fmt(r.fixed!.result.latency.p95, 1),
      fmt(r.fixed!.result.latency.p99, 1),
      fmt(r.fixed!.result.latency.max, 1),
      String(r.errors),
      verified(r).text,
    ]),
  ));
  if (done.some((r) => r.store === 'postgres')) out.push('* the PostgreSQL server is separate processes (not pinned; its CPU is not in "one core")');
  if (done.some((r) => r.throughput.some((t) => t.result.truncated))) out.push(`! cut short at ${THROUGHPUT_MAX_MS / 1000} s`);
  out.push('');
  out.push('group commits and checkpoints (GET /metrics, per phase) and the collector process:');
  const rows: string[][] = [];
  for (const r of done) {
    const phases: Array<[string, PhaseStats, RunResult]> = [
      ...r.throughput.map((t, i): [string, PhaseStats, RunResult] => [`throughput ${i + 1}`, t.stats, t.result]),
      [`${fmt(FIXED_RATE)}/s fixed`, r.fixed!.stats, r.fixed!.result],
    ];
    for (const [name, s, res] of phases) {
      rows.push([
        `${STORE_LABEL[r.store]}: ${name}`, fmt(s.flushes), fmt(s.batchesPerFlush, 1), fmt(s.meanFlushMs, 1), `${fmt(100 * s.flushBusy)}%`,
        `${fmt(s.checkpoints)} × ${fmt(s.meanCheckpointMs, 1)} ms`, `${fmt(s.detectorPasses)} × ${fmt(s.meanDetectorMs)} ms`, `${fmt(100 * s.cpu)}% / ${fmt(100 * s.mainCpu)}%`, `${fmt(100 * s.elu)}%`, `${fmt(s.delay.p99)} / ${fmt(s.delay.max)}`,
        `${fmt(s.gc.major)} × ${fmt(s.gc.major ? s.gc.majorMs / s.gc.major : 0, 1)} / ${fmt(s.gc.minorMs)} / ${fmt(s.gc.maxMs, 1)}`,
        `${fmt(res.latency.p50, 1)} / ${fmt(res.latency.p99, 1)}`,
      ]);
    }
  }
  out.push(table(['phase', 'flushes', 'batches/flush', 'ms/flush', 'in flush', 'checkpoints', 'detector passes', 'CPU / main', 'loop busy', 'loop delay p99/max ms', 'GC major × ms / minor ms / max', 'p50/p99 ms'], rows));
  out.push('(flushes and ms/flush: sketchwatch_flush_seconds count and sum, a group made durable; checkpoints: the fold written to the store; CPU: the collector process, all threads, over wall time;');
  out.push(' GC: major collections × their main-thread pause each (final pause + incremental-marking steps), all scavenges\' pauses, the longest single pause — this process, which is the collector)');
  out.push('');
  let ok = true;
  for (const r of done) {
    const label = STORE_LABEL[r.store].padEnd(22);
    const tMet = r.medianRate >= TARGET_THROUGHPUT;
    out.push(`${tMet ? 'met   ' : 'MISSED'}  ${label} throughput ${fmt(r.medianRate)} beacons/s (target ≥ ${fmt(TARGET_THROUGHPUT)})`);
    const f = r.fixed!.result;
    const lMet = f.latency.p99 <= TARGET_P99_MS && r.fixed!.result.errors === 0 && !f.truncated;
    // Below the target's rate (--rate), a p99 says nothing of the target.
    const verdict = FIXED_RATE < 1_000 ? 'n/a   ' : lMet ? 'met   ' : 'MISSED';
    out.push(`${verdict}  ${label} p99 at ${fmt(FIXED_RATE)}/s ${fmt(f.latency.p99, 1)} ms, ${f.errors} errors` +
      `${Object.keys(f.errorKinds).length ? ` ${JSON.stringify(f.errorKinds)}` : ''} (target ≤ ${TARGET_P99_MS} ms, 0 errors; generator max send lag ${fmt(f.maxSendLagMs, 1)} ms, its own loop delay p99 / max ${fmt(f.generatorDelay.p99, 1)} / ${fmt(f.generatorDelay.max, 1)} ms)`);
    const vMet = verified(r).ok;
    out.push(`${vMet ? 'met   ' : 'FAILED'}  ${label} no data lost: ${fmt(r.predictionsStored)} predictions stored, ${fmt(r.predictionsAcked)} acknowledged` +
      `${r.errors ? ` (${fmt(r.predictionsSent)} sent, ${r.errors} unanswered)` : ''}; ` +
      `${fmt(r.appliedMetric)} batches applied by the collector, ${fmt(r.appliedAcked)} acknowledged as applied`);
    ok &&= vMet;
  }
  for (const r of reports) if (r.skipped) out.push(`SKIPPED ${STORE_LABEL[r.store]}: ${r.skipped}`);
  out.push('', `total ${fmt(totalMs / 1000)} s`);
  process.stdout.write(`${out.join('\n')}\n`);
  return ok;
}

// ---------------------------------------------------------------- main

const stores = args.stores.split(',').map((s) => s.trim()) as StoreName[];
for (const s of stores) if (!(s in STORE_LABEL)) throw new Error(`unknown store ${s} (pglite-memory, pglite-disk, postgres)`);
const started = performance.now();
// One window for the whole benchmark: aligned and recent, as an agent's current window is.
const windowStart = WindowProfile.alignedStart(Date.now(), WINDOW_MS);
const loadgen = new LoadGen();
const reports: StoreReport[] = [];
try {
  for (const store of stores) {
    process.stderr.write(`${STORE_LABEL[store]} …\n`);
    reports.push(await benchStore(store, loadgen, windowStart));
  }
} finally {
  await loadgen.stop();
}
// A benchmark that loses data is wrong: fail loudly.
if (!print(reports, performance.now() - started)) process.exitCode = 1;
