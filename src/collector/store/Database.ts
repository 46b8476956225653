/**
 * The one interface both stores speak: PGlite (embedded, the default) and PostgreSQL (`pg`, for
 * several replicas). Same SQL, same schema; only connection handling differs.
 */
export type SqlValue = string | number | boolean | null | Uint8Array | string[] | number[] | boolean[];

export interface Queryable {
  /** Runs one statement with $1… parameters; rows come back as plain objects. */
  query<Row = Record<string, unknown>>(sql: string, params?: SqlValue[]): Promise<Row[]>;
}

export interface Database extends Queryable {
  readonly kind: 'pglite' | 'postgres';
  /** Runs `work` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Runs several statements separated by semicolons, without parameters (migrations). */
  exec(sql: string): Promise<void>;
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
