import { encodeBatch, type WindowProfile } from '../sketch/index.js';
import type { BatchView } from '../sketch/codec.js';
import { FlushMerge } from './FlushMerge.js';
import { copyBinary, type Database, type Queryable, type SqlValue } from './store/Database.js';
import type { Metrics } from './metrics.js';

/**
 * Group commit of accepted batches.
 *
 * A request hands its checked batch (a BatchView: digests still bytes) to `submit` and waits.
 * Every `flushIntervalMs` (or sooner when `maxPending` batches wait) one transaction: locks the
 * dedupe rows of the batches' agents in a fixed order, skips every (agent, sequence) already
 * applied — by this replica, another replica, or earlier in the same flush — merges the rest
 * per (project, model, segment, window) straight from their bytes (FlushMerge), appends one
 * partial row per key, and writes the agents' new dedupe state. A batch whose features cannot
 * merge with another of the same commit (a feature's kind or classes differ) is refused alone. Only after COMMIT
 * are the waiting requests answered. A crash before then loses only unanswered batches, which
 * the agents resend; a batch is therefore applied exactly once.
 *
 * Must: never answer before the commit that holds the batch; never apply a sequence twice;
 * lock agent rows in one global order (replicas must not deadlock).
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
}

interface Pending {
  project: string;
  batch: BatchView;
  resolve(outcome: IngestOutcome): void;
  reject(error: Error): void;
}

interface AgentState {
  project: string;
  agentId: string;
  highWater: number;
  seen: Set<number>;
  applied: number;
  changed: boolean;
}

export const DEFAULT_DEDUPE_WINDOW = 4096;

/** A batch refused at commit because it cannot merge with the others (not acknowledged). */
export class MergeConflictError extends Error {
  override name = 'MergeConflictError';
}

export class Ingestor {
  private pending: Pending[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly flushIntervalMs: number;
  private readonly maxPending: number;
  private readonly dedupeWindow: number;
  /** Flushes run one at a time, so one merge (and its pool of profiles) serves them all. */
  private readonly merge = new FlushMerge();
  /**
   * The embedded store has one connection in one process: no other writer can change an agent's
   * dedupe row, so its committed state is kept here and neither re-read nor locked per commit
   * (two of a commit's four statements, ~0.1 ms per batch). Entries are updated in place during
   * a commit; a failed commit empties the cache, so nothing uncommitted is ever trusted.
   * PostgreSQL (replicas) always reads and locks the rows.
   */
  private readonly agentCache: Map<string, AgentState> | null;

  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
    options: IngestorOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 20;
    this.maxPending = options.maxPending ?? 1000;
    this.dedupeWindow = options.dedupeWindow ?? DEFAULT_DEDUPE_WINDOW;
    this.agentCache = db.kind === 'pglite' ? new Map() : null;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Queues a validated batch; resolves once it is committed (or found to be a duplicate).
   * An idle ingestor commits at once; while a commit runs, arrivals gather for the next one —
   * so a quiet collector answers in one commit's time and a busy one commits in large groups.
   * `flushIntervalMs` bounds how long a batch can wait behind a slow commit before another
   * is queued anyway.
   */
  submit(project: string, batch: BatchView): Promise<IngestOutcome> {
    if (this.closed) return Promise.reject(new Error('collector is shutting down'));
    return new Promise((resolve, reject) => {
      this.pending.push({ project, batch, resolve, reject });
      if (!this.busy || this.pending.length >= this.maxPending) this.schedule(0);
      else this.schedule(this.flushIntervalMs);
    });
  }

  private busy = false;

  private schedule(delay: number): void {
    if (this.timer !== null && delay > 0) return;
    if (this.timer !== null) clearTimeout(this.timer);
    // setImmediate-like: requests arriving in the same turn still share the commit.
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delay);
  }

