/**
 * Sorts `len` centroids in place by mean, ascending; `weights` (when given) move with them.
 * `weights === null` means every weight is one: the digest's add path never writes weights.
 *
 * Why not `Float64Array.prototype.sort`: measured here it costs ~78 ns per element for 8,192
 * doubles, three times the digest's whole per-add budget. An LSD radix sort on the high 32 bits
 * of each double (sign, exponent and 20 mantissa bits, three 11-bit digits) costs ~7–12 ns per
 * element; an insertion pass then restores exact float64 order among values whose high words
 * tie, which moves nothing unless values agree to ~1e-6 relative.
 *
 * Written for V8's optimizer, as measured here: the loops are spelled out with constant digit
 * shifts (a generic pass loop ran 3× slower), the order-preserving key is computed without a
 * branch (a random sign mispredicts half the time), and there are no unary operators in a
 * branch that may never run (V8 deoptimized the whole sort on each call for want of feedback).
 *
 * Narrow data. The high word resolves 2^-20 of a value: 8,192 timestamps in milliseconds
 * (~1.7e12, within minutes of each other) all share one, and the insertion pass then moved
 * ~16M elements — measured 24 moves per value already on epoch seconds spread over an hour.
 * So when the high words span fewer than 2^21 steps, the keys are 22 bits from where they
 * start to differ, the top of the low word included: values apart by more than 2^-22 of their
 * spread never tie. For whatever still ties in bulk (a dense clump beside a far
 * outlier), the insertion pass gives up after 8 moves per value and a quicksort takes over.
 *
 * Must: handle -0, negatives, subnormals and huge magnitudes; stay O(n log n) on any input;
 * never see NaN (the digest rejects it before it gets here).
 */

/** The most centroids one call may sort; the digest's buffer is this size. */
export const MAX_SORT = 8192;

// Scratch space shared by every digest (~320 KiB): a sort runs to completion before anything
// else can use it, so one set per realm is enough. Fixed-size `const` arrays, not lazily grown
// `let` ones: V8 treats a module constant as a known object, which measured 2× faster here
// (18.6 → 9.3 ns per value at 8,192 normal values).
const keysA = new Uint32Array(MAX_SORT);
const keysB = new Uint32Array(MAX_SORT);
const means1 = new Float64Array(MAX_SORT);
const means2 = new Float64Array(MAX_SORT);
const weights1 = new Float64Array(MAX_SORT);
const weights2 = new Float64Array(MAX_SORT);
const histogram = new Uint32Array(3 * 2048);

/** Below this, three passes over 6,144 buckets cost more than a quicksort. */
const RADIX_MIN = 1024;
/** Below this, an insertion sort beats quicksort's partitioning. */
const INSERTION_MAX = 16;

export function sortCentroids(means: Float64Array, weights: Float64Array | null, len: number): void {
  if (len >= RADIX_MIN && len <= MAX_SORT) {
    countDigits(means, keysA, len);
    if (weights === null) scatterValues(means, len);
    else scatterCentroids(means, weights, len);
  } else {
    quicksort(means, weights, 0, len - 1);
  }
  if (!insertionSort(means, weights, len, INSERTION_BUDGET * len)) {
    quicksort(means, weights, 0, len - 1);
    insertionSort(means, weights, len, Infinity);
  }
}

/** Moves per value the final insertion pass may make before a quicksort takes over. */
const INSERTION_BUDGET = 8;
/** High words spanning fewer steps than this are narrow: keyed on their low bits too. */
const NARROW_SPAN = 2 ** 21;

/**
 * Writes each mean's key and turns the three digit histograms into bucket offsets: the high
 * word's, or for narrow data the narrow key's (22 bits: its top digit is zero, and the third
 * pass only copies back in order).
 */
function countDigits(means: Float64Array, keys: Uint32Array, len: number): void {
  const h = histogram;
  h.fill(0);
  // Little-endian platforms (every browser and Node target) keep the high word at odd indices.
  const words = new Uint32Array(means.buffer, means.byteOffset, len * 2);
  let lo = 0xffffffff;
  let hi = 0;
  for (let i = 0; i < len; i++) {
    const w = words[2 * i + 1];
    // Order-preserving map of IEEE-754 bits to unsigned integers: negatives get every bit
    // flipped, positives only the sign bit. (w >> 31) is all ones exactly for negatives.
    const k = (w ^ ((w >> 31) | 0x80000000)) >>> 0;
    keys[i] = k;
    h[k & 2047]++;
    h[2048 + ((k >>> 11) & 2047)]++;
    h[4096 + (k >>> 22)]++;
    if (k < lo) lo = k;
    if (k > hi) hi = k;
  }
  if (hi - lo < NARROW_SPAN) narrowKeys(words, keys, len, lo, hi - lo);
  for (let base = 0; base < 3 * 2048; base += 2048) {
    let sum = 0;
    for (let j = base; j < base + 2048; j++) {
      const c = h[j];
      h[j] = sum;
      sum += c;
    }
  }
}

