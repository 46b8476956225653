import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CodecError,
  FeatureProfile,
  TDigest,
  WindowProfile,
  decodeBatch,
  encodeBatch,
  type Batch,
} from '../../src/sketch/index.js';
import { ByteWriter } from '../../src/sketch/codec.js';
import { rng, sampleBatch } from '../helpers.js';

/** The parts of a window that the wire must carry, as plain data for deep comparison. */
function describeWindow(w: WindowProfile): unknown {
  const feature = (f: FeatureProfile) => ({
    name: f.name,
    kind: f.kind,
    counts: [f.count, f.missing, f.nan, f.posInf, f.negInf],
    moments: f.moments && f.moments.count > 0 ? [f.moments.count, f.moments.mean, f.moments.m2, f.moments.sum, f.moments.min, f.moments.max] : null,
    digest: f.digest ? [f.digest.count, f.digest.quantile(0), f.digest.quantile(0.5), f.digest.quantile(1)] : null,
    classes: f.classes ? [f.classes.labels, Array.from(f.classes.counts), f.classes.unseen] : null,
    labels: f.labels ? [f.labels.capacity, f.labels.entries(), f.labels.total] : null,
  });
  return {
    start: w.start,
    length: w.length,
    segment: w.segment,
    predictions: w.predictions,
    inputs: [...w.inputs.values()].map(feature),
    outputs: [...w.outputs.values()].map(feature),
    latency: feature(w.latency),
    events: [...w.events],
  };
}

function expectCodecError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(() => decodeBatch(bytes), (e: unknown) => e instanceof CodecError && pattern.test(e.message), `expected CodecError ${pattern}`);
}

