/**
 * The one interface both stores speak: PGlite (embedded, the default) and PostgreSQL (`pg`, for
 * several replicas). Same SQL, same schema; only connection handling differs.
 */
export type SqlValue = string | number | boolean | null | Uint8Array | string[] | number[] | boolean[];

export interface Queryable {
  /** Runs one statement with $1… parameters; rows come back as plain objects. */
  query<Row = Record<string, unknown>>(sql: string, params?: SqlValue[]): Promise<Row[]>;
  /**
   * Runs `COPY … FROM STDIN (FORMAT binary)`-style input: `sql` is the COPY statement without
   * its source, `data` the binary COPY stream (see copyBinary). Only where it is cheaper than
   * INSERT (PGlite: half the time for ~100 KB of profiles); absent elsewhere.
   */
  copyBinary?(sql: string, data: Uint8Array): Promise<void>;
}

/** A column value for a binary COPY stream. */
export type CopyValue = { text: string } | { int8: number } | { int4: number } | { bytea: Uint8Array };

/** The binary COPY format (PostgreSQL docs, "COPY", binary format): header, rows, trailer. */
export function copyBinary(rows: CopyValue[][]): Uint8Array {
  let size = 19 + 2;
  const texts: Array<Buffer | null> = [];
  for (const row of rows) {
    size += 2;
    for (const v of row) {
      if ('text' in v) {
        const b = Buffer.from(v.text, 'utf8');
        texts.push(b);
        size += 4 + b.length;
      } else {
        texts.push(null);
        size += 4 + ('int8' in v ? 8 : 'int4' in v ? 4 : v.bytea.length);
      }
    }
  }
  const out = Buffer.alloc(size);
  out.write('PGCOPY\n\xff\r\n\0', 0, 'latin1'); // signature; then flags and extension length, zero
  let at = 19;
  let t = 0;
  for (const row of rows) {
    at = out.writeInt16BE(row.length, at);
    for (const v of row) {
      const text = texts[t++];
      if (text !== null) {
        at = out.writeInt32BE(text.length, at);
        at += text.copy(out, at);
      } else if ('int8' in v) {
        at = out.writeInt32BE(8, at);
        at = out.writeBigInt64BE(BigInt(v.int8), at);
      } else if ('int4' in v) {
        at = out.writeInt32BE(4, at);
        at = out.writeInt32BE(v.int4, at);
      } else if ('bytea' in v) {
        at = out.writeInt32BE(v.bytea.length, at);
        out.set(v.bytea, at);
        at += v.bytea.length;
      }
    }
  }
  out.writeInt16BE(-1, at);
  return out;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `work` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs several statements separated by semicolons, without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * Reclaims the space of deleted and updated rows, where the store does not do it by itself:
   * PGlite is PostgreSQL in single-user mode, without autovacuum, and every checkpoint updates
   * dedupe rows and every compaction deletes partial rows (measured: +2.7 MB per 10,000
   * batches, for ever, with a few dozen live rows). Absent on PostgreSQL (autovacuum).
   */
  vacuum?(): Promise<void>;
  close(): Promise<void>;
}

/** int8 columns come back as strings from `pg` and as numbers or bigints from PGlite. */
export function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint' || typeof v === 'string') return Number(v);
  throw new TypeError(`expected a number from the database, got ${typeof v}`);
}

/** bytea comes back as a Buffer from `pg` and a Uint8Array from PGlite. */
export function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`expected bytes from the database, got ${typeof v}`);
}
