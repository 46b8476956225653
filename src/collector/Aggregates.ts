import { calibrateThresholds, type Thresholds } from '../drift/index.js';
import { decodeBatch, WindowProfile, type FeatureProfile } from '../sketch/index.js';
import { emptyWindowFor, mergeWindowView, scanBatch } from '../sketch/codec.js';
import { compactSliced, encodeWindow, partialRow } from './Fold.js';
import { appendPartials } from './Ingestor.js';
import { randomToken } from './config.js';
import { toBytes, toNumber, type Database, type Queryable } from './store/Database.js';
import { yieldToLoop } from './yieldToLoop.js';

/**
 * The read side of the store: projects and their ingest keys, and windows merged from their
 * partial rows; plus the compactor that folds partial rows together.
 */
export interface Project {
  id: string;
  ingestKey: string;
}

export const PROJECT_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export async function createProject(db: Database, id: string, ingestKey = randomToken()): Promise<Project> {
  const rows = await db.query<{ id: string; ingest_key: string }>(
    `insert into projects (id, ingest_key) values ($1, $2)
     on conflict (id) do update set id = excluded.id
     returning id, ingest_key`,
    [id, ingestKey],
  );
  return { id: rows[0].id, ingestKey: rows[0].ingest_key };
}

export async function listProjects(db: Queryable): Promise<Project[]> {
  const rows = await db.query<{ id: string; ingest_key: string }>('select id, ingest_key from projects order by id');
  return rows.map((r) => ({ id: r.id, ingestKey: r.ingest_key }));
}

export async function projectExists(db: Queryable, id: string): Promise<boolean> {
  return (await db.query('select 1 from projects where id = $1', [id])).length > 0;
}

export async function projectForKey(db: Queryable, ingestKey: string): Promise<string | null> {
  const rows = await db.query<{ id: string }>('select id from projects where ingest_key = $1', [ingestKey]);
  return rows.length ? rows[0].id : null;
}

export interface ModelSummary {
  model: string;
  segments: Array<Record<string, string>>;
  firstWindow: number;
  lastWindow: number;
  predictions: number;
}

export async function listModels(db: Queryable, project: string): Promise<ModelSummary[]> {
  const rows = await db.query<{ model: string; segment: string; first: unknown; last: unknown; predictions: unknown }>(
    `select model, segment, min(window_start) as first, max(window_start) as last, sum(predictions) as predictions
       from partials where project = $1 group by model, segment order by model, segment`,
    [project],
  );
  const byModel = new Map<string, ModelSummary>();
  for (const r of rows) {
    let m = byModel.get(r.model);
    if (!m) {
      m = { model: r.model, segments: [], firstWindow: Infinity, lastWindow: -Infinity, predictions: 0 };
      byModel.set(r.model, m);
    }
    m.segments.push(JSON.parse(r.segment) as Record<string, string>);
    m.firstWindow = Math.min(m.firstWindow, toNumber(r.first));
    m.lastWindow = Math.max(m.lastWindow, toNumber(r.last));
    m.predictions += toNumber(r.predictions);
  }
  return [...byModel.values()];
}

export interface WindowQuery {
  project: string;
  model: string;
  from: number;
  to: number;
  /** Only this segment (its labels must match exactly); absent = all segments merged. */
  segment?: Record<string, string>;
  /**
   * PostgreSQL: also the batches other replicas acknowledged and have not folded yet (exact
   * counts now, at the cost of decoding raw batches; the detector waits for their checkpoint).
   */
  inbox?: boolean;
}

/**
 * The windows in [from, to) of one model, each merged from its partial rows; with no segment
 * filter, segments are merged too (into a window whose segment is just the model).
 */