/**
 * Re-keys narrow data: the 22 bits of (64-bit order-preserving pattern − the smallest one's high
 * word) from the highest that varies, i.e. the high-word offset shifted up and topped with the
 * low word's leading bits. Order-preserving like the high word: negatives' low words flip too.
 */
function narrowKeys(words: Uint32Array, keys: Uint32Array, len: number, lo: number, span: number): void {
  const h = histogram;
  h.fill(0);
  const up = 22 - (span === 0 ? 0 : 32 - Math.clz32(span));
  const down = 32 - up;
  for (let i = 0; i < len; i++) {
    const w = words[2 * i + 1];
    const low = (words[2 * i] ^ (w >> 31)) >>> 0;
    const k = (((((w ^ ((w >> 31) | 0x80000000)) >>> 0) - lo) << up) | (low >>> down)) >>> 0;
    keys[i] = k;
    h[k & 2047]++;
    h[2048 + (k >>> 11)]++;
  }
  h[4096] = len;
}

function scatterValues(means: Float64Array, len: number): void {
  const h = histogram;
  const ka = keysA;
  const kb = keysB;
  const m1 = means1;
  const m2 = means2;
  for (let i = 0; i < len; i++) {
    const k = ka[i];
    const d = h[k & 2047]++;
    kb[d] = k;
    m1[d] = means[i];
  }
  for (let i = 0; i < len; i++) {
    const k = kb[i];
    const d = h[2048 + ((k >>> 11) & 2047)]++;
    ka[d] = k;
    m2[d] = m1[i];
  }
  for (let i = 0; i < len; i++) {
    const d = h[4096 + (ka[i] >>> 22)]++;
    means[d] = m2[i];
  }
}

function scatterCentroids(means: Float64Array, weights: Float64Array, len: number): void {
  const h = histogram;
  const ka = keysA;
  const kb = keysB;
  const m1 = means1;
  const m2 = means2;
  const w1 = weights1;
  const w2 = weights2;
  for (let i = 0; i < len; i++) {
    const k = ka[i];
    const d = h[k & 2047]++;
    kb[d] = k;
    m1[d] = means[i];
    w1[d] = weights[i];
  }
  for (let i = 0; i < len; i++) {
    const k = kb[i];
    const d = h[2048 + ((k >>> 11) & 2047)]++;
    ka[d] = k;
    m2[d] = m1[i];
    w2[d] = w1[i];
  }
  for (let i = 0; i < len; i++) {
    const d = h[4096 + (ka[i] >>> 22)]++;
    means[d] = m2[i];
    weights[d] = w2[i];
  }
}

/** Sorts [lo, hi] into runs of at most INSERTION_MAX that the final insertion pass finishes. */
function quicksort(means: Float64Array, weights: Float64Array | null, lo: number, hi: number): void {
  while (hi - lo >= INSERTION_MAX) {
    // Median of three as the pivot keeps sorted and reversed input at n log n.
    const mid = (lo + hi) >>> 1;
    if (means[mid] < means[lo]) swap(means, weights, mid, lo);
    if (means[hi] < means[lo]) swap(means, weights, hi, lo);
    if (means[hi] < means[mid]) swap(means, weights, hi, mid);
    const pivot = means[mid];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (means[i] < pivot) i++;
      while (means[j] > pivot) j--;
      if (i <= j) swap(means, weights, i++, j--);
    }
    // Recurse into the smaller side, loop on the larger: stack depth stays O(log n).
    if (j - lo < hi - i) {
      quicksort(means, weights, lo, j);
      lo = i;
    } else {
      quicksort(means, weights, i, hi);
      hi = j;
    }
  }
}

function swap(means: Float64Array, weights: Float64Array | null, a: number, b: number): void {
  const m = means[a];
  means[a] = means[b];
  means[b] = m;
  if (weights !== null) {
    const w = weights[a];
    weights[a] = weights[b];
    weights[b] = w;
  }
}

/** Finishes the sort unless that takes more than `budget` moves (false: left part-sorted). */
function insertionSort(means: Float64Array, weights: Float64Array | null, len: number, budget: number): boolean {
  for (let i = 1; i < len; i++) {
    const m = means[i];
    if (m >= means[i - 1]) continue;
    const w = weights === null ? 1 : weights[i];
    let j = i - 1;
    while (j >= 0 && means[j] > m) {
      means[j + 1] = means[j];
      if (weights !== null) weights[j + 1] = weights[j];
      j--;
    }
    means[j + 1] = m;
    if (weights !== null) weights[j + 1] = w;
    budget -= i - 1 - j;
    if (budget < 0) return false;
  }
  return true;
}
