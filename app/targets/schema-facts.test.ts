import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { PlanObjectsSchema } from '../plans/plan-schema';
import { ensureLedger, readPlanLedgerState } from './ledger.server';
import { explainPlanStateOnTarget, planStateOnTarget, readSchemaFacts } from './schema-facts.server';

/** Migration 008's objects, as its plan names them. */
const objects = PlanObjectsSchema.parse({
  columns: [{ schema: 'platform', table: 'users', column: 'active_org_id', type: 'uuid', nullable: true }],
  indexes: [{ schema: 'platform', name: 'idx_users_active_org', table: 'users', partial: true }],
  functions: [
    { schema: 'platform', name: 'set_user_active_org' },
    { schema: 'platform', name: 'get_user_active_org' },
  ],
  constraints: [{ schema: 'platform', name: 'users_active_org_id_fkey', table: 'users' }],
  backfill: { schema: 'platform', table: 'users', column: 'active_org_id' },
});

const BASE = `
  create schema platform;
  create table platform.organizations (id uuid primary key);
  create table platform.users (id uuid primary key, email text not null);
  insert into platform.organizations values ('00000000-0000-0000-0000-00000000000a');
  insert into platform.users select ('00000000-0000-0000-0000-' || lpad(n::text, 12, '0'))::uuid, 'u' || n || '@example.test'
    from generate_series(1, 8) as n;
  -- Another schema with a users table and an index of the same name: the seed's Step 6 would find it.
  create schema other;
  create table other.users (id uuid primary key, active_org_id uuid);
  create index idx_users_active_org on other.users (active_org_id) where active_org_id is not null;
  create function other.set_user_active_org(uuid, uuid) returns void language plpgsql as $$ begin end $$;
`;

const MIGRATION = `
  alter table platform.users add column active_org_id uuid
    constraint users_active_org_id_fkey references platform.organizations (id) on delete set null;
  create index idx_users_active_org on platform.users (active_org_id) where active_org_id is not null;
  create function platform.set_user_active_org(p_user_id uuid, p_org_id uuid) returns void language plpgsql as $$
  begin
    update platform.users set active_org_id = p_org_id where id = p_user_id;
  end $$;
  create function platform.get_user_active_org(p_user_id uuid) returns uuid language plpgsql stable as $$
  begin
    return (select active_org_id from platform.users where id = p_user_id);
  end $$;
  update platform.users set active_org_id = '00000000-0000-0000-0000-00000000000a'
   where id in (select id from platform.users order by id limit 3);
`;

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase('schema_facts');
  pool = new pg.Pool({ connectionString: db.url, max: 5 });
  await pool.query(BASE);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

