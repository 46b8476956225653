/**
 * The host page never sees an error from the agent: not when the worker dies or stalls, not when
 * IndexedDB refuses to open, not when the collector is unreachable, not with bad options. Calls
 * that cannot be answered reject with a clear SketchwatchError after the timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Page, Worker } from 'playwright-core';
import { browserSuite, CLASSES, FEATURES, gotoEsm, KEY, openPage, until, watchErrors, WRAP_PAGE } from './harness.js';

const suite = browserSuite({ '/wrap.html': WRAP_PAGE });

async function esm(page: Page): Promise<void> {
  await gotoEsm(page, suite.server);
}

/** The agent's worker (the page starts no other). */
async function agentWorker(page: Page): Promise<Worker> {
  await until(() => page.workers().length > 0, 5_000, 'the worker');
  return page.workers()[0];
}

/** Ends the worker from inside (self.close()): it stops answering, with no error event. */
async function closeWorker(worker: Worker): Promise<void> {
  await Promise.race([
    worker.evaluate(() => (self as unknown as { close(): void }).close()).catch(() => {}),
    new Promise((r) => setTimeout(r, 300)),
  ]);
}

test('worker killed: pending and later calls reject with a clear error; the page sees none', async () => {
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await esm(page);
  await page.evaluate(async ({ url, key }) => {
    const sw = (window as any).sketchwatch;
    (window as any).m = await sw.load({ modelUrl: '/model/model.json', collector: url, key, model: 'killed', callTimeout: 1000 });
    await (window as any).m.predict([[0, 0, 0, 0]]);
  }, { url: suite.server.url, key: KEY });
  const worker = await agentWorker(page);
  await closeWorker(worker);
  const outcome = await page.evaluate(async () => {
    const m = (window as any).m;
    const t0 = performance.now();
    const first = await m.predict([[1, 2, 3, 4]]).then(() => 'resolved', (e: any) => `${e.name}:${e.code}:${e.message}`);
    const ms = performance.now() - t0;
    const second = await m.status().then(() => 'resolved', (e: any) => `${e.name}:${e.code}:${e.message}`);
    return { first, second, ms };
  });
  assert.match(outcome.first, /^SketchwatchError:(timeout|worker_dead):/);
  assert.ok(outcome.ms < 5_000, `rejected after ${outcome.ms} ms`);
  assert.match(outcome.second, /^SketchwatchError:(timeout|worker_dead):/);
  // Give the probe time to declare it dead, then calls fail at once.
  await new Promise((r) => setTimeout(r, 2_500));
  const third = await page.evaluate(() => (window as any).m.predict([[1, 2, 3, 4]]).then(() => 'resolved', (e: any) => e.code));
  assert.equal(third, 'worker_dead');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a stalled worker: the call rejects after the timeout, and the agent carries on', async () => {
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await esm(page);
  await page.evaluate(async ({ url, key }) => {
    const sw = (window as any).sketchwatch;
    (window as any).m = await sw.load({ modelUrl: '/model/model.json', collector: url, key, model: 'stalled', callTimeout: 500, storage: 'memory' });
  }, { url: suite.server.url, key: KEY });
  const worker = await agentWorker(page);
  // Busy for 1.2 s: longer than the call timeout, shorter than the liveness probe's patience.
  void worker.evaluate(() => {
    const end = Date.now() + 1200;
    while (Date.now() < end) { /* stall */ }
  }).catch(() => {});
  await new Promise((r) => setTimeout(r, 50));
  const first = await page.evaluate(() => (window as any).m.predict([[1, 2, 3, 4]]).then(() => 'resolved', (e: any) => `${e.code}:${e.message}`));
  assert.match(first, /^timeout:.*predict\(\).*500 ms/);
  await new Promise((r) => setTimeout(r, 2_500));
  const later = await page.evaluate(() => (window as any).m.predict([[1, 2, 3, 4]]).then((y: number[][]) => y.length, (e: any) => e.code));
  assert.equal(later, 1, 'the worker answers again');
  assert.deepEqual(errors, []);
  await page.close();
});

