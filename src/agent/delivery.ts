import { decodeBatch, encodeBatch } from '../sketch/index.js';
import type { AgentStore, OutboxEntry } from './store.js';

/**
 * Sends the outbox to the collector, oldest batch first, and deletes a batch only when the
 * collector acknowledges it.
 *
 * The acknowledgement (the wire protocol's, implemented by the collector's POST /v1/ingest):
 * HTTP 200 with a JSON body `{"status":"applied"|"duplicate","sequence":N,"agentId":"…"}`, sent
 * only after the batch is durably committed. "duplicate" means an earlier delivery was applied:
 * the batch is done either way. Anything else leaves the batch in the outbox, except answers that
 * say it can never be accepted (400 undecodable, 413 too large, 422 implausible): those batches
 * are dropped and counted. 401/403 mean the key is wrong: sending pauses for `authPauseMs`.
 * 408, 429, 5xx and network failures are retried with exponential backoff and jitter;
 * `Retry-After` (seconds or an HTTP date) is honoured when it asks for longer.
 */
export interface DeliveryOptions {
  /** Ingest URL with the key: `${collector}/v1/ingest?key=…`. */
  url: string;
  /** First retry delay (ms); doubles per failure up to maxBackoffMs. */
  baseBackoffMs: number;
  maxBackoffMs: number;
  authPauseMs: number;
  /** Gzip bodies (CompressionStream) when that makes them smaller. */
  compress: boolean;
  fetch: typeof fetch;
  now: () => number;
  random: () => number;
}

export interface DeliveryCounters {
  sent: number;
  acknowledged: number;
  duplicates: number;
  rejected: number;
  rejectedPredictions: number;
  failures: number;
  bytesSent: number;
  lastStatus: number | null;
  lastError: string | null;
}

export interface Prepared {
  sequence: number;
  url: string;
  body: Uint8Array;
}

/** What the sender tells its owner (warnings go to the console once per kind). */
export type DeliveryEvent =
  | { type: 'acknowledged'; sequence: number; status: 'applied' | 'duplicate' }
  | { type: 'rejected'; sequence: number; httpStatus: number; error: string }
  | { type: 'auth'; httpStatus: number; error: string };

