/**
 * Count, mean, sum of squared deviations (M2), min, max and sum of a stream of finite numbers.
 *
 * Updates follow Welford (1962); merges follow Chan, Golub & LeVeque, "Updating formulae and a
 * pairwise algorithm for computing sample variances" (1979):
 *   n = na + nb,  δ = mean_b − mean_a,  mean = mean_a + δ·nb/n,  M2 = M2a + M2b + δ²·na·nb/n.
 * Both are stable where the textbook Σx² − n·mean² loses every digit.
 */
export class MomentsError extends Error {
  override name = 'MomentsError';
}

export class Moments {
  count = 0;
  mean = 0;
  m2 = 0;
  min = Infinity;
  max = -Infinity;
  sum = 0;

  /** Adds a finite number (FeatureProfile counts NaN and ±Infinity before they get here). */
  add(x: number): this {
    if (typeof x !== 'number' || x - x !== 0) throw new MomentsError(`cannot add ${String(x)}: only finite numbers`);
    return this.addFinite(x);
  }

  /** add() for a caller that has already checked x is a finite number (the per-prediction path). */
  addFinite(x: number): this {
    const n = ++this.count;
    const d = x - this.mean;
    this.mean += d / n;
    this.m2 += d * (x - this.mean);
    this.sum += x;
    if (x < this.min) this.min = x;
    if (x > this.max) this.max = x;
    return this;
  }

  /** Folds `other` in; `other` is not changed. */
  merge(other: Moments): this {
    return this.mergeParts(other.count, other.mean, other.m2, other.sum, other.min, other.max);
  }

  /** merge() of moments given as their parts (a collector merging them straight from the wire). */
  mergeParts(nb: number, mean: number, m2: number, sum: number, min: number, max: number): this {
    if (nb === 0) return this;
    const na = this.count;
    if (na === 0) {
      this.count = nb;
      this.mean = mean;
      this.m2 = m2;
    } else {
      const n = na + nb;
      const delta = mean - this.mean;
      this.mean += (delta * nb) / n;
      this.m2 += m2 + ((delta * delta * na) / n) * nb;
      this.count = n;
    }
    this.sum += sum;
    if (min < this.min) this.min = min;
    if (max > this.max) this.max = max;
    return this;
  }

  /** Back to no values. */
  clear(): this {
    this.count = 0;
    this.mean = 0;
    this.m2 = 0;
    this.min = Infinity;
    this.max = -Infinity;
    this.sum = 0;
    return this;
  }

  /** Population variance (M2 / n); NaN when empty. */
  get variance(): number {
    return this.count === 0 ? NaN : this.m2 / this.count;
  }

  get std(): number {
    return Math.sqrt(this.variance);
  }

  clone(): Moments {
    return Object.assign(new Moments(), this);
  }
}