describe('batch codec', () => {
  it('round-trips every kind of feature, byte for byte', () => {
    const batch = sampleBatch(3);
    const bytes = encodeBatch(batch);
    const back = decodeBatch(bytes);
    assert.equal(back.agentId, batch.agentId);
    assert.equal(back.sequence, batch.sequence);
    assert.equal(back.sentAt, batch.sentAt);
    assert.equal(back.windows.length, 2);
    assert.deepEqual(encodeBatch(back), bytes, 'encode(decode(b)) = b');
    for (let i = 0; i < 2; i++) {
      const a = describeWindow(batch.windows[i]) as { inputs: unknown[] };
      const b = describeWindow(back.windows[i]) as { inputs: unknown[] };
      // Digest quantiles are compared to the encoding's precision below; the rest exactly.
      const strip = (x: unknown) => JSON.parse(JSON.stringify(x, (k, v) => (k === 'digest' ? null : v)));
      assert.deepEqual(strip(b), strip(a));
    }
    const f = back.windows[0].inputs.get('precipitation')!;
    assert.ok(f.missing > 0 && f.nan > 0, 'missing and NaN counts travel');
    assert.ok(back.windows[0].inputs.get('wind')!.posInf > 0, 'infinite counts travel');
    assert.equal(back.windows[0].outputs.get('class')!.classes!.unseen, batch.windows[0].outputs.get('class')!.classes!.unseen);
  });

  it('keeps a 300-prediction window of 11 features small', () => {
    const bytes = encodeBatch(sampleBatch(1, 1));
    assert.ok(bytes.length < 6_000, `${bytes.length} bytes`);
  });

  it('skips fields it does not know, at every level', () => {
    const batch: Batch = { agentId: 'a', sequence: 1, sentAt: 2, windows: [] };
    const base = encodeBatch(batch);
    const w = new ByteWriter();
    w.bytes(base);
    w.field(99, (f) => f.string('from a newer agent'));
    const back = decodeBatch(w.finish());
    assert.deepEqual(encodeBatch(back), base);
  });

  it('rejects wrong magic, kind, version, truncation and trailing garbage with a precise message', () => {
    const bytes = encodeBatch(sampleBatch(5, 1));
    expectCodecError(new Uint8Array(0), /too short/);
    expectCodecError(Uint8Array.of(0x50, 0x4b, 3, 4, 0), /wrong magic/);
    expectCodecError(Uint8Array.of(0x53, 0x57, 0x44, 1), /expected a B message/);
    expectCodecError(Uint8Array.of(0x53, 0x57, 0x42, 9), /format version 9 is not supported/);
    for (const cut of [5, 17, 100, bytes.length - 1]) expectCodecError(bytes.subarray(0, cut), /truncated|needs|left|unread|no /);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    longer[bytes.length] = 0x07; // a tag with no length
    expectCodecError(longer, /truncated/);
  });

  it('rejects missing required fields and duplicates', () => {
    const w = new ByteWriter();
    w.bytes(encodeBatch({ agentId: 'a', sequence: 1, sentAt: 2, windows: [] }).subarray(0, 4));
    w.field(1, (f) => f.bytes(new TextEncoder().encode('a')));
    expectCodecError(w.finish(), /no sequence number/);
    w.field(2, (f) => f.varint(1));
    w.field(2, (f) => f.varint(2));
    expectCodecError(w.finish(), /field 2 appears twice/);
  });

  it('rejects a digest whose centroids are out of order, beyond the max, or more than the input holds', () => {
    /** A digest message written field by field, to say things our encoder never would. */
    const digest = (body: (w: ByteWriter) => void) => {
      const w = new ByteWriter();
      w.bytes(Uint8Array.of(0x53, 0x57, 0x44, 1));
      body(w);
      return w.finish();
    };
    const raw = 0xff; // raw float64 means: chosen for a spread tiny next to the magnitude
    const unsorted = digest((w) => {
      w.varint(100);
      w.varint(2);
      w.byte(raw);
      w.f64(1e10);
      w.f64(1e10 + 1e-3);
      w.f64(1e10 + 5e-4);
      w.f64(1e10 + 1e-4);
      w.varint(2 * (3 - 2)); // weight 3
      w.varint(2 * (3 - 2));
      w.byte(0);
    });
    assert.throws(() => TDigest.decode(unsorted), /digest mean 1 is below the one before it/);
    const beyondMax = digest((w) => {
      w.varint(100);
      w.varint(2);
      w.byte(16);
      w.f64(0);
      w.f64(1);
      w.varint(0);
      w.varint(1e12); // far past the max's key
      w.varint(3); // a run of two ones
    });
    assert.throws(() => TDigest.decode(beyondMax), /digest means go above the max/);
    const claims = digest((w) => {
      w.varint(100);
      w.varint(127);
    });
    assert.throws(() => TDigest.decode(claims), /claims 127 centroids but only 0 bytes follow/);
    const good = new TDigest().addAll([1, 2, 3, 4]).encode();
    const nanMin = good.slice();
    new DataView(nanMin.buffer).setFloat64(7, NaN, true);
    assert.throws(() => TDigest.decode(nanMin), /digest min is NaN/);
    const wrongPrecision = good.slice();
    wrongPrecision[6] = 30;
    assert.throws(() => TDigest.decode(wrongPrecision), /precision 30 is not the 17/);
  });

  it('refuses to encode what it could not decode', () => {
    assert.throws(() => encodeBatch({ agentId: '', sequence: 1, sentAt: 1, windows: [] }), /agentId/);
    assert.throws(() => encodeBatch({ agentId: 'x'.repeat(200), sequence: 1, sentAt: 1, windows: [] }), /agentId/);
    assert.throws(() => encodeBatch({ agentId: 'a', sequence: -1, sentAt: 1, windows: [] }), /sequence/);
    assert.throws(() => encodeBatch({ agentId: 'a', sequence: 1, sentAt: 1.5, windows: [] }), /sentAt/);
  });
});

