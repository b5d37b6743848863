/**
 * Issue "A run log that no one can quietly cut or rewrite", reproduction 3 and "least privilege in
 * the store": the owner role migrates, the app role gets exactly db/store-grants.ts. The app role
 * cannot set session_replication_role, update or delete an event, truncate the log or switch its
 * triggers off; every store table has a decision in db/store-grants.ts; start-up refuses a
 * superuser app role, a missing owner URL and one role for both; embedded mode makes both roles
 * and hands a data folder's older objects to the owner.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STORE_GRANTS } from '../../db/store-grants';
import { startRuntime } from '../../app/boot/runtime.server';
import { newSigningKeyPem } from '../../app/runs/run-log-fixtures';
import { applyStoreGrants, migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { ensureEmbeddedStoreRoles, STORE_APP_ROLE, STORE_OWNER_ROLE } from '../../app/runtime/store-roles.server';
import { createTestDatabase, testAdminUrl, type TestDatabase } from '../support/databases';

const suffix = randomBytes(3).toString('hex');
const OWNER = `store_owner_${suffix}`;
const APP = `store_app_${suffix}`;
let db: TestDatabase;
let ownerUrl: string;
let appUrl: string;
let app: Store;

const withCredentials = (url: string, user: string, password: string) => {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password;
  return parsed.toString();
};

async function asAdmin<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('store_roles');
  const password = randomBytes(12).toString('hex');
  await asAdmin(db.url, async (admin) => {
    for (const role of [OWNER, APP]) {
      const { rows } = await admin.query<{ sql: string }>(`select format('create role %I login password %L', $1::text, $2::text) as sql`, [role, password]);
      await admin.query(rows[0]!.sql);
    }
    await admin.query(`alter database ${pg.escapeIdentifier(db.name)} owner to ${OWNER}`);
  });
  ownerUrl = withCredentials(db.url, OWNER, password);
  appUrl = withCredentials(db.url, APP, password);
  const owner = openStore(ownerUrl, { max: 1 });
  try {
    await migrateStore(owner);
    await applyStoreGrants(owner.pool, APP);
  } finally {
    await owner.close();
  }
  app = openStore(appUrl, { max: 2 });
});

afterAll(async () => {
  await app?.close();
  await db?.drop();
  await asAdmin(testAdminUrl(), async (admin) => {
    for (const role of [OWNER, APP]) await admin.query(`drop role if exists ${pg.escapeIdentifier(role)}`);
  }).catch(() => undefined);
});

const refusedWith = async (sql: string) => app.pool.query(sql).then(() => 'allowed', (error: { code?: string }) => error.code);

describe("the app role's grants", () => {
  it('cannot switch the triggers off, update, delete or truncate the run log and its checkpoints (reproduction 3)', async () => {
    expect(await refusedWith('set session_replication_role = replica')).toBe('42501');
    expect(await refusedWith(`update run_events set actor = actor`)).toBe('42501');
    expect(await refusedWith(`delete from run_events`)).toBe('42501');
    expect(await refusedWith(`delete from run_checkpoints`)).toBe('42501');
    expect(await refusedWith(`update run_checkpoints set head = head`)).toBe('42501');
    expect(await refusedWith(`truncate run_events`)).toBe('42501');
    expect(await refusedWith(`alter table run_events disable trigger all`)).toBe('42501');
    expect(await refusedWith(`delete from audit_log`)).toBe('42501');
    // What it needs still works.
    expect(await refusedWith(`select count(*) from run_events`)).toBe('allowed');
  });

  it('are exactly db/store-grants.ts, and every store table has a decision there', async () => {
    const { rows: tables } = await app.pool.query<{ tablename: string }>(`select tablename from pg_tables where schemaname = 'public' order by tablename`);
    expect(tables.map((row) => row.tablename)).toEqual(Object.keys(STORE_GRANTS).sort());
    const { rows } = await app.pool.query<{ table_name: string; privilege_type: string }>(
      `select table_name, privilege_type from information_schema.role_table_grants where grantee = $1 and table_schema = 'public'`,
      [APP],
    );
    const granted: Record<string, string[]> = {};
    for (const row of rows) (granted[row.table_name] ??= []).push(row.privilege_type);
    for (const [table, privileges] of Object.entries(STORE_GRANTS)) expect(granted[table]?.sort(), table).toEqual([...privileges].sort());
  });
});

describe('start-up', () => {
  const secrets = { SESSION_SECRET: randomBytes(32).toString('hex'), SIGNING_KEY: newSigningKeyPem() };
  const start = (env: Record<string, string>) =>
    startRuntime({ source: { NODE_ENV: 'test', ...env, ...secrets, RUNSHEET_DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-roles-')) } });

  it('runs with the two roles: the owner migrates, the app connects with its grants', async () => {
    const runtime = await start({ DATABASE_URL: appUrl, DATABASE_OWNER_URL: ownerUrl });
    try {
      const { rows } = await runtime.store.pool.query<{ user: string }>('select current_user as user');
      expect(rows[0]!.user).toBe(APP);
    } finally {
      await runtime.stop();
    }
  });

  it('refuses a superuser app role, no owner URL, and one role for both, each saying what to set', async () => {
    await expect(start({ DATABASE_URL: db.url })).rejects.toThrow(/DATABASE_URL is set without DATABASE_OWNER_URL/);
    await expect(start({ DATABASE_URL: db.url, DATABASE_OWNER_URL: ownerUrl })).rejects.toThrow(/connects as .*, a superuser: it could delete or rewrite the run log/);
    await expect(start({ DATABASE_URL: ownerUrl, DATABASE_OWNER_URL: ownerUrl })).rejects.toThrow(/are the same role/);
    // The escape hatch of a throwaway set-up.
    const runtime = await start({ DATABASE_URL: db.url, RUNSHEET_ALLOW_SUPERUSER: '1' });
    await runtime.stop();
  });
});

describe('embedded mode', () => {
  it('makes both roles and hands the objects a superuser made before to the owner', async () => {
    const legacy = await createTestDatabase('store_roles_legacy');
    try {
      const superuserStore = openStore(legacy.url, { max: 1 });
      await migrateStore(superuserStore).finally(() => superuserStore.close());
      const urls = await ensureEmbeddedStoreRoles(testAdminUrl(), fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-embedded-roles-')), legacy.name);
      const owners = await asAdmin(legacy.url, async (admin) =>
        (await admin.query<{ owner: string }>(`select distinct tableowner as owner from pg_tables where schemaname in ('public', 'drizzle')`)).rows.map((row) => row.owner),
      );
      expect(owners).toEqual([STORE_OWNER_ROLE]);
      const owner = openStore(urls.ownerUrl, { max: 1 });
      await migrateStore(owner);
      await applyStoreGrants(owner.pool, STORE_APP_ROLE);
      await owner.close();
      const embeddedApp = openStore(urls.appUrl, { max: 1 });
      try {
        expect(await embeddedApp.pool.query('delete from run_events').then(() => 'allowed', (error: { code?: string }) => error.code)).toBe('42501');
        expect((await embeddedApp.pool.query('select count(*)::int as n from runs')).rows[0].n).toBe(0);
      } finally {
        await embeddedApp.close();
      }
    } finally {
      await legacy.drop();
    }
  });
});
