import pg from 'pg';
import type { Database, Queryable, SqlValue } from './Database.js';

/** PostgreSQL through a `pg` pool, for one or more collector replicas sharing a database. */
export async function openPostgres(url: string, poolSize = 10): Promise<Database> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  // An idle client that loses its connection emits 'error' on the pool: log, don't crash.
  pool.on('error', (err) => console.error(`sketchwatch: postgres pool error: ${err.message}`));
  const toParam = (v: SqlValue) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v);
  const wrap = (q: pg.Pool | pg.PoolClient): Queryable => ({
    async query<Row>(sql: string, params: SqlValue[] = []) {
      const result = await q.query(sql, params.map(toParam));
      return result.rows as Row[];
    },
  });
  // Fail fast with a clear message when the database is unreachable.
  await pool.query('select 1');
  return {
    kind: 'postgres',
    query: wrap(pool).query,
    async transaction(work) {
      const client = await pool.connect();
      try {
        await client.query('begin');
        const result = await work(wrap(client));
        await client.query('commit');
        return result;
      } catch (e) {
        await client.query('rollback').catch(() => {});
        throw e;
      } finally {
        client.release();
      }
    },
    exec: async (sql) => {
      await pool.query(sql);
    },
    close: () => pool.end(),
  };
}
