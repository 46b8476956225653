/**
 * Bounded counts over an open set of labels (categorical inputs): the Misra–Gries summary
 * ("Finding repeated elements", 1982) with at most `capacity` counters, merged as in Agarwal et
 * al., "Mergeable summaries" (PODS 2012): add the counters, then subtract the (k+1)-th largest
 * count from all and drop those at or below zero. Each label's count is an underestimate by at
 * most (total − Σ counters) / (capacity + 1); `total` itself is exact.
 */
export class TopKError extends Error {
  override name = 'TopKError';
}

export const DEFAULT_TOPK_CAPACITY = 64;
export const MAX_TOPK_CAPACITY = 4096;
/** Longest label kept, in UTF-16 code units; longer labels are cut (and still counted). */
export const MAX_LABEL_LENGTH = 128;

export class TopK {
  readonly capacity: number;
  private readonly counters = new Map<string, number>();
  /** Exact total weight added, tracked or not. */
  total = 0;

  constructor(capacity = DEFAULT_TOPK_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_TOPK_CAPACITY) {
      throw new TopKError(`top-k capacity must be an integer from 1 to ${MAX_TOPK_CAPACITY}, got ${capacity}`);
    }
    this.capacity = capacity;
  }

  add(label: string, weight = 1): this {
    if (weight !== 1 && !(Number.isSafeInteger(weight) && weight > 0)) {
      throw new TopKError(`weight must be a positive integer, got ${weight}`);
    }
    if (typeof label !== 'string') throw new TopKError(`a label must be a string, got ${typeof label}`);
    const key = label.length > MAX_LABEL_LENGTH ? cutLabel(label) : label;
    this.total += weight;
    const c = this.counters.get(key);
    if (c !== undefined) {
      this.counters.set(key, c + weight);
      return this;
    }
    if (this.counters.size < this.capacity) {
      this.counters.set(key, weight);
      return this;
    }
    // Full: decrement every counter (and the newcomer) by the smallest amount that frees one.
    let least = weight;
    for (const v of this.counters.values()) if (v < least) least = v;
    for (const [k, v] of this.counters) {
      if (v <= least) this.counters.delete(k);
      else this.counters.set(k, v - least);
    }
    if (weight > least) this.counters.set(key, weight - least);
    return this;
  }

  /** Tracked labels with their (under-)counts, largest first, ties by label. */
  entries(): Array<[string, number]> {
    return [...this.counters].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** Weight not attributed to a tracked label. */
  get other(): number {
    let tracked = 0;
    for (const v of this.counters.values()) tracked += v;
    return this.total - tracked;
  }

  get size(): number {
    return this.counters.size;
  }

  count(label: string): number {
    return this.counters.get(label) ?? 0;
  }

  /** Folds `other` in; `other` is not changed. Capacities must match. */
  merge(other: TopK): this {
    if (other.capacity !== this.capacity) {
      throw new TopKError(`cannot merge top-k summaries of capacity ${this.capacity} and ${other.capacity}`);
    }
    for (const [k, v] of other.counters) this.counters.set(k, (this.counters.get(k) ?? 0) + v);
    this.total += other.total;
    if (this.counters.size > this.capacity) {
      const sorted = this.entries();
      const cut = sorted[this.capacity][1];
      this.counters.clear();
      for (const [k, v] of sorted) if (v > cut) this.counters.set(k, v - cut);
    }
    return this;
  }

  /** Back to no labels (same capacity). */
  clear(): this {
    this.counters.clear();
    this.total = 0;
    return this;
  }

  clone(): TopK {
    const t = new TopK(this.capacity);
    for (const [k, v] of this.counters) t.counters.set(k, v);
    t.total = this.total;
    return t;
  }

  /** Rebuilds a summary from decoded parts; checks the counts are positive and fit the total. */
  static fromEntries(capacity: number, entries: Iterable<[string, number]>, total: number): TopK {
    const t = new TopK(capacity);
    let tracked = 0;
    for (const [k, v] of entries) {
      if (!(Number.isSafeInteger(v) && v > 0)) throw new TopKError(`count of ${JSON.stringify(k)} is ${v}, expected a positive integer`);
      if (t.counters.has(k)) throw new TopKError(`label ${JSON.stringify(k)} appears twice`);
      if (k.length > MAX_LABEL_LENGTH) throw new TopKError(`label longer than ${MAX_LABEL_LENGTH}`);
      t.counters.set(k, v);
      tracked += v;
    }
    if (t.counters.size > capacity) throw new TopKError(`${t.counters.size} labels exceed the capacity ${capacity}`);
    if (!(Number.isSafeInteger(total) && total >= tracked)) throw new TopKError(`total ${total} is below the tracked counts ${tracked}`);
    t.total = total;
    return t;
  }
}

/** Cuts a label to MAX_LABEL_LENGTH without splitting a surrogate pair. */
function cutLabel(label: string): string {
  const end = MAX_LABEL_LENGTH;
  const last = label.charCodeAt(end - 1);
  return label.slice(0, last >= 0xd800 && last <= 0xdbff ? end - 1 : end);
}
