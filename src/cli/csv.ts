import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

/**
 * Streams the records of a CSV file (RFC 4180: comma separated, fields optionally in double
 * quotes with "" for a quote, quoted fields may span lines; CRLF or LF). The first record is
 * the header. Memory stays bounded by the longest record, whatever the file's size.
 */
export async function* readCsv(path: string, onBytes?: (bytes: number) => void): AsyncGenerator<string[]> {
  const stream = createReadStream(path);
  if (onBytes) stream.on('data', (chunk) => onBytes(chunk.length));
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let pending = '';
  let lineNo = 0;
  for await (const line of lines) {
    lineNo++;
    pending = pending ? `${pending}\n${line}` : line;
    // An odd number of quotes so far means a quoted field continues on the next line.
    if (countQuotes(pending) % 2 === 1) {
      if (pending.length > 1 << 20) throw new Error(`line ${lineNo}: a quoted field runs past 1 MiB (unbalanced quote?)`);
      continue;
    }
    if (pending.trim() !== '') yield splitRecord(pending);
    pending = '';
  }
  if (pending) throw new Error(`end of file inside a quoted field (started before line ${lineNo})`);
}

function countQuotes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) === 34) n++;
  return n;
}

export function splitRecord(record: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < record.length; i++) {
    const ch = record[i];
    if (quoted) {
      if (ch === '"') {
        if (record[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else field += ch;
  }
  fields.push(field);
  return fields;
}

/** A CSV or JSON cell as a number: empty and null are missing; NaN and ±Infinity are kept. */
export function parseNumber(cell: unknown): number | null | undefined {
  if (cell === null || cell === undefined) return null;
  if (typeof cell === 'number') return cell;
  if (typeof cell !== 'string') return undefined;
  const s = cell.trim();
  if (s === '' || /^(na|n\/a|null|none)$/i.test(s)) return null;
  if (/^nan$/i.test(s)) return NaN;
  if (/^\+?inf(inity)?$/i.test(s)) return Infinity;
  if (/^-inf(inity)?$/i.test(s)) return -Infinity;
  const n = Number(s);
  return Number.isNaN(n) ? undefined : n;
}
