import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { CheckSchema, type Check, type ProbeCheck, type SqlCheck } from '../plans/plan-schema';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { latestCheckResults, recordCheckResults, runChecks, type CheckResult, type CheckTarget } from './run-checks.server';

const PLATFORM_SQL = `
  create schema platform;
  create table platform.organizations (id uuid primary key, name text not null);
  create table platform.users (
    id uuid primary key,
    email text not null unique,
    active_org_id uuid references platform.organizations (id) on delete set null
  );
  insert into platform.organizations values
    ('00000000-0000-0000-0000-00000000000a', 'alpha'),
    ('00000000-0000-0000-0000-00000000000b', 'beta');
  insert into platform.users values
    ('00000000-0000-0000-0000-000000000001', 'demo@example.test', '00000000-0000-0000-0000-00000000000a'),
    ('00000000-0000-0000-0000-000000000002', 'loner@example.test', null);
`;
const USERS_MD5 = `select md5(string_agg(u::text, ',' order by u.id)) as digest, count(*)::int as n from platform.users u`;

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase('run_checks');
  pool = new pg.Pool({ connectionString: db.url, max: 6 });
  await pool.query(PLATFORM_SQL);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const check = (value: Record<string, unknown>): Check => CheckSchema.parse(value);
const sqlOf = (c: SqlCheck | ProbeCheck) => c.sql ?? '';
const run = (checks: Check[], target: Partial<CheckTarget> = {}, concurrency?: number) =>
  runChecks({ checks, sqlOf, target: { name: 'sandbox', pool, ...target }, phase: 'pre', ...(concurrency ? { concurrency } : {}) });
const digest = async (client: pg.Pool | pg.ClientBase = pool) => (await client.query(USERS_MD5)).rows[0] as { digest: string; n: number };

