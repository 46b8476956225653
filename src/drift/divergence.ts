import { checkSameLength, normalized } from './proportions.js';

/**
 * Jensen–Shannon *distance* with base-2 logarithms (Lin, "Divergence measures based on the
 * Shannon entropy", 1991; Endres & Schindelin, "A new metric for probability distributions",
 * 2003), on proportions over the same bins or classes, m = (p + q)/2:
 *
 *     JS = √( ½·Σ pᵢ·log₂(pᵢ/mᵢ) + ½·Σ qᵢ·log₂(qᵢ/mᵢ) )   in [0, 1]
 *
 * The square root of the divergence is a metric, and what scipy.spatial.distance.jensenshannon
 * (base=2) and evidently report. Unlike PSI it needs no ε: mᵢ > 0 wherever a term is non-zero.
 * 1 for disjoint supports; 0 when either side has no mass.
 */
export function jensenShannon(p: ArrayLike<number>, q: ArrayLike<number>): number {
  checkSameLength(p, q);
  const a = normalized(p);
  const b = normalized(q);
  if (a === null || b === null) return 0;
  let divergence = 0;
  for (let i = 0; i < a.length; i++) {
    const m = (a[i] + b[i]) / 2;
    if (a[i] > 0) divergence += 0.5 * a[i] * Math.log2(a[i] / m);
    if (b[i] > 0) divergence += 0.5 * b[i] * Math.log2(b[i] / m);
  }
  return Math.sqrt(Math.min(1, Math.max(0, divergence)));
}

/**
 * Hellinger distance (Hellinger 1909; normalized as in Le Cam & Yang, "Asymptotics in
 * Statistics", 2000), on proportions over the same bins or classes:
 *
 *     H = √( ½·Σ (√pᵢ − √qᵢ)² ) = √(1 − Σ √(pᵢqᵢ))   in [0, 1]
 *
 * Computed in the first form, which keeps small distances accurate where 1 − Σ√(pq) cancels.
 * 1 for disjoint supports; 0 when either side has no mass.
 */
export function hellinger(p: ArrayLike<number>, q: ArrayLike<number>): number {
  checkSameLength(p, q);
  const a = normalized(p);
  const b = normalized(q);
  if (a === null || b === null) return 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.sqrt(a[i]) - Math.sqrt(b[i]);
    sum += d * d;
  }
  return Math.sqrt(Math.min(1, sum / 2));
}
