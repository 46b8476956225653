/**
 * Load generator for bench/collector.ts: a second process that sends pre-encoded ingest batches
 * to a collector on 127.0.0.1, so the collector's core spends nothing on building load.
 *
 * Started by bench/collector.ts with an IPC channel (child_process), never on its own. Messages:
 *   { type: 'run', id, spec: RunSpec }  →  { type: 'result', id, result: RunResult }
 *   { type: 'exit' }                    →  the process exits
 * Each run encodes its batches first (reported as encodeMs), then times only the sending.
 *
 * Batch j of a run (j counted across all runs against one collector, from `spec.first`) comes
 * from agent j mod agents with sequence floor(j / agents): every agent's sequences increase by
 * one per batch, as a fleet's do, and the collector's dedupe state is read and written for
 * 2,000 distinct agents.
 */
import { setMaxListeners } from 'node:events';
import { Agent, request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { encodeBatch, EVENTS, WindowProfile, decodeBatch } from '../src/sketch/index.js';
import { rng } from './rng.js';

export interface RunSpec {
  url: string;
  ingestKey: string;
  /** Window start shared by every batch (UTC-aligned, recent) and its length. */
  windowStart: number;
  windowLength: number;
  agents: number;
  /** First global batch index of this run (see the header comment) and how many to send. */
  first: number;
  count: number;
  mode: 'throughput' | 'fixed';
  /** throughput: requests kept in flight. */
  concurrency?: number;
  /** fixed: requests per second, sent on schedule whatever the responses (open loop). */
  rate?: number;
  /**
   * fixed: most requests outstanding at once; a request due beyond that is not sent and counts
   * as an error ('backlog'): it would wait seconds anyway, and the bound keeps an overloaded
   * collector from piling up hundreds of MB of queued bodies here.
   */
  maxOutstanding?: number;
  /** Hard stop for sending, ms after the first send: loops end by themselves. */
  maxMs: number;
  /** After the last send, how long answers are awaited before the rest are abandoned. */
  drainMs: number;
  seed: number;
}

export interface LatencySummary {
  p50: number;
  p95: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface RunResult {
  encodeMs: number;
  meanBytes: number;
  /** Requests started, answered 200, and the 200s that said 'applied' / 'duplicate'. */
  sent: number;
  ok: number;
  applied: number;
  duplicates: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Predictions summarized by the batches acknowledged as applied. */
  predictionsApplied: number;
  predictionsSent: number;
  /** First send to last response. */
  elapsedMs: number;
  /** Latency of answered requests (ms, send to end of response), errors excluded. */
  latency: LatencySummary;
  /** fixed: how far behind schedule the generator itself ever sent (shows it kept up). */
  maxSendLagMs: number;
  /**
   * The generator's own event-loop delay over the run (ms beyond the 2 ms sampling interval):
   * a response it reads late is counted late, so this bounds how much of the latency tail is
   * the generator's rather than the collector's.
   */
  generatorDelay: { p99: number; max: number };
  /** True when maxMs cut the run short. */
  truncated: boolean;
  /** Requests abandoned unanswered at the drain deadline (counted in errors as 'abandoned'). */
  abandoned: number;
}

// ---------------------------------------------------------------- data


function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

const CLASSES = ['cat', 'dog', 'bird', 'fish', 'other'];
const VERSIONS = ['1.4.0', '1.5.0'];
const BACKENDS = ['webgl', 'wasm', 'cpu'];
/** 2 versions × 3 backends: six segments, so a flush appends several partial rows. */
export const SEGMENTS = VERSIONS.length * BACKENDS.length;
/** Distinct window profiles per segment; batches cycle through them. */
const POOL_PER_SEGMENT = 64;
export const MODEL = 'bench';

/**
 * 32 numeric inputs with the shapes real tabular features have: Gaussian, skewed, bounded,
 * discrete, heavy-tailed, two-valued, with missing/NaN/infinite values, negative-only and
 * mixed-sign, large offsets. Digest sizes (and so batch sizes and decode cost) depend on them.
 */
const FEATURES: Array<[string, (r: () => number, i: number) => number | null]> = [
  ['age', (r) => 38 + 12 * normal(r)],
  ['height_cm', (r) => 170 + 9 * normal(r)],
  ['score_z', (r) => normal(r)],
  ['temp_c', (r) => 14 + 8 * normal(r)],
  ['balance_delta', (r) => 200 * normal(r)],
  ['pixel_mean', (r) => 0.45 + 0.12 * normal(r)],
  ['income', (r) => Math.exp(10.5 + 0.7 * normal(r))],
  ['session_s', (r) => Math.exp(4 + 1.2 * normal(r))],
  ['file_kb', (r) => Math.exp(3 + 2 * normal(r))],
  ['dwell_ms', (r) => Math.exp(6 + 0.5 * normal(r))],
  ['ratio', (r) => r()],
  ['angle_deg', (r) => 360 * r() - 180],
  ['hour', (r) => Math.floor(24 * r())],
  ['gap_s', (r) => -30 * Math.log(1 - r())],
  ['wait_ms', (r) => -5 * Math.log(1 - r())],
  ['inter_event_ms', (r) => -800 * Math.log(1 - r())],
  ['bimodal_a', (r) => (r() < 0.4 ? -2 : 3) + 0.5 * normal(r)],
  ['bimodal_b', (r) => (r() < 0.8 ? 10 : 50) + 2 * normal(r)],
  ['clicks', (r) => Math.floor(-3 * Math.log(1 - r()))],
  ['items', (r) => 1 + Math.floor(-1.5 * Math.log(1 - r()))],
  ['retries', (r) => (r() < 0.9 ? 0 : 1 + Math.floor(3 * r()))],
  ['is_mobile', (r) => (r() < 0.62 ? 1 : 0)],
  ['has_account', (r) => (r() < 0.3 ? 1 : 0)],
  ['pareto_spend', (r) => 5 / Math.pow(1 - r(), 1 / 1.3)],
  ['optional_zip_dist', (r) => (r() < 0.03 ? null : Math.exp(2 + normal(r)))],
  ['optional_rating', (r) => (r() < 0.1 ? null : 1 + Math.floor(5 * r()))],
  ['sensor_raw', (r, i) => (i % 173 === 7 ? NaN : i % 211 === 3 ? Infinity : 512 + 40 * normal(r))],
  ['loss_neg', (r) => -Math.exp(normal(r)) - 0.01],
  ['pnl', (r) => (r() < 0.5 ? -1 : 1) * Math.exp(1.5 * normal(r))],
  ['grade', (r) => [1, 2, 2, 3, 3, 3, 4][Math.floor(7 * r())]],
  ['battery_pct', (r) => Math.min(100, Math.max(0, 70 + 25 * normal(r)))],
  ['epoch_s', (r) => 1_700_000_000 + Math.floor(86_400 * r())],
];

/** One agent's window: `rows` predictions (50–200, as a 5-minute window or a flush holds). */
export function buildWindow(r: () => number, start: number, length: number, segment: number): WindowProfile {
  const w = new WindowProfile(start, length, {
    model: MODEL,
    version: VERSIONS[segment % VERSIONS.length],
    backend: BACKENDS[segment % BACKENDS.length],
  });
  const rows = 50 + Math.floor(151 * r());
  const probs = new Array<number>(CLASSES.length);
  for (let i = 0; i < rows; i++) {
    w.predictions++;
    for (const [name, gen] of FEATURES) w.input(name).add(gen(r, i));
    // Softmax of noisy logits: skewed, realistic-looking class probabilities.
    let sum = 0;
    let best = 0;
    for (let c = 0; c < CLASSES.length; c++) {
      probs[c] = Math.exp((c === 0 ? 1 : 0) + 1.5 * normal(r));
      sum += probs[c];
      if (probs[c] > probs[best]) best = c;
    }
    for (let c = 0; c < CLASSES.length; c++) w.output(`p_${CLASSES[c]}`).add(probs[c] / sum);
    w.output('class', 'classes', { classes: CLASSES }).addLabel(best);
    w.latency.add(Math.exp(1.2 + 0.6 * normal(r)) + (r() < 0.01 ? 40 : 0));
  }
  if (r() < 0.2) w.event(EVENTS.predictError, 1 + Math.floor(3 * r()));
  return w;
}

interface PoolEntry {
  /** The batch's window field exactly as encodeBatch writes it (tag, length, window). */
  windowField: Uint8Array;
  predictions: number;
}

let pool: PoolEntry[][] | null = null;
let poolKey = '';

/**
 * The window fields, encoded once. A batch's bytes are its header fields (agent, sequence, send
 * time — encoded per batch) followed by its window field: the wire format is a sequence of
 * fields, so encodeBatch(header + [w]) = encodeBatch(header + []) ++ field(w). That keeps
 * encoding 30,000–60,000 distinct batches cheap (a full encode costs ~1 ms); checked below.
 */
function windowPool(spec: RunSpec): PoolEntry[][] {
  const key = `${spec.seed}/${spec.windowStart}/${spec.windowLength}`;
  if (pool && poolKey === key) return pool;
  const r = rng(spec.seed);
  const empty = encodeBatch({ agentId: 'x', sequence: 0, sentAt: 0, windows: [] });
  pool = [];
  for (let s = 0; s < SEGMENTS; s++) {
    const entries: PoolEntry[] = [];
    for (let k = 0; k < POOL_PER_SEGMENT; k++) {
      const w = buildWindow(r, spec.windowStart, spec.windowLength, s);
      const full = encodeBatch({ agentId: 'x', sequence: 0, sentAt: 0, windows: [w] });
      entries.push({ windowField: full.slice(empty.length), predictions: w.predictions });
    }
    pool.push(entries);
  }
  poolKey = key;
  return pool;
}

interface Prepared {
  header: Uint8Array;
  entry: PoolEntry;
}

function prepare(spec: RunSpec, sentAtBase: number, msPerBatch: number): Prepared[] {
  const p = windowPool(spec);
  const out: Prepared[] = new Array(spec.count);
  for (let i = 0; i < spec.count; i++) {
    const j = spec.first + i;
    const agent = j % spec.agents;
    const sequence = Math.floor(j / spec.agents);
    // Mixing j spreads each agent's batches over the pool (not the same window every time).
    const entry = p[agent % SEGMENTS][(Math.imul(j, 2654435761) >>> 0) % POOL_PER_SEGMENT];
    // sentAt is when the batch is due to be sent, so the collector sees clocks in step (beyond
    // its 60 s tolerance it would "correct" the windows, work a real fleet rarely causes).
    const sentAt = Math.round(sentAtBase + i * msPerBatch);
    const header = encodeBatch({ agentId: `agent-${String(agent).padStart(5, '0')}`, sequence, sentAt, windows: [] });
    out[i] = { header, entry };
  }
  // The splice must give exactly what encodeBatch gives; check a few in full.
  for (const i of [0, Math.floor(spec.count / 2), spec.count - 1]) {
    if (i < 0 || i >= spec.count) continue;
    const b = decodeBatch(concat(out[i]));
    const j = spec.first + i;
    if (b.sequence !== Math.floor(j / spec.agents) || b.windows.length !== 1 || b.windows[0].predictions !== out[i].entry.predictions) {
      throw new Error(`spliced batch ${j} does not decode to what was meant`);
    }
  }
  return out;
}

/** Whole batches as sent (for measuring pieces of the collector outside a run). */
export function sampleBatches(spec: RunSpec): Buffer[] {
  return prepare(spec, Date.now(), 0).map(concat);
}

function concat(p: Prepared): Buffer {
  // A 12 KB memcpy per request (the parts are encoded already); cheaper than holding 60,000
  // whole batches (~700 MB) in memory.
  return Buffer.concat([p.header, p.entry.windowField]);
}

// ---------------------------------------------------------------- sending

const GENERATOR_DELAY_RESOLUTION_MS = 2;

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

export async function run(spec: RunSpec): Promise<RunResult> {
  const encodeStarted = performance.now();
  const rate = spec.mode === 'fixed' ? spec.rate ?? 1000 : 0;
  // Throughput runs are assumed to go at about the 5,000/s target for the send times.
  const msPerBatch = spec.mode === 'fixed' ? 1000 / rate : 0.2;
  const batches = prepare(spec, Date.now() + 200, msPerBatch);
  const encodeMs = performance.now() - encodeStarted;
  let bytes = 0;
  for (const b of batches) bytes += b.header.length + b.entry.windowField.length;
  let predictionsSent = 0;

  const target = new URL(spec.url);
  const path = `/v1/ingest?key=${encodeURIComponent(spec.ingestKey)}`;
  // A fresh agent per run: sockets idle between runs would outlive the server's 5 s keep-alive.
  const agent = new Agent({ keepAlive: true, maxSockets: spec.mode === 'throughput' ? spec.concurrency ?? 64 : 512, scheduling: 'fifo' });
  const latencies = new Float64Array(spec.count);
  const result: RunResult = {
    encodeMs, meanBytes: bytes / Math.max(1, spec.count), sent: 0, ok: 0, applied: 0, duplicates: 0, errors: 0, errorKinds: {},
    predictionsApplied: 0, predictionsSent: 0, elapsedMs: 0, latency: { p50: NaN, p95: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN },
    maxSendLagMs: 0, generatorDelay: { p99: NaN, max: NaN }, truncated: false, abandoned: 0,
  };
  const ownDelay = monitorEventLoopDelay({ resolution: GENERATOR_DELAY_RESOLUTION_MS });
  ownDelay.enable();
  // Aborts whatever is still unanswered (queued in the agent or in flight) at the drain deadline.
  const abort = new AbortController();
  // One listener per request on the one signal: not a leak.
  setMaxListeners(0, abort.signal);
  /** Set when the run is over: late answers no longer change the counts. */
  let closed = false;
  const fail = (kind: string) => {
    result.errors++;
    result.errorKinds[kind] = (result.errorKinds[kind] ?? 0) + 1;
  };

  /** Sends batch i; resolves when it is answered or has failed (never rejects). */
  const send = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const body = concat(batches[i]);
      predictionsSent += batches[i].entry.predictions;
      result.sent++;
      const t0 = performance.now();
      let done = false;
      const finish = (kind: string | null, status?: string) => {
        if (done || closed) return;
        done = true;
        if (kind !== null) fail(kind);
        else {
          latencies[result.ok++] = performance.now() - t0;
          if (status === 'applied') {
            result.applied++;
            result.predictionsApplied += batches[i].entry.predictions;
          } else if (status === 'duplicate') result.duplicates++;
        }
        resolve();
      };
      const req = request({
        agent, host: target.hostname, port: target.port, path, method: 'POST', signal: abort.signal,
        headers: { 'content-type': 'application/octet-stream', 'content-length': body.length },
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return finish(`http_${res.statusCode}`);
          try {
            finish(null, (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { status: string }).status);
          } catch {
            finish('bad_response');
          }
        });
        res.on('error', () => finish('response_error'));
      });
      // Bounded: a request that takes over 10 s is an error, not a wait forever.
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
      req.on('error', (e: Error & { code?: string }) =>
        finish(e.message === 'timeout' ? 'timeout' : e.code === 'ABORT_ERR' ? 'abandoned' : e.code ?? 'request_error'));
      req.end(body);
    });

  const started = performance.now();
  const deadline = started + spec.maxMs;
  // Closed loop: in-flight requests are awaited by the workers; open loop: by the drain below.
  const drain = (pending: Promise<unknown>) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        abort.abort();
        resolve();
      }, Math.max(0, deadline - performance.now()) + spec.drainMs);
    });
    return Promise.race([pending, cut]).finally(() => clearTimeout(timer));
  };
  if (spec.mode === 'throughput') {
    // Closed loop with `concurrency` requests in flight: the collector's maximum rate.
    let next = 0;
    const worker = async () => {
      while (next < spec.count && performance.now() < deadline) await send(next++);
    };
    await drain(Promise.all(Array.from({ length: spec.concurrency ?? 64 }, worker)));
    result.truncated = next < spec.count;
  } else {
    // Open loop: request i goes out at started + i/rate whatever the earlier ones are doing, so
    // a stalled collector shows as latency (no coordinated omission). Timers fire every ~1 ms;
    // each tick sends whatever is due.
    const inFlight: Array<Promise<void>> = [];
    const maxOutstanding = spec.maxOutstanding ?? 2_000;
    await new Promise<void>((resolve) => {
      let next = 0;
      const tick = () => {
        const now = performance.now();
        const due = Math.min(spec.count, Math.floor(((now - started) * rate) / 1000) + 1);
        while (next < due) {
          result.maxSendLagMs = Math.max(result.maxSendLagMs, now - (started + (next * 1000) / rate));
          if (result.sent - result.ok - result.errors >= maxOutstanding) {
            next++;
            result.sent++;
            predictionsSent += batches[next - 1].entry.predictions;
            fail('backlog');
            continue;
          }
          inFlight.push(send(next++));
        }
        if (next >= spec.count || now >= deadline) {
          result.truncated = next < spec.count;
          resolve();
        } else setTimeout(tick, 1);
      };
      tick();
    });
    await drain(Promise.all(inFlight));
  }
  // Whatever is unanswered now (aborted, or still queued in the agent) is abandoned: an error.
  closed = true;
  result.abandoned = result.sent - result.ok - result.errors;
  if (result.abandoned > 0) {
    result.errors += result.abandoned;
    result.errorKinds.abandoned = (result.errorKinds.abandoned ?? 0) + result.abandoned;
  }
  result.elapsedMs = performance.now() - started;
  ownDelay.disable();
  // The histogram holds the intervals between samples: the sampling interval is not delay.
  result.generatorDelay = {
    p99: Math.max(0, ownDelay.percentile(99) / 1e6 - GENERATOR_DELAY_RESOLUTION_MS),
    max: Math.max(0, ownDelay.max / 1e6 - GENERATOR_DELAY_RESOLUTION_MS),
  };
  agent.destroy();
  result.predictionsSent = predictionsSent;
  const lat = latencies.subarray(0, result.ok).sort();
  let sum = 0;
  for (const x of lat) sum += x;
  result.latency = {
    p50: percentile(lat, 0.5), p95: percentile(lat, 0.95), p99: percentile(lat, 0.99), p999: percentile(lat, 0.999),
    max: lat.length ? lat[lat.length - 1] : NaN, mean: lat.length ? sum / lat.length : NaN,
  };
  return result;
}

// ---------------------------------------------------------------- IPC

type Message = { type: 'run'; id: number; spec: RunSpec } | { type: 'exit' };

if (process.send) {
  process.on('message', (m: Message) => {
    if (m.type === 'exit') process.exit(0);
    if (m.type === 'run') {
      run(m.spec).then(
        (result) => process.send!({ type: 'result', id: m.id, result }),
        (e: Error) => process.send!({ type: 'result', id: m.id, error: e.stack ?? e.message }),
      );
    }
  });
  // The parent going away ends the generator too (no orphaned load).
  process.on('disconnect', () => process.exit(0));
}
