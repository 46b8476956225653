import * as Comlink from 'comlink';
import { Connection } from './connection.js';
import { resolveOptions, SketchwatchError, type AgentOptions, type LoadOptions } from './options.js';
import type { AgentStatus, LoadResult, PredictResult, TensorPayload } from './protocol.js';

export { SketchwatchError, type AgentOptions, type LoadOptions } from './options.js';
export type { AgentStatus, PredictResult, BackendName } from './protocol.js';

/**
 * sketchwatch in the page. Two ways in:
 *
 *   const model = await sketchwatch.load({ modelUrl, collector, key, model: 'weather', … });
 *   const y = await model.predict([[1, 2, 3]]);          // the model runs in a worker
 *
 *   const monitored = sketchwatch.wrap(tfModel, { collector, key, model: 'weather', … });
 *   const y = monitored.predict(x);                        // the model runs where it was
 *
 * Either way, a worker profiles every prediction into window sketches, keeps them in IndexedDB
 * and sends them to the collector. Nothing the agent does throws into the page: `load()`
 * rejects with a SketchwatchError when the model cannot be loaded; the wrapped model behaves
 * exactly like the model, with or without a working agent.
 */

const baseUrl = (): string => (typeof location !== 'undefined' ? location.href : 'http://localhost/');

/** What predict() accepts in worker mode. */
export type PredictInput =
  | number[][]
  | number[]
  | { data: Float32Array | Int32Array | Uint8Array | number[]; shape: number[] }
  | TensorLike;

/** The parts of a tf.Tensor the agent uses (it never imports tfjs on the page). */
export interface TensorLike {
  shape: number[];
  dtype: string;
  data(): Promise<ArrayLike<number>>;
  clone(): TensorLike;
  dispose(): void;
}

function isTensor(x: unknown): x is TensorLike {
  return typeof x === 'object' && x !== null && typeof (x as TensorLike).data === 'function' && Array.isArray((x as TensorLike).shape);
}

/** Nested arrays → one typed array and a shape; typed input is copied (never detached from the caller). */
async function toPayload(input: PredictInput): Promise<{ payload: TensorPayload; nested: boolean }> {
  if (Array.isArray(input)) {
    const rows = (Array.isArray(input[0]) ? input : [input]) as number[][];
    const cols = rows[0]?.length ?? 0;
    if (rows.length === 0 || cols === 0) throw new SketchwatchError('bad_input', 'predict() needs at least one row with at least one value');
    const data = new Float32Array(rows.length * cols);
    for (let r = 0; r < rows.length; r++) {
      const row = rows[r];
      if (!Array.isArray(row) || row.length !== cols) {
        throw new SketchwatchError('bad_input', `predict(): row ${r} has ${Array.isArray(row) ? row.length : 'no'} values, row 0 has ${cols}`);
      }
      for (let c = 0; c < cols; c++) data[r * cols + c] = row[c] as number;
    }
    return { payload: { data, shape: [rows.length, cols], dtype: 'float32' }, nested: true };
  }
  if (isTensor(input)) {
    const values = await input.data();
    const dtype = input.dtype === 'int32' ? 'int32' : input.dtype === 'bool' ? 'bool' : 'float32';
    // data() may hand out the tensor's own buffer (cpu backend): copy once, then transfer the copy.
    const data = dtype === 'int32' ? Int32Array.from(values) : dtype === 'bool' ? Uint8Array.from(values) : Float32Array.from(values);
    return { payload: { data, shape: input.shape.slice(), dtype }, nested: false };
  }
  if (input && typeof input === 'object' && 'data' in input && Array.isArray(input.shape)) {
    const d = input.data;
    const data = d instanceof Int32Array ? d.slice() : d instanceof Uint8Array ? d.slice() : Float32Array.from(d as ArrayLike<number>);
    const dtype = d instanceof Int32Array ? 'int32' : d instanceof Uint8Array ? 'bool' : 'float32';
    const n = input.shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new SketchwatchError('bad_input', `predict(): shape [${input.shape}] holds ${n} values, data has ${data.length}`);
    return { payload: { data, shape: input.shape.slice(), dtype }, nested: false };
  }
  throw new SketchwatchError('bad_input', 'predict() takes number[][], { data, shape } or a tf.Tensor');
}

function rows(out: PredictResult): number[][] {
  const n = out.shape[0] ?? 1;
  const width = out.data.length / n;
  const result: number[][] = [];
  for (let r = 0; r < n; r++) result.push(Array.from(out.data.subarray(r * width, (r + 1) * width)));
  return result;
}

/** A model running in the agent's worker. */
export interface MonitoredModel {
  /** The backend actually running (it may differ from the one asked for: see backendNote). */
  readonly backend: string;
  readonly backendNote: string | null;
  readonly format: 'layers' | 'graph';
  /**
   * Runs the model. Nested arrays give nested arrays back (one row per input row); typed arrays
   * and tensors give `{ data, shape }` (the first output). Rejects with a SketchwatchError.
   */
  predict(input: number[][] | number[]): Promise<number[][]>;
  predict(input: PredictInput): Promise<PredictResult>;
  /** The agent's counters (what was recorded, saved, sent, acknowledged). */
  status(): Promise<AgentStatus>;
  /** Called with the status after each flush. Returns an unsubscribe function. */
  onStatus(listener: (s: AgentStatus) => void): () => void;
  /** Seals what was recorded and sends it now. */
  flush(): Promise<AgentStatus>;
  /** Saves and sends what is pending, then stops the worker. */
  close(): Promise<void>;
}