describe('codec fuzzing (fixed seed)', () => {
  /** Decodes and, when that succeeds, checks the result is a valid object that re-encodes. */
  function probe(bytes: Uint8Array, decode: (b: Uint8Array) => unknown, encode: (x: never) => Uint8Array): 'ok' | 'rejected' {
    let value: unknown;
    try {
      value = decode(bytes);
    } catch (e) {
      if (e instanceof CodecError) return 'rejected';
      throw new Error(`decode threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message} for ${Buffer.from(bytes).toString('hex')}`);
    }
    checkValid(value);
    // What decodes re-encodes to a canonical form that is a fixed point of decode ∘ encode.
    const again = encode(value as never);
    assert.deepEqual(encode(decode(again) as never), again);
    return 'ok';
  }

  function checkValid(value: unknown): void {
    const digests: TDigest[] = [];
    if (value instanceof TDigest) digests.push(value);
    else {
      for (const w of (value as Batch).windows) {
        assert.ok(Number.isSafeInteger(w.predictions) && w.predictions >= 0);
        for (const f of [...w.inputs.values(), ...w.outputs.values(), w.latency]) {
          for (const c of [f.count, f.missing, f.nan, f.posInf, f.negInf]) assert.ok(Number.isSafeInteger(c) && c >= 0);
          assert.ok(f.observed >= 0);
          if (f.digest) digests.push(f.digest);
        }
      }
    }
    for (const d of digests) {
      const s = d.toState();
      for (let i = 0; i < s.means.length; i++) {
        assert.ok(Number.isFinite(s.means[i]));
        assert.ok(i === 0 || s.means[i] >= s.means[i - 1], 'sorted');
        assert.ok(Number.isInteger(s.weights[i]) && s.weights[i] >= 1, 'positive integer weights');
      }
      assert.ok(Number.isSafeInteger(d.count));
      if (d.count > 0) assert.ok(Number.isFinite(d.quantile(0.5)));
    }
  }

  function mutate(bytes: Uint8Array, r: () => number): Uint8Array {
    const kind = Math.floor(r() * 5);
    if (kind === 0) return bytes.subarray(0, Math.floor(r() * bytes.length)); // truncate
    const out = bytes.slice();
    const flips = 1 + Math.floor(r() * 4);
    for (let i = 0; i < flips; i++) {
      const at = Math.floor(r() * out.length);
      if (kind === 1) out[at] ^= 1 << Math.floor(r() * 8); // bit flip
      else if (kind === 2) out[at] = Math.floor(r() * 256); // random byte
      else if (kind === 3) out[at] = [0x00, 0x7f, 0x80, 0xff][Math.floor(r() * 4)]; // varint edges
      else out.copyWithin(at, Math.floor(r() * out.length)); // shifted tail
    }
    return out;
  }

  it('decodes 100,000+ mutated, truncated and random batches and digests to valid objects or CodecError', () => {
    const r = rng(20261127);
    const batches = [sampleBatch(11, 1), sampleBatch(12, 2)].map(encodeBatch);
    const digests = [
      new TDigest().addAll([1, 2, 3]),
      new TDigest().addAll(Array.from({ length: 5000 }, () => Math.exp(3 * r()) - 5)),
      new TDigest().addAll(Array.from({ length: 2000 }, () => Math.floor(r() * 6))),
      new TDigest().addAll([1e300, -1e300, 5e-324]),
    ].map((d) => d.encode());
    const tally = { ok: 0, rejected: 0 };
    const started = Date.now();
    for (let i = 0; i < 60_000; i++) tally[probe(mutate(batches[i % 2], r), decodeBatch, encodeBatch)]++;
    for (let i = 0; i < 40_000; i++) {
      tally[probe(mutate(digests[i % digests.length], r), TDigest.decode, (d: TDigest) => d.encode())]++;
    }
    for (let i = 0; i < 5_000; i++) {
      const random = Uint8Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256));
      if (i % 2 === 0 && random.length >= 4) random.set([0x53, 0x57, i % 4 === 0 ? 0x42 : 0x44, 1]);
      const decode = random[2] === 0x44 ? TDigest.decode : decodeBatch;
      tally[probe(random, decode, decode === decodeBatch ? encodeBatch : (d: TDigest) => d.encode())]++;
    }
    assert.equal(tally.ok + tally.rejected, 105_000);
    assert.ok(tally.rejected > 50_000, `most mutations are caught (${tally.rejected})`);
    assert.ok(tally.ok > 1_000, `some mutations still decode to valid objects (${tally.ok})`);
    assert.ok(Date.now() - started < 120_000, 'no input makes decoding hang');
  });
});
