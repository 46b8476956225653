import { availableParallelism } from 'node:os';
import { scanBatch, type BatchView } from '../sketch/codec.js';
import { LocalFolder, partialRow, type Fold, type Folder, type PartialRow } from './Fold.js';
import { FlushMerge } from './FlushMerge.js';
import { WorkerFolder, type WireItem } from './FoldWorker.js';
import { Journal, type JournalRecord } from './Journal.js';
import { copyBinary, toBytes, toNumber, type Database, type Queryable, type SqlValue } from './store/Database.js';
import type { CollectorConfig } from './config.js';
import type { Metrics } from './metrics.js';
import { yieldToLoop } from './yieldToLoop.js';

/**
 * Ingest: makes accepted batches durable, acknowledges them, and folds them into partial rows.
 *
 * A request hands its checked batch (a BatchView: digests still bytes) to `submit` and waits.
 * Batches are made durable in groups (group commit: one at a time on the embedded store, a few
 * at once on PostgreSQL): dedupe by (agent, sequence),
 * a shape check against the batches the current fold holds (`FlushMerge.reserve`), then
 *  - embedded store: one synced append (O_DSYNC) of the group to the journal (Journal.ts); the dedupe
 *    state lives in memory (one process owns the store) and goes to the store at checkpoints;
 *  - PostgreSQL: one statement (sw_commit, schema.ts: one round trip) that locks the agents'
 *    dedupe rows in a fixed order, applies the dedupe rule, appends the applied batches to
 *    `inbox` (one row per batch window, raw bytes) and saves the dedupe rows;
 * and only then are the requests answered. Their merge into the in-memory fold is queued (Fold.ts:
 * on a worker thread when the process may use two cores or more, else in slices on this one):
 * the next group commits while it runs, and a swapped-out fold is written only once every merge
 * queued into it is done.
 *
 * Every `checkpointMs` (1 s by default; and before every read: `sync`) the fold is swapped for
 * an empty one and written in one transaction as one partial row per (project, model, segment,
 * window), together with — embedded — the dedupe state and the journal position it covers, or —
 * PostgreSQL — the deletion of the inbox rows it folded. Merging and encoding thus cost once per checkpoint per
 * window, not once per batch, and the store sees a few rows a second, not one per beacon.
 *
 * Crash safety: embedded, the journal segments after the last checkpoint are replayed on start;
 * PostgreSQL, inbox rows left by a replica that died are folded by any replica once they are
 * `orphanAfterMs` old (reads include inbox rows meanwhile, so counts stay exact). A replica's
 * checkpoint deletes exactly the inbox rows it folded and fails (then refolds from the rows that
 * remain) if another replica took some: no row is counted twice.
 *
 * Must: never answer before the batch is durable; never apply a sequence twice; lock agent rows
 * in one global order (replicas must not deadlock); swap folds only between group commits;
 * merge a batch into the fold its commit reserved it in, and write a fold only after its merges.
 */
export interface IngestOutcome {
  status: 'applied' | 'duplicate';
  sequence: number;
}

export interface IngestorOptions {
  flushIntervalMs?: number;
  maxPending?: number;
  /** How far below an agent's highest applied sequence a late sequence is still told apart. */
  dedupeWindow?: number;
  /** How often the fold is written to the store (reads and close write it at once). */
  checkpointMs?: number;
  /** Embedded store: the journal's directory (absent: in memory, nothing survives the process). */
  journalDir?: string;
  /** PostgreSQL: inbox rows older than this are folded by whichever replica finds them. */
  orphanAfterMs?: number;
  /**
   * Merge on a worker thread (see Fold.ts): 'auto' (the default) when this process may run on
   * two or more cores — on one core a worker only competes with ingest for it (measured: fewer
   * beacons/s, no better p99). 'off', or a worker that cannot start: merges run on this
   * thread, in slices.
   */
  foldWorker?: CollectorConfig['foldWorker'];
}

interface Pending {
  project: string;
  batch: BatchView;
  resolve(outcome: IngestOutcome): void;
  reject(error: Error): void;
}

/**
 * Dedupe state of one agent: every sequence ≤ done counts as applied (a contiguous run, or
 * given up on once it falls dedupeWindow below the highest), plus the applied ones above it.
 * Agents send in order, so `above` is almost always empty.
 */
interface AgentState {
  project: string;
  agentId: string;
  done: number;
  above: Set<number>;
  highWater: number;
  applied: number;
}

interface AgentRow {
  project: string;
  agentId: string;
  done: number;
  highWater: number;
  seen: number[];
  applied: number;
}

/** A group made durable: each item's outcome (null: refused, cannot merge), and the applied ones. */
interface Committed {
  outcomes: Array<IngestOutcome | null>;
  accepted: Pending[];
}

