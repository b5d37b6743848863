/**
 * Runsheet's own store: a pg pool and its Drizzle handle, and the migrations that shape it.
 * Targets are reached elsewhere (app/targets); this is only Runsheet's own database.
 */
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';
import pg from 'pg';
import * as schema from '../../db/schema/index';
import { STORE_GRANTS } from '../../db/store-grants';
import { fromRoot } from './paths.server';
import { ADVISORY_LOCKS } from './advisory-locks';
import { stopStoreListener } from './store-notifications.server';
import { quietPoolErrors } from './quiet-pool.server';

export type StoreDb = NodePgDatabase<typeof schema>;

export interface Store {
  pool: pg.Pool;
  db: StoreDb;
  close(): Promise<void>;
}

const MIGRATIONS_FOLDER = fromRoot('db', 'migrations');

export function openStore(url: string, options: { max?: number } = {}): Store {
  // A connection's error must not crash the process, idle or checked out; the query reports it.
  const pool = quietPoolErrors(new pg.Pool({ connectionString: url, max: options.max ?? 10, application_name: 'runsheet' }));
  const db = drizzle(pool, { schema });
  return {
    pool,
    db,
    close: async () => {
      await stopStoreListener(pool);
      await pool.end();
    },
  };
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

/** The role a store connection acts as, and whether it could switch the log's protections off. */
export async function storeRoleOf(pool: pg.Pool): Promise<{ name: string; superuser: boolean; ownsTables: boolean }> {
  const { rows } = await pool.query<{ name: string; superuser: boolean; owns_tables: boolean }>(
    `select current_user as name,
            (select rolsuper from pg_roles where rolname = current_user) as superuser,
            exists (select 1 from pg_tables where schemaname = 'public' and tableowner = current_user) as owns_tables`,
  );
  const row = rows[0]!;
  return { name: row.name, superuser: row.superuser, ownsTables: row.owns_tables };
}

/**
 * Gives the app role exactly db/store-grants.ts on every table (revoking anything more), the
 * sequences its inserts need, and nothing on the migrations' own schema. Run by the owner after
 * every migration run, so a new table is never reachable by accident.
 */
export async function applyStoreGrants(owner: pg.Pool, appRole: string): Promise<void> {
  const role = pg.escapeIdentifier(appRole);
  const { rows } = await owner.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = 'public' order by tablename`);
  const missing = rows.map((row) => row.tablename).filter((table) => !(table in STORE_GRANTS));
  if (missing.length > 0) throw new Error(`db/store-grants.ts says nothing about table(s) ${missing.join(', ')}: decide what the app role may do to them`);
  const statements = [`grant usage on schema public to ${role}`, `revoke create on schema public from ${role}`];
  for (const { tablename } of rows) {
    const table = `public.${pg.escapeIdentifier(tablename)}`;
    statements.push(`revoke all on table ${table} from ${role}`);
    statements.push(`grant ${STORE_GRANTS[tablename]!.join(', ')} on table ${table} to ${role}`);
  }
  statements.push(`grant usage, select on all sequences in schema public to ${role}`);
  await owner.query(statements.join(';\n'));
}
