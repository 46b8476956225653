/**
 * Collector configuration: defaults, then environment variables, then explicit options, all
 * checked at boot so a bad value stops the process with a clear message instead of surfacing
 * as a strange failure under load.
 */
export interface CollectorConfig {
  /** TCP port (0 = any free port). */
  port: number;
  host: string;
  /** postgres://… for PostgreSQL; absent = the embedded store in `dataDir`. */
  databaseUrl?: string;
  /** Directory of the embedded store; absent with no databaseUrl = in memory (tests). */
  dataDir?: string;
  /** Bearer token for every endpoint but ingest, health and metrics. */
  adminToken: string;
  /** Largest request body accepted, in bytes (agents send ≤ 60 KiB). */
  maxBodyBytes: number;
  /** Group-commit interval. */
  flushIntervalMs: number;
  /** How often acknowledged batches are written to the store as partial rows. */
  checkpointMs: number;
  /** Requests per second and burst per agent and per client IP. */
  agentRate: number;
  agentBurst: number;
  ipRate: number;
  ipBurst: number;
  /** Plausibility caps: a client cannot claim more than this per window and feature. */
  maxPredictionsPerWindow: number;
  /** Oldest window accepted (late batches merge into their own windows until then). */
  retentionMs: number;
  /** Client clocks off by more than this are corrected from the batch's send time. */
  clockSkewToleranceMs: number;
  /** Whole request time limit (slow bodies are cut off). */
  requestTimeoutMs: number;
  /** How often the detector looks for windows with new data. */
  detectIntervalMs: number;
  /** Embedded store: how often dead rows are reclaimed (PostgreSQL's autovacuum does its own). */
  vacuumIntervalMs: number;
  /** A condition that fired less than this ago is not notified again. */
  alertCooldownMs: number;
  /**
   * Fold (merge) on a worker thread: 'auto' (when the process may use two or more cores),
   * 'on', 'off'.
   */
  foldWorker: 'auto' | 'on' | 'off';
  /** Webhook delivery: attempts and first backoff. */
  webhookAttempts: number;
  webhookBackoffMs: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULTS: Omit<CollectorConfig, 'adminToken'> = {
  port: 8787,
  host: '127.0.0.1',
  maxBodyBytes: 256 * 1024,
  flushIntervalMs: 20,
  checkpointMs: 1000,
  agentRate: 20,
  agentBurst: 60,
  ipRate: 500,
  ipBurst: 1000,
  maxPredictionsPerWindow: 10_000_000,
  retentionMs: 30 * 24 * 3_600_000,
  clockSkewToleranceMs: 60_000,
  requestTimeoutMs: 10_000,
  detectIntervalMs: 2_000,
  vacuumIntervalMs: 10_000,
  alertCooldownMs: 15 * 60_000,
  foldWorker: 'auto',
  webhookAttempts: 5,
  webhookBackoffMs: 500,
};

const ENV: Record<string, keyof CollectorConfig> = {
  SKETCHWATCH_PORT: 'port',
  SKETCHWATCH_HOST: 'host',
  DATABASE_URL: 'databaseUrl',
  SKETCHWATCH_DATA_DIR: 'dataDir',
  SKETCHWATCH_ADMIN_TOKEN: 'adminToken',
  SKETCHWATCH_MAX_BODY_BYTES: 'maxBodyBytes',
  SKETCHWATCH_FLUSH_INTERVAL_MS: 'flushIntervalMs',
  SKETCHWATCH_CHECKPOINT_MS: 'checkpointMs',
  SKETCHWATCH_AGENT_RATE: 'agentRate',
  SKETCHWATCH_AGENT_BURST: 'agentBurst',
  SKETCHWATCH_IP_RATE: 'ipRate',
  SKETCHWATCH_IP_BURST: 'ipBurst',
  SKETCHWATCH_MAX_PREDICTIONS_PER_WINDOW: 'maxPredictionsPerWindow',
  SKETCHWATCH_RETENTION_MS: 'retentionMs',
  SKETCHWATCH_DETECT_INTERVAL_MS: 'detectIntervalMs',
  SKETCHWATCH_VACUUM_INTERVAL_MS: 'vacuumIntervalMs',
  SKETCHWATCH_ALERT_COOLDOWN_MS: 'alertCooldownMs',
  SKETCHWATCH_FOLD_WORKER: 'foldWorker',
};

const STRING_KEYS = new Set<keyof CollectorConfig>(['host', 'databaseUrl', 'dataDir', 'adminToken', 'foldWorker']);

export function resolveConfig(options: Partial<CollectorConfig> = {}, env: NodeJS.ProcessEnv = process.env): CollectorConfig {
  const fromEnv: Partial<Record<keyof CollectorConfig, unknown>> = {};
  for (const [name, key] of Object.entries(ENV)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    if (STRING_KEYS.has(key)) fromEnv[key] = raw;
    else {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new ConfigError(`${name}=${raw} is not a number`);
      fromEnv[key] = n;
    }
  }
  const merged = { ...DEFAULTS, ...fromEnv, ...stripUndefined(options) } as Partial<CollectorConfig>;
  const config = { ...merged, adminToken: merged.adminToken ?? randomToken() } as CollectorConfig;
  const positive: Array<keyof CollectorConfig> = [
    'maxBodyBytes', 'flushIntervalMs', 'checkpointMs', 'agentRate', 'agentBurst', 'ipRate', 'ipBurst',
    'maxPredictionsPerWindow', 'retentionMs', 'clockSkewToleranceMs', 'requestTimeoutMs',
    'detectIntervalMs', 'vacuumIntervalMs', 'alertCooldownMs', 'webhookAttempts', 'webhookBackoffMs',
  ];
  for (const key of positive) {
    const v = config[key];
    if (typeof v !== 'number' || !(v > 0)) throw new ConfigError(`${key} must be a positive number, got ${String(v)}`);
  }
  if (!Number.isInteger(config.port) || config.port < 0 || config.port > 65535) throw new ConfigError(`port must be 0..65535, got ${config.port}`);
  if (config.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(config.databaseUrl)) {
    throw new ConfigError('DATABASE_URL must start with postgres:// or postgresql://');
  }
  if (!['auto', 'on', 'off'].includes(config.foldWorker)) throw new ConfigError(`SKETCHWATCH_FOLD_WORKER must be auto, on or off, got ${String(config.foldWorker)}`);
  if (config.adminToken.length < 16) throw new ConfigError('the admin token must be at least 16 characters');
  return config;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function randomToken(): string {
  const bytes = new Uint8Array(24);
  crypto.getRandomValues(bytes);
  return Buffer.from(bytes).toString('base64url');
}
