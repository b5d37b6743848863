/**
 * Issue "Safe at production scale", done-when (batched backfill and lock retries): a batched
 * backfill paused and resumed, cancelled and continued by a new run, and killed mid-way (its
 * process SIGKILLed) and continued by a new run, ends with every row updated exactly once. The
 * fixture's UPDATE is not idempotent (n = n + 1) and a trigger counts every update of each row,
 * so a batch applied twice or skipped shows. A lock timeout (55P03) is retried with the blockers
 * in the run log ('step.retry'), for a sql step and for a backfill batch.
 */
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseBackfill, resumeBackfill } from '../../app/engine/backfill-control.server';
import { markInterruptedRuns } from '../../app/engine/crash-recovery.server';
import { cancelRun, executeRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun, getRun } from '../../app/engine/runs.server';
import { runApplicationName } from '../../app/engine/target-session.server';
import { readRunEvents } from '../../app/runs/run-log.server';
import { eventsOf as eventsOfType, type RunEvent, type RunEventOf, type RunEventType } from '../../app/runs/run-events';
import { readBackfillProgress } from '../../app/targets/ledger.server';
import { ENGINEER, ledgerRows, ROOT, startEngineHarness, startEngineWorker as startWorker, TPM, waitFor, type EngineHarness } from './engine-harness';
import type { WorkerJob } from './engine-worker';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

const PLANS = path.join(ROOT, 'tests/fixtures/plans-big-table');
const PLAN = 'backfill-counter';
const ROWS = 6_000;
let harness: EngineHarness;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: PLANS, targets: [{ name: 'paused' }, { name: 'killed' }, { name: 'cancelled' }, { name: 'rowlock' }, { name: 'recreated' }, { name: 'altered' }] });
});

afterAll(async () => {
  await harness?.close();
});

const pool = (target: string): pg.Pool => harness.targets.get(target)!.pool;

/** public.bf_t with ROWS rows; `updates` counts, by trigger, every UPDATE of each row. */
async function createCounterTable(target: string): Promise<void> {
  await pool(target).query(`
    create table public.bf_t (id bigint primary key, n int not null, updates int not null default 0);
    create function public.bf_t_count_update() returns trigger language plpgsql as $$
    begin
      new.updates := old.updates + 1;
      return new;
    end
    $$;
    create trigger bf_t_count_update before update on public.bf_t for each row execute function public.bf_t_count_update();
    insert into public.bf_t (id, n) select g * 3, g from generate_series(1, ${ROWS}) as g;`);
}

/** Every row updated exactly once, and n moved by exactly one. */
async function expectEveryRowUpdatedOnce(target: string): Promise<void> {
  const { rows } = await pool(target).query(`
    select count(*)::int as rows,
           count(*) filter (where updates = 1)::int as once,
           count(*) filter (where updates = 0)::int as never,
           count(*) filter (where updates > 1)::int as twice_or_more,
           count(*) filter (where n <> id / 3 + 1)::int as wrong_value
      from public.bf_t`);
  expect(rows[0]).toEqual({ rows: ROWS, once: ROWS, never: 0, twice_or_more: 0, wrong_value: 0 });
}

async function rowsDone(target: string): Promise<number> {
  return (await readBackfillProgress(pool(target), PLAN))[0]?.rowsDone ?? 0;
}

async function eventsOf(runId: string): Promise<RunEvent[]>;
async function eventsOf<T extends RunEventType>(runId: string, type: T): Promise<RunEventOf<T>[]>;
async function eventsOf(runId: string, type?: RunEventType): Promise<RunEvent[]> {
  const events = await readRunEvents(harness.store.pool, runId);
  return type ? eventsOfType(events, type) : events;
}

const waitForEvent = <T extends RunEventType>(runId: string, type: T) => waitFor(`${type} in run ${runId}`, async () => (await eventsOf(runId, type))[0]);

async function readyRun(target: string): Promise<string> {
  const run = await openRun(harness.deps, { planId: PLAN, target, kind: 'execute', actor: TPM });
  expect(run.state).toBe('ready');
  return run.id;
}

