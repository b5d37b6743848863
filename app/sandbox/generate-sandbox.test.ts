// Sandbox generator and Migration 008 (plans/008-add-active-org-tracking), against a real
// PostgreSQL: a fresh database of its own on the shared embedded test server
// (tests/support/global-setup.ts), dropped afterwards.
//
// The tests in each describe block run in order and share state: the migration block applies
// the migration, then re-applies it, then rolls it back. Tests that change data do so inside
// a transaction they roll back, so later tests see the same sandbox.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { parse } from 'libpg-query';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import {
  SANDBOX_FIXED_ACCOUNTS,
  SANDBOX_FIXED_ORGANIZATIONS,
  generateSandbox,
  sandboxApiToken,
  type SandboxSummary,
} from './generate-sandbox.server';

const N = 2000;
const SEED = 7;
const PLAN_DIR = new URL('../../plans/008-add-active-org-tracking/', import.meta.url);
const MIGRATION_URL = new URL('008_add_active_org_tracking.sql', PLAN_DIR);
const ROLLBACK_URL = new URL('rollback.sql', PLAN_DIR);

let database: TestDatabase | undefined;
let client: pg.Client;

beforeAll(async () => {
  database = await createTestDatabase('sandbox');
  client = new pg.Client({ connectionString: database.url });
  await client.connect();
  // Row text of timestamptz depends on TimeZone; fix it so dumps compare across machines.
  await client.query(`SET TimeZone = 'UTC'`);
}, 120_000);

afterAll(async () => {
  await client?.end().catch(() => undefined);
  await database?.drop();
}, 60_000);

// ---- helpers -----------------------------------------------------------------------------------

async function one<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T> {
  const result = await client.query(sql, params);
  return result.rows[0] as T;
}

async function value<T = unknown>(sql: string, params: unknown[] = []): Promise<T> {
  const row = await one<Record<string, T>>(sql, params);
  return Object.values(row)[0] as T;
}

/** Runs a migration file the way the runner does: the whole file inside one transaction. */
async function applyFile(url: URL): Promise<pg.QueryResult[]> {
  const sql = await readFile(url, 'utf8');
  await client.query('BEGIN');
  try {
    const results = (await client.query(sql)) as unknown as pg.QueryResult | pg.QueryResult[];
    await client.query('COMMIT');
    return Array.isArray(results) ? results : [results];
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  }
}

/** Runs `fn` in a transaction that is always rolled back. */
async function rolledBack<T>(fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    return await fn();
  } finally {
    await client.query('ROLLBACK');
  }
}

/** The SQLSTATE a statement fails with, inside a savepoint so the transaction survives. */
async function sqlstateOf(sql: string, params: unknown[] = []): Promise<string | undefined> {
  await client.query('SAVEPOINT probe');
  try {
    await client.query(sql, params);
    await client.query('RELEASE SAVEPOINT probe');
    return undefined;
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT probe');
    return (error as { code?: string }).code;
  }
}

/** md5 over an ordered text dump of every sandbox table (the data, not its physical layout). */
async function dataFingerprint(): Promise<string> {
  return value<string>(`
    SELECT md5(concat_ws(E'\\n--\\n',
      (SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM platform.organizations AS t),
      (SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM platform.users AS t),
      (SELECT string_agg(t::text, E'\\n' ORDER BY t.organization_id, t.user_id)
         FROM platform.organization_members AS t),
      (SELECT string_agg(t::text, E'\\n' ORDER BY t.token_hash) FROM platform.api_tokens AS t),
      (SELECT string_agg(t::text, E'\\n' ORDER BY t.id) FROM other.users AS t)))`);
}

/** md5 of platform.users including every row version's location and creating transaction. */
async function usersPhysicalFingerprint(): Promise<string> {
  return value<string>(`
    SELECT md5(string_agg(t.ctid::text || t.xmin::text || t::text, E'\\n' ORDER BY t.id))
    FROM platform.users AS t`);
}