/** Worker mode: loads the model inside the agent's worker. Rejects with a SketchwatchError. */
export async function load(options: LoadOptions): Promise<MonitoredModel> {
  const resolved = resolveOptions(options, baseUrl());
  const { modelUrl } = options;
  let source: { kind: 'url'; url: string } | { kind: 'artifacts'; artifacts: unknown };
  const transfer: ArrayBuffer[] = [];
  if (typeof modelUrl === 'string') {
    source = { kind: 'url', url: new URL(modelUrl, baseUrl()).href };
  } else if (modelUrl && typeof modelUrl.load === 'function') {
    let artifacts: { weightData?: ArrayBuffer | ArrayBuffer[] };
    try {
      artifacts = (await modelUrl.load()) as typeof artifacts;
    } catch (e) {
      throw new SketchwatchError('model', `the model handler's load() failed: ${(e as Error).message}`);
    }
    const w = artifacts?.weightData;
    if (w instanceof ArrayBuffer) transfer.push(w);
    else if (Array.isArray(w)) transfer.push(...w.filter((b) => b instanceof ArrayBuffer));
    source = { kind: 'artifacts', artifacts };
  } else {
    throw new SketchwatchError('bad_option', 'option modelUrl must be a model.json URL or a tf.io handler');
  }
  const backend = options.backend ?? 'cpu';
  if (!['cpu', 'wasm', 'webgl'].includes(backend)) throw new SketchwatchError('bad_option', 'option backend must be "cpu", "wasm" or "webgl"');
  const wasmPaths = options.wasmPaths === undefined ? undefined : new URL(options.wasmPaths, baseUrl()).href;
  const conn = await Connection.open(resolved);
  let loaded: LoadResult;
  try {
    const request = { source, format: options.format ?? 'auto', backend, wasmPaths };
    loaded = await conn.call('load', (r) => r.load(Comlink.transfer(request, transfer)), Math.max(resolved.callTimeout, 60_000));
  } catch (e) {
    await conn.close().catch(() => {});
    throw new SketchwatchError('model', `could not load the model: ${(e as Error).message}`);
  }
  if (loaded.backendNote) console.warn(`sketchwatch: ${loaded.backendNote}`);
  const model = {
    backend: loaded.backend,
    backendNote: loaded.backendNote,
    format: loaded.format,
    async predict(input: PredictInput): Promise<number[][] | PredictResult> {
      const { payload, nested } = await toPayload(input);
      const out = await conn.call('predict', (r) => r.predict(Comlink.transfer(payload, [payload.data.buffer as ArrayBuffer])));
      return nested ? rows(out) : out;
    },
    status: () => conn.call('status', (r) => r.status()),
    onStatus: (listener: (s: AgentStatus) => void) => conn.onStatus(listener),
    flush: () => conn.call('flush', (r) => r.flush()),
    close: () => conn.close(),
  };
  return model as MonitoredModel;
}

// ---------------------------------------------------------------------- wrap mode

/** The model types wrap() accepts: anything with predict and/or executeAsync (LayersModel, GraphModel). */
export interface ModelLike {
  predict?(...args: any[]): any;
  execute?(...args: any[]): any;
  executeAsync?(...args: any[]): Promise<any>;
}

export interface WrapOptions extends AgentOptions {
  /** The page's tfjs (`import * as tf from '@tensorflow/tfjs'`); found on the page when omitted. */
  tf?: { keep?<T>(t: T): T; getBackend?(): string };
}

/** What a wrapped model carries besides the model's own members. */
export interface Monitor {
  /** Why monitoring is off (bad options, worker failed), or null. */
  readonly error: string | null;
  status(): Promise<AgentStatus>;
  onStatus(listener: (s: AgentStatus) => void): () => void;
  flush(): Promise<AgentStatus>;
  close(): Promise<void>;
}

interface TfEngine {
  keep<T>(t: T): T;
  backendName?: string;
}

function firstTensor(x: unknown): TensorLike | null {
  if (isTensor(x)) return x;
  if (Array.isArray(x)) return isTensor(x[0]) ? x[0] : null;
  if (x && typeof x === 'object') {
    const v = Object.values(x)[0];
    return isTensor(v) ? v : null;
  }
  return null;
}

/**
 * Wrap mode: returns an object that behaves exactly like `model` — predict(), execute() and
 * executeAsync() return the same tensors and throw the same errors — while copies of each
 * call's first input and first output go to the agent's worker, asynchronously, for profiling.
 * The rest of the model (layers, summary(), dispose()…) is the model's own. Monitoring
 * problems never reach the caller: they are reported on `.sketchwatch`.
 */
