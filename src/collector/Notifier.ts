import type { Metrics } from './metrics.js';
import type { Database, Queryable } from './store/Database.js';

/**
 * Delivers alert messages to a project's webhooks: Slack-compatible ({"text": …}, which Slack
 * incoming webhooks, Mattermost and Discord's /slack endpoint accept) or the full message as
 * generic JSON. Each delivery is retried with exponential backoff and jitter on network
 * errors, 408, 429 and 5xx; other 4xx answers are final (the hook is misconfigured).
 */
export interface AlertMessage {
  state: 'firing' | 'resolved';
  project: string;
  model: string;
  /** Stable identity of the condition, e.g. drift|training|input|temp_max. */
  key: string;
  /** One line a person reads first. */
  summary: string;
  windowStart: number;
  windowLength: number;
  details: Record<string, unknown>;
}

export interface Webhook {
  id: number;
  url: string;
  format: 'slack' | 'json';
}

export interface NotifierOptions {
  attempts?: number;
  timeoutMs?: number;
  backoffMs?: number;
}

export async function listWebhooks(db: Queryable, project: string): Promise<Webhook[]> {
  const rows = await db.query<{ id: unknown; url: string; format: 'slack' | 'json' }>('select id, url, format from webhooks where project = $1 order by id', [project]);
  return rows.map((r) => ({ id: Number(r.id), url: r.url, format: r.format }));
}

export class Notifier {
  private readonly attempts: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly db: Database,
    private readonly metrics: Metrics,
    options: NotifierOptions = {},
  ) {
    this.attempts = options.attempts ?? 5;
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.backoffMs = options.backoffMs ?? 500;
  }

  /** Sends to every webhook of the message's project; resolves when all are done or given up. */
  async send(message: AlertMessage): Promise<void> {
    const hooks = await listWebhooks(this.db, message.project);
    const deliveries = hooks.map((hook) => this.track(this.deliver(hook, message)));
    await Promise.all(deliveries);
  }

  /** Waits for deliveries still under way (shutdown). */
  async drain(): Promise<void> {
    await Promise.all([...this.inFlight]);
  }

  private track(p: Promise<void>): Promise<void> {
    this.inFlight.add(p);
    return p.finally(() => this.inFlight.delete(p));
  }

  private async deliver(hook: Webhook, message: AlertMessage): Promise<void> {
    const body = JSON.stringify(hook.format === 'slack' ? slackBody(message) : { ...message, window: { start: new Date(message.windowStart).toISOString(), lengthMs: message.windowLength } });
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      let retryAfterMs = 0;
      try {
        const res = await fetch(hook.url, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json', 'user-agent': 'sketchwatch-collector' },
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.metrics.inc('sketchwatch_webhook_deliveries_total', 'Webhook deliveries, by result.', { result: 'ok' });
          return;
        }
        const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
        if (!retryable) break;
        retryAfterMs = Number(res.headers.get('retry-after') ?? 0) * 1000;
      } catch {
        // Network error or timeout: retry.
      }
      if (attempt < this.attempts) {
        const backoff = this.backoffMs * 2 ** (attempt - 1);
        await sleep(Math.max(retryAfterMs, backoff / 2 + Math.random() * backoff));
      }
    }
    this.metrics.inc('sketchwatch_webhook_deliveries_total', 'Webhook deliveries, by result.', { result: 'failed' });
  }
}

function slackBody(m: AlertMessage): { text: string } {
  const mark = m.state === 'firing' ? ':red_circle:' : ':large_green_circle:';
  const window = new Date(m.windowStart).toISOString().replace('.000Z', 'Z');
  return { text: `${mark} *${m.state === 'firing' ? 'Alert' : 'Resolved'}* ${m.project}/${m.model}: ${m.summary} (window ${window})` };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