test('wrap mode: the page keeps working when the worker dies', async () => {
  suite.server.sink.reset();
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await page.goto(`${suite.server.url}/wrap.html`);
  await page.evaluate(async ({ url, key }) => {
    const tf = (window as any).tf;
    await tf.setBackend('cpu');
    const plain = await tf.loadLayersModel('/model/model.json');
    (window as any).w = (window as any).sketchwatch.wrap(plain, { collector: url, key, model: 'wrap-killed', callTimeout: 500 });
    (window as any).w.predict(tf.ones([1, 4])).dispose();
  }, { url: suite.server.url, key: KEY });
  await closeWorker(await agentWorker(page));
  const sums = await page.evaluate(async () => {
    const tf = (window as any).tf;
    const out: number[] = [];
    for (let i = 0; i < 20; i++) {
      const y = (window as any).w.predict(tf.ones([2, 4]));
      out.push((await y.sum().data())[0]);
      await new Promise((r) => setTimeout(r, 100));
    }
    return out;
  });
  assert.equal(sums.length, 20);
  for (const s of sums) assert.ok(Math.abs(s - 2) < 1e-5, 'two rows of probabilities');
  assert.deepEqual(errors, []);
  await page.close();
});

test('IndexedDB refuses to open: one warning, data kept in memory and still sent', async () => {
  suite.server.sink.reset();
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  const warnings: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'warning' && m.text().includes('sketchwatch')) warnings.push(m.text());
  });
  await esm(page);
  const status = await page.evaluate(async ({ url, key }) => {
    // A database of the same name at a version this agent does not know (a newer agent made it).
    const name = `sketchwatch:${url}:blocked-idb`;
    await new Promise<void>((resolve, reject) => {
      const r = indexedDB.open(name, 99);
      r.onsuccess = () => {
        r.result.close();
        resolve();
      };
      r.onerror = () => reject(r.error);
    });
    const sw = (window as any).sketchwatch;
    const m = await sw.load({ modelUrl: '/model/model.json', collector: url, key, model: 'blocked-idb' });
    await m.predict([[1, 2, 3, 4], [2, 3, 4, 5]]);
    return m.flush();
  }, { url: suite.server.url, key: KEY });
  assert.equal(status.store, 'memory');
  await until(() => suite.server.sink.predictions() === 2, 10_000, 'predictions sent from memory');
  assert.equal(warnings.filter((w) => /IndexedDB/.test(w)).length, 1, `one warning: ${warnings}`);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a newer agent upgrading the database is not blocked; this one carries on in memory', async () => {
  suite.server.sink.reset();
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await esm(page);
  const result = await page.evaluate(async ({ url, key }) => {
    const sw = (window as any).sketchwatch;
    const m = await sw.load({ modelUrl: '/model/model.json', collector: url, key, model: 'upgrade', checkpointInterval: 100 });
    await m.predict([[1, 2, 3, 4]]);
    const before = await m.status();
    // Another tab with newer code opens version 2: the agent's `blocking` handler lets it through.
    const outcome = await new Promise<string>((resolve) => {
      const r = indexedDB.open(`sketchwatch:${url}:upgrade`, 2);
      r.onblocked = () => resolve('blocked');
      r.onsuccess = () => {
        r.result.close();
        resolve('upgraded');
      };
      r.onerror = () => resolve(`error ${r.error}`);
    });
    await m.predict([[2, 3, 4, 5], [3, 4, 5, 6]]);
    await new Promise((r) => setTimeout(r, 400));
    const after = await m.flush();
    return { outcome, before: before.store, after };
  }, { url: suite.server.url, key: KEY });
  assert.equal(result.outcome, 'upgraded');
  assert.equal(result.before, 'indexeddb');
  assert.equal(result.after.store, 'memory');
  // The two predictions made after the upgrade are sent from memory under a new agent id.
  await until(() => suite.server.sink.predictions() >= 2, 10_000, 'predictions after the upgrade');
  assert.equal(result.after.agentId, suite.server.sink.applied.at(-1)!.agentId);
  assert.deepEqual(errors, []);
  await page.close();
});

