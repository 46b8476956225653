import { checkSameLength, normalized } from './proportions.js';

/**
 * Floor for empty bins, which PSI's logarithm cannot take. The baseline's overflow bins are empty
 * by construction, so ε sets how much a current value beyond the baseline range costs: a
 * fraction q there adds (q − ε)·ln(q/ε), e.g. 0.046 for q = 1%.
 */
export const DEFAULT_PSI_EPSILON = 1e-4;

export interface PsiOptions {
  epsilon?: number;
}

/**
 * Population Stability Index (Siddiqi, "Credit Risk Scorecards", 2006; Yurdakul, "Statistical
 * properties of the population stability index", 2018), on proportions p (baseline) and q
 * (current) over the same bins:
 *
 *     PSI = Σᵢ (qᵢ − pᵢ)·ln(qᵢ/pᵢ)     with pᵢ, qᵢ floored at ε;   in [0, ∞)
 *
 * It is the symmetrized Kullback–Leibler divergence (Jeffreys) in nats. 0 when either side has
 * no mass.
 */
export function psi(p: ArrayLike<number>, q: ArrayLike<number>, { epsilon = DEFAULT_PSI_EPSILON }: PsiOptions = {}): number {
  checkSameLength(p, q);
  if (!(epsilon > 0 && epsilon < 1)) throw new RangeError(`epsilon must be in (0, 1), got ${epsilon}`);
  const a = normalized(p);
  const b = normalized(q);
  if (a === null || b === null) return 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const pi = Math.max(a[i], epsilon);
    const qi = Math.max(b[i], epsilon);
    sum += (qi - pi) * Math.log(qi / pi);
  }
  return sum;
}