/** md5 of everything 008 touches in the catalog: columns, constraints, indexes, functions. */
async function catalogFingerprint(): Promise<string> {
  return value<string>(`
    SELECT md5(concat_ws(E'\\n',
      (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                           || coalesce(' ' || col_description(a.attrelid, a.attnum), ''),
                         ',' ORDER BY a.attnum)
         FROM pg_attribute AS a
        WHERE a.attrelid = 'platform.users'::regclass AND a.attnum > 0 AND NOT a.attisdropped),
      (SELECT string_agg(c.oid::text || c.conname || pg_get_constraintdef(c.oid), ','
                         ORDER BY c.conname)
         FROM pg_constraint AS c WHERE c.conrelid = 'platform.users'::regclass),
      (SELECT string_agg(i.indexrelid::text || pg_get_indexdef(i.indexrelid) || i.indisvalid::text,
                         ',' ORDER BY i.indexrelid)
         FROM pg_index AS i WHERE i.indrelid = 'platform.users'::regclass),
      (SELECT string_agg(p.oid::text || pg_get_functiondef(p.oid)
                           || coalesce(obj_description(p.oid, 'pg_proc'), ''),
                         ',' ORDER BY p.proname)
         FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = 'platform')))`);
}

/** What is left of 008 in the platform schema, looked up by schema, never by name alone. */
async function migrationObjects(): Promise<{
  column: number;
  fk: number;
  index: number;
  functions: number;
}> {
  const row = await one<Record<string, string>>(`
    SELECT
      (SELECT count(*) FROM information_schema.columns
        WHERE table_schema = 'platform' AND table_name = 'users'
          AND column_name = 'active_org_id') AS column,
      (SELECT count(*) FROM pg_constraint
        WHERE conname = 'users_active_org_id_fkey'
          AND conrelid = 'platform.users'::regclass) AS fk,
      (SELECT count(*) FROM pg_indexes
        WHERE schemaname = 'platform' AND indexname = 'idx_users_active_org') AS index,
      (SELECT count(*) FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
        WHERE n.nspname = 'platform'
          AND p.proname IN ('set_user_active_org', 'get_user_active_org')) AS functions`);
  return {
    column: Number(row.column),
    fk: Number(row.fk),
    index: Number(row.index),
    functions: Number(row.functions),
  };
}

const FIXED_USERS = SANDBOX_FIXED_ACCOUNTS.length;
const FIXED_ORGS = SANDBOX_FIXED_ORGANIZATIONS.length;
const RFC9562_V8 = '^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$';

// ---- the generator -----------------------------------------------------------------------------