/** A fold swapped out of ingest, waiting to be written (once its merges are done: Fold.rows). */
interface Generation {
  fold: Fold;
  /** Embedded: the journal segment holding its batches (-1: no journal). */
  segment: number;
  /** PostgreSQL: the inbox rows it folded. */
  inboxIds: number[];
  /** Embedded: dedupe state of the agents it changed, as of the swap. */
  agents: AgentRow[];
}

export const DEFAULT_DEDUPE_WINDOW = 4096;
/** Agents the embedded store's cache holds before it drops the idle ones. */
const MAX_CACHED_AGENTS = 100_000;
/** Inbox rows one sweep transaction folds. */
const SWEEP_ROWS = 256;
/**
 * Partial rows and dedupe rows per statement of a checkpoint (PGlite runs each on this thread,
 * requests waiting): 250 dedupe rows took 3.3 ms on average, 9 ms at worst, at 1,000 batches/s;
 * 100 took 5.8 ms at the median and up to 14.5 ms on disk, two partial rows 7 ms (up to 17).
 */
const WINDOWS_PER_STATEMENT = 1;
const AGENTS_PER_STATEMENT = 50;
/**
 * PostgreSQL: how many group commits may run at once. One at a time, a commit (~14 ms for 32
 * batches here, then six round trips and the WAL flush) bounded ingest at ~2,200 batches/s with
 * the collector's core two-thirds busy.
 */
const PG_COMMITS_IN_FLIGHT = 3;
/**
 * Committed batches waiting for their merge beyond which the next group commit waits for them:
 * merges are off the commit's path, and this keeps an overloaded collector from holding more
 * than a second of answered batches (~16 KB each with their views) in memory. A saturated
 * collector runs with this backlog full, which is what sizes the strict check's key ring
 * (codec.ts). 512 was tried for the ring's sake: on PostgreSQL, whose commits need the slack,
 * throughput fell (1,858 and 2,021 beacons/s against 2,694 at 1,024, same code, same day).
 */
const MAX_UNMERGED = 1024;

/** sw_commit's parameters before its batches (schema.ts). */
const COMMIT_TYPES = ['text[]', 'text[]', 'bigint[]', 'bigint', 'integer[]', 'text[]', 'text[]', 'bigint[]', 'integer[]', 'integer[]', 'bigint[]'];

/** A batch refused at commit because it cannot merge with the others (not acknowledged). */
export class MergeConflictError extends Error {
  override name = 'MergeConflictError';
}

/** Another replica folded inbox rows this one meant to fold (the checkpoint is redone). */
class InboxRaceError extends Error {}

