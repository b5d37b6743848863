/**
 * The statement-level executor against a real PostgreSQL: how a migration file is split, sent,
 * timed, committed or rolled back, and what a failure names (line, SQLSTATE, blockers, cancel).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { ensureLedger } from '../targets/ledger.server';
import {
  backendPidOf,
  cancelBackend,
  executeStep,
  markCancelRequested,
  prepareStep,
  type StatementEvent,
  type StepToRun,
} from './execute-step.server';

let database: TestDatabase;
/** Looks at the target from outside the step: pg_stat_activity, pg_locks, committed state. */
let observer: pg.Pool;
/** The executor's second connection: blocker samples and cancels. */
let probe: pg.Pool;
const clients: pg.Client[] = [];

beforeAll(async () => {
  database = await createTestDatabase('execute_step');
  observer = new pg.Pool({ connectionString: database.url, max: 3, application_name: 'observer' });
  probe = new pg.Pool({ connectionString: database.url, max: 2, application_name: 'runsheet-probe' });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.end().catch(() => {})));
  await observer?.end();
  await probe?.end();
  await database?.drop();
});

async function connect(applicationName = 'runsheet-step'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: database.url, application_name: applicationName });
  // A terminated session emits 'error' on its client; the test looks at the outcome instead.
  client.on('error', () => {});
  await client.connect();
  clients.push(client);
  return client;
}

function step(sql: string, overrides: Partial<StepToRun> = {}): StepToRun {
  return { id: 'step-under-test', sql, transactional: true, lockTimeoutMs: 5_000, statementTimeoutMs: 60_000, ...overrides };
}

async function tableExists(name: string): Promise<boolean> {
  const { rows } = await observer.query<{ present: boolean }>('select to_regclass($1) is not null as present', [name]);
  return rows[0]!.present;
}

async function count(table: string): Promise<number> {
  const { rows } = await observer.query<{ n: string }>(`select count(*) as n from ${pg.escapeIdentifier(table)}`);
  return Number(rows[0]!.n);
}

async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function waitEventOf(pid: number): Promise<string | null> {
  const { rows } = await observer.query<{ wait_event_type: string | null }>('select wait_event_type from pg_stat_activity where pid = $1', [pid]);
  return rows[0]?.wait_event_type ?? null;
}

