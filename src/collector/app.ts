import { timingSafeEqual } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CodecError, decodeBatch, type FeatureProfile } from '../sketch/index.js';
import { readBatchView, type BatchView, type WindowView } from '../sketch/codec.js';
import {
  BASELINE_NAME,
  PROJECT_ID,
  createProject,
  listBaselines,
  listModels,
  listProjects,
  loadWindows,
  type WindowQuery,
  mergeRange,
  projectExists,
  projectForKey,
  saveBaseline,
  saveDynamicBaseline,
  baselineProfile,
} from './Aggregates.js';
import { binnedProportions, binsFromBaseline } from '../drift/index.js';
import type { CollectorConfig } from './config.js';
import type { Detector } from './Detector.js';
import type { Ingestor } from './Ingestor.js';
import { listWebhooks } from './Notifier.js';
import type { Metrics } from './metrics.js';
import { RateLimiter } from './RateLimiter.js';
import type { Database } from './store/Database.js';

/**
 * The collector's HTTP surface, as one fastify plugin: ingest (per-project key), the admin and
 * query API (bearer token), health and Prometheus metrics. Every route declares its schemas;
 * 5xx bodies say only that the server failed (details go to the log).
 */
export interface AppDeps {
  detector: Detector;
  config: CollectorConfig;
  db: Database;
  ingestor: Ingestor;
  metrics: Metrics;
}

const REJECTS = 'sketchwatch_ingest_rejects_total';
const REJECTS_HELP = 'Ingest requests refused, by reason.';

/** Largest baseline file accepted (a whole profile and its chunks). */
const MAX_BASELINE_BYTES = 64 * 1024 * 1024;

/** Key → project, cached; unknown keys are cached too, briefly, so bad keys cost no query. */
const KEY_CACHE_MS = 30_000;

