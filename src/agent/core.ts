import { Delivery, type Prepared } from './delivery.js';
import { Profiler, type TensorData } from './profiler.js';
import type { AgentEvent, AgentStatus, Lifecycle, WorkerConfig } from './protocol.js';
import { IdbStore, MemoryStore, StoreError, type AgentStore } from './store.js';

/**
 * The agent's engine inside the worker: records predictions into the profiler, checkpoints
 * them to the store on a short interval, seals them into outbox batches every flush interval
 * (or at once when a tripwire fires, or when the page is hidden), and — in the one tab that holds
 * the send lock — delivers the outbox. No tfjs here: worker mode and wrap mode share it.
 *
 * Nothing here throws into its caller's caller: background work catches, counts and reports.
 */
export class AgentCore {
  readonly config: WorkerConfig;
  private readonly emit: (e: AgentEvent) => void;
  private readonly profiler: Profiler;
  private store: AgentStore = new MemoryStore();
  private delivery!: Delivery;
  private agentId: string | null = null;
  private backend = 'none';
  private sender = false;
  private releaseLock: (() => void) | null = null;
  private lockWanted = false;
  private channel: BroadcastChannel | null = null;
  private timers: ReturnType<typeof setInterval>[] = [];
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private tripwireTimer: ReturnType<typeof setTimeout> | null = null;
  private predictions = 0;
  private unsaved = 0;
  private dropped = { batches: 0, predictions: 0 };
  private lastTripwireSeal = -Infinity;
  private lastHeadSequence: number | null | undefined = undefined;
  private closed = false;
  /** Checkpoints and seals run one at a time (each waits for the one before). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly warned = new Set<string>();

  constructor(config: WorkerConfig, emit: (e: AgentEvent) => void) {
    this.config = config;
    this.emit = emit;
    this.profiler = new Profiler({
      model: config.model, version: config.version, inputs: config.inputs, outputs: config.outputs, task: config.task, window: config.window,
    });
  }

  /** One console warning per kind of trouble, and an event to the page. */
  warn(kind: string, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    console.warn(`sketchwatch: ${message}`);
    this.emit({ type: 'warning', message });
  }

  async start(): Promise<void> {
    if (this.config.storage === 'indexeddb') {
      try {
        this.store = await IdbStore.open({ name: this.config.dbName, onBlocking: () => {} });
      } catch (e) {
        this.warn('storage', `${(e as Error).message}; keeping data in memory (it will not survive a reload)`);
        this.store = new MemoryStore();
      }
    }
    try {
      this.agentId = await this.store.agentId();
    } catch (e) {
      this.warn('storage', `IndexedDB failed (${(e as Error).message}); keeping data in memory`);
      this.store = new MemoryStore();
      this.agentId = await this.store.agentId();
    }
    this.delivery = this.makeDelivery();
    if (typeof BroadcastChannel !== 'undefined') {
      this.channel = new BroadcastChannel(`sketchwatch:${this.config.dbName}`);
      this.channel.onmessage = () => {
        if (this.sender) void this.send();
      };
    }
    this.acquireSendLock();
    this.timers.push(setInterval(() => void this.checkpoint(), this.config.checkpointInterval));
    this.timers.push(setInterval(() => void this.flush(), this.config.flushInterval));
    if (typeof addEventListener === 'function') addEventListener('online', () => this.lifecycle('online'));
  }

  private makeDelivery(): Delivery {
    return new Delivery(this.store, {
      url: this.config.ingestUrl,
      baseBackoffMs: this.config.baseBackoffMs,
      maxBackoffMs: this.config.maxBackoffMs,
      authPauseMs: this.config.authPauseMs,
      compress: this.config.compress,
      fetch: (...args) => fetch(...args),
      now: () => Date.now(),
      random: Math.random,
    }, (e) => {
      if (e.type === 'rejected') this.warn(`rejected${e.httpStatus}`, `the collector refused a batch (${e.httpStatus}: ${e.error}); it was dropped`);
      if (e.type === 'auth') this.warn('auth', `the collector refused the ingest key (${e.httpStatus}: ${e.error}); check the key option`);
    });
  }

