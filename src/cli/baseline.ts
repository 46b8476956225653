import { createReadStream, statSync } from 'node:fs';
import { extname } from 'node:path';
import { createInterface } from 'node:readline';
import { encodeBatch, WindowProfile } from '../sketch/index.js';
import { parseNumber, readCsv } from './csv.js';

/**
 * Builds a baseline profile from training data (CSV with a header row, a JSON array of
 * objects, or JSON Lines) with the same sketch code the agents use, so baseline and production
 * profiles compare like for like. The result is a `.swb` file: a one-window batch in the wire
 * format, with segment {model, source: 'training'}.
 */
export interface BaselineOptions {
  model: string;
  /** Numeric input columns; default: every column not listed as categorical or output. */
  inputs?: string[];
  /** Columns counted as labels (open sets). */
  categorical?: string[];
  /** Output columns (numeric). */
  outputs?: string[];
  /** Called as the file is read: bytes so far, total bytes. */
  progress?: (done: number, total: number) => void;
}

export interface BaselineResult {
  window: WindowProfile;
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
  const unparseable = new Map<string, number>();
  let plan: Array<{ column: string; role: 'input' | 'output' | 'label' }> | null = null;
  let count = 0;
  for await (const row of rows) {
    if (plan === null) plan = makePlan(Object.keys(row), options);
    count++;
    window.predictions++;
    for (const { column, role } of plan) {
      const cell = row[column];
      if (role === 'label') {
        window.input(column, 'labels').addLabel(cell === null || cell === undefined || cell === '' ? null : String(cell));
        continue;
      }
      const f = role === 'input' ? window.input(column) : window.output(column);
      const x = parseNumber(cell);
      if (x === undefined) unparseable.set(column, (unparseable.get(column) ?? 0) + 1);
      f.add(x ?? null);
    }
  }
  if (plan === null) throw new Error(`${path}: no rows`);
  const bytes = encodeBatch({ agentId: 'sketchwatch-baseline', sequence: 0, sentAt: Date.now(), windows: [window] });
  return { window, rows: count, unparseable, bytes };
}

function makePlan(columns: string[], o: BaselineOptions): Array<{ column: string; role: 'input' | 'output' | 'label' }> {
  const have = new Set(columns);
  const check = (list: string[] | undefined, what: string) => {
    for (const c of list ?? []) if (!have.has(c)) throw new Error(`${what} column ${JSON.stringify(c)} is not in the data; columns: ${columns.join(', ')}`);
  };
  check(o.inputs, 'input');
  check(o.categorical, 'categorical');
  check(o.outputs, 'output');
  const labels = new Set(o.categorical ?? []);
  const outputs = new Set(o.outputs ?? []);
  const inputs = o.inputs ?? columns.filter((c) => !labels.has(c) && !outputs.has(c));
  return [
    ...inputs.map((column) => ({ column, role: 'input' as const })),
    ...[...labels].map((column) => ({ column, role: 'label' as const })),
    ...[...outputs].map((column) => ({ column, role: 'output' as const })),
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
