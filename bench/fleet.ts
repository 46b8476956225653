/**
 * Fleet simulation: how fast drift is detected, how often stationary data raises a false alert,
 * and how many bytes the fleet sends — a real collector (a child process, embedded store) over
 * real HTTP, fed by ≥ 1,000 simulated clients that run the agent's own profiling, packing and
 * codec code in this process.
 *
 *   npm run bench:fleet                 (~9 minutes: 8 runs)
 *   npm run bench:fleet -- --quick      (2 runs)
 *   options: --runs N  --clients N (total, default 1000)  --rate R (predictions/s per client)
 *
 * Time is accelerated by scaling every period down, not by faking clocks (the collector checks
 * clients' clocks against its own): windows of 10 s instead of 5 min and a flush interval of
 * 1 s instead of 30 s — 30× faster, same ratio. The detector and alert paths run at their
 * normal speed. Targets (the issue), in scaled units: MTTD p95 ≤ one window + one flush
 * interval (11 s here); a NaN tripwire alerts within 10 s; ≤ 1 false alert per 1,000 stationary
 * feature-windows.
 *
 * Each run starts four fresh models of 200 clients each (one per drift scenario) next to a
 * control model that stays stationary for the whole benchmark; drift starts in all four at a
 * random moment of the third window. Scenarios: mean shift (input f0 moves by one standard
 * deviation), scale change (input f1's spread × 2.5), NaN tripwire (20 % of input f2 is NaN),
 * class-mix shift (class a's logit +1.5: its share goes from ~33 % to ~66 %). An alert counts
 * for a scenario when it names the drifted feature; every other alert — on the control model,
 * before the onset, or on a feature that did not drift — is false.
 *
 * Bytes: every body sent (gzip, as the agent sends) against the same predictions logged as one
 * JSON object each; and, offline, what one client sends per 1e6 predictions at production
 * settings (5-minute windows, 30 s flushes) for several prediction rates.
 */
import { request, Agent } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { parseArgs } from 'node:util';
import { Profiler } from '../src/agent/profiler.js';
import { pack } from '../src/agent/packing.js';
import { encodeBatch, WindowProfile } from '../src/sketch/index.js';
import { ADMIN_TOKEN, killAll, spawnCollector } from '../test/collector/harness.js';
import { rng } from './rng.js';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    clients: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '1' },
  },
});
const RUNS = Number(args.runs ?? (args.quick ? 2 : 8));
const CLIENTS = Number(args.clients);
const RATE = Number(args.rate);
const WINDOW = 10_000;
const FLUSH = 1_000;
const INPUTS = Array.from({ length: 16 }, (_, i) => `f${i}`);
const CLASSES = ['a', 'b', 'c'];
const SCENARIOS = ['mean', 'scale', 'nan', 'mix'] as const;
type Scenario = (typeof SCENARIOS)[number] | 'control';

// ------------------------------------------------------------------ data