export async function loadWindows(db: Queryable, q: WindowQuery): Promise<WindowProfile[]> {
  const params: Array<string | number> = [q.project, q.model, q.from, q.to];
  let sql = `select segment, window_start, window_length, profile from partials
              where project = $1 and model = $2 and window_start >= $3 and window_start < $4`;
  if (q.segment) {
    params.push(new WindowProfile(0, 60_000, q.segment).segmentKey);
    sql += ' and segment = $5';
  }
  sql += ' order by window_start, id';
  // One statement: one snapshot, whatever a compactor folds meanwhile. (Reading the profiles a
  // few rows a statement in a repeatable-read transaction instead measured no better p99.)
  const rows = await db.query<{ segment: string; window_start: unknown; window_length: unknown; profile: unknown }>(sql, params);
  const merged = new Map<string, WindowProfile>();
  const windows: WindowProfile[] = [];
  for (const r of rows) {
    // One row at a time, requests let through between (a window of six segments decoded in one
    // go held the thread for 5–12 ms).
    if (windows.length > 0) await yieldToLoop();
    windows.push(decodeBatch(toBytes(r.profile)).windows[0]);
  }
  if (q.inbox && (db as Partial<Database>).kind === 'postgres') windows.push(...(await inboxWindows(db, q)));
  for (const w of windows) {
    const key = `${w.start}/${w.length}`;
    const target = q.segment ? w : w.segmentKey === JSON.stringify({ model: q.model }) ? w : w.reframed({ segment: { model: q.model } });
    const have = merged.get(key);
    if (have) {
      await yieldToLoop();
      have.merge(target);
    } else merged.set(key, target);
  }
  return [...merged.values()].sort((a, b) => a.start - b.start);
}

/** Partial rows' profiles read per statement: PGlite parses bytea from hex on this thread. */
const PROFILES_PER_STATEMENT = 2;

/**
 * The profiles of partial rows `ids`, in that order, PROFILES_PER_STATEMENT a statement with
 * the event loop let through before each (33 rows of ~16–30 KB in one statement: one long
 * stretch of parsing). The caller holds the rows (FOR UPDATE), so none vanishes between reads.
 */
async function* profilesById(db: Queryable, ids: readonly number[]): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < ids.length; i += PROFILES_PER_STATEMENT) {
    await yieldToLoop();
    const chunk = ids.slice(i, i + PROFILES_PER_STATEMENT);
    const rows = await db.query<{ id: unknown; profile: unknown }>('select id, profile from partials where id = any($1::bigint[])', [chunk]);
    const byId = new Map(rows.map((r) => [toNumber(r.id), toBytes(r.profile)]));
    for (const id of chunk) {
      const profile = byId.get(id);
      if (profile === undefined) throw new Error(`partial row ${id} vanished while it was read`); // a compactor's fold, between the two reads
      yield profile;
    }
  }
}

/** The inbox rows of a window query, as windows placed where the collector put them. */
async function inboxWindows(db: Queryable, q: WindowQuery): Promise<WindowProfile[]> {
  const params: Array<string | number> = [q.project, q.model, q.from, q.to];
  let sql = `select part, window_start, batch from inbox
              where project = $1 and model = $2 and window_start >= $3 and window_start < $4`;
  if (q.segment) {
    params.push(new WindowProfile(0, 60_000, q.segment).segmentKey);
    sql += ' and segment = $5';
  }
  const rows = await db.query<{ part: number; window_start: unknown; batch: unknown }>(`${sql} order by id`, params);
  return rows.map((r) => {
    const w = decodeBatch(toBytes(r.batch)).windows[r.part];
    const start = toNumber(r.window_start);
    return w.start === start ? w : w.reframed({ start });
  });
}

interface PartialKey {
  project: string;
  model: string;
  segment: string;
  window_start: unknown;
  window_length: unknown;
}

/**
 * Folds the partial rows of up to `maxKeys` (project, model, segment, window) keys that have
 * more than one row into a single row each. Returns the rows removed.
 */
export async function compactOnce(db: Database, maxKeys = 100): Promise<number> {
  const keys = await db.query<PartialKey>(
    `select project, model, segment, window_start, window_length from partials
      group by project, model, segment, window_start, window_length having count(*) > 1 limit $1`,
    [maxKeys],
  );
  let removed = 0;
  for (const k of keys) removed += await foldKey(db, k);
  return removed;
}

/** Folds the rows of one window of one model (every segment): the detector does this before
 * it reads a window, so reading costs what arrived since, not the window's whole history. */
export async function compactWindow(db: Database, project: string, model: string, start: number, length: number): Promise<number> {
  const keys = await db.query<PartialKey>(
    `select project, model, segment, window_start, window_length from partials
      where project = $1 and model = $2 and window_start = $3 and window_length = $4
      group by project, model, segment, window_start, window_length having count(*) > 1`,
    [project, model, start, length],
  );
  let removed = 0;
  for (const k of keys) removed += await foldKey(db, k);
  return removed;
}

