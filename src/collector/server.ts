import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { compactOnce } from './Aggregates.js';
import { collectorApp } from './app.js';
import { resolveConfig, type CollectorConfig } from './config.js';
import { Detector } from './Detector.js';
import { Ingestor } from './Ingestor.js';
import { Notifier } from './Notifier.js';
import { Metrics } from './metrics.js';
import type { Database } from './store/Database.js';
import { openPglite } from './store/pglite.js';
import { openPostgres } from './store/postgres.js';
import { migrate } from './store/schema.js';
import { serveStatic, type StaticFolder } from './static.js';

// For demo/start.mjs, which runs the built package.
export { relaunchForGc, singleThreadedGc, whenParentGone } from './singleThreadedGc.js';

/** The built dashboard: dist/dashboard of this package (from dist/collector or src/collector). */
const DASHBOARD_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'dashboard');

export interface Collector {
  /** http://host:port of the running server. */
  url: string;
  /**
   * Writes what was acknowledged to the store, then runs a detector pass (tests; the server
   * also runs one every detectIntervalMs).
   */
  detect(): Promise<void>;
  /** Writes every batch acknowledged so far to the store (it happens every checkpointMs). */
  checkpoint(): Promise<void>;
  config: CollectorConfig;
  db: Database;
  metrics: Metrics;
  /** Stops taking requests, commits what is queued, closes the store. */
  close(): Promise<void>;
}

/** How often a replica folds partial rows together. */
const COMPACT_EVERY_MS = 60_000;

/**
 * Starts a collector: opens the store (PostgreSQL when `databaseUrl` is set, else PGlite in
 * `dataDir`, else in memory), applies migrations, and listens.
 */
export async function startCollector(options: Partial<CollectorConfig> & { logger?: boolean; serve?: StaticFolder[] } = {}): Promise<Collector> {
  const config = resolveConfig(options);
  const db = config.databaseUrl ? await openPostgres(config.databaseUrl) : await openPglite(config.dataDir);
  try {
    await migrate(db);
  } catch (e) {
    await db.close();
    throw e;
  }
  const metrics = new Metrics();
  const ingestor = new Ingestor(db, metrics, {
    flushIntervalMs: config.flushIntervalMs,
    checkpointMs: config.checkpointMs,
    foldWorker: config.foldWorker,
    journalDir: !config.databaseUrl && config.dataDir ? join(config.dataDir, 'sketchwatch-journal') : undefined,
  });
  try {
    await ingestor.open();
  } catch (e) {
    await db.close();
    throw e;
  }
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: config.maxBodyBytes,
    trustProxy: false,
    // Errors before a request reaches a route (a timed-out body, a malformed request line).
    clientErrorHandler: (error: Error & { code?: string }, socket) => {
      const timeout = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code === 'ERR_HTTP_HEADERS_TIMEOUT';
      metrics.inc('sketchwatch_ingest_rejects_total', 'Ingest requests refused, by reason.', { reason: timeout ? 'timeout' : 'bad_request' });
      if (socket.writable) socket.end(timeout ? 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      socket.destroy();
    },
    // Slow-loris: a request (headers and body) must complete within requestTimeoutMs. Node
    // checks that only every connectionsCheckingInterval (30 s by default), so check often.
    serverFactory: (handler) =>
      createServer(
        {
          requestTimeout: config.requestTimeoutMs,
          headersTimeout: Math.min(config.requestTimeoutMs, 60_000),
          connectionsCheckingInterval: Math.max(250, Math.min(1000, config.requestTimeoutMs / 4)),
          keepAliveTimeout: 5_000,
        },
        handler,
      ),
  });
  const notifier = new Notifier(db, metrics, { attempts: config.webhookAttempts, backoffMs: config.webhookBackoffMs });
  const detector = new Detector(db, notifier, metrics, { intervalMs: config.detectIntervalMs, cooldownMs: config.alertCooldownMs });
  // Agents on other origins read the ingest answer (the acknowledgement): allow any origin. They
  // send no credentials and no Content-Type, so no preflight is needed; answer one anyway.
  app.addHook('onRequest', async (request, reply) => {
    if (request.url.startsWith('/v1/ingest')) reply.header('access-control-allow-origin', '*');
  });
  app.options('/v1/ingest', async (_request, reply) =>
    reply
      .code(204)
      .header('access-control-allow-methods', 'POST')
      .header('access-control-allow-headers', 'content-type, content-encoding')
      .header('access-control-max-age', '86400')
      .send());
  await app.register(collectorApp, { config, db, ingestor, metrics, detector });
  serveStatic(app, [{ prefix: '/dashboard/', dir: DASHBOARD_DIR }, ...(options.serve ?? [])]);
  app.get('/', (_request, reply) => reply.redirect('/dashboard/'));
  const compactor = setInterval(() => {
    compactOnce(db).catch((e: Error) => app.log.error(`compaction failed: ${e.message}`));
  }, COMPACT_EVERY_MS);
  compactor.unref();
  // The embedded store has no autovacuum: without this its files grow with every checkpoint
  // (a vacuum every 10 s took 3–8 ms at 1,000 beacons/s and kept the store at ~12 MB).
  let vacuuming = false;
  const vacuum = db.vacuum
    ? setInterval(() => {
        if (vacuuming) return;
        vacuuming = true;
        const started = performance.now();
        db.vacuum!()
          .then(() => metrics.observe('sketchwatch_store_vacuum_seconds', 'Time to reclaim dead rows in the embedded store.', (performance.now() - started) / 1000))
          .catch((e: Error) => {
            metrics.inc('sketchwatch_store_vacuum_failures_total', 'Embedded-store vacuums that failed (retried at the next interval).');
            app.log.error(`vacuum failed: ${e.message}`);
          })
          .finally(() => (vacuuming = false));
      }, config.vacuumIntervalMs)
    : null;
  vacuum?.unref();
  await app.listen({ port: config.port, host: config.host });
  detector.start();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${config.host}:${port}`,
    detect: async () => {
      await ingestor.sync();
      await detector.runOnce();
    },
    checkpoint: () => ingestor.sync(),
    config,
    db,
    metrics,
    close() {
      closing ??= (async () => {
        clearInterval(compactor);
        if (vacuum) clearInterval(vacuum);
        await app.close();
        await ingestor.close();
        await detector.stop();
        await db.close();
      })();
      return closing;
    },
  };
}