describe('readSchemaFacts', () => {
  it('before the migration: nothing present, even where another schema has objects of the same names', async () => {
    const facts = await readSchemaFacts(pool, objects);
    expect(facts.indexes[0]).toMatchObject({ schema: 'platform', name: 'idx_users_active_org', exists: false, valid: null, predicate: null });
    expect(facts.functions.map((f) => f.exists)).toEqual([false, false]);
    expect(facts.columns[0]).toMatchObject({ exists: false, dataType: null, matchesPlan: false });
    expect(facts.constraints[0]).toMatchObject({ exists: false, definition: null });
    expect(facts.backfill).toEqual({ schema: 'platform', table: 'users', column: 'active_org_id', columnExists: false, total: null, withValue: null, percentage: null });
    expect(facts).toMatchObject({ objectCount: 5, presentCount: 0, allPresent: false, nonePresent: true });
  });

  it('after the migration: every object, its index validity and predicate, and the backfill share', async () => {
    await pool.query(MIGRATION);
    const facts = await readSchemaFacts(pool, objects);
    expect(facts.columns[0]).toEqual({
      schema: 'platform',
      table: 'users',
      column: 'active_org_id',
      exists: true,
      dataType: 'uuid',
      nullable: true,
      matchesPlan: true,
    });
    expect(facts.indexes[0]).toMatchObject({
      exists: true,
      valid: true,
      ready: true,
      predicate: '(active_org_id IS NOT NULL)',
      matchesPlan: true,
    });
    expect(facts.indexes[0]!.definition).toMatch(/^CREATE INDEX idx_users_active_org ON platform\.users /);
    expect(facts.functions).toMatchObject([
      { exists: true, signatures: ['platform.set_user_active_org(uuid,uuid)'] },
      { exists: true, signatures: ['platform.get_user_active_org(uuid)'] },
    ]);
    expect(facts.functions[0]!.definitionHash).toMatch(/^[0-9a-f]{32}$/);
    expect(facts.constraints[0]!.definition).toBe('FOREIGN KEY (active_org_id) REFERENCES platform.organizations(id) ON DELETE SET NULL');
    expect(facts.backfill).toMatchObject({ columnExists: true, total: 8, withValue: 3, percentage: 37.5 });
    expect(facts).toMatchObject({ presentCount: 5, allPresent: true, nonePresent: false });
    expect(JSON.parse(JSON.stringify(facts))).toEqual(facts);
  });

  it('a changed function body changes its hash', async () => {
    const before = (await readSchemaFacts(pool, objects)).functions[1]!.definitionHash;
    await pool.query(`create or replace function platform.get_user_active_org(p_user_id uuid) returns uuid language plpgsql stable as $$
      begin return null; end $$`);
    expect((await readSchemaFacts(pool, objects)).functions[1]!.definitionHash).not.toBe(before);
  });

  it('reports a column of another type or nullability as not matching the plan, and types by their canonical name', async () => {
    const facts = await readSchemaFacts(
      pool,
      PlanObjectsSchema.parse({
        columns: [
          { schema: 'platform', table: 'users', column: 'active_org_id', type: 'text', nullable: true },
          { schema: 'platform', table: 'users', column: 'email', type: 'text', nullable: true },
          { schema: 'platform', table: 'users', column: 'email', type: 'text', nullable: false },
        ],
      }),
    );
    expect(facts.columns.map((c) => [c.exists, c.matchesPlan])).toEqual([
      [true, false],
      [true, false],
      [true, true],
    ]);
    await pool.query(`create table platform.typed (a varchar(20), b timestamptz, c numeric(10,2))`);
    const typed = await readSchemaFacts(
      pool,
      PlanObjectsSchema.parse({
        columns: [
          { schema: 'platform', table: 'typed', column: 'a', type: 'varchar(20)', nullable: true },
          { schema: 'platform', table: 'typed', column: 'a', type: 'varchar(30)', nullable: true },
          { schema: 'platform', table: 'typed', column: 'b', type: 'timestamptz', nullable: true },
          { schema: 'platform', table: 'typed', column: 'c', type: 'numeric(10, 2)', nullable: true },
        ],
      }),
    );
    expect(typed.columns.map((c) => c.matchesPlan)).toEqual([true, false, true, true]);
    expect(typed.columns[0]!.dataType).toBe('character varying(20)');
  });

  it('reports an index left invalid by a failed CREATE INDEX CONCURRENTLY, and an index on another table', async () => {
    await pool.query(`create table platform.dupes (v int); insert into platform.dupes values (1), (1)`);
    await expect(pool.query(`create unique index concurrently idx_dupes_v on platform.dupes (v)`)).rejects.toMatchObject({ code: '23505' });
    const facts = await readSchemaFacts(
      pool,
      PlanObjectsSchema.parse({
        indexes: [
          { schema: 'platform', name: 'idx_dupes_v', table: 'dupes' },
          { schema: 'platform', name: 'idx_users_active_org', table: 'organizations', partial: true },
        ],
      }),
    );
    expect(facts.indexes[0]).toMatchObject({ exists: true, valid: false, matchesPlan: false, predicate: null });
    expect(facts.indexes[1]).toMatchObject({ exists: false });
  });

  it('gives no backfill percentage for an empty table', async () => {
    await pool.query(`create table platform.empty (c uuid)`);
    const facts = await readSchemaFacts(pool, PlanObjectsSchema.parse({ backfill: { schema: 'platform', table: 'empty', column: 'c' } }));
    expect(facts.backfill).toMatchObject({ columnExists: true, total: 0, withValue: 0, percentage: null });
    expect(facts).toMatchObject({ objectCount: 0, allPresent: true, nonePresent: true });
  });
});

describe('planStateOnTarget', () => {
  const none = { objectCount: 5, presentCount: 0, allPresent: false, nonePresent: true };
  const some = { objectCount: 5, presentCount: 3, allPresent: false, nonePresent: false };
  const all = { objectCount: 5, presentCount: 5, allPresent: true, nonePresent: false };

  it('agrees with the ledger only where the schema agrees', () => {
    expect(planStateOnTarget({ state: 'not_applied' }, none)).toBe('not_applied');
    expect(planStateOnTarget({ state: 'not_applied' }, all)).toBe('drift');
    expect(planStateOnTarget({ state: 'not_applied' }, some)).toBe('drift');
    expect(planStateOnTarget({ state: 'applied' }, all)).toBe('applied');
    expect(planStateOnTarget({ state: 'applied' }, some)).toBe('drift');
    expect(planStateOnTarget({ state: 'applied' }, none)).toBe('drift');
    expect(planStateOnTarget({ state: 'rolled_back' }, none)).toBe('rolled_back');
    // The seed's rollback (DROP COLUMN … CASCADE) leaves the PL/pgSQL helpers behind.
    expect(explainPlanStateOnTarget({ state: 'rolled_back' }, some)).toEqual({
      state: 'drift',
      reason: 'the ledger records it rolled back, but 3 of 5 of the plan\'s objects present',
    });
    expect(planStateOnTarget({ state: 'applied' }, { objectCount: 0, presentCount: 0, allPresent: true, nonePresent: true })).toBe('applied');
  });

  it('on a real target: objects made outside Runsheet are drift, not applied', async () => {
    const [ledger, facts] = await Promise.all([readPlanLedgerState(pool, '008-add-active-org-tracking'), readSchemaFacts(pool, objects)]);
    expect(ledger.ledgerPresent).toBe(false);
    expect(explainPlanStateOnTarget(ledger, facts)).toEqual({
      state: 'drift',
      reason: 'no ledger row, but 5 of 5 of the plan\'s objects present: the change was made outside Runsheet',
    });
    const client = await pool.connect();
    try {
      await ensureLedger(client);
      await client.query(
        `insert into runsheet.ledger (run_id, plan_id, checksum, action, outcome, applied_by)
         values ('44444444-4444-4444-8444-444444444444', '008-add-active-org-tracking', 'sha256:x', 'apply', 'applied', 'engineer')`,
      );
    } finally {
      client.release();
    }
    expect(planStateOnTarget(await readPlanLedgerState(pool, '008-add-active-org-tracking'), facts)).toBe('applied');
  });
});