/**
 * Most rows one fold reads: a fold is one transaction, and on the embedded store one that reads
 * and merges hundreds of ~16 KB rows holds the thread (and ingest) for a long time. A key with
 * more rows is folded by several transactions in turn.
 */
const FOLD_ROWS = 32;

/**
 * Replaces the rows of one key by their merge, FOLD_ROWS at a time, one transaction each. Rows
 * are locked with SKIP LOCKED, so replicas folding at once fold disjoint sets and never count a
 * row twice.
 */
async function foldKey(db: Database, k: PartialKey): Promise<number> {
  let removed = 0;
  for (;;) {
    const [folded, more] = await foldSome(db, k);
    removed += folded;
    if (!more) return removed;
  }
}

/** Folds up to FOLD_ROWS rows of a key into one; says how many rows went and whether more remain. */
async function foldSome(db: Database, k: PartialKey): Promise<[number, boolean]> {
  return db.transaction(async (tx) => {
    const locked = await tx.query<{ id: unknown }>(
      `select id from partials
        where project = $1 and model = $2 and segment = $3 and window_start = $4 and window_length = $5
        order by id limit $6
        for update skip locked`,
      [k.project, k.model, k.segment, toNumber(k.window_start), toNumber(k.window_length), FOLD_ROWS + 1],
    );
    if (locked.length < 2) return [0, false];
    const more = locked.length > FOLD_ROWS;
    if (more) locked.length = FOLD_ROWS;
    const ids = locked.map((r) => toNumber(r.id));
    // Rows are merged straight from their bytes (checked, no TDigest per feature and row), read
    // and merged a few at a time with requests let through between: 32 rows merged in one go
    // held the embedded store's thread for 15–25 ms, and reading their ~16–30 KB profiles in
    // one statement (PGlite parses bytea from hex on this thread) up to ~30 ms.
    let acc: WindowProfile | null = null;
    for await (const profile of profilesById(tx, ids)) {
      const view = scanBatch(profile);
      const [w] = view.windows;
      acc ??= emptyWindowFor(w);
      mergeWindowView(acc, w, view.bytes);
    }
    await compactSliced(acc!);
    await tx.query('delete from partials where id = any($1::bigint[])', [ids]);
    // By COPY where the store takes it: the folded profile as a bytea parameter went through a
    // hex string twice its size, the longest statement of a busy embedded store (~15 ms).
    await appendPartials(tx, [partialRow({ project: k.project, model: k.model, window: acc! })]);
    return [ids.length - 1, more];
  });
}

// ---------------------------------------------------------------- baselines

export const BASELINE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export interface BaselineInfo {
  name: string;
  source: string;
  observations: number;
  createdAt: string;
  /** For baselines computed at evaluation time: 'previous' or 'trailing:N' (windows). */
  dynamic?: string;
  /** Thresholds calibrated from the baseline's chunks, per `role/feature`. */
  thresholds?: FeatureThresholds;
}

/**
 * Defines a baseline computed when a window is evaluated: the window before it ('previous') or
 * the merge of the N windows before it ('trailing:N'), so a model can be watched for sudden
 * change against its own recent past.
 */
export async function saveDynamicBaseline(db: Queryable, project: string, model: string, name: string, dynamic: string): Promise<BaselineInfo> {
  if (!/^(previous|trailing:[1-9]\d{0,3})$/.test(dynamic)) throw new RangeError(`unknown dynamic baseline ${dynamic}`);
  const rows = await db.query<{ created_at: unknown }>(
    `insert into baselines (project, model, name, source, observations, profile, dynamic) values ($1, $2, $3, $4, 0, $5, $4)
     on conflict (project, model, name) do update
       set source = excluded.source, observations = 0, profile = excluded.profile, dynamic = excluded.dynamic, created_at = now()
     returning created_at`,
    [project, model, name, dynamic, new Uint8Array(0)],
  );
  return { name, source: dynamic, observations: 0, createdAt: new Date(rows[0].created_at as string | Date).toISOString(), dynamic };
}

/**
 * The profile a baseline stands for when window `start` (of `length`) is evaluated: the stored
 * profile, or for a dynamic one the windows before `start` merged; null when there is no data.
 */
