import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadWindows } from '../../src/collector/Aggregates.js';
import { Ingestor } from '../../src/collector/Ingestor.js';
import { Metrics } from '../../src/collector/metrics.js';
import type { Database, SqlValue } from '../../src/collector/store/Database.js';
import { openPostgres } from '../../src/collector/store/postgres.js';
import { migrate } from '../../src/collector/store/schema.js';
import { scanBatch } from '../../src/sketch/codec.js';
import { encodeBatch, WindowProfile } from '../../src/sketch/index.js';
import { openPglite } from '../../src/collector/store/pglite.js';
import { rng } from '../helpers.js';
import { pgTestDatabase, recentWindow, simulate } from './harness.js';

/**
 * The PostgreSQL inbox (Ingestor.ts): acknowledged batches wait there until their replica's
 * checkpoint folds them; reads include them; a replica that died leaves rows another folds; a
 * replica whose rows were folded by another does not count them again. Real PostgreSQL.
 */
const HOUR = 3_600_000;

describe('PostgreSQL inbox', () => {
  let db: Database;
  let drop: () => Promise<void>;
  before(async () => {
    const fresh = await pgTestDatabase('sketchwatch_inbox');
    drop = fresh.drop;
    db = await openPostgres(fresh.url);
    await migrate(db);
    await db.query(`insert into projects (id, ingest_key) values ('test', 'k')`);
  });
  after(async () => {
    await db?.close();
    await drop();
  });

  const count = async (table: string) => Number((await db.query<{ n: unknown }>(`select count(*) as n from ${table}`))[0].n);
  const predictions = async (start: number) =>
    (await loadWindows(db, { project: 'test', model: 'weather', from: start, to: start + HOUR, inbox: true })).reduce((n, w) => n + w.predictions, 0);

  it('reads count unfolded rows; a dead replica\'s rows are folded by another; a race counts nothing twice', async () => {
    const start = recentWindow(3);
    const sent = simulate(3, 4, 50, start, 77);
    // Replica A acknowledges everything but never checkpoints on its own.
    const metricsA = new Metrics();
    const a = new Ingestor(db, metricsA, { checkpointMs: HOUR, orphanAfterMs: HOUR });
    await a.open();
    for (const b of sent.batches) assert.equal((await a.submit('test', scanBatch(b.bytes))).status, 'applied');
    assert.equal(await count('inbox'), sent.batches.length);
    assert.equal(await count('partials'), 0);
    assert.equal(await predictions(start), sent.predictions, 'reads include the inbox');

    // Replica B takes A for dead (orphanAfterMs 0) and folds its rows.
    const b = new Ingestor(db, new Metrics(), { checkpointMs: HOUR, orphanAfterMs: 0 });
    await b.open();
    assert.equal(await b.sweep(), sent.batches.length);
    assert.equal(await count('inbox'), 0);
    assert.equal(await predictions(start), sent.predictions);

    // A's checkpoint finds its rows gone: it folds what is left (nothing) instead of its fold.
    await a.sync();
    assert.equal(metricsA.value('sketchwatch_inbox_races_total'), 1);
    assert.equal(await predictions(start), sent.predictions, 'nothing counted twice');

    // Resent batches are duplicates on either replica; new ones go through A's normal path.
    for (const x of sent.batches.slice(0, 3)) assert.equal((await b.submit('test', scanBatch(x.bytes))).status, 'duplicate');
    const more = simulate(1, 2, 30, start, 78);
    for (const x of more.batches) assert.equal((await a.submit('test', scanBatch(x.bytes))).status, 'applied');
    await a.sync();
    assert.equal(await count('inbox'), 0);
    assert.equal(await predictions(start), sent.predictions + more.predictions);
    await Promise.all([a.close(), b.close()]);
  });
  it('group commits overlap (each batch applied once, duplicates across groups included) and a checkpoint between them loses nothing', async () => {
    await db.query('delete from inbox');
    await db.query('delete from partials');
    const start = recentWindow(4);
    const sent = simulate(12, 10, 20, start, 91);
    // Count the group commits open at once: sw_commit statements (checkpoints, which overlap
    // commits anyway, do not call it). The first commit is held before it reaches the server
    // until a second one has begun, so that the overlap does not depend on how fast this machine
    // or the server is; if no second commit ever begins, it goes on after 5 s and the count says so.
    let open = 0;
    let most = 0;
    let overlap!: () => void;
    const overlapped = new Promise<void>((r) => (overlap = r));
    const giveUp = setTimeout(overlap, 5_000);
    const query = db.query.bind(db);
    const watched: Database = {
      ...db,
      query: async <Row>(sql: string, params?: SqlValue[]) => {
        if (!sql.includes('sw_commit(')) return query<Row>(sql, params);
        most = Math.max(most, ++open);
        try {
          if (open >= 2) overlap();
          else if (most === 1) await overlapped;
          return await query<Row>(sql, params);
        } finally {
          open--;
        }
      },
    };
    const ingestor = new Ingestor(watched, new Metrics(), { checkpointMs: HOUR, orphanAfterMs: HOUR, flushIntervalMs: 1 });
    await ingestor.open();
    // Every batch three times, a few per turn of the event loop, with checkpoints in between.
    const deliveries = [...sent.batches, ...sent.batches, ...sent.batches];
    const answers: Array<Promise<{ status: string }>> = [];
    for (let i = 0; i < deliveries.length; i++) {
      answers.push(ingestor.submit('test', scanBatch(deliveries[i].bytes)));
      if (i % 4 === 3) await new Promise((r) => setImmediate(r));
      if (i % 90 === 45) {
        await overlapped; // a swap waits for every commit in flight: not while the first is held
        void ingestor.sync();
      }
    }
    const statuses = (await Promise.all(answers)).map((o) => o.status);
    await ingestor.close();
    clearTimeout(giveUp);
    assert.ok(most >= 2, `at most ${most} group commit(s) ran at once`);
    assert.equal(statuses.filter((s) => s === 'applied').length, sent.batches.length);
    assert.equal(statuses.filter((s) => s === 'duplicate').length, 2 * sent.batches.length);
    assert.equal(await count('inbox'), 0, 'every inbox row folded by the checkpoints');
    assert.equal(await predictions(start), sent.predictions);
  });

  it('a fold worker that dies is replaced and refolds from the inbox: every acknowledged batch folded exactly once', async () => {
    await db.query('delete from inbox');
    await db.query('delete from partials');
    const start = recentWindow(6);
    const sent = simulate(4, 6, 20, start, 55); // two windows per agent: batches of one window each
    const metrics = new Metrics();
    const ingestor = new Ingestor(db, metrics, { checkpointMs: HOUR, orphanAfterMs: HOUR, foldWorker: 'on' });
    const logged: string[] = [];
    const error = console.error;
    console.error = (m: string) => logged.push(m);
    try {
      await ingestor.open();
      assert.ok(ingestor.foldWorker, 'merges on a worker');
      const [first, second, third] = [sent.batches.slice(0, 8), sent.batches.slice(8, 18), sent.batches.slice(18)];
      for (const x of first) await ingestor.submit('test', scanBatch(x.bytes));
      await ingestor.sync(); // written: not the dead worker's
      for (const x of second) await ingestor.submit('test', scanBatch(x.bytes));
      await ingestor.foldWorker!.crashForTest();
      const more = third.map((x) => ingestor.submit('test', scanBatch(x.bytes)));
      const synced = ingestor.sync();
      assert.deepEqual((await Promise.all(more)).map((o) => o.status), third.map(() => 'applied'));
      await synced;
      await ingestor.sync();
      assert.equal(metrics.value('sketchwatch_fold_worker_restarts_total'), 1);
      assert.equal(await count('inbox'), 0, 'every inbox row folded');
      const [r] = await db.query<{ n: unknown }>('select coalesce(sum(predictions), 0) as n from partials');
      assert.equal(Number(r.n), sent.predictions);
      assert.equal(metrics.value('sketchwatch_merge_failures_total'), 0);
      assert.match(logged.join('\n'), /fold worker exited .*a new one refolds/);
    } finally {
      console.error = error;
      await ingestor.close();
    }
  });

  it('applies the dedupe rule exactly as the embedded store does (sw_commit against Ingestor.markApplied)', async () => {
    // Waves of submissions (a wave is one group commit): mostly each agent's next sequence, and
    // repeats (within a wave too), holes, holes filled late, and sequences far behind a small
    // dedupe window; one agent's row comes from before `done` existed (null).
    const r = rng(404);
    const next = new Map<string, number>();
    const sent: Array<[string, number]> = [];
    // The legacy row (high 30, done null → 22 with a window of 8, seen 25 and 28): 25 is known, 26 is not.
    const waves: Array<Array<[string, number]>> = [[['dd-legacy', 25], ['dd-legacy', 26]]];
    for (let w = 0; w < 60; w++) {
      const wave: Array<[string, number]> = [];
      for (let k = 1 + Math.floor(r() * 5); k > 0; k--) {
        const agent = ['dd-a', 'dd-b', 'dd-legacy'][Math.floor(r() * 3)];
        const n = next.get(agent) ?? (agent === 'dd-legacy' ? 31 : 0);
        const u = r();
        let sequence: number;
        if (u < 0.55 || sent.length === 0) next.set(agent, (sequence = n) + 1);
        else if (u < 0.7) next.set(agent, (sequence = n + 2 + Math.floor(r() * 4)) + 1); // a hole
        else if (u < 0.85) sequence = sent[Math.floor(r() * sent.length)][1]; // a repeat, or a late one
        else sequence = Math.max(0, n - 9 - Math.floor(r() * 20)); // far behind
        wave.push([agent, sequence]);
        sent.push([agent, sequence]);
      }
      waves.push(wave);
    }
    const window = new WindowProfile(recentWindow(5), 60_000, { model: 'weather' });
    window.predictions = 1;
    window.input('x').add(1);
    const bytes = (agentId: string, sequence: number) => encodeBatch({ agentId, sequence, sentAt: Date.now(), windows: [window] });
    const run = async (store: Database) => {
      await store.query(`insert into agents (project, agent_id, high_water, done, seen, batches) values ('test', 'dd-legacy', 30, null, '{25,28}', 4)`);
      const ingestor = new Ingestor(store, new Metrics(), { dedupeWindow: 8, checkpointMs: HOUR, orphanAfterMs: HOUR, foldWorker: 'off' });
      await ingestor.open();
      const outcomes: string[] = [];
      for (const wave of waves) {
        for (const o of await Promise.all(wave.map(([a, s]) => ingestor.submit('test', scanBatch(bytes(a, s)))))) outcomes.push(o.status);
      }
      await ingestor.close();
      const rows = await store.query<{ agent_id: string; high_water: unknown; done: unknown; seen: unknown[]; batches: unknown }>(
        `select agent_id, high_water, done, seen, batches from agents where agent_id like 'dd-%' order by agent_id`,
      );
      return { outcomes, rows: rows.map((x) => [x.agent_id, Number(x.high_water), Number(x.done), x.seen.map(Number), Number(x.batches)]) };
    };
    const embedded = await openPglite();
    try {
      await migrate(embedded);
      await embedded.query(`insert into projects (id, ingest_key) values ('test', 'k')`);
      const want = await run(embedded);
      const got = await run(db);
      assert.deepEqual(got.outcomes, want.outcomes);
      assert.deepEqual(got.rows, want.rows);
      // Not a vacuous agreement: both outcomes occur, and the legacy row reads as it should.
      const applied = want.outcomes.filter((o) => o === 'applied').length;
      assert.ok(applied > 50 && applied < want.outcomes.length, `${applied} of ${want.outcomes.length} applied`);
      assert.deepEqual(want.outcomes.slice(0, 2), ['duplicate', 'applied']);
    } finally {
      await embedded.close();
    }
  });
});
