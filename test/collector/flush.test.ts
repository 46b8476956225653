import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { decodeBatch, encodeBatch, FeatureProfile, TDigest, WindowProfile } from '../../src/sketch/index.js';
import { scanBatch } from '../../src/sketch/codec.js';
import { FlushMerge } from '../../src/collector/FlushMerge.js';
import { Ingestor, MergeConflictError } from '../../src/collector/Ingestor.js';
import { Journal } from '../../src/collector/Journal.js';
import { Metrics } from '../../src/collector/metrics.js';
import { ConfigError, resolveConfig } from '../../src/collector/config.js';
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

  it('reserve refuses a batch that cannot merge with what it admitted, before anything changes', () => {
    const merge = new FlushMerge();
    const a = scanBatch(encodeBatch({ agentId: 'a', sequence: 0, sentAt: 0, windows: [window(1)] }));
    const b = scanBatch(encodeBatch({ agentId: 'b', sequence: 0, sentAt: 0, windows: [window(2, 'classes')] }));
    const c = scanBatch(encodeBatch({ agentId: 'c', sequence: 0, sentAt: 0, windows: [window(3)] }));
    assert.equal(merge.reserve('p', a.windows), true);
    // Admitted but not merged yet: a conflicting batch is refused all the same.
    assert.equal(merge.reserve('p', b.windows), false);
    assert.equal(merge.reserve('other-project', b.windows), true, 'another project is another window');
    assert.equal(merge.reserve('p', c.windows), true);
    merge.mergeBatch('p', a.windows, a.bytes);
    merge.mergeBatch('p', c.windows, c.bytes);
    assert.equal(merge.windows().find((g) => g.project === 'p')!.window.inputs.get('x')!.count, 100);
    merge.release();
    assert.equal(merge.reserve('p', b.windows), true, 'a new fold starts with no shapes');
    merge.release();
  });

  it('reserve records nothing of a refused batch, and tells latency, inputs and outputs apart', () => {
    const at = (start: number, build: (w: WindowProfile) => void): WindowProfile => {
      const w = new WindowProfile(start, 300_000, { model: 'm' });
      w.predictions = 3;
      for (let i = 0; i < 3; i++) w.latency.add(i);
      build(w);
      return w;
    };
    const batch = (agentId: string, ...windows: WindowProfile[]) => scanBatch(encodeBatch({ agentId, sequence: 0, sentAt: 0, windows })).windows;
    const numeric = (w: WindowProfile, name: string) => w.input(name).add(1);
    const classes = (w: WindowProfile, name: string) => w.input(name, 'classes', { classes: ['a', 'b'] }).addLabel(0);
    const later = START + 300_000;
    const merge = new FlushMerge();
    assert.equal(merge.reserve('p', batch('a', at(START, (w) => numeric(w, 'x')))), true);
    // Its second window conflicts: the first window's new feature 'z' must not be recorded.
    assert.equal(merge.reserve('p', batch('b', at(later, (w) => numeric(w, 'z')), at(START, (w) => classes(w, 'x')))), false);
    assert.equal(merge.reserve('p', batch('c', at(later, (w) => classes(w, 'z')))), true, "'z' was not admitted by the refused batch");
    assert.equal(merge.reserve('p', batch('d', at(later, (w) => numeric(w, 'z')))), false, "now 'z' is a class feature there");
    // An output may share an input's name with another kind; latency must keep its name.
    assert.equal(merge.reserve('p', batch('e', at(START, (w) => w.output('x', 'classes', { classes: ['a', 'b'] }).addLabel(1)))), true);
    const renamed = at(START, () => {});
    (renamed as { latency: FeatureProfile }).latency = new FeatureProfile('latency_us');
    renamed.latency.add(1);
    assert.equal(merge.reserve('p', batch('f', renamed)), false, 'latency under another name');
    merge.release();
  });
});

const view = (agent: string, w: WindowProfile, sequence = 0) => scanBatch(encodeBatch({ agentId: agent, sequence, sentAt: 0, windows: [w] }));

async function freshDb(): Promise<Database> {
  const db = await openPglite();
  await migrate(db);
  await db.query(`insert into projects (id, ingest_key) values ('p', 'k')`);
  return db;
}

