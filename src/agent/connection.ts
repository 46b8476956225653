import * as Comlink from 'comlink';
import { SketchwatchError, type Resolved } from './options.js';
import type { AgentEvent, AgentStatus, Lifecycle } from './protocol.js';
import type { WorkerApi } from './worker/index.js';

/**
 * The page's side of one agent: the worker, calls to it with timeouts, the page lifecycle
 * forwarded to it, and the teardown beacon. Every call either resolves or rejects with a
 * SketchwatchError within the timeout, even when the worker died (comlink alone would wait
 * forever: comlink#601, #655).
 */
let inlineUrl: string | null = null;

async function workerScriptUrl(workerUrl: string | undefined): Promise<string> {
  if (workerUrl !== undefined) return workerUrl;
  if (inlineUrl === null) {
    const { default: source } = await import('virtual:sketchwatch-worker');
    inlineUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  }
  return inlineUrl;
}

type Head = { sequence: number; url: string; body: Uint8Array } | null;

export class Connection {
  private readonly worker: Worker;
  /** Held for the connection's life: a collected comlink proxy hangs its calls (comlink#692). */
  private readonly remote: Comlink.Remote<WorkerApi>;
  private readonly timeout: number;
  private dead: string | null = null;
  private readonly pending = new Set<(e: Error) => void>();
  private head: Head = null;
  private beaconed: number | null = null;
  private lastStatus: AgentStatus | null = null;
  private readonly listeners: [EventTarget, string, EventListener][] = [];
  private readonly statusListeners = new Set<(s: AgentStatus) => void>();
  private closed = false;
  private started = false;

  private constructor(worker: Worker, timeout: number) {
    this.worker = worker;
    this.timeout = timeout;
    this.remote = Comlink.wrap<WorkerApi>(worker);
    worker.addEventListener('error', (e) => {
      e.preventDefault?.();
      const why = (e as ErrorEvent).message || 'script error';
      this.die(this.started
        ? `the sketchwatch worker failed: ${why}`
        : `the sketchwatch worker could not start (${why}); a Content-Security-Policy without worker-src blob: does this — allow it, or serve dist/agent/worker.js and pass workerUrl`);
    });
    worker.addEventListener('messageerror', () => this.die('the sketchwatch worker sent an unreadable message'));
  }

  /** Starts the worker and initialises it; rejects with a SketchwatchError. */
  static async open(resolved: Resolved): Promise<Connection> {
    let worker: Worker;
    try {
      worker = new Worker(await workerScriptUrl(resolved.workerUrl));
    } catch (e) {
      throw new SketchwatchError('worker', `could not start the sketchwatch worker (${(e as Error).message}); with a strict CSP allow worker-src blob: or pass workerUrl`);
    }
    const c = new Connection(worker, resolved.callTimeout);
    const emit = Comlink.proxy((e: AgentEvent) => c.onEvent(e));
    try {
      c.lastStatus = await c.call('init', (r) => r.init(resolved.config, emit));
      c.started = true;
    } catch (e) {
      c.terminate();
      throw e;
    }
    c.listen();
    return c;
  }

  get status(): AgentStatus | null {
    return this.lastStatus;
  }

  get error(): string | null {
    return this.dead;
  }

