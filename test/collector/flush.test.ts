import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeBatch, encodeBatch, FeatureProfile, TDigest, WindowProfile } from '../../src/sketch/index.js';
import { scanBatch } from '../../src/sketch/codec.js';
import { FlushMerge } from '../../src/collector/FlushMerge.js';
import { Ingestor, MergeConflictError } from '../../src/collector/Ingestor.js';
import { Metrics } from '../../src/collector/metrics.js';
import { copyBinary, type Database } from '../../src/collector/store/Database.js';
import { openPglite } from '../../src/collector/store/pglite.js';
import { migrate } from '../../src/collector/store/schema.js';
import { rng, sampleBatch } from '../helpers.js';

const START = 1_700_000_100_000 - (1_700_000_100_000 % 300_000);

function window(seed: number, kind: 'numeric' | 'classes' = 'numeric'): WindowProfile {
  const r = rng(seed);
  const w = new WindowProfile(START, 300_000, { model: 'm' });
  for (let i = 0; i < 50; i++) {
    w.predictions++;
    if (kind === 'numeric') w.input('x').add(r());
    else w.input('x', 'classes', { classes: ['a', 'b'] }).addLabel(i % 2);
    w.input('y').add(10 * r());
    w.latency.add(r());
  }
  return w;
}

describe('profiles cleared for reuse', () => {
  it('a cleared digest or profile merges like a new one', () => {
    const r = rng(4);
    const values = Array.from({ length: 3000 }, () => r());
    const used = new TDigest().addAll(values);
    used.quantile(0.5);
    used.clear();
    assert.equal(used.count, 0);
    assert.ok(Number.isNaN(used.quantile(0.5)));
    used.addAll(values.slice(0, 1000));
    assert.deepEqual(used.toState(), new TDigest().addAll(values.slice(0, 1000)).toState());
    const f = new FeatureProfile('c', 'classes', { classes: ['a', 'b'] });
    f.addLabel(0).addLabel(null);
    f.clear();
    assert.deepEqual([f.count, f.missing, f.classes!.total], [0, 0, 0]);
  });
});

describe('FlushMerge', () => {
  it('reuses profiles across commits without carrying data over', () => {
    const merge = new FlushMerge();
    const batches = [1, 2, 3].map((s) => scanBatch(encodeBatch(sampleBatch(s, 1))));
    // Commit 1: batches 1 and 2. Commit 2: batch 3 alone, on recycled profiles.
    for (const b of batches.slice(0, 2)) for (const w of b.windows) merge.merge('p', w, b.bytes);
    const first = merge.windows();
    assert.equal(first.length, 1);
    assert.equal(first[0].window.predictions, 600);
    merge.release();
    for (const w of batches[2].windows) merge.merge('p', w, batches[2].bytes);
    const [second] = merge.windows();
    const fresh = decodeBatch(batches[2].bytes).windows[0];
    assert.equal(second.window.predictions, fresh.predictions);
    for (const [name, f] of fresh.inputs) {
      const g = second.window.inputs.get(name)!;
      assert.deepEqual([g.count, g.missing, g.nan, g.posInf, g.negInf], [f.count, f.missing, f.nan, f.posInf, f.negInf], name);
      if (f.digest) assert.equal(g.digest!.count, f.digest.count);
      if (f.labels) assert.deepEqual(g.labels!.entries(), f.labels.entries());
    }
    assert.equal(second.window.latency.count, fresh.latency.count);
    assert.equal(second.window.outputs.get('class')!.classes!.total, fresh.outputs.get('class')!.classes!.total);
    merge.release();
  });

  it('says no to a batch that cannot merge with the commit, before anything changes', () => {
    const merge = new FlushMerge();
    const a = scanBatch(encodeBatch({ agentId: 'a', sequence: 0, sentAt: 0, windows: [window(1)] }));
    const b = scanBatch(encodeBatch({ agentId: 'b', sequence: 0, sentAt: 0, windows: [window(2, 'classes')] }));
    merge.merge('p', a.windows[0], a.bytes);
    assert.equal(merge.canMerge('p', b.windows), false);
    assert.equal(merge.canMerge('other-project', b.windows), true, 'another project is another window');
    assert.equal(merge.windows()[0].window.inputs.get('x')!.count, 50);
    merge.release();
  });
});

