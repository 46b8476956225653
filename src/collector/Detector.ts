import { compareWindows, type FeatureComparison, type WindowComparison } from '../drift/index.js';
import type { WindowProfile } from '../sketch/index.js';
import { baselineProfile, compactWindow, listBaselines, loadWindows } from './Aggregates.js';
import type { Metrics } from './metrics.js';
import type { AlertMessage, Notifier } from './Notifier.js';
import { toNumber, type Database, type Queryable } from './store/Database.js';

/**
 * Evaluates every window that received data since the last pass — the open window included,
 * once it holds enough observations, which is what makes detection take minutes, not a window
 * — against each baseline defined for its model (stored profiles, or dynamic ones: the window
 * before, the N windows before; a model with none is compared with the window before), stores the statistics, and moves alerts between firing and resolved.
 *
 * A condition (one drift or data-quality check of one feature against one baseline) fires when
 * the newest evaluated window shows it with enough data, and resolves when the newest window
 * with enough data no longer does; windows without enough data leave alerts as they are, so the
 * start of a fresh window does not resolve everything. Notifications for a condition that fired
 * less than `cooldownMs` ago are not repeated (flapping). One replica at a time evaluates a model
 * (an advisory lock), so alerts are not doubled across replicas.
 *
 * Must: inside a transaction, query through the transaction only (PGlite has one connection:
 * a query on the database from inside a transaction waits for it forever).
 */
export interface DetectorOptions {
  intervalMs?: number;
  cooldownMs?: number;
}

interface Condition {
  key: string;
  /** null: not enough data to say. */
  active: boolean | null;
  summary: string;
  details: Record<string, unknown>;
}

export class Detector {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private readonly intervalMs: number;
  private readonly cooldownMs: number;

  constructor(
    private readonly db: Database,
    private readonly notifier: Notifier,
    private readonly metrics: Metrics,
    options: DetectorOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 2_000;
    this.cooldownMs = options.cooldownMs ?? 15 * 60_000;
  }

  /**
   * Runs passes every intervalMs — or, when a pass takes long (a busy collector), four times
   * its duration after it ends, so detection never takes more than a fifth of the core that
   * ingest needs.
   */
  start(): void {
    if (this.timer !== null || this.stopped) return;
    const tick = (delay: number): void => {
      this.timer = setTimeout(async () => {
        const started = performance.now();
        await this.runOnce();
        if (!this.stopped) tick(Math.max(this.intervalMs, 4 * (performance.now() - started)));
      }, delay);
      this.timer.unref();
    };
    tick(this.intervalMs);
  }

