/**
 * Exactly once, in real Chromium: the sink drops acknowledgements, fails with 503, goes offline
 * and answers duplicates; after recovery its count equals the predictions made. Two tabs of one
 * origin both record and one sends. The README's script-tag snippet works as pasted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { AgentStatus } from '../../src/agent/protocol.js';
import { browserSuite, CLASSES, FEATURES, gotoEsm, inputRows, KEY, openPage, ROOT, type SinkMode, until, watchErrors } from './harness.js';

const suite = browserSuite();

async function loadAgent(page: Page, model: string, extra: Record<string, unknown> = {}): Promise<void> {
  await gotoEsm(page, suite.server);
  await page.evaluate(async ({ url, key, features, classes, model, extra }) => {
    const sw = (window as any).sketchwatch;
    (window as any).m = await sw.load({
      modelUrl: '/model/model.json', collector: url, key, model, inputs: features, outputs: classes,
      flushInterval: 250, checkpointInterval: 100, retry: { baseMs: 50, maxMs: 400 }, ...extra,
    });
  }, { url: suite.server.url, key: KEY, features: FEATURES, classes: CLASSES, model, extra });
}

async function predict(page: Page, rows: number[][]): Promise<void> {
  await page.evaluate(async (rows) => {
    await (window as any).m.predict(rows);
  }, rows);
}

/** Flushes until the outbox is empty (the sink in 'ok' mode). */
async function drain(page: Page): Promise<AgentStatus> {
  return page.evaluate(async () => {
    const m = (window as any).m;
    for (let i = 0; i < 200; i++) {
      const s = await m.flush();
      if (s.outboxBatches === 0 && s.openWindows === 0 && s.unsaved === 0) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('outbox did not drain');
  });
}

test('exactly once through dropped acks, 503s, a dead sink, offline and duplicates', async () => {
  suite.server.sink.reset();
  const context = await suite.browser.newContext();
  const page = await openPage(context);
  const errors = watchErrors(page);
  await loadAgent(page, 'faults');
  let made = 0;
  const modes: SinkMode[] = ['ok', 'drop-ack', 'fail503', 'offline', 'drop-ack', 'retry-after', 'ok', 'fail503', 'drop-ack'];
  for (let round = 0; round < modes.length; round++) {
    suite.server.sink.mode = modes[round];
    for (let k = 0; k < 4; k++) {
      const rows = inputRows(5 + k, 100 * round + k);
      await predict(page, rows);
      made += rows.length;
      await new Promise((r) => setTimeout(r, 120));
    }
  }
  // The suite.browser itself offline: fetches fail at once, 'online' resumes.
  suite.server.sink.mode = 'ok';
  await context.setOffline(true);
  for (let k = 0; k < 3; k++) {
    const rows = inputRows(7, 999 + k);
    await predict(page, rows);
    made += rows.length;
    await new Promise((r) => setTimeout(r, 150));
  }
  await context.setOffline(false);
  const status = await drain(page);
  await until(() => suite.server.sink.predictions() === made, 10_000, `${made} predictions at the sink`);
  assert.equal(suite.server.sink.predictions(), made);
  assert.ok(suite.server.sink.duplicates > 0, 'dropped acks led to redeliveries, acknowledged as duplicates');
  assert.ok(status.duplicatesAcknowledged > 0);
  assert.equal(status.batchesRejected, 0);
  const seqs = suite.server.sink.applied.map((r) => r.sequence);
  assert.equal(new Set(seqs).size, seqs.length, 'each sequence applied once');
  assert.equal(new Set(suite.server.sink.applied.map((r) => r.agentId)).size, 1);
  const [w] = suite.server.sink.merged();
  assert.equal(w.inputs.get('temp')!.count, made);
  assert.ok(suite.server.sink.gzipped > 0, 'bodies are gzipped');
  assert.ok(Math.max(...suite.server.sink.bodySizes) <= 60 * 1024);
  assert.deepEqual(errors, []);
  await context.close();
});

test('two tabs of one origin: both record, one sends, totals exact', async () => {
  suite.server.sink.reset();
  const context = await suite.browser.newContext();
  const a = await openPage(context);
  const b = await openPage(context);
  const errors = [...watchErrors(a), ...watchErrors(b)];
  await loadAgent(a, 'tabs', { flushInterval: 400 });
  await loadAgent(b, 'tabs', { flushInterval: 400 });
  let made = 0;
  for (let i = 0; i < 10; i++) {
    const ra = inputRows(6, 500 + i);
    const rb = inputRows(9, 700 + i);
    await Promise.all([predict(a, ra), predict(b, rb)]);
    made += ra.length + rb.length;
    await new Promise((r) => setTimeout(r, 60));
  }
  const [sa, sb] = await Promise.all([drain(a), drain(b)]);
  await until(async () => {
    const [x, y] = await Promise.all([drain(a), drain(b)]);
    return x.outboxBatches === 0 && y.outboxBatches === 0 && suite.server.sink.predictions() === made;
  }, 10_000, `${made} predictions from two tabs`);
  assert.equal(sa.sender !== sb.sender, true, 'exactly one tab holds the send lock');
  const sender = sa.sender ? sa : sb;
  const quiet = sa.sender ? sb : sa;
  assert.ok(sender.batchesSent > 0);
  assert.equal(quiet.batchesSent, 0, 'the other tab never sent');
  assert.equal(sa.agentId, sb.agentId, 'one agent per origin and model');
  assert.equal(suite.server.sink.predictions(), made);
  assert.deepEqual(errors, []);
  // The sending tab goes away: the other takes over.
  const senderPage = sa.sender ? a : b;
  const otherPage = sa.sender ? b : a;
  await senderPage.close({ runBeforeUnload: true });
  const more = inputRows(11, 900);
  await predict(otherPage, more);
  made += more.length;
  await until(async () => (await drain(otherPage)).sender === true && suite.server.sink.predictions() === made, 10_000, 'the remaining tab sends');
  await context.close();
});

test('the README\'s script-tag snippet, pasted into a plain page, works', async () => {
  suite.server.sink.reset();
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const snippet = /\*\*Script tag\*\*[\s\S]*?```html\n([\s\S]*?)```/.exec(readme);
  assert.ok(snippet, 'the README has a script-tag snippet');
  // What a newcomer changes: where the files are, the collector's URL, their key.
  const html = snippet[1]
    .replace('src="sketchwatch.iife.js"', 'src="/dist/agent/sketchwatch.iife.js"')
    .replace('/models/weather/model.json', '/model/model.json')
    .replace('https://monitor.example.com', suite.server.url)
    .replace('INGEST_KEY', KEY);
  suite.server.pages.set('/newcomer.html', `<!doctype html><html><head><meta charset="utf-8"><title>My app</title></head><body>${html}</body></html>`);
  const page = await openPage(suite.browser);
  const errors = watchErrors(page);
  const logged: unknown[] = [];
  page.on('console', (m) => {
    if (m.type() === 'log') void m.args()[0]?.jsonValue().then((v) => logged.push(v));
  });
  await page.goto(`${suite.server.url}/newcomer.html`);
  await until(() => logged.length > 0, 15_000, 'the snippet\'s console.log');
  const probabilities = logged[0] as number[][];
  assert.equal(probabilities.length, 1, `logged: ${JSON.stringify(probabilities)}`);
  assert.ok(Math.abs(probabilities[0].reduce((a, b) => a + b, 0) - 1) < 1e-5, 'one row of probabilities');
  // The default flush interval is 30 s: hide the page, as a user leaving it would.
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await until(() => suite.server.sink.predictions() === 1, 10_000, 'the newcomer\'s prediction at the sink');
  const [w] = suite.server.sink.merged();
  assert.deepEqual(w.segment, { backend: 'cpu', model: 'weather', version: '3' });
  assert.equal(w.inputs.get('temp_max')!.count, 1);
  assert.deepEqual(errors, []);
  await page.close();
});
