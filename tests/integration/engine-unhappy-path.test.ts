/**
 * Issue "When a migration goes wrong at 2 am", reproductions 1, 2, 3 and 11 against the engine:
 * another session holds a lock on platform.users (`BEGIN; LOCK TABLE …;` then sleeping 60 s, as
 * in psql) while plan 008 runs. Every wait is visible while the lock is still held (the blocker's
 * pid in the run log and in the live samples), a failed snapshot stops the run before the apply,
 * and a cancel ends a blocked snapshot, verification check, step and rollback while the lock is
 * still held: the assertions are about order (the lock is still held when the run has ended), never
 * about how long anything took.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelRun, executeRun, rehearseRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import type { LoggedRunEvent } from '../../app/runs/run-log.server';
import { readRunEvents } from '../../app/runs/run-log.server';
import { eventsOf } from '../../app/runs/run-events';
import { ENGINE_PLANS, ENGINEER, ledgerRows, REAL_PLANS, SECOND_ENGINEER, startEngineHarness, startEngineWorker, TPM, waitFor, type EngineHarness } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
let harness: EngineHarness;
let plansDir: string;

beforeAll(async () => {
  // Plan 008 as committed, beside the engine fixtures; only its steps' lock_timeout is longer (60 s), so a cancel always lands first.
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-unhappy-'));
  fs.cpSync(path.join(REAL_PLANS, PLAN), path.join(plansDir, PLAN), { recursive: true });
  const planFile = path.join(plansDir, PLAN, 'plan.yaml');
  fs.writeFileSync(planFile, fs.readFileSync(planFile, 'utf8').replaceAll('lock_timeout: 5s', 'lock_timeout: 60s'));
  fs.cpSync(path.join(ENGINE_PLANS, 'verify-locked'), path.join(plansDir, 'verify-locked'), { recursive: true });
  harness = await startEngineHarness({
    plansDir,
    targets: [
      // Checks wait 5 s for a lock (the default): the snapshot fails with 55P03.
      { name: 'sandbox', sandboxUsers: 300 },
      // Checks wait up to a minute: a cancel ends them first.
      { name: 'patient', sandboxUsers: 300, rules: { check_lock_timeout: '60s' } },
      { name: 'remote', sandboxUsers: 300, rules: { check_lock_timeout: '60s' } },
      { name: 'guarded', rules: { check_lock_timeout: '60s' } },
    ],
  });
  const guarded = await harness.connect('guarded');
  await guarded.query('create table public.guarded_t (id int); insert into public.guarded_t values (1)');
  await guarded.end();
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

interface LockHolder {
  pid: number;
  /** Whether the holder still holds its lock (granted) now. */
  holds(): Promise<boolean>;
  release(): Promise<void>;
}

/** Another session: BEGIN; LOCK TABLE <table> IN <mode> MODE; then sleeps 60 s inside the transaction. */
async function holdLock(target: string, table: string, mode: string): Promise<LockHolder> {
  const client: pg.Client = await harness.connect(target);
  await client.query(`set application_name = 'psql'`);
  const pid = Number((await client.query('select pg_backend_pid() as pid')).rows[0].pid);
  await client.query('begin');
  await client.query(`lock table ${table} in ${mode} mode`);
  const sleeping = client.query('select pg_sleep(60)').catch(() => undefined);
  const probe = harness.targets.get(target)!.pool;
  return {
    pid,
    holds: async () => {
      const { rows } = await probe.query(`select exists (select 1 from pg_locks where pid = $1 and granted and relation = $2::regclass) as held`, [pid, table]);
      return rows[0].held === true;
    },
    release: async () => {
      await probe.query('select pg_cancel_backend($1)', [pid]);
      await sleeping;
      await client.query('rollback').catch(() => undefined);
      await client.end();
    },
  };
}

async function readyRun(planId: string, target: string): Promise<string> {
  const run = (await openWorkingRun(harness.deps, { planId, target, kind: 'execute', actor: TPM, newAttempt: true })).run;
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  if (plan.prechecks.length > 0) await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  return run.id;
}

