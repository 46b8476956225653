/**
 * The agent's parts that need no browser, in Node: the profiler, packing into ≤ 60 KiB batches,
 * the outbox, delivery's answers to every status, options — and the agent's engine talking to a
 * real collector over HTTP (the wire protocol both sides implement).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { Profiler, mergeWindows } from '../../src/agent/profiler.js';
import { pack, splitWindow, PackingError } from '../../src/agent/packing.js';
import { MemoryStore } from '../../src/agent/store.js';
import { Delivery, backoffMs, retryAfterMs, type DeliveryOptions } from '../../src/agent/delivery.js';
import { resolveOptions, SketchwatchError } from '../../src/agent/options.js';
import { AgentCore } from '../../src/agent/core.js';
import { decodeBatch, encodeBatch, WindowProfile } from '../../src/sketch/index.js';
import { inProcess } from '../collector/harness.js';
import { rng } from '../helpers.js';

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const W = 300_000;

describe('Profiler', () => {
  test('tabular inputs: one feature per column; NaN, ±Inf and missing counted; latency per row', () => {
    const p = new Profiler({ model: 'm', inputs: ['a', 'b'], window: W });
    const n = p.record(T0, 'cpu', { data: [1, 2, NaN, 4, Infinity, -Infinity], shape: [3, 2] }, { data: [0.5, 0.7, 0.9], shape: [3, 1] }, 30);
    assert.equal(n, 3);
    const [w] = p.take();
    assert.equal(w.predictions, 3);
    assert.deepEqual([w.inputs.get('a')!.count, w.inputs.get('a')!.nan, w.inputs.get('a')!.posInf], [3, 1, 1]);
    assert.deepEqual([w.inputs.get('b')!.count, w.inputs.get('b')!.negInf, w.inputs.get('b')!.observed], [3, 1, 2]);
    assert.equal(w.events.get('nonfinite_input'), 3);
    assert.equal(w.latency.count, 3);
    assert.equal(w.latency.digest!.quantile(0.5), 10);
    assert.equal(w.outputs.get('y0')!.count, 3, 'one unnamed output: regression');
    assert.equal(p.takeTripped(), true);
    assert.equal(p.takeTripped(), false);
  });

  test('a wrong number of columns is a shape_mismatch event; outputs are still recorded', () => {
    const p = new Profiler({ model: 'm', inputs: ['a', 'b', 'c'], window: W });
    p.record(T0, 'cpu', { data: [1, 2], shape: [1, 2] }, { data: [1], shape: [1, 1] }, 1);
    const [w] = p.take();
    assert.equal(w.events.get('shape_mismatch'), 1);
    assert.equal(w.inputs.size, 0);
    assert.equal(w.outputs.get('y0')!.count, 1);
  });

  test('images: per-image, per-channel mean and standard deviation, never pixels', () => {
    const p = new Profiler({ model: 'img', inputs: ['r', 'g'], window: W });
    // Two 2×2 images, two channels, channels last.
    const img1 = [0, 10, 2, 10, 4, 10, 6, 10]; // r: 0 2 4 6 → mean 3, std √5; g: all 10
    const img2 = [1, 0, 1, 0, 1, 0, 1, 8]; // r: all 1; g: 0 0 0 8 → mean 2, std √12
    p.record(T0, 'cpu', { data: [...img1, ...img2], shape: [2, 2, 2, 2] }, { data: [0.2, 0.8, 0.6, 0.4], shape: [2, 2] }, 5);
    const [w] = p.take();
    const mr = w.inputs.get('mean_r')!.digest!;
    const sr = w.inputs.get('std_r')!.digest!;
    assert.deepEqual([mr.min, mr.max], [1, 3]);
    assert.deepEqual([sr.min, sr.max], [0, Math.sqrt(5)]);
    const mg = w.inputs.get('mean_g')!.digest!;
    assert.deepEqual([mg.min, mg.max], [2, 10]);
    assert.ok(Math.abs(w.inputs.get('std_g')!.digest!.max - Math.sqrt(12)) < 1e-12);
    assert.equal(w.inputs.size, 4);
  });

  test('classification: class counts, confidence, entropy in bits, per-class probabilities, unseen classes', () => {
    const p = new Profiler({ model: 'c', outputs: ['a', 'b'], task: 'classification', window: W });
    // Rows: argmax a (0.75), argmax b (0.5 tie → first max wins), and a third, unnamed class.
    p.record(T0, 'cpu', null, { data: [0.75, 0.25, 0, 0.5, 0.5, 0, 0.1, 0.1, 0.8], shape: [3, 3] }, 3);
    const [w] = p.take();
    const cls = w.outputs.get('class')!;
    assert.deepEqual(Array.from(cls.classes!.counts), [2, 0]);
    assert.equal(cls.classes!.unseen, 1);
    assert.equal(w.events.get('unseen_class'), 1);
    const h = w.outputs.get('entropy')!.digest!;
    const expectedH = -(0.75 * Math.log2(0.75) + 0.25 * Math.log2(0.25));
    assert.ok(Math.abs(h.min - expectedH) < 1e-12);
    assert.ok(Math.abs(h.max - 1) < 1e-12, 'a 50/50 row has one bit');
    assert.equal(w.outputs.get('confidence')!.digest!.max, 0.8);
    assert.equal(w.outputs.get('p_a')!.count, 3);
  });

  test('windows are UTC-aligned and split by backend; take() hands over, restore() merges back', () => {
    const p = new Profiler({ model: 'm', version: '2', window: W });
    p.record(T0 + 1, 'cpu', null, { data: [1], shape: [1, 1] }, 1);
    p.record(T0 + W - 1, 'cpu', null, { data: [1], shape: [1, 1] }, 1);
    p.record(T0 + W, 'cpu', null, { data: [1], shape: [1, 1] }, 1);
    p.record(T0, 'wasm', null, { data: [1], shape: [1, 1] }, 1);
    const taken = p.take();
    assert.equal(taken.length, 3);
    assert.deepEqual(taken.map((w) => [w.start, w.segment.backend, w.predictions]).sort(), [[T0, 'cpu', 2], [T0, 'wasm', 1], [T0 + W, 'cpu', 1]].sort());
    assert.deepEqual(taken[0].segment, { backend: 'cpu', model: 'm', version: '2' });
    assert.equal(p.dirty, false);
    p.record(T0, 'cpu', null, { data: [1], shape: [1, 1] }, 1);
    p.restore(taken);
    const again = p.take();
    assert.equal(again.reduce((s, w) => s + w.predictions, 0), 5);
  });
});

describe('packing', () => {
  function wideWindow(features: number, values: number): WindowProfile {
    const r = rng(5);
    const w = new WindowProfile(T0, W, { model: 'wide' });
    w.predictions = values;
    for (let i = 0; i < values; i++) w.latency.add(r());
    for (let f = 0; f < features; f++) {
      const feature = w.input(`feature_${f}`);
      for (let i = 0; i < values; i++) feature.add(r() * (f + 1));
    }
    w.event('shape_mismatch', 2);
    return w;
  }

  test('a window too large for one batch is split by features: every batch fits, nothing counted twice', () => {
    const w = wideWindow(300, 400);
    const max = 60 * 1024;
    const groups = pack([w], max);
    assert.ok(groups.length > 1, `split into ${groups.length}`);
    for (const g of groups) {
      const bytes = encodeBatch({ agentId: 'x'.repeat(128), sequence: 2 ** 40, sentAt: Date.now(), windows: g });
      assert.ok(bytes.length <= max, `batch of ${bytes.length} bytes`);
    }
    const merged = mergeWindows(...groups);
    assert.equal(merged.length, 1);
    const m = merged[0];
    assert.equal(m.predictions, 400);
    assert.equal(m.latency.count, 400);
    assert.equal(m.events.get('shape_mismatch'), 2);
    assert.equal(m.inputs.size, 300);
    for (const [name, f] of w.inputs) {
      assert.equal(m.inputs.get(name)!.count, f.count);
      assert.equal(m.inputs.get(name)!.digest!.quantile(0.5), f.digest!.quantile(0.5));
    }
  });

  test('small windows share a batch; a window that fits is passed through unchanged', () => {
    const a = wideWindow(3, 10);
    const b = new WindowProfile(T0 + W, W, { model: 'wide' });
    b.predictions = 1;
    assert.deepEqual(pack([a, b], 60 * 1024), [[a, b]]);
    assert.deepEqual(splitWindow(a, 60 * 1024), [a]);
  });

  test('a single feature larger than a batch is refused with a clear error', () => {
    const w = new WindowProfile(T0, W, { model: 'm' });
    const f = w.input('fine', 'numeric', { compression: 2000 });
    const r = rng(1);
    for (let i = 0; i < 5000; i++) f.add(r());
    assert.throws(() => pack([w], 4096), (e: unknown) => e instanceof PackingError && /feature fine alone encodes to \d+ bytes/.test(e.message));
  });
});

describe('outbox (memory store)', () => {
  test('seal numbers batches in order, empties the open windows, and drops the oldest beyond the cap', async () => {
    const store = new MemoryStore();
    const id = await store.agentId();
    const sealed: number[] = [];
    for (let i = 0; i < 6; i++) {
      const p = new Profiler({ model: 'm', window: W });
      const r = rng(i);
      const data = Array.from({ length: 500 }, () => r());
      p.record(T0, 'cpu', { data, shape: [500, 1] }, { data, shape: [500, 1] }, 1);
      await store.checkpoint(p.take());
      const result = await store.seal(id, 60 * 1024, 5_000);
      sealed.push(...result.entries.map((e) => e.sequence));
      if (result.dropped.batches > 0) assert.equal(result.dropped.predictions, 500 * result.dropped.batches);
    }
    assert.deepEqual(sealed, [1, 2, 3, 4, 5, 6]);
    const counts = await store.counts();
    assert.equal(counts.openWindows, 0);
    assert.ok(counts.outboxBytes <= 5_000);
    assert.ok(counts.outboxBatches < 6, 'the cap dropped some');
    const head = await store.head(10);
    assert.deepEqual(head.map((e) => e.sequence), sealed.slice(6 - head.length), 'the newest are kept');
  });

  test('checkpoints merge into the open window; sealing takes them as one', async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 3; i++) {
      const p = new Profiler({ model: 'm', window: W });
      p.record(T0 + i, 'cpu', null, { data: [i], shape: [1, 1] }, 1);
      await store.checkpoint(p.take());
    }
    const { entries } = await store.seal(await store.agentId(), 60 * 1024, 1 << 20);
    assert.equal(entries.length, 1);
    const batch = decodeBatch(entries[0].bytes);
    assert.equal(batch.windows.length, 1);
    assert.equal(batch.windows[0].predictions, 3);
    assert.equal(entries[0].predictions, 3);
  });
});

describe('delivery', () => {
  async function setup(answers: (Response | Error)[]) {
    const store = new MemoryStore();
    const p = new Profiler({ model: 'm', window: W });
    p.record(T0, 'cpu', null, { data: [1, 2], shape: [2, 1] }, 1);
    await store.checkpoint(p.take());
    const agentId = await store.agentId();
    await store.seal(agentId, 60 * 1024, 1 << 20);
    let now = 1_000_000;
    const calls: { url: string; body: Uint8Array }[] = [];
    const events: string[] = [];
    const options: DeliveryOptions = {
      url: 'http://c/v1/ingest?key=k', baseBackoffMs: 1000, maxBackoffMs: 8000, authPauseMs: 600_000, compress: false,
      fetch: (async (url: string, init: RequestInit) => {
        calls.push({ url, body: init.body as Uint8Array });
        const a = answers.shift();
        if (a === undefined) throw new Error('no more answers');
        if (a instanceof Error) throw a;
        return a;
      }) as typeof fetch,
      now: () => now,
      random: () => 0.5,
    };
    const d = new Delivery(store, options, (e) => events.push(e.type));
    return { store, d, calls, events, agentId, advance: (ms: number) => (now += ms), counts: () => store.counts() };
  }
  const ack = (status: string, sequence = 1) => new Response(JSON.stringify({ status, sequence, agentId: 'x' }), { status: 200 });

  test('200 with the acknowledgement deletes the batch; a duplicate acknowledgement too', async () => {
    for (const status of ['applied', 'duplicate']) {
      const s = await setup([ack(status)]);
      await s.d.pump();
      assert.equal((await s.counts()).outboxBatches, 0);
      assert.equal(s.d.counters.acknowledged, 1);
      assert.equal(s.d.counters.duplicates, status === 'duplicate' ? 1 : 0);
      const sent = decodeBatch(s.calls[0].body);
      assert.equal(sent.sequence, 1);
      assert.equal(sent.sentAt, 1_000_000, 'the send time is set when sent');
    }
  });

  test('a 200 that does not acknowledge this batch keeps it', async () => {
    const s = await setup([ack('applied', 7), new Response('ok', { status: 200 })]);
    await s.d.pump();
    assert.equal((await s.counts()).outboxBatches, 1);
    s.advance(10_000);
    await s.d.pump();
    assert.equal((await s.counts()).outboxBatches, 1);
  });

  test('400, 413 and 422 drop the batch (it can never be accepted) and count it', async () => {
    for (const code of [400, 413, 422]) {
      const s = await setup([new Response(JSON.stringify({ error: 'nope' }), { status: code })]);
      await s.d.pump();
      assert.equal((await s.counts()).outboxBatches, 0);
      assert.equal(s.d.counters.rejected, 1);
      assert.equal(s.d.counters.rejectedPredictions, 2);
      assert.deepEqual(s.events, ['rejected']);
    }
  });

  test('401/403 keep the batch and pause sending', async () => {
    const s = await setup([new Response('{"error":"unknown ingest key"}', { status: 403 })]);
    await s.d.pump();
    assert.equal((await s.counts()).outboxBatches, 1);
    assert.equal(s.d.waitMs, 600_000);
    assert.deepEqual(s.events, ['auth']);
    await s.d.pump();
    assert.equal(s.calls.length, 1, 'no send during the pause');
  });

  test('503, 408, network errors: exponential backoff with jitter; Retry-After honoured; resume() resets', async () => {
    const s = await setup([
      new Response('{}', { status: 503 }),
      new TypeError('Failed to fetch'),
      new Response('{}', { status: 408 }),
      new Response('{}', { status: 429, headers: { 'retry-after': '30' } }),
      ack('applied'),
    ]);
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      await s.d.pump();
      waits.push(s.d.waitMs);
      s.advance(s.d.waitMs);
    }
    // random() = 0.5: delay · 0.75 for delays 1 s, 2 s, 4 s; then Retry-After 30 s wins over 6 s.
    assert.deepEqual(waits, [750, 1500, 3000, 30_000]);
    assert.match(s.d.counters.lastError ?? '', /429/);
    await s.d.pump();
    assert.equal((await s.counts()).outboxBatches, 0);
    assert.equal(s.d.counters.failures, 4);
  });

  test('retryAfterMs reads seconds and HTTP dates; backoff is capped', () => {
    assert.equal(retryAfterMs('120', 0), 120_000);
    assert.equal(retryAfterMs(new Date(65_000).toUTCString(), 5_000), 60_000);
    assert.equal(retryAfterMs('soon', 0), null);
    assert.equal(retryAfterMs(null, 0), null);
    assert.equal(backoffMs(50, 1000, 300_000, () => 1), 300_000);
    assert.equal(backoffMs(0, 1000, 300_000, () => 0), 500);
  });
});

describe('options', () => {
  test('defaults, and a clear SketchwatchError for each bad option', () => {
    const r = resolveOptions({ collector: '/collect/', key: 'k y', model: 'm' }, 'https://shop.example/app/');
    assert.equal(r.config.ingestUrl, 'https://shop.example/collect/v1/ingest?key=k%20y');
    assert.equal(r.config.window, 300_000);
    assert.equal(r.config.flushInterval, 30_000);
    assert.equal(r.config.maxBatchBytes, 60 * 1024);
    assert.equal(r.config.storage, 'indexeddb');
    assert.equal(r.callTimeout, 15_000);
    const bad: [object, RegExp][] = [
      [{ key: 'k', model: 'm' }, /collector/],
      [{ collector: 'http://c', model: 'm' }, /key/],
      [{ collector: 'http://c', key: 'k' }, /model/],
      [{ collector: 'http://c', key: 'k', model: 'm', window: 10 }, /window/],
      [{ collector: 'http://c', key: 'k', model: 'm', maxBatchBytes: 100_000 }, /maxBatchBytes/],
      [{ collector: 'http://c', key: 'k', model: 'm', inputs: [] }, /inputs/],
      [{ collector: 'http://c', key: 'k', model: 'm', task: 'ranking' }, /task/],
      [{ collector: 'http://c', key: 'k', model: 'm', storage: 'cookies' }, /storage/],
    ];
    for (const [o, message] of bad) {
      assert.throws(() => resolveOptions(o as never, 'https://x/'), (e: unknown) => e instanceof SketchwatchError && e.code === 'bad_option' && message.test(e.message));
    }
  });
});

describe('agent engine → real collector over HTTP', () => {
  let collector: Awaited<ReturnType<typeof inProcess>> | null = null;
  after(async () => {
    await collector?.collector.close();
  });

  test('batches as the agent sends them (no content type, gzip) are acknowledged and counted exactly', async () => {
    collector = await inProcess();
    const emitted: string[] = [];
    const config = resolveOptions({ collector: collector.url, key: collector.ingestKey, model: 'node-agent', inputs: ['a', 'b'], storage: 'memory', flushInterval: 3_600_000, checkpointInterval: 600_000 }, 'http://localhost/').config;
    const core = new AgentCore(config, (e) => emitted.push(e.type));
    await core.start();
    core.setBackend('cpu');
    const r = rng(9);
    let made = 0;
    for (let i = 0; i < 50; i++) {
      const rows = 1 + (i % 7);
      const data = Array.from({ length: rows * 2 }, () => r() * 10 - 5);
      core.record(Date.now(), { data, shape: [rows, 2] }, { data: data.slice(0, rows), shape: [rows, 1] }, 2);
      made += rows;
      if (i % 10 === 9) await core.flush();
    }
    try {
      await core.flush();
      const status = await core.status();
      assert.equal(status.outboxBatches, 0, `sent: ${status.lastError}`);
      assert.equal(status.batchesAcknowledged, 5);
      const { body } = await collector.admin<{ windows: { predictions: number; inputs: { name: string; count: number }[] }[] }>(
        `/v1/projects/test/models/node-agent/windows?from=0&to=${Date.now() + 86_400_000}`,
      );
      assert.equal(body.windows.reduce((s, w) => s + w.predictions, 0), made);
      assert.equal(body.windows.reduce((s, w) => s + w.inputs.find((f) => f.name === 'a')!.count, 0), made);
      assert.deepEqual(emitted.filter((e) => e === 'warning'), []);
    } finally {
      await core.close();
    }
  });
});