describe('sql checks', () => {
  it('evaluate their expectations and keep the SQL, times and order', async () => {
    const results = await run([
      check({
        id: 'column-absent',
        title: 'Column does not exist yet',
        kind: 'sql',
        sql: `select column_name from information_schema.columns
               where table_schema = 'platform' and table_name = 'users' and column_name = 'active_org_id'`,
        expect: { type: 'no_rows' },
      }),
      check({
        id: 'user-count',
        title: 'Users',
        kind: 'sql',
        sql: 'select count(*) as user_count from platform.users',
        expect: { type: 'value', op: '=', value: 2 },
      }),
      check({ id: 'orgs', title: 'Organizations', kind: 'sql', sql: 'select name from platform.organizations order by name', expect: { type: 'rows', rows: [{ name: 'alpha' }, { name: 'beta' }] } }),
      check({ id: 'missing-table', title: 'A table that is not there', kind: 'sql', sql: 'select 1\nfrom platform.nope', expect: { type: 'exists' } }),
    ]);
    expect(results.map((r) => [r.checkId, r.passed])).toEqual([
      ['column-absent', false],
      ['user-count', true],
      ['orgs', true],
      ['missing-table', false],
    ]);
    const [absent, count, , missing] = results as [CheckResult, CheckResult, CheckResult, CheckResult];
    expect(absent.reason).toBe('expected no rows, got 1: {"column_name":"active_org_id"}');
    expect(absent.sql).toContain('information_schema.columns');
    expect(count).toMatchObject({ kind: 'sql', phase: 'pre', skipped: false, actual: '2', expected: { type: 'value', op: '=', value: 2 } });
    expect(new Date(count.ranAt).toISOString()).toBe(count.ranAt);
    expect(Math.abs(Date.parse(count.ranAt) - Date.now())).toBeLessThan(60_000);
    expect(missing.error).toMatchObject({ sqlstate: '42P01', line: 2 });
    expect(missing.reason).toMatch(/^failed with SQLSTATE 42P01: relation "platform.nope" does not exist/);
  });

  it('cannot write: a write in a sql check fails with 25006', async () => {
    const before = await digest();
    const [result] = await run([
      check({
        id: 'sneaky-write',
        title: 'Writes',
        kind: 'sql',
        sql: `update platform.users set email = 'x' || email`,
        expect: { type: 'record' },
      }),
    ]);
    expect(result).toMatchObject({ passed: false, error: { sqlstate: '25006' } });
    expect(result!.error!.message).toMatch(/read-only transaction/);
    expect(await digest()).toEqual(before);
  });

  it('refuses transaction control in a check, with its line', async () => {
    const [result] = await run([
      check({ id: 'escape', title: 'Escapes the read-only transaction', kind: 'sql', sql: 'select 1;\ncommit;\ndelete from platform.users', expect: { type: 'record' } }),
    ]);
    expect(result).toMatchObject({ passed: false, error: { line: 2 } });
    expect(result!.reason).toMatch(/^COMMIT on line 2/);
    expect((await digest()).n).toBe(2);
  });

  it('a check over its timeout fails cleanly with 57014; the others still pass', async () => {
    const results = await run([
      check({ id: 'fast-1', title: 'Fast', kind: 'sql', sql: 'select 1 as one', expect: { type: 'value', op: '=', value: 1 } }),
      check({ id: 'slow', title: 'Slow', kind: 'sql', timeout: '200ms', sql: 'select pg_sleep(5)', expect: { type: 'record' } }),
      check({ id: 'fast-2', title: 'Fast', kind: 'sql', sql: 'select 2 as two', expect: { type: 'value', op: '=', value: 2 } }),
    ]);
    expect(results.map((r) => r.passed)).toEqual([true, false, true]);
    const slow = results[1]!;
    expect(slow.error?.sqlstate).toBe('57014');
    expect(slow.error?.message).toMatch(/timeout of 200 ms/);
    expect(slow.reason).toMatch(/^failed with SQLSTATE 57014: the check exceeded its timeout of 200 ms/);
    expect(slow.durationMs).toBeLessThan(4_000);
  });

  it('run in parallel on a pool', async () => {
    const sleepers = Array.from({ length: 4 }, (_, index) =>
      check({ id: `sleep-${index}`, title: 'Sleeps', kind: 'sql', sql: 'select pg_sleep(1)', expect: { type: 'record' } }),
    );
    const parallel = await run(sleepers, {}, 4);
    expect(parallel.every((r) => r.passed)).toBe(true);
    expect(maxOverlap(parallel)).toBeGreaterThan(1);
    // The server saw them at once too: their start times (its clock) lie within one sleep.
    const starts = parallel.map((r) => Date.parse(r.ranAt));
    expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(1_000);

    const serial = await run(sleepers, {}, 1);
    const serialStarts = serial.map((r) => Date.parse(r.ranAt));
    for (let index = 1; index < serialStarts.length; index++) {
      expect(serialStarts[index]! - serialStarts[index - 1]!).toBeGreaterThanOrEqual(1_000);
    }
  });
});

describe('parallel workers', () => {
  const workersSetting = (id: string, sql = `select current_setting('max_parallel_workers_per_gather') as workers`) =>
    check({ id, title: 'Reads its parallel-workers setting', kind: 'sql', sql, expect: { type: 'record' } });
  const seen = (result: CheckResult) => (result.actual as { rows: { workers: string }[] } | null)?.rows[0]?.workers;

  it('are not asked for by checks run side by side; a check alone, or one that sets its own, keeps the server\'s or its own', async () => {
    const server = (await pool.query<{ workers: string }>(`select current_setting('max_parallel_workers_per_gather') as workers`)).rows[0]!.workers;
    expect(server).not.toBe('0');

    const sideBySide = await run([workersSetting('a'), workersSetting('b'), workersSetting('c')], {}, 4);
    expect(sideBySide.map(seen)).toEqual(['0', '0', '0']);

    const alone = await run([workersSetting('only')], {}, 4);
    expect(alone.map(seen)).toEqual([server]);
    const oneAtATime = await run([workersSetting('first'), workersSetting('second')], {}, 1);
    expect(oneAtATime.map(seen)).toEqual([server, server]);

    const ownSetting = workersSetting('own', `set local max_parallel_workers_per_gather = 3;\nselect current_setting('max_parallel_workers_per_gather') as workers`);
    const withOwn = await run([ownSetting, workersSetting('other')], {}, 4);
    expect(withOwn.map(seen)).toEqual(['3', '0']);

    // Nothing outlives a check's transaction: the pooled connections still have the server's setting.
    const after = await Promise.all([1, 2, 3].map(() => pool.query<{ workers: string }>(`select current_setting('max_parallel_workers_per_gather') as workers`)));
    expect(after.map((result) => result.rows[0]!.workers)).toEqual([server, server, server]);
  });
});

