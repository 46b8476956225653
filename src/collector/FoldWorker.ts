import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WindowView } from '../sketch/codec.js';
import { Backlog, type Fold, type FoldItem, type Folder, type MergeFailure, type PartialRow } from './Fold.js';
import { ShapeBook } from './FlushMerge.js';

/**
 * Folds on a worker thread (see Fold.ts for why). The worker (fold-worker.ts) holds a FlushMerge
 * per fold; this side keeps each fold's shape book (the check before a batch is made durable).
 * A worker that dies (it should not: every merge is caught) is replaced, and every fold whose
 * rows it had not yet sent is folded again by the new one, so nothing acknowledged is lost:
 *  - from where the batches are durable (`Refold`: the embedded store's journal segment, or
 *    PostgreSQL's inbox rows, read by the ingestor while no group commits), or
 *  - without such a place (the in-memory store), from the bytes of every batch, kept here
 *    until its fold is written. Kept everywhere, those bytes (~10 KB a beacon, held a second or
 *    more) were what this thread's major GCs came from: at 1,000 beacons/s on two cores, p99
 *    132.8 / 71.7 ms kept against 34.5 / 39.6 not (quick runs on disk, this machine slow).
 * While a fold is refolded, batches added to it are not sent (the refold has them) and its
 * take waits.
 *
 * Messages keep their order, so a fold's `take` reaches the worker after all its merges. A
 * batch crosses as a copy of its bytes (one memcpy into the message's reused buffer, see
 * TRANSFER_MIN) and the window starts this side may have moved (clock skew); the worker re-reads
 * it with `scanBatch(…, {trusted})`, which locates the digests without checking them again.
 */
export type ToWorker =
  | { t: 'merge'; fold: number; items: WireBatch[]; buffer: ArrayBuffer }
  | { t: 'take'; fold: number }
  | { t: 'drop'; fold: number };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'merged'; n: number; failures: Array<{ agentId: string; message: string }>; buffer: ArrayBuffer }
  | { t: 'rows'; fold: number; rows: PartialRow[] };

export interface WireItem {
  project: string;
  /** For the report of a merge that fails (the bytes may be what failed; '' if unknown). */
  agentId: string;
  bytes: Uint8Array;
  /** Where ingest placed the batch's windows, in batch order; or, with `parts`, those windows'. */
  starts: number[];
  /** Only these windows of the batch (an inbox row holds one). */
  parts?: number[];
}

/** A WireItem as a merge message carries it: its bytes at [at, at + length) of the message's buffer. */
export interface WireBatch {
  project: string;
  agentId: string;
  at: number;
  length: number;
  starts: number[];
  parts?: number[];
}

/**
 * Everything each fold holds, read again from where its batches are durable (see the header);
 * called after a worker died, for the folds whose rows it had not sent.
 */
export type Refold = (folds: Fold[]) => Promise<Map<Fold, WireItem[]>>;

/**
 * Merge messages carry their batches' bytes in one buffer, transferred there and back and reused:
 * a new ~10 KB copy per batch was ArrayBuffer memory allocated at ingest's rate, which is what
 * sets off V8's major GCs ("external memory pressure"). Buffers are at least TRANSFER_MIN; at
 * most SPARE_BUFFERS of at most SPARE_MAX bytes are kept.
 */
const TRANSFER_MIN = 256 * 1024;
const SPARE_MAX = 1024 * 1024;
const SPARE_BUFFERS = 8;

/** How long a worker may take to start before the collector folds on its own thread instead. */
const START_TIMEOUT_MS = 30_000;

export class WorkerFolder implements Folder {
  private readonly backlog = new Backlog();
  private worker: Worker;
  private readonly folds = new Map<number, RemoteFold>();
  private nextId = 1;
  private closing = false;
  /** Workers started: a refold answered for an earlier one is stale (another died meanwhile). */
  private incarnation = 0;
  /** Takes asked and not answered: while there are some, the worker keeps the process alive. */
  private takes = 0;
  /** Buffers the worker sent back, for the next merge messages. */
  private readonly spare: ArrayBuffer[] = [];

  private constructor(
    worker: Worker,
    private readonly failed: MergeFailure,
    private readonly onRestart: (why: string) => void,
    /** @internal Absent: folds keep their batches' bytes until written. */
    readonly refold: Refold | null,
  ) {
    this.worker = worker;
    this.attach(worker);
  }