export async function baselineProfile(db: Queryable, project: string, model: string, info: BaselineInfo, start: number, length: number): Promise<WindowProfile | null> {
  if (!info.dynamic) return loadBaseline(db, project, model, info.name);
  const windows = info.dynamic === 'previous' ? 1 : Number(info.dynamic.slice('trailing:'.length));
  return mergeRange(db, project, model, start - windows * length, start);
}

/** Per-feature thresholds calibrated from a baseline's chunks, keyed `role/name`. */
export type FeatureThresholds = Record<string, Thresholds>;

/**
 * Stores (or replaces) a baseline profile for a model. With chunk profiles (the same data cut
 * into consecutive pieces), each feature's thresholds are calibrated from the chunks' variation
 * and stored with it (drift/calibrate.ts).
 */
export async function saveBaseline(db: Database, project: string, model: string, name: string, source: string, window: WindowProfile, chunks: WindowProfile[] = []): Promise<BaselineInfo> {
  const observations = window.predictions;
  const thresholds = chunks.length >= 2 ? calibrate(window, chunks) : null;
  const rows = await db.query<{ created_at: unknown }>(
    `insert into baselines (project, model, name, source, observations, profile, thresholds) values ($1, $2, $3, $4, $5, $6, $7)
     on conflict (project, model, name) do update
       set source = excluded.source, observations = excluded.observations, profile = excluded.profile,
           thresholds = excluded.thresholds, dynamic = null, created_at = now()
     returning created_at`,
    [project, model, name, source, observations, encodeWindow(window), thresholds === null ? null : JSON.stringify(thresholds)],
  );
  return { name, source, observations, createdAt: new Date(rows[0].created_at as string | Date).toISOString(), ...(thresholds ? { thresholds } : {}) };
}

function calibrate(window: WindowProfile, chunks: WindowProfile[]): FeatureThresholds {
  const out: FeatureThresholds = {};
  const roles: Array<[string, (w: WindowProfile) => Map<string, FeatureProfile>]> = [
    ['input', (w) => w.inputs],
    ['output', (w) => w.outputs],
    ['latency', (w) => new Map([['latency_ms', w.latency]])],
  ];
  for (const [role, features] of roles) {
    for (const [name, whole] of features(window)) {
      const pieces = chunks.map((c) => features(c).get(name)).filter((f): f is FeatureProfile => f !== undefined && f.kind === whole.kind && f.observed > 0);
      if (pieces.length >= 2) out[`${role}/${name}`] = calibrateThresholds(pieces);
    }
  }
  return out;
}

export async function listBaselines(db: Queryable, project: string, model: string): Promise<BaselineInfo[]> {
  const rows = await db.query<{ name: string; source: string; observations: unknown; created_at: unknown; dynamic: string | null; thresholds: string | null }>(
    'select name, source, observations, created_at, dynamic, thresholds from baselines where project = $1 and model = $2 order by name',
    [project, model],
  );
  return rows.map((r) => ({
    name: r.name,
    source: r.source,
    observations: toNumber(r.observations),
    createdAt: new Date(r.created_at as string | Date).toISOString(),
    ...(r.dynamic ? { dynamic: r.dynamic } : {}),
    ...(r.thresholds ? { thresholds: JSON.parse(r.thresholds) as FeatureThresholds } : {}),
  }));
}

export async function loadBaseline(db: Queryable, project: string, model: string, name: string): Promise<WindowProfile | null> {
  const rows = await db.query<{ profile: unknown }>('select profile from baselines where project = $1 and model = $2 and name = $3 and dynamic is null', [project, model, name]);
  return rows.length ? decodeBatch(toBytes(rows[0].profile)).windows[0] : null;
}

/** Merges every window of [from, to) into one profile: a baseline from production data. */
export async function mergeRange(db: Queryable, project: string, model: string, from: number, to: number): Promise<WindowProfile | null> {
  const windows = await loadWindows(db, { project, model, from, to });
  if (windows.length === 0) return null;
  const merged = new WindowProfile(0, 60_000, { model, source: `range:${from}-${to}` });
  for (const w of windows) merged.merge(w.reframed({ start: 0, length: 60_000, segment: { ...merged.segment } }));
  return merged;
}
