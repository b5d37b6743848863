/**
 * The embedded store's two roles (docs/decisions/025): `runsheet_owner` owns the store database
 * and every object in it and runs the migrations; `runsheet_app` is what the dashboard and the
 * local command line connect as, with only db/store-grants.ts (no UPDATE or DELETE on the run log,
 * not a superuser, so it cannot set session_replication_role or switch a trigger off). Created by
 * the embedded server's superuser, idempotently; their passwords live in `<dataDir>/store-roles.json`
 * (mode 0600). A data folder made before the roles existed has its objects handed to the owner.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { databaseUrl } from './embedded-postgres.server';

export const STORE_OWNER_ROLE = 'runsheet_owner';
export const STORE_APP_ROLE = 'runsheet_app';

interface RolePasswords {
  owner: string;
  app: string;
}

export interface StoreRoleUrls {
  ownerUrl: string;
  appUrl: string;
}

export async function ensureEmbeddedStoreRoles(adminUrl: string, dataDir: string, database: string): Promise<StoreRoleUrls> {
  const passwords = rolePasswords(dataDir);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (const [role, password] of [
      [STORE_OWNER_ROLE, passwords.owner],
      [STORE_APP_ROLE, passwords.app],
    ] as const) {
      // Identifiers and passwords cannot be bound in CREATE/ALTER ROLE: format() quotes them on the server.
      const exists = (await admin.query('select 1 from pg_roles where rolname = $1', [role])).rowCount === 1;
      const { rows } = await admin.query<{ sql: string }>(
        `select format(${exists ? `'alter role %I with login nosuperuser nocreatedb nocreaterole password %L'` : `'create role %I with login nosuperuser nocreatedb nocreaterole password %L'`}, $1::text, $2::text) as sql`,
        [role, password],
      );
      await admin.query(rows[0]!.sql).catch((error: { code?: string }) => {
        if (error.code !== '42710') throw error; // created by a concurrent start
      });
    }
    await admin.query(`alter database ${pg.escapeIdentifier(database)} owner to ${STORE_OWNER_ROLE}`);
  } finally {
    await admin.end();
  }
  await handObjectsToOwner(databaseUrl(adminUrl, database));
  const withRole = (role: string, password: string) => {
    const url = new URL(databaseUrl(adminUrl, database));
    url.username = role;
    url.password = password;
    return url.toString();
  };
  return { ownerUrl: withRole(STORE_OWNER_ROLE, passwords.owner), appUrl: withRole(STORE_APP_ROLE, passwords.app) };
}

/** Everything in the store made by the superuser before the roles existed becomes the owner's. */
async function handObjectsToOwner(storeAdminUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: storeAdminUrl });
  await client.connect();
  try {
    await client.query(`
      do $$
      declare
        item record;
      begin
        for item in
          select c.oid::regclass::text as name, c.relkind
            from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where n.nspname in ('public', 'drizzle') and c.relkind in ('r', 'p', 'v', 'm', 'S')
             and pg_get_userbyid(c.relowner) <> '${STORE_OWNER_ROLE}'
             -- a sequence owned by a column moves with its table
             and not (c.relkind = 'S' and exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype in ('a', 'i')))
        loop
          execute format('alter %s %s owner to ${STORE_OWNER_ROLE}', case item.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view' else 'table' end, item.name);
        end loop;
        for item in
          select p.oid::regprocedure::text as name
            from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname in ('public', 'drizzle') and pg_get_userbyid(p.proowner) <> '${STORE_OWNER_ROLE}'
        loop
          execute format('alter function %s owner to ${STORE_OWNER_ROLE}', item.name);
        end loop;
        if exists (select 1 from pg_namespace where nspname = 'drizzle' and pg_get_userbyid(nspowner) <> '${STORE_OWNER_ROLE}') then
          execute 'alter schema drizzle owner to ${STORE_OWNER_ROLE}';
        end if;
      end $$`);
  } finally {
    await client.end();
  }
}

function rolePasswords(dataDir: string): RolePasswords {
  const file = path.join(dataDir, 'store-roles.json');
  try {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<RolePasswords>;
    if (stored.owner && stored.app) return { owner: stored.owner, app: stored.app };
  } catch {
    // first start: made below
  }
  const made = { owner: randomBytes(24).toString('base64url'), app: randomBytes(24).toString('base64url') };
  try {
    fs.writeFileSync(file, JSON.stringify(made), { mode: 0o600, flag: 'wx' });
    return made;
  } catch (error) {
    // Another process starting at the same moment wrote it first: use its passwords.
    if ((error as { code?: string }).code !== 'EEXIST') throw error;
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RolePasswords;
  }
}
