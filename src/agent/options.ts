import { MAX_FEATURE_NAME, MAX_WINDOW_MS, MIN_WINDOW_MS } from '../sketch/index.js';
import type { Task } from './profiler.js';
import type { BackendName, WorkerConfig } from './protocol.js';

/** An error the agent hands to the caller (a rejected promise, never a throw into the page). */
export class SketchwatchError extends Error {
  override name = 'SketchwatchError';
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Options shared by `load()` and `wrap()`. */
export interface AgentOptions {
  /** The collector's base URL, e.g. `https://monitor.example.com` (same origin or CORS). */
  collector: string;
  /** The project's ingest key (the collector prints it when the project is created). */
  key: string;
  /** Model name: the segment every window is filed under. */
  model: string;
  version?: string;
  /** Input feature names: tabular columns, or image channels. Default x0, x1, … */
  inputs?: string[];
  /** Class labels (classification) or output names (regression). */
  outputs?: string[];
  /** Default: classification when there are several outputs and `outputs` names them. */
  task?: Task;
  /** Window length in ms, UTC-aligned. Default 5 minutes. */
  window?: number;
  /** How often recorded windows are sealed and sent, ms. Default 30 s. */
  flushInterval?: number;
  /** How often what was recorded is saved to IndexedDB, ms. Default 1 s. */
  checkpointInterval?: number;
  /** Largest payload, bytes (the browser's keepalive quota is 64 KiB). Default 60 KiB. */
  maxBatchBytes?: number;
  /** Outbox cap, bytes; beyond it the oldest batches are dropped (counted, reported). Default 4 MiB. */
  maxOutboxBytes?: number;
  /** Retry backoff: first delay and cap, ms. Defaults 1 s and 5 min. */
  retry?: { baseMs?: number; maxMs?: number };
  /** Gzip payloads. Default true. */
  compress?: boolean;
  /** Where recorded data waits: IndexedDB (default; survives reloads) or memory. */
  storage?: 'indexeddb' | 'memory';
  /** URL of sketchwatch's worker script, for pages whose CSP forbids `worker-src blob:`. */
  workerUrl?: string;
  /** Every call to the worker rejects after this long, ms. Default 15 s. */
  callTimeout?: number;
}

/** Options of worker mode: the model is loaded inside the worker. */
export interface LoadOptions extends AgentOptions {
  /** model.json URL, or a tf.io handler (an object with `load()`), e.g. tf.io.browserFiles(…). */
  modelUrl: string | { load(): Promise<unknown> };
  /** 'layers' | 'graph' | 'auto' (default: read from model.json). */
  format?: 'layers' | 'graph' | 'auto';
  /** Default 'cpu'. 'wasm' needs `wasmPaths`; 'webgl' runs where OffscreenCanvas has WebGL. */
  backend?: BackendName;
  /** URL of the folder serving tfjs-backend-wasm's .wasm files (ending in /). */
  wasmPaths?: string;
}

export interface Resolved {
  config: WorkerConfig;
  callTimeout: number;
  workerUrl?: string;
}

function positive(name: string, v: unknown, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
    throw new SketchwatchError('bad_option', `option ${name} must be a number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return Math.round(v);
}

function names(option: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string' && s.length > 0 && s.length <= MAX_FEATURE_NAME - 8)) {
    throw new SketchwatchError('bad_option', `option ${option} must be a non-empty array of names (1 to ${MAX_FEATURE_NAME - 8} characters)`);
  }
  if (new Set(v).size !== v.length) throw new SketchwatchError('bad_option', `option ${option} has a name twice`);
  return [...v];
}

/** Checks options and fills defaults; throws SketchwatchError saying what is wrong. */
export function resolveOptions(o: AgentOptions, baseUrl: string): Resolved {
  if (o === null || typeof o !== 'object') throw new SketchwatchError('bad_option', 'options must be an object');
  if (typeof o.collector !== 'string' || o.collector.length === 0) {
    throw new SketchwatchError('bad_option', 'option collector must be the collector URL, e.g. "https://monitor.example.com"');
  }
  let collector: URL;
  try {
    collector = new URL(o.collector, baseUrl);
  } catch {
    throw new SketchwatchError('bad_option', `option collector is not a URL: ${JSON.stringify(o.collector)}`);
  }
  if (typeof o.key !== 'string' || o.key.length === 0 || o.key.length > 128) {
    throw new SketchwatchError('bad_option', 'option key must be the project\'s ingest key (from the collector)');
  }
  if (typeof o.model !== 'string' || o.model.length === 0 || o.model.length > 200) {
    throw new SketchwatchError('bad_option', 'option model must name the model (1 to 200 characters)');
  }
  if (o.version !== undefined && (typeof o.version !== 'string' || o.version.length > 200)) {
    throw new SketchwatchError('bad_option', 'option version must be a string');
  }
  if (o.task !== undefined && o.task !== 'classification' && o.task !== 'regression') {
    throw new SketchwatchError('bad_option', 'option task must be "classification" or "regression"');
  }
  if (o.storage !== undefined && o.storage !== 'indexeddb' && o.storage !== 'memory') {
    throw new SketchwatchError('bad_option', 'option storage must be "indexeddb" or "memory"');
  }
  const window = positive('window', o.window, MIN_WINDOW_MS, MAX_WINDOW_MS, 300_000);
  const base = collector.href.replace(/\/+$/, '');
  const ingestUrl = `${base}/v1/ingest?key=${encodeURIComponent(o.key)}`;
  let workerUrl: string | undefined;
  if (o.workerUrl !== undefined) {
    if (typeof o.workerUrl !== 'string') throw new SketchwatchError('bad_option', 'option workerUrl must be a URL');
    workerUrl = new URL(o.workerUrl, baseUrl).href;
  }
  return {
    callTimeout: positive('callTimeout', o.callTimeout, 100, 600_000, 15_000),
    workerUrl,
    config: {
      model: o.model,
      version: o.version,
      inputs: names('inputs', o.inputs),
      outputs: names('outputs', o.outputs),
      task: o.task,
      window,
      flushInterval: positive('flushInterval', o.flushInterval, 100, 86_400_000, 30_000),
      checkpointInterval: positive('checkpointInterval', o.checkpointInterval, 50, 600_000, 1_000),
      ingestUrl,
      maxBatchBytes: positive('maxBatchBytes', o.maxBatchBytes, 4_096, 60 * 1024, 60 * 1024),
      maxOutboxBytes: positive('maxOutboxBytes', o.maxOutboxBytes, 64 * 1024, 512 * 1024 * 1024, 4 * 1024 * 1024),
      baseBackoffMs: positive('retry.baseMs', o.retry?.baseMs, 10, 3_600_000, 1_000),
      maxBackoffMs: positive('retry.maxMs', o.retry?.maxMs, 10, 86_400_000, 300_000),
      authPauseMs: 600_000,
      compress: o.compress ?? true,
      storage: o.storage ?? 'indexeddb',
      dbName: `sketchwatch:${base}:${o.model}`,
      tripwireMinIntervalMs: 2_000,
    },
  };
}