/** Parses Retry-After: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : Math.max(0, t - now);
}

/** Equal-jitter exponential backoff: half the delay fixed, half random (never zero). */
export function backoffMs(attempt: number, base: number, max: number, random: () => number): number {
  const d = Math.min(max, base * 2 ** Math.min(attempt, 30));
  return d / 2 + random() * (d / 2);
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

export class Delivery {
  readonly counters: DeliveryCounters = {
    sent: 0, acknowledged: 0, duplicates: 0, rejected: 0, rejectedPredictions: 0, failures: 0, bytesSent: 0, lastStatus: null, lastError: null,
  };
  private attempt = 0;
  /** No send before this time (backoff, Retry-After, auth pause). */
  private notBefore = 0;
  private running: Promise<void> | null = null;
  private readonly options: DeliveryOptions;
  private readonly store: AgentStore;
  private readonly onEvent: (e: DeliveryEvent) => void;

  constructor(store: AgentStore, options: DeliveryOptions, onEvent: (e: DeliveryEvent) => void = () => {}) {
    this.store = store;
    this.options = options;
    this.onEvent = onEvent;
  }

  /** Milliseconds until the next send may start (0: now). */
  get waitMs(): number {
    return Math.max(0, this.notBefore - this.options.now());
  }

  /** Forget the backoff (the browser came back online, or a tripwire fired). */
  resume(): void {
    this.attempt = 0;
    this.notBefore = 0;
  }

  /**
   * The request for one outbox batch, its send time set to now and gzipped when that helps.
   * Also what the page sends with sendBeacon when it is hidden.
   */
  async prepare(entry: OutboxEntry): Promise<Prepared> {
    const batch = decodeBatch(entry.bytes);
    batch.sentAt = Math.floor(this.options.now());
    const raw = encodeBatch(batch);
    let body: Uint8Array = raw;
    let url = this.options.url;
    if (this.options.compress && typeof CompressionStream !== 'undefined') {
      const z = await gzip(raw);
      if (z.length < raw.length) {
        body = z;
        url += '&encoding=gzip';
      }
    }
    return { sequence: entry.sequence, url, body };
  }

  /**
   * Sends until the outbox is empty or a send fails; one pump at a time (a second call joins
   * the running one). Never rejects.
   */
  pump(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.waitMs > 0) return;
      let head: OutboxEntry[];
      try {
        head = await this.store.head(1);
      } catch (e) {
        this.counters.lastError = `outbox unreadable: ${(e as Error).message}`;
        return;
      }
      if (head.length === 0) return;
      const ok = await this.sendOne(head[0]);
      if (!ok) return;
    }
  }

  /** True when the batch is done with (acknowledged or dropped); false to stop and wait. */
  private async sendOne(entry: OutboxEntry): Promise<boolean> {
    const { now } = this.options;
    let response: Response;
    let prepared: Prepared;
    try {
      prepared = await this.prepare(entry);
    } catch (e) {
      // Our own stored bytes no longer decode: nothing can ever send them.
      await this.drop(entry, 0, `stored batch unreadable: ${(e as Error).message}`);
      return true;
    }
    try {
      this.counters.sent++;
      this.counters.bytesSent += prepared.body.length;
      response = await this.options.fetch(prepared.url, {
        method: 'POST',
        body: prepared.body as BodyInit,
        keepalive: true,
        // No Content-Type (a byte body has none): a "simple" request, no CORS preflight, the same
        // request as the page's sendBeacon of the same bytes.
        credentials: 'omit',
      });
    } catch (e) {
      this.fail(null, `network: ${(e as Error)?.message ?? e}`, null);
      return false;
    }
    const status = response.status;
    this.counters.lastStatus = status;
    let text = '';
    try {
      text = await response.text();
    } catch {
      /* the body was lost: judged by the status alone */
    }
    if (status === 200) {
      let ack: { status?: unknown; sequence?: unknown } = {};
      try {
        ack = JSON.parse(text);
      } catch {
        /* not the collector's answer */
      }
      if ((ack.status === 'applied' || ack.status === 'duplicate') && ack.sequence === entry.sequence) {
        await this.store.remove(entry.sequence);
        this.counters.acknowledged++;
        if (ack.status === 'duplicate') this.counters.duplicates++;
        this.attempt = 0;
        this.counters.lastError = null;
        this.onEvent({ type: 'acknowledged', sequence: entry.sequence, status: ack.status });
        return true;
      }
      this.fail(status, `200 without an acknowledgement of batch ${entry.sequence}`, null);
      return false;
    }
    const error = errorText(text, status);
    if (status === 400 || status === 413 || status === 422) {
      await this.drop(entry, status, error);
      return true;
    }
    if (status === 401 || status === 403) {
      this.counters.failures++;
      this.counters.lastError = error;
      this.notBefore = now() + this.options.authPauseMs;
      this.onEvent({ type: 'auth', httpStatus: status, error });
      return false;
    }
    this.fail(status, error, retryAfterMs(response.headers.get('retry-after'), now()));
    return false;
  }

  private async drop(entry: OutboxEntry, status: number, error: string): Promise<void> {
    await this.store.remove(entry.sequence);
    this.counters.rejected++;
    this.counters.rejectedPredictions += entry.predictions;
    this.counters.lastError = error;
    this.onEvent({ type: 'rejected', sequence: entry.sequence, httpStatus: status, error });
  }

  private fail(status: number | null, error: string, retryAfter: number | null): void {
    const { now, baseBackoffMs, maxBackoffMs, random } = this.options;
    this.counters.failures++;
    this.counters.lastError = status === null ? error : `${status}: ${error}`;
    const wait = Math.max(backoffMs(this.attempt++, baseBackoffMs, maxBackoffMs, random), retryAfter ?? 0);
    this.notBefore = now() + wait;
  }
}

function errorText(text: string, status: number): string {
  try {
    const j = JSON.parse(text);
    if (typeof j?.error === 'string') return j.error;
  } catch {
    /* plain text */
  }
  return text.slice(0, 200) || `HTTP ${status}`;
}
