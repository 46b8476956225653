import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import { decodeBatch, encodeBatch, WindowProfile } from '../../src/sketch/index.js';
import { compactOnce } from '../../src/collector/Aggregates.js';
import { Notifier } from '../../src/collector/Notifier.js';
import { Metrics } from '../../src/collector/metrics.js';
import { normal, rng } from '../helpers.js';
import { inProcess, recentWindow, simulate, totals, WINDOW } from './harness.js';

function window(start: number, n: number, seed: number, shift = 0): WindowProfile {
  const r = rng(seed);
  const w = new WindowProfile(start, WINDOW, { model: 'weather' });
  for (let i = 0; i < n; i++) {
    w.predictions++;
    w.input('x').add(10 + 3 * shift + 3 * normal(r));
  }
  return w;
}

describe('collector operations', () => {
  it('rate limits an agent with 429 and Retry-After, counted by reason', async () => {
    const c = await inProcess({ agentRate: 1, agentBurst: 2 });
    try {
      const start = recentWindow(2);
      const codes: number[] = [];
      let retryAfter = '';
      for (let s = 0; s < 3; s++) {
        const res = await c.ingest(encodeBatch({ agentId: 'chatty', sequence: s, sentAt: Date.now(), windows: [window(start, 5, s)] }));
        codes.push(res.status);
        if (res.status === 429) retryAfter = res.headers.get('retry-after') ?? '';
      }
      assert.deepEqual(codes, [200, 200, 429]);
      assert.ok(Number(retryAfter) >= 1, `Retry-After: ${retryAfter}`);
      assert.equal(c.collector.metrics.value('sketchwatch_ingest_rejects_total', { reason: 'rate_agent' }), 1);
      // Another agent is not held back by the first.
      const other = await c.ingest(encodeBatch({ agentId: 'quiet', sequence: 0, sentAt: Date.now(), windows: [window(start, 5, 9)] }));
      assert.equal(other.status, 200);
    } finally {
      await c.collector.close();
    }
  });

  it('the compactor folds partial rows into one per window without changing a count', async () => {
    const c = await inProcess();
    try {
      const start = recentWindow(3);
      const sent = simulate(6, 4, 40, start, 17);
      for (const b of sent.batches) {
        assert.equal((await c.ingest(b.bytes)).status, 200);
        await c.collector.checkpoint(); // one checkpoint per batch: one partial row each
      }
      const rowsBefore = await c.collector.db.query<{ n: unknown }>('select count(*) as n from partials');
      const before = await totals(c, start);
      const removed = await compactOnce(c.collector.db);
      const rowsAfter = await c.collector.db.query<{ n: unknown }>('select count(*) as n from partials');
      assert.ok(removed > 0 && Number(rowsAfter[0].n) === Number(rowsBefore[0].n) - removed);
      assert.equal(Number(rowsAfter[0].n), 4, 'one row per (window, segment): 2 windows × 2 versions');
      assert.deepEqual(await totals(c, start), before);
      assert.equal(before.predictions, sent.predictions);
    } finally {
      await c.collector.close();
    }
  });

  it('moves the windows of a client whose clock is two hours behind', async () => {
    const c = await inProcess();
    try {
      const skew = 2 * 3_600_000;
      const clientNow = Date.now() - skew;
      const clientWindow = WindowProfile.alignedStart(clientNow, WINDOW) - WINDOW;
      const res = await c.ingest(encodeBatch({ agentId: 'slow-clock', sequence: 0, sentAt: clientNow, windows: [window(clientWindow, 30, 1)] }));
      assert.equal(res.status, 200);
      const moved = clientWindow + skew;
      const t = await totals(c, moved - WINDOW);
      assert.equal(t.predictions, 30, 'found in the window the server clock puts it');
      const atClientTime = await totals(c, clientWindow - WINDOW);
      assert.equal(atClientTime.predictions, 0);
    } finally {
      await c.collector.close();
    }
  });

  it('merges a batch two days late into its own window; refuses one past the retention', async () => {
    const c = await inProcess({ retentionMs: 7 * 24 * 3_600_000 });
    try {
      const old = WindowProfile.alignedStart(Date.now() - 2 * 24 * 3_600_000, WINDOW);
      const late = await c.ingest(encodeBatch({ agentId: 'offline', sequence: 0, sentAt: Date.now(), windows: [window(old, 25, 2)] }));
      assert.equal(late.status, 200, await late.text());
      assert.equal((await totals(c, old)).predictions, 25);
      const ancient = WindowProfile.alignedStart(Date.now() - 9 * 24 * 3_600_000, WINDOW);
      const refused = await c.ingest(encodeBatch({ agentId: 'offline', sequence: 1, sentAt: Date.now(), windows: [window(ancient, 25, 3)] }));
      assert.equal(refused.status, 422);
      assert.match(((await refused.json()) as { error: string }).error, /older than the retention/);
    } finally {
      await c.collector.close();
    }
  });

  it('the detector runs on its own timer: a shifted window raises an alert without being asked', async () => {
    const c = await inProcess({ detectIntervalMs: 200 });
    try {
      const t0 = recentWindow(6);
      await c.ingest(encodeBatch({ agentId: 'timer', sequence: 0, sentAt: Date.now(), windows: [window(t0, 2000, 1)] }));
      await c.ingest(encodeBatch({ agentId: 'timer', sequence: 1, sentAt: Date.now(), windows: [window(t0 + WINDOW, 2000, 2, 1.5)] }));
      let keys: string[] = [];
      for (let i = 0; i < 50 && !keys.includes('drift|previous|input|x'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        keys = (await c.admin<{ alerts: Array<{ key: string }> }>('/v1/projects/test/alerts?state=firing')).body.alerts.map((a) => a.key);
      }
      assert.ok(keys.includes('drift|previous|input|x'), `alerts: ${keys.join(', ')}`);
    } finally {
      await c.collector.close();
    }
  });

  it('retries a failing webhook with backoff until it answers', async () => {
    const c = await inProcess();
    let calls = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        calls++;
        res.statusCode = calls <= 2 ? 503 : 200;
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      await c.admin('/v1/projects/test/webhooks', { method: 'POST', body: JSON.stringify({ url: `http://127.0.0.1:${port}/`, format: 'json' }) });
      const metrics = new Metrics();
      const notifier = new Notifier(c.collector.db, metrics, { attempts: 4, backoffMs: 5 });
      await notifier.send({ state: 'firing', project: 'test', model: 'm', key: 'k', summary: 's', windowStart: 0, windowLength: WINDOW, details: {} });
      assert.equal(calls, 3);
      assert.equal(metrics.value('sketchwatch_webhook_deliveries_total', { result: 'ok' }), 1);
      calls = 100; // from now on every call fails
      server.removeAllListeners('request');
      server.on('request', (req, res) => {
        req.resume();
        res.statusCode = 500;
        res.end();
      });
      await notifier.send({ state: 'firing', project: 'test', model: 'm', key: 'k', summary: 's', windowStart: 0, windowLength: WINDOW, details: {} });
      assert.equal(metrics.value('sketchwatch_webhook_deliveries_total', { result: 'failed' }), 1, 'gives up after its attempts');
    } finally {
      server.close();
      await c.collector.close();
    }
  });

  it('a trailing baseline catches a sudden shift; a re-fire within the cooldown is not notified again', async () => {
    const c = await inProcess({ detectIntervalMs: 3_600_000, alertCooldownMs: 3_600_000 });
    try {
      const put = await c.admin('/v1/projects/test/models/weather/baselines/recent/dynamic', { method: 'PUT', body: JSON.stringify({ type: 'trailing', windows: 3 }) });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      const t0 = recentWindow(12);
      let seq = 0;
      const send = async (w: WindowProfile) => assert.equal((await c.ingest(encodeBatch({ agentId: 'a', sequence: seq++, sentAt: Date.now(), windows: [w] }))).status, 200);
      for (let k = 0; k < 3; k++) await send(window(t0 + k * WINDOW, 2000, k));
      await c.collector.detect();
      await send(window(t0 + 3 * WINDOW, 2000, 10, 1));
      await c.collector.detect();
      type A = { alerts: Array<{ key: string; state: string; notifiedAt: string | null }> };
      let alerts = (await c.admin<A>('/v1/projects/test/alerts')).body.alerts;
      assert.ok(alerts.some((a) => a.key === 'drift|recent|input|x' && a.state === 'firing' && a.notifiedAt !== null), JSON.stringify(alerts));
      // Normal traffic until the trailing windows hold no shifted one: resolved. Then a shift
      // again: a new alert, but within the cooldown of the first notification, so it stays quiet.
      for (let k = 4; k < 8; k++) {
        await send(window(t0 + k * WINDOW, 2000, 20 + k));
        await c.collector.detect();
      }
      alerts = (await c.admin<A>('/v1/projects/test/alerts')).body.alerts;
      assert.ok(alerts.every((a) => a.state === 'resolved'), JSON.stringify(alerts.map((a) => [a.key, a.state])));
      await send(window(t0 + 8 * WINDOW, 2000, 40, 1));
      await c.collector.detect();
      alerts = (await c.admin<A>('/v1/projects/test/alerts')).body.alerts.filter((a) => a.key === 'drift|recent|input|x');
      assert.equal(alerts.length, 2, JSON.stringify(alerts));
      assert.equal(alerts[0].state, 'firing');
      assert.equal(alerts[0].notifiedAt, null, 'the cooldown holds the repeat back');
      const hist = await c.admin<{ baselineShare: number[]; currentShare: number[]; edges: number[] }>(
        `/v1/projects/test/models/weather/features/x/histogram?from=${t0 + 8 * WINDOW}&to=${t0 + 9 * WINDOW}&baseline=recent`,
      );
      assert.equal(hist.status, 200, JSON.stringify(hist.body));
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum(hist.body.baselineShare) - 1) < 1e-9 && Math.abs(sum(hist.body.currentShare) - 1) < 1e-9);
      assert.equal(hist.body.currentShare.length, hist.body.edges.length + 1);
    } finally {
      await c.collector.close();
    }
  });
  it('the embedded store reclaims the rows checkpoints and compaction leave dead: its tables stop growing', async () => {
    // PGlite runs without autovacuum: every checkpoint rewrites the dedupe rows of the agents it
    // saw and every compaction deletes partial rows, so without a vacuum the tables grow for ever.
    const c = await inProcess({ vacuumIntervalMs: 100 });
    try {
      const db = c.collector.db;
      const vacuums = () => Number(/sketchwatch_store_vacuum_seconds_count (\d+)/.exec(c.collector.metrics.render())?.[1] ?? 0);
      const size = async () => {
        const [r] = await db.query<{ n: unknown }>(
          "select pg_total_relation_size('agents') as n",
        );
        return Number(r.n);
      };
      const start = recentWindow(3);
      const sizes: number[] = [];
      let predictions = 0;
      for (let round = 0; round < 12; round++) {
        // 300 agents, one batch each per round: 300 dedupe rows rewritten at the checkpoint.
        const sent = simulate(300, 1, 2, start, 1000 + round);
        for (const b of sent.batches) {
          const bytes = encodeBatch({ ...decodeBatch(b.bytes), agentId: `steady-${b.agentId.split('-').at(-1)}`, sequence: round });
          assert.equal((await c.ingest(bytes)).status, 200);
        }
        predictions += sent.predictions;
        await c.collector.checkpoint();
        await compactOnce(db);
        const seen = vacuums();
        while (vacuums() < seen + 2) await new Promise((r) => setTimeout(r, 20));
        sizes.push(await size());
      }
      // Table statistics are flushed lazily (at most once a second): counts of dead rows made
      // before a vacuum could land after it. Flush them, then let two vacuums run.
      await db.query('select pg_stat_force_next_flush()');
      const seen = vacuums();
      while (vacuums() < seen + 2) await new Promise((r) => setTimeout(r, 20));
      const [dead] = await db.query<{ n: unknown }>("select coalesce(sum(n_dead_tup), 0) as n from pg_stat_user_tables where relname in ('agents', 'partials')");
      assert.equal(Number(dead.n), 0, 'dead rows left after a vacuum');
      // The dedupe rows keep their size (300 agents, sending in order): once the first rounds
      // have filled the free space, each round reuses what the vacuum freed (without it the
      // table grows by ~300 row versions, some 40 KB, a round).
      assert.ok(sizes[11] <= sizes[3] + 8192, `the dedupe table grew from ${sizes[3]} to ${sizes[11]} bytes over 8 rounds`);
      assert.equal((await totals(c, start)).predictions, predictions);
    } finally {
      await c.collector.close();
    }
  });
});
