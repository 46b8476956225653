/**
 * The sketchwatch wire format, all of it in this one file.
 *
 * Every message starts with the magic bytes "SW", a kind byte ('D' digest, 'B' batch) and a
 * format version (1). Integers are unsigned LEB128 varints up to 2^53 - 1; floats are IEEE-754
 * little-endian; strings are a varint byte length and UTF-8.
 *
 * Records (window profiles, feature profiles) are sequences of fields, each a varint tag, a
 * varint byte length and the payload, so a reader skips fields it does not know: a newer agent
 * can add a field without breaking an older collector. Required fields are checked.
 *
 * Digest body:
 *   varint compression, varint centroid count C; if C > 0:
 *   byte precision P, f64 min, f64 max, C means, the weights (see writeWeights), then one
 *   purity bit per centroid of weight > 1 (see writePurity).
 *   Means are varint deltas of grid keys (see meanKey below); P = 0xff means raw float64 means.
 *
 * Must (decode): be total — any byte string decodes to valid objects or throws CodecError naming
 * the offset and what is wrong; never allocate more than the input length justifies; never
 * return NaN or negative counts, unsorted centroids or non-integer weights.
 */
import { ClassCounts, MAX_CLASSES } from './ClassCounts.js';
import { FeatureProfile, MAX_FEATURE_NAME, type FeatureKind } from './FeatureProfile.js';
import { TDigest, type DigestState } from './TDigest.js';
import { MAX_TOPK_CAPACITY, TopK } from './TopK.js';
import { MAX_FEATURES, MAX_LABEL_BYTES, MAX_SEGMENT_LABELS, MAX_EVENT_KINDS, WindowProfile, type Segment } from './WindowProfile.js';

export class CodecError extends Error {
  override name = 'CodecError';
}

export const FORMAT_VERSION = 1;
const MAGIC_0 = 0x53; // 'S'
const MAGIC_1 = 0x57; // 'W'
const KIND_DIGEST = 0x44; // 'D'
export const KIND_BATCH = 0x42; // 'B'


// ---------------------------------------------------------------- bytes