async function stored(db: Database): Promise<{ predictions: number; rows: number }> {
  const [r] = await db.query<{ n: unknown; rows: unknown }>('select coalesce(sum(predictions), 0) as n, count(*) as rows from partials');
  return { predictions: Number(r.n), rows: Number(r.rows) };
}

describe('Ingestor on the embedded store (in memory)', () => {
  let db: Database;
  before(async () => {
    db = await freshDb();
  });
  after(() => db.close());

  it('refuses only the batch that conflicts within a group; the rest are applied', async () => {
    const metrics = new Metrics();
    const ingestor = new Ingestor(db, metrics);
    await ingestor.open();
    // Submitted in the same turn: one group.
    const results = await Promise.allSettled([
      ingestor.submit('p', view('a', window(1))),
      ingestor.submit('p', view('b', window(2, 'classes'))),
      ingestor.submit('p', view('c', window(3))),
    ]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.ok((results[1] as PromiseRejectedResult).reason instanceof MergeConflictError);
    await ingestor.sync();
    assert.deepEqual(await stored(db), { predictions: 100, rows: 1 });
    // Not marked applied: the refused batch goes through once the fold holding the others is written.
    assert.deepEqual(await ingestor.submit('p', view('b', window(2, 'classes'))), { status: 'applied', sequence: 0 });
    assert.equal(metrics.value('sketchwatch_ingest_conflicts_total'), 1);
    await ingestor.close();
    assert.equal((await stored(db)).predictions, 150);
  });

  it('a checkpoint that fails loses nothing and counts nothing twice: the next one writes it', async () => {
    let failNext = false;
    // The same store, with a transaction that fails after all its statements ran (then rolls back).
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
    await db.exec('delete from partials');
    const metrics = new Metrics();
    const ingestor = new Ingestor(flaky, metrics);
    await ingestor.open();
    assert.deepEqual(await ingestor.submit('p', view('retry', window(8), 6)), { status: 'applied', sequence: 6 });
    failNext = true;
    await assert.rejects(ingestor.sync(), /disk full/);
    assert.equal(metrics.value('sketchwatch_checkpoint_failures_total'), 1);
    assert.deepEqual(await ingestor.submit('p', view('retry', window(9), 7)), { status: 'applied', sequence: 7 });
    assert.deepEqual(await ingestor.submit('p', view('retry', window(9), 7)), { status: 'duplicate', sequence: 7 });
    assert.deepEqual(await ingestor.submit('p', view('retry', window(8), 6)), { status: 'duplicate', sequence: 6 });
    await ingestor.sync();
    assert.equal((await stored(db)).predictions, 100);
    const [row] = await db.query<{ high_water: unknown; done: unknown; batches: unknown }>(`select high_water, done, batches from agents where agent_id = 'retry'`);
    assert.deepEqual([Number(row.high_water), Number(row.batches)], [7, 2]);
    await ingestor.close();
  });

  it('a steady stream of arrivals does not postpone the group commit', async () => {
    // Arrivals 0.4 ms apart (2,500 beacons/s), each on its own turn of the event loop, as
    // requests reach a collector: a worker thread paces them. Each arrival used to re-arm the
    // commit timer, so nothing was committed until the stream paused for a millisecond (at
    // 1,000 beacons/s: commits 100–165 ms apart); now the first batch is answered a timer's
    // delay and one commit after it arrived, a few arrivals later (half the stream is the
    // margin for a loaded machine).
    await db.exec('delete from partials');
    const ingestor = new Ingestor(db, new Metrics());
    await ingestor.open();
    const w = window(11);
    const STREAM = 1000;
    const views = Array.from({ length: STREAM }, (_, s) => view('stream', w, s));
    let firstAnsweredAfter = -1;
    const answers: Array<Promise<unknown>> = [];
    const pacer = new Worker(
      `const { parentPort } = require('node:worker_threads');
       const t0 = performance.now();
       for (let n = 0; n < ${STREAM};) if (performance.now() >= t0 + 0.4 * n) parentPort.postMessage(n++);`,
      { eval: true },
    );
    await new Promise<void>((resolve, reject) => {
      pacer.on('message', (s: number) => {
        const answer = ingestor.submit('p', views[s]);
        if (s === 0) void answer.then(() => (firstAnsweredAfter = answers.length));
        answers.push(answer);
        if (answers.length === STREAM) resolve();
      });
      pacer.on('error', reject);
    });
    assert.ok(firstAnsweredAfter > 0 && firstAnsweredAfter <= STREAM / 2, `the first batch was answered after ${firstAnsweredAfter} arrivals (-1: not before the stream ended)`);
    for (const o of (await Promise.all(answers)) as Array<{ status: string }>) assert.equal(o.status, 'applied');
    await ingestor.close();
    assert.equal((await stored(db)).predictions, 50 * STREAM);
  });

  it("merging on the main thread: a group is answered without waiting for the previous group's merge; a checkpoint waits for it", async () => {
    await db.exec('delete from partials');
    const ingestor = new Ingestor(db, new Metrics(), { foldWorker: 'off' });
    await ingestor.open();
    const original = FlushMerge.prototype.mergeBatch;
    let merged = 0;
    FlushMerge.prototype.mergeBatch = function (this: FlushMerge, ...args) {
      // 2 ms a batch: a slice of merges outlasts the 1 ms commit timer of the next group.
      const until = performance.now() + 2;
      while (performance.now() < until);
      merged++;
      return original.apply(this, args);
    };
    try {
      // One group of 24 (submitted in one turn); once it is answered, one more batch.
      const first = Array.from({ length: 24 }, (_, i) => ingestor.submit('p', view(`m${i}`, window(i), 0)));
      await first[0];
      const mergedBefore = merged;
      await ingestor.submit('p', view('late', window(99), 0));
      const mergedWhenAnswered = merged;
      assert.ok(mergedBefore < 24, `the first group was merged (${mergedBefore}) before its answer got out`);
      assert.ok(mergedWhenAnswered < 24, `the second group's answer waited for the first group's merge (${mergedWhenAnswered} of 24 merged)`);
      await ingestor.sync();
      assert.equal(merged, 25, 'sync writes the fold only once every batch acknowledged is merged');
      assert.equal((await stored(db)).predictions, 25 * 50);
    } finally {
      FlushMerge.prototype.mergeBatch = original;
    }
    await ingestor.close();
  });

  it('merging on the main thread: a merge that throws after the answer is counted and logged, and takes nothing else down', async () => {
    await db.exec('delete from partials');
    const metrics = new Metrics();
    const ingestor = new Ingestor(db, metrics, { foldWorker: 'off' });
    await ingestor.open();
    const original = FlushMerge.prototype.mergeBatch;
    let thrown = 0;
    FlushMerge.prototype.mergeBatch = function (this: FlushMerge, ...args) {
      if (thrown++ === 0) throw new Error('injected');
      return original.apply(this, args);
    };
    const logged: string[] = [];
    const error = console.error;
    console.error = (m: string) => logged.push(m);
    try {
      const outcomes = await Promise.all([ingestor.submit('p', view('boom', window(1), 0)), ingestor.submit('p', view('boom', window(2), 1))]);
      assert.deepEqual(outcomes.map((o) => o.status), ['applied', 'applied']);
      await ingestor.sync();
    } finally {
      FlushMerge.prototype.mergeBatch = original;
      console.error = error;
    }
    assert.equal(metrics.value('sketchwatch_merge_failures_total'), 1);
    assert.match(logged.join('\n'), /merging a batch of agent boom failed: injected/);
    assert.equal((await stored(db)).predictions, 50, 'the other batch of the group is merged');
    await ingestor.close();
  });

  it('merges run on a worker thread by default; a merge that fails there is counted and logged, the rest of its group merged', async () => {
    await db.exec('delete from partials');
    const metrics = new Metrics();
    const ingestor = new Ingestor(db, metrics);
    await ingestor.open();
    assert.ok(ingestor.foldWorker, 'a fold worker started');
    // Checked here as a good batch, then its bytes broken: only the worker's merge can fail.
    const broken = view('broken', window(1), 0);
    broken.bytes = broken.bytes.slice(0, 20);
    const logged: string[] = [];
    const error = console.error;
    console.error = (m: string) => logged.push(m);
    try {
      const outcomes = await Promise.all([ingestor.submit('p', broken), ingestor.submit('p', view('fine', window(2), 0))]);
      assert.deepEqual(outcomes.map((o) => o.status), ['applied', 'applied']);
      await ingestor.sync();
    } finally {
      console.error = error;
    }
    assert.equal(metrics.value('sketchwatch_merge_failures_total'), 1);
    assert.match(logged.join('\n'), /merging a batch of agent broken failed: .*truncated/);
    assert.equal((await stored(db)).predictions, 50, 'the other batch of the group is merged');
    await ingestor.close();
  });

  it('a fold worker that dies is replaced, and every batch acknowledged is still folded exactly once', async () => {
    await db.exec('delete from partials');
    const metrics = new Metrics();
    // No checkpoint but the test's own: the worker dies holding the first ten batches.
    const ingestor = new Ingestor(db, metrics, { checkpointMs: 600_000 });
    await ingestor.open();
    const logged: string[] = [];
    const error = console.error;
    console.error = (m: string) => logged.push(m);
    try {
      for (let s = 0; s < 10; s++) await ingestor.submit('p', view('crash', window(s), s));
      await ingestor.foldWorker!.crashForTest(); // the fold holding those ten is gone with it
      for (let s = 10; s < 20; s++) await ingestor.submit('p', view('crash', window(s), s));
      await ingestor.sync();
      assert.equal(metrics.value('sketchwatch_fold_worker_restarts_total'), 1);
      assert.match(logged.join('\n'), /fold worker exited .*a new one refolds/);
      assert.equal((await stored(db)).predictions, 20 * 50);
      // And the new worker goes on folding.
      await ingestor.submit('p', view('crash', window(20), 20));
      await ingestor.sync();
      assert.equal((await stored(db)).predictions, 21 * 50);
    } finally {
      console.error = error;
    }
    await ingestor.close();
  });

  it('SKETCHWATCH_FOLD_WORKER chooses where merges run: auto by default, on, off; anything else is refused', async () => {
    assert.equal(resolveConfig({}, {}).foldWorker, 'auto');
    assert.equal(resolveConfig({}, { SKETCHWATCH_FOLD_WORKER: 'off' }).foldWorker, 'off');
    assert.throws(() => resolveConfig({}, { SKETCHWATCH_FOLD_WORKER: 'yes' }), (e: Error) => e instanceof ConfigError && /must be auto, on or off, got yes/.test(e.message));
    await db.exec('delete from partials');
    const local = new Ingestor(db, new Metrics(), { foldWorker: 'off' });
    await local.open();
    assert.equal(local.foldWorker, null, 'off: merges on the main thread');
    await local.submit('p', view('local', window(1), 0));
    await local.close();
    assert.equal((await stored(db)).predictions, 50);
  });

  it('dedupe state stays small for an agent sending in order, and holes are remembered', async () => {
    const ingestor = new Ingestor(db, new Metrics(), { dedupeWindow: 8 });
    await ingestor.open();
    for (let s = 0; s < 20; s++) if (s !== 5) assert.equal((await ingestor.submit('p', view('seq', window(s), s))).status, 'applied');
    await ingestor.sync();
    let [row] = await db.query<{ high_water: unknown; done: unknown; seen: unknown[] }>(`select high_water, done, seen from agents where agent_id = 'seq'`);
    // 5 fell more than the dedupe window behind 19: given up on, so everything ≤ 19 is done.
    assert.deepEqual([Number(row.high_water), Number(row.done), row.seen.length], [19, 19, 0]);
    assert.equal((await ingestor.submit('p', view('seq', window(5), 5))).status, 'duplicate');
    // A hole within the window is remembered as one, and filled once.
    assert.equal((await ingestor.submit('p', view('seq', window(22), 22))).status, 'applied');
    await ingestor.sync();
    [row] = await db.query(`select high_water, done, seen from agents where agent_id = 'seq'`);
    assert.deepEqual([Number(row.high_water), Number(row.done), row.seen.map(Number)], [22, 19, [22]]);
    assert.equal((await ingestor.submit('p', view('seq', window(20), 20))).status, 'applied');
    assert.equal((await ingestor.submit('p', view('seq', window(20), 20))).status, 'duplicate');
    await ingestor.close();
  });
});

describe('Ingestor on the embedded store with a journal', () => {
  let dir: string;
  let pgDir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sketchwatch-journal-'));
    pgDir = mkdtempSync(join(tmpdir(), 'sketchwatch-pg-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(pgDir, { recursive: true, force: true });
  });

  it('acknowledged batches not yet checkpointed are replayed after a crash, exactly once', async () => {
    let db = await openPglite(pgDir);
    await migrate(db);
    await db.query(`insert into projects (id, ingest_key) values ('p', 'k')`);
    // A checkpoint interval no test waits for: only sync() writes.
    let ingestor = new Ingestor(db, new Metrics(), { journalDir: dir, checkpointMs: 3_600_000 });
    await ingestor.open();
    for (let s = 0; s < 3; s++) await ingestor.submit('p', view('j', window(s), s));
    await ingestor.sync(); // 3 batches in the store; their segment deleted
    for (let s = 3; s < 7; s++) await ingestor.submit('p', view('j', window(s), s));
    assert.equal((await stored(db)).predictions, 150);
    // A crash: the process dies without a checkpoint (no close()); a torn record follows.
    const segments = readdirSync(dir).filter((n) => n.endsWith('.log'));
    assert.equal(segments.length, 1);
    appendFileSync(join(dir, segments[0]), Buffer.from([200, 0, 0, 0, 1, 2, 3]));
    await db.close();
    db = await openPglite(pgDir);
    ingestor = new Ingestor(db, new Metrics(), { journalDir: dir, checkpointMs: 3_600_000 });
    await ingestor.open();
    assert.equal((await stored(db)).predictions, 350, 'the 4 acknowledged batches are back, the torn record is not');
    // The agents resend what they hold; it is all known.
    for (let s = 0; s < 7; s++) assert.equal((await ingestor.submit('p', view('j', window(s), s))).status, 'duplicate');
    assert.equal((await ingestor.submit('p', view('j', window(7), 7))).status, 'applied');
    await ingestor.close();
    assert.equal((await stored(db)).predictions, 400);
    // A clean close leaves one empty segment; a restart replays nothing.
    ingestor = new Ingestor(db, new Metrics(), { journalDir: dir, checkpointMs: 3_600_000 });
    await ingestor.open();
    assert.equal((await stored(db)).predictions, 400);
    await ingestor.close();
    await db.close();
  });

  it('journal appends encode into one reused buffer: each group, larger or smaller than the last, is written as given', async () => {
    const jdir = mkdtempSync(join(tmpdir(), 'sketchwatch-journal-reuse-'));
    const journal = await Journal.open(jdir);
    try {
      await journal.start(0);
      const record = (n: number, size: number) => ({ project: `p${n}`, starts: [n, n + 0.5], bytes: Uint8Array.from({ length: size }, (_, i) => (i * 7 + n) & 255) });
      const sizes = [10_000, 300, 25_000, 1, 4_000, 12_345];
      await journal.append([record(0, sizes[0]), record(1, sizes[1])]);
      await journal.append([record(2, sizes[2])]); // larger: the buffer grows
      await journal.append([record(3, sizes[3])]); // smaller, over the same buffer
      await journal.append([record(4, sizes[4]), record(5, sizes[5])]);
      const back = await journal.read(0);
      assert.equal(back.length, 6);
      back.forEach((r, n) => assert.deepEqual(r, record(n, sizes[n])));
    } finally {
      await journal.close();
      rmSync(jdir, { recursive: true, force: true });
    }
  });

  it('a fold worker that dies is replaced and refolds from the journal: every acknowledged batch folded exactly once', async () => {
    const db = await freshDb();
    const jdir = mkdtempSync(join(tmpdir(), 'sketchwatch-journal-refold-'));
    const metrics = new Metrics();
    const ingestor = new Ingestor(db, metrics, { journalDir: jdir, checkpointMs: 600_000, foldWorker: 'on' });
    const logged: string[] = [];
    const error = console.error;
    console.error = (m: string) => logged.push(m);
    try {
      await ingestor.open();
      assert.ok(ingestor.foldWorker, 'merges on a worker');
      for (let s = 0; s < 10; s++) await ingestor.submit('p', view('refold', window(s), s));
      await ingestor.sync(); // written: not the dead worker's
      for (let s = 10; s < 20; s++) await ingestor.submit('p', view('refold', window(s), s));
      await ingestor.foldWorker!.crashForTest(); // ten batches gone with it; the journal has them
      // While the refold runs: more batches, and a checkpoint asked at once.
      const more = Array.from({ length: 5 }, (_, i) => ingestor.submit('p', view('refold', window(20 + i), 20 + i)));
      const synced = ingestor.sync();
      await Promise.all(more);
      await synced;
      await ingestor.sync();
      assert.equal(metrics.value('sketchwatch_fold_worker_restarts_total'), 1);
      assert.match(logged.join('\n'), /fold worker exited .*a new one refolds/);
      assert.equal((await stored(db)).predictions, 25 * 50);
      await ingestor.submit('p', view('refold', window(25), 25));
      await ingestor.sync();
      assert.equal((await stored(db)).predictions, 26 * 50, 'the new worker goes on folding');
      assert.equal(metrics.value('sketchwatch_merge_failures_total'), 0);
    } finally {
      console.error = error;
      await ingestor.close();
      await db.close();
      rmSync(jdir, { recursive: true, force: true });
    }
  });

  it('a journal write that fails is not acknowledged, leaves no record and no dedupe trace', async () => {
    const db = await freshDb();
    const jdir = mkdtempSync(join(tmpdir(), 'sketchwatch-journal-fail-'));
    try {
      const ingestor = new Ingestor(db, new Metrics(), { journalDir: jdir, checkpointMs: 3_600_000 });
      await ingestor.open();
      assert.equal((await ingestor.submit('p', view('f', window(1), 1))).status, 'applied');
      const journal = (ingestor as unknown as { journal: Journal }).journal;
      const append = journal.append.bind(journal);
      journal.append = async () => {
        throw new Error('EIO');
      };
      await assert.rejects(ingestor.submit('p', view('f', window(2), 2)), /EIO/);
      journal.append = append;
      assert.equal((await ingestor.submit('p', view('f', window(2), 2))).status, 'applied', 'the refused batch is new on retry');
      const records = await journal.read(journal.current);
      assert.deepEqual(records.map((r) => scanBatch(r.bytes).sequence), [1, 2]);
      await ingestor.close();
      assert.equal((await stored(db)).predictions, 100);
    } finally {
      await db.close();
      rmSync(jdir, { recursive: true, force: true });
    }
  });

  it('a new segment that cannot be opened swaps nothing: the next checkpoint writes every batch', async () => {
    const db = await freshDb();
    const jdir = mkdtempSync(join(tmpdir(), 'sketchwatch-journal-rotate-'));
    try {
      const ingestor = new Ingestor(db, new Metrics(), { journalDir: jdir, checkpointMs: 3_600_000 });
      await ingestor.open();
      for (let s = 0; s < 3; s++) await ingestor.submit('p', view('r', window(s), s));
      const journal = (ingestor as unknown as { journal: Journal }).journal;
      const rotate = journal.rotate.bind(journal);
      journal.rotate = async () => {
        throw new Error('EMFILE');
      };
      await assert.rejects(ingestor.sync(), /EMFILE/);
      assert.equal((await stored(db)).predictions, 0);
      journal.rotate = rotate;
      await ingestor.submit('p', view('r', window(3), 3));
      await ingestor.sync();
      assert.equal((await stored(db)).predictions, 200);
      await ingestor.close();
    } finally {
      await db.close();
      rmSync(jdir, { recursive: true, force: true });
    }
  });

  it('binary COPY stores what INSERT stores', async () => {
    const db = await freshDb();
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
    await db.close();
  });
});
