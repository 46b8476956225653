/**
 * What the page and the agent's worker say to each other (over comlink). Types only: both sides
 * import this file and nothing else of each other.
 */
import type { Task } from './profiler.js';

export type BackendName = 'cpu' | 'wasm' | 'webgl';

/** The settings the worker runs with (validated and defaulted on the page). */
export interface WorkerConfig {
  model: string;
  version?: string;
  inputs?: string[];
  outputs?: string[];
  task?: Task;
  window: number;
  flushInterval: number;
  checkpointInterval: number;
  /** Ingest URL including `?key=`. */
  ingestUrl: string;
  maxBatchBytes: number;
  maxOutboxBytes: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
  authPauseMs: number;
  compress: boolean;
  storage: 'indexeddb' | 'memory';
  /** IndexedDB database name: one per (collector, model). */
  dbName: string;
  /** Shortest time between two early sends triggered by tripwires. */
  tripwireMinIntervalMs: number;
}

/** How worker mode gets its model: a URL (model.json) or the artifacts a tf.io handler loaded. */
export type ModelSource =
  | { kind: 'url'; url: string }
  | { kind: 'artifacts'; artifacts: unknown };

export interface LoadRequest {
  source: ModelSource;
  format: 'layers' | 'graph' | 'auto';
  backend: BackendName;
  wasmPaths?: string;
}

export interface LoadResult {
  backend: BackendName | string;
  /** Why the requested backend is not the one running, if it is not. */
  backendNote: string | null;
  format: 'layers' | 'graph';
}

export interface TensorPayload {
  data: Float32Array | Int32Array | Uint8Array;
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
}

export interface PredictResult {
  data: Float32Array | Int32Array | Uint8Array;
  shape: number[];
}

export interface AgentStatus {
  agentId: string | null;
  model: string;
  backend: string | null;
  store: 'indexeddb' | 'memory' | null;
  /** This tab is the one that sends (Web Locks). */
  sender: boolean;
  windowStart: number;
  windowMs: number;
  /** Predictions recorded by this tab since it started. */
  predictions: number;
  /** Predictions recorded but not yet checkpointed (lost if the tab dies now). */
  unsaved: number;
  openWindows: number;
  outboxBatches: number;
  outboxBytes: number;
  batchesSent: number;
  batchesAcknowledged: number;
  duplicatesAcknowledged: number;
  batchesRejected: number;
  /** Batches dropped, oldest first, because the outbox was full (reported as an event too). */
  batchesDropped: number;
  predictionsDropped: number;
  bytesSent: number;
  lastStatus: number | null;
  lastError: string | null;
  retryInMs: number;
}

/** Events from the worker to the page. */
export type AgentEvent =
  /** The oldest unacknowledged batch, ready to go with sendBeacon when the page is hidden. */
  | { type: 'head'; sequence: number; url: string; body: Uint8Array }
  | { type: 'head'; sequence: null }
  | { type: 'warning'; message: string }
  | { type: 'status'; status: AgentStatus };

export type Lifecycle = 'hidden' | 'visible' | 'pagehide' | 'pageshow' | 'online';
