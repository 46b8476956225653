import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { decodeBatch, encodeBatch, type WindowProfile } from '../sketch/index.js';
import { pack } from './packing.js';
import { mergeWindows } from './profiler.js';

/**
 * Where the agent keeps what must survive the page: its id, the next sequence number, the open
 * windows (everything recorded and checkpointed but not yet sealed) and the outbox (sealed
 * batches waiting for the collector's acknowledgement).
 *
 * Every tab of an origin shares one database per model. Each tab checkpoints what it recorded
 * since its last checkpoint by merging it into the shared open windows, in one transaction; a
 * seal moves all open windows into outbox batches with fresh sequence numbers, in one
 * transaction. IndexedDB runs read-write transactions on the same stores one at a time, across
 * tabs, so a prediction is in exactly one place at any moment: a tab's memory, the open windows,
 * or one outbox batch — never two, never none.
 */

/** A sealed batch: its encoded bytes (the send time is set again when it is sent). */
export interface OutboxEntry {
  sequence: number;
  bytes: Uint8Array;
  predictions: number;
  createdAt: number;
}

export interface SealResult {
  entries: OutboxEntry[];
  /** Batches and predictions removed, oldest first, to keep the outbox under its cap. */
  dropped: { batches: number; predictions: number };
}

export interface AgentStore {
  readonly kind: 'indexeddb' | 'memory';
  agentId(): Promise<string>;
  /** Merges `windows` into the open windows (one atomic step). */
  checkpoint(windows: readonly WindowProfile[]): Promise<void>;
  /** Moves every open window into new outbox batches of at most `maxBytes` each (one atomic step). */
  seal(agentId: string, maxBytes: number, maxOutboxBytes: number): Promise<SealResult>;
  /** The oldest `limit` outbox batches. */
  head(limit: number): Promise<OutboxEntry[]>;
  /** Deletes a batch (acknowledged, or refused for good). */
  remove(sequence: number): Promise<void>;
  counts(): Promise<{ outboxBatches: number; outboxBytes: number; openWindows: number }>;
  close(): void;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

interface Schema extends DBSchema {
  meta: { key: string; value: string | number };
  open: { key: string; value: { key: string; bytes: Uint8Array } };
  outbox: { key: number; value: OutboxEntry };
}

/** The database version this code writes; `upgrade` brings any older one up to it. */
export const DB_VERSION = 1;

const windowKey = (w: WindowProfile): string => `${w.start}/${w.length}/${w.segmentKey}`;

/** One window as bytes, for the open-windows store (a batch of one window). */
function encodeOpen(w: WindowProfile): Uint8Array {
  return encodeBatch({ agentId: 'open', sequence: 0, sentAt: 0, windows: [w] });
}
function decodeOpen(bytes: Uint8Array): WindowProfile {
  return decodeBatch(bytes).windows[0];
}

function randomId(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** Builds outbox entries for `windows`, numbered from `next`. */
function seal(windows: WindowProfile[], agentId: string, next: number, maxBytes: number, now: number): OutboxEntry[] {
  const entries: OutboxEntry[] = [];
  for (const group of pack(windows, maxBytes)) {
    const sequence = next++;
    const bytes = encodeBatch({ agentId, sequence, sentAt: now, windows: group });
    entries.push({ sequence, bytes, predictions: group.reduce((s, w) => s + w.predictions, 0), createdAt: now });
  }
  return entries;
}

/** Oldest entries to drop so that the outbox holds at most `cap` bytes. */
function overCap(entries: readonly OutboxEntry[], cap: number): OutboxEntry[] {
  let total = entries.reduce((s, e) => s + e.bytes.length, 0);
  const drop: OutboxEntry[] = [];
  for (const e of entries) {
    if (total <= cap) break;
    drop.push(e);
    total -= e.bytes.length;
  }
  return drop;
}

export class MemoryStore implements AgentStore {
  readonly kind = 'memory' as const;
  private id: string | null = null;
  private next = 1;
  private open = new Map<string, WindowProfile>();
  private outbox = new Map<number, OutboxEntry>();

  async agentId(): Promise<string> {
    this.id ??= randomId();
    return this.id;
  }

  async checkpoint(windows: readonly WindowProfile[]): Promise<void> {
    for (const w of windows) {
      const mine = this.open.get(windowKey(w));
      if (mine === undefined) this.open.set(windowKey(w), w.clone());
      else mine.merge(w);
    }
  }

  async seal(agentId: string, maxBytes: number, maxOutboxBytes: number): Promise<SealResult> {
    const windows = [...this.open.values()];
    const entries = windows.length === 0 ? [] : seal(windows, agentId, this.next, maxBytes, Date.now());
    this.next += entries.length;
    this.open.clear();
    for (const e of entries) this.outbox.set(e.sequence, e);
    const drop = overCap([...this.outbox.values()], maxOutboxBytes);
    for (const e of drop) this.outbox.delete(e.sequence);
    return { entries, dropped: { batches: drop.length, predictions: drop.reduce((s, e) => s + e.predictions, 0) } };
  }

  async head(limit: number): Promise<OutboxEntry[]> {
    return [...this.outbox.values()].sort((a, b) => a.sequence - b.sequence).slice(0, limit);
  }

  async remove(sequence: number): Promise<void> {
    this.outbox.delete(sequence);
  }

  async counts(): Promise<{ outboxBatches: number; outboxBytes: number; openWindows: number }> {
    let bytes = 0;
    for (const e of this.outbox.values()) bytes += e.bytes.length;
    return { outboxBatches: this.outbox.size, outboxBytes: bytes, openWindows: this.open.size };
  }

  close(): void {}
}

export interface IdbOptions {
  /** Database name (one per model). */
  name: string;
  /** Give up opening after this long (Safari 14's first open could hang). */
  openTimeoutMs?: number;
  /** Told when another tab with newer code needs this connection closed. */
  onBlocking?: () => void;
}

export class IdbStore implements AgentStore {
  readonly kind = 'indexeddb' as const;
  private db: IDBPDatabase<Schema> | null;
  private readonly options: IdbOptions;
  private cachedId: string | null = null;

  private constructor(db: IDBPDatabase<Schema>, options: IdbOptions) {
    this.db = db;
    this.options = options;
  }

  /** Opens (creating or upgrading) the database; rejects with a StoreError when it cannot. */
  static async open(options: IdbOptions): Promise<IdbStore> {
    const db = await IdbStore.connect(options, () => store);
    const store = new IdbStore(db, options);
    return store;
  }

  private static async connect(options: IdbOptions, self: () => IdbStore | undefined): Promise<IDBPDatabase<Schema>> {
    if (typeof indexedDB === 'undefined') throw new StoreError('IndexedDB is not available here');
    const timeout = options.openTimeoutMs ?? 5_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const opening = openDB<Schema>(options.name, DB_VERSION, {
      upgrade(db, oldVersion) {
        // One step per version; a database at any older version walks up through them.
        if (oldVersion < 1) {
          db.createObjectStore('meta');
          db.createObjectStore('open', { keyPath: 'key' });
          db.createObjectStore('outbox', { keyPath: 'sequence' });
        }
      },
      blocking() {
        // A tab with newer code wants to upgrade: get out of its way; reconnect on next use.
        const store = self();
        if (store) {
          store.db?.close();
          store.db = null;
          store.options.onBlocking?.();
        }
      },
      terminated() {
        const store = self();
        if (store) store.db = null;
      },
    });
    try {
      return await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new StoreError(`IndexedDB did not open within ${timeout} ms`)), timeout);
        }),
      ]);
    } catch (e) {
      opening.then((db) => db.close(), () => {});
      throw e instanceof StoreError ? e : new StoreError(`IndexedDB refused to open: ${(e as Error)?.message ?? e}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async conn(): Promise<IDBPDatabase<Schema>> {
    this.db ??= await IdbStore.connect(this.options, () => this);
    return this.db;
  }

  async agentId(): Promise<string> {
    if (this.cachedId !== null) return this.cachedId;
    const db = await this.conn();
    const tx = db.transaction('meta', 'readwrite');
    let id = await tx.store.get('agentId');
    if (typeof id !== 'string') {
      id = randomId();
      await tx.store.put(id, 'agentId');
    }
    await tx.done;
    this.cachedId = id;
    return id;
  }

  async checkpoint(windows: readonly WindowProfile[]): Promise<void> {
    if (windows.length === 0) return;
    const db = await this.conn();
    const tx = db.transaction('open', 'readwrite');
    const stored = await Promise.all(windows.map((w) => tx.store.get(windowKey(w))));
    const before: WindowProfile[] = [];
    for (const s of stored) {
      if (s === undefined) continue;
      try {
        before.push(decodeOpen(s.bytes));
      } catch {
        // Unreadable (written by a future format?): keep the new data rather than fail forever.
      }
    }
    const merged = mergeWindows(before, windows);
    await Promise.all(merged.map((w) => tx.store.put({ key: windowKey(w), bytes: encodeOpen(w) })));
    await tx.done;
  }

  async seal(agentId: string, maxBytes: number, maxOutboxBytes: number): Promise<SealResult> {
    const db = await this.conn();
    const tx = db.transaction(['meta', 'open', 'outbox'], 'readwrite');
    const meta = tx.objectStore('meta');
    const open = tx.objectStore('open');
    const outbox = tx.objectStore('outbox');
    const [records, nextRaw] = await Promise.all([open.getAll(), meta.get('nextSequence')]);
    const windows: WindowProfile[] = [];
    for (const r of records) {
      try {
        windows.push(decodeOpen(r.bytes));
      } catch {
        /* unreadable: dropped with the rest of the open store */
      }
    }
    const next = typeof nextRaw === 'number' ? nextRaw : 1;
    const entries = windows.length === 0 ? [] : seal(windows, agentId, next, maxBytes, Date.now());
    const writes: Promise<unknown>[] = [];
    if (records.length > 0) writes.push(open.clear());
    for (const e of entries) writes.push(outbox.put(e));
    if (entries.length > 0) writes.push(meta.put(next + entries.length, 'nextSequence'));
    await Promise.all(writes);
    const all = await outbox.getAll();
    const drop = overCap(all, maxOutboxBytes);
    await Promise.all(drop.map((e) => outbox.delete(e.sequence)));
    await tx.done;
    return { entries, dropped: { batches: drop.length, predictions: drop.reduce((s, e) => s + e.predictions, 0) } };
  }

  async head(limit: number): Promise<OutboxEntry[]> {
    const db = await this.conn();
    return db.getAll('outbox', undefined, limit);
  }

  async remove(sequence: number): Promise<void> {
    const db = await this.conn();
    await db.delete('outbox', sequence);
  }

  async counts(): Promise<{ outboxBatches: number; outboxBytes: number; openWindows: number }> {
    const db = await this.conn();
    const tx = db.transaction(['open', 'outbox'], 'readonly');
    const [openWindows, all] = await Promise.all([tx.objectStore('open').count(), tx.objectStore('outbox').getAll()]);
    await tx.done;
    return { outboxBatches: all.length, outboxBytes: all.reduce((s, e) => s + e.bytes.length, 0), openWindows };
  }

  close(): void {
    this.db?.close();
    this.db = null;
  }
}
