import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable, SqlValue } from './Database.js';

/** The embedded store: PostgreSQL compiled to WASM, data in a directory (or in memory). */
export async function openPglite(dataDir?: string): Promise<Database> {
  const db = await PGlite.create(dataDir ? { dataDir } : {});
  const wrap = (q: { query: PGlite['query'] }): Queryable => ({
    async query<Row>(sql: string, params: SqlValue[] = []) {
      const result = await q.query<Row>(sql, params);
      return result.rows;
    },
  });
  const root = wrap(db);
  return {
    kind: 'pglite',
    query: root.query,
    transaction: (work) => db.transaction((tx) => work(wrap(tx))),
    exec: async (sql) => {
      await db.exec(sql);
    },
    close: () => db.close(),
  };
}
