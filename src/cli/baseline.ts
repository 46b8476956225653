import { createReadStream, statSync } from 'node:fs';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { encodeBatch, WindowProfile } from '../sketch/index.js';
import { parseNumber, readCsv } from './csv.js';

/**
 * Builds a baseline profile from training data (CSV with a header row, a JSON array of
 * objects, or JSON Lines) with the same sketch code the agents use, so baseline and production
 * profiles compare like for like. The result is a `.swb` file: a batch in the wire format whose
 * first window is the whole profile (segment {model, source: 'training'}) and whose others are
 * the chunks (segment label `chunk`), from which the collector calibrates thresholds.
 */
export interface BaselineOptions {
  model: string;
  /** Numeric input columns; default: every column not listed as categorical or output. */
  inputs?: string[];
  /** Columns counted as labels (open sets). */
  categorical?: string[];
  /** Output columns (numeric). */
  outputs?: string[];
  /**
   * A classifier's predicted-class column and its labels, in the model's output order: recorded
   * as the output feature the agent records (`class` of kind 'classes'), so the two compare.
   */
  classOutput?: { column: string; classes: string[] };
  /** Called as the file is read: bytes so far, total bytes. */
  progress?: (done: number, total: number) => void;
  /**
   * Also profile the data in this many consecutive chunks (by position in the file), so the
   * collector can calibrate each feature's thresholds from the baseline's own chunk-to-chunk
   * variation. 0: no chunks. Default 20.
   */
  chunks?: number;
}

export interface BaselineResult {
  window: WindowProfile;
  /** The chunk profiles (segment label `chunk`), in file order. */
  chunks: WindowProfile[];
  rows: number;
  /** Cells in numeric columns that were not numbers (counted as missing). */
  unparseable: Map<string, number>;
  bytes: Uint8Array<ArrayBuffer>;
}

export async function buildBaseline(path: string, options: BaselineOptions): Promise<BaselineResult> {
  const total = statSync(path).size;
  let done = 0;
  const onBytes = (n: number) => {
    done += n;
    options.progress?.(done, total);
  };
  const ext = extname(path).toLowerCase();
  const rows = ext === '.csv' ? csvRows(path, onBytes) : ext === '.json' || ext === '.jsonl' || ext === '.ndjson' ? jsonRows(path, onBytes) : null;
  if (rows === null) throw new Error(`${path}: expected a .csv, .json, .jsonl or .ndjson file`);
  const window = new WindowProfile(0, 60_000, { model: options.model, source: 'training' });
  const chunkCount = options.chunks ?? 20;
  if (!(Number.isInteger(chunkCount) && chunkCount >= 0 && chunkCount <= 1000)) throw new Error(`chunks must be a whole number from 0 to 1000, got ${options.chunks}`);
  const blocks = new ConsecutiveBlocks(chunkCount, { model: options.model, source: 'training', chunk: '' });
  const unparseable = new Map<string, number>();
  let plan: Array<{ column: string; role: 'input' | 'output' | 'label' | 'class' }> | null = null;
  let count = 0;
  for await (const row of rows) {
    if (plan === null) plan = makePlan(Object.keys(row), options);
    count++;
    const targets = chunkCount > 0 ? [window, blocks.next()] : [window];
    for (const w of targets) {
      w.predictions++;
      for (const { column, role } of plan) {
        const cell = row[column];
        if (role === 'class') {
          const f = w.output('class', 'classes', { classes: options.classOutput!.classes });
          f.addLabel(cell === null || cell === undefined || cell === '' ? null : String(cell));
          continue;
        }
        if (role === 'label') {
          w.input(column, 'labels').addLabel(cell === null || cell === undefined || cell === '' ? null : String(cell));
          continue;
        }
        const f = role === 'input' ? w.input(column) : w.output(column);
        const x = parseNumber(cell);
        if (x === undefined && w === window) unparseable.set(column, (unparseable.get(column) ?? 0) + 1);
        f.add(x ?? null);
      }
    }
  }
  if (plan === null) throw new Error(`${path}: no rows`);
  const chunks = blocks.finish().map((c, i) => c.reframed({ segment: { ...c.segment, chunk: String(i) } }));
  const bytes = encodeBatch({ agentId: 'sketchwatch-baseline', sequence: 0, sentAt: Date.now(), windows: [window, ...chunks] });
  return { window, chunks, rows: count, unparseable, bytes };
}

/**
 * Cuts a stream of rows of unknown length into about `count` consecutive chunks: rows go into
 * blocks of `size` rows; when 2·count blocks exist, neighbours merge in pairs and `size`
 * doubles. Memory holds at most 2·count profiles whatever the number of rows.
 */