describe('splitting and sending', () => {
  it("keeps ';' inside strings, dollar quotes, nested dollar quotes, nested comments and DO blocks inside one statement, and runs them all", async () => {
    const sql = [
      'create table split_demo (id int primary key, note text);',
      "insert into split_demo values (1, 'a;b');",
      'insert into split_demo values (2, $$x;y$$);',
      'insert into split_demo values (3, $outer$ a $inner$;$inner$ b; $outer$);',
      '/* outer /* nested ; */ still a comment; */',
      "insert into split_demo values (4, E'it\\'s;');",
      'do $outer$',
      'begin',
      "  execute $inner$ insert into split_demo values (5, 'nested;') $inner$;",
      "  insert into split_demo values (6, 'do;');",
      'end',
      '$outer$;',
    ].join('\n');
    const client = await connect();
    const outcome = await executeStep(client, step(sql), { kind: 'own' });

    expect(outcome.failure).toBeUndefined();
    expect(outcome.ok).toBe(true);
    expect(outcome.committed).toBe(true);
    expect(outcome.statements.map((event) => [event.line, event.endLine, event.command])).toEqual([
      [1, 1, 'CREATE'],
      [2, 2, 'INSERT'],
      [3, 3, 'INSERT'],
      [4, 4, 'INSERT'],
      [6, 6, 'INSERT'],
      [7, 12, 'DO'],
    ]);
    expect(outcome.completedCount).toBe(6);
    const { rows } = await observer.query<{ id: number; note: string }>('select id, note from split_demo order by id');
    expect(rows).toEqual([
      { id: 1, note: 'a;b' },
      { id: 2, note: 'x;y' },
      { id: 3, note: ' a $inner$;$inner$ b; ' },
      { id: 4, note: "it's;" },
      { id: 5, note: 'nested;' },
      { id: 6, note: 'do;' },
    ]);
  });

  it('reports a psql meta-command and a syntax error with their lines, and sends nothing', async () => {
    const sql = [
      'create table meta_marker (id int);', // 1
      'insert into meta_marker values (1);', // 2
      '\\set ON_ERROR_STOP on', // 3
      'select 1;', // 4
      'selec 2;', // 5
    ].join('\n');
    const prepared = await prepareStep(step(sql));
    expect(prepared.ok).toBe(false);
    if (prepared.ok) return;
    expect(prepared.errors.map((error) => error.line)).toEqual([3, 5]);
    expect(prepared.errors[0]!.message).toMatch(/\\set/);
    expect(prepared.errors[1]!.message).toMatch(/syntax error/);

    const client = await connect();
    const outcome = await executeStep(client, step(sql), { kind: 'own' });
    expect(outcome.ok).toBe(false);
    expect(outcome.failure).toMatchObject({ during: 'prepare', line: 3, statementIndex: -1, cancelled: false });
    expect(outcome.failure!.errors!.map((error) => error.line)).toEqual([3, 5]);
    expect(outcome.backendPid).toBeUndefined();
    expect(await tableExists('meta_marker')).toBe(false);
  });

  it('refuses COMMIT in a transactional step with its line, and sends nothing', async () => {
    const sql = ['create table commit_marker (id int);', 'insert into commit_marker values (1);', 'commit;', 'select 1;'].join('\n');
    const client = await connect();
    const outcome = await executeStep(client, step(sql), { kind: 'own' });
    expect(outcome.failure).toMatchObject({ during: 'prepare', line: 3 });
    expect(outcome.failure!.message).toMatch(/^COMMIT on line 3: Runsheet runs this step in one transaction of its own/);
    expect(await tableExists('commit_marker')).toBe(false);

    const inCaller = await executeStep(client, step('begin;\nselect 1;'), { kind: 'caller' });
    expect(inCaller.failure).toMatchObject({ during: 'prepare', line: 1 });
  });

  it('refuses BEGIN in a non-transactional step too: each statement there commits on its own', async () => {
    const client = await connect();
    const outcome = await executeStep(client, step('create table begin_marker (id int);\n\nbegin;\nselect 1;', { transactional: false }), { kind: 'own' });
    expect(outcome.failure).toMatchObject({ during: 'prepare', line: 3 });
    expect(outcome.failure!.message).toMatch(/^BEGIN on line 3: this step runs statement by statement \(transactional: false\)/);
    expect(await tableExists('begin_marker')).toBe(false);
  });

  it('refuses an empty step file', async () => {
    const prepared = await prepareStep(step('-- nothing here\n'));
    expect(prepared).toMatchObject({ ok: false });
  });
});

describe('server errors', () => {
  it('names the line, SQLSTATE and message of a unique violation, and rolls the transaction back', async () => {
    const sql = [
      'create table uv (id int primary key);', // 1
      'insert into uv values (1);', // 2
      '', // 3
      '-- the duplicate', // 4
      'insert into uv', // 5
      '  values (1);', // 6
      'insert into uv values (2);', // 7
    ].join('\n');
    const client = await connect();
    const outcome = await executeStep(client, step(sql), { kind: 'own' });
    expect(outcome.ok).toBe(false);
    expect(outcome.committed).toBe(false);
    expect(outcome.completedCount).toBe(2);
    expect(outcome.failure).toMatchObject({
      statementIndex: 2,
      line: 5,
      during: 'statement',
      sqlstate: '23505',
      message: 'duplicate key value violates unique constraint "uv_pkey"',
      detail: 'Key (id)=(1) already exists.',
      cancelled: false,
    });
    expect(outcome.failure!.summary).toMatch(/line 5, failed with SQLSTATE 23505/);
    expect(await tableExists('uv')).toBe(false);
    expect(outcome.connectionBroken).toBe(false);
    // The connection is usable and out of the transaction.
    expect(client.getTransactionStatus()).toBe('I');
  });

  it("names the line of the error's position inside a multi-line statement", async () => {
    const sql = ['create table pos (id int);', 'select id,', '       no_such_column', '  from pos;'].join('\n');
    const client = await connect();
    const outcome = await executeStep(client, step(sql), { kind: 'own' });
    expect(outcome.failure).toMatchObject({ statementIndex: 1, line: 3, sqlstate: '42703' });
    expect(outcome.failure!.position).toBeGreaterThan(0);
  });

  it('names the line inside a DO block from its PL/pgSQL context', async () => {
    const sql = [
      'create table do_err (id int);', // 1
      'do $$', // 2: the body's line 1
      'begin', // 3
      '  insert into do_err values (1);', // 4
      "  raise exception 'boom %', 42;", // 5
      'end', // 6
      '$$;', // 7
    ].join('\n');
    const client = await connect();
    const outcome = await executeStep(client, step(sql), { kind: 'own' });
    expect(outcome.failure).toMatchObject({ statementIndex: 1, line: 5, sqlstate: 'P0001', message: 'boom 42' });
    expect(outcome.failure!.where).toMatch(/inline_code_block line 4/);
    expect(await tableExists('do_err')).toBe(false);
  });
});