/** The events a drive hands to onEvent, and the first one that satisfies `test`. */
function eventRecorder() {
  const events: LoggedRunEvent[] = [];
  return {
    events,
    onEvent: (event: LoggedRunEvent) => events.push(event),
    waitForEvent: (what: string, test: (event: LoggedRunEvent) => boolean) => waitFor(what, async () => events.find(test), 60_000, 50),
  };
}

const waitBlockedBy = (pid: number, waitingFor: string) => (event: LoggedRunEvent) =>
  event.type === 'wait.started' && event.payload.waitingFor === waitingFor && event.payload.blockers.some((blocker) => blocker.pid === pid);

async function userColumns(target: string): Promise<string[]> {
  const { rows } = await harness.targets.get(target)!.pool.query(`select column_name from information_schema.columns where table_schema = 'platform' and table_name = 'users' order by column_name`);
  return rows.map((row) => row.column_name as string);
}

describe('a snapshot that waits for a lock (reproductions 1 and 2)', () => {
  it('shows the wait and its blocker while the lock is held, then fails the snapshot and never starts the apply', async () => {
    const runId = await readyRun(PLAN, 'sandbox');
    const columnsBefore = await userColumns('sandbox');
    const holder = await holdLock('sandbox', 'platform.users', 'access exclusive');
    const recorder = eventRecorder();
    const samples: { pid: number; blockers: number[]; lockTimeoutMs: number | null }[] = [];
    try {
      const execution = executeRun(harness.deps, {
        runId,
        actor: ENGINEER,
        onEvent: recorder.onEvent,
        onWaits: (waits) => waits.forEach((wait) => samples.push({ pid: wait.pid, blockers: wait.blockers.map((blocker) => blocker.pid), lockTimeoutMs: wait.lockTimeoutMs })),
      });
      const started = await recorder.waitForEvent('the snapshot wait with its blocker', waitBlockedBy(holder.pid, 'check snapshot-counts'));
      // The wait is in the log while the lock is still held, with who holds it and what the check waits for.
      expect(await holder.holds()).toBe(true);
      expect(started.payload).toMatchObject({
        phase: 'snapshot',
        waitEvent: 'Lock:relation',
        relation: 'platform.users',
        lockTimeoutMs: 5_000,
        blockers: [expect.objectContaining({ pid: holder.pid, application: 'psql', lockMode: 'AccessExclusiveLock', state: 'active' })],
      });
      expect(samples.some((sample) => sample.blockers.includes(holder.pid) && sample.lockTimeoutMs === 5_000)).toBe(true);

      const run = await execution;
      expect(await holder.holds()).toBe(true);
      expect(run.state).toBe('failed');
      expect(run.outcome?.stoppedAt).toMatchObject({ phase: 'snapshot', checkId: 'snapshot-counts', sqlstate: '55P03', blockers: [expect.objectContaining({ pid: holder.pid })] });
      expect(run.outcome?.retryable).toBe(true);
      expect(run.outcome?.phases?.find((phase) => phase.phase === 'snapshot')).toMatchObject({ ok: false });

      const events = await readRunEvents(harness.store.pool, runId);
      // Reproduction 2: nothing after the failed snapshot ran.
      expect(eventsOf(events, 'phase.started').map((event) => event.payload.phase)).toEqual(['snapshot']);
      expect(eventsOf(events, 'step.started')).toEqual([]);
      const waitingPid = started.type === 'wait.started' ? started.payload.pid : -1;
      expect(eventsOf(events, 'wait.ended').some((event) => event.payload.pid === waitingPid)).toBe(true);
      expect(await userColumns('sandbox')).toEqual(columnsBefore);
    } finally {
      await holder.release();
    }
  });
});