class ConsecutiveBlocks {
  private blocks: WindowProfile[] = [];
  private size = 16;
  private inLast = 0;

  constructor(
    private readonly count: number,
    private readonly segment: Record<string, string>,
  ) {}

  /** The block the next row goes into. */
  next(): WindowProfile {
    if (this.blocks.length === 0 || this.inLast >= this.size) {
      if (this.blocks.length >= 2 * this.count) this.halve();
      this.blocks.push(new WindowProfile(0, 60_000, this.segment));
      this.inLast = 0;
    }
    this.inLast++;
    return this.blocks[this.blocks.length - 1];
  }

  private halve(): void {
    const merged: WindowProfile[] = [];
    for (let i = 0; i < this.blocks.length; i += 2) merged.push(i + 1 < this.blocks.length ? this.blocks[i].merge(this.blocks[i + 1]) : this.blocks[i]);
    this.blocks = merged;
    this.size *= 2;
  }

  /**
   * Exactly `count` chunks in row order (fewer only when there were fewer blocks): the first
   * surplus neighbours merge in pairs, so chunk sizes differ by at most a factor of two.
   */
  finish(): WindowProfile[] {
    const surplus = this.blocks.length - this.count;
    if (surplus <= 0) return this.blocks;
    const out: WindowProfile[] = [];
    for (let i = 0; i < this.blocks.length; i++) {
      out.push(i < 2 * surplus && i % 2 === 0 ? this.blocks[i].merge(this.blocks[++i]) : this.blocks[i]);
    }
    return out;
  }
}

function makePlan(columns: string[], o: BaselineOptions): Array<{ column: string; role: 'input' | 'output' | 'label' | 'class' }> {
  const have = new Set(columns);
  const check = (list: string[] | undefined, what: string) => {
    for (const c of list ?? []) if (!have.has(c)) throw new Error(`${what} column ${JSON.stringify(c)} is not in the data; columns: ${columns.join(', ')}`);
  };
  check(o.inputs, 'input');
  check(o.categorical, 'categorical');
  check(o.outputs, 'output');
  const cls = o.classOutput;
  if (cls !== undefined) {
    check([cls.column], 'class output');
    if (cls.classes.length === 0) throw new Error('the class output needs its class labels (--classes a,b,c)');
  }
  const labels = new Set(o.categorical ?? []);
  const outputs = new Set(o.outputs ?? []);
  const inputs = o.inputs ?? columns.filter((c) => !labels.has(c) && !outputs.has(c) && c !== cls?.column);
  return [
    ...inputs.map((column) => ({ column, role: 'input' as const })),
    ...[...labels].map((column) => ({ column, role: 'label' as const })),
    ...[...outputs].map((column) => ({ column, role: 'output' as const })),
    ...(cls ? [{ column: cls.column, role: 'class' as const }] : []),
  ];
}

async function* csvRows(path: string, onBytes: (n: number) => void): AsyncGenerator<Record<string, string>> {
  let header: string[] | null = null;
  for await (const record of readCsv(path, onBytes)) {
    if (header === null) {
      header = record.map((h) => h.trim());
      continue;
    }
    const row: Record<string, string> = {};
    for (let i = 0; i < header.length; i++) row[header[i]] = record[i] ?? '';
    yield row;
  }
}

async function* jsonRows(path: string, onBytes: (n: number) => void): AsyncGenerator<Record<string, unknown>> {
  // A JSON array is read whole (it has to be parsed as one value); JSON Lines stream.
  const firstChar = await new Promise<string>((resolve, reject) => {
    const s = createReadStream(path, { start: 0, end: 4096, encoding: 'utf8' });
    s.once('data', (d) => {
      resolve(String(d).trimStart()[0] ?? '');
      s.destroy();
    });
    s.once('error', reject);
    s.once('end', () => resolve(''));
  });
  if (firstChar === '[') {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(path, 'utf8');
    onBytes(Buffer.byteLength(text));
    const data = JSON.parse(text) as unknown;
    if (!Array.isArray(data)) throw new Error(`${path}: expected an array of objects`);
    for (const row of data) {
      if (typeof row !== 'object' || row === null) throw new Error(`${path}: every element must be an object`);
      yield row as Record<string, unknown>;
    }
    return;
  }
  const stream = createReadStream(path);
  stream.on('data', (chunk) => onBytes(chunk.length));
  let lineNo = 0;
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    lineNo++;
    if (line.trim() === '') continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path} line ${lineNo}: ${(e as Error).message}`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new Error(`${path} line ${lineNo}: expected an object`);
    yield row as Record<string, unknown>;
  }
}