describe('what each statement records', () => {
  it('records duration, row count, command tag and NOTICE output per statement', async () => {
    const sql = [
      'create table timing (id int);',
      'insert into timing select generate_series(1, 3);',
      'select pg_sleep(0.2);',
      'update timing set id = id + 10 where id >= 2;',
      "do $$ begin raise notice 'hello %', 1; raise warning 'careful'; end $$;",
    ].join('\n');
    const client = await connect();
    const seen: StatementEvent[] = [];
    const started: number[] = [];
    const outcome = await executeStep(client, step(sql), { kind: 'own' }, {
      onStatementStart: (info) => void started.push(info.index),
      onStatement: (event) => void seen.push(event),
    });
    expect(outcome.ok).toBe(true);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(seen).toEqual(outcome.statements);
    const [create, insert, sleep, update, block] = outcome.statements;
    for (const event of outcome.statements) {
      expect(event.durationMs).toBeGreaterThanOrEqual(0);
      expect(Number.isNaN(Date.parse(event.startedAt))).toBe(false);
    }
    expect(create).toMatchObject({ command: 'CREATE', rowCount: null, notices: [] });
    expect(insert).toMatchObject({ command: 'INSERT', rowCount: 3 });
    expect(sleep).toMatchObject({ command: 'SELECT', rowCount: 1 });
    expect(sleep!.durationMs).toBeGreaterThanOrEqual(150);
    expect(update).toMatchObject({ command: 'UPDATE', rowCount: 2 });
    expect(block).toMatchObject({ command: 'DO', rowCount: null });
    expect(block!.notices).toEqual([
      expect.objectContaining({ severity: 'NOTICE', message: 'hello 1', sqlstate: '00000' }),
      expect.objectContaining({ severity: 'WARNING', message: 'careful', sqlstate: '01000' }),
    ]);
    expect(await count('timing')).toBe(3);
  });

  it('asks the server to watch for a vanished client (client_connection_check_interval) and leaves no timeouts behind', async () => {
    const client = await connect();
    const outcome = await executeStep(client, step('select 1;', { lockTimeoutMs: 1_234, statementTimeoutMs: 5_678 }), { kind: 'own' });
    expect(outcome.ok).toBe(true);
    const { rows } = await client.query<{ interval: string; lock: string; statement: string }>(
      `select current_setting('client_connection_check_interval') as interval,
              current_setting('lock_timeout') as lock, current_setting('statement_timeout') as statement`,
    );
    expect(rows[0]).toEqual({ interval: '2s', lock: '0', statement: '0' });
    expect(outcome.backendPid).toBe(await backendPidOf(client));
  });

  it('applies the step timeouts with SET LOCAL inside the transaction', async () => {
    const client = await connect();
    const outcome = await executeStep(
      client,
      step(`do $$ begin raise notice '% %', current_setting('lock_timeout'), current_setting('statement_timeout'); end $$;`, {
        lockTimeoutMs: 1_500,
        statementTimeoutMs: 90_000,
      }),
      { kind: 'own' },
    );
    expect(outcome.statements[0]!.notices[0]!.message).toBe('1500ms 90s');
  });
});

