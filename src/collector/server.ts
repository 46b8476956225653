import Fastify from 'fastify';
import { compactOnce } from './Aggregates.js';
import { collectorApp } from './app.js';
import { resolveConfig, type CollectorConfig } from './config.js';
import { Ingestor } from './Ingestor.js';
import { Metrics } from './metrics.js';
import type { Database } from './store/Database.js';
import { openPglite } from './store/pglite.js';
import { openPostgres } from './store/postgres.js';
import { migrate } from './store/schema.js';

export interface Collector {
  /** http://host:port of the running server. */
  url: string;
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
export async function startCollector(options: Partial<CollectorConfig> & { logger?: boolean } = {}): Promise<Collector> {
  const config = resolveConfig(options);
  const db = config.databaseUrl ? await openPostgres(config.databaseUrl) : await openPglite(config.dataDir);
  try {
    await migrate(db);
  } catch (e) {
    await db.close();
    throw e;
  }
  const metrics = new Metrics();
  const ingestor = new Ingestor(db, metrics, { flushIntervalMs: config.flushIntervalMs });
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: config.maxBodyBytes,
    // Slow-loris: a request (headers and body) must complete within this time.
    requestTimeout: config.requestTimeoutMs,
    connectionTimeout: config.requestTimeoutMs,
    trustProxy: false,
  });
  await app.register(collectorApp, { config, db, ingestor, metrics });
  const compactor = setInterval(() => {
    compactOnce(db).catch((e: Error) => app.log.error(`compaction failed: ${e.message}`));
  }, COMPACT_EVERY_MS);
  compactor.unref();
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  let closing: Promise<void> | null = null;
  return {
    url: `http://${config.host}:${port}`,
    config,
    db,
    metrics,
    close() {
      closing ??= (async () => {
        clearInterval(compactor);
        await app.close();
        await ingestor.close();
        await db.close();
      })();
      return closing;
    },
  };
}
