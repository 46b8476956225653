/**
 * Worker mode and wrap mode on a small real tf.js model, in real Chromium: predictions equal the
 * plain model's; the sink's profiles count every prediction once; quantiles match the exact
 * values of the inputs fed.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { browserSuite, CLASSES, esmPage, FEATURES, graphArtifacts, graphReference, inputRows, KEY, openPage, trainedModel, until, watchErrors, WRAP_PAGE } from './harness.js';
import { exactQuantile } from '../helpers.js';

const suite = browserSuite({ '/wrap.html': WRAP_PAGE });

/** Largest |rank(q-quantile from the sketch) − q| over a grid, against the exact sorted values. */
function worstRankError(values: number[], quantile: (q: number) => number): number {
  const sorted = [...values].sort((a, b) => a - b);
  let worst = 0;
  for (let q = 0.05; q < 0.96; q += 0.05) {
    const v = quantile(q);
    let lo = 0;
    while (lo < sorted.length && sorted[lo] < v) lo++;
    let hi = lo;
    while (hi < sorted.length && sorted[hi] === v) hi++;
    // Any rank in [lo, hi] / n is the value's rank (ties).
    const r = Math.min(Math.max(q, lo / sorted.length), hi / sorted.length);
    worst = Math.max(worst, Math.abs(r - q));
  }
  return worst;
}