describe('non-transactional steps', () => {
  it('runs CREATE INDEX CONCURRENTLY, each statement committed on its own', async () => {
    const sql = [
      'create table nt (id int primary key, v int);',
      'insert into nt values (1, 1), (2, 2);',
      'create index concurrently nt_v_idx on nt (v);',
    ].join('\n');
    const client = await connect();
    const committed: number[] = [];
    const outcome = await executeStep(client, step(sql, { transactional: false, lockTimeoutMs: 700 }), { kind: 'own' }, {
      onStatementCommitted: (event) => void committed.push(event.index),
    });
    expect(outcome.failure).toBeUndefined();
    expect(outcome).toMatchObject({ ok: true, committed: true, completedCount: 3 });
    expect(committed).toEqual([0, 1, 2]);
    const { rows } = await observer.query<{ valid: boolean }>(
      `select indisvalid as valid from pg_index where indexrelid = 'nt_v_idx'::regclass`,
    );
    expect(rows[0]!.valid).toBe(true);
    // Session-level timeouts are reset afterwards.
    const settings = await client.query<{ lock: string }>(`select current_setting('lock_timeout') as lock`);
    expect(settings.rows[0]!.lock).toBe('0');
  });

  it('leaves statements 1–2 committed when statement 3 fails, and says so', async () => {
    const sql = [
      'create table nt2 (id int primary key);',
      'insert into nt2 values (1);',
      'insert into nt2 values (1);',
      'insert into nt2 values (2);',
    ].join('\n');
    const client = await connect();
    const committed: number[] = [];
    const outcome = await executeStep(client, step(sql, { transactional: false }), { kind: 'own' }, {
      onStatementCommitted: (event) => void committed.push(event.index),
    });
    expect(outcome).toMatchObject({ ok: false, committed: false, completedCount: 2 });
    expect(committed).toEqual([0, 1]);
    expect(outcome.failure).toMatchObject({ statementIndex: 2, line: 3, sqlstate: '23505' });
    expect(outcome.failure!.summary).toMatch(/2 statement\(s\) had completed and stay committed/);
    expect(await count('nt2')).toBe(1);
  });

  it('lets a DO block commit between batches (a batched backfill)', async () => {
    const sql = [
      'create table batches (id int);',
      'do $$',
      'begin',
      '  for i in 1..3 loop',
      '    insert into batches values (i);',
      '    commit;',
      "    raise notice 'batch % committed', i;",
      '  end loop;',
      'end',
      '$$;',
    ].join('\n');
    const client = await connect();
    const outcome = await executeStep(client, step(sql, { transactional: false }), { kind: 'own' });
    expect(outcome.failure).toBeUndefined();
    expect(outcome.statements[1]!.notices.map((notice) => notice.message)).toEqual(['batch 1 committed', 'batch 2 committed', 'batch 3 committed']);
    expect(await count('batches')).toBe(3);
  });
});