  /** Starts the worker; rejects if it cannot start (the caller then folds on its own thread). */
  static async start(failed: MergeFailure, onRestart: (why: string) => void, refold: Refold | null = null): Promise<WorkerFolder> {
    const worker = spawn();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`no answer in ${START_TIMEOUT_MS / 1000} s`)), START_TIMEOUT_MS);
      const exited = (code: number): void => fail(new Error(`it exited (code ${code})`));
      const fail = (e: Error): void => {
        clearTimeout(timer);
        worker.off('message', ready);
        worker.off('exit', exited);
        void worker.terminate();
        reject(e);
      };
      const ready = (m: FromWorker): void => {
        if (m.t !== 'ready') return;
        clearTimeout(timer);
        worker.off('error', fail);
        worker.off('exit', exited);
        worker.off('message', ready);
        resolve();
      };
      worker.on('message', ready);
      worker.once('error', fail);
      worker.once('exit', exited);
    });
    return new WorkerFolder(worker, failed, onRestart, refold);
  }

  create(): Fold {
    const fold = new RemoteFold(this, this.nextId++);
    this.folds.set(fold.id, fold);
    return fold;
  }

  below(n: number): Promise<void> {
    return this.backlog.below(n);
  }

  async close(): Promise<void> {
    this.closing = true;
    this.backlog.release();
    for (const fold of this.folds.values()) fold.abandon(new Error('the collector is shutting down'));
    await this.worker.terminate();
  }

  /** @internal For tests: ends the worker as a crash would (it is replaced). */
  async crashForTest(): Promise<void> {
    await this.worker.terminate();
  }

  /** @internal */
  send(fold: number, items: readonly WireItem[]): void {
    this.backlog.add(items.length);
    let size = 0;
    for (const item of items) size += item.bytes.length;
    let buffer = this.spare.pop();
    if (buffer === undefined || buffer.byteLength < size) buffer = new ArrayBuffer(Math.max(size, TRANSFER_MIN));
    const into = new Uint8Array(buffer);
    const batches: WireBatch[] = [];
    let at = 0;
    for (const { project, agentId, bytes, starts, parts } of items) {
      into.set(bytes, at);
      batches.push({ project, agentId, at, length: bytes.length, starts, parts });
      at += bytes.length;
    }
    this.post({ t: 'merge', fold, items: batches, buffer }, [buffer]);
  }

  /** @internal */
  post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(message, transfer);
  }

  /** @internal A take was asked (`wanted`) or answered: the worker is ref'd while one waits. */
  holding(wanted: boolean): void {
    this.takes += wanted ? 1 : -1;
    if (this.takes === (wanted ? 1 : 0)) {
      if (wanted) this.worker.ref();
      else this.worker.unref();
    }
  }

  /** @internal */
  forget(fold: RemoteFold): void {
    this.folds.delete(fold.id);
  }

  private attach(worker: Worker): void {
    worker.on('message', (m: FromWorker) => {
      if (worker === this.worker) this.receive(m); // not a replaced worker's last words
    });
    worker.on('error', (e) => {
      if (!this.closing) console.error(`sketchwatch: the fold worker failed: ${e.message}`);
    });
    worker.on('exit', (code) => {
      if (this.closing || worker !== this.worker) return;
      this.replace(`the fold worker exited (code ${code})`);
    });
    // A collector that is not closed does not keep the process alive for it, except while a
    // checkpoint waits for its rows. After the listeners: adding one refs the worker again.
    if (this.takes === 0) worker.unref();
  }

  private receive(m: FromWorker): void {
    if (m.t === 'merged') {
      for (const f of m.failures) this.failed(f.agentId, f.message);
      if (this.spare.length < SPARE_BUFFERS && m.buffer.byteLength <= SPARE_MAX) this.spare.push(m.buffer);
      this.backlog.add(-m.n);
    } else if (m.t === 'rows') {
      this.folds.get(m.fold)?.taken(m.rows);
    }
  }

  /** A new worker, given every unwritten fold's batches again (and their pending takes). */
  private replace(why: string): void {
    this.onRestart(why);
    try {
      this.worker = spawn();
    } catch (e) {
      // Nothing to fold with: the unwritten folds' checkpoints fail (their batches are durable,
      // and folded from the journal or the inbox when the collector restarts).
      console.error(`sketchwatch: the fold worker could not be replaced: ${(e as Error).message}`);
      this.closing = true;
      for (const fold of this.folds.values()) fold.abandon(new Error('the fold worker is gone'));
      return;
    }
    this.attach(this.worker);
    this.backlog.add(-this.backlog.count); // the dead worker's backlog is sent again below
    const incarnation = ++this.incarnation;
    if (this.refold === null) {
      for (const fold of this.folds.values()) fold.resend();
      return;
    }
    const lost = [...this.folds.values()].filter((f) => f.lose());
    if (lost.length === 0) return;
    this.refold(lost).then(
      (items) => {
        if (incarnation !== this.incarnation || this.closing) return; // its successor refolds them
        for (const fold of lost) fold.refill(items.get(fold) ?? []);
      },
      (e: Error) => {
        if (incarnation !== this.incarnation || this.closing) return;
        // Their batches are durable where the refold failed to read them: a restart folds them.
        console.error(`sketchwatch: the folds of the dead fold worker could not be read again: ${e.message}`);
        for (const fold of lost) fold.abandon(new Error(`the fold worker died and its folds could not be refolded (${e.message})`));
      },
    );
  }
}

