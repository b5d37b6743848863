/**
 * Issue 14, done-when: object checks on a present, absent and INVALID index, an unvalidated
 * constraint and a missing function each give their result in words, against a real database,
 * read by the facts panel's own catalog reader.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { CheckSchema, type Check, type ProbeCheck, type SqlCheck } from '../plans/plan-schema';
import { readSchemaFacts } from '../targets/schema-facts.server';
import { PlanObjectsSchema } from '../plans/plan-schema';
import { describeExpectation } from './describe-expectation';
import { runChecks } from './run-checks.server';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase('object_checks');
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await pool.query(`
    create schema platform;
    create table platform.organizations (id bigint primary key, name text not null, slug text);
    insert into platform.organizations values (1, 'Alpha', 'alpha'), (2, 'Beta', 'alpha'), (3, 'Gamma', null);
    create unique index organizations_name_key on platform.organizations (name);
    create index organizations_live_slug on platform.organizations (slug) where slug is not null;
    alter table platform.organizations add constraint organizations_slug_present check (slug is not null) not valid;
    create function platform.org_slug(p_id bigint) returns text language sql stable as $$ select slug from platform.organizations where id = p_id $$;
    -- Another schema with the same names: an object check reads by schema.
    create schema other;
    create table other.organizations (id bigint primary key, slug text);
    create unique index organizations_slug_key on other.organizations (slug);
    create function other.missing_here() returns int language sql as $$ select 1 $$;`);
  // A unique index over duplicate slugs, built CONCURRENTLY: the build fails and leaves it INVALID.
  await expect(pool.query('create unique index concurrently organizations_slug_key on platform.organizations (slug)')).rejects.toMatchObject({ code: '23505' });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const check = (value: Record<string, unknown>): Check => CheckSchema.parse({ kind: 'object', title: 'an object', ...value });
const sqlOf = (c: SqlCheck | ProbeCheck) => c.sql ?? '';
const run = async (value: Record<string, unknown>) => (await runChecks({ checks: [check({ id: 'c', ...value })], sqlOf, target: { name: 'sandbox', pool }, phase: 'pre' }))[0]!;

describe('object checks', () => {
  it('a present, valid index passes and says what it found', async () => {
    const result = await run({ present: true, index: { schema: 'platform', name: 'organizations_name_key', valid: true, unique: true } });
    expect(result).toMatchObject({ kind: 'object', passed: true, skipped: false, actual: 'index platform.organizations_name_key: present, valid, unique, not partial, on organizations' });
    expect(describeExpectation(result.expected as { type: string })).toBe('index platform.organizations_name_key: present, valid, unique');
    expect(result.sql).toContain('pg_index');
    expect(result.sql).toContain('$2 = {"organizations_name_key"}');
  });

  it('an INVALID index left by a failed concurrent build fails, in words', async () => {
    const result = await run({ present: true, index: { schema: 'platform', name: 'organizations_slug_key', valid: true } });
    expect(result.passed).toBe(false);
    expect(result.actual).toBe('index platform.organizations_slug_key: present, INVALID, not ready, unique, not partial, on organizations');
    expect(result.reason).toBe('index platform.organizations_slug_key: present, INVALID, not ready, unique, not partial, on organizations; expected valid');
    // Asked only whether it is there, the INVALID index is there.
    expect((await run({ present: true, index: { schema: 'platform', name: 'organizations_slug_key' } })).passed).toBe(true);
  });

  it('an absent index: present: false passes, present: true fails; another schema\'s index of the same name does not count', async () => {
    expect(await run({ present: false, index: { schema: 'platform', name: 'organizations_slug_uq' } })).toMatchObject({
      passed: true,
      actual: 'index platform.organizations_slug_uq: absent',
    });
    expect(await run({ present: true, index: { schema: 'platform', name: 'organizations_slug_uq' } })).toMatchObject({
      passed: false,
      reason: 'index platform.organizations_slug_uq: absent; expected present',
    });
    // other.organizations_slug_key is valid; platform's is not: the check reads the schema it names.
    expect((await run({ present: true, index: { schema: 'other', name: 'organizations_slug_key', valid: true } })).passed).toBe(true);
    // A present index where it must be absent fails too.
    expect(await run({ present: false, index: { schema: 'platform', name: 'organizations_live_slug' } })).toMatchObject({
      passed: false,
      reason: 'index platform.organizations_live_slug: present, valid, not unique, partial (WHERE (slug IS NOT NULL)), on organizations; expected absent',
    });
    expect((await run({ present: true, index: { schema: 'platform', name: 'organizations_live_slug', table: 'organizations', partial: true } })).passed).toBe(true);
    expect((await run({ present: true, index: { schema: 'platform', name: 'organizations_live_slug', table: 'users' } })).passed).toBe(false);
  });

  it('an unvalidated (NOT VALID) constraint fails validated: true, and passes validated: false', async () => {
    const unvalidated = await run({ present: true, constraint: { schema: 'platform', table: 'organizations', name: 'organizations_slug_present', validated: true, type: 'check' } });
    expect(unvalidated).toMatchObject({
      passed: false,
      actual: 'constraint organizations_slug_present on platform.organizations: present, a check constraint, NOT VALIDATED (NOT VALID)',
      reason: 'constraint organizations_slug_present on platform.organizations: present, a check constraint, NOT VALIDATED (NOT VALID); expected validated',
    });
    expect((await run({ present: true, constraint: { schema: 'platform', table: 'organizations', name: 'organizations_slug_present', validated: false } })).passed).toBe(true);
    expect(await run({ present: true, constraint: { schema: 'platform', table: 'organizations', name: 'organizations_slug_present', type: 'foreign_key' } })).toMatchObject({
      passed: false,
      reason: expect.stringMatching(/; expected a foreign key$/),
    });
    expect((await run({ present: true, constraint: { schema: 'platform', table: 'organizations', name: 'organizations_pkey', type: 'primary_key', validated: true } })).passed).toBe(true);
  });

  it('a missing function fails present: true; one overload is found by its argument types', async () => {
    expect(await run({ present: true, function: { schema: 'platform', name: 'missing_here' } })).toMatchObject({
      passed: false,
      actual: 'function platform.missing_here: absent',
      reason: 'function platform.missing_here: absent; expected present',
    });
    expect((await run({ present: false, function: { schema: 'platform', name: 'missing_here' } })).passed).toBe(true);
    expect(await run({ present: true, function: { schema: 'platform', name: 'org_slug', args: 'bigint' } })).toMatchObject({ passed: true, actual: 'function platform.org_slug(bigint): present, platform.org_slug(bigint)' });
    expect(await run({ present: true, function: { schema: 'platform', name: 'org_slug', args: 'uuid' } })).toMatchObject({
      passed: false,
      reason: 'function platform.org_slug(uuid): absent (overloads of the name: platform.org_slug(bigint)); expected present',
    });
  });

  it('a column: its type and nullability', async () => {
    expect(await run({ present: true, column: { schema: 'platform', table: 'organizations', name: 'slug', type: 'text', nullable: true } })).toMatchObject({
      passed: true,
      actual: 'column platform.organizations.slug: present, text, nullable',
    });
    expect(await run({ present: true, column: { schema: 'platform', table: 'organizations', name: 'slug', type: 'varchar(40)', nullable: false } })).toMatchObject({
      passed: false,
      reason: 'column platform.organizations.slug: present, text, nullable; expected type varchar(40), NOT NULL',
    });
    expect((await run({ present: false, column: { schema: 'platform', table: 'organizations', name: 'slug_v2' } })).passed).toBe(true);
  });

  it('reads what the facts panel reads (one catalog reader)', async () => {
    const facts = await readSchemaFacts(pool, PlanObjectsSchema.parse({ indexes: [{ schema: 'platform', name: 'organizations_slug_key', table: 'organizations' }] }));
    const result = await run({ present: true, index: { schema: 'platform', name: 'organizations_slug_key', table: 'organizations', valid: true } });
    expect(facts.indexes[0]).toMatchObject({ exists: true, valid: false });
    expect(result.actual).toContain('INVALID');
  });

  it('runs inside a caller\'s transaction (a rehearsal) and sees its uncommitted DDL', async () => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query('create index organizations_rehearsed on platform.organizations (id)');
      const [result] = await runChecks({ checks: [check({ id: 'c', present: true, index: { schema: 'platform', name: 'organizations_rehearsed', valid: true } })], sqlOf, target: { name: 'sandbox', client }, phase: 'verify' });
      expect(result).toMatchObject({ passed: true });
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect((await run({ present: false, index: { schema: 'platform', name: 'organizations_rehearsed' } })).passed).toBe(true);
  });
});

describe('the object check format', () => {
  const problems = (value: Record<string, unknown>) => {
    const parsed = CheckSchema.safeParse({ id: 'c', kind: 'object', title: 't', ...value });
    return parsed.success ? [] : parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
  };

  it('names exactly one object, says present, and asks properties only of a present one', () => {
    expect(problems({ present: true })).toEqual([expect.stringContaining('an object check names one object: column, index, constraint or function')]);
    expect(problems({ present: true, index: { schema: 'a', name: 'b' }, function: { schema: 'a', name: 'f' } })).toEqual([
      'function: an object check names one object, this one names index and function: make a check for each',
    ]);
    expect(problems({ index: { schema: 'a', name: 'b' } })).toEqual([expect.stringContaining('present: ')]);
    expect(problems({ present: false, index: { schema: 'a', name: 'b', valid: true } })).toEqual([
      'index.valid: with present: false the index must not be there at all, so valid cannot be checked: remove it, or say present: true',
    ]);
    expect(problems({ present: true, constraint: { schema: 'a', table: 't', name: 'c', type: 'fk' } })).toHaveLength(1);
    expect(problems({ present: true, index: { schema: 'a', name: 'b', valid: true }, expect: { type: 'exists' } })).toEqual([expect.stringContaining('expect')]);
    expect(problems({ present: false, function: { schema: 'a', name: 'f', args: 'uuid' } })).toEqual([]);
  });
});
