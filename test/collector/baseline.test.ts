import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { decodeBatch } from '../../src/sketch/index.js';
import { buildBaseline } from '../../src/cli/baseline.js';
import { parseNumber, readCsv, splitRecord } from '../../src/cli/csv.js';
import { normal, rankError, rng, sorted } from '../helpers.js';
import { ADMIN_TOKEN, ROOT, inProcess, recentWindow, simulate, type Running } from './harness.js';

const run = promisify(execFile);

describe('CSV reading', () => {
  it('splits quoted fields, escaped quotes and empty cells', () => {
    assert.deepEqual(splitRecord('a,"b,c","say ""hi""",,e'), ['a', 'b,c', 'say "hi"', '', 'e']);
  });

  it('streams records with CRLF and quoted line breaks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sw-csv-'));
    const file = join(dir, 'x.csv');
    writeFileSync(file, 'h1,h2\r\n1,"two\r\nlines"\r\n3,4\r\n');
    const records: string[][] = [];
    for await (const r of readCsv(file)) records.push(r);
    assert.deepEqual(records, [['h1', 'h2'], ['1', 'two\nlines'], ['3', '4']]);
    writeFileSync(file, 'a\n"unterminated\n');
    await assert.rejects(async () => {
      for await (const _ of readCsv(file)) void _;
    }, /inside a quoted field/);
    rmSync(dir, { recursive: true });
  });

  it('reads numbers, missing markers, NaN and infinities', () => {
    assert.equal(parseNumber('3.5'), 3.5);
    assert.equal(parseNumber(''), null);
    assert.equal(parseNumber('NA'), null);
    assert.ok(Number.isNaN(parseNumber('nan')!));
    assert.equal(parseNumber('-Infinity'), -Infinity);
    assert.equal(parseNumber('abc'), undefined);
    assert.equal(parseNumber(7), 7);
  });
});