export async function collectorApp(app: FastifyInstance, deps: AppDeps): Promise<void> {
  const { config, db, ingestor, metrics } = deps;
  const agentLimiter = new RateLimiter(config.agentRate, config.agentBurst);
  const ipLimiter = new RateLimiter(config.ipRate, config.ipBurst);
  const keyCache = new Map<string, { project: string | null; at: number }>();

  async function lookupKey(key: string): Promise<string | null> {
    const hit = keyCache.get(key);
    if (hit && Date.now() - hit.at < KEY_CACHE_MS) return hit.project;
    const project = await projectForKey(db, key);
    if (keyCache.size > 10_000) keyCache.clear();
    keyCache.set(key, { project, at: Date.now() });
    return project;
  }

  function reject(reply: FastifyReply, status: number, reason: string, message: string): FastifyReply {
    metrics.inc(REJECTS, REJECTS_HELP, { reason });
    return reply.code(status).send({ error: message, reason });
  }

  // Bodies are raw bytes whatever the declared type: sendBeacon cannot always set one.
  // (The body limit is the server's, maxBodyBytes; the baseline upload route raises its own.)
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    const status = error.statusCode ?? 500;
    if (status === 413) return reject(reply, 413, 'too_large', `body over ${config.maxBodyBytes} bytes`);
    if (status === 408 || error.code === 'FST_ERR_REQUEST_TIMEOUT') return reject(reply, 408, 'timeout', 'request took too long');
    if (status >= 400 && status < 500) return reply.code(status).send({ error: error.message });
    request.log.error(error);
    return reply.code(500).send({ error: 'internal error' });
  });

  const ingestResponse = {
    200: {
      type: 'object',
      properties: { status: { type: 'string', enum: ['applied', 'duplicate'] }, sequence: { type: 'number' }, agentId: { type: 'string' } },
      required: ['status', 'sequence', 'agentId'],
    },
    '4xx': { type: 'object', properties: { error: { type: 'string' }, reason: { type: 'string' } } },
    '5xx': { type: 'object', properties: { error: { type: 'string' } } },
  };

  app.post('/v1/ingest', {
    schema: {
      querystring: {
        type: 'object',
        properties: { key: { type: 'string', maxLength: 128 }, encoding: { type: 'string', enum: ['gzip', 'identity'] } },
      },
      response: ingestResponse,
    },
  }, async (request: FastifyRequest<{ Querystring: { key?: string; encoding?: string } }>, reply) => {
    const wait = ipLimiter.take(request.ip);
    if (wait > 0) return reject(reply.header('retry-after', String(wait)), 429, 'rate_ip', 'too many requests from this address');
    const key = request.query.key;
    if (!key) return reject(reply, 401, 'no_key', 'missing ?key=<ingest key>');
    const project = await lookupKey(key);
    if (project === null) return reject(reply, 403, 'bad_key', 'unknown ingest key');
    let body = request.body as Buffer | undefined;
    if (!body || body.length === 0) return reject(reply, 400, 'empty', 'empty body');
    const gzip = request.query.encoding === 'gzip' || request.headers['content-encoding'] === 'gzip';
    if (gzip) {
      try {
        body = gunzipSync(body, { maxOutputLength: config.maxBodyBytes * 8 });
      } catch {
        return reject(reply, 400, 'bad_gzip', 'body is not valid gzip (or inflates past the limit)');
      }
    }
    // Checked as strictly as decodeBatch checks it, but digests stay bytes until the commit
    // merges them (a rejection carries decodeBatch's own message).
    let batch: BatchView;
    try {
      batch = readBatchView(new Uint8Array(body.buffer, body.byteOffset, body.byteLength), { keepKeys: ingestor.mergesHere });
    } catch (e) {
      if (e instanceof CodecError) return reject(reply, 400, 'decode', e.message);
      throw e;
    }
    const agentWait = agentLimiter.take(`${project}\u0000${batch.agentId}`);
    if (agentWait > 0) return reject(reply.header('retry-after', String(agentWait)), 429, 'rate_agent', 'too many requests from this agent');
    const now = Date.now();
    const problem = implausible(batch, config) ?? correctClock(batch, config, now) ?? outOfRange(batch, config, now);
    if (problem) return reject(reply, 422, 'implausible', problem);
    metrics.inc('sketchwatch_ingest_bytes_total', 'Bytes of accepted ingest bodies (as sent).', {}, (request.body as Buffer).length);
    try {
      const outcome = await ingestor.submit(project, batch);
      return { ...outcome, agentId: batch.agentId };
    } catch (e) {
      request.log.error(e);
      // Not committed, so not acknowledged: the agent keeps the batch and retries.
      return reject(reply.header('retry-after', '1'), 503, 'store', 'could not store the batch; retry');
    }
  });

  // ---- admin and query API (Authorization: Bearer <admin token>)

  const adminToken = Buffer.from(config.adminToken);
  const requireAdmin = async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length !== adminToken.length || !timingSafeEqual(given, adminToken)) {
      return reply.code(401).send({ error: 'missing or wrong admin token (Authorization: Bearer …)' });
    }
  };

  // Admin requests see every batch this replica acknowledged: its fold is written first (a
  // checkpoint that fails is retried by the next; the request goes on with what the store holds).
  const syncFirst = async () => {
    await ingestor.sync().catch(() => {});
  };

  await app.register(async (admin) => {
    admin.addHook('onRequest', requireAdmin);
    admin.addHook('preHandler', syncFirst);

    admin.post('/v1/projects', {
      schema: {
        body: { type: 'object', properties: { id: { type: 'string', pattern: PROJECT_ID.source } }, required: ['id'], additionalProperties: false },
        response: { 200: { type: 'object', properties: { id: { type: 'string' }, ingestKey: { type: 'string' } } } },
      },
    }, async (request: FastifyRequest<{ Body: { id: string } }>) => createProject(db, request.body.id));

    admin.get('/v1/projects', {
      schema: { response: { 200: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, ingestKey: { type: 'string' } } } } } },
    }, async () => listProjects(db));

    admin.get('/v1/projects/:project/models', {
      schema: { params: { type: 'object', properties: { project: { type: 'string' } }, required: ['project'] } },
    }, async (request: FastifyRequest<{ Params: { project: string } }>) => ({ models: await listModels(db, request.params.project) }));

    const rangeQuery = {
      type: 'object',
      properties: {
        from: { type: 'integer', minimum: 0 },
        to: { type: 'integer', minimum: 0 },
        segment: { type: 'string', maxLength: 4096 },
        quantiles: { type: 'string', maxLength: 1024 },
      },
      required: ['from', 'to'],
    };

    admin.get('/v1/projects/:project/models/:model/windows', {
      schema: { querystring: rangeQuery },
    }, async (request: FastifyRequest<{ Params: { project: string; model: string }; Querystring: RangeQuery }>, reply) => {
      const q = parseRange(request, reply);
      if (!q) return reply;
      const windows = await loadWindows(db, q);
      return {
        windows: windows.map((w) => ({
          start: w.start,
          length: w.length,
          predictions: w.predictions,
          inputs: [...w.inputs.values()].map((f) => summarize(f)),
          outputs: [...w.outputs.values()].map((f) => summarize(f)),
          latency: summarize(w.latency),
          events: Object.fromEntries(w.events),
        })),
      };
    });

    admin.get('/v1/projects/:project/models/:model/features/:feature', {
      schema: { querystring: rangeQuery },
    }, async (request: FastifyRequest<{ Params: { project: string; model: string; feature: string }; Querystring: RangeQuery }>, reply) => {
      const q = parseRange(request, reply);
      if (!q) return reply;
      const qs = request.query.quantiles === undefined ? DEFAULT_QUANTILES : request.query.quantiles.split(',').map(Number);
      if (qs.some((x) => !(x >= 0 && x <= 1))) return reply.code(400).send({ error: 'quantiles must be numbers in [0, 1]' });
      const windows = await loadWindows(db, q);
      const name = request.params.feature;
      let merged: FeatureProfile | undefined;
      for (const w of windows) {
        const f = name === 'latency_ms' ? w.latency : w.inputs.get(name) ?? w.outputs.get(name);
        if (!f) continue;
        merged = merged ? merged.merge(f) : f;
      }
      if (!merged) return reply.code(404).send({ error: `no data for feature ${name} in that range` });
      return { ...summarize(merged, qs), windows: windows.length };
    });

    // The feature's distribution in the range against a baseline's, on the baseline's bins (the
    // same bins PSI uses): what a dashboard draws as two histograms.
    admin.get('/v1/projects/:project/models/:model/features/:feature/histogram', {
      schema: { querystring: { ...rangeQuery, properties: { ...rangeQuery.properties, baseline: { type: 'string' } }, required: ['from', 'to', 'baseline'] } },
    }, async (request: FastifyRequest<{ Params: { project: string; model: string; feature: string }; Querystring: RangeQuery & { baseline: string } }>, reply) => {
      const q = parseRange(request, reply);
      if (!q) return reply;
      const name = request.params.feature;
      const info = (await listBaselines(db, q.project, q.model)).find((b) => b.name === request.query.baseline);
      if (!info) return reply.code(404).send({ error: `no baseline ${request.query.baseline} for ${q.model}` });
      const windows = await loadWindows(db, q);
      if (windows.length === 0) return reply.code(404).send({ error: 'no data in that range' });
      const base = await baselineProfile(db, q.project, q.model, info, windows[0].start, windows[0].length);
      const pick = (w: { latency: FeatureProfile; inputs: Map<string, FeatureProfile>; outputs: Map<string, FeatureProfile> }) =>
        name === 'latency_ms' ? w.latency : w.inputs.get(name) ?? w.outputs.get(name);
      const b = base ? pick(base) : undefined;
      let current: FeatureProfile | undefined;
      for (const w of windows) {
        const f = pick(w);
        if (f) current = current ? current.merge(f) : f;
      }
      if (!b?.digest || !current?.digest) return reply.code(404).send({ error: `${name} is not numeric on both sides` });
      const bins = binsFromBaseline(b.digest);
      return {
        feature: name,
        baseline: info.name,
        edges: bins.edges,
        baselineShare: Array.from(binnedProportions(bins, b.digest)),
        currentShare: Array.from(binnedProportions(bins, current.digest)),
        baselineCount: b.digest.count,
        currentCount: current.digest.count,
      };
    });
  });

  // ---- baselines (admin)

  await app.register(async (admin) => {
    admin.addHook('onRequest', requireAdmin);
    admin.addHook('preHandler', syncFirst);
    const params = {
      type: 'object',
      properties: { project: { type: 'string' }, model: { type: 'string' }, name: { type: 'string', pattern: BASELINE_NAME.source } },
      required: ['project', 'model'],
    };
    type P = { Params: { project: string; model: string; name: string } };

    admin.get('/v1/projects/:project/models/:model/baselines', { schema: { params } }, async (request: FastifyRequest<P>) => ({
      baselines: await listBaselines(db, request.params.project, request.params.model),
    }));

    // Upload a profile built by `sketchwatch baseline` (a .swb file: one window, wire format).
    // A baseline file with its calibration chunks runs to a few MiB for wide models.
    admin.put('/v1/projects/:project/models/:model/baselines/:name', { schema: { params }, bodyLimit: MAX_BASELINE_BYTES }, async (request: FastifyRequest<P>, reply) => {
      const body = request.body as Buffer | undefined;
      if (!Buffer.isBuffer(body) || body.length === 0) return reply.code(400).send({ error: 'send the .swb file as the request body' });
      let windows;
      try {
        windows = decodeBatch(new Uint8Array(body.buffer, body.byteOffset, body.byteLength)).windows;
      } catch (e) {
        if (e instanceof CodecError) return reply.code(400).send({ error: `not a baseline file: ${e.message}` });
        throw e;
      }
      // The whole profile, and optionally its chunks (segment label `chunk`) for calibration.
      const wholes = windows.filter((w) => w.segment.chunk === undefined);
      const chunks = windows.filter((w) => w.segment.chunk !== undefined);
      if (wholes.length !== 1) return reply.code(400).send({ error: `a baseline file holds one whole profile, this one ${wholes.length}` });
      const { project, model, name } = request.params;
      if (!(await projectExists(db, project))) return reply.code(404).send({ error: `no project ${project}` });
      return saveBaseline(db, project, model, name, wholes[0].segment.source ?? 'upload', wholes[0], chunks);
    });

    // A dynamic baseline, computed at each evaluation: the previous window or the N before.
    admin.put('/v1/projects/:project/models/:model/baselines/:name/dynamic', {
      schema: {
        params,
        body: {
          type: 'object',
          properties: { type: { type: 'string', enum: ['previous', 'trailing'] }, windows: { type: 'integer', minimum: 1, maximum: 9999 } },
          required: ['type'],
          additionalProperties: false,
        },
      },
    }, async (request: FastifyRequest<P & { Body: { type: 'previous' | 'trailing'; windows?: number } }>, reply) => {
      const { project, model, name } = request.params;
      if (!(await projectExists(db, project))) return reply.code(404).send({ error: `no project ${project}` });
      const { type, windows } = request.body;
      if (type === 'trailing' && windows === undefined) return reply.code(400).send({ error: 'a trailing baseline needs `windows`' });
      return saveDynamicBaseline(db, project, model, name, type === 'previous' ? 'previous' : `trailing:${windows}`);
    });

    // A baseline from production: every window of a fixed time range, merged.
    admin.post('/v1/projects/:project/models/:model/baselines/:name/from-range', {
      schema: {
        params,
        body: { type: 'object', properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 } }, required: ['from', 'to'], additionalProperties: false },
      },
    }, async (request: FastifyRequest<P & { Body: { from: number; to: number } }>, reply) => {
      const { project, model, name } = request.params;
      const { from, to } = request.body;
      if (!(to > from)) return reply.code(400).send({ error: '`to` must be after `from`' });
      const merged = await mergeRange(db, project, model, from, to);
      if (!merged) return reply.code(404).send({ error: `no data for ${model} in that range` });
      return saveBaseline(db, project, model, name, merged.segment.source, merged);
    });
  });

  // ---- alerts, webhooks, drift results (admin)

  await app.register(async (admin) => {
    admin.addHook('onRequest', requireAdmin);
    admin.addHook('preHandler', syncFirst);
    type PP = { Params: { project: string } };

    admin.post('/v1/projects/:project/webhooks', {
      schema: {
        body: {
          type: 'object',
          properties: { url: { type: 'string', pattern: '^https?://', maxLength: 2048 }, format: { type: 'string', enum: ['slack', 'json'] } },
          required: ['url'],
          additionalProperties: false,
        },
      },
    }, async (request: FastifyRequest<PP & { Body: { url: string; format?: 'slack' | 'json' } }>, reply) => {
      if (!(await projectExists(db, request.params.project))) return reply.code(404).send({ error: `no project ${request.params.project}` });
      const [row] = await db.query<{ id: unknown }>('insert into webhooks (project, url, format) values ($1, $2, $3) returning id', [
        request.params.project, request.body.url, request.body.format ?? 'slack',
      ]);
      return { id: Number(row.id), url: request.body.url, format: request.body.format ?? 'slack' };
    });

    admin.get('/v1/projects/:project/webhooks', async (request: FastifyRequest<PP>) => ({ webhooks: await listWebhooks(db, request.params.project) }));

    admin.delete('/v1/projects/:project/webhooks/:id', async (request: FastifyRequest<{ Params: { project: string; id: string } }>, reply) => {
      const rows = await db.query('delete from webhooks where project = $1 and id = $2 returning id', [request.params.project, Number(request.params.id) || -1]);
      return rows.length ? { deleted: true } : reply.code(404).send({ error: 'no such webhook' });
    });

    admin.get('/v1/projects/:project/alerts', {
      schema: { querystring: { type: 'object', properties: { state: { type: 'string', enum: ['firing', 'resolved'] }, limit: { type: 'integer', minimum: 1, maximum: 1000 } } } },
    }, async (request: FastifyRequest<PP & { Querystring: { state?: string; limit?: number } }>) => {
      const rows = await db.query<Record<string, unknown>>(
        `select id, model, key, state, summary, details, window_start, opened_at, notified_at, resolved_at from alerts
          where project = $1 and ($2::text is null or state = $2) order by id desc limit $3`,
        [request.params.project, request.query.state ?? null, request.query.limit ?? 100],
      );
      return {
        alerts: rows.map((r) => ({
          id: Number(r.id), model: r.model, key: r.key, state: r.state, summary: r.summary, details: JSON.parse(String(r.details)),
          windowStart: Number(r.window_start), openedAt: r.opened_at, notifiedAt: r.notified_at, resolvedAt: r.resolved_at,
        })),
      };
    });

    admin.get('/v1/projects/:project/models/:model/drift', {
      schema: { querystring: { type: 'object', properties: { from: { type: 'integer', minimum: 0 }, to: { type: 'integer', minimum: 0 }, baseline: { type: 'string' } }, required: ['from', 'to'] } },
    }, async (request: FastifyRequest<{ Params: { project: string; model: string }; Querystring: { from: number; to: number; baseline?: string } }>) => {
      const rows = await db.query<Record<string, unknown>>(
        `select window_start, baseline, role, feature, metric, value, threshold, drifted, observed from drift_results
          where project = $1 and model = $2 and window_start >= $3 and window_start < $4 and ($5::text is null or baseline = $5)
          order by window_start, baseline, role, feature, metric`,
        [request.params.project, request.params.model, request.query.from, request.query.to, request.query.baseline ?? null],
      );
      return {
        results: rows.map((r) => ({
          windowStart: Number(r.window_start), baseline: r.baseline, role: r.role, feature: r.feature, metric: r.metric,
          value: Number(r.value), threshold: Number(r.threshold), drifted: r.drifted === true, observed: Number(r.observed),
        })),
      };
    });

    // Runs the detector now instead of at its next tick (operators, tests).
    admin.post('/v1/detect', async () => {
      await deps.detector.runOnce();
      return { ok: true };
    });
  });

  // ---- operations

  app.get('/healthz', async () => ({ ok: true, store: db.kind, pending: ingestor.pendingCount }));

  app.get('/metrics', async (_request, reply) => {
    metrics.set('sketchwatch_ingest_pending', 'Batches waiting for the next group commit.', ingestor.pendingCount);
    try {
      const [row] = await db.query<{ rows: unknown }>('select count(*) as rows from partials');
      metrics.set('sketchwatch_store_partial_rows', 'Partial aggregate rows in the store.', Number(row.rows));
    } catch {
      // The store being down must not take the metrics endpoint with it.
    }
    return reply.type('text/plain; version=0.0.4').send(metrics.render());
  });
}

