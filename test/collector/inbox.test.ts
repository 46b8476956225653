import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadWindows } from '../../src/collector/Aggregates.js';
import { Ingestor } from '../../src/collector/Ingestor.js';
import { Metrics } from '../../src/collector/metrics.js';
import type { Database } from '../../src/collector/store/Database.js';
import { openPostgres } from '../../src/collector/store/postgres.js';
import { migrate } from '../../src/collector/store/schema.js';
import { scanBatch } from '../../src/sketch/codec.js';
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
    // Count the group commits open at once: transactions that lock dedupe rows (checkpoints,
    // which overlap commits anyway, do not). The first commit is held before it locks anything
    // until a second one has begun, so that the overlap does not depend on how fast this machine
    // or the server is; if no second commit ever begins, it goes on after 5 s and the count says so.
    let open = 0;
    let most = 0;
    let overlap!: () => void;
    const overlapped = new Promise<void>((r) => (overlap = r));
    const giveUp = setTimeout(overlap, 5_000);
    const transaction = db.transaction.bind(db);
    const watched: Database = {
      ...db,
      transaction: (work) => {
        let commit = false;
        return transaction((tx) =>
          work({
            ...tx,
            query: async (sql, params) => {
              if (!commit && sql.trimStart().startsWith('insert into agents')) {
                commit = true;
                most = Math.max(most, ++open);
                if (open >= 2) overlap();
                else if (most === 1) await overlapped;
              }
              return tx.query(sql, params);
            },
          }),
        ).finally(() => {
          if (commit) open--;
        });
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
});