  /** Commits everything queued so far. Flushes run one at a time, in order. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      this.busy = true;
      try {
        await this.flushOnce();
      } finally {
        this.busy = false;
        if (this.pending.length > 0) this.schedule(0);
      }
    });
    return this.flushing;
  }

  /** Stops taking batches and commits what is queued. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.flush();
  }

  private async flushOnce(): Promise<void> {
    const items = this.pending;
    if (items.length === 0) return;
    this.pending = [];
    const started = performance.now();
    try {
      const outcomes = await this.db.transaction((tx) => this.commit(tx, items));
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
      this.agentCache?.clear();
      const error = e instanceof Error ? e : new Error(String(e));
      this.metrics.inc('sketchwatch_flush_failures_total', 'Group commits that failed (their batches were not acknowledged).');
      for (const item of items) item.reject(error);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      this.metrics.observe('sketchwatch_flush_seconds', 'Time to commit one group of batches.', seconds);
    }
  }

  /** One outcome per item; null for a batch refused because it cannot merge (see FlushMerge). */
  private async commit(tx: Queryable, items: Pending[]): Promise<Array<IngestOutcome | null>> {
    const states = this.agentCache ? await this.cachedAgents(tx, items, this.agentCache) : await this.lockAgents(tx, items);
    const merge = this.merge;
    try {
      const outcomes: Array<IngestOutcome | null> = [];
      for (const { project, batch } of items) {
        const state = states.get(agentKey(project, batch.agentId))!;
        const sequence = batch.sequence;
        if (this.alreadyApplied(state, sequence)) {
          outcomes.push({ status: 'duplicate', sequence });
          continue;
        }
        if (!merge.canMerge(project, batch.windows)) {
          outcomes.push(null);
          continue;
        }
        this.markApplied(state, sequence);
        for (const w of batch.windows) merge.merge(project, w, batch.bytes);
        outcomes.push({ status: 'applied', sequence });
      }
      await this.appendPartials(tx, merge.windows());
      const changed = [...states.values()].filter((s) => s.changed);
      if (this.agentCache) await this.upsertAgents(tx, changed);
      else await this.saveAgents(tx, changed);
      return outcomes;
    } finally {
      merge.release();
    }
  }

