/**
 * p scaled to sum to 1, or null when it holds no mass. Binned and categorical statistics take
 * proportions; normalizing here means rounding in a caller's sums cannot push a statistic out
 * of its range.
 */
export function normalized(p: ArrayLike<number>): Float64Array | null {
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (!(v >= 0 && Number.isFinite(v))) throw new RangeError(`proportions must be finite and non-negative, got ${v} at ${i}`);
    sum += v;
  }
  if (sum === 0) return null;
  return Float64Array.from(p, (v) => v / sum);
}

/** Throws unless p and q have the same length: they must come from the same bins or classes. */
export function checkSameLength(p: ArrayLike<number>, q: ArrayLike<number>): void {
  if (p.length !== q.length) throw new RangeError(`proportions differ in length (${p.length} vs ${q.length}): compute both on the same bins`);
}
