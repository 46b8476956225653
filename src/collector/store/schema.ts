import type { Database } from './Database.js';

/**
 * The schema, as numbered migrations applied in order on start. Each runs once, in a
 * transaction with the version bump, under an advisory lock so that replicas starting together
 * do not race.
 *
 * partials: append-only partial aggregates, one row per (project, model, segment, window) per
 * collector flush, holding an encoded WindowProfile. Queries merge the rows of a key; the
 * compactor folds them into one. Appending instead of updating a hot row is what lets several
 * replicas write without contending.
 *
 * baselines: named reference profiles per model (training data, or a fixed range of production),
 * stored as encoded WindowProfiles; PSI bins are derived from a baseline deterministically, so
 * they are fixed from the moment it is stored.
 *
 * agents: per (project, agent) dedupe state — `done` (every sequence up to it counts as applied),
 * the applied sequences above it (`seen`), the highest. Written with what it accounts for: on
 * PostgreSQL with the batches' inbox rows; embedded, with the checkpoint's partial rows and the
 * journal position (journal_state) they cover. So a batch is applied exactly once or not at all.
 * Rows from before `done` existed have it null (read as high_water - DEDUPE_WINDOW).
 *
 * inbox (PostgreSQL): acknowledged batches not yet folded into partials — one row per batch
 * window, the batch's own bytes and the window's (clock-corrected) start. The replica that wrote
 * them folds them at its next checkpoint; rows left by a replica that died are folded by any.
 * Queries read them along with partials. Stored uncompressed (storage external): they live for
 * a second, and TOAST compression of every ~10 KB row cost the server more than it saved.
 */
const MIGRATIONS: string[] = [
  `
  create table projects (
    id text primary key,
    ingest_key text not null unique,
    created_at timestamptz not null default now()
  );
  create table agents (
    project text not null references projects(id),
    agent_id text not null,
    high_water bigint not null default -1,
    seen bigint[] not null default '{}',
    batches bigint not null default 0,
    last_seen_at timestamptz not null default now(),
    primary key (project, agent_id)
  );
  create table partials (
    id bigserial primary key,
    project text not null references projects(id),
    model text not null,
    segment text not null,
    window_start bigint not null,
    window_length integer not null,
    predictions bigint not null,
    profile bytea not null,
    created_at timestamptz not null default now()
  );
  create index partials_by_window on partials (project, model, window_start);
  `,
  `
  create table baselines (
    project text not null references projects(id),
    model text not null,
    name text not null,
    source text not null,
    observations bigint not null,
    profile bytea not null,
    created_at timestamptz not null default now(),
    primary key (project, model, name)
  );
  `,
  `
  create table webhooks (
    id bigserial primary key,
    project text not null references projects(id),
    url text not null,
    format text not null check (format in ('slack', 'json')),
    created_at timestamptz not null default now()
  );
  create table drift_results (
    project text not null,
    model text not null,
    window_start bigint not null,
    window_length integer not null,
    baseline text not null,
    role text not null,
    feature text not null,
    metric text not null,
    value double precision not null,
    threshold double precision not null,
    drifted boolean not null,
    observed bigint not null,
    evaluated_at timestamptz not null default now(),
    primary key (project, model, window_start, baseline, role, feature, metric)
  );
  create table alerts (
    id bigserial primary key,
    project text not null,
    model text not null,
    key text not null,
    state text not null check (state in ('firing', 'resolved')),
    summary text not null,
    details text not null,
    window_start bigint not null,
    opened_at timestamptz not null default now(),
    notified_at timestamptz,
    resolved_at timestamptz
  );
  create index alerts_open on alerts (project, model, key) where state = 'firing';
  create table detector_state (
    project text not null,
    model text not null,
    last_partial bigint not null,
    primary key (project, model)
  );
  `,
  `
  alter table baselines add column dynamic text;
  `,
  `
  alter table baselines add column thresholds text;
  `,
  `
  alter table agents add column done bigint;
  create table journal_state (
    id integer primary key check (id = 1),
    segment bigint not null
  );
  create table inbox (
    id bigserial primary key,
    project text not null references projects(id),
    model text not null,
    segment text not null,
    window_start bigint not null,
    window_length integer not null,
    part integer not null,
    predictions bigint not null,
    batch bytea not null,
    created_at timestamptz not null default now()
  );
  alter table inbox alter column batch set storage external;
  create index inbox_by_window on inbox (project, model, window_start);
  create index inbox_by_age on inbox (created_at);
  `,
];

const LOCK_ID = 0x5357_0001; // "SW" + 1: the migration advisory lock

export async function migrate(db: Database): Promise<number> {
  return db.transaction(async (tx) => {
    // The lock comes first, even before the version table: two replicas running CREATE TABLE
    // IF NOT EXISTS at once collide in PostgreSQL's catalog (duplicate key on pg_type).
    await tx.query('select pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.query('create table if not exists sw_schema (version integer not null)');
    const rows = await tx.query<{ version: number }>('select version from sw_schema');
    let version = rows.length === 0 ? 0 : Number(rows[0].version);
    if (rows.length === 0) await tx.query('insert into sw_schema (version) values (0)');
    for (; version < MIGRATIONS.length; version++) {
      for (const statement of MIGRATIONS[version].split(';').map((s) => s.trim()).filter(Boolean)) {
        await tx.query(statement);
      }
      await tx.query('update sw_schema set version = $1', [version + 1]);
    }
    return version;
  });
}