describe('baselines', () => {
  let dir: string;
  let c: Running & { collector: { close(): Promise<void> } };
  const r = rng(8);
  const temps: number[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sw-baseline-'));
    const lines = ['date,temp_max,precipitation,weather'];
    for (let i = 0; i < 3000; i++) {
      const t = 15 + 6 * normal(r);
      temps.push(t);
      const p = i % 100 === 0 ? '' : i % 250 === 1 ? 'NaN' : Math.max(0, 2 * normal(r)).toFixed(2);
      lines.push(`2012-01-${(i % 28) + 1},${t},${p},${['sun', 'rain', 'fog'][i % 3]}`);
    }
    writeFileSync(join(dir, 'train.csv'), `${lines.join('\n')}\n`);
    writeFileSync(join(dir, 'train.jsonl'), temps.map((t, i) => JSON.stringify({ temp_max: t, weather: i % 2 ? 'sun' : null })).join('\n'));
    writeFileSync(join(dir, 'train.json'), JSON.stringify(temps.map((t) => ({ temp_max: t }))));
    c = await inProcess();
  });
  after(async () => {
    await c.collector.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds a profile from CSV with the sketch code: counts exact, quantiles of the data', async () => {
    const b = await buildBaseline(join(dir, 'train.csv'), { model: 'weather', inputs: ['temp_max', 'precipitation'], categorical: ['weather'] });
    assert.equal(b.rows, 3000);
    assert.equal(b.chunks.length, 20, 'twenty chunks by default');
    assert.equal(b.chunks.reduce((n, c) => n + c.predictions, 0), 3000, 'the chunks partition the rows');
    const t = b.window.inputs.get('temp_max')!;
    assert.equal(t.count, 3000);
    const s = sorted(temps);
    for (const q of [0.01, 0.5, 0.99]) assert.ok(rankError(s, t.digest!.quantile(q), q) <= 2e-3);
    const p = b.window.inputs.get('precipitation')!;
    assert.equal(p.missing, 30);
    assert.equal(p.nan, 12);
    assert.equal(b.window.inputs.get('weather')!.labels!.total, 3000);
    assert.ok(!b.window.inputs.has('date'), 'only the columns asked for');
    // The file is a one-window batch in the wire format.
    assert.equal(decodeBatch(b.bytes).windows[0].segment.model, 'weather');
  });

  it('reads JSON Lines and JSON arrays the same way', async () => {
    const lines = await buildBaseline(join(dir, 'train.jsonl'), { model: 'm', categorical: ['weather'] });
    const array = await buildBaseline(join(dir, 'train.json'), { model: 'm' });
    assert.equal(lines.window.inputs.get('temp_max')!.count, 3000);
    assert.equal(lines.window.inputs.get('weather')!.missing, 1500);
    assert.equal(array.window.inputs.get('temp_max')!.moments!.sum, lines.window.inputs.get('temp_max')!.moments!.sum);
  });

  it('names a missing column clearly', async () => {
    await assert.rejects(buildBaseline(join(dir, 'train.csv'), { model: 'm', inputs: ['nope'] }), /input column "nope" is not in the data; columns: date, temp_max/);
  });

  it('a predicted-class column becomes the output `class` the agent records (unknown labels: unseen)', async () => {
    const b = await buildBaseline(join(dir, 'train.csv'), { model: 'm', inputs: ['temp_max'], classOutput: { column: 'weather', classes: ['sun', 'rain'] } });
    const cls = b.window.outputs.get('class')!;
    assert.equal(cls.kind, 'classes');
    assert.deepEqual([...cls.classes!.labels], ['sun', 'rain']);
    assert.deepEqual(Array.from(cls.classes!.counts), [1000, 1000]);
    assert.equal(cls.classes!.unseen, 1000, 'fog is not a class of this model');
    assert.ok(!b.window.inputs.has('weather'));
    await assert.rejects(buildBaseline(join(dir, 'train.csv'), { model: 'm', classOutput: { column: 'weather', classes: [] } }), /class labels/);
  });

  it('the CLI builds and uploads it; the collector lists it', async () => {
    const out = join(dir, 'weather.swb');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(ROOT, 'src/cli/index.ts'), 'baseline', join(dir, 'train.csv'),
      '--model', 'weather', '--inputs', 'temp_max,precipitation', '--categorical', 'weather', '--out', out,
      '--upload', c.url, '--project', 'test', '--name', 'training'], { cwd: ROOT, env: { ...process.env, SKETCHWATCH_ADMIN_TOKEN: ADMIN_TOKEN } });
    assert.match(stdout, /3000 rows, 3 features/);
    assert.match(stdout, /uploaded as baseline "training"/);
    assert.ok(readFileSync(out).length > 100);
    const list = await c.admin<{ baselines: Array<{ name: string; observations: number; source: string; thresholds?: Record<string, Record<string, number>> }> }>(
      '/v1/projects/test/models/weather/baselines',
    );
    assert.deepEqual(list.body.baselines.map((b) => [b.name, b.observations, b.source]), [['training', 3000, 'training']]);
    // The file carried 20 chunks: every feature's thresholds were calibrated from them.
    const t = list.body.baselines[0].thresholds!;
    assert.deepEqual(Object.keys(t).sort(), ['input/precipitation', 'input/temp_max', 'input/weather', 'latency/latency_ms'].filter((k) => k in t).sort());
    assert.ok('input/temp_max' in t && 'input/weather' in t, Object.keys(t).join(', '));
    for (const [metric, v] of Object.entries(t['input/temp_max'])) assert.ok(Number.isFinite(v) && v > 0, `${metric} ${v}`);
    // Chunks of 150 rows vary more than a decile shift would: calibrated KS sits above the floor.
    assert.ok(t['input/temp_max'].ks > 0.025);
  });

  it('a baseline from a range of production windows counts every prediction in it', async () => {
    const start = recentWindow(6);
    const sent = simulate(3, 4, 50, start, 9);
    for (const b of sent.batches) assert.equal((await c.ingest(b.bytes)).status, 200);
    const res = await c.admin<{ observations: number }>('/v1/projects/test/models/weather/baselines/last-hour/from-range', {
      method: 'POST',
      body: JSON.stringify({ from: start, to: start + 120_000 }),
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.observations, sent.predictions);
  });

  it('accepts a baseline file far larger than an ingest body (wide model, 20 chunks)', async () => {
    const wide = join(dir, 'wide.csv');
    const cols = Array.from({ length: 40 }, (_, i) => `f${i}`);
    const rowsOut = [cols.join(',')];
    for (let i = 0; i < 4000; i++) rowsOut.push(cols.map(() => normal(r).toFixed(5)).join(','));
    writeFileSync(wide, rowsOut.join('\n'));
    const b = await buildBaseline(wide, { model: 'wide' });
    assert.ok(b.bytes.length > 256 * 1024, `${b.bytes.length} bytes: more than the ingest limit`);
    const res = await fetch(`${c.url}/v1/projects/test/models/wide/baselines/training`, {
      method: 'PUT',
      body: b.bytes,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/octet-stream' },
    });
    assert.equal(res.status, 200, await res.text());
  });

  it('refuses an upload that is not a baseline file', async () => {
    const res = await fetch(`${c.url}/v1/projects/test/models/weather/baselines/bad`, {
      method: 'PUT',
      body: 'hello',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/octet-stream' },
    });
    assert.equal(res.status, 400);
    assert.match(((await res.json()) as { error: string }).error, /not a baseline file/);
  });
});
