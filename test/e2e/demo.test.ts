/**
 * End to end, as `npm start` runs it: the demo collector process (embedded store, demo project,
 * training baseline) serving the demo page and the dashboard; real Chromium; a local webhook
 * sink for the alerts. Screenshots land in test-results/.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Browser, Page } from 'playwright-core';
import { ROOT, launch, openPage, until, watchErrors } from '../agent/harness.js';

const TOKEN = 'e2e-admin-token-0123456789';
const RESULTS = join(ROOT, 'test-results');

interface Hooked {
  at: number;
  state: string;
  key: string;
  model: string;
  summary: string;
}

let demo: ChildProcess;
let base = '';
let ingestKey = '';
let browser: Browser;
let hookServer: Server;
const hooks: Hooked[] = [];

async function admin<T>(path: string): Promise<T> {
  const r = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(r.status, 200, `${path}: ${r.status}`);
  return (await r.json()) as T;
}

before(async () => {
  mkdirSync(RESULTS, { recursive: true });
  hookServer = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      try {
        const m = JSON.parse(body);
        hooks.push({ at: Date.now(), state: m.state, key: m.key, model: m.model, summary: m.summary });
      } catch {
        /* ignore */
      }
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/hook`;
  demo = spawn(process.execPath, [join(ROOT, 'demo/start.mjs'), '--port', '0', '--memory'], {
    cwd: ROOT,
    env: { ...process.env, SKETCHWATCH_ADMIN_TOKEN: TOKEN, SKETCHWATCH_DEMO_WEBHOOK: `${hookUrl},json`, SKETCHWATCH_DETECT_INTERVAL_MS: '500' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  demo.stderr!.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 60_000);
    demo.stdout!.on('data', (d) => {
      out += d;
      const url = /demo:\s+(http:\/\/\S+)\/demo\//.exec(out)?.[1];
      const key = /ingest key: (\S+)/.exec(out)?.[1];
      if (url && key && /Ctrl-C/.test(out)) {
        clearTimeout(timer);
        base = url;
        ingestKey = key;
        resolve();
      }
    });
    demo.on('exit', (code) => reject(new Error(`demo exited with ${code}: ${out}`)));
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  demo?.kill('SIGTERM');
  hookServer?.close();
});

async function predictionsAtCollector(): Promise<number> {
  const { windows } = await admin<{ windows: { predictions: number }[] }>(`/v1/projects/demo/models/weather/windows?from=0&to=${Date.now() + 3_600_000}`);
  return windows.reduce((s, w) => s + w.predictions, 0);
}

async function pauseAndFlush(page: Page): Promise<number> {
  return page.evaluate(async () => {
    const demo = (window as any).demo;
    demo.state.running = false;
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 50; i++) {
      const s = await demo.model.flush();
      if (s.outboxBatches === 0 && s.unsaved === 0 && s.openWindows === 0) return demo.state.made as number;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('the agent did not drain');
  });
}

describe('the demo against the collector npm start runs', () => {
  let page: Page;
  let errors: string[];

  test('normal traffic: every prediction counted at the collector, no alert', async () => {
    page = await openPage(browser);
    errors = watchErrors(page);
    await page.goto(`${base}/demo/`);
    await page.waitForFunction(() => (window as any).demo !== undefined, undefined, { timeout: 30_000 });
    await page.selectOption('#speed', '100');
    await until(async () => (await page.evaluate(() => (window as any).demo.state.made)) >= 1200, 40_000, '1,200 normal predictions');
    const made = await pauseAndFlush(page);
    await until(async () => (await predictionsAtCollector()) === made, 10_000, `${made} predictions at the collector`);
    // Give the detector a few passes over the data.
    await new Promise((r) => setTimeout(r, 2_500));
    const { alerts } = await admin<{ alerts: { state: string; summary: string }[] }>('/v1/projects/demo/alerts');
    assert.deepEqual(alerts.filter((a) => a.state === 'firing').map((a) => a.summary), [], 'normal traffic raises no alert');
    assert.deepEqual(hooks, []);
    await page.screenshot({ path: join(RESULTS, 'demo-normal.png'), fullPage: true });
  });

  test('the unit bug (°F) raises an alert on a temperature, delivered to the webhook', async () => {
    const t0 = Date.now();
    await page.click('input[value=units]');
    await page.evaluate(() => {
      (window as any).demo.state.running = true;
    });
    await until(() => hooks.some((h) => h.state === 'firing' && /temp_(max|min)/.test(h.key)), 60_000, 'an alert on temp_max or temp_min');
    const hit = hooks.find((h) => h.state === 'firing' && /temp_(max|min)/.test(h.key))!;
    assert.equal(hit.model, 'weather');
    assert.match(hit.summary, /temp_(max|min)/);
    console.log(`# unit bug → webhook alert in ${((hit.at - t0) / 1000).toFixed(1)} s: ${hit.summary}`);
    const made = await pauseAndFlush(page);
    await until(async () => (await predictionsAtCollector()) === made, 10_000, 'every prediction counted');
    await page.screenshot({ path: join(RESULTS, 'demo-unit-bug.png'), fullPage: true });
    assert.deepEqual(errors, []);
  });

  test('the dashboard renders the demo model: heat map, bands, histogram, alerts, no console errors', async () => {
    const dash = await openPage(browser);
    const dashErrors = watchErrors(dash);
    await dash.setViewportSize({ width: 1400, height: 1100 });
    await dash.goto(`${base}/dashboard/#token=${TOKEN}`);
    await dash.waitForSelector('body[data-ready=true]', { timeout: 20_000 });
    const seen = await dash.evaluate(() => ({
      heatCells: document.querySelectorAll('#heatmap td.cell').length,
      drifted: [...document.querySelectorAll('#heatmap td.cell')].filter((td) => Number((td as HTMLElement).dataset.ratio) >= 1).length,
      bands: document.querySelectorAll('#bands canvas').length,
      histogram: document.querySelectorAll('#histogram canvas').length,
      quality: document.querySelectorAll('#quality tr').length,
      alerts: [...document.querySelectorAll('#alerts tr')].map((tr) => tr.textContent ?? ''),
      points: (window as any).dashboard?.points() ?? 0,
      token: location.hash,
    }));
    assert.ok(seen.heatCells > 0, 'the heat map has cells');
    assert.ok(seen.drifted > 0, 'some cells show drift');
    assert.equal(seen.bands, 1);
    assert.equal(seen.histogram, 1);
    assert.ok(seen.quality > 0);
    assert.ok(seen.points > 0, 'the charts hold data points');
    assert.ok(seen.alerts.some((t) => /firing/.test(t) && /temp_(max|min)/.test(t)), `alerts: ${seen.alerts}`);
    assert.equal(seen.token, '', 'the token leaves the address bar');
    await dash.screenshot({ path: join(RESULTS, 'dashboard.png'), fullPage: true });
    assert.deepEqual(dashErrors, []);
  });

  test('the README\'s script-tag snippet, in a fresh page of another origin, reaches the collector (CORS)', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const snippet = /\*\*Script tag\*\*[\s\S]*?```html\n([\s\S]*?)```/.exec(readme)![1];
    const before = await predictionsAtCollector();
    // A different origin: the page on localhost, the collector on 127.0.0.1.
    // The team's own origin serves its page and its model; the collector serves only the script.
    const pageServer = createServer((req, res) => {
      if (req.url?.startsWith('/models/weather/')) {
        const file = join(ROOT, 'demo/model', req.url.slice('/models/weather/'.length));
        res.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
        res.end(readFileSync(file));
      } else if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<!doctype html><html><head><meta charset="utf-8"></head><body>${snippet
          .replace('src="sketchwatch.iife.js"', `src="${base}/dist/agent/sketchwatch.iife.js"`)
          .replace('https://monitor.example.com', base)
          .replace('INGEST_KEY', ingestKey)}</body></html>`);
      } else if (req.url === '/favicon.ico') res.writeHead(204).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => pageServer.listen(0, '127.0.0.1', r));
    try {
      const page = await openPage(browser);
      const errors = watchErrors(page);
      const logged: unknown[] = [];
      page.on('console', (m) => {
        if (m.type() === 'log') void m.args()[0]?.jsonValue().then((v) => logged.push(v));
      });
      await page.goto(`http://localhost:${(pageServer.address() as AddressInfo).port}/`);
      await until(() => logged.length > 0, 20_000, 'the snippet\'s prediction');
      assert.equal((logged[0] as number[][])[0].length, 5, 'five class probabilities');
      await page.evaluate(() => {
        Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
        document.dispatchEvent(new Event('visibilitychange'));
      });
      await until(async () => (await predictionsAtCollector()) === before + 1, 15_000, 'the snippet\'s prediction at the collector');
      assert.deepEqual(errors, []);
      await page.close();
    } finally {
      pageServer.close();
    }
  });
});