interface RangeQuery {
  from: number;
  to: number;
  segment?: string;
  quantiles?: string;
}

function parseRange(
  request: FastifyRequest<{ Params: { project: string; model: string }; Querystring: RangeQuery }>,
  reply: FastifyReply,
): WindowQuery | null {
  const { from, to, segment } = request.query;
  if (!(to > from)) {
    reply.code(400).send({ error: '`to` must be after `from` (milliseconds since the epoch)' });
    return null;
  }
  let parsed: Record<string, string> | undefined;
  if (segment) {
    try {
      parsed = JSON.parse(segment) as Record<string, string>;
      if (typeof parsed !== 'object' || parsed === null || Object.values(parsed).some((v) => typeof v !== 'string')) throw new Error();
    } catch {
      reply.code(400).send({ error: 'segment must be a JSON object of string labels' });
      return null;
    }
  }
  return { project: request.params.project, model: request.params.model, from, to, segment: parsed, inbox: true };
}

/** Quantiles the feature summary reports unless asked for others. */
const DEFAULT_QUANTILES: readonly number[] = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99];

/** What the API says about a feature: counts, moments, quantiles, CDF points or class counts. */
export function summarize(f: FeatureProfile, quantiles: readonly number[] = DEFAULT_QUANTILES): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: f.name,
    kind: f.kind,
    count: f.count,
    missing: f.missing,
    nan: f.nan,
    posInf: f.posInf,
    negInf: f.negInf,
  };
  if (f.digest && f.moments && f.digest.count > 0) {
    const d = f.digest;
    out.min = d.min;
    out.max = d.max;
    out.mean = f.moments.mean;
    out.std = f.moments.std;
    out.quantiles = Object.fromEntries(quantiles.map((q) => [String(q), d.quantile(q)]));
    // The CDF at 21 evenly spaced points between min and max: enough to draw it.
    out.cdf = Array.from({ length: 21 }, (_, i) => {
      const x = d.min + ((d.max - d.min) * i) / 20;
      return [x, d.cdf(x)];
    });
  }
  if (f.classes) out.classes = { labels: f.classes.labels, counts: Array.from(f.classes.counts), unseen: f.classes.unseen };
  if (f.labels) out.labels = { top: f.labels.entries(), other: f.labels.other, total: f.labels.total };
  return out;
}