describe('cancel while blocked (reproduction 3)', () => {
  it('ends a blocked snapshot at once: cancelled, the apply never begins, while the lock is still held', async () => {
    const runId = await readyRun(PLAN, 'patient');
    const holder = await holdLock('patient', 'platform.users', 'access exclusive');
    const recorder = eventRecorder();
    try {
      const execution = executeRun(harness.deps, { runId, actor: ENGINEER, onEvent: recorder.onEvent });
      await recorder.waitForEvent('the snapshot blocked', waitBlockedBy(holder.pid, 'check snapshot-counts'));
      await cancelRun(harness.deps, { runId, actor: SECOND_ENGINEER });
      const run = await execution;
      expect(await holder.holds()).toBe(true);
      expect(run.state).toBe('cancelled');
      expect(run.outcome).toMatchObject({ cancelledBy: SECOND_ENGINEER.email, stoppedAt: { phase: 'snapshot', cancelledBy: SECOND_ENGINEER.email }, ledger: { written: null } });
      const events = await readRunEvents(harness.store.pool, runId);
      expect(eventsOf(events, 'phase.started').map((event) => event.payload.phase)).toEqual(['snapshot']);
      expect(eventsOf(events, 'cancel.signalled')[0]?.payload).toMatchObject({ signal: 'cancel', by: SECOND_ENGINEER.email });
      expect(eventsOf(events, 'execute.finished')[0]?.payload.state).toBe('cancelled');
    } finally {
      await holder.release();
    }
  });

  it('ends a blocked step at once: its transaction rolls back, nothing in the ledger, the run cancelled', async () => {
    const runId = await readyRun(PLAN, 'patient');
    const columnsBefore = await userColumns('patient');
    // SHARE lets the snapshot read the table and blocks the apply's ALTER TABLE.
    const holder = await holdLock('patient', 'platform.users', 'share');
    const recorder = eventRecorder();
    try {
      const execution = executeRun(harness.deps, { runId, actor: ENGINEER, onEvent: recorder.onEvent });
      const started = await recorder.waitForEvent('the step blocked', waitBlockedBy(holder.pid, 'step apply-008'));
      expect(started.payload).toMatchObject({ phase: 'apply', lockTimeoutMs: 60_000 });
      await cancelRun(harness.deps, { runId, actor: SECOND_ENGINEER });
      const run = await execution;
      expect(await holder.holds()).toBe(true);
      expect(run.state).toBe('cancelled');
      expect(run.outcome).toMatchObject({
        cancelledBy: SECOND_ENGINEER.email,
        failure: { stepId: 'apply-008', cancelled: true, sqlstate: '57014' },
        stoppedAt: { phase: 'apply', stepId: 'apply-008', cancelledBy: SECOND_ENGINEER.email },
        ledger: { written: null },
      });
      const events = await readRunEvents(harness.store.pool, runId);
      expect(eventsOf(events, 'phase.started').map((event) => event.payload.phase)).toEqual(['snapshot', 'apply']);
      expect(await ledgerRows(harness.targets.get('patient')!.pool)).toEqual([]);
      expect(await userColumns('patient')).toEqual(columnsBefore);
    } finally {
      await holder.release();
    }
  });

  it('ends a blocked rehearsal: rehearsal_failed with who cancelled, and its transaction rolled back', async () => {
    const run = (await openWorkingRun(harness.deps, { planId: PLAN, target: 'patient', kind: 'rehearsal', actor: ENGINEER, newAttempt: true })).run;
    const holder = await holdLock('patient', 'platform.users', 'share');
    const recorder = eventRecorder();
    try {
      const rehearsal = rehearseRun(harness.deps, { runId: run.id, actor: ENGINEER, onEvent: recorder.onEvent });
      await recorder.waitForEvent('the rehearsal blocked', waitBlockedBy(holder.pid, 'step apply-008'));
      await cancelRun(harness.deps, { runId: run.id, actor: ENGINEER });
      const ended = await rehearsal;
      expect(await holder.holds()).toBe(true);
      expect(ended.state).toBe('rehearsal_failed');
      expect(ended.outcome).toMatchObject({ cancelledBy: ENGINEER.email, rehearsal: { rolledBack: true } });
      const phases = eventsOf(await readRunEvents(harness.store.pool, run.id), 'phase.started').map((event) => event.payload.phase);
      expect(phases).toEqual(['snapshot', 'apply']);
    } finally {
      await holder.release();
    }
  });

  it('ends a blocked verification check after the apply committed: cancelled, and the rollback gate offers to undo it', async () => {
    const runId = await readyRun('verify-locked', 'guarded');
    const holder = await holdLock('guarded', 'public.guarded_t', 'access exclusive');
    const recorder = eventRecorder();
    try {
      const execution = executeRun(harness.deps, { runId, actor: ENGINEER, onEvent: recorder.onEvent });
      await recorder.waitForEvent('the verification check blocked', waitBlockedBy(holder.pid, 'check guarded-count'));
      await cancelRun(harness.deps, { runId, actor: ENGINEER });
      const run = await execution;
      expect(await holder.holds()).toBe(true);
      expect(run.state).toBe('cancelled');
      expect(run.outcome).toMatchObject({ ledger: { written: 'applied' }, stoppedAt: { cancelledBy: ENGINEER.email } });
      const phases = eventsOf(await readRunEvents(harness.store.pool, runId), 'phase.started').map((event) => event.payload.phase);
      expect(phases).toEqual(['snapshot', 'apply', 'verification']);
    } finally {
      await holder.release();
    }

    // A blocked rollback, cancelled: rollback_failed, and the run may be rolled back again.
    const tableHolder = await holdLock('guarded', 'public.verify_t', 'access share');
    const rollbackEvents = eventRecorder();
    try {
      const rollback = rollbackRun(harness.deps, { runId, actor: ENGINEER, onEvent: rollbackEvents.onEvent });
      await rollbackEvents.waitForEvent('the rollback blocked', waitBlockedBy(tableHolder.pid, 'step drop-verify-table'));
      await cancelRun(harness.deps, { runId, actor: SECOND_ENGINEER });
      const run = await rollback;
      expect(await tableHolder.holds()).toBe(true);
      expect(run.state).toBe('rollback_failed');
      expect(run.outcome?.rollback).toMatchObject({ cancelledBy: SECOND_ENGINEER.email, stoppedAt: { phase: 'rollback', stepId: 'drop-verify-table' } });
    } finally {
      await tableHolder.release();
    }
    const again = await rollbackRun(harness.deps, { runId, actor: ENGINEER });
    expect(again.state).toBe('rolled_back');
    const { rows } = await harness.targets.get('guarded')!.pool.query(`select to_regclass('public.verify_t') as t`);
    expect(rows[0].t).toBeNull();
  });
});