  /**
   * IndexedDB stopped working under us (a newer agent upgraded the database, or the browser
   * closed it): carry on in memory, under a new agent id — the new outbox numbers its batches
   * from 1 again, which the collector must not take for duplicates of the old id's.
   */
  private async fallBackToMemory(e: unknown): Promise<void> {
    if (this.store.kind === 'memory') return;
    this.warn('storage', `IndexedDB failed (${(e as Error)?.message ?? e}); keeping data in memory from now on`);
    this.store.close();
    this.store = new MemoryStore();
    this.agentId = await this.store.agentId();
    this.delivery = this.makeDelivery();
    this.releaseSendLock();
    this.sender = true;
  }

  setBackend(backend: string): void {
    this.backend = backend;
  }

  /** Takes the send lock when it is free (at once, or when the tab holding it goes). */
  private acquireSendLock(): void {
    this.lockWanted = true;
    const locks = (globalThis.navigator as Navigator | undefined)?.locks;
    if (!locks || this.config.storage === 'memory' || this.store.kind === 'memory') {
      // No shared outbox, or no way to elect: this tab sends its own.
      this.sender = true;
      return;
    }
    if (this.releaseLock !== null) return;
    locks.request(`sketchwatch-send:${this.config.dbName}`, () => {
      if (!this.lockWanted || this.closed) return undefined;
      this.sender = true;
      void this.send();
      return new Promise<void>((resolve) => {
        this.releaseLock = () => {
          this.sender = false;
          this.releaseLock = null;
          resolve();
        };
      });
    }).catch((e: unknown) => this.warn('locks', `Web Locks failed (${(e as Error)?.message}); this tab sends`));
  }

  private releaseSendLock(): void {
    this.lockWanted = false;
    this.releaseLock?.();
  }

  // ------------------------------------------------------------------ recording

  record(time: number, input: TensorData | null, output: TensorData, latencyMs: number): void {
    if (this.closed) return;
    try {
      const n = this.profiler.record(time, this.backend, input, output, latencyMs);
      this.predictions += n;
      this.unsaved += n;
    } catch (e) {
      this.warn('record', `could not record a prediction: ${(e as Error).message}`);
    }
    this.afterRecord();
  }

  recordError(time: number): void {
    if (this.closed) return;
    try {
      this.profiler.recordError(time, this.backend);
    } catch {
      /* an event map at its cap: nothing more to count */
    }
    this.afterRecord();
  }

  /** A tripwire sends at once, or — within the minimum interval of the last — when it ends. */
  private afterRecord(): void {
    if (!this.profiler.takeTripped() || this.tripwireTimer !== null) return;
    const wait = this.lastTripwireSeal + this.config.tripwireMinIntervalMs - Date.now();
    const go = () => {
      this.tripwireTimer = null;
      this.lastTripwireSeal = Date.now();
      this.delivery?.resume();
      void this.flush();
    };
    if (wait <= 0) go();
    else this.tripwireTimer = setTimeout(go, wait);
  }

  // ------------------------------------------------------------------ persistence

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Writes what was recorded since the last checkpoint into the open windows. */
  checkpoint(): Promise<void> {
    return this.serial(async () => {
      if (!this.profiler.dirty) return;
      const windows = this.profiler.take();
      // `unsaved` counts down only once the transaction has committed: until then a closed
      // tab would lose these predictions, and status() must say so.
      const n = this.unsaved;
      let saved = false;
      try {
        await this.store.checkpoint(windows);
        saved = true;
      } catch (e) {
        if (e instanceof StoreError) await this.fallBackToMemory(e);
        try {
          await this.store.checkpoint(windows);
          saved = true;
        } catch (again) {
          this.profiler.restore(windows);
          this.warn('checkpoint', `checkpoint failed: ${(again as Error).message}`);
        }
      }
      if (saved) this.unsaved -= n;
    });
  }

  /** Checkpoints, then moves the open windows into outbox batches. */
  seal(): Promise<void> {
    return this.checkpoint().then(() => this.serial(async () => {
      if (this.agentId === null) return;
      try {
        const result = await this.store.seal(this.agentId, this.config.maxBatchBytes, this.config.maxOutboxBytes);
        if (result.dropped.batches > 0) {
          this.dropped.batches += result.dropped.batches;
          this.dropped.predictions += result.dropped.predictions;
          // Reported to the collector in the next batch: it can tell data was lost.
          this.profiler.recordEvent(Date.now(), this.backend, 'outbox_dropped_predictions', result.dropped.predictions);
          this.warn('dropped', `the outbox was full: ${result.dropped.batches} oldest batches were dropped (counted and reported)`);
        }
        if (result.entries.length > 0 && !this.sender) this.channel?.postMessage('outbox');
      } catch (e) {
        // The open windows stay where they are (the transaction did not commit).
        this.warn('seal', `sealing failed: ${(e as Error).message}`);
        if (e instanceof StoreError) await this.fallBackToMemory(e);
      }
    }));
  }

