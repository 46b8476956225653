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
  // PostgreSQL's group commit in one statement (Ingestor.commitPostgres): one round trip per
  // group instead of six, each of which waited its turn on a busy collector's event loop (~4–6
  // ms apiece under load). Batches in group order; for each, whether it was applied and the ids
  // of its inbox rows (one row per applied batch with no windows: inbox_id null). The dedupe
  // rule is Ingestor.markApplied's, step for step; test/collector/ingest.test.ts holds both to
  // the same outcomes.
  `
  create function sw_commit(
    p_projects text[], p_agents text[], p_sequences bigint[], p_dedupe_window bigint,
    r_item integer[], r_model text[], r_segment text[], r_start bigint[], r_length integer[],
    r_part integer[], r_predictions bigint[],
    variadic p_batches bytea[]
  ) returns table (item integer, applied boolean, inbox_id bigint)
  language plpgsql as $$
  #variable_conflict use_column
  declare
    i integer;
    v_done bigint;
    v_high bigint;
    v_seen bigint[];
    v_batches bigint;
    v_seq bigint;
    v_floor bigint;
    v_rows integer;
  begin
    -- Missing agents first, then every agent of the group locked in one global order: replicas
    -- committing groups that share agents wait for each other and never deadlock.
    insert into agents (project, agent_id)
      select distinct k.project, k.agent_id from unnest(p_projects, p_agents) as k(project, agent_id)
      order by 1, 2
      on conflict do nothing;
    perform 1 from agents a
      join (select distinct * from unnest(p_projects, p_agents) as k(project, agent_id)) k
        on a.project = k.project and a.agent_id = k.agent_id
      order by a.project, a.agent_id
      for update of a;
    for i in 1 .. coalesce(array_length(p_projects, 1), 0) loop
      select a.done, a.high_water, a.seen, a.batches into v_done, v_high, v_seen, v_batches
        from agents a where a.project = p_projects[i] and a.agent_id = p_agents[i];
      -- Rows written before done existed: everything a dedupe window below the highest counted.
      v_done := coalesce(v_done, greatest(-1, v_high - p_dedupe_window));
      v_seen := array(select x from unnest(v_seen) as x where x > v_done);
      v_seq := p_sequences[i];
      if v_seq <= v_done or v_seq = any(v_seen) then
        item := i; applied := false; inbox_id := null;
        return next;
        continue;
      end if;
      v_batches := v_batches + 1;
      v_seen := array_append(v_seen, v_seq);
      v_high := greatest(v_high, v_seq);
      v_floor := v_high - p_dedupe_window;
      if v_done < v_floor then
        v_done := v_floor;
        v_seen := array(select x from unnest(v_seen) as x where x > v_floor);
      end if;
      while v_done + 1 = any(v_seen) loop
        v_done := v_done + 1;
        v_seen := array_remove(v_seen, v_done);
      end loop;
      update agents set done = v_done, high_water = v_high, seen = array(select x from unnest(v_seen) as x order by x),
          batches = v_batches, last_seen_at = now()
        where project = p_projects[i] and agent_id = p_agents[i];
      return query
        insert into inbox (project, model, segment, window_start, window_length, part, predictions, batch)
          select p_projects[i], r.model, r.segment, r.start, r.length, r.part, r.predictions, p_batches[i]
            from unnest(r_item, r_model, r_segment, r_start, r_length, r_part, r_predictions)
              as r(item, model, segment, start, length, part, predictions)
           where r.item = i
           order by r.part
        returning i, true, id;
      get diagnostics v_rows = row_count;
      if v_rows = 0 then
        item := i; applied := true; inbox_id := null;
        return next;
      end if;
    end loop;
  end
  $$
  `,
];

/**
 * A migration's statements: split at semicolons, except inside dollar-quoted bodies ($$ … $$),
 * where a function's own statements end.
 */
function statements(migration: string): string[] {
  const out: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < migration.length; i++) {
    if (migration.startsWith('$$', i)) {
      quoted = !quoted;
      i++;
    } else if (migration[i] === ';' && !quoted) {
      out.push(migration.slice(start, i));
      start = i + 1;
    }
  }
  out.push(migration.slice(start));
  return out.map((s) => s.trim()).filter(Boolean);
}

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
      for (const statement of statements(MIGRATIONS[version])) {
        await tx.query(statement);
      }
      await tx.query('update sw_schema set version = $1', [version + 1]);
    }
    return version;
  });
}
