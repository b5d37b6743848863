/**
 * Runsheet's own store: a pg pool and its Drizzle handle, and the migrations that shape it.
 * Targets are reached elsewhere (app/targets); this is only Runsheet's own database.
 */
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import * as schema from '../../db/schema/index';
import { fromRoot } from './paths.server';
import { ADVISORY_LOCKS } from './advisory-locks';

export type StoreDb = NodePgDatabase<typeof schema>;

export interface Store {
  pool: pg.Pool;
  db: StoreDb;
  close(): Promise<void>;
}

const MIGRATIONS_FOLDER = fromRoot('db', 'migrations');

export function openStore(url: string, options: { max?: number } = {}): Store {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, application_name: 'runsheet' });
  // An idle client's connection error must not crash the process; the next query reports it.
  pool.on('error', () => {});
  const db = drizzle(pool, { schema });
  return { pool, db, close: () => pool.end() };
}

export async function migrateStore(store: Store, migrationsFolder = MIGRATIONS_FOLDER): Promise<void> {
  const client = await store.pool.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [ADVISORY_LOCKS.storeMigrations]);
    await migrate(drizzle(client, { schema }), { migrationsFolder });
  } finally {
    await client.query('select pg_advisory_unlock($1)', [ADVISORY_LOCKS.storeMigrations]).catch(() => {});
    client.release();
  }
}