  private stopped = false;

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await this.notifier.drain();
  }

  /** One pass over every model with new data. Passes never overlap. */
  runOnce(): Promise<void> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<void> {
    const started = performance.now();
    try {
      const changed = await this.db.query<{ project: string; model: string; last: unknown; seen: unknown }>(
        `select p.project, p.model, max(p.id) as last, coalesce(max(d.last_partial), 0) as seen
           from partials p left join detector_state d on d.project = p.project and d.model = p.model
          group by p.project, p.model
         having max(p.id) > coalesce(max(d.last_partial), 0)`,
      );
      for (const c of changed) {
        const messages = await this.evaluateModel(c.project, c.model, toNumber(c.seen), toNumber(c.last));
        for (const m of messages) void this.notifier.send(m);
      }
    } catch (e) {
      this.metrics.inc('sketchwatch_detector_failures_total', 'Detector passes that failed.');
      console.error(`sketchwatch detector: ${(e as Error).message}`);
    } finally {
      this.metrics.observe('sketchwatch_detector_seconds', 'Time of one detector pass.', (performance.now() - started) / 1000);
    }
  }

  private async evaluateModel(project: string, model: string, seen: number, last: number): Promise<AlertMessage[]> {
    // Reads, folds and comparisons happen outside the transaction: PGlite has one connection,
    // and ingest must not wait for the statistics. Only the writes take the model's lock.
    const touched = await this.db.query<{ window_start: unknown; window_length: unknown }>(
      `select distinct window_start, window_length from partials
        where project = $1 and model = $2 and id > $3 and id <= $4 order by window_start`,
      [project, model, seen, last],
    );
    const defined = await listBaselines(this.db, project, model);
    const evaluated: Array<{ window: WindowProfile; comparisons: Map<string, WindowComparison> }> = [];
    for (const t of touched) {
      const start = toNumber(t.window_start);
      const length = toNumber(t.window_length);
      await compactWindow(this.db, project, model, start, length);
      const [window] = await loadWindows(this.db, { project, model, from: start, to: start + 1 });
      if (!window) continue;
      // A model with no baseline defined is compared with the window before each window.
      const baselines = defined.length > 0 ? defined : [{ name: 'previous', source: 'previous', observations: 0, createdAt: '', dynamic: 'previous' }];
      const comparisons = new Map<string, WindowComparison>();
      for (const b of baselines) {
        const profile = await baselineProfile(this.db, project, model, b, start, length);
        if (!profile) continue;
        const calibrated = b.thresholds;
        comparisons.set(b.name, compareWindows(profile, window, {
          featureOptions: calibrated ? (role, feature) => ({ thresholds: calibrated[`${role}/${feature}`] }) : undefined,
        }));
      }
      evaluated.push({ window, comparisons });
    }
    return this.db.transaction(async (tx) => {
      const [lock] = await tx.query<{ ok: boolean }>('select pg_try_advisory_xact_lock(hashtext($1)) as ok', [`sketchwatch-detector/${project}/${model}`]);
      if (!lock.ok) return [];
      let newest: (typeof evaluated)[number] | null = null;
      for (const e of evaluated) {
        for (const [name, comparison] of e.comparisons) await saveResults(tx, project, model, e.window, name, comparison);
        if (newest === null || e.window.start >= newest.window.start) newest = e;
      }
      const messages = newest ? await this.transition(tx, project, model, newest.window, conditions(newest.window, newest.comparisons)) : [];
      await tx.query(
        `insert into detector_state (project, model, last_partial) values ($1, $2, $3)
         on conflict (project, model) do update set last_partial = greatest(detector_state.last_partial, excluded.last_partial)`,
        [project, model, last],
      );
      return messages;
    });
  }

  /** Opens and resolves alerts; returns the notifications to send once committed. */
  private async transition(tx: Queryable, project: string, model: string, window: WindowProfile, found: Condition[]): Promise<AlertMessage[]> {
    const open = await tx.query<{ id: unknown; key: string; summary: string }>(
      `select id, key, summary from alerts where project = $1 and model = $2 and state = 'firing' for update`,
      [project, model],
    );
    const firing = new Map(open.map((a) => [a.key, a]));
    const byKey = new Map(found.map((c) => [c.key, c]));
    const messages: AlertMessage[] = [];
    const message = (state: AlertMessage['state'], key: string, summary: string, details: Record<string, unknown>): AlertMessage => ({
      state, project, model, key, summary, details, windowStart: window.start, windowLength: window.length,
    });
    for (const c of found) {
      if (c.active !== true || firing.has(c.key)) continue;
      const recent = await tx.query<{ n: unknown }>(
        `select count(*) as n from alerts where project = $1 and model = $2 and key = $3 and notified_at > now() - ($4::double precision * interval '1 millisecond')`,
        [project, model, c.key, this.cooldownMs],
      );
      const notify = toNumber(recent[0].n) === 0;
      await tx.query(
        `insert into alerts (project, model, key, state, summary, details, window_start, notified_at)
         values ($1, $2, $3, 'firing', $4, $5, $6, ${notify ? 'now()' : 'null'})`,
        [project, model, c.key, c.summary, JSON.stringify(c.details), window.start],
      );
      this.metrics.inc('sketchwatch_alerts_total', 'Alerts opened and resolved.', { state: 'firing' });
      if (notify) messages.push(message('firing', c.key, c.summary, c.details));
    }
    for (const [key, alert] of firing) {
      const c = byKey.get(key);
      // Resolved only on evidence: the condition was checked with enough data and is clear.
      const clear = c !== undefined ? c.active === false : false;
      if (!clear) continue;
      await tx.query(`update alerts set state = 'resolved', resolved_at = now() where id = $1`, [toNumber(alert.id)]);
      this.metrics.inc('sketchwatch_alerts_total', 'Alerts opened and resolved.', { state: 'resolved' });
      messages.push(message('resolved', key, `back to normal: ${alert.summary}`, {}));
    }
    return messages;
  }
}

/**
 * A feature drifts when at least this many independent pieces of evidence agree (or all it has,
 * if fewer). Each metric alone is held to its threshold and a noise floor at α = 1e-3, but five
 * metrics on tens of features, re-evaluated as the open window fills, give chance many tries; a
 * real shift moves several at once. (Fleet simulation: one metric alone gave 2 false alerts per
 * 1,000 stationary feature-windows.) PSI, Jensen–Shannon and Hellinger are three functions of
 * the same binned proportions, so they count as one: 3 of the 4 false alerts of a fleet run
 * (and both of an earlier one) were those three, or two of them, alone; with them counted once,
 * 0 over 3,375 stationary feature-windows, MTTD p95 still ≤ 5.8 s.
 */
export const MIN_AGREEING_METRICS = 2;

