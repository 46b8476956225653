import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CodecError, decodeBatch, encodeBatch, TDigest, WindowProfile, type Batch } from '../../src/sketch/index.js';
import { ByteWriter, mergeWindowView, keyRingSize, readBatchView, scanBatch, setKeyRingSlots, viewCompatible, type BatchView, type FeatureView, type ScanOptions } from '../../src/sketch/codec.js';
import { rng, sampleBatch } from '../helpers.js';

/**
 * scanBatch (the collector's validate-only path) against decodeBatch (the full decoder): the same
 * verdict on every byte string, and a window merged from a view equal to one merged from the
 * decoded window.
 */

type Verdict = { ok: true } | { ok: false; message: string };

function verdict(f: () => unknown): Verdict {
  try {
    f();
    return { ok: true };
  } catch (e) {
    if (e instanceof CodecError) return { ok: false, message: e.message };
    throw new Error(`threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  }
}

/** Everything a merged window says, digests by their exact state. */
function describeWindow(w: WindowProfile): unknown {
  const feature = (f: WindowProfile['latency']) => ({
    name: f.name,
    kind: f.kind,
    counts: [f.count, f.missing, f.nan, f.posInf, f.negInf],
    moments: f.moments ? [f.moments.count, f.moments.mean, f.moments.m2, f.moments.sum, f.moments.min, f.moments.max] : null,
    digest: f.digest ? f.digest.toState() : null,
    classes: f.classes ? [f.classes.labels, Array.from(f.classes.counts), f.classes.unseen] : null,
    labels: f.labels ? [f.labels.capacity, f.labels.entries(), f.labels.total] : null,
  });
  return {
    start: w.start,
    length: w.length,
    segment: w.segment,
    predictions: w.predictions,
    inputs: [...w.inputs.values()].map(feature).sort((a, b) => (a.name < b.name ? -1 : 1)),
    outputs: [...w.outputs.values()].map(feature).sort((a, b) => (a.name < b.name ? -1 : 1)),
    latency: feature(w.latency),
    events: [...w.events].sort(),
  };
}

/** A window whose digests take every path of the codec: grid and raw float64 means, ties, constants, one value, none. */
function edgeWindow(seed: number, start: number): WindowProfile {
  const r = rng(seed);
  const w = new WindowProfile(start, 300_000, { model: 'edge' });
  for (let i = 0; i < 400; i++) {
    w.predictions++;
    w.input('ties').add(Math.floor(r() * 6));
    w.input('constant').add(42.5);
    w.input('narrow').add(1e10 + r() * 1e-3); // raw float64 means
    w.input('wide').add((r() < 0.5 ? -1 : 1) * Math.exp(20 * r()));
    w.input('tail_ties').add(r() < 0.3 ? -1 : r() < 0.5 ? 3 : r());
    w.input('missing_all').add(null);
    w.latency.add(r());
  }
  w.input('one').add(-7.25);
  w.output('flag', 'classes', { classes: ['no', 'yes'] }).addLabel(1);
  return w;
}

function corpus(): Uint8Array[] {
  const start = 1_700_000_100_000 - (1_700_000_100_000 % 300_000);
  const edge: Batch = { agentId: 'edge', sequence: 3, sentAt: 1_700_000_400_000, windows: [edgeWindow(1, start), edgeWindow(2, start + 300_000)] };
  return [sampleBatch(11, 1), sampleBatch(12, 2), edge].map(encodeBatch);
}

function mutate(bytes: Uint8Array, r: () => number): Uint8Array {
  const kind = Math.floor(r() * 5);
  if (kind === 0) return bytes.subarray(0, Math.floor(r() * bytes.length));
  const out = bytes.slice();
  const flips = 1 + Math.floor(r() * 4);
  for (let i = 0; i < flips; i++) {
    const at = Math.floor(r() * out.length);
    if (kind === 1) out[at] ^= 1 << Math.floor(r() * 8);
    else if (kind === 2) out[at] = Math.floor(r() * 256);
    else if (kind === 3) out[at] = [0x00, 0x7f, 0x80, 0xff][Math.floor(r() * 4)];
    else out.copyWithin(at, Math.floor(r() * out.length));
  }
  return out;
}

function mergeBoth(bytes: Uint8Array, options: ScanOptions = {}): [unknown[], unknown[]] {
  const decoded = decodeBatch(bytes).windows.map((w) => describeWindow(w.emptyLike().merge(w)));
  const view = scanBatch(bytes, options);
  return [decoded, mergeView(view)];
}

function mergeView(view: BatchView): unknown[] {
  return view.windows.map((w) => describeWindow(mergeWindowView(new WindowProfile(w.start, w.length, { ...w.segment }), w, view.bytes)));
}

/** The numeric features of a view, latency included. */
function numericViews(view: BatchView): FeatureView[] {
  return view.windows.flatMap((w) => [...w.inputs, ...w.outputs, w.latency]).filter((f) => f.kind === 'numeric');
}

describe('scanBatch: the validate-only path', () => {
  it('agrees with decodeBatch on 60,000+ mutated, truncated and random batches (fixed seed)', () => {
    const r = rng(20261128);
    const seeds = corpus();
    const tally = { ok: 0, rejected: 0 };
    const check = (bytes: Uint8Array) => {
      const full = verdict(() => decodeBatch(bytes));
      const scan = verdict(() => scanBatch(bytes));
      // Keeping the keys changes nothing about the verdict, nor its message.
      assert.deepEqual(verdict(() => scanBatch(bytes, { keepKeys: true })), scan);
      assert.equal(scan.ok, full.ok, `scanBatch ${scan.ok ? 'accepts' : `rejects (${(scan as { message: string }).message})`}, decodeBatch ${full.ok ? 'accepts' : `rejects (${(full as { message: string }).message})`}: ${Buffer.from(bytes).toString('hex')}`);
      tally[full.ok ? 'ok' : 'rejected']++;
      if (!full.ok) {
        // What the collector answers with: the codec's own message.
        const answered = verdict(() => readBatchView(bytes));
        assert.deepEqual(answered, full);
      } else if (tally.ok % 50 === 0) {
        const [decoded, viewed] = mergeBoth(bytes, { keepKeys: tally.ok % 100 === 0 });
        assert.deepEqual(viewed, decoded);
      }
    };
    for (let i = 0; i < 60_000; i++) check(mutate(seeds[i % seeds.length], r));
    for (let i = 0; i < 5_000; i++) {
      const random = Uint8Array.from({ length: Math.floor(r() * 64) }, () => Math.floor(r() * 256));
      if (i % 2 === 0 && random.length >= 4) random.set([0x53, 0x57, 0x42, 1]);
      check(random);
    }
    assert.ok(tally.rejected > 30_000, `most mutations are caught (${tally.rejected})`);
    assert.ok(tally.ok > 1_000, `some mutations still decode (${tally.ok})`);
  });

  it('a trusted scan of a checked batch gives the same view, digests located without being read', () => {
    for (const bytes of corpus()) {
      const checked = scanBatch(bytes);
      const trusted = scanBatch(bytes, { trusted: true });
      assert.deepEqual(trusted, checked);
      const merge = (view: typeof checked) => view.windows.map((w) => describeWindow(mergeWindowView(new WindowProfile(w.start, w.length, { ...w.segment }), w, view.bytes)));
      assert.deepEqual(merge(trusted), merge(checked));
    }
    // Trusted or not, a digest that does not decode still fails where it is merged.
    const bytes = encodeBatch(sampleBatch(31, 1));
    const view = scanBatch(bytes);
    const f = view.windows[0].inputs.find((x) => x.kind === 'numeric' && x.digestTotal > 1)!;
    const broken = bytes.slice();
    broken.fill(0xff, f.digestEnd - 3, f.digestEnd); // the weights' varints run past the digest's end
    const trusted = scanBatch(broken, { trusted: true });
    assert.throws(() => scanBatch(broken), CodecError);
    const w = trusted.windows[0];
    assert.throws(() => mergeWindowView(new WindowProfile(w.start, w.length, { ...w.segment }), w, trusted.bytes), CodecError);
  });

  it('merges a view into a window exactly as merging the decoded window would', () => {
    for (const bytes of corpus()) {
      const [decoded, viewed] = mergeBoth(bytes);
      assert.deepEqual(viewed, decoded);
    }
    // Into a window that already holds data, too (the collector's accumulators).
    const a = encodeBatch(sampleBatch(21, 1));
    const b = encodeBatch(sampleBatch(21, 1)); // same window: merges
    const byDecode = decodeBatch(a).windows[0];
    byDecode.merge(decodeBatch(b).windows[0]);
    const va = scanBatch(a);
    const vb = scanBatch(b);
    const byView = new WindowProfile(va.windows[0].start, va.windows[0].length, { ...va.windows[0].segment });
    mergeWindowView(byView, va.windows[0], va.bytes);
    mergeWindowView(byView, vb.windows[0], vb.bytes);
    const count = (w: WindowProfile) => [w.predictions, ...[...w.inputs.values()].map((f) => [f.name, f.count, f.missing, f.nan, f.digest?.count ?? f.labels?.total])];
    assert.deepEqual(count(byView), count(byDecode));
    const t = byView.outputs.get('p_rain')!.digest!;
    const u = byDecode.outputs.get('p_rain')!.digest!;
    for (const q of [0, 0.01, 0.5, 0.99, 1]) assert.ok(Math.abs(t.quantile(q) - u.quantile(q)) < 1e-3, `q=${q}`);
  });

  it('keepKeys: the merge reads the keys the check kept, with the same result as decoding them', () => {
    for (const bytes of corpus()) {
      const plain = scanBatch(bytes);
      const kept = scanBatch(bytes, { keepKeys: true });
      // Kept for every digest on the grid (raw float64 means have no keys; empty digests none).
      for (const f of numericViews(kept)) assert.equal(f.keysAt >= 0, f.digestTotal > 0 && f.name !== 'narrow', `${f.name}: keysAt ${f.keysAt}`);
      for (const f of numericViews(plain)) assert.equal(f.keysAt, -1, f.name);
      assert.deepEqual(mergeView(kept), mergeView(plain));
      const [decoded] = mergeBoth(bytes);
      assert.deepEqual(mergeView(kept), decoded);
      // A trusted scan keeps nothing (its digests are not read).
      for (const f of numericViews(scanBatch(bytes, { trusted: true, keepKeys: true }))) assert.equal(f.keysAt, -1);
    }
  });

  it('keepKeys: keys the ring has since overwritten are decoded from the bytes again', () => {
    const bytes = encodeBatch(sampleBatch(41, 2));
    const other = encodeBatch(sampleBatch(42, 2));
    const expected = mergeView(scanBatch(bytes));
    const keys = numericViews(scanBatch(bytes, { keepKeys: true }));
    const total = keys.reduce((n, f) => n + Math.max(0, f.digestEnd - f.digestStart), 0);
    try {
      // A ring about a third of the batch's keys: its own later digests overwrite its first.
      setKeyRingSlots(Math.max(64, Math.floor(total / 6)));
      const view = scanBatch(bytes, { keepKeys: true });
      assert.ok(numericViews(view).some((f) => f.keysAt >= 0), 'some keys kept');
      assert.deepEqual(mergeView(view), expected);
      // Kept intact, then overwritten by the next batch's check before the merge.
      setKeyRingSlots(1 << 16);
      const early = scanBatch(bytes, { keepKeys: true });
      for (let i = 0; i < 40; i++) scanBatch(other, { keepKeys: true });
      assert.deepEqual(mergeView(early), expected);
      // A merge that finds its keys overwritten doubles the ring, up to its bound.
      setKeyRingSlots(1 << 12, 1 << 14);
      const before = scanBatch(bytes, { keepKeys: true });
      for (let i = 0; i < 40; i++) scanBatch(other, { keepKeys: true });
      assert.deepEqual(mergeView(before), expected);
      assert.equal(keyRingSize(), 1 << 12, 'grows at the next check, not in the merge');
      const grown = scanBatch(bytes, { keepKeys: true });
      assert.equal(keyRingSize(), 1 << 13);
      assert.deepEqual(mergeView(before), expected, 'keys from the old ring are not read from the new one');
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 40; j++) scanBatch(other, { keepKeys: true });
        mergeView(scanBatch(bytes, { keepKeys: true }));
        mergeView(grown);
        scanBatch(other, { keepKeys: true });
      }
      assert.equal(keyRingSize(), 1 << 14, 'and no further than its bound');
      // And merged twice (a refold): the same each time.
      const again = scanBatch(bytes, { keepKeys: true });
      assert.deepEqual(mergeView(again), expected);
      assert.deepEqual(mergeView(again), expected);
    } finally {
      setKeyRingSlots();
    }
  });

  it('leaves the view and its bytes as they were (merges are pure)', () => {
    const bytes = encodeBatch(sampleBatch(31, 1));
    const copy = bytes.slice();
    const view = scanBatch(bytes);
    const into = new WindowProfile(view.windows[0].start, view.windows[0].length, { ...view.windows[0].segment });
    mergeWindowView(into, view.windows[0], bytes);
    mergeWindowView(into, view.windows[0], bytes);
    assert.deepEqual(bytes, copy);
    assert.equal(into.predictions, 2 * view.windows[0].predictions);
    assert.equal(into.latency.count, 2 * view.windows[0].latency.count);
  });

  it('tells incompatible features apart and refuses to merge them', () => {
    const start = 1_700_000_100_000 - (1_700_000_100_000 % 300_000);
    const numeric = new WindowProfile(start, 300_000, { model: 'm' });
    numeric.input('x').add(1);
    const categorical = new WindowProfile(start, 300_000, { model: 'm' });
    categorical.input('x', 'classes', { classes: ['a', 'b'] }).addLabel(0);
    const view = scanBatch(encodeBatch({ agentId: 'a', sequence: 1, sentAt: 1, windows: [categorical] }));
    assert.equal(viewCompatible(numeric, view.windows[0]), false);
    assert.throws(() => mergeWindowView(numeric, view.windows[0], view.bytes), /differs in kind/);
    assert.equal(numeric.inputs.get('x')!.count, 1, 'unchanged');
  });

  it('rejects crafted digests the decoder rejects, with the decoder\'s message', () => {
    /** A one-window batch whose feature x carries the given digest body. */
    const craft = (count: number, digest: (w: ByteWriter) => void) => {
      const w = new ByteWriter();
      w.bytes(Uint8Array.of(0x53, 0x57, 0x42, 1));
      w.field(1, (f) => f.bytes(new TextEncoder().encode('a')));
      w.field(2, (f) => f.varint(1));
      w.field(3, (f) => f.varint(1));
      const feature = (f: ByteWriter, name: string, n: number, body: (g: ByteWriter) => void) => {
        f.field(1, (g) => g.bytes(new TextEncoder().encode(name)));
        f.field(2, (g) => g.byte(0));
        f.field(3, (g) => [n, 0, 0, 0, 0].forEach((c) => g.varint(c)));
        f.field(4, (g) => [n ? 1 : 0, 0, n].forEach((m) => g.f64(m)));
        f.field(5, body);
      };
      w.field(4, (win) => {
        win.field(1, (f) => f.varint(0));
        win.field(2, (f) => f.varint(60_000));
        win.field(5, (f) => feature(f, 'x', count, digest));
        win.field(7, (f) => feature(f, 'latency_ms', 0, (g) => { g.varint(100); g.varint(0); }));
      });
      return w.finish();
    };
    const cases: Array<[string, number, (w: ByteWriter) => void]> = [
      // Two centroids of weight 2, purity bits say both pure: the last must sit on the max.
      ['pure last centroid off the max', 4, (g) => { g.varint(100); g.varint(2); g.byte(16); g.f64(0); g.f64(1); g.varint(0); g.varint(100); g.varint(0); g.varint(0); g.byte(0b11); }],
      ['purity padding bits', 4, (g) => { g.varint(100); g.varint(2); g.byte(16); g.f64(0); g.f64(1); g.varint(0); g.varint(meanKeyOf1()); g.varint(0); g.varint(0); g.byte(0b111); }],
      ['two runs of ones', 2, (g) => { g.varint(100); g.varint(2); g.byte(16); g.f64(0); g.f64(1); g.varint(0); g.varint(meanKeyOf1()); g.varint(1); g.varint(1); }],
      ['weights beyond the count', 3, (g) => { g.varint(100); g.varint(2); g.byte(16); g.f64(0); g.f64(1); g.varint(0); g.varint(meanKeyOf1()); g.varint(3); }],
      ['digest total differs from the counts', 5, (g) => { g.varint(100); g.varint(2); g.byte(16); g.f64(0); g.f64(1); g.varint(0); g.varint(meanKeyOf1()); g.varint(3); }],
      ['compression out of range', 0, (g) => { g.varint(5); g.varint(0); }],
    ];
    for (const [name, count, body] of cases) {
      const bytes = craft(count, body);
      const full = verdict(() => decodeBatch(bytes));
      assert.equal(full.ok, false, `${name}: the decoder rejects it`);
      assert.equal(verdict(() => scanBatch(bytes)).ok, false, `${name}: so does the scan`);
      assert.deepEqual(verdict(() => readBatchView(bytes)), full, name);
    }
    // And the valid neighbour of those cases is accepted by both.
    const ok = craft(2, (g) => { g.varint(100); g.varint(2); g.byte(16); g.f64(0); g.f64(1); g.varint(0); g.varint(meanKeyOf1()); g.varint(3); });
    assert.equal(verdict(() => decodeBatch(ok)).ok, true);
    assert.equal(verdict(() => scanBatch(ok)).ok, true);
  });
});

/** The grid key of 1 at precision 16 above the key of 0 (what the encoder writes for the max). */
function meanKeyOf1(): number {
  const bytes = new TDigest().addAll([0, 1]).encode();
  // header (4) + compression (1) + count (1) + precision (1) + min (8) + max (8), then the keys
  const r = bytes.subarray(23);
  let v = 0;
  let scale = 1;
  let i = 0;
  // the first delta (0) then the second: read two varints
  for (let n = 0; n < 2; n++) {
    v = 0;
    scale = 1;
    for (;;) {
      const b = r[i++];
      v += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
    }
  }
  return v;
}
