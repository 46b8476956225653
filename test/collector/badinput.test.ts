import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { ByteWriter } from '../../src/sketch/codec.js';
import { inProcess, recentWindow, simulate, totals, WINDOW, ADMIN_TOKEN, type Running } from './harness.js';

/** Field by field, a batch with one window and one numeric input `x`: room to lie. */
function craft(opts: {
  predictions?: number;
  counts?: [number, number, number, number, number];
  moments?: [number, number, number];
  digest?: (w: ByteWriter) => void;
  start?: number;
  magic?: [number, number];
  version?: number;
}): Uint8Array<ArrayBuffer> {
  const w = new ByteWriter();
  const [m0, m1] = opts.magic ?? [0x53, 0x57];
  w.bytes(Uint8Array.of(m0, m1, 0x42, opts.version ?? 1));
  w.field(1, (f) => f.bytes(new TextEncoder().encode('liar')));
  w.field(2, (f) => f.varint(1));
  w.field(3, (f) => f.varint(Date.now()));
  const feature = (f: ByteWriter, name: string, counts: number[], moments: number[], digest: (w: ByteWriter) => void) => {
    f.field(1, (g) => g.bytes(new TextEncoder().encode(name)));
    f.field(2, (g) => g.byte(0));
    f.field(3, (g) => counts.forEach((c) => g.varint(c)));
    f.field(4, (g) => moments.forEach((m) => g.f64(m)));
    f.field(5, digest);
  };
  const emptyDigest = (g: ByteWriter) => {
    g.varint(100);
    g.varint(0);
  };
  const oneValue = (g: ByteWriter) => {
    g.varint(100);
    g.varint(1);
    g.byte(41); // mean precision for min = max
    g.f64(5);
    g.f64(5);
    g.varint(0); // the mean's key, as a delta from the min's
    g.varint(1); // one run of one weight
  };
  w.field(4, (win) => {
    win.field(1, (f) => f.varint(opts.start ?? recentWindow(1)));
    win.field(2, (f) => f.varint(WINDOW));
    win.field(3, (f) => {
      f.varint(1);
      f.string('model');
      f.string('weather');
    });
    win.field(4, (f) => f.varint(opts.predictions ?? 1));
    win.field(5, (f) => feature(f, 'x', opts.counts ?? [1, 0, 0, 0, 0], opts.moments ?? [5, 0, 5], opts.digest ?? oneValue));
    win.field(7, (f) => feature(f, 'latency_ms', [0, 0, 0, 0, 0], [0, 0, 0], emptyDigest));
  });
  return w.finish();
}

describe('bad input battery', () => {
  let c: Running & { collector: { close(): Promise<void>; metrics: { value(n: string, l?: Record<string, string>): number } } };
  const start = recentWindow(5);
  let before_: { predictions: number; x: number; missing: number };

  before(async () => {
    c = await inProcess({ maxBodyBytes: 64 * 1024, requestTimeoutMs: 1500 });
    for (const b of simulate(2, 2, 50, start, 3).batches) assert.equal((await c.ingest(b.bytes)).status, 200);
    before_ = await totals(c, start);
    // A well-formed crafted batch is accepted: the battery below fails for its one defect only.
    const ok = await c.ingest(craft({}));
    assert.equal(ok.status, 200, await ok.text());
  });
  after(() => c.collector.close());

  const cases: Array<[string, () => Promise<Response>, number, string]> = [
    ['empty body', () => c.ingest(new Uint8Array(0)), 400, 'empty'],
    ['truncated', () => c.ingest(craft({}).slice(0, 30)), 400, 'decode'],
    ['oversized', () => c.ingest(new Uint8Array(70 * 1024)), 413, 'too_large'],
    ['wrong magic', () => c.ingest(craft({ magic: [0x50, 0x4b] })), 400, 'decode'],
    ['wrong version', () => c.ingest(craft({ version: 7 })), 400, 'decode'],
    ['huge prediction count', () => c.ingest(craft({ predictions: 1e12 })), 422, 'implausible'],
    ['counts that do not add up', () => c.ingest(craft({ counts: [1, 5, 0, 0, 0] })), 400, 'decode'],
    ['NaN mean', () => c.ingest(craft({ moments: [NaN, 0, 5] })), 400, 'decode'],
    ['unsorted centroids', () => c.ingest(craft({
      counts: [2, 0, 0, 0, 0],
      digest: (g) => {
        g.varint(100);
        g.varint(2);
        g.byte(0xff);
        g.f64(1e10);
        g.f64(1e10 + 1e-3);
        g.f64(1e10 + 5e-4);
        g.f64(1e10 + 1e-4);
        g.varint(3); // a run of two ones
      },
    })), 400, 'decode'],
    ['a window far in the future', () => c.ingest(craft({ start: recentWindow(-1000) })), 422, 'implausible'],
    ['bad gzip', () => c.ingest(craft({}), `key=${c.ingestKey}&encoding=gzip`), 400, 'bad_gzip'],
    ['wrong key', () => c.ingest(craft({}), 'key=not-a-key'), 403, 'bad_key'],
    ['missing key', () => c.ingest(craft({}), ''), 401, 'no_key'],
  ];

  for (const [name, send, status, reason] of cases) {
    it(`${name} → ${status} (${reason}), counted in /metrics`, async () => {
      const rejectsBefore = c.collector.metrics.value('sketchwatch_ingest_rejects_total', { reason });
      const res = await send();
      assert.equal(res.status, status, await res.clone().text());
      const body = (await res.json()) as { error: string; reason: string };
      assert.equal(body.reason, reason);
      assert.ok(body.error.length > 5, 'a message says what is wrong');
      assert.equal(c.collector.metrics.value('sketchwatch_ingest_rejects_total', { reason }), rejectsBefore + 1);
    });
  }

  it('a gzip body is accepted when it is valid', async () => {
    const res = await c.ingest(new Uint8Array(gzipSync(craft({ start: recentWindow(9) }))), `key=${c.ingestKey}&encoding=gzip`);
    assert.equal(res.status, 200, await res.text());
  });

  it('admin endpoints need the token', async () => {
    const none = await fetch(`${c.url}/v1/projects`);
    assert.equal(none.status, 401);
    const wrong = await fetch(`${c.url}/v1/projects`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const right = await fetch(`${c.url}/v1/projects`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(right.status, 200);
  });

  it('a slow-loris body is cut off', async () => {
    const url = new URL(c.url);
    const started = Date.now();
    const outcome = await new Promise<string>((resolve) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write(`POST /v1/ingest?key=${c.ingestKey} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n`);
        const drip = setInterval(() => socket.write('x'), 200);
        let data = '';
        socket.on('data', (d) => (data += d));
        socket.on('close', () => {
          clearInterval(drip);
          resolve(data.split('\r\n')[0] || 'closed');
        });
        setTimeout(() => socket.destroy(), 10_000);
      });
    });
    const took = Date.now() - started;
    assert.ok(took < 8_000, `the server gave up after ${took} ms (${outcome})`);
    assert.match(outcome, /408/);
    assert.ok(c.collector.metrics.value('sketchwatch_ingest_rejects_total', { reason: 'timeout' }) >= 1);
  });

  it('after all that: aggregates unchanged, process alive', async () => {
    const t = await totals(c, start);
    assert.deepEqual(t, before_);
    const health = await fetch(`${c.url}/healthz`);
    assert.equal(health.status, 200);
  });
});