/** Metrics that are one piece of evidence: computed from the same thing. */
const EVIDENCE: Readonly<Record<string, string>> = { psi: 'binned', jensenShannon: 'binned', hellinger: 'binned' };

/** The drift rule: enough independent metrics agree (null: too little data to say). */
export function featureDrifts(f: Pick<FeatureComparison, 'insufficientData' | 'drifted' | 'metrics'>): boolean | null {
  if (f.insufficientData) return null;
  const family = (metric: string) => EVIDENCE[metric] ?? metric;
  const available = new Set(Object.keys(f.metrics).map(family));
  const agreeing = new Set(f.drifted.map(family));
  return agreeing.size >= Math.min(MIN_AGREEING_METRICS, available.size);
}

/** Every condition the comparisons can show, active or not (null when there is too little data). */
function conditions(window: WindowProfile, comparisons: Map<string, WindowComparison>): Condition[] {
  const out: Condition[] = [];
  for (const [baseline, comparison] of comparisons) {
    for (const f of comparison.features) {
      const drifted = f.drifted.map((m) => `${m} ${f.metrics[m]!.value.toFixed(3)} > ${Math.max(f.metrics[m]!.threshold, f.metrics[m]!.noiseFloor).toPrecision(2)}`);
      out.push({
        key: `drift|${baseline}|${f.role}|${f.name}`,
        active: featureDrifts(f),
        summary: `${f.role} ${f.name} drifted from ${baseline}: ${drifted.join(', ')}`,
        details: { baseline, role: f.role, feature: f.name, metrics: f.metrics, observed: f.currentObserved },
      });
      for (const q of f.quality) {
        out.push({
          key: `quality|${baseline}|${f.role}|${f.name}|${q.check}`,
          // Quality checks carry their own noise allowance, so a few values suffice: a NaN
          // tripwire fires on the first batch that shows it.
          active: q.exceeded ? true : f.currentObserved > 0 ? false : null,
          summary: `${f.role} ${f.name}: ${q.check} rate ${(100 * q.current).toFixed(2)}% (baseline ${(100 * q.baseline).toFixed(2)}%)`,
          details: { baseline, role: f.role, feature: f.name, check: q.check, rate: q.current, baselineRate: q.baseline, labels: q.labels },
        });
      }
    }
    for (const s of comparison.schema) {
      out.push({
        key: `schema|${baseline}|${s.role}|${s.feature}|${s.problem}`,
        active: window.predictions >= 100 ? true : null,
        summary: `${s.role} ${s.feature}: ${s.problem} compared with ${baseline}`,
        details: { baseline, ...s },
      });
    }
    for (const e of comparison.events) {
      out.push({
        key: `event|${baseline}|${e.name}`,
        active: window.predictions > 0 ? e.exceeded : null,
        summary: `${e.name}: ${(100 * e.currentRate).toFixed(2)}% of predictions (baseline ${(100 * e.baselineRate).toFixed(2)}%)`,
        details: { baseline, event: e.name, rate: e.currentRate, baselineRate: e.baselineRate },
      });
    }
  }
  return out;
}

async function saveResults(tx: Queryable, project: string, model: string, window: WindowProfile, baseline: string, c: WindowComparison): Promise<void> {
  const roles: string[] = [];
  const features: string[] = [];
  const metrics: string[] = [];
  const values: number[] = [];
  const thresholds: number[] = [];
  const drifted: boolean[] = [];
  const observed: number[] = [];
  for (const f of c.features) {
    for (const [metric, r] of Object.entries(f.metrics)) {
      if (!r) continue;
      roles.push(f.role);
      features.push(f.name);
      metrics.push(metric);
      values.push(r.value);
      thresholds.push(r.threshold);
      drifted.push(r.drifted);
      observed.push(f.currentObserved);
    }
  }
  if (roles.length === 0) return;
  // One statement for the window's every feature and metric.
  await tx.query(
    `insert into drift_results (project, model, window_start, window_length, baseline, role, feature, metric, value, threshold, drifted, observed)
     select $1, $2, $3, $4, $5, u.role, u.feature, u.metric, u.value, u.threshold, u.drifted, u.observed
       from unnest($6::text[], $7::text[], $8::text[], $9::float8[], $10::float8[], $11::boolean[], $12::bigint[])
         as u(role, feature, metric, value, threshold, drifted, observed)
     on conflict (project, model, window_start, baseline, role, feature, metric) do update
       set value = excluded.value, threshold = excluded.threshold, drifted = excluded.drifted,
           observed = excluded.observed, evaluated_at = now()`,
    [project, model, window.start, window.length, baseline, roles, features, metrics, values, thresholds, drifted, observed],
  );
}