describe('transactions', () => {
  it('runs beforeCommit in the same transaction: committed with the step, rolled back when a later check throws', async () => {
    const client = await connect();
    await ensureLedger(client);
    const ledgerRow = (runId: string) =>
      client.query(`insert into runsheet.ledger (run_id, plan_id, checksum, action, outcome, applied_by) values ($1, 'plan', 'sum', 'apply', 'applied', 'engineer')`, [runId]);
    const ledgerCount = async (runId: string) => {
      const { rows } = await observer.query<{ n: string }>('select count(*) as n from runsheet.ledger where run_id = $1', [runId]);
      return Number(rows[0]!.n);
    };

    const failingRun = '00000000-0000-4000-8000-000000000001';
    const failed = await executeStep(client, step('create table bc_failed (id int);'), { kind: 'own' }, {
      beforeCommit: async (sameClient) => {
        // The step's uncommitted table is visible here, and only here: the same transaction.
        const inside = await sameClient.query<{ present: boolean }>(`select to_regclass('bc_failed') is not null as present`);
        expect(inside.rows[0]!.present).toBe(true);
        expect(await tableExists('bc_failed')).toBe(false);
        await ledgerRow(failingRun);
        throw new Error('a later check failed');
      },
    });
    expect(failed.ok).toBe(false);
    expect(failed.failure).toMatchObject({ during: 'before_commit', message: 'a later check failed' });
    expect(failed.committed).toBe(false);
    expect(failed.connectionBroken).toBe(false);
    expect(await tableExists('bc_failed')).toBe(false);
    expect(await ledgerCount(failingRun)).toBe(0);

    const goodRun = '00000000-0000-4000-8000-000000000002';
    const applied = await executeStep(client, step('create table bc_ok (id int);'), { kind: 'own' }, {
      beforeCommit: async () => {
        await ledgerRow(goodRun);
      },
    });
    expect(applied).toMatchObject({ ok: true, committed: true });
    expect(await tableExists('bc_ok')).toBe(true);
    expect(await ledgerCount(goodRun)).toBe(1);
  });

  it('does not pass off a COMMIT that answered ROLLBACK (an error a hook swallowed) as success', async () => {
    const client = await connect();
    const outcome = await executeStep(client, step('create table swallowed (id int);'), { kind: 'own' }, {
      beforeCommit: async (sameClient) => {
        await sameClient.query('select 1/0').catch(() => {});
      },
    });
    expect(outcome).toMatchObject({ ok: false, committed: false });
    expect(outcome.failure).toMatchObject({ during: 'commit' });
    expect(await tableExists('swallowed')).toBe(false);
  });

  it("runs inside the caller's open transaction in caller mode; the caller's ROLLBACK leaves nothing", async () => {
    const client = await connect();
    await client.query('begin');
    await client.query(`select set_config('lock_timeout', '777', true)`);
    const outcome = await executeStep(client, step('create table rehearsed (id int);\ninsert into rehearsed values (1), (2);', { lockTimeoutMs: 2_000 }), {
      kind: 'caller',
    });
    expect(outcome.failure).toBeUndefined();
    expect(outcome).toMatchObject({ ok: true, committed: false, mode: 'caller', completedCount: 2 });
    expect(client.getTransactionStatus()).toBe('T');
    const visible = await client.query<{ n: string }>('select count(*) as n from rehearsed');
    expect(Number(visible.rows[0]!.n)).toBe(2);
    expect(await tableExists('rehearsed')).toBe(false);
    // The caller's own timeouts come back for the rest of its transaction.
    const setting = await client.query<{ lock: string }>(`select current_setting('lock_timeout') as lock`);
    expect(setting.rows[0]!.lock).toBe('777ms');
    await client.query('rollback');
    expect(await tableExists('rehearsed')).toBe(false);
  });

  it('leaves the rollback to the caller when a statement fails in caller mode', async () => {
    const client = await connect();
    await client.query('begin');
    const outcome = await executeStep(client, step('create table caller_fail (id int primary key);\ninsert into caller_fail values (1), (1);'), { kind: 'caller' });
    expect(outcome.failure).toMatchObject({ line: 2, sqlstate: '23505' });
    // The caller's transaction is aborted, not ended: it is the caller's to roll back.
    await expect(client.query('select 1')).rejects.toMatchObject({ code: '25P02' });
    await client.query('rollback');
    expect(await tableExists('caller_fail')).toBe(false);
  });

  it('refuses caller mode without an open transaction, and own mode inside one', async () => {
    const client = await connect();
    const caller = await executeStep(client, step('create table no_tx (id int);'), { kind: 'caller' });
    expect(caller.failure).toMatchObject({ during: 'setup' });
    expect(caller.failure!.message).toMatch(/caller mode needs an open transaction/);
    expect(await tableExists('no_tx')).toBe(false);

    await client.query('begin');
    const own = await executeStep(client, step('create table in_tx (id int);'), { kind: 'own' });
    expect(own.failure!.message).toMatch(/already inside a transaction/);
    await client.query('rollback');
    expect(await tableExists('in_tx')).toBe(false);
  });
});