function normal(r: () => number): number {
  let u = 0;
  while (u === 0) u = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

/** One prediction's input row and class probabilities; `drifted` applies the scenario. */
function sample(r: () => number, scenario: Scenario, drifted: boolean): { x: Float32Array; p: Float32Array } {
  const x = new Float32Array(INPUTS.length);
  for (let k = 0; k < INPUTS.length; k++) {
    const sd = 1 + k / 8;
    x[k] = k % 4 === 3 ? Math.exp(0.5 * normal(r)) * (k + 1) : k + sd * normal(r);
  }
  const z = [0.3 * normal(r), 0.3 * normal(r), 0.3 * normal(r)];
  if (drifted) {
    if (scenario === 'mean') x[0] += 1;
    else if (scenario === 'scale') x[1] = 1 + (x[1] - 1) * 2.5;
    else if (scenario === 'nan' && r() < 0.2) x[2] = NaN;
    else if (scenario === 'mix') z[0] += 1.5;
  }
  const e = z.map(Math.exp);
  const s = e[0] + e[1] + e[2];
  return { x, p: Float32Array.from(e.map((v) => v / s)) };
}

/** The training baseline: 20,000 stationary rows through the agent's profiler, with 20 iid chunks. */
function baseline(model: string): Uint8Array {
  const r = rng(4242);
  const whole = new Profiler({ model, inputs: INPUTS, outputs: CLASSES, task: 'classification', window: WINDOW });
  const chunks = Array.from({ length: 20 }, () => new Profiler({ model, inputs: INPUTS, outputs: CLASSES, task: 'classification', window: WINDOW }));
  for (let i = 0; i < 20_000; i++) {
    const { x, p } = sample(r, 'control', false);
    const input = { data: x, shape: [1, INPUTS.length] };
    const output = { data: p, shape: [1, 3] };
    const latency = 0.5 + r();
    whole.record(0, 'training', input, output, latency);
    chunks[i % 20].record(0, 'training', input, output, latency);
  }
  const frame = (w: WindowProfile, chunk?: number) => w.reframed({ start: 0, length: 60_000, segment: chunk === undefined ? { model, source: 'training' } : { model, source: 'training', chunk: String(chunk) } });
  const windows = [frame(whole.take()[0]), ...chunks.map((c, i) => frame(c.take()[0], i))];
  return encodeBatch({ agentId: 'sketchwatch-baseline', sequence: 0, sentAt: Date.now(), windows });
}

/** The same prediction as a JSON log line would carry it. */
function jsonBytes(model: string, x: Float32Array, p: Float32Array, latency: number, time: number): number {
  const inputs: Record<string, number | null> = {};
  INPUTS.forEach((f, k) => (inputs[f] = Number.isFinite(x[k]) ? Number(x[k].toPrecision(7)) : null));
  const outputs: Record<string, number> = {};
  CLASSES.forEach((c, k) => (outputs[c] = Number(p[k].toPrecision(7))));
  return Buffer.byteLength(JSON.stringify({ time: new Date(time).toISOString(), model, version: '1', inputs, outputs, latency_ms: Number(latency.toFixed(3)) })) + 1;
}

// ------------------------------------------------------------------ clients

interface Client {
  id: string;
  model: string;
  scenario: Scenario;
  profiler: Profiler;
  r: () => number;
  next: number;
  sequence: number;
  pending: { sequence: number; body: Buffer; gzip: boolean }[];
  sending: boolean;
  phase: number;
}

const stats = { predictions: 0, jsonBytes: 0, bodies: 0, bodyBytes: 0, rawBytes: 0, failures: 0, refused: 0 };
const httpAgent = new Agent({ keepAlive: true, maxSockets: 64 });

function post(url: URL, body: Buffer): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent: httpAgent, headers: { 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

function makeClient(model: string, scenario: Scenario, index: number, seed: number): Client {
  const r = rng(seed);
  return {
    id: `${model}-client-${index}`, model, scenario,
    profiler: new Profiler({ model, version: '1', inputs: INPUTS, outputs: CLASSES, task: 'classification', window: WINDOW }),
    r, next: Date.now() + r() * 1000 / RATE, sequence: 1, pending: [], sending: false, phase: Math.floor(r() * FLUSH),
  };
}

/** Sends a client's pending batches, oldest first; a failed send waits for the next flush. */
async function deliver(c: Client, ingest: URL): Promise<void> {
  if (c.sending) return;
  c.sending = true;
  try {
    while (c.pending.length > 0) {
      const b = c.pending[0];
      stats.bodies++;
      stats.bodyBytes += b.body.length;
      const status = await post(b.gzip ? new URL(`${ingest.href}&encoding=gzip`) : ingest, b.body);
      if (status !== 200) {
        stats.failures++;
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) {
          // Refused for good (as the agent does: drop and count).
          c.pending.shift();
          stats.refused++;
          continue;
        }
        return;
      }
      c.pending.shift();
    }
  } finally {
    c.sending = false;
  }
}

function flushClient(c: Client, ingest: URL): void {
  if (c.profiler.dirty) {
    for (const group of pack(c.profiler.take(), 60 * 1024)) {
      const raw = encodeBatch({ agentId: c.id, sequence: c.sequence, sentAt: Date.now(), windows: group });
      stats.rawBytes += raw.length;
      const z = gzipSync(raw);
      c.pending.push({ sequence: c.sequence++, body: z.length < raw.length ? z : Buffer.from(raw), gzip: z.length < raw.length });
    }
  }
  void deliver(c, ingest);
}

// ------------------------------------------------------------------ collector and webhook sink

interface Received {
  at: number;
  model: string;
  key: string;
  state: string;
  summary: string;
}

async function webhookSink(): Promise<{ url: string; alerts: Received[]; close(): void }> {
  const alerts: Received[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      try {
        const m = JSON.parse(body);
        alerts.push({ at: Date.now(), model: m.model, key: m.key, state: m.state, summary: m.summary });
      } catch {
        /* not an alert */
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, alerts, close: () => server.close() };
}

/** Which feature a scenario moves; an alert for it is a detection, not a false alert. */
function isTarget(scenario: Scenario, key: string): boolean {
  const parts = key.split('|');
  const role = parts[2];
  const feature = parts[3] ?? '';
  if (scenario === 'mean') return feature === 'f0';
  if (scenario === 'scale') return feature === 'f1';
  if (scenario === 'nan') return feature === 'f2' || key.includes('nonfinite');
  if (scenario === 'mix') return role === 'output';
  return false;
}

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const sink = await webhookSink();
  const collector = await spawnCollector(['--memory'], {
    SKETCHWATCH_IP_RATE: '1000000', SKETCHWATCH_IP_BURST: '1000000', SKETCHWATCH_ALERT_COOLDOWN_MS: '600000',
  });
  const ingest = new URL(`${collector.url}/v1/ingest?key=${collector.ingestKey}`);
  const admin = async (path: string, init: RequestInit = {}) => {
    const r = await fetch(`${collector.url}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(init.headers ?? {}) } });
    return r.json() as Promise<any>;
  };
  await admin('/v1/projects/test/webhooks', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: sink.url, format: 'json' }) });
  const upload = async (model: string) => {
    const r = await admin(`/v1/projects/test/models/${model}/baselines/training`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: baseline(model) as BodyInit });
    if (!r.name) throw new Error(`baseline upload for ${model}: ${JSON.stringify(r)}`);
  };

  const perModel = Math.floor(CLIENTS / 5);
  let clients: Client[] = [];
  const controlClients = Array.from({ length: perModel }, (_, i) => makeClient('control', 'control', i, 10_000 + i));
  await upload('control');
  const onsets = new Map<string, number>();
  const startedAt = new Map<string, number>();

  // One loop drives every client: predictions when due, flushes on each client's phase.
  let lastFlushSlot = -1;
  const tick = setInterval(() => {
    const now = Date.now();
    for (const c of [...controlClients, ...clients]) {
      while (c.next <= now) {
        const drifted = c.scenario !== 'control' && c.next >= (onsets.get(c.model) ?? Infinity);
        const { x, p } = sample(c.r, c.scenario, drifted);
        const latency = 0.5 + c.r();
        c.profiler.record(c.next, 'cpu', { data: x, shape: [1, INPUTS.length] }, { data: p, shape: [1, 3] }, latency);
        stats.predictions++;
        stats.jsonBytes += jsonBytes(c.model, x, p, latency, c.next);
        c.next += (-Math.log(1 - c.r()) * 1000) / RATE;
      }
    }
    const slot = Math.floor(now / 50);
    if (slot !== lastFlushSlot) {
      lastFlushSlot = slot;
      for (const c of [...controlClients, ...clients]) {
        const phase = now % FLUSH;
        if (phase >= c.phase && phase < c.phase + 50) flushClient(c, ingest);
      }
    }
  }, 20);

  const detections: Record<string, number[]> = { mean: [], scale: [], nan: [], mix: [] };
  const misses: Record<string, number> = { mean: 0, scale: 0, nan: 0, mix: 0 };
  const benchStart = Date.now();
  for (let run = 0; run < RUNS; run++) {
    const models = SCENARIOS.map((s) => `${s}-${run}`);
    await Promise.all(models.map(upload));
    clients = SCENARIOS.flatMap((s, j) => Array.from({ length: perModel }, (_, i) => makeClient(`${s}-${run}`, s, i, 100_000 * (run + 1) + 1000 * j + i)));
    const t = Date.now();
    for (const m of models) startedAt.set(m, t);
    // Onset: a random moment of the third window (windows are UTC-aligned; any phase).
    const onset = (Math.floor(t / WINDOW) + 2) * WINDOW + Math.floor(Math.random() * WINDOW);
    for (const m of models) onsets.set(m, onset);
    const deadline = onset + 4 * WINDOW;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      const done = SCENARIOS.every((s, j) => sink.alerts.some((a) => a.model === models[j] && a.state === 'firing' && a.at >= onset && isTarget(s, a.key)));
      if (done && Date.now() > onset + WINDOW) break;
    }
    const line: string[] = [];
    for (const [j, s] of SCENARIOS.entries()) {
      const hit = sink.alerts.find((a) => a.model === models[j] && a.state === 'firing' && a.at >= onset && isTarget(s, a.key));
      if (hit) detections[s].push((hit.at - onset) / 1000);
      else misses[s]++;
      line.push(`${s} ${hit ? `${((hit.at - onset) / 1000).toFixed(1)} s (${hit.key})` : 'missed'}`);
    }
    console.log(`run ${run + 1}/${RUNS}: ${line.join(', ')}`);
    // Retire this run's clients after a last flush.
    for (const c of clients) flushClient(c, ingest);
    await new Promise((r) => setTimeout(r, 1500));
    clients = [];
  }
  clearInterval(tick);
  for (const c of controlClients) flushClient(c, ingest);
  await new Promise((r) => setTimeout(r, 3000));

  // Stationary feature-windows the detector evaluated, and the false alerts among the alerts.
  const to = Date.now() + WINDOW;
  let stationary = 0;
  const modelsAll = ['control', ...Array.from({ length: RUNS }, (_, run) => SCENARIOS.map((s) => `${s}-${run}`)).flat()];
  for (const model of modelsAll) {
    const scenario = (model === 'control' ? 'control' : model.split('-')[0]) as Scenario;
    const onset = onsets.get(model) ?? Infinity;
    const { results } = await admin(`/v1/projects/test/models/${model}/drift?from=${benchStart - WINDOW}&to=${to}&baseline=training`);
    const seen = new Set<string>();
    for (const r of results as { windowStart: number; role: string; feature: string }[]) {
      const key = `${r.windowStart}|${r.role}|${r.feature}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const fake = `drift|training|${r.role}|${r.feature}`;
      if (r.windowStart + WINDOW <= onset || !isTarget(scenario, fake)) stationary++;
    }
  }
  const firing = sink.alerts.filter((a) => a.state === 'firing');
  const falseAlerts = firing.filter((a) => {
    const scenario = (a.model === 'control' ? 'control' : a.model.split('-')[0]) as Scenario;
    return a.at < (onsets.get(a.model) ?? Infinity) || !isTarget(scenario, a.key);
  });

  console.log(`\nclients: ${CLIENTS} (${perModel} per model; ${RATE} predictions/s each); windows ${WINDOW / 1000} s, flush every ${FLUSH / 1000} s (30× faster than 5 min / 30 s)`);
  console.log('MTTD, onset → alert received by the webhook (target p95 ≤ 11 s = one window + one flush; NaN tripwire ≤ 10 s):');
  for (const s of SCENARIOS) {
    const d = detections[s];
    console.log(`  ${s.padEnd(6)} p50 ${d.length ? pct(d, 0.5).toFixed(1) : '—'} s  p95 ${d.length ? pct(d, 0.95).toFixed(1) : '—'} s  max ${d.length ? Math.max(...d).toFixed(1) : '—'} s  (${d.length} detected, ${misses[s]} missed)`);
  }
  console.log(`false alerts: ${falseAlerts.length} over ${stationary} stationary feature-windows (${((1000 * falseAlerts.length) / Math.max(1, stationary)).toFixed(2)} per 1,000; target ≤ 1)`);
  for (const a of falseAlerts.slice(0, 10)) console.log(`  false: ${a.model} ${a.key} — ${a.summary}`);
  console.log(`bytes: ${stats.bodies} bodies, ${(stats.bodyBytes / 1e6).toFixed(2)} MB sent (gzip; ${(stats.rawBytes / 1e6).toFixed(2)} MB before) for ${stats.predictions} predictions = ${(stats.bodyBytes / stats.predictions).toFixed(1)} B per prediction; as JSON log lines ${(stats.jsonBytes / stats.predictions).toFixed(0)} B → ${(stats.jsonBytes / stats.bodyBytes).toFixed(1)}× fewer bytes (failed sends: ${stats.failures}, refused: ${stats.refused})`);

  const metrics = await (await fetch(`${collector.url}/metrics`)).text();
  console.log('collector metrics at the end:');
  for (const line of metrics.split('\n')) {
    if (/^sketchwatch_(detector|ingest_batches_total|ingest_flush|ingest_pending|store_partial_rows|ingest_rejects)/.test(line)) console.log(`  ${line}`);
  }
  collector.process.kill('SIGTERM');
  sink.close();
  httpAgent.destroy();
  offlineBytes();
}

/** What one client sends per 1e6 predictions at production settings, by prediction rate. */
function offlineBytes(): void {
  console.log('\nbytes per 1e6 predictions for one client at production settings (5-minute windows, a batch every 30 s), gzip, vs JSON log lines:');
  for (const rate of [1, 10, 100, 1000]) {
    const r = rng(rate);
    const p = new Profiler({ model: 'm', version: '1', inputs: INPUTS, outputs: CLASSES, task: 'classification', window: 300_000 });
    let sent = 0;
    let json = 0;
    const seconds = Math.min(3600, Math.ceil(200_000 / rate));
    let t = 1_800_000_000_000;
    let n = 0;
    for (let s = 0; s < seconds; s++) {
      for (let i = 0; i < rate; i++) {
        const { x, p: probs } = sample(r, 'control', false);
        p.record(t, 'cpu', { data: x, shape: [1, INPUTS.length] }, { data: probs, shape: [1, 3] }, 1);
        json += jsonBytes('m', x, probs, 1, t);
        n++;
      }
      t += 1000;
      if ((s + 1) % 30 === 0 && p.dirty) {
        for (const g of pack(p.take(), 60 * 1024)) sent += gzipSync(encodeBatch({ agentId: 'a'.repeat(36), sequence: 1, sentAt: t, windows: g })).length;
      }
    }
    console.log(`  ${String(rate).padStart(4)} predictions/s: ${((sent / n) * 1e6 / 1e6).toFixed(2)} MB per 1e6 predictions vs ${((json / n) * 1e6 / 1e6).toFixed(0)} MB as JSON → ${(json / sent).toFixed(0)}×`);
  }
}

try {
  await main();
} finally {
  killAll();
}