export function wrap<M extends object>(model: M, options: WrapOptions): M & { sketchwatch: Monitor } {
  let error: string | null = null;
  let conn: Promise<Connection | null> = Promise.resolve(null);
  try {
    const resolved = resolveOptions(options, baseUrl());
    conn = Connection.open(resolved).catch((e: Error) => {
      error = e.message;
      console.warn(`sketchwatch: ${e.message}; the model runs unmonitored`);
      return null;
    });
  } catch (e) {
    error = (e as Error).message;
    console.error(`sketchwatch: ${error}; the model runs unmonitored`);
  }
  const engine = (): TfEngine | null => {
    const g = globalThis as { _tfengine?: TfEngine; tf?: { keep?: TfEngine['keep'] } };
    return g._tfengine ?? null;
  };
  const backendName = (): string => options.tf?.getBackend?.() ?? engine()?.backendName ?? 'unknown';
  const keep = <T>(t: T): T => {
    const k = options.tf?.keep;
    if (k) return k(t);
    const e = engine();
    return e ? e.keep(t) : t;
  };

  /** Copies the first input and output (kept from tf.tidy and disposal) and sends them off. */
  function capture(args: unknown[], result: unknown, ms: number): void {
    const xIn = firstTensor(args[0]);
    const yOut = firstTensor(result);
    if (yOut === null) return;
    // A clone shares the data (no copy) and survives the caller disposing its tensors.
    const x = xIn === null ? null : keep(xIn.clone());
    const y = keep(yOut.clone());
    const time = Date.now();
    const backend = backendName();
    void (async () => {
      try {
        const [xd, yd] = await Promise.all([x?.data() ?? null, y.data()]);
        const input = x === null || xd === null ? null : { data: Float32Array.from(xd), shape: x.shape.slice() };
        const output = { data: Float32Array.from(yd), shape: y.shape.slice() };
        const c = await conn;
        if (c === null) return;
        const buffers = [output.data.buffer, ...(input ? [input.data.buffer] : [])];
        await c.call('observe', (r) => r.observe(time, backend, input, Comlink.transfer(output, buffers), ms));
      } catch {
        /* monitoring only: the page's call already returned */
      } finally {
        x?.dispose();
        y.dispose();
      }
    })();
  }

  function failed(): void {
    const time = Date.now();
    const backend = backendName();
    void conn.then((c) => c?.call('observeError', (r) => r.observeError(time, backend))).catch(() => {});
  }

  const monitor: Monitor = {
    get error() {
      return error;
    },
    status: async () => {
      const c = await conn;
      if (c === null) throw new SketchwatchError('off', error ?? 'monitoring is off');
      return c.call('status', (r) => r.status());
    },
    onStatus: (listener) => {
      let off = () => {};
      void conn.then((c) => {
        if (c) off = c.onStatus(listener);
      });
      return () => off();
    },
    flush: async () => {
      const c = await conn;
      if (c === null) throw new SketchwatchError('off', error ?? 'monitoring is off');
      return c.call('flush', (r) => r.flush());
    },
    close: async () => {
      const c = await conn;
      await c?.close();
    },
  };

  const wrapped = new Map<PropertyKey, unknown>();
  /** After a call: the failure counted, or the result captured; never an error into the page. */
  const settle = (args: unknown[], t0: number, ok: boolean, result: unknown): void => {
    try {
      if (ok) capture(args, result, performance.now() - t0);
      else failed();
    } catch {
      /* never into the page */
    }
  };
  const sync = (name: 'predict' | 'execute') => (...args: unknown[]) => {
    const t0 = performance.now();
    let result: unknown;
    try {
      result = (model as Record<string, (...a: unknown[]) => unknown>)[name].apply(model, args);
    } catch (e) {
      settle(args, t0, false, undefined);
      throw e;
    }
    settle(args, t0, true, result);
    return result;
  };
  const asyncCall = (name: 'executeAsync') => async (...args: unknown[]) => {
    const t0 = performance.now();
    let result: unknown;
    try {
      result = await (model as Record<string, (...a: unknown[]) => Promise<unknown>>)[name].apply(model, args);
    } catch (e) {
      settle(args, t0, false, undefined);
      throw e;
    }
    settle(args, t0, true, result);
    return result;
  };
  if (typeof (model as ModelLike).predict === 'function') wrapped.set('predict', sync('predict'));
  if (typeof (model as ModelLike).execute === 'function') wrapped.set('execute', sync('execute'));
  if (typeof (model as ModelLike).executeAsync === 'function') wrapped.set('executeAsync', asyncCall('executeAsync'));
  wrapped.set('sketchwatch', monitor);

  return new Proxy(model, {
    get(target, prop, receiver) {
      if (wrapped.has(prop)) return wrapped.get(prop);
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
    has(target, prop) {
      return wrapped.has(prop) || Reflect.has(target, prop);
    },
  }) as M & { sketchwatch: Monitor };
}

const sketchwatch = { load, wrap, SketchwatchError };
export default sketchwatch;