test('collector unreachable: predictions work, the outbox keeps the batches, no page error', async () => {
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await esm(page);
  const status = await page.evaluate(async () => {
    const sw = (window as any).sketchwatch;
    const m = await sw.load({ modelUrl: '/model/model.json', collector: 'http://127.0.0.1:9', key: 'k', model: 'unreachable', flushInterval: 200, retry: { baseMs: 50, maxMs: 200 } });
    const y = await m.predict([[1, 2, 3, 4]]);
    if (y.length !== 1) throw new Error('no prediction');
    await new Promise((r) => setTimeout(r, 800));
    return m.flush();
  });
  assert.ok(status.outboxBatches >= 1);
  assert.match(status.lastError ?? '', /network/);
  assert.equal(status.batchesAcknowledged, 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test('bad options: load() rejects with what is wrong; wrap() returns a working, unmonitored model', async () => {
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await page.goto(`${suite.server.url}/wrap.html`);
  const result = await page.evaluate(async ({ features, classes }) => {
    const sw = (window as any).sketchwatch;
    const tf = (window as any).tf;
    const rejections: string[] = [];
    for (const bad of [
      { modelUrl: '/model/model.json', key: 'k', model: 'm' },
      { modelUrl: '/model/model.json', collector: 'http://x', model: 'm' },
      { modelUrl: '/model/model.json', collector: 'http://x', key: 'k', model: 'm', window: 5 },
      { modelUrl: '/model/model.json', collector: 'http://x', key: 'k', model: 'm', inputs: ['a', 'a'] },
      { modelUrl: '/nope/model.json', collector: 'http://127.0.0.1:9', key: 'k', model: 'm', storage: 'memory' },
    ]) {
      rejections.push(await sw.load(bad).then(() => 'resolved', (e: any) => `${e.name}:${e.code}:${e.message}`));
    }
    const plain = await tf.loadLayersModel('/model/model.json');
    const w = sw.wrap(plain, { collector: 'http://x', model: 'm', inputs: features, outputs: classes });
    const y = w.predict(tf.ones([1, 4]));
    return { rejections, shape: y.shape, monitorError: w.sketchwatch.error };
  }, { features: FEATURES, classes: CLASSES });
  assert.match(result.rejections[0], /^SketchwatchError:bad_option:.*collector/);
  assert.match(result.rejections[1], /^SketchwatchError:bad_option:.*key/);
  assert.match(result.rejections[2], /^SketchwatchError:bad_option:.*window/);
  assert.match(result.rejections[3], /^SketchwatchError:bad_option:.*twice/);
  assert.match(result.rejections[4], /^SketchwatchError:model:.*load the model/);
  assert.deepEqual(result.shape, [1, 3]);
  assert.match(result.monitorError ?? '', /key/);
  // The wrapped model's bad options are logged once as an error: that is the only console error.
  assert.deepEqual(errors.filter((e) => !/sketchwatch: option key/.test(e) && !/404/.test(e)), []);
  await page.close();
});

test('data-quality tripwires: NaN inputs and a failing call are counted and sent early', async () => {
  suite.server.sink.reset();
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  await esm(page);
  await page.evaluate(async ({ url, key, features }) => {
    const sw = (window as any).sketchwatch;
    (window as any).m = await sw.load({ modelUrl: '/model/model.json', collector: url, key, model: 'tripwire', inputs: features, flushInterval: 3_600_000 });
    await (window as any).m.predict([[NaN, 0, 0, 0], [0, 0, 0, 0]]);
    // Three columns for a four-input model: tfjs refuses; the caller gets its error.
    (window as any).wrongShape = await (window as any).m.predict([[0, 0, 0]]).then(() => 'resolved', (e: any) => e.message);
  }, { url: suite.server.url, key: KEY, features: FEATURES });
  assert.match(await page.evaluate(() => (window as any).wrongShape), /shape|expected/i);
  // Sent well before the hour-long flush interval.
  await until(() => suite.server.sink.predictions() >= 2, 10_000, 'the tripwire\'s early send');
  const [w] = suite.server.sink.merged();
  assert.equal(w.events.get('nonfinite_input'), 1);
  assert.equal(w.inputs.get('temp')!.nan, 1);
  await until(() => (suite.server.sink.merged()[0].events.get('predict_error') ?? 0) === 1, 10_000, 'the failed call\'s event');
  assert.deepEqual(errors, []);
  await page.close();
});
