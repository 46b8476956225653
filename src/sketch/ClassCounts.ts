/**
 * Counts over a fixed, known set of classes, such as a classifier's outputs: one slot per class
 * and a count of indexes outside the set (`unseen`), which the agent reports as a data-quality
 * event.
 */
export class ClassCountsError extends Error {
  override name = 'ClassCountsError';
}

/** The most classes one vector holds: a bound on memory and on the wire. */
export const MAX_CLASSES = 4096;

export class ClassCounts {
  readonly labels: readonly string[];
  readonly counts: Float64Array;
  unseen = 0;

  constructor(labels: readonly string[]) {
    if (!Array.isArray(labels) || labels.length === 0 || labels.length > MAX_CLASSES) {
      throw new ClassCountsError(`a class vector needs 1 to ${MAX_CLASSES} labels, got ${Array.isArray(labels) ? labels.length : typeof labels}`);
    }
    if (new Set(labels).size !== labels.length) throw new ClassCountsError('class labels must be distinct');
    this.labels = Object.freeze([...labels]);
    this.counts = new Float64Array(labels.length);
  }

  /** Counts class `index` (0-based); anything else counts as unseen. */
  add(index: number, weight = 1): this {
    if (weight !== 1 && !(Number.isSafeInteger(weight) && weight > 0)) {
      throw new ClassCountsError(`weight must be a positive integer, got ${weight}`);
    }
    if (Number.isInteger(index) && index >= 0 && index < this.counts.length) this.counts[index] += weight;
    else this.unseen += weight;
    return this;
  }

  get total(): number {
    let t = this.unseen;
    for (let i = 0; i < this.counts.length; i++) t += this.counts[i];
    return t;
  }

  /** Folds `other` in; both must have the same labels in the same order. */
  merge(other: ClassCounts): this {
    if (!this.sameLabels(other)) {
      throw new ClassCountsError(`cannot merge class vectors with different labels ([${this.labels.join(', ')}] vs [${other.labels.join(', ')}])`);
    }
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.unseen += other.unseen;
    return this;
  }

  /** Back to zero counts (same labels). */
  clear(): this {
    this.counts.fill(0);
    this.unseen = 0;
    return this;
  }

  sameLabels(other: ClassCounts): boolean {
    return this.labels.length === other.labels.length && this.labels.every((l, i) => l === other.labels[i]);
  }

  clone(): ClassCounts {
    const c = new ClassCounts(this.labels);
    c.counts.set(this.counts);
    c.unseen = this.unseen;
    return c;
  }
}
