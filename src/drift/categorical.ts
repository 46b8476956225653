import { ClassCounts, TopK } from '../sketch/index.js';

/** Either kind of categorical sketch: a fixed class vector or top-k label counts. */
export type CategoricalSketch = ClassCounts | TopK;

/**
 * Two categorical sketches' counts over one list of classes: the labels present on either side
 * (baseline order, then labels new in the current), and last a remainder class. For class
 * vectors the remainder is the exact `unseen` count, a real class. For top-k labels it is left
 * at 0: TopK's `other` weight is Misra–Gries decrements plus untracked labels, and it grows with
 * the number of values, so two samples of one distribution of different sizes differ there
 * (measured: L∞ 0.02 from `other` alone, 20,000 vs 5,000 Zipf values). Shares stay fractions of
 * the exact total, so top-k shares sum to less than 1.
 */
export interface AlignedCategories {
  labels: string[];
  /** Counts per label, then the remainder: length labels.length + 1. */
  baseline: Float64Array;
  current: Float64Array;
  /** Exact totals of each side (TopK's includes its untracked weight). */
  baselineTotal: number;
  currentTotal: number;
}

function countsOf(sketch: CategoricalSketch): { counts: Map<string, number>; remainder: number; total: number } {
  const counts = new Map<string, number>();
  if (sketch instanceof ClassCounts) {
    sketch.labels.forEach((label, i) => counts.set(label, sketch.counts[i]));
    return { counts, remainder: sketch.unseen, total: sketch.total };
  }
  for (const [label, n] of sketch.entries()) counts.set(label, n);
  return { counts, remainder: 0, total: sketch.total };
}

export function alignCategories(baseline: CategoricalSketch, current: CategoricalSketch): AlignedCategories {
  const b = countsOf(baseline);
  const c = countsOf(current);
  const labels = [...b.counts.keys()];
  for (const label of c.counts.keys()) if (!b.counts.has(label)) labels.push(label);
  const fill = (side: typeof b): Float64Array => {
    const out = new Float64Array(labels.length + 1);
    labels.forEach((label, i) => (out[i] = side.counts.get(label) ?? 0));
    out[labels.length] = side.remainder;
    return out;
  };
  return { labels, baseline: fill(b), current: fill(c), baselineTotal: b.total, currentTotal: c.total };
}

function proportions(counts: Float64Array, total: number): Float64Array | null {
  return total > 0 ? counts.map((n) => n / total) : null;
}

/**
 * χ² effect size: Cramér's V (Cramér, "Mathematical Methods of Statistics", 1946) of the 2 × k
 * table baseline-vs-current with both rows given equal weight, m = (p + q)/2:
 *
 *     V = √( χ² / N ) = ½·√( Σᵢ (pᵢ − qᵢ)² / mᵢ )   in [0, 1]
 *
 * Equal row weights make V a property of the two distributions alone: the plain table's V
 * shrinks toward 0 as the baseline grows, an artefact of sample sizes. For a 2 × k table V is
 * Cohen's w ("Statistical Power Analysis", 1988: 0.1 small, 0.3 medium, 0.5 large). 1 for
 * disjoint supports; 0 when either side is empty.
 */
export function chiSquare(baseline: CategoricalSketch, current: CategoricalSketch): number {
  const aligned = alignCategories(baseline, current);
  const p = proportions(aligned.baseline, aligned.baselineTotal);
  const q = proportions(aligned.current, aligned.currentTotal);
  if (p === null || q === null) return 0;
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const m = (p[i] + q[i]) / 2;
    if (m > 0) sum += ((p[i] - q[i]) * (p[i] - q[i])) / m;
  }
  return Math.min(1, Math.sqrt(sum) / 2);
}

/**
 * L∞ distance: the largest change in any class's share, max_i |pᵢ − qᵢ| over the labels of
 * either side and the remainder class; in [0, 1]. 0 when either side is empty.
 */
export function lInf(baseline: CategoricalSketch, current: CategoricalSketch): number {
  const aligned = alignCategories(baseline, current);
  const p = proportions(aligned.baseline, aligned.baselineTotal);
  const q = proportions(aligned.current, aligned.currentTotal);
  if (p === null || q === null) return 0;
  let max = 0;
  for (let i = 0; i < p.length; i++) max = Math.max(max, Math.abs(p[i] - q[i]));
  return max;
}