  /** Creates missing agent rows, then locks all of this flush's agents in key order. */
  private async lockAgents(tx: Queryable, items: Pending[]): Promise<Map<string, AgentState>> {
    const keys = new Map<string, [string, string]>();
    for (const { project, batch } of items) keys.set(agentKey(project, batch.agentId), [project, batch.agentId]);
    const ordered = [...keys.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    const projects = ordered.map(([p]) => p);
    const agents = ordered.map(([, a]) => a);
    await tx.query(
      `insert into agents (project, agent_id)
       select * from unnest($1::text[], $2::text[]) on conflict do nothing`,
      [projects, agents],
    );
    const rows = await tx.query<{ project: string; agent_id: string; high_water: unknown; seen: unknown[]; batches: unknown }>(
      `select a.project, a.agent_id, a.high_water, a.seen, a.batches
         from agents a join unnest($1::text[], $2::text[]) as k(project, agent_id)
           on a.project = k.project and a.agent_id = k.agent_id
        order by a.project, a.agent_id
        for update of a`,
      [projects, agents],
    );
    const states = new Map<string, AgentState>();
    for (const r of rows) states.set(agentKey(r.project, r.agent_id), stateFromRow(r));
    return states;
  }

  /** The embedded store's agents: from the cache, else read once (no lock: one connection). */
  private async cachedAgents(tx: Queryable, items: Pending[], cache: Map<string, AgentState>): Promise<Map<string, AgentState>> {
    const states = new Map<string, AgentState>();
    const missing = new Map<string, [string, string]>();
    for (const { project, batch } of items) {
      const key = agentKey(project, batch.agentId);
      const cached = cache.get(key);
      if (cached) states.set(key, cached);
      else missing.set(key, [project, batch.agentId]);
    }
    if (missing.size === 0) return states;
    if (cache.size + missing.size > MAX_CACHED_AGENTS) cache.clear();
    const list = [...missing.values()];
    const rows = await tx.query<{ project: string; agent_id: string; high_water: unknown; seen: unknown[]; batches: unknown }>(
      `select a.project, a.agent_id, a.high_water, a.seen, a.batches
         from agents a join unnest($1::text[], $2::text[]) as k(project, agent_id)
           on a.project = k.project and a.agent_id = k.agent_id`,
      [list.map(([p]) => p), list.map(([, a]) => a)],
    );
    for (const r of rows) states.set(agentKey(r.project, r.agent_id), stateFromRow(r));
    for (const [key, [project, agentId]] of missing) {
      let state = states.get(key);
      if (!state) {
        state = { project, agentId, highWater: -1, seen: new Set(), applied: 0, changed: false };
        states.set(key, state);
      }
      cache.set(key, state);
    }
    return states;
  }

  private alreadyApplied(state: AgentState, sequence: number): boolean {
    // Below the window we no longer remember individual sequences: an agent only sends that
    // far behind after the collector acknowledged thousands of newer batches, so it is a replay.
    if (sequence <= state.highWater - this.dedupeWindow) return true;
    return state.seen.has(sequence);
  }

  private markApplied(state: AgentState, sequence: number): void {
    state.seen.add(sequence);
    state.applied++;
    state.changed = true;
    if (sequence > state.highWater) {
      state.highWater = sequence;
      const floor = sequence - this.dedupeWindow;
      for (const s of state.seen) if (s <= floor) state.seen.delete(s);
    }
  }

  private async appendPartials(tx: Queryable, aggregates: Array<{ project: string; model: string; window: WindowProfile }>): Promise<void> {
    // One multi-row INSERT: a statement per row cost a round trip each on PostgreSQL. Where the
    // store takes binary COPY for less (PGlite: ~16 KB profiles need no hex), that instead.
    if (aggregates.length === 0) return;
    if (tx.copyBinary) {
      const rows = aggregates.map(({ project, model, window }) => [
        { text: project }, { text: model }, { text: window.segmentKey }, { int8: window.start }, { int4: window.length },
        { int8: window.predictions }, { bytea: encodeWindow(window) },
      ]);
      await tx.copyBinary('copy partials (project, model, segment, window_start, window_length, predictions, profile)', copyBinary(rows));
      return;
    }
    const values: SqlValue[] = [];
    const rows: string[] = [];
    for (const { project, model, window } of aggregates) {
      const p = values.length;
      rows.push(`($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6}, $${p + 7})`);
      values.push(project, model, window.segmentKey, window.start, window.length, window.predictions, encodeWindow(window));
    }
    await tx.query(
      `insert into partials (project, model, segment, window_start, window_length, predictions, profile) values ${rows.join(', ')}`,
      values,
    );
  }

  /** saveAgents for the embedded store, whose new agents have no row yet: one upsert. */
  private async upsertAgents(tx: Queryable, states: AgentState[]): Promise<void> {
    if (states.length === 0) return;
    for (const s of states) s.changed = false;
    await tx.query(
      `insert into agents (project, agent_id, high_water, seen, batches, last_seen_at)
       select u.project, u.agent_id, u.high_water,
              case when u.seen = '' then '{}'::bigint[] else string_to_array(u.seen, ',')::bigint[] end, u.batches, now()
         from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[]) as u(project, agent_id, high_water, seen, batches)
       on conflict (project, agent_id) do update
         set high_water = excluded.high_water, seen = excluded.seen, batches = excluded.batches, last_seen_at = now()`,
      [
        states.map((s) => s.project),
        states.map((s) => s.agentId),
        states.map((s) => s.highWater),
        states.map((s) => [...s.seen].sort((a, b) => a - b).join(',')),
        states.map((s) => s.applied),
      ],
    );
  }

  private async saveAgents(tx: Queryable, states: AgentState[]): Promise<void> {
    // One UPDATE for every agent of the flush (0.25 ms a statement on PGlite; a round trip each
    // on PostgreSQL). Seen sets travel as comma-separated text: arrays of arrays do not unnest.
    if (states.length === 0) return;
    await tx.query(
      `update agents a set high_water = u.high_water, batches = u.batches, last_seen_at = now(),
              seen = case when u.seen = '' then '{}'::bigint[] else string_to_array(u.seen, ',')::bigint[] end
         from unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[]) as u(project, agent_id, high_water, seen, batches)
        where a.project = u.project and a.agent_id = u.agent_id`,
      [
        states.map((s) => s.project),
        states.map((s) => s.agentId),
        states.map((s) => s.highWater),
        states.map((s) => [...s.seen].sort((a, b) => a - b).join(',')),
        states.map((s) => s.applied),
      ],
    );
  }
}

/** Agents the embedded store's cache holds before it starts over. */
const MAX_CACHED_AGENTS = 100_000;

function stateFromRow(r: { project: string; agent_id: string; high_water: unknown; seen: unknown[]; batches: unknown }): AgentState {
  return {
    project: r.project,
    agentId: r.agent_id,
    highWater: Number(r.high_water),
    seen: new Set((r.seen ?? []).map(Number)),
    applied: Number(r.batches),
    changed: false,
  };
}

function agentKey(project: string, agentId: string): string {
  return `${project}\u0000${agentId}`;
}

/** A window as stored in a partial row: a one-window batch in the wire format. */
export function encodeWindow(window: WindowProfile): Uint8Array {
  return encodeBatch({ agentId: 'collector', sequence: 0, sentAt: 0, windows: [window] });
}