export class ByteWriter {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.length++] = b;
  }

  /** Unsigned varint, 0 <= v <= 2^53 - 1. */
  varint(v: number): void {
    if (!(Number.isSafeInteger(v) && v >= 0)) throw new CodecError(`cannot write ${v} as an unsigned varint`);
    this.reserve(8);
    while (v >= 0x80) {
      this.buf[this.length++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.length++] = v;
  }

  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  string(s: string): void {
    const b = textEncoder.encode(s);
    this.varint(b.length);
    this.bytes(b);
  }

  /** Writes a field: tag, then the length of what `body` writes, then that. */
  field(tag: number, body: (w: ByteWriter) => void): void {
    // Written in place: one byte is reserved for the length, and the body moves right in the
    // rare case its length needs more (no nested buffer per field).
    this.varint(tag);
    this.reserve(1);
    const at = this.length++;
    body(this);
    const len = this.length - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    let extra = 0;
    for (let v = len; v >= 0x80; v = Math.floor(v / 0x80)) extra++;
    this.reserve(extra);
    this.buf.copyWithin(at + 1 + extra, at + 1, this.length);
    let v = len;
    let p = at;
    while (v >= 0x80) {
      this.buf[p++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[p] = v;
    this.length += extra;
  }

  finish(): Uint8Array<ArrayBuffer> {
    return this.buf.slice(0, this.length);
  }
}

// Floats are read by copying their 8 bytes here: no DataView per message (a collector reads
// thousands of small messages a second, and each DataView is an allocation).
const f64Scratch = new Float64Array(1);
const f64Bytes = new Uint8Array(f64Scratch.buffer);

export class ByteReader {
  pos: number;

  private buf: Uint8Array;
  end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  /** Makes this reader read `[start, end)` of `buf` (a reader reused instead of a new one). */
  reset(buf: Uint8Array, start: number, end: number): this {
    this.buf = buf;
    this.pos = start;
    this.end = end;
    return this;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  fail(what: string): never {
    throw new CodecError(`${what} (at byte ${this.pos})`);
  }

  byte(what: string): number {
    if (this.pos >= this.end) this.fail(`truncated: expected ${what}`);
    return this.buf[this.pos++];
  }

  varint(what: string): number {
    // Fast path for the one- and two-byte varints that make up nearly every digest.
    const pos = this.pos;
    if (pos + 1 < this.end) {
      const b0 = this.buf[pos];
      if (b0 < 0x80) {
        this.pos = pos + 1;
        return b0;
      }
      const b1 = this.buf[pos + 1];
      if (b1 < 0x80 && b1 !== 0) {
        this.pos = pos + 2;
        return (b0 & 0x7f) | (b1 << 7);
      }
    }
    return this.varintSlow(what);
  }

  private varintSlow(what: string): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.byte(what);
      v += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (!Number.isSafeInteger(v)) this.fail(`${what}: varint beyond 2^53`);
        if (i > 0 && b === 0) this.fail(`${what}: varint not in shortest form`);
        return v;
      }
      scale *= 0x80;
    }
    return this.fail(`${what}: varint longer than 8 bytes`);
  }

  f64(what: string): number {
    if (this.remaining < 8) this.fail(`truncated: expected ${what} (8 bytes)`);
    const b = this.buf;
    const p = this.pos;
    // Little-endian, as written (every platform we run on is little-endian too).
    for (let i = 0; i < 8; i++) f64Bytes[i] = b[p + i];
    this.pos = p + 8;
    return f64Scratch[0];
  }

  finite(what: string): number {
    const v = this.f64(what);
    if (!Number.isFinite(v)) this.fail(`${what} is ${v}, expected a finite number`);
    return v;
  }

  /**
   * A UTF-8 string: a varint byte length then the bytes, or (when `length` is given) exactly
   * that many bytes with no length prefix.
   */
  string(what: string, maxBytes: number, length?: number): string {
    const n = length ?? this.varint(`${what} length`);
    if (n > maxBytes) this.fail(`${what} is ${n} bytes, more than the ${maxBytes} allowed`);
    if (n > this.remaining) this.fail(`truncated: ${what} needs ${n} bytes, ${this.remaining} left`);
    const start = this.pos;
    this.pos += n;
    // Names and labels are short, nearly always ASCII, and the same in batch after batch: they
    // are looked up (by a hash of their bytes, then compared) rather than built each time.
    if (n <= INTERN_MAX_BYTES) {
      const buf = this.buf;
      let h = 0x811c9dc5 ^ n;
      let i = start;
      for (; i < start + n; i++) {
        const b = buf[i];
        if (b >= 0x80) break;
        h = Math.imul(h ^ b, 0x01000193);
      }
      if (i === start + n) return internAscii(buf, start, n, h >>> 0);
    }
    try {
      return textDecoderStrict.decode(this.buf.subarray(start, start + n));
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  /**
   * Reads the next field's tag and length, points `into` at its payload (which this reader
   * skips) and checks the tag against the record's tags so far. A reader per field is not
   * needed: the scan of a batch's features reuses one (see scanFeature).
   */
  nextField(record: FieldRecord, into: ByteReader, seen: FieldTags): number {
    const tag = this.varint(record.tagWhat);
    const len = this.varint(record.lengthWhat);
    if (len > this.remaining) this.fail(`truncated: ${record.what} needs ${len} bytes, ${this.remaining} left`);
    into.reset(this.buf, this.pos, this.pos + len);
    this.pos += len;
    if (seen.add(tag) && !record.repeatable.has(tag)) into.fail(`${record.what}: field ${tag} appears twice`);
    return tag;
  }

  /** After a field's payload was read (`into`, from nextField): all of it must have been. */
  endField(record: FieldRecord, tag: number, into: ByteReader): void {
    if (into.remaining !== 0) into.fail(`${record.what} field ${tag}: ${into.remaining} bytes left unread`);
  }

  /**
   * Reads fields until the end, calling `onField` for each. Tags not in `repeatable` may appear
   * once; `onField` ignores tags it does not know, which is how older readers skip newer fields.
   */
  fields(what: string, repeatable: ReadonlySet<number>, onField: (tag: number, r: ByteReader) => void): void {
    const record = fieldRecord(what, repeatable);
    const seen = new FieldTags();
    while (this.remaining > 0) {
      const field = new ByteReader(this.buf); // onField may read nested records with it
      const tag = this.nextField(record, field, seen);
      onField(tag, field);
      this.endField(record, tag, field);
    }
  }

  done(what: string): void {
    if (this.pos !== this.end) this.fail(`${what}: ${this.end - this.pos} unexpected trailing bytes`);
  }
}

/** A kind of record, as nextField reports on it: its name, its messages, its repeatable tags. */
interface FieldRecord {
  what: string;
  tagWhat: string;
  lengthWhat: string;
  repeatable: ReadonlySet<number>;
}

function fieldRecord(what: string, repeatable: ReadonlySet<number>): FieldRecord {
  return { what, tagWhat: `${what} field tag`, lengthWhat: `${what} field length`, repeatable };
}

/** The tags one record has shown so far: those below 32 (all of ours) in a bit mask. */
class FieldTags {
  private low = 0;
  private high: Set<number> | null = null;

  /** Records `tag`; says whether it was there already. */
  add(tag: number): boolean {
    if (tag < 32) {
      const twice = (this.low & (1 << tag)) !== 0;
      this.low |= 1 << tag;
      return twice;
    }
    this.high ??= new Set();
    const twice = this.high.has(tag);
    this.high.add(tag);
    return twice;
  }

  clear(): this {
    this.low = 0;
    this.high = null;
    return this;
  }
}

const textEncoder = new TextEncoder();

/**
 * Interned ASCII strings of up to INTERN_MAX_BYTES bytes, by FNV-1a hash of their bytes (a
 * collision just replaces the entry). Bounded: cleared when full, so hostile names cost a
 * rebuild, never memory.
 */
const INTERN_MAX_BYTES = 64;
const INTERN_MAX_ENTRIES = 16_384;
const interned = new Map<number, string>();

function internAscii(buf: Uint8Array, start: number, n: number, hash: number): string {
  const have = interned.get(hash);
  if (have !== undefined && have.length === n) {
    let same = true;
    for (let i = 0; i < n; i++) {
      if (have.charCodeAt(i) !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return have;
  }
  let s = '';
  for (let i = start; i < start + n; i++) s += String.fromCharCode(buf[i]);
  if (interned.size >= INTERN_MAX_ENTRIES) interned.clear();
  interned.set(hash, s);
  return s;
}
const textDecoderStrict = new TextDecoder('utf-8', { fatal: true });

function writeHeader(w: ByteWriter, kind: number): void {
  w.byte(MAGIC_0);
  w.byte(MAGIC_1);
  w.byte(kind);
  w.byte(FORMAT_VERSION);
}

export function readHeader(r: ByteReader, kind: number): void {
  if (r.remaining < 4) r.fail(`truncated: ${r.remaining} bytes is too short for a sketchwatch message`);
  const m0 = r.byte('magic');
  const m1 = r.byte('magic');
  if (m0 !== MAGIC_0 || m1 !== MAGIC_1) {
    r.pos -= 2;
    r.fail('not a sketchwatch message: wrong magic bytes');
  }
  const k = r.byte('kind');
  if (k !== kind) r.fail(`expected a ${String.fromCharCode(kind)} message, got kind 0x${k.toString(16)}`);
  const v = r.byte('format version');
  if (v !== FORMAT_VERSION) r.fail(`format version ${v} is not supported (this reader knows ${FORMAT_VERSION})`);
}

// ---------------------------------------------------------------- digests

// Means are written on a floating-point grid with P mantissa bits, P chosen per digest so that
// the grid resolves 2^-SPREAD_BITS of the digest's spread everywhere, and as integer keys that
// preserve order: a value's key is the bit pattern of its magnitude rounded to P mantissa bits,
// negated minus one for negative values. Sorted means then give small
// non-negative deltas (about two bytes each at 100 centroids; 2^-16 of the spread moves a
// quantile by far less than the digest's own error), values already on the grid
// (small integers, halves, …) stay exact, and re-encoding a decoded digest gives the same bytes.
const SPREAD_BITS = 16;
const MIN_PRECISION = SPREAD_BITS;
const MAX_PRECISION = 41; // 11 exponent bits + 41 = 52: keys stay exact in a float64
const RAW_FLOAT64 = 0xff; // precision byte for digests too narrow for any grid: raw float64 means

const scratch = new DataView(new ArrayBuffer(8));

/** Mantissa bits a digest with this min and max needs, or RAW_FLOAT64. */
function meanPrecision(min: number, max: number): number {
  const absMax = Math.max(Math.abs(min), Math.abs(max));
  if (min === max || absMax === 0) return MAX_PRECISION;
  // |x|·2^-P <= spread·2^-SPREAD_BITS  ⇔  P >= SPREAD_BITS + log2(absMax / spread)
  const p = SPREAD_BITS + Math.ceil(Math.log2(absMax / (max - min)));
  if (p > MAX_PRECISION) return RAW_FLOAT64;
  return Math.max(MIN_PRECISION, p);
}

// 2^e for every exponent a grid value can need, so decoding a mean is two multiplications.
const POW2_BIAS = 1075 + MAX_PRECISION;
const POW2 = new Float64Array(POW2_BIAS + 1024);
for (let e = 0; e < POW2.length; e++) POW2[e] = 2 ** (e - POW2_BIAS);

export function meanKey(x: number, p: number): number {
  scratch.setFloat64(0, x, true);
  const lo = scratch.getUint32(0, true);
  const hi = scratch.getUint32(4, true);
  const shift = 52 - p; // low bits dropped
  // The magnitude's bits scaled to units of the grid, rounded to nearest. (magHi + lo/2^32 is
  // exact for values on the grid, so they map to themselves; elsewhere its rounding can only
  // tip an exact halfway case, and it keeps the map monotone.) The largest finite double
  // rounds down, not up into the exponent of Infinity.
  const magHi = hi & 0x7fffffff;
  const scaled = (magHi + lo / 2 ** 32) * POW2[POW2_BIAS + 32 - shift];
  const mag = Math.min(Math.floor(scaled + 0.5), 2047 * POW2[POW2_BIAS + p] - 1);
  return hi & 0x80000000 ? -mag - 1 : mag;
}

export function meanFromKey(k: number, p: number): number {
  const negative = k < 0;
  const mag = negative ? -k - 1 : k;
  const unit = POW2[POW2_BIAS + p]; // 2^p
  const exponent = Math.floor(mag * POW2[POW2_BIAS - p]); // exact: a power-of-two scaling
  const mantissa = mag - exponent * unit;
  let v: number;
  if (exponent === 0) {
    v = mantissa * POW2[POW2_BIAS - 1074 - p + 52]; // subnormal: mantissa · 2^(-1022 - p)
  } else if (exponent < 1023 - 900 || exponent > 1023 + 900) {
    v = bitsToFloat(exponent, mantissa, p); // near the ends of the range: no double rounding
  } else {
    // (2^p + mantissa) · 2^(exponent - 1023 - p): an integer below 2^42 times a power of two.
    v = (unit + mantissa) * POW2[POW2_BIAS + exponent - 1023 - p];
  }
  return negative ? -v : v;
}

function bitsToFloat(exponent: number, mantissa: number, p: number): number {
  const shift = 52 - p;
  const full = mantissa * 2 ** shift; // the 52-bit mantissa field, exact below 2^53
  const hiMantissa = Math.floor(full / 2 ** 32);
  scratch.setUint32(0, full - hiMantissa * 2 ** 32, true);
  scratch.setUint32(4, exponent * 2 ** 20 + hiMantissa, true);
  return scratch.getFloat64(0, true);
}

export function writeDigestBody(w: ByteWriter, d: TDigest): void {
  // The digest's own arrays, not a copy: weights are signed there (negative = mixed centroid).
  const { compression, size: c, means, weights, min, max } = d.codecView();
  w.varint(compression);
  w.varint(c);
  if (c === 0) return;
  const p = meanPrecision(min, max);
  w.byte(p);
  w.f64(min);
  w.f64(max);
  if (p === RAW_FLOAT64) {
    for (let i = 0; i < c; i++) w.f64(means[i]);
  } else {
    writeKeys(w, means, c, p, meanKey(min, p));
  }
  writeWeights(w, weights, c);
  writePurity(w, weights, c);
}

/** The means' grid keys, the first as its distance above `from` (the min's key), the rest as deltas. */
function writeKeys(w: ByteWriter, means: Float64Array, c: number, p: number, from: number): void {
  let prev = from;
  for (let i = 0; i < c; i++) {
    const k = meanKey(means[i], p);
    w.varint(k - prev);
    prev = k;
  }
}

// One bit per centroid of weight > 1, in order, eight to a byte from the low bit: 1 when all of
// its values are equal (see DigestState.pure). Padding bits are zero. Weight-one centroids are
// pure by definition and take no bit, so digests of a few values pay nothing.
function writePurity(w: ByteWriter, signedWeights: Float64Array, c: number): void {
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < c; i++) {
    const sw = signedWeights[i];
    if (sw === 1) continue;
    acc |= (sw > 0 ? 1 : 0) << bits;
    if (++bits === 8) {
      w.byte(acc);
      acc = 0;
      bits = 0;
    }
  }
  if (bits > 0) w.byte(acc);
}

function readPurity(r: ByteReader, weights: Float64Array, pure: Uint8Array, c: number): void {
  let acc = 0;
  let bits = 8;
  for (let i = 0; i < c; i++) {
    if (weights[i] === 1) {
      pure[i] = 1;
      continue;
    }
    if (bits === 8) {
      acc = r.byte('digest purity bits');
      bits = 0;
    }
    pure[i] = (acc >> bits++) & 1;
  }
  if (bits < 8 && acc >> bits !== 0) r.fail('digest purity padding bits are not zero');
}

// Weights are tokens: an odd token 2r-1 stands for a run of r weights equal to one (the tails,
// and every digest of a few values, are mostly single points), an even token 2(w-2) for one
// weight w >= 2. Runs are maximal, so every weight vector has exactly one encoding.
function writeWeights(w: ByteWriter, signedWeights: Float64Array, c: number): void {
  let i = 0;
  while (i < c) {
    if (signedWeights[i] === 1) {
      let run = 1;
      while (i + run < c && signedWeights[i + run] === 1) run++;
      w.varint(2 * run - 1);
      i += run;
    } else {
      w.varint(2 * (Math.abs(signedWeights[i]) - 2));
      i++;
    }
  }
}

/** Reads `c` weights; returns their total, checked to stay below 2^53. */
function readWeights(r: ByteReader, weights: Float64Array, c: number): number {
  let i = 0;
  let total = 0;
  let lastWasRun = false;
  while (i < c) {
    const t = r.varint('digest weight');
    if (t % 2 === 1) {
      const run = (t + 1) / 2;
      if (lastWasRun) r.fail('digest weights: two runs of ones in a row (not canonical)');
      if (run > c - i) r.fail(`digest weights: a run of ${run} ones overruns the ${c} centroids`);
      weights.fill(1, i, i + run);
      i += run;
      total += run;
      lastWasRun = true;
    } else {
      const wgt = t / 2 + 2;
      weights[i++] = wgt;
      total += wgt;
      lastWasRun = false;
    }
  }
  if (!(total <= Number.MAX_SAFE_INTEGER)) r.fail(`digest total weight ${total} is beyond 2^53`);
  return total;
}

// Decoded digests take their arrays from shared 64 KiB slabs: a typed array of its own costs a
// backing-store allocation (~1 µs here), which was a third of the time to decode and merge
// 10,000 client digests. A slab is freed once no digest decoded into it is alive.
const SLAB_DOUBLES = 8192;
const OWN_ARRAY_FROM = 1024; // larger digests get arrays of their own
let slab = new Float64Array(SLAB_DOUBLES);
let slabUsed = 0;

function carve(n: number): Float64Array {
  if (n >= OWN_ARRAY_FROM) return new Float64Array(n);
  if (slabUsed + n > SLAB_DOUBLES) {
    slab = new Float64Array(SLAB_DOUBLES);
    slabUsed = 0;
  }
  const view = slab.subarray(slabUsed, slabUsed + n);
  slabUsed += n;
  return view;
}

/** A digest body as read, before it becomes a TDigest. Arrays may be longer than `length`. */
interface DigestParts {
  compression: number;
  length: number;
  min: number;
  max: number;
  means: Float64Array;
  weights: Float64Array;
  pure: Uint8Array;
  total: number;
}

const EMPTY_F64 = new Float64Array(0);
const EMPTY_U8 = new Uint8Array(0);

function newParts(): DigestParts {
  return { compression: 0, length: 0, min: NaN, max: NaN, means: EMPTY_F64, weights: EMPTY_F64, pure: EMPTY_U8, total: 0 };
}

function setParts(
  out: DigestParts, compression: number, length: number, min: number, max: number,
  means: Float64Array, weights: Float64Array, pure: Uint8Array, total: number,
): DigestParts {
  out.compression = compression;
  out.length = length;
  out.min = min;
  out.max = max;
  out.means = means;
  out.weights = weights;
  out.pure = pure;
  out.total = total;
  return out;
}

// Reused by mergeEncodedDigest and mergeDigestBody, which fold the parts into a digest and
// keep nothing: the parts and their reader too (a merge allocates nothing per digest).
const scratchParts = newParts();
const scratchReader = new ByteReader(new Uint8Array(0));
let scratchMeans = new Float64Array(256);
let scratchWeights = new Float64Array(256);
let scratchPure = new Uint8Array(256);

/**
 * Reads a digest body. `keptAt` >= 0: the strict check kept its keys in the key ring there
 * (intact: the caller checked), and the key varints, which end at byte `weightsAt`, are not
 * read again; every check is made all the same.
 */
function readDigestParts(r: ByteReader, reuse: boolean, out: DigestParts = newParts(), keptAt = -1, weightsAt = -1): DigestParts {
  const compression = r.varint('digest compression');
  if (compression < 10 || compression > 10_000) r.fail(`digest compression ${compression} is outside 10..10000`);
  const c = r.varint('digest centroid count');
  if (c === 0) return setParts(out, compression, 0, NaN, NaN, EMPTY_F64, EMPTY_F64, EMPTY_U8, 0);
  // Every mean takes at least one byte: a count the rest of the input cannot hold is rejected
  // before anything is allocated for it.
  if (c > r.remaining) r.fail(`digest claims ${c} centroids but only ${r.remaining} bytes follow`);
  const p = r.byte('digest mean precision');
  const min = r.finite('digest min');
  const max = r.finite('digest max');
  if (min > max) r.fail(`digest min ${min} is above max ${max}`);
  const expected = meanPrecision(min, max);
  if (p !== expected) r.fail(`digest mean precision ${p} is not the ${expected} its min and max call for`);
  let means: Float64Array;
  let weights: Float64Array;
  let pure: Uint8Array;
  if (reuse) {
    if (scratchMeans.length < c) {
      scratchMeans = new Float64Array(c);
      scratchWeights = new Float64Array(c);
      scratchPure = new Uint8Array(c);
    }
    means = scratchMeans;
    weights = scratchWeights;
    pure = scratchPure;
  } else {
    const store = carve(2 * c);
    means = store.subarray(0, c);
    weights = store.subarray(c);
    pure = new Uint8Array(c);
  }
  let firstKey = 0;
  let lastKey = 0;
  let k = 0;
  let k0 = 0;
  if (p === RAW_FLOAT64) {
    if (c * 8 > r.remaining) r.fail(`truncated: ${c} float64 means need ${c * 8} bytes`);
    for (let i = 0; i < c; i++) {
      means[i] = r.finite('digest mean');
      if (i > 0 && means[i] < means[i - 1]) r.fail(`digest mean ${i} is below the one before it`);
    }
    if (means[0] < min || means[c - 1] > max) r.fail('digest means lie outside [min, max]');
  } else {
    firstKey = meanKey(min, p);
    lastKey = meanKey(max, p);
    // Keys first, floats after: two tight loops decode faster than one mixed one (each in a
    // function of its own: inside this one V8 compiled them several times slower).
    let keys = means;
    let at = 0;
    if (keptAt >= 0) {
      keys = keyRing!;
      at = (keptAt - keyRingBase) % keyRingSlots;
      k = keys[at + c - 1];
      r.pos = weightsAt;
    } else {
      k = readKeys(r, means, 0, c, firstKey);
    }
    k0 = keys[at];
    if (k > lastKey) r.fail('digest means go above the max');
    keysToMeans(keys, at, means, c, p, min, max);
  }
  const total = readWeights(r, weights, c);
  if (total === c) pure.fill(1, 0, c); // all weights one: no purity bits were written
  else readPurity(r, weights, pure, c);
  if (p !== RAW_FLOAT64) {
    // A pure centroid at either end holds the min (max) itself: give it back exactly rather
    // than rounded to the grid, so the extreme quantiles survive the trip unchanged.
    if (pure[0] === 1) {
      if (k0 !== firstKey) r.fail('digest: a pure first centroid must sit at the min');
      means[0] = min;
    }
    if (pure[c - 1] === 1) {
      if (k !== lastKey) r.fail('digest: a pure last centroid must sit at the max');
      means[c - 1] = max;
    }
  }
  return setParts(out, compression, c, min, max, means, weights, pure, total);
}

/** Reads `c` key deltas into keys[at…] as running keys from `from`; returns the last key. */
function readKeys(r: ByteReader, keys: Float64Array, at: number, c: number, from: number): number {
  let k = from;
  for (let i = 0; i < c; i++) {
    k += r.varint('digest mean delta');
    keys[at + i] = k;
  }
  return k;
}

/**
 * Turns `c` keys (from keys[at]) into means (meanFromKey) in `means` — the same array, in
 * place, when decoding — clamped to [min, max]: a grid point may lie a rounding step beyond
 * either (its key is then the min's or the max's own, so encoding the clamped value gives the
 * same bytes). The common exponents inline meanFromKey's formula.
 */
function keysToMeans(keys: Float64Array, at: number, means: Float64Array, c: number, p: number, min: number, max: number): void {
  const unit = POW2[POW2_BIAS + p];
  const inverse = POW2[POW2_BIAS - p];
  const scale = POW2_BIAS - 1023 - p;
  for (let i = 0; i < c; i++) {
    const key = keys[at + i];
    const magnitude = key < 0 ? -key - 1 : key;
    const exponent = Math.floor(magnitude * inverse);
    let m: number;
    if (exponent >= 1023 - 900 && exponent <= 1023 + 900) {
      const v = (unit + (magnitude - exponent * unit)) * POW2[scale + exponent];
      m = key < 0 ? -v : v;
    } else {
      m = meanFromKey(key, p);
    }
    means[i] = m < min ? min : m > max ? max : m;
  }
}


export function readDigestBody(r: ByteReader): TDigest {
  const parts = readDigestParts(r, false);
  return checked(r, 'invalid digest', () => TDigest.fromState(parts satisfies DigestState, { adopt: true }));
}

/** Runs a constructor on decoded parts; its error (whatever the class) becomes a CodecError. */
function checked<T>(r: ByteReader, what: string, build: () => T): T {
  try {
    return build();
  } catch (e) {
    return r.fail(`${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export function encodeDigest(d: TDigest): Uint8Array<ArrayBuffer> {
  const w = new ByteWriter();
  writeHeader(w, KIND_DIGEST);
  writeDigestBody(w, d);
  return w.finish();
}

/**
 * Decodes an encoded digest straight into `into` (as `into.merge(decodeDigest(bytes))` would,
 * without building the intermediate digest: a collector merging thousands of client digests
 * spends most of its time there otherwise). All or nothing: on a CodecError `into` is unchanged.
 */
export function mergeEncodedDigest(into: TDigest, bytes: Uint8Array): TDigest {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('mergeEncoded() takes a Uint8Array');
  const r: ByteReader = new ByteReader(bytes);
  readHeader(r, KIND_DIGEST);
  const parts = readDigestParts(r, true, scratchParts);
  r.done('digest');
  if (parts.total + into.count > Number.MAX_SAFE_INTEGER) r.fail('merged total weight would pass 2^53');
  into.appendDecoded(parts.means, parts.weights, parts.pure, parts.length, parts.min, parts.max, parts.total);
  return into;
}

export function decodeDigest(bytes: Uint8Array): TDigest {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('decode() takes a Uint8Array');
  const r: ByteReader = new ByteReader(bytes);
  readHeader(r, KIND_DIGEST);
  const d = readDigestBody(r);
  r.done('digest');
  return d;
}

// ---------------------------------------------------------------- batches

/**
 * What an agent sends: its id, a sequence number that increases by one per batch (the collector
 * dedupes on the pair), the agent's clock at send time (the collector corrects skew with it),
 * and the window profiles.
 */
export interface Batch {
  agentId: string;
  sequence: number;
  sentAt: number;
  windows: WindowProfile[];
}

export const MAX_AGENT_ID_BYTES = 128;
export const MAX_WINDOWS_PER_BATCH = 1024;
const MAX_NAME_BYTES = 4 * 128; // feature names: 128 UTF-16 units, up to 4 UTF-8 bytes each

const enum BatchTag { AgentId = 1, Sequence = 2, SentAt = 3, Window = 4 }
const enum WindowTag { Start = 1, Length = 2, Segment = 3, Predictions = 4, Input = 5, Output = 6, Latency = 7, Events = 8 }
const enum FeatureTag { Name = 1, Kind = 2, Counts = 3, Moments = 4, Digest = 5, Classes = 6, Labels = 7 }

const BATCH_REPEATABLE: ReadonlySet<number> = new Set([BatchTag.Window]);
const WINDOW_REPEATABLE: ReadonlySet<number> = new Set([WindowTag.Input, WindowTag.Output]);
const NONE: ReadonlySet<number> = new Set();
const KINDS: readonly FeatureKind[] = ['numeric', 'classes', 'labels'];

export function encodeBatch(batch: Batch): Uint8Array<ArrayBuffer> {
  const { agentId, sequence, sentAt, windows } = batch;
  if (typeof agentId !== 'string' || agentId.length === 0 || textEncoder.encode(agentId).length > MAX_AGENT_ID_BYTES) {
    throw new CodecError(`agentId must be a non-empty string of at most ${MAX_AGENT_ID_BYTES} UTF-8 bytes`);
  }
  if (!Number.isSafeInteger(sequence) || sequence < 0) throw new CodecError(`sequence must be a non-negative integer, got ${sequence}`);
  if (!Number.isSafeInteger(sentAt) || sentAt < 0) throw new CodecError(`sentAt must be whole milliseconds since the epoch, got ${sentAt}`);
  if (windows.length > MAX_WINDOWS_PER_BATCH) throw new CodecError(`a batch holds at most ${MAX_WINDOWS_PER_BATCH} windows`);
  const w = new ByteWriter();
  writeHeader(w, KIND_BATCH);
  w.field(BatchTag.AgentId, (f) => f.bytes(textEncoder.encode(agentId)));
  w.field(BatchTag.Sequence, (f) => f.varint(sequence));
  w.field(BatchTag.SentAt, (f) => f.varint(sentAt));
  for (const win of windows) w.field(BatchTag.Window, (f) => writeWindow(f, win));
  return w.finish();
}

function writeWindow(w: ByteWriter, win: WindowProfile): void {
  w.field(WindowTag.Start, (f) => f.varint(win.start));
  w.field(WindowTag.Length, (f) => f.varint(win.length));
  const segment = Object.entries(win.segment);
  if (segment.length > 0) {
    w.field(WindowTag.Segment, (f) => {
      f.varint(segment.length);
      for (const [k, v] of segment) {
        f.string(k);
        f.string(v);
      }
    });
  }
  w.field(WindowTag.Predictions, (f) => f.varint(win.predictions));
  for (const feature of win.inputs.values()) w.field(WindowTag.Input, (f) => writeFeature(f, feature));
  for (const feature of win.outputs.values()) w.field(WindowTag.Output, (f) => writeFeature(f, feature));
  w.field(WindowTag.Latency, (f) => writeFeature(f, win.latency));
  if (win.events.size > 0) {
    w.field(WindowTag.Events, (f) => {
      f.varint(win.events.size);
      for (const [name, count] of win.events) {
        f.string(name);
        f.varint(count);
      }
    });
  }
}

function writeFeature(w: ByteWriter, p: FeatureProfile): void {
  w.field(FeatureTag.Name, (f) => f.bytes(textEncoder.encode(p.name)));
  w.field(FeatureTag.Kind, (f) => f.byte(KINDS.indexOf(p.kind)));
  w.field(FeatureTag.Counts, (f) => {
    f.varint(p.count);
    f.varint(p.missing);
    f.varint(p.nan);
    f.varint(p.posInf);
    f.varint(p.negInf);
  });
  if (p.moments !== null && p.digest !== null) {
    const m = p.moments;
    w.field(FeatureTag.Moments, (f) => {
      f.f64(m.count === 0 ? 0 : m.mean);
      f.f64(m.count === 0 ? 0 : m.m2);
      f.f64(m.count === 0 ? 0 : m.sum);
    });
    const d = p.digest;
    w.field(FeatureTag.Digest, (f) => writeDigestBody(f, d));
  }
  if (p.classes !== null) {
    const c = p.classes;
    w.field(FeatureTag.Classes, (f) => {
      f.varint(c.labels.length);
      for (const label of c.labels) f.string(label);
      for (let i = 0; i < c.counts.length; i++) f.varint(c.counts[i]);
      f.varint(c.unseen);
    });
  }
  if (p.labels !== null) {
    const t = p.labels;
    w.field(FeatureTag.Labels, (f) => {
      const entries = t.entries();
      f.varint(t.capacity);
      f.varint(entries.length);
      for (const [label, count] of entries) {
        f.string(label);
        f.varint(count);
      }
      f.varint(t.total);
    });
  }
}

export function decodeBatch(bytes: Uint8Array): Batch {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('decodeBatch() takes a Uint8Array');
  const r: ByteReader = new ByteReader(bytes);
  readHeader(r, KIND_BATCH);
  let agentId: string | undefined;
  let sequence: number | undefined;
  let sentAt: number | undefined;
  const windows: WindowProfile[] = [];
  const seenWindows = new Set<string>();
  r.fields('batch', BATCH_REPEATABLE, (tag, f) => {
    switch (tag) {
      case BatchTag.AgentId:
        agentId = f.string('agent id', MAX_AGENT_ID_BYTES, f.remaining);
        if (agentId.length === 0) f.fail('agent id is empty');
        break;
      case BatchTag.Sequence:
        sequence = f.varint('sequence');
        break;
      case BatchTag.SentAt:
        sentAt = f.varint('sent at');
        break;
      case BatchTag.Window: {
        if (windows.length >= MAX_WINDOWS_PER_BATCH) f.fail(`more than ${MAX_WINDOWS_PER_BATCH} windows in one batch`);
        const win = readWindow(f);
        const key = `${win.start}/${win.length}/${win.segmentKey}`;
        if (seenWindows.has(key)) f.fail(`window ${key} appears twice in one batch`);
        seenWindows.add(key);
        windows.push(win);
        break;
      }
      default:
        f.pos = f.end; // a newer writer's field: skip it
    }
  });
  if (agentId === undefined) r.fail('batch has no agent id');
  if (sequence === undefined) r.fail('batch has no sequence number');
  if (sentAt === undefined) r.fail('batch has no send time');
  return { agentId, sequence, sentAt, windows };
}

function readWindow(r: ByteReader): WindowProfile {
  let start: number | undefined;
  let length: number | undefined;
  let segment: Record<string, string> = {};
  let predictions = 0;
  const inputs: FeatureProfile[] = [];
  const outputs: FeatureProfile[] = [];
  let latency: FeatureProfile | undefined;
  const events = new Map<string, number>();
  r.fields('window', WINDOW_REPEATABLE, (tag, f) => {
    switch (tag) {
      case WindowTag.Start:
        start = f.varint('window start');
        break;
      case WindowTag.Length:
        length = f.varint('window length');
        break;
      case WindowTag.Segment:
        segment = readSegment(f);
        break;
      case WindowTag.Predictions:
        predictions = f.varint('predictions');
        break;
      case WindowTag.Input:
      case WindowTag.Output:
        if (inputs.length + outputs.length >= MAX_FEATURES) f.fail(`more than ${MAX_FEATURES} features in one window`);
        (tag === WindowTag.Input ? inputs : outputs).push(readFeature(f));
        break;
      case WindowTag.Latency:
        latency = readFeature(f);
        if (latency.kind !== 'numeric') f.fail('latency must be a numeric feature');
        break;
      case WindowTag.Events:
        readEvents(f, events);
        break;
      default:
        f.pos = f.end;
    }
  });
  if (start === undefined || length === undefined) r.fail('window has no start or length');
  if (latency === undefined) r.fail('window has no latency profile');
  const win = checked(r, 'invalid window', () => new WindowProfile(start!, length!, segment));
  win.predictions = predictions;
  for (const [list, map] of [[inputs, win.inputs], [outputs, win.outputs]] as const) {
    for (const feature of list) {
      if (map.has(feature.name)) r.fail(`feature ${feature.name} appears twice`);
      map.set(feature.name, feature);
    }
  }
  (win as { latency: FeatureProfile }).latency = latency;
  for (const [name, count] of events) win.events.set(name, count);
  return win;
}

function readFeature(r: ByteReader): FeatureProfile {
  let name: string | undefined;
  let kind: FeatureKind | undefined;
  let counts: number[] | undefined;
  let moments: { mean: number; m2: number; sum: number } | undefined;
  let digest: TDigest | undefined;
  let classes: ClassCounts | undefined;
  let labels: TopK | undefined;
  r.fields('feature', NONE, (tag, f) => {
    switch (tag) {
      case FeatureTag.Name:
        name = f.string('feature name', MAX_NAME_BYTES, f.remaining);
        break;
      case FeatureTag.Kind: {
        const k = f.byte('feature kind');
        if (k >= KINDS.length) f.fail(`unknown feature kind ${k}`);
        kind = KINDS[k];
        break;
      }
      case FeatureTag.Counts:
        counts = [f.varint('count'), f.varint('missing'), f.varint('NaN count'), f.varint('+Infinity count'), f.varint('-Infinity count')];
        break;
      case FeatureTag.Moments:
        moments = { mean: f.finite('mean'), m2: f.finite('M2'), sum: f.finite('sum') };
        break;
      case FeatureTag.Digest:
        digest = readDigestBody(f);
        break;
      case FeatureTag.Classes:
        classes = readClasses(f);
        break;
      case FeatureTag.Labels:
        labels = readLabels(f);
        break;
      default:
        f.pos = f.end;
    }
  });
  if (name === undefined || kind === undefined || counts === undefined) r.fail('feature needs a name, a kind and counts');
  const [count, missing, nan, posInf, negInf] = counts;
  return checked(r, `invalid feature ${name}`, () =>
    FeatureProfile.fromParts({ name: name!, kind: kind!, count, missing, nan, posInf, negInf, moments, digest, classes, labels }),
  );
}

// Field bodies read the same way by decodeBatch and scanBatch.

function readSegment(f: ByteReader): Record<string, string> {
  const n = f.varint('segment size');
  if (n > MAX_SEGMENT_LABELS) f.fail(`segment has ${n} labels, at most ${MAX_SEGMENT_LABELS} allowed`);
  const entries: Array<[string, string]> = [];
  for (let i = 0; i < n; i++) entries.push([f.string('segment name', MAX_LABEL_BYTES), f.string('segment value', MAX_LABEL_BYTES)]);
  for (let i = 1; i < n; i++) if (!(entries[i - 1][0] < entries[i][0])) f.fail('segment names must be sorted and distinct');
  return Object.fromEntries(entries);
}

function readEvents(f: ByteReader, events: Map<string, number>): void {
  const n = f.varint('event kinds');
  if (n > MAX_EVENT_KINDS) f.fail(`${n} event kinds, at most ${MAX_EVENT_KINDS} allowed`);
  for (let i = 0; i < n; i++) {
    const name = f.string('event name', MAX_LABEL_BYTES);
    if (events.has(name)) f.fail(`event ${name} appears twice`);
    events.set(name, f.varint('event count'));
  }
}

function readClasses(f: ByteReader): ClassCounts {
  const n = f.varint('class count');
  if (n === 0 || n > MAX_CLASSES) f.fail(`${n} classes, expected 1 to ${MAX_CLASSES}`);
  if (n * 2 > f.remaining) f.fail(`truncated: ${n} classes need at least ${2 * n} bytes`);
  const names: string[] = [];
  for (let i = 0; i < n; i++) names.push(f.string('class label', MAX_LABEL_BYTES));
  const c = checked(f, 'invalid classes', () => new ClassCounts(names));
  for (let i = 0; i < n; i++) c.counts[i] = f.varint('class count');
  c.unseen = f.varint('unseen class count');
  return c;
}

function readLabels(f: ByteReader): TopK {
  const capacity = f.varint('top-k capacity');
  if (capacity === 0 || capacity > MAX_TOPK_CAPACITY) f.fail(`top-k capacity ${capacity} is outside 1..${MAX_TOPK_CAPACITY}`);
  const n = f.varint('top-k size');
  if (n > capacity) f.fail(`top-k holds ${n} labels, more than its capacity ${capacity}`);
  const entries: Array<[string, number]> = [];
  for (let i = 0; i < n; i++) entries.push([f.string('label', MAX_LABEL_BYTES), f.varint('label count')]);
  const total = f.varint('top-k total');
  const t = checked(f, 'invalid top-k', () => TopK.fromEntries(capacity, entries, total));
  // Canonical order (largest count first, ties by label) keeps the encoding unique.
  const sorted = t.entries();
  if (sorted.some(([label], i) => label !== entries[i][0])) f.fail('top-k labels are not in canonical order');
  return t;
}

// ---------------------------------------------------------------- batch views (the collector's ingest path)

/**
 * A batch checked as strictly as decodeBatch checks it, but with its digests left as bytes: what
 * a collector needs to accept a batch and later merge it, without building a TDigest (and its
 * arrays) for each of its dozens of features. `scanBatch` accepts exactly the byte strings
 * decodeBatch accepts (test/sketch/scan.test.ts holds the two to that over a fuzzed corpus);
 * `mergeWindowView` folds a window of it into a WindowProfile as merging the decoded window
 * would. A view refers to the batch's bytes: they must not change while the view is in use.
 */
export interface BatchView {
  bytes: Uint8Array;
  agentId: string;
  sequence: number;
  sentAt: number;
  windows: WindowView[];
}

export interface WindowView {
  /** Mutable: a collector moves the windows of a client whose clock is off. */
  start: number;
  length: number;
  segment: Segment;
  segmentKey: string;
  predictions: number;
  inputs: FeatureView[];
  outputs: FeatureView[];
  latency: FeatureView;
  events: Map<string, number>;
}

export interface FeatureView {
  name: string;
  kind: FeatureKind;
  count: number;
  missing: number;
  nan: number;
  posInf: number;
  negInf: number;
  /** Numeric features: moments, and the digest body as a byte range of the batch. */
  mean: number;
  m2: number;
  sum: number;
  digestStart: number;
  digestEnd: number;
  compression: number;
  /**
   * Where the strict check left the digest's mean keys in the key ring (see reserveKeys), or -1:
   * the merge then decodes them from the bytes. `weightsAt`: the byte where the weights begin.
   */
  keysAt: number;
  weightsAt: number;
  /** Weight in the digest (= observed, checked), and its exact min and max (NaN when empty). */
  digestTotal: number;
  min: number;
  max: number;
  classes: ClassCounts | null;
  labels: TopK | null;
}

/** What scanDigestBody found, besides the byte range (module scratch: one scan at a time). */
const digestScan = { compression: 0, total: 0, min: NaN, max: NaN, keysAt: -1, weightsAt: -1 };

/**
 * The key ring: mean keys the strict check decoded, kept for the merge. A collector checks a
 * batch when it arrives and merges it once the batch is durable; decoding the keys' varints is
 * a third of a merge (~7–10 ns a key, a chain of dependent loads), and the check has just done
 * it. So a check asked to (`keepKeys`, when this thread will also merge) writes each digest's
 * running keys here as it sums them, and its view remembers where; the merge (readDigestParts,
 * all its checks still made) turns them into means without reading the varints again. Measured (bench:ingest, minimum of 15 rounds, six
 * alternating pairs): check + merge 218.1, 208.6, 228.4, 213.3, 207.0, 212.0 → 202.8, 206.6,
 * 212.8, 209.4, 196.8, 196.0 µs a batch (the check +12–15 µs, the merge −25–30).
 *
 * A ring, not a buffer per batch: nothing to allocate, free or hand back. Positions are
 * absolute (doubles: exact to 2^53); the keys at `at` are intact while fewer than a ring's
 * slots were handed out after them (and the ring was not replaced by a larger one), which the
 * merge checks — keys overwritten by a long backlog are decoded from the bytes again.
 *
 * It starts at 8 MiB (~250 batches of ~4,000 centroids) and doubles, up to 64 MiB, each time a
 * merge finds its keys overwritten: a saturated collector runs with its backlog of checked
 * batches waiting for their merge full (Ingestor's MAX_UNMERGED, 1,024), and keys must outlast
 * it. At full load (memory store) the distance from a check to its merge was 4.1 Mi slots at
 * the median, 7.5 Mi at p90 and 9.1 Mi at most: at 1 Mi slots half the merges decoded their
 * keys again; 8 Mi slots cover ~90% of them. Below saturation the ring stays at 8 MiB.
 */
const KEY_RING_SLOTS = 1 << 20;
const KEY_RING_MAX_SLOTS = 1 << 23;
let keyRing: Float64Array | null = null;
let keyRingSlots = KEY_RING_SLOTS;
let keyRingMaxSlots = KEY_RING_MAX_SLOTS;
/** Slots handed out so far (absolute positions), and where the current ring's began. */
let keyRingWritten = 0;
let keyRingBase = 0;
/** A merge found its keys overwritten: the next check gets a ring twice the size. */
let keyRingGrow = false;
/** Whether scanBatch keeps keys (see scanBatch's `keepKeys`). */
let keepKeysScan = false;

/** Where `c` keys may be written (absolute), or -1 when they are not to be kept. */
function reserveKeys(c: number): number {
  // A digest of more than 1/16 of the ring would crowd out a ring's worth of others.
  if (!keepKeysScan || c > keyRingSlots >>> 4) return -1;
  if (keyRingGrow) {
    keyRingGrow = false;
    keyRingSlots = Math.min(2 * keyRingSlots, keyRingMaxSlots);
    keyRing = null;
    keyRingBase = keyRingWritten; // the old ring's keys are gone with it
  }
  keyRing ??= new Float64Array(keyRingSlots);
  const index = (keyRingWritten - keyRingBase) % keyRingSlots;
  if (index + c > keyRingSlots) keyRingWritten += keyRingSlots - index; // no digest wraps
  const at = keyRingWritten;
  keyRingWritten += c;
  return at;
}

/** Whether the keys kept at `at` are still there (no later check has written over them). */
function keysIntact(at: number): boolean {
  if (at >= keyRingBase && keyRingWritten - at <= keyRingSlots) return true;
  if (keyRingSlots < keyRingMaxSlots) keyRingGrow = true;
  return false;
}

/** @internal For tests: an empty ring of `slots` that may grow to `maxSlots`, and its size. */
export function setKeyRingSlots(slots: number = KEY_RING_SLOTS, maxSlots: number = slots === KEY_RING_SLOTS ? KEY_RING_MAX_SLOTS : slots): void {
  keyRingSlots = slots;
  keyRingMaxSlots = maxSlots;
  keyRing = null;
  keyRingWritten = 0;
  keyRingBase = 0;
  keyRingGrow = false;
}

/** @internal For tests. */
export function keyRingSize(): number {
  return keyRingSlots;
}

/**
 * Checks a digest body exactly as readDigestParts + TDigest.fromState would, without turning a
 * single mean into a float: the checks on grid means are on their integer keys (deltas are
 * non-negative by construction; the last key must not pass the max's; a pure end centroid must
 * sit on the min's or max's key), and keys between the min's and the max's always decode to
 * finite, ordered means.
 */
function scanDigestBody(r: ByteReader): void {
  const compression = r.varint('digest compression');
  if (compression < 10 || compression > 10_000) r.fail(`digest compression ${compression} is outside 10..10000`);
  const c = r.varint('digest centroid count');
  digestScan.compression = compression;
  digestScan.keysAt = -1;
  if (c === 0) {
    digestScan.total = 0;
    digestScan.min = NaN;
    digestScan.max = NaN;
    return;
  }
  if (c > r.remaining) r.fail(`digest claims ${c} centroids but only ${r.remaining} bytes follow`);
  const p = r.byte('digest mean precision');
  const min = r.finite('digest min');
  const max = r.finite('digest max');
  if (min > max) r.fail(`digest min ${min} is above max ${max}`);
  const expected = meanPrecision(min, max);
  if (p !== expected) r.fail(`digest mean precision ${p} is not the ${expected} its min and max call for`);
  let firstKey = 0;
  let lastKey = 0;
  let k = 0;
  let k0 = 0;
  if (p === RAW_FLOAT64) {
    if (c * 8 > r.remaining) r.fail(`truncated: ${c} float64 means need ${c * 8} bytes`);
    let first = 0;
    let prev = 0;
    for (let i = 0; i < c; i++) {
      const m = r.finite('digest mean');
      if (i > 0 && m < prev) r.fail(`digest mean ${i} is below the one before it`);
      if (i === 0) first = m;
      prev = m;
    }
    if (first < min || prev > max) r.fail('digest means lie outside [min, max]');
  } else {
    firstKey = meanKey(min, p);
    lastKey = meanKey(max, p);
    const at = reserveKeys(c);
    if (at < 0) {
      k = scanKeys(r, firstKey, c);
    } else {
      const index = (at - keyRingBase) % keyRingSlots;
      k = readKeys(r, keyRing!, index, c, firstKey);
      scanFirstKey = keyRing![index];
      digestScan.keysAt = at;
      digestScan.weightsAt = r.pos;
    }
    k0 = scanFirstKey;
    if (k > lastKey) r.fail('digest means go above the max');
  }
  // Weights, as readWeights reads them; the purity of the two end centroids, as readPurity.
  let i = 0;
  let total = 0;
  let lastWasRun = false;
  let heavy = 0;
  let firstIsOne = false;
  let lastIsOne = false;
  while (i < c) {
    const t = r.varint('digest weight');
    if (t % 2 === 1) {
      const run = (t + 1) / 2;
      if (lastWasRun) r.fail('digest weights: two runs of ones in a row (not canonical)');
      if (run > c - i) r.fail(`digest weights: a run of ${run} ones overruns the ${c} centroids`);
      if (i === 0) firstIsOne = true;
      i += run;
      total += run;
      if (i === c) lastIsOne = true;
      lastWasRun = true;
    } else {
      i++;
      total += t / 2 + 2;
      heavy++;
      lastWasRun = false;
    }
  }
  if (!(total <= Number.MAX_SAFE_INTEGER)) r.fail(`digest total weight ${total} is beyond 2^53`);
  let firstPure = true;
  let lastPure = true;
  if (heavy > 0) {
    // One bit per centroid of weight > 1, eight to a byte; padding bits zero.
    let acc = 0;
    for (let b = 0; b < heavy; b += 8) {
      acc = r.byte('digest purity bits');
      if (b === 0 && !firstIsOne) firstPure = (acc & 1) === 1;
    }
    const bits = ((heavy - 1) % 8) + 1;
    if (!lastIsOne) lastPure = ((acc >> (bits - 1)) & 1) === 1;
    if (bits < 8 && acc >> bits !== 0) r.fail('digest purity padding bits are not zero');
  }
  if (p !== RAW_FLOAT64) {
    if (firstPure && k0 !== firstKey) r.fail('digest: a pure first centroid must sit at the min');
    if (lastPure && k !== lastKey) r.fail('digest: a pure last centroid must sit at the max');
  }
  digestScan.total = total;
  digestScan.min = min;
  digestScan.max = max;
}

let scanFirstKey = 0;

/**
 * Whether scanBatch is reading bytes it has checked before (`trusted`): digests are then only
 * located — their header read, the keys and weights skipped — and their total taken from the
 * feature's counts, which the first scan checked equal. Whatever later decodes such a digest
 * (mergeDigestBody) still checks it in full.
 */
let trustedScan = false;

/** The header of a digest body (compression, min, max), the rest skipped: see trustedScan. */
function peekDigestBody(r: ByteReader): void {
  digestScan.keysAt = -1;
  digestScan.compression = r.varint('digest compression');
  const c = r.varint('digest centroid count');
  digestScan.total = 0;
  digestScan.min = NaN;
  digestScan.max = NaN;
  if (c > 0) {
    r.byte('digest mean precision');
    digestScan.min = r.finite('digest min');
    digestScan.max = r.finite('digest max');
  }
  r.pos = r.end;
}

/** Sums `c` key deltas from `from`; returns the last key (the first one in scanFirstKey). */
function scanKeys(r: ByteReader, from: number, c: number): number {
  let k = from + r.varint('digest mean delta');
  scanFirstKey = k;
  for (let i = 1; i < c; i++) k += r.varint('digest mean delta');
  return k;
}

/**
 * What scanFeature reads its fields with, reused from feature to feature (a feature's fields hold
 * no features): a reader per field, a closure per feature and its captured variables were most
 * of what a scan allocated — some 30 KB a batch, much of it kept past a scavenge while the batch
 * waited for its commit, which is what brought the collector's major GCs.
 */
const FEATURE_RECORD = fieldRecord('feature', NONE);
const featureField = new ByteReader(new Uint8Array(0));
const featureTags = new FieldTags();

function scanFeature(r: ByteReader): FeatureView {
  let name: string | undefined;
  let kind: FeatureKind | undefined;
  let counts = false;
  let count = 0;
  let missing = 0;
  let nan = 0;
  let posInf = 0;
  let negInf = 0;
  let moments = false;
  let mean = 0;
  let m2 = 0;
  let sum = 0;
  let digestStart = -1;
  let digestEnd = -1;
  let keysAt = -1;
  let weightsAt = -1;
  let compression = 0;
  let digestTotal = 0;
  let min = NaN;
  let max = NaN;
  let classes: ClassCounts | null = null;
  let labels: TopK | null = null;
  const f = featureField;
  const seen = featureTags.clear();
  while (r.remaining > 0) {
    const tag = r.nextField(FEATURE_RECORD, f, seen);
    switch (tag) {
      case FeatureTag.Name:
        name = f.string('feature name', MAX_NAME_BYTES, f.remaining);
        break;
      case FeatureTag.Kind: {
        const k = f.byte('feature kind');
        if (k >= KINDS.length) f.fail(`unknown feature kind ${k}`);
        kind = KINDS[k];
        break;
      }
      case FeatureTag.Counts:
        count = f.varint('count');
        missing = f.varint('missing');
        nan = f.varint('NaN count');
        posInf = f.varint('+Infinity count');
        negInf = f.varint('-Infinity count');
        counts = true;
        break;
      case FeatureTag.Moments:
        mean = f.finite('mean');
        m2 = f.finite('M2');
        sum = f.finite('sum');
        moments = true;
        break;
      case FeatureTag.Digest:
        digestStart = f.pos;
        if (trustedScan) peekDigestBody(f);
        else scanDigestBody(f);
        digestEnd = f.pos;
        keysAt = digestScan.keysAt;
        weightsAt = keysAt >= 0 ? digestScan.weightsAt : -1;
        compression = digestScan.compression;
        digestTotal = digestScan.total;
        min = digestScan.min;
        max = digestScan.max;
        break;
      case FeatureTag.Classes:
        classes = readClasses(f);
        break;
      case FeatureTag.Labels:
        labels = readLabels(f);
        break;
      default:
        f.pos = f.end;
    }
    r.endField(FEATURE_RECORD, tag, f);
  }
  if (name === undefined || kind === undefined || !counts) r.fail('feature needs a name, a kind and counts');
  if (trustedScan && digestStart >= 0) digestTotal = count - missing - nan - posInf - negInf;
  // What FeatureProfile's constructor and fromParts check, in the same arithmetic.
  if (name.length === 0 || name.length > MAX_FEATURE_NAME) r.fail(`invalid feature ${name}: a feature name must be a string of 1 to ${MAX_FEATURE_NAME} characters`);
  if (kind === 'classes' && classes === null) badFeature(r, name, "kind 'classes' needs the class labels");
  const observed = count - missing - nan - posInf - negInf;
  if (observed < 0) badFeature(r, name, `missing, NaN and infinite counts exceed the count ${count}`);
  if (kind === 'numeric') {
    if (digestStart < 0 || !moments) badFeature(r, name, 'numeric without digest or moments');
    if (digestTotal !== observed) badFeature(r, name, `digest holds ${digestTotal} values, counts say ${observed}`);
    if (!(m2 >= 0 && Number.isFinite(m2))) badFeature(r, name, 'moments must be finite with M2 >= 0');
    if (observed === 0 && (mean !== 0 || m2 !== 0 || sum !== 0)) badFeature(r, name, 'moments of no values must be zero');
  } else if (kind === 'classes') {
    if (classes!.total !== observed) badFeature(r, name, `class counts total ${classes!.total}, counts say ${observed}`);
  } else {
    const t = labels as TopK | null;
    if (t === null) badFeature(r, name, 'no label counts');
    if (t!.total !== observed) badFeature(r, name, `label counts total ${t!.total}, counts say ${observed}`);
  }
  if (kind !== 'numeric') {
    // Read and checked, but a categorical feature keeps no moments or digest.
    digestStart = -1;
    digestEnd = -1;
    keysAt = -1;
  }
  return {
    name, kind, count, missing, nan, posInf, negInf, mean, m2, sum, digestStart, digestEnd, keysAt, weightsAt, compression, digestTotal, min, max,
    classes: kind === 'classes' ? classes : null,
    labels: kind === 'labels' ? labels : null,
  };
}

function badFeature(r: ByteReader, name: string, why: string): never {
  return r.fail(`invalid feature ${name}: feature ${name}: ${why}`);
}

function scanWindow(r: ByteReader): WindowView {
  let start: number | undefined;
  let length: number | undefined;
  let segment: Record<string, string> = {};
  let predictions = 0;
  const inputs: FeatureView[] = [];
  const outputs: FeatureView[] = [];
  let latency: FeatureView | undefined;
  const events = new Map<string, number>();
  r.fields('window', WINDOW_REPEATABLE, (tag, f) => {
    switch (tag) {
      case WindowTag.Start:
        start = f.varint('window start');
        break;
      case WindowTag.Length:
        length = f.varint('window length');
        break;
      case WindowTag.Segment:
        segment = readSegment(f);
        break;
      case WindowTag.Predictions:
        predictions = f.varint('predictions');
        break;
      case WindowTag.Input:
      case WindowTag.Output:
        if (inputs.length + outputs.length >= MAX_FEATURES) f.fail(`more than ${MAX_FEATURES} features in one window`);
        (tag === WindowTag.Input ? inputs : outputs).push(scanFeature(f));
        break;
      case WindowTag.Latency:
        latency = scanFeature(f);
        if (latency.kind !== 'numeric') f.fail('latency must be a numeric feature');
        break;
      case WindowTag.Events:
        readEvents(f, events);
        break;
      default:
        f.pos = f.end;
    }
  });
  if (start === undefined || length === undefined) r.fail('window has no start or length');
  if (latency === undefined) r.fail('window has no latency profile');
  // The window's own checks (aligned start, length, segment labels) and its canonical segment.
  const frame = checked(r, 'invalid window', () => new WindowProfile(start!, length!, segment));
  for (const list of [inputs, outputs]) {
    if (list.length < 2) continue;
    const names = new Set<string>();
    for (const feature of list) {
      if (names.has(feature.name)) r.fail(`feature ${feature.name} appears twice`);
      names.add(feature.name);
    }
  }
  return { start, length, segment: frame.segment, segmentKey: frame.segmentKey, predictions, inputs, outputs, latency, events };
}

export interface ScanOptions {
  /**
   * The bytes passed this check before (the collector's fold worker re-reads checked batches):
   * digests are only located, not checked — mergeDigestBody checks each one as it decodes it.
   */
  trusted?: boolean;
  /**
   * This thread will merge the view (mergeWindowView), soon: keep the digests' decoded mean
   * keys for it in the key ring. Without it, or once the ring has moved on, the merge decodes
   * them from the bytes; the result is the same either way.
   */
  keepKeys?: boolean;
}

/**
 * Checks a batch as decodeBatch does and returns its view, or throws CodecError. The message
 * may differ from decodeBatch's; readBatchView gives decodeBatch's own.
 */
export function scanBatch(bytes: Uint8Array, { trusted = false, keepKeys = false }: ScanOptions = {}): BatchView {
  if (!(bytes instanceof Uint8Array)) throw new CodecError('scanBatch() takes a Uint8Array');
  trustedScan = trusted;
  keepKeysScan = keepKeys; // a trusted scan reads no keys (peekDigestBody), so keeps none
  try {
    return scanBatchBody(bytes);
  } finally {
    trustedScan = false;
    keepKeysScan = false;
  }
}

function scanBatchBody(bytes: Uint8Array): BatchView {
  const r: ByteReader = new ByteReader(bytes);
  readHeader(r, KIND_BATCH);
  let agentId: string | undefined;
  let sequence: number | undefined;
  let sentAt: number | undefined;
  const windows: WindowView[] = [];
  let seenWindows: Set<string> | null = null;
  r.fields('batch', BATCH_REPEATABLE, (tag, f) => {
    switch (tag) {
      case BatchTag.AgentId:
        agentId = f.string('agent id', MAX_AGENT_ID_BYTES, f.remaining);
        if (agentId.length === 0) f.fail('agent id is empty');
        break;
      case BatchTag.Sequence:
        sequence = f.varint('sequence');
        break;
      case BatchTag.SentAt:
        sentAt = f.varint('sent at');
        break;
      case BatchTag.Window: {
        if (windows.length >= MAX_WINDOWS_PER_BATCH) f.fail(`more than ${MAX_WINDOWS_PER_BATCH} windows in one batch`);
        const win = scanWindow(f);
        const key = `${win.start}/${win.length}/${win.segmentKey}`;
        seenWindows ??= new Set();
        if (seenWindows.has(key)) f.fail(`window ${key} appears twice in one batch`);
        seenWindows.add(key);
        windows.push(win);
        break;
      }
      default:
        f.pos = f.end;
    }
  });
  if (agentId === undefined) r.fail('batch has no agent id');
  if (sequence === undefined) r.fail('batch has no sequence number');
  if (sentAt === undefined) r.fail('batch has no send time');
  return { bytes, agentId, sequence, sentAt, windows };
}

/**
 * scanBatch, with decodeBatch's verdict and message on a rejection: a rejected batch is decoded
 * in full (rare, and what every batch cost before), so the sender reads the codec's own words.
 * Should the two ever disagree, decodeBatch's acceptance wins: the batch is re-encoded from
 * its decoded form and that is scanned.
 */
export function readBatchView(bytes: Uint8Array, options: Pick<ScanOptions, 'keepKeys'> = {}): BatchView {
  try {
    return scanBatch(bytes, options);
  } catch (e) {
    if (!(e instanceof CodecError)) throw e;
    const batch = decodeBatch(bytes); // throws the codec's own CodecError
    return scanBatch(encodeBatch(batch), options);
  }
}

/** Whether every feature of `view` can merge into `into` (same kinds, classes, capacities). */
export function viewCompatible(into: WindowProfile, view: WindowView): boolean {
  if (view.latency.name !== into.latency.name) return false;
  for (const [map, list] of [[into.inputs, view.inputs], [into.outputs, view.outputs]] as const) {
    for (const fv of list) {
      const mine = map.get(fv.name);
      if (mine === undefined) continue;
      if (mine.kind !== fv.kind) return false;
      if (mine.classes !== null && !sameLabels(mine.classes.labels, fv.classes!.labels)) return false;
      if (mine.labels !== null && mine.labels.capacity !== fv.labels!.capacity) return false;
    }
  }
  return true;
}

function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Folds a window of a scanned batch into `into` (same window and segment, viewCompatible), as
 * `into.merge(decoded window)` would: digests straight from the batch's bytes. The view and its
 * bytes are only read.
 */
export function mergeWindowView(
  into: WindowProfile,
  view: WindowView,
  bytes: Uint8Array,
  /** Makes the empty profile for a feature `into` lacks (default: a new FeatureProfile). */
  make: (fv: FeatureView) => FeatureProfile = newFeature,
): WindowProfile {
  if (into.start !== view.start || into.length !== view.length || into.segmentKey !== view.segmentKey) {
    throw new CodecError(`cannot merge window ${view.start}+${view.length} ${view.segmentKey} into ${into.start}+${into.length} ${into.segmentKey}`);
  }
  if (!viewCompatible(into, view)) throw new CodecError('a feature differs in kind or classes between the two windows');
  into.predictions += view.predictions;
  for (const fv of view.inputs) mergeFeatureView(featureFor(into.inputs, fv, make), fv, bytes);
  for (const fv of view.outputs) mergeFeatureView(featureFor(into.outputs, fv, make), fv, bytes);
  mergeFeatureView(into.latency, view.latency, bytes);
  for (const [name, c] of view.events) into.events.set(name, (into.events.get(name) ?? 0) + c);
  return into;
}

function featureFor(map: Map<string, FeatureProfile>, fv: FeatureView, make: (fv: FeatureView) => FeatureProfile): FeatureProfile {
  let f = map.get(fv.name);
  if (f === undefined) {
    f = make(fv);
    map.set(fv.name, f);
  }
  return f;
}

/**
 * An empty window for `view` to merge into: same start, length and segment, and a latency
 * profile shaped after the view's (as the first decoded window of a merge would have had).
 */
export function emptyWindowFor(view: WindowView, make: (fv: FeatureView) => FeatureProfile = newFeature): WindowProfile {
  const window = new WindowProfile(view.start, view.length, { ...view.segment });
  (window as { latency: FeatureProfile }).latency = make(view.latency);
  return window;
}

/** An empty profile of the feature a view describes (name, kind, compression, classes, capacity). */
export function newFeature(fv: FeatureView): FeatureProfile {
  return new FeatureProfile(fv.name, fv.kind, {
    compression: fv.kind === 'numeric' ? fv.compression : undefined,
    classes: fv.classes?.labels,
    capacity: fv.labels?.capacity,
  });
}

function mergeFeatureView(f: FeatureProfile, fv: FeatureView, bytes: Uint8Array): void {
  f.count += fv.count;
  f.missing += fv.missing;
  f.nan += fv.nan;
  f.posInf += fv.posInf;
  f.negInf += fv.negInf;
  if (f.digest !== null) {
    const observed = fv.digestTotal;
    f.moments!.mergeParts(observed, fv.mean, fv.m2, fv.sum, observed ? fv.min : Infinity, observed ? fv.max : -Infinity);
    if (observed > 0) {
      const kept = fv.keysAt >= 0 && keysIntact(fv.keysAt);
      mergeDigestBody(f.digest, bytes, fv.digestStart, fv.digestEnd, kept ? fv.keysAt : -1, fv.weightsAt);
    }
  }
  if (f.classes !== null) f.classes.merge(fv.classes!);
  if (f.labels !== null) f.labels.merge(fv.labels!);
}

/**
 * mergeEncodedDigest for a digest body inside a larger message (no header); `keptAt` and
 * `weightsAt` as readDigestParts takes them.
 */
export function mergeDigestBody(into: TDigest, bytes: Uint8Array, start: number, end: number, keptAt = -1, weightsAt = -1): TDigest {
  const r = scratchReader.reset(bytes, start, end);
  const parts = readDigestParts(r, true, scratchParts, keptAt, weightsAt);
  r.done('digest');
  if (parts.total + into.count > Number.MAX_SAFE_INTEGER) r.fail('merged total weight would pass 2^53');
  into.appendDecoded(parts.means, parts.weights, parts.pure, parts.length, parts.min, parts.max, parts.total);
  return into;
}