  onStatus(listener: (s: AgentStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  private onEvent(e: AgentEvent): void {
    if (e.type === 'head') this.head = e.sequence === null ? null : { sequence: e.sequence, url: e.url, body: e.body };
    else if (e.type === 'status') {
      this.lastStatus = e.status;
      for (const l of this.statusListeners) {
        try {
          l(e.status);
        } catch {
          /* a listener's error is its own */
        }
      }
    }
  }

  /**
   * Calls the worker with a timeout. Rejects with a SketchwatchError (code 'timeout',
   * 'worker_dead' or 'worker_error' carrying the worker's message).
   */
  call<T>(what: string, f: (remote: Comlink.Remote<WorkerApi>) => Promise<T>, timeout = this.timeout): Promise<T> {
    if (this.dead !== null) return Promise.reject(new SketchwatchError('worker_dead', this.dead));
    return new Promise<T>((resolve, reject) => {
      const fail = (e: Error) => {
        clearTimeout(timer);
        this.pending.delete(fail);
        reject(e);
      };
      const timer = setTimeout(() => {
        fail(new SketchwatchError('timeout', `sketchwatch: ${what}() got no answer from the worker within ${timeout} ms`));
        void this.probe();
      }, timeout);
      this.pending.add(fail);
      let p: Promise<T>;
      try {
        p = f(this.remote);
      } catch (e) {
        fail(e as Error);
        return;
      }
      p.then((v) => {
        clearTimeout(timer);
        this.pending.delete(fail);
        resolve(v);
      }, (e: unknown) => fail(e instanceof SketchwatchError ? e : new SketchwatchError('worker_error', (e as Error)?.message ?? String(e))));
    });
  }

  /** After a timeout: is the worker there at all? If not, everything pending fails now. */
  private async probe(): Promise<void> {
    if (this.dead !== null || this.closed) return;
    const alive = await Promise.race([
      this.remote.status().then(() => true, () => false),
      new Promise<boolean>((r) => setTimeout(() => r(false), 2_000)),
    ]);
    if (!alive) this.die('the sketchwatch worker stopped answering');
  }

  private die(reason: string): void {
    if (this.dead !== null) return;
    this.dead = reason;
    for (const fail of [...this.pending]) fail(new SketchwatchError('worker_dead', reason));
    this.pending.clear();
    console.warn(`sketchwatch: ${reason}; monitoring stopped, the page is unaffected`);
    this.terminate();
  }

  private terminate(): void {
    try {
      this.worker.terminate();
    } catch {
      /* already gone */
    }
    this.unlisten();
  }

  // ------------------------------------------------------------------ page lifecycle

  private on(target: EventTarget, type: string, f: () => void): void {
    const listener = () => {
      try {
        f();
      } catch {
        /* never into the page */
      }
    };
    target.addEventListener(type, listener);
    this.listeners.push([target, type, listener]);
  }

  private listen(): void {
    if (typeof document === 'undefined') return;
    this.on(document, 'visibilitychange', () => {
      if (document.visibilityState === 'hidden') this.hidden();
      else this.lifecycle('visible');
    });
    this.on(window, 'pagehide', () => {
      // The head as it was: there is no time left to ask the worker for anything.
      this.beacon(this.head);
      this.lifecycle('pagehide');
    });
    this.on(window, 'pageshow', () => this.lifecycle('pageshow'));
    this.on(window, 'online', () => this.lifecycle('online'));
  }

  private unlisten(): void {
    for (const [t, type, l] of this.listeners) t.removeEventListener(type, l);
    this.listeners.length = 0;
  }

  private lifecycle(state: Lifecycle): void {
    this.call('lifecycle', (r) => r.lifecycle(state)).catch(() => {});
  }

  /** Hidden: beacon what is ready now, then ask the worker to seal the rest and beacon that. */
  private hidden(): void {
    this.beacon(this.head);
    this.call('lifecycle', (r) => r.lifecycle('hidden'))
      .then((h) => {
        if (h !== null && document.visibilityState === 'hidden') this.beacon(h);
      })
      .catch(() => {});
  }

  /**
   * Queues a batch with sendBeacon. Its answer is never seen: the batch stays in the outbox
   * until a fetch is acknowledged (a duplicate delivery is acknowledged as such).
   */
  private beacon(head: Head): void {
    if (head === null || typeof navigator.sendBeacon !== 'function') return;
    if (head.sequence === this.beaconed) return;
    try {
      if (navigator.sendBeacon(head.url, head.body as BufferSource)) this.beaconed = head.sequence;
    } catch {
      /* quota or a bad URL: the outbox resends */
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.call('close', (r) => r.close());
    } finally {
      this.closed = true;
      this.remote[Comlink.releaseProxy]?.();
      this.terminate();
    }
  }
}