class RemoteFold implements Fold {
  batches = 0;
  private readonly book = new ShapeBook();
  /** Without a refold: every batch added, kept until the fold is written (a new worker gets them). */
  private items: WireItem[] = [];
  private taking: { promise: Promise<PartialRow[]>; resolve(rows: PartialRow[]): void; reject(e: Error): void } | null = null;
  private settled = false;
  private done = false;
  /** Its worker died before sending its rows; a refold is on its way (`refill`). */
  private lost = false;

  constructor(private readonly folder: WorkerFolder, readonly id: number) {}

  reserve(project: string, windows: readonly WindowView[]): boolean {
    return this.book.reserve(project, windows);
  }

  add(items: readonly FoldItem[]): void {
    if (items.length === 0) return;
    if (this.taking !== null) throw new Error('a fold takes no batches once its rows are asked for'); // a bug in the caller
    this.batches += items.length;
    if (this.lost) return; // durable, and read again by the refold on its way
    const wire = items.map(({ project, batch }) => ({ project, agentId: batch.agentId, bytes: batch.bytes, starts: batch.windows.map((w) => w.start) }));
    if (this.folder.refold === null) for (const w of wire) this.items.push(w);
    this.folder.send(this.id, wire);
  }

  rows(): Promise<PartialRow[]> {
    if (this.taking === null) {
      let resolve!: (rows: PartialRow[]) => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<PartialRow[]>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.taking = { promise, resolve, reject };
      this.folder.holding(true);
      if (!this.lost) this.folder.post({ t: 'take', fold: this.id }); // else after the refill
    }
    return this.taking.promise;
  }

  release(): void {
    if (this.done) return;
    this.done = true;
    this.items = [];
    this.folder.forget(this);
    if (this.taking === null) this.folder.post({ t: 'drop', fold: this.id });
  }

  /** @internal The worker's answer to `take` (it has dropped the fold). */
  taken(rows: PartialRow[]): void {
    this.items = []; // the rows hold them now; a worker that dies from here on has nothing of this fold
    if (this.settled) return;
    this.settled = true;
    this.folder.holding(false);
    this.taking?.resolve(rows);
  }

  /** @internal To a new worker: this fold's batches, and its take if one was asked. */
  resend(): void {
    if (this.settled) return;
    if (this.items.length > 0) this.folder.send(this.id, this.items);
    if (this.taking !== null) this.folder.post({ t: 'take', fold: this.id });
  }

  /** @internal Its worker died: true if it had not sent this fold's rows (it is refolded). */
  lose(): boolean {
    if (this.settled || this.done) return false;
    this.lost = true;
    return true;
  }

  /** @internal The refold: all that this fold holds, to the new worker, and its take if asked. */
  refill(items: WireItem[]): void {
    if (!this.lost || this.settled || this.done) return;
    this.lost = false;
    if (items.length > 0) this.folder.send(this.id, items);
    if (this.taking !== null) this.folder.post({ t: 'take', fold: this.id });
  }

  /** @internal */
  abandon(e: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.items = [];
    if (this.taking === null) {
      this.taking = { promise: Promise.reject(e), resolve() {}, reject() {} };
    } else {
      this.folder.holding(false);
      this.taking.reject(e);
    }
    this.taking.promise.catch(() => {}); // whoever asks for the rows sees it; nobody else must
  }
}

/**
 * The worker: the built file next to this one's bundle (dist/collector/fold-worker.js), or,
 * when the collector runs from source under tsx, fold-worker.ts with tsx registered first — a
 * worker does not inherit the loader hooks `--import tsx` gave this thread (Node 20).
 */
function spawn(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    const source = new URL('./fold-worker.ts', here).href;
    const tsx = import.meta.resolve('tsx/esm/api');
    const boot = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(source)}); });`;
    return new Worker(boot, { eval: true });
  }
  for (const candidate of ['../collector/fold-worker.js', './fold-worker.js']) {
    const url = new URL(candidate, here);
    if (existsSync(fileURLToPath(url))) return new Worker(url);
  }
  throw new Error(`the fold worker's file is missing next to ${fileURLToPath(here)} (rebuild with npm run build)`);
}
