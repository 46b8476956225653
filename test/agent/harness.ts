/**
 * Browser tests of the agent: a local HTTP server (pages, the built package, model files, the
 * wasm binaries, and a beacon sink that decodes every batch with the codec and acknowledges it
 * the way the collector does), real Chromium through playwright-core, and a small real tf.js
 * model trained here in Node.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdirSync, readFileSync, existsSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join, extname, normalize } from 'node:path';
import { tmpdir } from 'node:os';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import * as tf from '@tensorflow/tfjs';
import { decodeBatch, type WindowProfile } from '../../src/sketch/index.js';
import { mergeWindows } from '../../src/agent/profiler.js';
import { after, before } from 'node:test';
import { ROOT } from '../collector/harness.js';

export { ROOT };
export { until } from '../helpers.js';
export const KEY = 'test-ingest-key';
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const LAUNCH_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

// ---------------------------------------------------------------------- model

export const FEATURES = ['temp', 'humidity', 'wind', 'pressure'];
export const CLASSES = ['sun', 'rain', 'snow'];
const MODEL_DIR = join(ROOT, 'test', '.tmp', 'model');
let modelBuilt: Promise<tf.LayersModel> | null = null;

/**
 * A small real classifier (4 inputs → 8 relu → 3 softmax), trained for a few epochs on a fixed
 * synthetic rule and saved as model.json + weights.bin, as tfjs saves models. Returns the model
 * (the reference the browser's predictions are compared with).
 */
export function trainedModel(): Promise<tf.LayersModel> {
  modelBuilt ??= (async () => {
    const n = 600;
    const xs: number[][] = [];
    const ys: number[] = [];
    let s = 12345;
    const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let i = 0; i < n; i++) {
      const row = [rnd() * 40 - 10, rnd() * 100, rnd() * 20, 980 + rnd() * 50];
      xs.push(row);
      ys.push(row[0] < 0 ? 2 : row[1] > 60 ? 1 : 0);
    }
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.05), loss: 'sparseCategoricalCrossentropy' });
    const mean = [10, 50, 10, 1005];
    const scale = [20, 50, 10, 25];
    const x = tf.tensor2d(xs.map((r) => r.map((v, j) => (v - mean[j]) / scale[j])));
    // Normalisation folded into the data: the model takes normalised inputs.
    await model.fit(x, tf.tensor1d(ys, 'float32'), { epochs: 5, batchSize: 64, verbose: 0, shuffle: false });
    mkdirSync(MODEL_DIR, { recursive: true });
    await model.save(tf.io.withSaveHandler(async (a) => {
      writeFileSync(join(MODEL_DIR, 'model.json'), JSON.stringify({
        format: 'layers-model', generatedBy: 'sketchwatch tests', modelTopology: a.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
      }));
      writeFileSync(join(MODEL_DIR, 'weights.bin'), Buffer.from(a.weightData as ArrayBuffer));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    return model;
  })();
  return modelBuilt;
}

/**
 * A graph model (the converter's format) written by hand: x[?,4] · W[4,3] → Softmax, with W a
 * fixed matrix. Returned as tf.io artifacts (what a handler's load() gives).
 */
export const GRAPH_W = [0.5, -0.2, 0.1, 0.3, 0.8, -0.5, -0.4, 0.1, 0.9, 0.05, 0.02, -0.03];
export function graphArtifacts(): Record<string, unknown> {
  const dim = (...s: number[]) => ({ dim: s.map((size) => ({ size: String(size) })) });
  return {
    format: 'graph-model',
    modelTopology: {
      node: [
        { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: dim(-1, 4) } } },
        { name: 'w', op: 'Const', attr: { dtype: { type: 'DT_FLOAT' }, value: { tensor: { dtype: 'DT_FLOAT', tensorShape: dim(4, 3) } } } },
        { name: 'mm', op: 'MatMul', input: ['x', 'w'], attr: { T: { type: 'DT_FLOAT' }, transpose_a: { b: false }, transpose_b: { b: false } } },
        { name: 'probs', op: 'Softmax', input: ['mm'], attr: { T: { type: 'DT_FLOAT' } } },
      ],
      versions: { producer: 1 },
    },
    weightSpecs: [{ name: 'w', shape: [4, 3], dtype: 'float32' }],
    weightData: Array.from(GRAPH_W),
  };
}