  /** Seals and, in the sending tab, delivers: what the flush timer and tripwires run. */
  async flush(): Promise<void> {
    if (this.closed) return;
    await this.seal();
    if (this.sender) await this.send();
    this.emitStatus();
  }

  /** Delivers the outbox (sending tab only), then tells the page the new head. */
  private async send(): Promise<void> {
    if (!this.sender || this.closed || !this.delivery) return;
    await this.delivery.pump();
    await this.publishHead();
    const wait = this.delivery.waitMs;
    if (wait > 0) {
      if (this.retryTimer !== null) clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        void this.send();
      }, wait + 10);
    }
  }

  /** The oldest unacknowledged batch, prepared for a beacon, sent to the page when it changed. */
  private async publishHead(force = false): Promise<Prepared | null> {
    try {
      const [head] = await this.store.head(1);
      if (head === undefined) {
        if (this.lastHeadSequence !== null || force) this.emit({ type: 'head', sequence: null });
        this.lastHeadSequence = null;
        return null;
      }
      if (!force && head.sequence === this.lastHeadSequence) return null;
      const prepared = await this.delivery.prepare(head);
      this.lastHeadSequence = head.sequence;
      this.emit({ type: 'head', sequence: prepared.sequence, url: prepared.url, body: prepared.body });
      return prepared;
    } catch {
      return null;
    }
  }

  /** The page's lifecycle, forwarded. Hidden: save everything and hand the page a beacon. */
  async lifecycle(state: Lifecycle): Promise<Prepared | null> {
    if (this.closed) return null;
    switch (state) {
      case 'hidden': {
        await this.seal();
        if (!this.sender) return null;
        // Freshly prepared (send time now), for the page's sendBeacon; the fetch goes too.
        const head = await this.publishHead(true);
        void this.send();
        return head;
      }
      case 'pagehide':
        // The page may go into the back/forward cache: let another tab send meanwhile.
        this.releaseSendLock();
        return null;
      case 'pageshow':
        this.acquireSendLock();
        return null;
      case 'online':
        this.delivery?.resume();
        void this.send();
        return null;
      case 'visible':
        void this.publishHead(true);
        return null;
    }
  }

  async status(): Promise<AgentStatus> {
    let counts = { outboxBatches: 0, outboxBytes: 0, openWindows: 0 };
    try {
      counts = await this.store.counts();
    } catch {
      /* reported as zeros */
    }
    const c = this.delivery?.counters;
    const now = Date.now();
    return {
      agentId: this.agentId,
      model: this.config.model,
      backend: this.backend === 'none' ? null : this.backend,
      store: this.store.kind,
      sender: this.sender,
      windowStart: Math.floor(now / this.config.window) * this.config.window,
      windowMs: this.config.window,
      predictions: this.predictions,
      unsaved: this.unsaved,
      ...counts,
      batchesSent: c?.sent ?? 0,
      batchesAcknowledged: c?.acknowledged ?? 0,
      duplicatesAcknowledged: c?.duplicates ?? 0,
      batchesRejected: c?.rejected ?? 0,
      batchesDropped: this.dropped.batches,
      predictionsDropped: this.dropped.predictions,
      bytesSent: c?.bytesSent ?? 0,
      lastStatus: c?.lastStatus ?? null,
      lastError: c?.lastError ?? null,
      retryInMs: this.delivery?.waitMs ?? 0,
    };
  }

  private emitStatus(): void {
    this.status().then((status) => this.emit({ type: 'status', status }), () => {});
  }

  /** Saves what is recorded, stops timers, gives up the send lock, closes the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.seal();
    if (this.sender) await this.delivery.pump();
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.tripwireTimer !== null) clearTimeout(this.tripwireTimer);
    this.releaseSendLock();
    this.channel?.close();
    this.store.close();
  }
}
