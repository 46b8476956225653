/**
 * Agent benchmark: what monitoring costs per prediction.
 *
 *   npm run bench:agent            (~1 minute; needs /usr/bin/chromium and a build)
 *
 * 1. Node: the profiler alone (what the worker does per prediction), 32 numeric inputs and a
 *    5-class output, per row, for calls of 1 and of 32 rows; and the bytes of a sealed batch.
 * 2. Chromium, the test model (4 inputs → 8 → 3): main-thread time of `predict` for the plain
 *    tf.js model and the wrapped one, side by side in one page (wrap mode's cost to the page);
 *    and the round trip of worker mode's `predict` against tf.js predicting on the page.
 * Figures are medians over repeated rounds; the machine is noisy, so compare within a run.
 */
import { performance } from 'node:perf_hooks';
import { Profiler } from '../src/agent/profiler.js';
import { pack } from '../src/agent/packing.js';
import { encodeBatch } from '../src/sketch/index.js';
import { KEY, esmPage, launch, openPage, startServer } from '../test/agent/harness.js';
import { rng } from './rng.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function profilerBench(): void {
  const inputs = Array.from({ length: 32 }, (_, i) => `f${i}`);
  const outputs = ['a', 'b', 'c', 'd', 'e'];
  for (const rows of [1, 32]) {
    // A pool of distinct calls (skewed, varied inputs; softmax-like outputs), cycled.
    const r = rng(rows);
    const pool = Array.from({ length: 64 }, () => {
      const x = Float32Array.from({ length: rows * 32 }, (_, k) => (k % 3 === 0 ? -Math.log(1 - r()) : r()) * (1 + (k % 32)));
      const y = new Float32Array(rows * 5);
      for (let i = 0; i < rows; i++) {
        let s = 0;
        for (let j = 0; j < 5; j++) s += y[i * 5 + j] = r() ** 3;
        for (let j = 0; j < 5; j++) y[i * 5 + j] /= s;
      }
      return { x, y };
    });
    const rounds: number[] = [];
    let bytes = 0;
    for (let round = 0; round < 7; round++) {
      const p = new Profiler({ model: 'bench', inputs, outputs, window: 300_000 });
      const calls = Math.ceil(100_000 / rows);
      const t0 = performance.now();
      for (let c = 0; c < calls; c++) {
        const { x, y } = pool[c & 63];
        p.record(1_800_000_000_000, 'cpu', { data: x, shape: [rows, 32] }, { data: y, shape: [rows, 5] }, 0.2 + (c & 7) * 0.01);
      }
      rounds.push(((performance.now() - t0) * 1e6) / (calls * rows));
      const windows = p.take();
      bytes = pack(windows, 60 * 1024).reduce((s, g) => s + encodeBatch({ agentId: 'a'.repeat(36), sequence: 1, sentAt: 1, windows: g }).length, 0);
    }
    console.log(`profiler, ${rows} row(s) per call: ${median(rounds).toFixed(0)} ns per prediction (median of 7 rounds of 100,000); a 5-minute window of them seals to ${(bytes / 1024).toFixed(1)} KiB`);
  }
}

async function browserBench(): Promise<void> {
  const server = await startServer();
  server.pages.set('/bench.html', `<!doctype html><html><head><meta charset="utf-8">
<script src="/tfjs/tf.min.js"></script><script src="/dist/agent/sketchwatch.iife.js"></script></head><body></body></html>`);
  server.pages.set('/esm.html', esmPage());
  const browser = await launch();
  try {
    const page = await openPage(browser);
    await page.goto(`${server.url}/bench.html`);
    const wrap = await page.evaluate(async ({ url, key }) => {
      const tf = (window as any).tf;
      await tf.setBackend('cpu');
      const plain = await tf.loadLayersModel('/model/model.json');
      const wrapped = (window as any).sketchwatch.wrap(plain, { collector: url, key, model: 'bench', flushInterval: 3_600_000, tf });
      const x = tf.tensor2d([[0.1, 0.2, 0.3, 0.4]]);
      const time = (m: any, n: number) => {
        const t0 = performance.now();
        for (let i = 0; i < n; i++) m.predict(x).dispose();
        return ((performance.now() - t0) * 1000) / n;
      };
      time(plain, 200);
      time(wrapped, 200);
      const p: number[] = [];
      const w: number[] = [];
      for (let round = 0; round < 9; round++) {
        p.push(time(plain, 500));
        w.push(time(wrapped, 500));
        await new Promise((r) => setTimeout(r, 50)); // let the copies reach the worker
      }
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      await wrapped.sketchwatch.flush();
      return { plain: med(p), wrapped: med(w), recorded: (await wrapped.sketchwatch.status()).predictions };
    }, { url: server.url, key: KEY });
    console.log(`wrap mode, main thread per predict() of 1 row: plain ${wrap.plain.toFixed(0)} µs, wrapped ${wrap.wrapped.toFixed(0)} µs (+${(wrap.wrapped - wrap.plain).toFixed(0)} µs: two clones and the async copy); ${wrap.recorded} predictions recorded`);

    const worker = await page.evaluate(async ({ url, key }) => {
      const tf = (window as any).tf;
      const local = await tf.loadLayersModel('/model/model.json');
      const m = await (window as any).sketchwatch.load({ modelUrl: '/model/model.json', collector: url, key, model: 'bench-worker', flushInterval: 3_600_000, storage: 'memory' });
      const row = [[0.1, 0.2, 0.3, 0.4]];
      const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
      const a: number[] = [];
      const b: number[] = [];
      for (let round = 0; round < 7; round++) {
        let t0 = performance.now();
        for (let i = 0; i < 200; i++) await m.predict(row);
        a.push(((performance.now() - t0) * 1000) / 200);
        t0 = performance.now();
        for (let i = 0; i < 200; i++) {
          const y = local.predict(tf.tensor2d(row));
          await y.data();
          y.dispose();
        }
        b.push(((performance.now() - t0) * 1000) / 200);
      }
      await m.close();
      return { worker: med(a), page: med(b) };
    }, { url: server.url, key: KEY });
    console.log(`worker mode, predict() of 1 row awaited from the page: ${worker.worker.toFixed(0)} µs (model + profile in the worker + two messages); tf.js on the page: ${worker.page.toFixed(0)} µs, all on the main thread`);
  } finally {
    await browser.close();
    await server.close();
  }
}

profilerBench();
await browserBench();