export class Ingestor {
  private pending: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerDue = 0;
  /** Group commits running, and whether a swap waits for them to end (see `shared`). */
  private inFlight = 0;
  /** Runs of `exclusive` under way (a swap, a refold): group commits wait for none to be left. */
  private exclusives = 0;
  private gateWaiters: Array<() => void> = [];
  private readonly maxInFlight: number;
  private closed = false;
  private readonly flushIntervalMs: number;
  private readonly maxPending: number;
  private readonly dedupeWindow: number;
  private readonly checkpointMs: number;
  private readonly orphanAfterMs: number;
  private readonly embedded: boolean;
  private journal: Journal | null = null;
  /** Where folds come from (set by `open`), and the fold ingest merges into. */
  private folder!: Folder;
  /**
   * Commits reserve batches in and add them to the current fold only: a swap waits until no
   * commit is in flight.
   */
  private fold!: Fold;
  private inboxIds: number[] = [];
  private readonly dirty = new Set<AgentState>();
  private readonly unwritten: Generation[] = [];
  private checkpointQueued: Promise<void> | null = null;
  private checkpointTail: Promise<void> = Promise.resolve();
  private checkpointTimer: ReturnType<typeof setInterval> | null = null;
  private sweepTimer: ReturnType<typeof setInterval> | null = null;
  /**
   * Where each unwritten fold's batches are durable, for a refold after its worker died: the
   * journal segment (embedded; with `records`, only those of its records: a replayed segment),
   * or the inbox rows (PostgreSQL; the array grows with the fold while it is ingest's).
   */
  private readonly sources = new Map<Fold, { segment: number; records?: number[]; inboxIds: number[] }>();
  /** Embedded, with a journal: what the refold reads segments with (set before the replay). */
  private journalFiles: Journal | null = null;
  /** Embedded: every agent's dedupe state, authoritative (the store lags by a checkpoint). */
  private readonly agents = new Map<string, AgentState>();

  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
    private readonly options: IngestorOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 20;
    this.maxPending = options.maxPending ?? 1000;
    this.dedupeWindow = options.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW;
    this.checkpointMs = options.checkpointMs ?? 1000;
    this.orphanAfterMs = options.orphanAfterMs ?? 30_000;
    this.embedded = db.kind === 'pglite';
    this.maxInFlight = this.embedded ? 1 : PG_COMMITS_IN_FLIGHT;
  }

  /**
   * Replays the journal (embedded store) into the store, then starts the checkpoint timer (and,
   * on PostgreSQL, the sweep of orphaned inbox rows). Call before the first submit.
   */
  async open(): Promise<void> {
    this.folder = await this.startFolder();
    this.fold = this.folder.create();
    const source = { segment: -1, inboxIds: this.inboxIds };
    this.sources.set(this.fold, source);
    if (this.embedded && this.options.journalDir) await this.replay(this.options.journalDir);
    source.segment = this.journal?.current ?? -1;
    this.checkpointTimer = setInterval(() => {
      if (this.fold.batches > 0 || this.dirty.size > 0 || this.unwritten.length > 0) {
        this.checkpoint().catch(() => {}); // counted and logged in write()
      }
    }, this.checkpointMs);
    this.checkpointTimer.unref();
    if (!this.embedded) {
      this.sweepTimer = setInterval(() => {
        this.sweep().catch((e: Error) => console.error(`sketchwatch: inbox sweep failed: ${e.message}`));
      }, Math.max(1_000, this.orphanAfterMs / 3));
      this.sweepTimer.unref();
    }
  }

  private async startFolder(): Promise<Folder> {
    const failed = (agentId: string, message: string): void => {
      this.metrics.inc('sketchwatch_merge_failures_total', 'Acknowledged batches that failed to merge into the fold (a bug: please report).');
      console.error(`sketchwatch: merging a batch of agent ${agentId} failed: ${message}`);
    };
    const wanted = this.options.foldWorker ?? 'auto';
    // availableParallelism follows the process's CPU affinity (taskset, cpusets), not quotas.
    if (wanted === 'off' || (wanted === 'auto' && availableParallelism() < 2)) return new LocalFolder(failed);
    try {
      const durable = !this.embedded || this.options.journalDir !== undefined;
      return await WorkerFolder.start(
        failed,
        (why) => {
          this.metrics.inc('sketchwatch_fold_worker_restarts_total', 'Fold workers started to replace one that died (its unwritten batches are folded again).');
          console.error(`sketchwatch: ${why}; a new one refolds the batches not yet written`);
        },
        durable ? (folds) => this.refold(folds) : null,
      );
    } catch (e) {
      console.error(`sketchwatch: the fold worker did not start (${(e as Error).message}); merging on the main thread instead`);
      return new LocalFolder(failed);
    }
  }

  /**
   * Whether batches merge on this thread: the strict check of a request then keeps the keys it
   * decodes for the merge (ScanOptions.keepKeys).
   */
  get mergesHere(): boolean {
    return !(this.folder instanceof WorkerFolder);
  }

  /** @internal For tests: the fold worker, when merges run on one. */
  get foldWorker(): WorkerFolder | null {
    return this.folder instanceof WorkerFolder ? this.folder : null;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Queues a validated batch; resolves once it is durable (or found to be a duplicate).
   * An idle ingestor commits at once; while a commit runs, arrivals gather for the next one —
   * so a quiet collector answers in one commit's time and a busy one commits in large groups.
   */
  submit(project: string, batch: BatchView): Promise<IngestOutcome> {
    if (this.closed) return Promise.reject(new Error('collector is shutting down'));
    return new Promise((resolve, reject) => {
      this.pending.push({ project, batch, resolve, reject });
      if (!this.busy || this.pending.length >= this.maxPending) this.schedule(0);
      else this.schedule(this.flushIntervalMs);
    });
  }

  /** Makes every batch acknowledged so far visible to queries (writes the fold now). */
  sync(): Promise<void> {
    return this.checkpoint();
  }

  /** Stops taking batches, commits what is queued, writes the fold. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.folder === undefined) return; // never opened: nothing was taken
    await this.flush();
    try {
      await this.checkpoint();
    } finally {
      await this.folder?.close();
      await this.journal?.close();
    }
  }

  // ---------------------------------------------------------------- group commit

  /**
   * Arms the group-commit timer to fire within `delay` ms. A timer already due as soon stays
   * as it is: re-arming it on every arrival (as this once did) postponed the commit for as long
   * as requests kept coming less than a millisecond apart — at 1,000 beacons/s, commits 100–165
   * ms apart and a p99 over 200 ms with the event loop 40% busy.
   */
  private schedule(delay: number): void {
    const due = performance.now() + delay;
    if (this.timer !== null) {
      if (this.timerDue <= due) return;
      clearTimeout(this.timer);
    }
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
  }

  /**
   * Runs a group commit once a commit slot is free and no swap waits: up to `maxInFlight`
   * commits at once (embedded: one, the journal is appended in order; PostgreSQL: a few, each a
   * transaction on a connection of its own, which the agents' row locks keep apart).
   */
  private async shared<T>(work: () => Promise<T>): Promise<T> {
    while (this.exclusives > 0 || this.inFlight >= this.maxInFlight) await new Promise<void>((r) => this.gateWaiters.push(r));
    this.inFlight++;
    try {
      return await work();
    } finally {
      this.inFlight--;
      this.openGate();
    }
  }

  /**
   * Runs `work` (a swap, a refold) with no commit in flight; commits arriving meanwhile wait for
   * it, and for any other such work under way.
   */
  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    this.exclusives++;
    try {
      while (this.inFlight > 0) await new Promise<void>((r) => this.gateWaiters.push(r));
      return await work();
    } finally {
      this.exclusives--;
      this.openGate();
    }
  }

  private openGate(): void {
    const waiting = this.gateWaiters;
    this.gateWaiters = [];
    for (const wake of waiting) wake();
  }

  private get busy(): boolean {
    return this.inFlight >= this.maxInFlight;
  }

  /** Commits everything queued so far. */
  flush(): Promise<void> {
    return this.shared(async () => {
      await this.folder.below(MAX_UNMERGED); // let the merges catch up
      await this.commitPending();
    }).finally(() => {
      if (this.pending.length > 0) this.schedule(0);
    });
  }

  private async commitPending(): Promise<void> {
    const items = this.pending;
    if (items.length === 0) return;
    this.pending = [];
    const started = performance.now();
    let accepted: Pending[] = [];
    try {
      const committed = this.embedded ? await this.commitEmbedded(items) : await this.commitPostgres(items);
      const { outcomes } = committed;
      accepted = committed.accepted;
      let applied = 0;
      let duplicates = 0;
      items.forEach((item, i) => {
        const o = outcomes[i];
        if (o === null) {
          item.reject(new MergeConflictError('a feature of this batch differs in kind or classes from another batch of the same window'));
          return;
        }
        item.resolve(o);
        if (o.status === 'applied') applied++;
        else duplicates++;
      });
      this.metrics.inc('sketchwatch_ingest_batches_total', 'Batches acknowledged, by outcome.', { outcome: 'applied' }, applied);
      this.metrics.inc('sketchwatch_ingest_batches_total', 'Batches acknowledged, by outcome.', { outcome: 'duplicate' }, duplicates);
      if (applied + duplicates < items.length) {
        this.metrics.inc('sketchwatch_ingest_conflicts_total', 'Batches refused at commit: a feature could not merge with another batch of the same window.', {}, items.length - applied - duplicates);
      }
    } catch (e) {
      const error = e instanceof Error ? e : new Error(String(e));
      this.metrics.inc('sketchwatch_flush_failures_total', 'Group commits that failed (their batches were not acknowledged).');
      for (const item of items) item.reject(error);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.metrics.observe('sketchwatch_flush_seconds', 'Time to make one group of batches durable.', seconds);
    }
    // Not in the commit's turn (LocalFolder: its first slice waits; the worker: another
    // thread): the next group commits, and is answered, while this one merges — when merges
    // ran in that turn, a group waited behind the previous group's merge and whatever ran
    // between its slices (p99 from submit to answer 33 ms at 1,000 batches/s, in memory).
    if (accepted.length > 0) this.fold.add(accepted);
  }

  /** Embedded store: dedupe in memory, then the journal append. */
  private async commitEmbedded(items: Pending[]): Promise<Committed> {
    const states = await this.cachedAgents(items.map((i) => [i.project, i.batch.agentId]));
    const undo = new Map<AgentState, AgentState>();
    const accepted: Pending[] = [];
    const outcomes = this.decide(items, states, accepted, (s) => {
      if (!undo.has(s)) undo.set(s, { ...s, above: new Set(s.above) });
    });
    if (this.journal && accepted.length > 0) {
      try {
        await this.journal.append(accepted.map(toRecord));
      } catch (e) {
        for (const [s, before] of undo) Object.assign(s, before);
        throw e;
      }
    }
    for (const s of undo.keys()) this.dirty.add(s);
    return { outcomes, accepted };
  }

  /**
   * PostgreSQL: one statement, sw_commit (schema.ts), locks the group's agents, applies the dedupe
   * rule and appends the applied batches to the inbox, in one round trip. The shape check runs
   * first, here, on every batch of the group: one whose agent already applied it is thus checked
   * too, and the shapes it records (ones its first copy was admitted with) can only make a later
   * batch wait for the next fold (503, retried), never admit one that cannot merge.
   */
  private async commitPostgres(items: Pending[]): Promise<Committed> {
    const outcomes: Array<IngestOutcome | null> = items.map(() => null);
    const sent: number[] = [];
    for (let i = 0; i < items.length; i++) if (this.fold.reserve(items[i].project, items[i].batch.windows)) sent.push(i);
    const accepted: Pending[] = [];
    if (sent.length === 0) return { outcomes, accepted };
    const projects: string[] = [];
    const agentIds: string[] = [];
    const sequences: number[] = [];
    const rows = { item: [] as number[], model: [] as string[], segment: [] as string[], start: [] as number[], length: [] as number[], part: [] as number[], predictions: [] as number[] };
    const batches: Uint8Array[] = [];
    sent.forEach((i, n) => {
      const { project, batch } = items[i];
      projects.push(project);
      agentIds.push(batch.agentId);
      sequences.push(batch.sequence);
      batches.push(batch.bytes);
      batch.windows.forEach((w, part) => {
        rows.item.push(n + 1);
        rows.model.push(w.segment.model);
        rows.segment.push(w.segmentKey);
        rows.start.push(w.start);
        rows.length.push(w.length);
        rows.part.push(part);
        rows.predictions.push(w.predictions);
      });
    });
    const params: SqlValue[] = [projects, agentIds, sequences, this.dedupeWindow, rows.item, rows.model, rows.segment, rows.start, rows.length, rows.part, rows.predictions, ...batches];
    const placeholders = params.map((_, k) => `$${k + 1}`);
    const result = await this.db.query<{ item: number; applied: boolean; inbox_id: unknown }>(
      `select item, applied, inbox_id from sw_commit(${COMMIT_TYPES.map((t, k) => `${placeholders[k]}::${t}`).join(', ')},
         variadic array[${placeholders.slice(COMMIT_TYPES.length).map((p) => `${p}::bytea`).join(', ')}])`,
      params,
    );
    const applied = new Set<number>();
    const answered = new Set(result.map((r) => r.item)).size;
    if (answered !== sent.length) throw new Error(`sw_commit answered for ${answered} of ${sent.length} batches`);
    for (const r of result) {
      const i = sent[r.item - 1];
      if (r.applied) {
        applied.add(i);
        if (r.inbox_id !== null) this.inboxIds.push(toNumber(r.inbox_id));
      }
      outcomes[i] = { status: r.applied ? 'applied' : 'duplicate', sequence: items[i].batch.sequence };
    }
    for (const i of sent) if (applied.has(i)) accepted.push(items[i]);
    return { outcomes, accepted };
  }

  /** Outcome per item: duplicate, refused (null: cannot merge), or applied (into `accepted`). */
  private decide(items: Pending[], states: Map<string, AgentState>, accepted: Pending[], touch: (s: AgentState) => void): Array<IngestOutcome | null> {
    const outcomes: Array<IngestOutcome | null> = [];
    for (const item of items) {
      const { project, batch } = item;
      const state = states.get(agentKey(project, batch.agentId))!;
      const sequence = batch.sequence;
      if (this.alreadyApplied(state, sequence)) {
        outcomes.push({ status: 'duplicate', sequence });
      } else if (!this.fold.reserve(project, batch.windows)) {
        outcomes.push(null);
      } else {
        touch(state);
        this.markApplied(state, sequence);
        accepted.push(item);
        outcomes.push({ status: 'applied', sequence });
      }
    }
    return outcomes;
  }

  private alreadyApplied(state: AgentState, sequence: number): boolean {
    return sequence <= state.done || state.above.has(sequence);
  }

  private markApplied(state: AgentState, sequence: number): void {
    state.applied++;
    state.above.add(sequence);
    if (sequence > state.highWater) state.highWater = sequence;
    // An agent only sends this far behind after thousands of newer batches were acknowledged:
    // what it still lacks below is gone (its outbox dropped it), and anything older is a replay.
    const floor = state.highWater - this.dedupeWindow;
    if (state.done < floor) {
      state.done = floor;
      for (const s of state.above) if (s <= floor) state.above.delete(s);
    }
    while (state.above.has(state.done + 1)) state.above.delete(++state.done);
  }

  /** Embedded store: agents from memory, read from the store the first time they are seen. */
  private async cachedAgents(wanted: Array<[string, string]>): Promise<Map<string, AgentState>> {
    const states = new Map<string, AgentState>();
    const missing = new Map<string, [string, string]>();
    for (const [project, agentId] of wanted) {
      const key = agentKey(project, agentId);
      const cached = this.agents.get(key);
      if (cached) states.set(key, cached);
      else missing.set(key, [project, agentId]);
    }
    if (missing.size === 0) return states;
    if (this.agents.size + missing.size > MAX_CACHED_AGENTS) this.evictIdle();
    const list = [...missing.values()];
    const rows = await this.db.query<StoredAgent>(
      `select a.project, a.agent_id, a.high_water, a.done, a.seen, a.batches
         from agents a join unnest($1::text[], $2::text[]) as k(project, agent_id)
           on a.project = k.project and a.agent_id = k.agent_id`,
      [list.map(([p]) => p), list.map(([, a]) => a)],
    );
    for (const r of rows) states.set(agentKey(r.project, r.agent_id), this.stateFromRow(r));
    for (const [key, [project, agentId]] of missing) {
      // A concurrent lookup may have filled it meanwhile: the cached object is the one to keep.
      let state = this.agents.get(key) ?? states.get(key);
      state ??= { project, agentId, done: -1, above: new Set(), highWater: -1, applied: 0 };
      states.set(key, state);
      this.agents.set(key, state);
    }
    return states;
  }

  /** Drops cached agents whose state the store already holds (none pending a checkpoint). */
  private evictIdle(): void {
    const keep = new Set<AgentState>(this.dirty);
    for (const g of this.unwritten) for (const a of g.agents) keep.add(this.agents.get(agentKey(a.project, a.agentId))!);
    for (const [key, state] of this.agents) if (!keep.has(state)) this.agents.delete(key);
  }

  private stateFromRow(r: StoredAgent): AgentState {
    const highWater = toNumber(r.high_water);
    const seen = (r.seen ?? []).map(Number);
    // Rows written before `done` existed: everything a dedupe window below the highest counted.
    const done = r.done === null || r.done === undefined ? Math.max(-1, highWater - this.dedupeWindow) : toNumber(r.done);
    const state: AgentState = { project: r.project, agentId: r.agent_id, done, above: new Set(seen.filter((s) => s > done)), highWater, applied: toNumber(r.batches) };
    while (state.above.has(state.done + 1)) state.above.delete(++state.done);
    return state;
  }

  // ---------------------------------------------------------------- checkpoints

  /**
   * Swaps the fold out (between group commits) and writes it, after any fold a failed
   * checkpoint left. Callers arriving before a queued checkpoint starts share it.
   */
  private checkpoint(): Promise<void> {
    if (this.checkpointQueued) return this.checkpointQueued;
    const run = this.checkpointTail.then(async () => {
      this.checkpointQueued = null;
      const generation = await this.exclusive(() => this.swap());
      if (generation) this.unwritten.push(generation);
      while (this.unwritten.length > 0) {
        await this.write(this.unwritten[0]);
        const { fold } = this.unwritten.shift()!;
        this.sources.delete(fold);
        fold.release();
      }
    });
    this.checkpointQueued = run;
    this.checkpointTail = run.catch(() => {});
    return run;
  }

  private async swap(): Promise<Generation | null> {
    if (this.fold.batches === 0 && this.dirty.size === 0 && this.inboxIds.length === 0) return null;
    // The new segment first: if it cannot be opened, nothing is swapped (and appends fail until
    // it can), so no fold is ever dropped between the two.
    const segment = this.journal?.current ?? -1;
    if (this.journal) await this.journal.rotate();
    const generation: Generation = {
      fold: this.fold,
      segment,
      inboxIds: this.inboxIds,
      agents: [...this.dirty].map(rowOf),
    };
    this.fold = this.folder.create();
    this.inboxIds = [];
    this.sources.set(this.fold, { segment: this.journal?.current ?? -1, inboxIds: this.inboxIds });
    this.dirty.clear();
    return generation;
  }

  /** One transaction: the fold's partial rows and what they account for. */
  private async write(g: Generation): Promise<void> {
    const started = performance.now();
    try {
      // Before the transaction: no transaction stays open while the merges finish.
      const rows = await g.fold.rows();
      await this.db.transaction(async (tx) => {
        // In slices, with the event loop let through between them: PGlite runs each statement
        // on this thread, and one statement for a fold's every window and agent held requests
        // up for 30–50 ms.
        for (let i = 0; i < rows.length; i += WINDOWS_PER_STATEMENT) {
          if (i > 0) await yieldToLoop();
          await appendPartials(tx, rows.slice(i, i + WINDOWS_PER_STATEMENT));
        }
        if (this.embedded) {
          for (let i = 0; i < g.agents.length; i += AGENTS_PER_STATEMENT) {
            await yieldToLoop();
            await saveAgents(tx, g.agents.slice(i, i + AGENTS_PER_STATEMENT));
          }
          if (g.segment >= 0) {
            await tx.query(
              `insert into journal_state (id, segment) values (1, $1)
               on conflict (id) do update set segment = excluded.segment`,
              [g.segment + 1],
            );
          }
        } else if (g.inboxIds.length > 0) {
          const [r] = await tx.query<{ n: unknown }>(
            'with d as (delete from inbox where id = any($1::bigint[]) returning 1) select count(*) as n from d',
            [g.inboxIds],
          );
          if (toNumber(r.n) !== g.inboxIds.length) throw new InboxRaceError();
        }
      });
    } catch (e) {
      if (e instanceof InboxRaceError) {
        // Another replica folded some of these rows (it thought this one dead): fold what is left.
        this.metrics.inc('sketchwatch_inbox_races_total', 'Checkpoints redone because another replica had folded some of their inbox rows.');
        while ((await this.foldInbox('id = any($1::bigint[])', [g.inboxIds])) > 0);
        g.inboxIds = [];
        return; // its own rows are dropped with it: the inbox held them all
      }
      this.metrics.inc('sketchwatch_checkpoint_failures_total', 'Checkpoints that failed (retried; nothing acknowledged is lost).');
      console.error(`sketchwatch: checkpoint failed: ${(e as Error).message}`);
      throw e;
    } finally {
      this.metrics.observe('sketchwatch_checkpoint_seconds', 'Time to write one fold to the store.', (performance.now() - started) / 1000);
    }
    if (this.journal && g.segment >= 0) await this.journal.removeThrough(g.segment);
  }

  // ---------------------------------------------------------------- recovery

  /** Embedded store: folds the journal segments the store does not hold yet, one by one. */
  private async replay(dir: string): Promise<void> {
    const journal = await Journal.open(dir);
    this.journalFiles = journal;
    const [row] = await this.db.query<{ segment: unknown }>('select segment from journal_state where id = 1');
    const first = row ? toNumber(row.segment) : 0;
    const segments = await journal.segments();
    let replayed = 0;
    for (const segment of segments) {
      if (segment < first) continue;
      const fold = this.folder.create();
      const records: number[] = [];
      this.sources.set(fold, { segment, records, inboxIds: [] });
      const read = await journal.read(segment);
      for (let k = 0; k < read.length; k++) {
        const r = read[k];
        let batch: BatchView;
        try {
          batch = scanBatch(r.bytes);
          if (batch.windows.length !== r.starts.length) throw new Error('window count differs from the journal record');
        } catch (e) {
          console.error(`sketchwatch: journal segment ${segment}: skipping a record that no longer decodes (${(e as Error).message})`);
          continue;
        }
        batch.windows.forEach((w, i) => (w.start = r.starts[i]));
        const state = (await this.cachedAgents([[r.project, batch.agentId]])).get(agentKey(r.project, batch.agentId))!;
        if (this.alreadyApplied(state, batch.sequence)) continue;
        if (!fold.reserve(r.project, batch.windows)) {
          console.error(`sketchwatch: journal segment ${segment}: a batch of agent ${batch.agentId} conflicts with its segment; skipped`);
          continue;
        }
        this.markApplied(state, batch.sequence);
        this.dirty.add(state);
        records.push(k);
        fold.add([{ project: r.project, batch }]);
        replayed++;
      }
      const generation: Generation = { fold, segment, inboxIds: [], agents: [...this.dirty].map(rowOf) };
      this.journal = journal;
      try {
        await this.write(generation);
      } finally {
        this.journal = null;
        this.sources.delete(fold);
        fold.release();
      }
      this.dirty.clear();
    }
    if (replayed > 0) console.error(`sketchwatch: replayed ${replayed} acknowledged batches from the journal`);
    await journal.removeThrough(first - 1);
    await journal.start(Math.max(first, (segments.at(-1) ?? -1) + 1));
    this.journal = journal;
  }

  /**
   * After a fold worker died: every batch of each of `folds`, read again from its journal segment
   * or its inbox rows. With no group commit running, so that each source holds exactly what its
   * fold was given (a batch is added to its fold in the same turn its commit ends).
   */
  private refold(folds: Fold[]): Promise<Map<Fold, WireItem[]>> {
    return this.exclusive(async () => {
      const out = new Map<Fold, WireItem[]>();
      for (const fold of folds) {
        const source = this.sources.get(fold);
        if (source === undefined) continue; // written and released meanwhile
        const items: WireItem[] = [];
        if (this.embedded) {
          const records = await this.journalFiles!.read(source.segment);
          for (const k of source.records ?? records.keys()) {
            const { project, starts, bytes } = records[k];
            items.push({ project, agentId: '', bytes, starts });
          }
        } else if (source.inboxIds.length > 0) {
          const rows = await this.db.query<{ project: string; part: number; window_start: unknown; batch: unknown }>(
            'select project, part, window_start, batch from inbox where id = any($1::bigint[]) order by id',
            [source.inboxIds],
          );
          for (const r of rows) items.push({ project: r.project, agentId: '', bytes: toBytes(r.batch), starts: [toNumber(r.window_start)], parts: [r.part] });
        }
        out.set(fold, items);
      }
      return out;
    });
  }

  /** PostgreSQL: folds inbox rows a replica left behind (it died before its checkpoint). */
  async sweep(): Promise<number> {
    if (this.embedded) return 0;
    let total = 0;
    for (;;) {
      const n = await this.foldInbox(`created_at < now() - ($1::double precision * interval '1 millisecond')`, [this.orphanAfterMs], true);
      total += n;
      if (n < SWEEP_ROWS) return total;
    }
  }

  /**
   * Folds the inbox rows matching `where` into partial rows and deletes them, in one
   * transaction; rows another transaction holds are skipped when `skipLocked`.
   */
  private async foldInbox(where: string, params: SqlValue[], skipLocked = false): Promise<number> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query<{ id: unknown; project: string; part: number; window_start: unknown; batch: unknown }>(
        `select id, project, part, window_start, batch from inbox where ${where}
          order by id limit ${SWEEP_ROWS} for update${skipLocked ? ' skip locked' : ''}`,
        params,
      );
      if (rows.length === 0) return 0;
      // Rows that cannot merge with each other (a feature's kind changed) go to separate folds.
      const folds: FlushMerge[] = [];
      for (const r of rows) {
        const batch = scanBatch(toBytes(r.batch));
        const w = batch.windows[r.part];
        w.start = toNumber(r.window_start);
        let fold = folds.find((f) => f.reserve(r.project, [w]));
        if (!fold) {
          fold = new FlushMerge();
          fold.reserve(r.project, [w]);
          folds.push(fold);
        }
        fold.merge(r.project, w, batch.bytes);
      }
      for (const f of folds) await appendPartials(tx, f.windows().map(partialRow));
      await tx.query('delete from inbox where id = any($1::bigint[])', [rows.map((r) => toNumber(r.id))]);
      this.metrics.inc('sketchwatch_inbox_folded_total', 'Inbox rows folded by a sweep or a redone checkpoint.', {}, rows.length);
      return rows.length;
    });
  }
}