describe('generateSandbox', { timeout: 60_000 }, () => {
  let summary: SandboxSummary;

  it('gives byte-identical data for the same seed and different data for another', async () => {
    const first = await generateSandbox(client, { users: N, seed: SEED });
    const firstDump = await dataFingerprint();
    const second = await generateSandbox(client, { users: N, seed: SEED });
    const secondDump = await dataFingerprint();
    expect(secondDump).toBe(firstDump);
    expect({ ...second, durationMs: 0 }).toEqual({ ...first, durationMs: 0 });

    const other = await generateSandbox(client, { users: N, seed: SEED + 1 });
    expect(await dataFingerprint()).not.toBe(firstDump);
    expect(other.apiTokens).not.toEqual(first.apiTokens);

    summary = await generateSandbox(client, { users: N, seed: SEED });
    expect(await dataFingerprint()).toBe(firstDump);
  });

  it('counts N generated users plus the fixed accounts, and returns true counts', async () => {
    const counts = await one<Record<string, string>>(`
      SELECT (SELECT count(*) FROM platform.users) AS users,
             (SELECT count(*) FROM platform.organizations) AS organizations,
             (SELECT count(*) FROM platform.organization_members) AS memberships,
             (SELECT count(*) FROM platform.users AS u
               WHERE NOT EXISTS (SELECT 1 FROM platform.organization_members AS m
                                  WHERE m.user_id = u.id)) AS without_org`);
    expect(summary.users).toBe(N + FIXED_USERS);
    expect(summary.organizations).toBe(Math.max(3, Math.round(N / 20)) + FIXED_ORGS);
    expect(Number(counts.users)).toBe(summary.users);
    expect(Number(counts.organizations)).toBe(summary.organizations);
    expect(Number(counts.memberships)).toBe(summary.memberships);
    expect(Number(counts.without_org)).toBe(summary.usersWithoutOrg);
    expect(summary.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('has about 5 % of users without an organization and about 1.27 memberships per user', () => {
    // Binomial spread at N = 2000 is about ±0.5 % and ±0.014: the bounds are over 3 sigma.
    const withoutOrg = summary.usersWithoutOrg / summary.users;
    expect(withoutOrg).toBeGreaterThan(0.03);
    expect(withoutOrg).toBeLessThan(0.07);
    const perUser = summary.memberships / summary.users;
    expect(perUser).toBeGreaterThan(1.2);
    expect(perUser).toBeLessThan(1.34);
  });

  it('never ties joined_at within a user, and often joins the larger org id first', async () => {
    expect(
      Number(
        await value(`
          SELECT count(*) FROM (
            SELECT user_id, joined_at FROM platform.organization_members
            GROUP BY user_id, joined_at HAVING count(*) > 1) AS ties`),
      ),
    ).toBe(0);

    // Users for whom "earliest joined_at" and "smallest organization id" disagree: these are
    // what let a check tell the backfill rule from min(organization_id).
    const disagreeing = Number(
      await value(`
        SELECT count(*) FROM (
          SELECT user_id,
                 (array_agg(organization_id ORDER BY joined_at))[1] AS earliest,
                 (array_agg(organization_id ORDER BY organization_id))[1] AS smallest
          FROM platform.organization_members
          GROUP BY user_id) AS x
        WHERE earliest <> smallest`),
    );
    expect(disagreeing).toBeGreaterThan(50);

    // Every membership starts after its organization and its user exist.
    expect(
      Number(
        await value(`
          SELECT count(*) FROM platform.organization_members AS m
          JOIN platform.organizations AS o ON o.id = m.organization_id
          JOIN platform.users AS u ON u.id = m.user_id
          WHERE m.joined_at < o.created_at OR m.joined_at < u.created_at`),
      ),
    ).toBe(0);
  });

  it('makes RFC 9562 uuids (version 8), which strict validators accept', async () => {
    const bad = await one<Record<string, string>>(
      `SELECT (SELECT count(*) FROM platform.users WHERE id::text !~ $1) AS users,
              (SELECT count(*) FROM platform.organizations WHERE id::text !~ $1) AS orgs`,
      [RFC9562_V8],
    );
    expect(bad).toEqual({ users: '0', orgs: '0' });
  });

  it('creates the fixed accounts with their memberships and hashed tokens', async () => {
    const demo = await client.query<{ slug: string; id: string; role: string }>(`
      SELECT o.slug, o.id::text AS id, m.role
      FROM platform.organization_members AS m
      JOIN platform.users AS u ON u.id = m.user_id
      JOIN platform.organizations AS o ON o.id = m.organization_id
      WHERE u.email = 'api-demo@sandbox.example'
      ORDER BY m.joined_at`);
    expect(demo.rows.map((r) => r.slug).sort()).toEqual(['sandbox-api-alpha', 'sandbox-api-beta']);
    // The organization joined first has the larger id (see SANDBOX_FIXED_ACCOUNTS).
    expect(demo.rows[0]!.id > demo.rows[1]!.id).toBe(true);
    expect(demo.rows[0]!.role).toBe('owner');

    expect(
      Number(
        await value(`
          SELECT count(*) FROM platform.organization_members AS m
          JOIN platform.users AS u ON u.id = m.user_id
          WHERE u.email = 'api-loner@sandbox.example'`),
      ),
    ).toBe(0);

    expect(summary.apiTokens.map((t) => t.email)).toEqual(
      SANDBOX_FIXED_ACCOUNTS.map((a) => a.email),
    );
    for (const { email, token } of summary.apiTokens) {
      expect(token).toMatch(/^sbx_[0-9a-f]{40}$/);
      expect(token).toBe(sandboxApiToken(SEED, email));
      const stored = await client.query<{ email: string }>(
        `SELECT u.email FROM platform.api_tokens AS t
         JOIN platform.users AS u ON u.id = t.user_id WHERE t.token_hash = $1`,
        [createHash('sha256').update(token).digest('hex')],
      );
      expect(stored.rows).toEqual([{ email }]);
    }
    // Only hashes are stored.
    expect(
      Number(
        await value(`SELECT count(*) FROM platform.api_tokens WHERE token_hash LIKE 'sbx_%'`),
      ),
    ).toBe(0);
  });

  it('leaves platform as migrations 001-006 did, beside a decoy schema', async () => {
    expect(await migrationObjects()).toEqual({ column: 0, fk: 0, index: 0, functions: 0 });
    expect(
      await value(`SELECT count(*) FROM pg_indexes
                   WHERE schemaname = 'other' AND indexname = 'idx_users_active_org'`),
    ).toBe('1');

    // The seed's step 1 counts user x membership rows, not users: on this sandbox the
    // difference is visible, which is what the snapshot correction is about.
    const seedStep1 = await one<{ user_count: string }>(`
      SELECT COUNT(*) AS user_count
      FROM platform.users u
      LEFT JOIN platform.organization_members om ON u.id = om.user_id`);
    expect(Number(seedStep1.user_count)).toBe(summary.memberships + summary.usersWithoutOrg);
    expect(Number(seedStep1.user_count)).toBeGreaterThan(summary.users);
  });

  it('refuses bad options before touching the database', async () => {
    const before = await dataFingerprint();
    await expect(generateSandbox(client, { users: -1 })).rejects.toThrow(RangeError);
    await expect(generateSandbox(client, { users: 1.5 })).rejects.toThrow(RangeError);
    await expect(generateSandbox(client, { users: 10, seed: Number.NaN })).rejects.toThrow(
      RangeError,
    );
    expect(await dataFingerprint()).toBe(before);
  });

  it('refuses to replace a platform schema it did not create', async () => {
    const before = await dataFingerprint();
    const comment = await value<string>(`SELECT obj_description('platform'::regnamespace)`);
    await client.query('COMMENT ON SCHEMA platform IS NULL');
    try {
      await expect(generateSandbox(client, { users: 10, seed: SEED })).rejects.toThrow(
        /refusing to replace schema platform/,
      );
      expect(await dataFingerprint()).toBe(before);
    } finally {
      // COMMENT takes no bind parameters: let the server quote the text it gave us.
      const restore = await value<string>(`SELECT format('COMMENT ON SCHEMA platform IS %L', $1::text)`, [
        comment,
      ]);
      await client.query(restore);
    }
    expect(await value(`SELECT obj_description('platform'::regnamespace)`)).toBe(comment);
  });
});

// ---- Migration 008 -----------------------------------------------------------------------------

describe('Migration 008: add active organization tracking', { timeout: 60_000 }, () => {
  // A user with two memberships whose earlier-joined organization has the LARGER id: the
  // backfill must pick that one, not min(organization_id).
  let earliestNotSmallest: { user_id: string; earliest: string; smallest: string };
  // A user whose two memberships are made to tie on joined_at: the smaller id must win.
  let tied: { user_id: string; smallest: string };
  let usersAfterFirstApply: string;

  beforeAll(async () => {
    await generateSandbox(client, { users: N, seed: SEED });
    const candidates = await client.query<{ user_id: string; earliest: string; smallest: string }>(`
      SELECT user_id::text,
             (array_agg(organization_id ORDER BY joined_at))[1]::text AS earliest,
             (array_agg(organization_id ORDER BY organization_id))[1]::text AS smallest
      FROM platform.organization_members
      GROUP BY user_id
      HAVING count(*) = 2
         AND (array_agg(organization_id ORDER BY joined_at))[1]
             <> (array_agg(organization_id ORDER BY organization_id))[1]
      ORDER BY user_id
      LIMIT 2`);
    expect(candidates.rows).toHaveLength(2);
    earliestNotSmallest = candidates.rows[0]!;
    const tie = candidates.rows[1]!;
    await client.query(
      `UPDATE platform.organization_members AS m
       SET joined_at = (SELECT min(joined_at) FROM platform.organization_members
                        WHERE user_id = $1::uuid)
       WHERE m.user_id = $1::uuid`,
      [tie.user_id],
    );
    tied = { user_id: tie.user_id, smallest: tie.smallest };
  }, 60_000);

  it('is one parseable transactional script: no BEGIN/COMMIT, no psql meta-commands', async () => {
    for (const url of [MIGRATION_URL, ROLLBACK_URL]) {
      const sql = await readFile(url, 'utf8');
      expect(sql).not.toMatch(/^\s*\\/m);
      const stmts = (await parse(sql)).stmts ?? [];
      expect(stmts.length).toBeGreaterThan(0);
      const kinds = stmts.map((s) => Object.keys(s.stmt ?? {})[0]);
      expect(kinds).not.toContain('TransactionStmt');
    }
  });

  it('adds the column, foreign key, partial index and both functions', async () => {
    await applyFile(MIGRATION_URL);
    expect(await migrationObjects()).toEqual({ column: 1, fk: 1, index: 1, functions: 2 });

    const column = await one(`
      SELECT data_type, is_nullable FROM information_schema.columns
      WHERE table_schema = 'platform' AND table_name = 'users' AND column_name = 'active_org_id'`);
    expect(column).toEqual({ data_type: 'uuid', is_nullable: 'YES' });

    const fk = await one(`
      SELECT confrelid::regclass::text AS target, confdeltype, convalidated
      FROM pg_constraint
      WHERE conname = 'users_active_org_id_fkey' AND conrelid = 'platform.users'::regclass`);
    expect(fk).toEqual({ target: 'platform.organizations', confdeltype: 'n', convalidated: true });

    const index = await one(`
      SELECT i.indisvalid, pg_get_expr(i.indpred, i.indrelid) AS predicate
      FROM pg_index AS i
      WHERE i.indexrelid = 'platform.idx_users_active_org'::regclass`);
    expect(index).toEqual({ indisvalid: true, predicate: '(active_org_id IS NOT NULL)' });

    // The seed's step 6 (by table name only) now finds two indexes, one of them not ours.
    expect(
      await value(`SELECT count(*) FROM pg_indexes
                   WHERE tablename = 'users' AND indexname = 'idx_users_active_org'`),
    ).toBe('2');
  });

  it('backfills the earliest joined_at, ties broken by the smaller organization id', async () => {
    // Independent formulation of the rule (LATERAL ... LIMIT 1, not DISTINCT ON).
    expect(
      Number(
        await value(`
          SELECT count(*) FROM platform.users AS u
          LEFT JOIN LATERAL (
            SELECT m.organization_id FROM platform.organization_members AS m
            WHERE m.user_id = u.id
            ORDER BY m.joined_at, m.organization_id
            LIMIT 1) AS first ON true
          WHERE u.active_org_id IS DISTINCT FROM first.organization_id`),
      ),
    ).toBe(0);

    const activeOf = (userId: string) =>
      value<string | null>(
        `SELECT active_org_id::text FROM platform.users WHERE id = $1::uuid`,
        [userId],
      );
    expect(await activeOf(earliestNotSmallest.user_id)).toBe(earliestNotSmallest.earliest);
    expect(await activeOf(earliestNotSmallest.user_id)).not.toBe(earliestNotSmallest.smallest);
    expect(await activeOf(tied.user_id)).toBe(tied.smallest);

    const demo = await value<boolean>(`
      SELECT u.active_org_id = (SELECT max(o.id::text)::uuid FROM platform.organizations AS o
                                WHERE o.slug IN ('sandbox-api-alpha', 'sandbox-api-beta'))
      FROM platform.users AS u WHERE u.email = 'api-demo@sandbox.example'`);
    expect(demo).toBe(true);

    const counts = await one<Record<string, string>>(`
      SELECT count(*) FILTER (WHERE active_org_id IS NULL) AS without_active,
             count(*) FILTER (WHERE active_org_id IS NULL AND EXISTS (
               SELECT 1 FROM platform.organization_members AS m WHERE m.user_id = u.id)) AS missed
      FROM platform.users AS u`);
    expect(Number(counts.missed)).toBe(0);
    expect(Number(counts.without_active)).toBeGreaterThan(0);
    usersAfterFirstApply = await dataFingerprint();
  });

  it('changes nothing when applied again, and raises no error', async () => {
    const physicalBefore = await usersPhysicalFingerprint();
    const catalogBefore = await catalogFingerprint();
    const results = await applyFile(MIGRATION_URL);
    const update = results.find((r) => r.command === 'UPDATE');
    expect(update?.rowCount).toBe(0);
    expect(await usersPhysicalFingerprint()).toBe(physicalBefore);
    expect(await catalogFingerprint()).toBe(catalogBefore);
    expect(await dataFingerprint()).toBe(usersAfterFirstApply);
  });

  it('set_user_active_org refuses an organization the user is not in (SQLSTATE 42501)', async () => {
    await rolledBack(async () => {
      const user = earliestNotSmallest.user_id;
      const outsider = await value<string>(
        `SELECT o.id::text FROM platform.organizations AS o
         WHERE NOT EXISTS (SELECT 1 FROM platform.organization_members AS m
                           WHERE m.organization_id = o.id AND m.user_id = $1::uuid)
         ORDER BY o.id LIMIT 1`,
        [user],
      );
      expect(
        await sqlstateOf(`SELECT platform.set_user_active_org($1::uuid, $2::uuid)`, [
          user,
          outsider,
        ]),
      ).toBe('42501');
      expect(
        await sqlstateOf(`SELECT platform.set_user_active_org($1::uuid, gen_random_uuid())`, [
          user,
        ]),
      ).toBe('42501');

      // A member's organization is accepted, returned and read back.
      expect(
        await value(`SELECT platform.set_user_active_org($1::uuid, $2::uuid)::text`, [
          user,
          earliestNotSmallest.smallest,
        ]),
      ).toBe(earliestNotSmallest.smallest);
      expect(await value(`SELECT platform.get_user_active_org($1::uuid)::text`, [user])).toBe(
        earliestNotSmallest.smallest,
      );

      // NULL clears.
      expect(
        await value(`SELECT platform.set_user_active_org($1::uuid, NULL)`, [user]),
      ).toBeNull();
      expect(await value(`SELECT platform.get_user_active_org($1::uuid)`, [user])).toBeNull();

      // Clearing for a user that does not exist, and a NULL user.
      expect(
        await sqlstateOf(`SELECT platform.set_user_active_org(gen_random_uuid(), NULL)`),
      ).toBe('P0002');
      expect(await sqlstateOf(`SELECT platform.set_user_active_org(NULL, NULL)`)).toBe('22004');
    });
  });

  it('get_user_active_org hides an organization the user has since left', async () => {
    await rolledBack(async () => {
      const user = earliestNotSmallest.user_id;
      expect(await value(`SELECT platform.get_user_active_org($1::uuid)::text`, [user])).toBe(
        earliestNotSmallest.earliest,
      );
      await client.query(
        `DELETE FROM platform.organization_members
         WHERE user_id = $1::uuid AND organization_id = $2::uuid`,
        [user, earliestNotSmallest.earliest],
      );
      expect(await value(`SELECT platform.get_user_active_org($1::uuid)`, [user])).toBeNull();
    });
  });

  it('rejects an unknown organization id through the foreign key (SQLSTATE 23503)', async () => {
    await rolledBack(async () => {
      expect(
        await sqlstateOf(
          `UPDATE platform.users SET active_org_id = gen_random_uuid() WHERE id = $1::uuid`,
          [tied.user_id],
        ),
      ).toBe('23503');
    });
  });

  it("sets users' active_org_id to NULL when their organization is deleted", async () => {
    await rolledBack(async () => {
      const org = await one<{ id: string; users: string }>(`
        SELECT active_org_id::text AS id, count(*) AS users FROM platform.users
        WHERE active_org_id IS NOT NULL
        GROUP BY active_org_id ORDER BY count(*) DESC, active_org_id LIMIT 1`);
      expect(Number(org.users)).toBeGreaterThan(1);
      const holders = await client.query<{ id: string }>(
        `SELECT id::text FROM platform.users WHERE active_org_id = $1::uuid`,
        [org.id],
      );
      await client.query(`DELETE FROM platform.organizations WHERE id = $1::uuid`, [org.id]);
      const after = await client.query(
        `SELECT count(*) FILTER (WHERE active_org_id IS NOT NULL) AS still_set, count(*) AS n
         FROM platform.users WHERE id = ANY($1::uuid[])`,
        [holders.rows.map((r) => r.id)],
      );
      expect(after.rows[0]).toEqual({ still_set: '0', n: String(holders.rows.length) });
    });
  });

  it("shows the seed's rollback is wrong: DROP COLUMN ... CASCADE leaves the functions", async () => {
    await rolledBack(async () => {
      await client.query('ALTER TABLE platform.users DROP COLUMN active_org_id CASCADE');
      const left = await migrationObjects();
      expect(left).toEqual({ column: 0, fk: 0, index: 0, functions: 2 });
      // ...and what is left fails at its first call.
      expect(
        await sqlstateOf(`SELECT platform.get_user_active_org($1::uuid)`, [tied.user_id]),
      ).toBe('42703');
    });
  });

  it('rollback.sql removes column, foreign key, index and both functions, and only them', async () => {
    await applyFile(ROLLBACK_URL);
    expect(await migrationObjects()).toEqual({ column: 0, fk: 0, index: 0, functions: 0 });
    // The same-named index in schema other is untouched.
    expect(
      await value(`SELECT count(*) FROM pg_indexes
                   WHERE schemaname = 'other' AND indexname = 'idx_users_active_org'`),
    ).toBe('1');
    // The seed's rollback check ("some column of users exists") would pass either way.
    expect(
      await value(`SELECT count(*) > 0 FROM information_schema.columns
                   WHERE table_schema = 'platform' AND table_name = 'users'`),
    ).toBe(true);

    // Idempotent too.
    await applyFile(ROLLBACK_URL);
    expect(await migrationObjects()).toEqual({ column: 0, fk: 0, index: 0, functions: 0 });
  });

  it('applies again after the rollback with the same result', async () => {
    await applyFile(MIGRATION_URL);
    expect(await migrationObjects()).toEqual({ column: 1, fk: 1, index: 1, functions: 2 });
    expect(await dataFingerprint()).toBe(usersAfterFirstApply);
  });
});