describe('a cancel from another process (reproduction 11)', () => {
  it('stops a run driven elsewhere while its snapshot is blocked: the apply never begins', async () => {
    const runId = await readyRun(PLAN, 'remote');
    const holder = await holdLock('remote', 'platform.users', 'access exclusive');
    try {
      const worker = startEngineWorker({
        storeUrl: harness.storeDb.url,
        plansDir,
        signingKeyPem: harness.signingKeyPem,
        targets: [{ name: 'remote', url: harness.targets.get('remote')!.db.url, rules: { check_lock_timeout: '60s' } }],
        actor: ENGINEER,
        executes: [runId],
      });
      await waitFor(
        'the worker waiting on the lock',
        async () => eventsOf(await readRunEvents(harness.store.pool, runId), 'wait.started').find((event) => event.payload.blockers.some((blocker) => blocker.pid === holder.pid)),
        60_000,
        100,
      );
      const { signalled } = await cancelRun(harness.deps, { runId, actor: SECOND_ENGINEER });
      expect(signalled.length).toBeGreaterThan(0);
      const { code, stdout } = await worker.done;
      expect(await holder.holds()).toBe(true);
      expect(code).toBe(0);
      expect(JSON.parse(stdout.trim()).results).toEqual([{ runId, state: 'cancelled' }]);
      const events = await readRunEvents(harness.store.pool, runId);
      expect(eventsOf(events, 'phase.started').map((event) => event.payload.phase)).toEqual(['snapshot']);
    } finally {
      await holder.release();
    }
  });
});