interface StoredAgent {
  project: string;
  agent_id: string;
  high_water: unknown;
  done: unknown;
  seen: unknown[];
  batches: unknown;
}

function rowOf(s: AgentState): AgentRow {
  return { project: s.project, agentId: s.agentId, done: s.done, highWater: s.highWater, seen: [...s.above].sort((a, b) => a - b), applied: s.applied };
}

function agentKey(project: string, agentId: string): string {
  return `${project}\u0000${agentId}`;
}

function toRecord(p: Pending): JournalRecord {
  return { project: p.project, starts: p.batch.windows.map((w) => w.start), bytes: p.batch.bytes };
}

/** Writes partial rows, by binary COPY where the store takes it. */
export async function appendPartials(tx: Queryable, partials: readonly PartialRow[]): Promise<void> {
  // One multi-row INSERT: a statement per row cost a round trip each on PostgreSQL. Where the
  // store takes binary COPY for less (PGlite: ~16 KB profiles need no hex), that instead.
  if (partials.length === 0) return;
  if (tx.copyBinary) {
    const rows = partials.map((r) => [
      { text: r.project }, { text: r.model }, { text: r.segmentKey }, { int8: r.start }, { int4: r.length },
      { int8: r.predictions }, { bytea: r.profile },
    ]);
    await tx.copyBinary('copy partials (project, model, segment, window_start, window_length, predictions, profile)', copyBinary(rows));
    return;
  }
  const values: SqlValue[] = [];
  const rows: string[] = [];
  for (const r of partials) {
    const p = values.length;
    rows.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6}, $${p + 7})`);
    values.push(r.project, r.model, r.segmentKey, r.start, r.length, r.predictions, r.profile);
  }
  await tx.query(
    `insert into partials (project, model, segment, window_start, window_length, predictions, profile) values ${rows.join(', ')}`,
    values,
  );
}

/**
 * Saves the embedded store's dedupe rows at a checkpoint, in one statement (0.25 ms a statement
 * on PGlite), inserting the agents that have no row yet. (PostgreSQL saves them with each group
 * commit: sw_commit in schema.ts.) Seen sets travel as comma-separated text: arrays of arrays do not unnest.
 */
async function saveAgents(tx: Queryable, rows: AgentRow[]): Promise<void> {
  if (rows.length === 0) return;
  const params = [
    rows.map((s) => s.project),
    rows.map((s) => s.agentId),
    rows.map((s) => s.highWater),
    rows.map((s) => s.done),
    rows.map((s) => s.seen.join(',')),
    rows.map((s) => s.applied),
  ];
  const source = `unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::bigint[]) as u(project, agent_id, high_water, done, seen, batches)`;
  const seen = `case when u.seen = '' then '{}'::bigint[] else string_to_array(u.seen, ',')::bigint[] end`;
  await tx.query(
    `insert into agents (project, agent_id, high_water, done, seen, batches, last_seen_at)
     select u.project, u.agent_id, u.high_water, u.done, ${seen}, u.batches, now() from ${source}
     on conflict (project, agent_id) do update
       set high_water = excluded.high_water, done = excluded.done, seen = excluded.seen, batches = excluded.batches, last_seen_at = now()`,
    params,
  );
}