/** Why a batch cannot be true, or null. Checked before anything is queued. */
function implausible(batch: BatchView, config: CollectorConfig): string | null {
  for (const w of batch.windows) {
    if (!w.segment.model) return 'every window needs a `model` segment label';
    if (w.predictions > config.maxPredictionsPerWindow) return `a window claims ${w.predictions} predictions (cap ${config.maxPredictionsPerWindow})`;
    for (const f of [...w.inputs, ...w.outputs, w.latency]) {
      if (f.count > config.maxPredictionsPerWindow * 1024) return `feature ${f.name} claims ${f.count} observations`;
    }
  }
  return null;
}

/**
 * A client's windows are on its own clock. When the batch's send time says that clock is off
 * by more than the tolerance, moves every window by the whole number of windows it is off.
 * Returns a problem when that would put a window before 1970.
 */
function correctClock(batch: BatchView, config: CollectorConfig, now: number): string | null {
  const skew = now - batch.sentAt;
  if (Math.abs(skew) <= config.clockSkewToleranceMs) return null;
  const target = (w: WindowView) => w.start + Math.round(skew / w.length) * w.length;
  if (batch.windows.some((w) => target(w) < 0)) return 'the send time puts a window before 1970';
  for (const w of batch.windows) w.start = target(w);
  return null;
}

/** Windows must be neither in the future nor older than the retention. */
function outOfRange(batch: BatchView, config: CollectorConfig, now: number): string | null {
  for (const w of batch.windows) {
    if (w.start > now + 60_000) return `window ${new Date(w.start).toISOString()} is in the future`;
    if (w.start < now - config.retentionMs) return `window ${new Date(w.start).toISOString()} is older than the retention`;
  }
  return null;
}