describe('a batched backfill', () => {
  it('pauses and resumes from the run, reports progress, and updates every row exactly once', async () => {
    await createCounterTable('paused');
    const runId = await readyRun('paused');
    await expect(pauseBackfill(harness.deps, { runId, actor: TPM })).rejects.toMatchObject({ kind: 'permission' });

    const driving = executeRun(harness.deps, { runId, actor: ENGINEER });
    await waitFor('a few batches', async () => (await rowsDone('paused')) >= 400);
    const requested = await pauseBackfill(harness.deps, { runId, actor: ENGINEER, reason: 'replica lag above 30 s' });
    expect(requested.requested?.type).toBe('backfill.pause');
    expect((await pauseBackfill(harness.deps, { runId, actor: ENGINEER })).requested).toBeUndefined();

    const paused = await waitForEvent(runId, 'backfill.paused');
    expect(paused.payload).toMatchObject({ stepId: 'bump', by: ENGINEER.email, reason: 'replica lag above 30 s' });
    const atPause = await rowsDone('paused');
    expect(paused.payload.rowsDone).toBe(atPause);
    expect(atPause).toBeLessThan(ROWS);
    // While paused no batch runs: several pause polls later the cursor has not moved.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await rowsDone('paused')).toBe(atPause);
    expect((await getRun(harness.deps, runId)).state).toBe('applying');

    await resumeBackfill(harness.deps, { runId, actor: ENGINEER });
    const done = await driving;
    expect(done.outcome?.failure).toBeUndefined();
    expect(done).toMatchObject({ state: 'applied', outcome: { verified: true, ledger: { written: 'applied' } } });
    await expectEveryRowUpdatedOnce('paused');

    const events = await eventsOf(runId);
    const types = events.map((event) => event.type);
    expect(types.indexOf('backfill.pause')).toBeLessThan(types.indexOf('backfill.paused'));
    expect(types.indexOf('backfill.resume')).toBeLessThan(types.indexOf('backfill.resumed'));
    const progress = events.filter((event) => event.type === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(3);
    for (const event of progress) expect(Object.keys(event.payload)).toEqual(expect.arrayContaining(['stepId', 'done', 'total', 'rate', 'etaMs']));
    expect(progress.at(-1)!.payload).toMatchObject({ stepId: 'bump', done: ROWS, total: ROWS, etaMs: 0, updated: ROWS, batches: ROWS / 40 });
    expect(events.find((event) => event.type === 'backfill.completed')!.payload).toMatchObject({ rowsDone: ROWS, rowsUpdated: ROWS, batches: ROWS / 40 });
    expect(done.outcome!.steps![0]).toMatchObject({ stepId: 'bump', kind: 'batched_backfill', ok: true, detail: { backfill: { rowsDone: ROWS, complete: true } } });
    expect(await readBackfillProgress(pool('paused'), PLAN)).toEqual([expect.objectContaining({ rowsDone: ROWS, batches: ROWS / 40, completedAt: expect.any(String), runId })]);
  });

  it('killed mid-way (SIGKILL), resumes in a new run after the last committed batch: every row exactly once', async () => {
    await createCounterTable('killed');
    const first = await readyRun('killed');
    const { child, done } = startWorker({
      storeUrl: harness.storeDb.url,
      plansDir: PLANS,
      signingKeyPem: harness.signingKeyPem,
      targets: [{ name: 'killed', url: harness.targets.get('killed')!.db.url }],
      actor: ENGINEER,
      executes: [first],
    });
    await waitFor('the worker half-way through', async () => (await rowsDone('killed')) >= 1_000, 60_000, 20);
    child.kill('SIGKILL');
    const exited = await done;
    expect(exited.code).toBeNull();
    // The server ends the killed process's session (and rolls back a batch in flight).
    await waitFor('the killed session gone', async () => {
      const { rows } = await pool('killed').query('select count(*)::int as n from pg_stat_activity where application_name = $1', [runApplicationName(first)]);
      return rows[0].n === 0;
    });

    // The batches and their progress row committed together: rows updated = rows the cursor says.
    const progress = (await readBackfillProgress(pool('killed'), PLAN))[0]!;
    expect(progress.rowsDone).toBeGreaterThanOrEqual(1_000);
    expect(progress.rowsDone).toBeLessThan(ROWS);
    const { rows } = await pool('killed').query(`select count(*) filter (where updates = 1)::int as once, count(*) filter (where updates > 1)::int as more,
                                                        max(id) filter (where updates = 1)::text as last_updated from public.bf_t`);
    expect(rows[0]).toEqual({ once: progress.rowsDone, more: 0, last_updated: progress.lastKey });

    // The ledger checkpoint written before the backfill began makes the interrupted run one that changed the target.
    const [report] = await markInterruptedRuns(harness.deps, { staleAfterMs: 0, runId: first });
    expect(report).toMatchObject({ verdict: 'interrupted', ledgerRows: [expect.objectContaining({ action: 'apply', outcome: 'partial' })] });
    expect(report!.detail).toMatch(/part of it committed/);
    const second = await readyRun('killed');
    const finished = await executeRun(harness.deps, { runId: second, actor: ENGINEER });
    expect(finished.outcome?.failure).toBeUndefined();
    expect(finished).toMatchObject({ state: 'applied', outcome: { verified: true } });
    const resumed = (await eventsOf(second, 'backfill.resumed_from'))[0]!;
    expect(resumed.payload).toMatchObject({ stepId: 'bump', lastKey: progress.lastKey, rowsDone: progress.rowsDone, previousRunId: first });
    await expectEveryRowUpdatedOnce('killed');
  });

  it('cancelled mid-way: the run ends cancelled with a partial ledger row naming the last key, and a new run finishes it exactly once', async () => {
    await createCounterTable('cancelled');
    const first = await readyRun('cancelled');
    const driving = executeRun(harness.deps, { runId: first, actor: ENGINEER });
    await waitFor('a few batches', async () => (await rowsDone('cancelled')) >= 400);
    await cancelRun(harness.deps, { runId: first, actor: ENGINEER });
    const cancelled = await driving;
    expect(cancelled).toMatchObject({ state: 'cancelled', outcome: { cancelledBy: ENGINEER.email, ledger: { written: 'partial' } } });
    const progress = (await readBackfillProgress(pool('cancelled'), PLAN))[0]!;
    // Two rows of the run: the checkpoint written before the backfill began (nothing done yet), then the failure's.
    const [checkpoint, ledger] = await ledgerRows(pool('cancelled'));
    expect(checkpoint).toMatchObject({ run_id: first, action: 'apply', outcome: 'partial', steps_completed: [] });
    expect(ledger).toMatchObject({ run_id: first, action: 'apply', outcome: 'partial' });
    expect(ledger!.steps_completed).toEqual([
      expect.objectContaining({ stepId: 'bump', complete: false, kind: 'batched_backfill', detail: { backfill: expect.objectContaining({ lastKey: progress.lastKey, rowsDone: progress.rowsDone }) } }),
    ]);

    const second = await readyRun('cancelled');
    const finished = await executeRun(harness.deps, { runId: second, actor: ENGINEER });
    expect(finished).toMatchObject({ state: 'applied', outcome: { verified: true } });
    await expectEveryRowUpdatedOnce('cancelled');

    // A rollback forgets the cursor with its ledger row: a later apply would walk from the first key.
    const rolledBack = await rollbackRun(harness.deps, { runId: second, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
    expect(await readBackfillProgress(pool('cancelled'), PLAN)).toEqual([]);
  });

  it('starts over, saying why, when the table was dropped and created again under its cursor', async () => {
    await createCounterTable('recreated');
    const first = await readyRun('recreated');
    const driving = executeRun(harness.deps, { runId: first, actor: ENGINEER });
    await waitFor('a few batches', async () => (await rowsDone('recreated')) >= 400);
    await cancelRun(harness.deps, { runId: first, actor: ENGINEER });
    expect((await driving).state).toBe('cancelled');

    await pool('recreated').query('drop table public.bf_t; drop function public.bf_t_count_update()');
    await createCounterTable('recreated');
    const second = await readyRun('recreated');
    expect(await executeRun(harness.deps, { runId: second, actor: ENGINEER })).toMatchObject({ state: 'applied', outcome: { verified: true } });
    expect((await eventsOf(second, 'backfill.restarted'))[0]!.payload).toMatchObject({ stepId: 'bump', reason: expect.stringContaining('dropped and created again') });
    await expectEveryRowUpdatedOnce('recreated');
  });

  it('retries a batch that hit lock_timeout on a row another session holds, naming it, and goes on exactly once', async () => {
    await createCounterTable('rowlock');
    const holder = await harness.connect('rowlock');
    try {
      await holder.query('begin');
      await holder.query('select 1 from public.bf_t where id = $1 for update', [3 * 500]);
      const holderPid = (await holder.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const runId = await readyRun('rowlock');
      const driving = executeRun(harness.deps, { runId, actor: ENGINEER });
      const retry = await waitForEvent(runId, 'step.retry');
      expect(retry.payload).toMatchObject({ stepId: 'bump', attempt: 1, retries: 3, sqlstate: '55P03', blockers: [expect.objectContaining({ pid: holderPid })] });
      expect(retry.payload.delayMs).toBeGreaterThan(0);
      await holder.query('commit');
      const done = await driving;
      expect(done).toMatchObject({ state: 'applied', outcome: { verified: true } });
      expect(done.outcome!.steps![0]!.attempts).toBeGreaterThanOrEqual(2);
    } finally {
      await holder.end();
    }
    await expectEveryRowUpdatedOnce('rowlock');
  });
});

describe('lock timeout retries of a sql step', () => {
  it('logs each retry with the blocking session, and succeeds once the lock is released', async () => {
    await pool('altered').query('create table public.retry_t (id int primary key)');
    const holder = await harness.connect('altered');
    try {
      await holder.query('begin');
      await holder.query('lock table public.retry_t in access share mode');
      const holderPid = (await holder.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const run = await openRun(harness.deps, { planId: 'lock-retry', target: 'altered', kind: 'execute', actor: TPM });
      const driving = executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
      const retry = await waitForEvent(run.id, 'step.retry');
      expect(retry.payload).toMatchObject({ stepId: 'add-column', kind: 'sql', attempt: 1, retries: 8, sqlstate: '55P03' });
      expect(retry.payload.blockers).toEqual([expect.objectContaining({ pid: holderPid, lockMode: 'AccessShareLock', relation: 'retry_t' })]);
      await holder.query('commit');
      const done = await driving;
      expect(done).toMatchObject({ state: 'applied', outcome: { ledger: { written: 'applied' } } });
      expect(done.outcome!.steps![0]!.attempts).toBeGreaterThanOrEqual(2);
      const started = (await eventsOf(run.id, 'step.started'))[0]!;
      expect(started.payload).toMatchObject({ stepId: 'add-column', retries: 8 });
    } finally {
      await holder.end();
    }
    const { rows } = await pool('altered').query(`select count(*)::int as n from information_schema.columns where table_name = 'retry_t' and column_name = 'extra'`);
    expect(rows[0].n).toBe(1);
  });
});

