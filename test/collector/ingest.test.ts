import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TDigest } from '../../src/sketch/index.js';
import { rankError, rng, shuffle, sorted } from '../helpers.js';
import { inProcess, recentWindow, simulate, totals, type Running } from './harness.js';

describe('collector ingest over HTTP (embedded store)', () => {
  let c: Running & { collector: { close(): Promise<void> } };
  before(async () => {
    c = await inProcess();
  });
  after(() => c.collector.close());

  it('round trip: counts exact, quantiles those of the data sent', async () => {
    const start = recentWindow(4);
    const sent = simulate(5, 4, 250, start, 7);
    for (const b of sent.batches) {
      const res = await c.ingest(b.bytes);
      assert.equal(res.status, 200, await res.clone().text());
      assert.deepEqual(await res.json(), { status: 'applied', sequence: b.sequence, agentId: b.agentId });
    }
    const t = await totals(c, start);
    assert.equal(t.predictions, sent.predictions);
    assert.equal(t.x, sent.x.length);
    assert.equal(t.missing, sent.predictions / 50);
    const q = await c.admin<{ count: number; quantiles: Record<string, number>; min: number; max: number }>(
      `/v1/projects/test/models/weather/features/x?from=${start}&to=${start + 120_000}&quantiles=0,0.01,0.5,0.99,1`,
    );
    assert.equal(q.status, 200);
    assert.equal(q.body.count, sent.x.length);
    const s = sorted(sent.x);
    assert.equal(q.body.min, s[0]);
    assert.equal(q.body.max, s[s.length - 1]);
    for (const [k, v] of Object.entries(q.body.quantiles)) assert.ok(rankError(s, v, Number(k)) <= 2e-3, `q=${k}: ${v}`);
    // The same answer as merging what was sent locally.
    const local = TDigest.mergeAll([new TDigest().addAll(sent.x)]);
    assert.ok(Math.abs(local.quantile(0.5) - q.body.quantiles['0.5']) < 0.05);
  });

  it('dedupe: every batch delivered three times, in random order, some at once → counts exact', async () => {
    const start = recentWindow(8);
    const sent = simulate(6, 5, 100, start, 11);
    const deliveries = shuffle([...sent.batches, ...sent.batches, ...sent.batches], rng(5));
    const statuses: string[] = [];
    for (let i = 0; i < deliveries.length; i += 9) {
      const group = deliveries.slice(i, i + 9); // nine requests in flight at once
      const results = await Promise.all(group.map(async (b) => (await c.ingest(b.bytes)).json() as Promise<{ status: string }>));
      statuses.push(...results.map((r) => r.status));
    }
    assert.equal(statuses.filter((s) => s === 'applied').length, sent.batches.length);
    assert.equal(statuses.filter((s) => s === 'duplicate').length, 2 * sent.batches.length);
    const t = await totals(c, start);
    assert.equal(t.predictions, sent.predictions);
    assert.equal(t.x, sent.x.length);
  });

  it('acknowledges only after commit and exposes the outcome in /metrics', async () => {
    const res = await fetch(`${c.url}/metrics`);
    const text = await res.text();
    assert.match(text, /sketchwatch_ingest_batches_total\{outcome="applied"\} \d+/);
    assert.match(text, /sketchwatch_flush_seconds_count \d+/);
  });
});
