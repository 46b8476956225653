import * as Comlink from 'comlink';
import { AgentCore } from '../core.js';
import type { AgentEvent, AgentStatus, LoadRequest, LoadResult, Lifecycle, PredictResult, TensorPayload, WorkerConfig } from '../protocol.js';
import type { TensorData } from '../profiler.js';
import { WorkerModel } from './model.js';

/**
 * The agent's worker: one per monitored model and tab. Exposed over comlink at once (messages
 * that arrive before init are queued by the browser and answered in order).
 */
let core: AgentCore | null = null;
let model: WorkerModel | null = null;
let starting: Promise<void> | null = null;

function ready(): AgentCore {
  if (core === null) throw new Error('sketchwatch worker: init() was not called');
  return core;
}

const api = {
  async init(config: WorkerConfig, emit: (e: AgentEvent) => void): Promise<AgentStatus> {
    if (core === null) {
      // A failing emit (the page went away) must not break the worker.
      core = new AgentCore(config, (e) => {
        try {
          void Promise.resolve(emit(e)).catch(() => {});
        } catch {
          /* page gone */
        }
      });
      starting = core.start();
    }
    await starting;
    return core.status();
  },

  async load(request: LoadRequest): Promise<LoadResult> {
    await starting;
    const { model: m, result } = await WorkerModel.load(request);
    model = m;
    ready().setBackend(result.backend);
    return result;
  },

  /** Worker mode: run the model and record the prediction. */
  async predict(input: TensorPayload): Promise<PredictResult> {
    await starting;
    const c = ready();
    if (model === null) throw new Error('sketchwatch: no model loaded');
    const t0 = performance.now();
    let out: PredictResult;
    try {
      out = await model.predict(input);
    } catch (e) {
      c.recordError(Date.now());
      throw e;
    }
    const ms = performance.now() - t0;
    c.record(Date.now(), input, out, ms);
    return Comlink.transfer(out, [out.data.buffer as ArrayBuffer]);
  },

  /** Wrap mode: record a prediction made on the page. */
  async observe(time: number, backend: string, input: TensorData | null, output: TensorData, latencyMs: number): Promise<void> {
    await starting;
    const c = ready();
    c.setBackend(backend);
    c.record(time, input, output, latencyMs);
  },

  async observeError(time: number, backend: string): Promise<void> {
    await starting;
    const c = ready();
    c.setBackend(backend);
    c.recordError(time);
  },

  async lifecycle(state: Lifecycle): Promise<{ sequence: number; url: string; body: Uint8Array } | null> {
    await starting;
    return ready().lifecycle(state);
  },

  async flush(): Promise<AgentStatus> {
    await starting;
    await ready().flush();
    return ready().status();
  },

  async checkpoint(): Promise<void> {
    await starting;
    await ready().checkpoint();
  },

  async status(): Promise<AgentStatus> {
    await starting;
    return ready().status();
  },

  async close(): Promise<void> {
    await starting;
    await core?.close();
  },
};

export type WorkerApi = typeof api;

Comlink.expose(api);