/** The most checks whose [ranAt, ranAt + durationMs] intervals overlap at one moment. */
function maxOverlap(results: CheckResult[]): number {
  const events = results.flatMap((r) => {
    const start = Date.parse(r.ranAt);
    return [
      { at: start, delta: 1 },
      { at: start + r.durationMs, delta: -1 },
    ];
  });
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let current = 0;
  let max = 0;
  for (const event of events) {
    current += event.delta;
    max = Math.max(max, current);
  }
  return max;
}

describe('probe checks', () => {
  const unknownOrg = check({
    id: 'fk-refuses-unknown-org',
    title: 'An unknown org id is refused',
    kind: 'probe',
    sql: `insert into platform.users (id, email) values ('00000000-0000-0000-0000-000000000099', 'probe@example.test');
          update platform.users set active_org_id = '00000000-0000-0000-0000-0000000000ff'
           where id = '00000000-0000-0000-0000-000000000099'`,
    expect: { type: 'sqlstate', sqlstate: '23503' },
  });
  const deleteSetsNull = check({
    id: 'on-delete-set-null',
    title: 'Deleting an org clears active_org_id',
    kind: 'probe',
    sql: `delete from platform.organizations where name = 'alpha';
          select count(*) as still_pointing from platform.users where active_org_id = '00000000-0000-0000-0000-00000000000a'`,
    expect: { type: 'value', op: '=', value: 0 },
  });
  const wrongExpectation = check({
    id: 'expects-a-refusal',
    title: 'Expects a refusal that does not come',
    kind: 'probe',
    sql: `insert into platform.users (id, email) values ('00000000-0000-0000-0000-000000000098', 'ok@example.test')`,
    expect: { type: 'sqlstate', sqlstate: '23503' },
  });

  it('leave the target unchanged when they pass and when they fail', async () => {
    const before = await digest();
    const results = await run([unknownOrg, deleteSetsNull, wrongExpectation]);
    expect(results.map((r) => r.passed)).toEqual([true, true, false]);
    expect(results[0]!.actual).toMatchObject({ sqlstate: '23503' });
    expect(results[0]!.error).toBeUndefined();
    expect(results[2]!.reason).toBe('expected SQLSTATE 23503, but the statement succeeded (0 rows)');
    expect(await digest()).toEqual(before);
    expect((await pool.query(`select count(*)::int as n from platform.organizations`)).rows[0].n).toBe(2);
  });

  it('do not pass on an error from a statement before the last', async () => {
    const [result] = await run([
      check({
        id: 'setup-fails',
        title: 'Setup fails with the expected code',
        kind: 'probe',
        sql: `update platform.users set active_org_id = '00000000-0000-0000-0000-0000000000ff';\nselect 1`,
        expect: { type: 'sqlstate', sqlstate: '23503' },
      }),
    ]);
    expect(result!.passed).toBe(false);
    expect(result!.reason).toMatch(/^statement 1 of 2 \(line 1\) failed before the check's last statement with SQLSTATE 23503/);
  });
});

describe('on a given client', () => {
  it('use savepoints inside the caller\'s open transaction and leave it usable', async () => {
    const client = await pool.connect();
    try {
      await client.query('begin');
      await client.query(`set local statement_timeout = '123s'`);
      await client.query(`insert into platform.organizations values ('00000000-0000-0000-0000-00000000000c', 'gamma (rehearsal)')`);
      const before = await digest(client);
      const results = await runChecks({
        checks: [
          check({ id: 'sees-own-write', title: 'Sees the rehearsal', kind: 'sql', sql: `select name from platform.organizations where name like 'gamma%'`, expect: { type: 'exists' } }),
          check({ id: 'slow', title: 'Slow', kind: 'sql', timeout: '100ms', sql: 'select pg_sleep(3)', expect: { type: 'record' } }),
          check({ id: 'write', title: 'Writes', kind: 'sql', sql: `delete from platform.users`, expect: { type: 'record' } }),
          check({
            id: 'probe',
            title: 'Probe',
            kind: 'probe',
            sql: `update platform.users set active_org_id = '00000000-0000-0000-0000-00000000000c';
                  select count(*) as n from platform.users where active_org_id is not null`,
            expect: { type: 'value', op: '=', value: 2 },
          }),
          check({ id: 'bad-sql', title: 'Bad', kind: 'sql', sql: 'select from nowhere at all', expect: { type: 'record' } }),
        ],
        sqlOf,
        target: { name: 'sandbox', client },
        phase: 'rehearsal',
      });
      expect(results.map((r) => [r.checkId, r.passed, r.error?.sqlstate])).toEqual([
        ['sees-own-write', true, undefined],
        ['slow', false, '57014'],
        ['write', false, '25006'],
        ['probe', true, undefined],
        ['bad-sql', false, undefined],
      ]);
      // The caller's transaction: still open, still read-write, its own settings and rows intact.
      expect(await digest(client)).toEqual(before);
      expect((await client.query('show statement_timeout')).rows[0].statement_timeout).toBe('123s');
      expect((await client.query('show transaction_read_only')).rows[0].transaction_read_only).toBe('off');
      await client.query(`update platform.organizations set name = 'gamma' where id = '00000000-0000-0000-0000-00000000000c'`);
      expect((await client.query(`select count(*)::int as n from platform.organizations`)).rows[0].n).toBe(3);
      await client.query('rollback');
    } finally {
      client.release();
    }
    expect((await pool.query(`select count(*)::int as n from platform.organizations`)).rows[0].n).toBe(2);
  });

  it('on a client outside a transaction, open and roll back one of their own', async () => {
    const client = await pool.connect();
    try {
      const before = await digest(client);
      const [probe] = await runChecks({
        checks: [check({ id: 'probe', title: 'Probe', kind: 'probe', sql: 'delete from platform.users', expect: { type: 'record' } })],
        sqlOf,
        target: { name: 'sandbox', client },
        phase: 'pre',
      });
      expect(probe!.passed).toBe(true);
      expect(await digest(client)).toEqual(before);
      // Not left inside a transaction: now() moves between statements.
      const first = (await client.query('select now() as t')).rows[0].t as Date;
      await new Promise((resolve) => setTimeout(resolve, 5));
      const second = (await client.query('select now() as t')).rows[0].t as Date;
      expect(second.getTime()).toBeGreaterThan(first.getTime());
    } finally {
      client.release();
    }
  });
});

describe('http checks', () => {
  let server: http.Server;
  let apiUrl: string;
  const token = `tok_${randomBytes(8).toString('hex')}`;
  const received: { method: string; url: string; authorization?: string; body?: unknown }[] = [];

  beforeAll(async () => {
    server = http.createServer((request, response) => {
      let raw = '';
      request.on('data', (chunk) => (raw += chunk));
      request.on('end', () => {
        const body = raw ? JSON.parse(raw) : undefined;
        received.push({ method: request.method!, url: request.url!, authorization: request.headers.authorization, body });
        const send = (status: number, json: unknown) => {
          response.writeHead(status, { 'content-type': 'application/json' });
          response.end(JSON.stringify(json));
        };
        if (request.headers.authorization !== `Bearer ${token}`) return send(401, { error: 'unauthorized' });
        if (request.url === '/api/auth/validate') return send(200, { user: { email: 'demo@example.test' } });
        if (request.url === '/api/auth/set-active-org' && request.method === 'POST') {
          return send(200, { success: true, activeOrgId: body.organizationId });
        }
        send(404, { error: 'not found' });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  const validate = check({
    id: 'validate-has-active-org',
    title: '/api/auth/validate includes activeOrgId',
    kind: 'http',
    request: { method: 'GET', path: '/api/auth/validate' },
    expect: { type: 'http', status: 200, json_has: ['user.email', 'activeOrgId'] },
  });
  const setActive = check({
    id: 'set-active-org',
    title: '/api/auth/set-active-org sets it',
    kind: 'http',
    request: {
      method: 'POST',
      path: '/api/auth/set-active-org',
      vars_sql: `select id as org_id, 42 as answer from platform.organizations where name = 'beta'`,
      body: { organizationId: '{{org_id}}', note: 'org {{org_id}}', answer: '{{answer}}' },
    },
    expect: { type: 'http', status: 200, json_equals: { success: true, activeOrgId: '{{org_id}}' } },
  });

  it('check status and JSON fields, naming a missing field', async () => {
    const results = await run([validate, setActive], { apiUrl, apiToken: token });
    const [missing, set] = results as [CheckResult, CheckResult];
    expect(missing).toMatchObject({ passed: false, skipped: false, reason: 'json field activeOrgId missing' });
    expect(set.passed).toBe(true);
    expect(set.expected).toMatchObject({ json_equals: { activeOrgId: '00000000-0000-0000-0000-00000000000b' } });
    expect(set.sql).toBe(`select id as org_id, 42 as answer from platform.organizations where name = 'beta'`);
    expect(set.actual).toMatchObject({ status: 200, request: { method: 'POST' } });
    const post = received.find((r) => r.method === 'POST')!;
    expect(post.authorization).toBe(`Bearer ${token}`);
    // Values are JSON: a number stays a number, text around a placeholder gets its text.
    expect(post.body).toEqual({ organizationId: '00000000-0000-0000-0000-00000000000b', note: 'org 00000000-0000-0000-0000-00000000000b', answer: 42 });
  });

  it('report the status when the token is refused', async () => {
    const [result] = await run([validate], { apiUrl, apiToken: 'wrong' });
    expect(result!.reason).toMatch(/^expected status 200, got 401/);
  });

  it('are skipped on a target without an API', async () => {
    const [result] = await run([validate], { name: 'staging' });
    expect(result).toMatchObject({
      passed: false,
      skipped: true,
      reason: 'no API configured for target staging (set TARGET_STAGING_API_URL and TARGET_STAGING_API_TOKEN)',
    });
  });

  it('fail clearly when the API cannot be reached or a placeholder is unknown', async () => {
    const unknown = check({
      id: 'unknown-var',
      title: 'Unknown placeholder',
      kind: 'http',
      request: { method: 'POST', path: '/x', vars_sql: 'select 1 as one', body: { a: '{{two}}' } },
      expect: { type: 'http', status: 200 },
    });
    const [closed, placeholder] = await run([validate, unknown], { apiUrl: 'http://127.0.0.1:9', apiToken: token });
    expect(closed!.passed).toBe(false);
    expect(closed!.reason).toMatch(/^GET http:\/\/127\.0\.0\.1:9\/api\/auth\/validate failed: /);
    expect(placeholder!.reason).toBe('placeholder {{two}} is not filled by vars_sql (its columns: one)');
  });
});

describe('session visibility', () => {
  const role = `rs_nopriv_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  let rolePool: pg.Pool;
  const activeMigrations = check({
    id: 'no-active-migrations',
    title: 'No currently active migrations',
    kind: 'sql',
    sql: `select pid, state, query from pg_stat_activity
           where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle' and query ilike '%alter table%'`,
    expect: { type: 'no_rows' },
  });

  beforeAll(async () => {
    await pool.query(`create role ${pg.escapeIdentifier(role)} login password ${pg.escapeLiteral(password)}`);
    const url = new URL(db.url);
    url.username = role;
    url.password = password;
    rolePool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  });

  afterAll(async () => {
    await rolePool?.end();
    await pool.query(`drop owned by ${pg.escapeIdentifier(role)}`);
    await pool.query(`drop role if exists ${pg.escapeIdentifier(role)}`);
  });

  it('says "cannot see", never pass, where the role cannot see other sessions', async () => {
    // Another session that the role cannot see into.
    const other = await pool.connect();
    try {
      const sleeping = other.query(`select pg_sleep(0.5) /* alter table platform.users */`);
      const [result] = await run([activeMigrations], { pool: rolePool });
      await sleeping;
      expect(result).toMatchObject({ passed: false, actual: 'cannot see' });
      expect(result!.reason).toMatch(new RegExp(`role ${role} is neither superuser nor a member of pg_read_all_stats`));
    } finally {
      other.release();
    }
  });

  it('looks once the role may see all sessions', async () => {
    await pool.query(`grant pg_read_all_stats to ${pg.escapeIdentifier(role)}`);
    const [result] = await run([activeMigrations], { pool: rolePool });
    expect(result!.actual).not.toBe('cannot see');
    expect(result!.error).toBeUndefined();
  });
});

describe('recording results', () => {
  let storeDb: TestDatabase;
  let store: Store;

  beforeAll(async () => {
    storeDb = await createTestDatabase('run_checks_store');
    store = openStore(storeDb.url, { max: 2 });
    await migrateStore(store);
  });

  afterAll(async () => {
    await store?.close();
    await storeDb?.drop();
  });

  it('appends results and reads the newest per check', async () => {
    const checks = [
      check({ id: 'a', title: 'A', kind: 'sql', sql: 'select 1 as n', expect: { type: 'value', op: '=', value: 1 } }),
      check({ id: 'b', title: 'B', kind: 'sql', sql: 'select 1 as n', expect: { type: 'value', op: '=', value: 2 } }),
    ];
    const first = await run(checks);
    const stored = await recordCheckResults(store.db, { target: 'sandbox', planId: '008', planChecksum: 'sha256:one' }, first);
    expect(stored.map((row) => [row.checkId, row.passed, row.sqlText])).toEqual([
      ['a', true, 'select 1 as n'],
      ['b', false, 'select 1 as n'],
    ]);
    const second = await run([checks[1]!]);
    await recordCheckResults(store.db, { target: 'sandbox', planId: '008', planChecksum: 'sha256:two', runId: '6f1c7f0e-0000-4000-8000-000000000001', ranBy: 'engineer' }, second);
    await recordCheckResults(store.db, { target: 'staging', planId: '008', planChecksum: 'sha256:two' }, second);

    const latest = await latestCheckResults(store.db, { target: 'sandbox', planId: '008' });
    expect(latest.map((row) => [row.checkId, row.planChecksum, row.ranBy])).toEqual([
      ['a', 'sha256:one', null],
      ['b', 'sha256:two', 'engineer'],
    ]);
    const b = latest[1]!;
    expect(b.ranAt.toISOString()).toBe(second[0]!.ranAt);
    expect(b.expected).toEqual({ type: 'value', op: '=', value: 2 });
    expect(b.actual).toBe(1);
    expect(Date.now() - b.ranAt.getTime()).toBeGreaterThanOrEqual(-1_000);
  });
});