describe('locks, timeouts and cancel', () => {
  it('gives up on lock_timeout naming the blocker, and a writer queued behind the migration goes on while the holder still holds', async () => {
    const setup = await connect();
    await setup.query('create table lt (id int)');
    const holder = await connect('lock-holder');
    const migration = await connect('runsheet-migration');
    const writer = await connect('app-writer');
    const holderPid = await backendPidOf(holder);
    const migrationPid = await backendPidOf(migration);
    const writerPid = await backendPidOf(writer);

    // The holder: an open transaction that read the table (AccessShareLock), as a long report would.
    await holder.query('begin');
    await holder.query('select count(*) from lt');

    let stepSettled = false;
    const stepDone = executeStep(migration, step('alter table lt add column note text;', { lockTimeoutMs: 500 }), { kind: 'own' }, {}, { blockerProbe: probe }).finally(
      () => (stepSettled = true),
    );
    await waitFor('the ALTER to wait for its lock', async () => (await waitEventOf(migrationPid)) === 'Lock');

    // The writer: RowExclusiveLock is compatible with the holder, but queues behind the ALTER's AccessExclusiveLock.
    let writerDone = false;
    const writerInsert = writer.query('insert into lt values (100)').then(() => (writerDone = true));
    await waitFor('the writer to queue behind the ALTER', async () => (await waitEventOf(writerPid)) === 'Lock');
    expect(stepSettled).toBe(false);
    expect(writerDone).toBe(false);

    const outcome = await stepDone;
    expect(outcome.ok).toBe(false);
    expect(outcome.failure).toMatchObject({ sqlstate: '55P03', line: 1, timeout: 'lock_timeout', cancelled: false });
    const blocker = outcome.failure!.blockers.find((candidate) => candidate.pid === holderPid);
    expect(blocker).toMatchObject({ pid: holderPid, application: 'lock-holder', state: 'idle in transaction', lockMode: 'AccessShareLock', relation: 'lt' });
    expect(outcome.failure!.blockers.map((candidate) => candidate.pid)).not.toContain(writerPid);
    expect(outcome.failure!.summary).toMatch(new RegExp(`blocked by pid ${holderPid} \\(application lock-holder`));

    // The writer finishes once the migration gave up, while the holder still holds its lock.
    await Promise.race([writerInsert, new Promise((_, reject) => setTimeout(() => reject(new Error('the writer is still waiting')), 3_000))]);
    const held = await observer.query<{ mode: string; state: string }>(
      `select l.mode, a.state from pg_locks l join pg_stat_activity a using (pid)
        where l.pid = $1 and l.relation = 'lt'::regclass and l.granted`,
      [holderPid],
    );
    expect(held.rows).toEqual([{ mode: 'AccessShareLock', state: 'idle in transaction' }]);
    await holder.query('commit');

    const columns = await observer.query(`select 1 from information_schema.columns where table_name = 'lt' and column_name = 'note'`);
    expect(columns.rowCount).toBe(0);
    expect(await count('lt')).toBe(1);
  });

  it('ends a long statement promptly on cancel, reports cancelled, and rolls the transaction back', async () => {
    const client = await connect();
    const pid = await backendPidOf(client);
    const started = Date.now();
    const done = executeStep(client, step('create table cancelled_step (id int);\ninsert into cancelled_step values (1);\nselect pg_sleep(30);'), { kind: 'own' });
    await waitFor('pg_sleep to run', async () => {
      const { rows } = await observer.query<{ wait_event: string | null }>('select wait_event from pg_stat_activity where pid = $1', [pid]);
      return rows[0]?.wait_event === 'PgSleep';
    });
    expect(markCancelRequested(client)).toBe(true);
    expect(await cancelBackend(observer, pid)).toBe(true);
    const outcome = await done;
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(outcome.failure).toMatchObject({ statementIndex: 2, line: 3, sqlstate: '57014', cancelled: true });
    expect(outcome.failure!.timeout).toBeUndefined();
    expect(outcome.completedCount).toBe(2);
    expect(await tableExists('cancelled_step')).toBe(false);
    expect(markCancelRequested(client)).toBe(false);
  });

  it('tells a statement_timeout apart from a cancel', async () => {
    const client = await connect();
    const outcome = await executeStep(client, step('select pg_sleep(5);', { statementTimeoutMs: 200 }), { kind: 'own' });
    expect(outcome.failure).toMatchObject({ sqlstate: '57014', cancelled: false, timeout: 'statement_timeout' });
    expect(outcome.failure!.summary).toMatch(/statement_timeout is 200 ms/);
  });

  it('stops before the next statement when cancelled between statements (an AbortSignal)', async () => {
    const client = await connect();
    const controller = new AbortController();
    const outcome = await executeStep(
      client,
      step('create table between_statements (id int);\ninsert into between_statements values (1);', { transactional: false }),
      { kind: 'own' },
      { onStatementCommitted: () => controller.abort() },
      { signal: controller.signal, cancelPool: probe },
    );
    expect(outcome.failure).toMatchObject({ statementIndex: 1, line: 2, cancelled: true });
    expect(outcome.completedCount).toBe(1);
    expect(await count('between_statements')).toBe(0);
  });

  it('cancels a running statement through the signal', async () => {
    const client = await connect();
    const controller = new AbortController();
    const started = Date.now();
    const outcome = await executeStep(client, step('select pg_sleep(30);'), { kind: 'own' }, {
      onStatementStart: () => void setTimeout(() => controller.abort(), 300),
    }, { signal: controller.signal, cancelPool: probe });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(outcome.failure).toMatchObject({ sqlstate: '57014', cancelled: true });
  });

  it('says the outcome is unknown when the session dies during a non-transactional statement', async () => {
    const client = await connect();
    const pid = await backendPidOf(client);
    const done = executeStep(client, step('select pg_sleep(30);', { transactional: false }), { kind: 'own' });
    await waitFor('pg_sleep to run', async () => (await waitEventOf(pid)) === 'Timeout');
    await observer.query('select pg_terminate_backend($1)', [pid]);
    const outcome = await done;
    expect(outcome.connectionBroken).toBe(true);
    expect(outcome.failure).toMatchObject({ outcomeUnknown: true, cancelled: false });
  });
});