describe('Ingestor on the embedded store', () => {
  let db: Database;
  before(async () => {
    db = await openPglite();
    await migrate(db);
    await db.query(`insert into projects (id, ingest_key) values ('p', 'k')`);
  });
  after(() => db.close());

  it('refuses only the batch that conflicts within a commit; the rest are applied', async () => {
    const metrics = new Metrics();
    const ingestor = new Ingestor(db, metrics);
    const view = (agent: string, w: WindowProfile) => scanBatch(encodeBatch({ agentId: agent, sequence: 0, sentAt: 0, windows: [w] }));
    // Submitted in the same turn: one commit.
    const results = await Promise.allSettled([
      ingestor.submit('p', view('a', window(1))),
      ingestor.submit('p', view('b', window(2, 'classes'))),
      ingestor.submit('p', view('c', window(3))),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.ok((results[1] as PromiseRejectedResult).reason instanceof MergeConflictError);
    const rows = await db.query<{ predictions: unknown }>('select predictions from partials');
    assert.deepEqual(rows.map((r) => Number(r.predictions)), [100]);
    // Not marked applied: the refused batch goes through on its own later.
    assert.deepEqual(await ingestor.submit('p', view('b', window(2, 'classes'))), { status: 'applied', sequence: 0 });
    assert.equal(metrics.value('sketchwatch_ingest_conflicts_total'), 1);
    await ingestor.close();
  });

  it('a commit that fails leaves no trace in the cached dedupe state: the batch is applied on retry', async () => {
    let failNext = false;
    // The same store, with a commit that fails after all its statements ran (then rolls back).
    const flaky: Database = {
      ...db,
      kind: 'pglite',
      query: db.query,
      transaction: (work) => db.transaction(async (tx) => {
        const result = await work(tx);
        if (failNext) {
          failNext = false;
          throw new Error('disk full');
        }
        return result;
      }),
    };
    const ingestor = new Ingestor(flaky, new Metrics());
    const batch = () => scanBatch(encodeBatch({ agentId: 'retry', sequence: 7, sentAt: 0, windows: [window(9)] }));
    assert.deepEqual(await ingestor.submit('p', scanBatch(encodeBatch({ agentId: 'retry', sequence: 6, sentAt: 0, windows: [window(8)] }))), { status: 'applied', sequence: 6 });
    failNext = true;
    await assert.rejects(ingestor.submit('p', batch()), /disk full/);
    assert.deepEqual(await ingestor.submit('p', batch()), { status: 'applied', sequence: 7 });
    assert.deepEqual(await ingestor.submit('p', batch()), { status: 'duplicate', sequence: 7 });
    const [row] = await db.query<{ high_water: unknown; batches: unknown }>(`select high_water, batches from agents where agent_id = 'retry'`);
    assert.deepEqual([Number(row.high_water), Number(row.batches)], [7, 2]);
    await ingestor.close();
  });

  it('binary COPY stores what INSERT stores', async () => {
    await db.exec('create table copy_check (t text, a bigint, b integer, p bytea)');
    const bytes = Uint8Array.from({ length: 5000 }, (_, i) => (i * 31) & 255);
    const data = copyBinary([[{ text: 'ünïcode ✓' }, { int8: 2 ** 53 - 1 }, { int4: 300_000 }, { bytea: bytes }], [{ text: '' }, { int8: 0 }, { int4: -1 }, { bytea: new Uint8Array(0) }]]);
    await db.transaction(async (tx) => tx.copyBinary!('copy copy_check (t, a, b, p)', data));
    const rows = await db.query<{ t: string; a: unknown; b: number; p: Uint8Array }>('select t, a, b, p from copy_check order by b desc');
    assert.equal(rows[0].t, 'ünïcode ✓');
    assert.equal(Number(rows[0].a), 2 ** 53 - 1);
    assert.equal(rows[0].b, 300_000);
    assert.deepEqual(new Uint8Array(rows[0].p), bytes);
    assert.deepEqual([rows[1].t, Number(rows[1].a), rows[1].b, rows[1].p.length], ['', 0, -1, 0]);
  });
});