describe('worker mode', () => {
  test('a layers model from a URL: same predictions as the plain model, every prediction profiled once', async () => {
    suite.server.sink.reset();
    const reference = await trainedModel();
    const rows = inputRows(600);
    const page = await openPage(suite.browser);
    const errors = watchErrors(page);
    await page.goto(`${suite.server.url}/esm.html`);
    await page.waitForFunction(() => (window as any).ready);
    const result = await page.evaluate(async ({ url, key, rows, features, classes }) => {
      const sw = (window as any).sketchwatch;
      const model = await sw.load({ modelUrl: '/model/model.json', collector: url, key, model: 'weather', version: '1', inputs: features, outputs: classes, flushInterval: 60_000 });
      const out: number[][] = [];
      // Batches of various sizes, then single rows.
      for (let i = 0; i < 500; i += 50) out.push(...(await model.predict(rows.slice(i, i + 50))));
      for (let i = 500; i < rows.length; i++) out.push(...(await model.predict([rows[i]])));
      // A typed array with a shape gives { data, shape } back.
      const typed = await model.predict({ data: new Float32Array(rows[0]), shape: [1, 4] });
      const status = await model.flush();
      return { out, backend: model.backend as string, format: model.format as string, typed: { data: Array.from(typed.data as Float32Array), shape: typed.shape as number[] }, status };
    }, { url: suite.server.url, key: KEY, rows, features: FEATURES, classes: CLASSES });
    assert.equal(result.backend, 'cpu');
    assert.equal(result.format, 'layers');
    const expected = (reference.predict(tf.tensor2d(rows)) as tf.Tensor).arraySync() as number[][];
    assert.equal(result.out.length, rows.length);
    for (let i = 0; i < rows.length; i++) {
      for (let j = 0; j < 3; j++) assert.ok(Math.abs(result.out[i][j] - expected[i][j]) < 1e-5, `row ${i} class ${j}: ${result.out[i][j]} vs ${expected[i][j]}`);
    }
    assert.deepEqual(result.typed.shape, [1, 3]);
    assert.ok(Math.abs(result.typed.data[0] - expected[0][0]) < 1e-5);

    await until(() => suite.server.sink.predictions() === rows.length + 1, 10_000, 'all predictions at the sink');
    const windows = suite.server.sink.merged();
    assert.equal(windows.length, 1, 'one window, one segment');
    const w = windows[0];
    assert.deepEqual(w.segment, { backend: 'cpu', model: 'weather', version: '1' });
    assert.equal(w.predictions, rows.length + 1);
    const fed = [...rows, rows[0]];
    for (let c = 0; c < FEATURES.length; c++) {
      const f = w.inputs.get(FEATURES[c])!;
      assert.equal(f.count, fed.length);
      // The page sends float32: compare with the float32 values it fed.
      const values = fed.map((r) => Math.fround(r[c]));
      assert.equal(f.digest!.min, Math.min(...values));
      assert.equal(f.digest!.max, Math.max(...values));
      const err = worstRankError(values, (q) => f.digest!.quantile(q));
      assert.ok(err <= 0.01, `${FEATURES[c]}: rank error ${err}`);
      assert.ok(Math.abs(f.moments!.mean - values.reduce((a, b) => a + b, 0) / values.length) < 1e-9);
    }
    const cls = w.outputs.get('class')!;
    assert.equal(cls.count, fed.length);
    const argmax = [...expected, expected[0]].map((p) => p.indexOf(Math.max(...p)));
    for (let k = 0; k < CLASSES.length; k++) assert.equal(cls.classes!.counts[k], argmax.filter((a) => a === k).length, `class ${CLASSES[k]}`);
    const conf = w.outputs.get('confidence')!;
    const exactConf = [...expected, expected[0]].map((p) => Math.fround(Math.max(...p)));
    assert.ok(Math.abs(conf.digest!.quantile(0.5) - exactQuantile(Float64Array.from(exactConf).sort(), 0.5)) < 0.02);
    assert.equal(w.latency.count, fed.length);
    assert.equal(w.events.size, 0, `no data-quality events, got ${[...w.events.keys()]}`);
    assert.equal(result.status.outboxBatches, 0);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('a graph model from a tf.io handler; wasm and webgl report the backend that runs', async (t) => {
    suite.server.sink.reset();
    const rows = inputRows(40, 3);
    const page = await openPage(suite.browser);
    const errors = watchErrors(page);
    await page.goto(`${suite.server.url}/esm.html`);
    await page.waitForFunction(() => (window as any).ready);
    const result = await page.evaluate(async ({ url, key, rows, artifacts }) => {
      const sw = (window as any).sketchwatch;
      const handler = { load: async () => ({ ...artifacts, weightData: new Float32Array(artifacts.weightData as number[]).buffer }) };
      const out: Record<string, unknown> = {};
      for (const backend of ['wasm', 'webgl', 'cpu']) {
        const m = await sw.load({ modelUrl: handler, collector: url, key, model: `graph-${backend}`, backend, wasmPaths: '/wasm/', outputs: ['a', 'b', 'c'], flushInterval: 60_000 });
        out[backend] = { backend: m.backend, note: m.backendNote, format: m.format, y: await m.predict(rows) };
        await m.flush();
        await m.close();
      }
      // wasm without wasmPaths: cpu, and the reason.
      const m = await sw.load({ modelUrl: handler, collector: url, key, model: 'graph-nopaths', backend: 'wasm', flushInterval: 60_000, storage: 'memory' });
      out.nopaths = { backend: m.backend, note: m.backendNote };
      await m.close();
      return out;
    }, { url: suite.server.url, key: KEY, rows, artifacts: graphArtifacts() }) as Record<string, { backend: string; note: string | null; format: string; y: number[][] }>;
    const expected = graphReference(rows);
    t.diagnostic(`webgl asked: ${result.webgl.backend} runs${result.webgl.note ? ` (${result.webgl.note})` : ''}`);
    assert.equal(result.wasm.backend, 'wasm', `wasm ran: ${result.wasm.note}`);
    assert.equal(result.cpu.backend, 'cpu');
    assert.ok(['webgl', 'cpu'].includes(result.webgl.backend));
    if (result.webgl.backend !== 'webgl') assert.match(result.webgl.note ?? '', /webgl/);
    for (const b of ['wasm', 'webgl', 'cpu']) {
      assert.equal(result[b].format, 'graph');
      for (let i = 0; i < rows.length; i++) {
        for (let j = 0; j < 3; j++) assert.ok(Math.abs(result[b].y[i][j] - expected[i][j]) < 1e-4, `${b} row ${i}: ${result[b].y[i][j]} vs ${expected[i][j]}`);
      }
    }
    assert.equal(result.nopaths.backend, 'cpu');
    assert.match(result.nopaths.note ?? '', /wasmPaths/);
    await until(() => suite.server.sink.predictions() === rows.length * 3, 10_000, 'graph predictions at the sink');
    const segments = suite.server.sink.merged().map((w) => `${w.segment.model}:${w.segment.backend}`).sort();
    assert.deepEqual(segments, ['graph-cpu:cpu', `graph-wasm:wasm`, `graph-webgl:${result.webgl.backend}`].sort());
    assert.deepEqual(errors.filter((e) => !/webgl/i.test(e)), []);
    await page.close();
  });
});

describe('worker mode with the page\'s tfjs', () => {
  test('a tf.Tensor goes in (its data copied once and transferred), { data, shape } comes out', async () => {
    const page = await openPage(suite.browser);
    const errors = watchErrors(page);
    await page.goto(`${suite.server.url}/wrap.html`);
    const rows = inputRows(8, 21);
    const result = await page.evaluate(async ({ url, key, rows }) => {
      const tf = (window as any).tf;
      const m = await (window as any).sketchwatch.load({ modelUrl: '/model/model.json', collector: url, key, model: 'tensor-in', storage: 'memory' });
      const x = tf.tensor2d(rows);
      const y = await m.predict(x);
      const stillUsable = (await x.data()).length; // the caller's tensor is not detached
      x.dispose();
      await m.close();
      return { shape: y.shape, data: Array.from(y.data as Float32Array), stillUsable };
    }, { url: suite.server.url, key: KEY, rows });
    const expected = ((await trainedModel()).predict(tf.tensor2d(rows)) as tf.Tensor).dataSync();
    assert.deepEqual(result.shape, [8, 3]);
    assert.equal(result.stillUsable, 32);
    for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(result.data[i] - expected[i]) < 1e-5);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('workerUrl: a page whose CSP forbids blob: workers gets a clear error by default and works with workerUrl', async (t) => {
    suite.server.pages.set('/csp.html', esmPage(`<meta http-equiv="Content-Security-Policy" content="worker-src 'self'">`));
    const page = await openPage(suite.browser);
    await page.goto(`${suite.server.url}/csp.html`);
    await page.waitForFunction(() => (window as any).ready);
    const result = await page.evaluate(async ({ url, key }) => {
      const sw = (window as any).sketchwatch;
      const base = { modelUrl: '/model/model.json', collector: url, key, model: 'csp', storage: 'memory', callTimeout: 2000 };
      const blocked = await sw.load(base).then(() => 'resolved', (e: any) => `${e.code}: ${e.message}`);
      const m = await sw.load({ ...base, workerUrl: '/dist/agent/worker.js' });
      const y = await m.predict([[0, 0, 0, 0]]);
      await m.close();
      return { blocked, rows: y.length };
    }, { url: suite.server.url, key: KEY });
    t.diagnostic(`default worker under the CSP: ${result.blocked}`);
    assert.match(result.blocked, /^worker_dead: the sketchwatch worker could not start .*worker-src blob:.*workerUrl/);
    assert.equal(result.rows, 1);
    await page.close();
  });
});

describe('wrap mode', () => {
  test('the wrapped model returns the same tensors and errors; copies are profiled', async () => {
    suite.server.sink.reset();
    const rows = inputRows(300, 11);
    const page = await openPage(suite.browser);
    const errors = watchErrors(page);
    await page.goto(`${suite.server.url}/wrap.html`);
    const result = await page.evaluate(async ({ url, key, rows, features, classes }) => {
      const tf = (window as any).tf;
      const sw = (window as any).sketchwatch;
      await tf.setBackend('cpu');
      const plain = await tf.loadLayersModel('/model/model.json');
      const wrapped = sw.wrap(plain, { collector: url, key, model: 'weather-wrap', inputs: features, outputs: classes, flushInterval: 60_000 });
      let maxDiff = 0;
      let calls = 0;
      for (let i = 0; i < rows.length; i += 30) {
        const x = tf.tensor2d(rows.slice(i, i + 30));
        // Inside tidy, and disposed right away, as pages do.
        const same = tf.tidy(() => {
          const a = wrapped.predict(x).arraySync();
          const b = plain.predict(x).arraySync();
          return a.every((r: number[], k: number) => r.every((v, j) => v === b[k][j]));
        });
        if (!same) maxDiff++;
        x.dispose();
        calls++;
      }
      // Same error for a wrong shape.
      const bad = tf.tensor2d([[1, 2, 3]]);
      let plainError = '';
      let wrappedError = '';
      try { plain.predict(bad); } catch (e) { plainError = (e as Error).message; }
      try { wrapped.predict(bad); } catch (e) { wrappedError = (e as Error).message; }
      bad.dispose();
      // Other members are the model's own.
      const sameLayers = wrapped.layers.length === plain.layers.length && wrapped.inputs[0].shape.join() === plain.inputs[0].shape.join();
      await new Promise((r) => setTimeout(r, 300));
      const status = await wrapped.sketchwatch.flush();
      return { mismatches: maxDiff, calls, plainError, wrappedError, sameLayers, status, monitorError: wrapped.sketchwatch.error, tensorsLeft: tf.memory().numTensors };
    }, { url: suite.server.url, key: KEY, rows, features: FEATURES, classes: CLASSES });
    assert.equal(result.mismatches, 0);
    assert.equal(result.calls, 10);
    assert.ok(result.plainError.length > 0);
    assert.equal(result.wrappedError, result.plainError);
    assert.equal(result.sameLayers, true);
    assert.equal(result.monitorError, null);
    await until(() => suite.server.sink.predictions() === rows.length, 10_000, 'wrapped predictions at the sink');
    const [w] = suite.server.sink.merged();
    assert.equal(w.predictions, rows.length);
    assert.equal(w.segment.backend, 'cpu');
    assert.equal(w.events.get('predict_error'), 1, 'the failed call is counted');
    for (let c = 0; c < FEATURES.length; c++) {
      const values = rows.map((r) => Math.fround(r[c]));
      const f = w.inputs.get(FEATURES[c])!;
      assert.equal(f.count, rows.length);
      assert.ok(worstRankError(values, (q) => f.digest!.quantile(q)) <= 0.01);
    }
    // No tensor leaked by the agent's copies: only the model's weights remain.
    const weights = (await trainedModel()).getWeights().length;
    assert.equal(result.tensorsLeft, weights);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('a graph model\'s executeAsync: same tensors back, copies profiled', async () => {
    suite.server.sink.reset();
    const rows = inputRows(20, 13);
    const page = await openPage(suite.browser);
    const errors = watchErrors(page);
    await page.goto(`${suite.server.url}/wrap.html`);
    const result = await page.evaluate(async ({ url, key, rows, artifacts }) => {
      const tf = (window as any).tf;
      await tf.setBackend('cpu');
      const a = { ...artifacts, weightData: new Float32Array(artifacts.weightData as number[]).buffer };
      const plain = await tf.loadGraphModel(tf.io.fromMemory(a));
      const wrapped = (window as any).sketchwatch.wrap(plain, { collector: url, key, model: 'graph-wrap', outputs: ['a', 'b', 'c'], tf });
      const x = tf.tensor2d(rows);
      const y1 = await wrapped.executeAsync(x);
      const y2 = await plain.executeAsync(x);
      const same = (await y1.data()).every((v: number, i: number) => v === y2.dataSync()[i]);
      const notAModelMethod = typeof wrapped.predict === 'function' && typeof wrapped.executeAsync === 'function';
      tf.dispose([x, y1, y2]);
      await new Promise((r) => setTimeout(r, 200));
      await wrapped.sketchwatch.flush();
      return { same, notAModelMethod, y: (await plain.executeAsync(tf.tensor2d(rows))).arraySync() };
    }, { url: suite.server.url, key: KEY, rows, artifacts: graphArtifacts() });
    assert.equal(result.same, true);
    assert.equal(result.notAModelMethod, true);
    const expected = graphReference(rows);
    for (let i = 0; i < rows.length; i++) assert.ok(Math.abs(result.y[i][0] - expected[i][0]) < 1e-5);
    await until(() => suite.server.sink.predictions() === rows.length, 10_000, 'executeAsync predictions at the sink');
    const [w] = suite.server.sink.merged();
    assert.equal(w.outputs.get('class')!.count, rows.length);
    assert.equal(w.inputs.get('x0')!.count, rows.length);
    assert.deepEqual(errors, []);
    await page.close();
  });
});