/** The graph model's output computed here: softmax(x · W). */
export function graphReference(rows: number[][]): number[][] {
  return rows.map((x) => {
    const z = [0, 1, 2].map((j) => x.reduce((s, v, i) => s + v * GRAPH_W[i * 3 + j], 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const t = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / t);
  });
}

// ---------------------------------------------------------------------- sink

export type SinkMode = 'ok' | 'drop-ack' | 'fail503' | 'offline' | 'unauthorized' | 'retry-after';

export interface Received {
  agentId: string;
  sequence: number;
  windows: WindowProfile[];
  beacon: boolean;
}

/**
 * The collector's ingest contract, in memory: decode strictly (400 on failure), dedupe on
 * (agent id, sequence), acknowledge with `{status, sequence, agentId}`. Modes inject faults.
 */
export class Sink {
  mode: SinkMode = 'ok';
  readonly applied: Received[] = [];
  readonly seen = new Map<string, number>();
  requests = 0;
  /** Requests that came by sendBeacon (Sec-Fetch-Mode: no-cors), applied or not. */
  beacons = 0;
  duplicates = 0;
  gzipped = 0;
  readonly bodySizes: number[] = [];
  private readonly keys = new Set<string>();

  handle(req: IncomingMessage, res: ServerResponse, body: Buffer, url: URL): void {
    this.requests++;
    if (this.mode === 'offline') {
      req.socket.destroy();
      return;
    }
    if (url.searchParams.get('key') !== KEY || this.mode === 'unauthorized') return json(res, 403, { error: 'unknown ingest key' });
    if (this.mode === 'fail503') return json(res, 503, { error: 'store down' }, { 'retry-after': '1' });
    if (this.mode === 'retry-after') return json(res, 429, { error: 'slow down' }, { 'retry-after': '2' });
    let bytes = body;
    if (url.searchParams.get('encoding') === 'gzip') {
      this.gzipped++;
      try {
        bytes = gunzipSync(body);
      } catch {
        return json(res, 400, { error: 'bad gzip' });
      }
    }
    this.bodySizes.push(body.length);
    let batch;
    try {
      batch = decodeBatch(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (e) {
      return json(res, 400, { error: (e as Error).message });
    }
    const key = `${batch.agentId}/${batch.sequence}`;
    const beacon = req.headers['sec-fetch-mode'] === 'no-cors';
    if (beacon) this.beacons++;
    let status: 'applied' | 'duplicate' = 'duplicate';
    if (!this.keys.has(key)) {
      this.keys.add(key);
      this.applied.push({ agentId: batch.agentId, sequence: batch.sequence, windows: batch.windows, beacon });
      status = 'applied';
    } else {
      this.duplicates++;
    }
    if (this.mode === 'drop-ack') {
      // Applied, but the answer never arrives.
      req.socket.destroy();
      return;
    }
    json(res, 200, { status, sequence: batch.sequence, agentId: batch.agentId });
  }

  /** Everything applied, merged per window and segment. */
  merged(): WindowProfile[] {
    return mergeWindows(...this.applied.map((r) => r.windows));
  }

  predictions(): number {
    return this.applied.reduce((s, r) => s + r.windows.reduce((t, w) => t + w.predictions, 0), 0);
  }

  reset(): void {
    this.applied.length = 0;
    this.keys.clear();
    this.requests = 0;
    this.beacons = 0;
    this.duplicates = 0;
    this.mode = 'ok';
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

// ---------------------------------------------------------------------- server

const TYPES: Record<string, string> = {
  '.js': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.wasm': 'application/wasm', '.bin': 'application/octet-stream', '.map': 'application/json',
};

export interface TestServer {
  url: string;
  port: number;
  sink: Sink;
  /** Pages by path (e.g. '/page.html'), served as HTML. */
  pages: Map<string, string>;
  close(): Promise<void>;
}

/** Serves /dist, /model, /wasm, /tfjs (the page's tfjs), pages, and the sink at /v1/ingest. */
export async function startServer(port = 0): Promise<TestServer> {
  await trainedModel();
  const sink = new Sink();
  const pages = new Map<string, string>();
  const roots: Record<string, string> = {
    '/dist/': join(ROOT, 'dist'),
    '/model/': MODEL_DIR,
    '/wasm/': join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist'),
    '/tfjs/': join(ROOT, 'node_modules/@tensorflow/tfjs/dist'),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', () => {});
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/v1/ingest' && req.method === 'POST') return sink.handle(req, res, Buffer.concat(chunks), url);
      if (url.pathname === '/favicon.ico') return res.writeHead(204).end();
      const page = pages.get(url.pathname);
      if (page !== undefined) {
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(page);
      }
      for (const [prefix, dir] of Object.entries(roots)) {
        if (!url.pathname.startsWith(prefix)) continue;
        const file = normalize(join(dir, url.pathname.slice(prefix.length)));
        if (!file.startsWith(dir) || !existsSync(file)) break;
        res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
        return res.end(readFileSync(file));
      }
      res.writeHead(404).end('not found');
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const p = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${p}`,
    port: p,
    sink,
    pages,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

// ---------------------------------------------------------------------- browser

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS, headless: true });
}

/** A browser whose profile (IndexedDB) lives in `dir`, for restarts. */
export async function launchPersistent(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, args: LAUNCH_ARGS, headless: true });
}

export function tempDir(prefix: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * A new page whose functions passed to page.evaluate work as written: tsx compiles test files
 * with esbuild's keepNames, which calls a `__name` helper the page does not have.
 */
export async function openPage(target: Browser | BrowserContext): Promise<Page> {
  const page = await target.newPage();
  await page.addInitScript('globalThis.__name = (f) => f');
  return page;
}

/** Collects page errors and console errors; tests assert the list stays empty. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  return errors;
}

/** A page that loads the ESM build and exposes it as window.sketchwatch. */
export function esmPage(extraHead = ''): string {
  return `<!doctype html><html><head><meta charset="utf-8">${extraHead}
<script type="module">
import * as sketchwatch from '/dist/agent/index.js';
window.sketchwatch = sketchwatch;
window.ready = true;
</script></head><body></body></html>`;
}


/** Rows of inputs (normalised scale), fixed seed. */
export function inputRows(n: number, seed = 7): number[][] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return Array.from({ length: n }, () => [rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 2 - 1, rnd() * 4 - 2]);
}

/** A page that loads TF.js and the agent's IIFE build with script tags (wrap mode, README snippet). */
export const WRAP_PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/tfjs/tf.min.js"></script>
<script src="/dist/agent/sketchwatch.iife.js"></script></head><body></body></html>`;

/**
 * Registers the before/after hooks of a browser test file: a test server serving the ESM page
 * (and `pages`), and one Chromium. Read them from the returned object inside tests.
 */
export function browserSuite(pages: Record<string, string> = {}): { readonly server: TestServer; readonly browser: Browser } {
  const suite = {} as { server: TestServer; browser: Browser };
  before(async () => {
    suite.server = await startServer();
    suite.server.pages.set('/esm.html', esmPage());
    for (const [path, html] of Object.entries(pages)) suite.server.pages.set(path, html);
    suite.browser = await launch();
  });
  after(async () => {
    await suite.browser?.close();
    await suite.server?.close();
  });
  return suite;
}

/** Opens the ESM page of a suite's server and waits until the agent module is ready. */
export async function gotoEsm(page: Page, server: TestServer): Promise<void> {
  await page.goto(`${server.url}/esm.html`);
  await page.waitForFunction(() => (window as any).ready);
}
