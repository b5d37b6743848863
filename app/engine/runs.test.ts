/**
 * The engine on small fixture plans (tests/fixtures/plans-engine), against real PostgreSQL:
 * opening runs, permissions inside the engine, readiness, execute → ledger → rollback, a
 * partial apply, rehearsal refusals, and the signed log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRunEvents } from '../runs/run-log.server';
import { verifyStoredRunLog } from '../runs/verify-run-log.server';
import { loadSigningKey } from '../runs/signing.server';
import { ENGINE_PLANS, ENGINEER, ledgerRows, startEngineHarness, TPM, VIEWER, type EngineHarness } from '../../tests/integration/engine-harness';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';
import { executeRun, rehearseRun, rollbackRun } from './engine.server';
import { addNote, openWorkingRun, getRun, readRunDetail, tickPrerequisite, workingRunFor } from './runs.server';
import { findRuns } from '../runs/run-store.server';
import { ticksFromEvents } from './gates.server';
import { RunsheetError } from '../runtime/errors';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

let harness: EngineHarness;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: ENGINE_PLANS, targets: [{ name: 'sandbox' }] });
});

afterAll(async () => {
  await harness?.close();
});

const publicKey = () => loadSigningKey(harness.signingKeyPem).publicKeyPem;

describe('runs', () => {
  it('opens a run from the plan as it is now, frozen, and ready when no gate is open', async () => {
    const run = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: TPM });
    expect(run.frozenPlan.files.map((file) => file.path)).toEqual(['apply.sql', 'plan.yaml', 'rollback.sql']);
    expect(run.state).toBe('ready');
    const events = await readRunEvents(harness.store.pool, run.id);
    expect(events.map((event) => event.type)).toEqual(['run.created', 'state.changed']);
    expect(events[1]!.payload).toMatchObject({ from: 'draft', to: 'ready' });
    expect((await workingRunFor(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', checksum: run.planChecksum })).working?.id).toBe(run.id);
    expect((await findRuns(harness.store.pool, { planId: 'create-table' })).map((listed) => listed.id)).toContain(run.id);
  });

  it('checks the actor inside the engine and logs the refusal', async () => {
    const run = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: TPM });
    await expect(executeRun(harness.deps, { runId: run.id, actor: TPM })).rejects.toMatchObject({ kind: 'permission' });
    await expect(addNote(harness.deps, { runId: run.id, actor: VIEWER, text: 'hello' })).rejects.toMatchObject({ kind: 'permission' });
    await expect(openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: VIEWER })).rejects.toMatchObject({ kind: 'permission' });
    const refused = (await readRunEvents(harness.store.pool, run.id)).filter((event) => event.type === 'action.refused');
    expect(refused.map((event) => [event.actor, event.payload.action])).toEqual([
      [TPM.email, 'execute'],
      [VIEWER.email, 'add-note'],
    ]);
    expect((await getRun(harness.deps, run.id)).state).toBe('ready');
  });

  it('derives ticks from the log and refuses unknown items', async () => {
    const run = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: TPM });
    await expect(tickPrerequisite(harness.deps, { runId: run.id, itemId: 'nope', ticked: true, actor: TPM })).rejects.toMatchObject({ kind: 'invalid_input' });
    const note = await addNote(harness.deps, { runId: run.id, actor: TPM, text: '  backup in s3://backups/2025-11-25  ' });
    expect(note.payload).toEqual({ text: 'backup in s3://backups/2025-11-25' });
    expect(ticksFromEvents([]).size).toBe(0);
  });
});

describe('execute, rollback', () => {
  it('applies, writes the ledger in the step transaction, verifies, and refuses the same checksum again', async () => {
    const run = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    const done = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(done.state).toBe('applied');
    expect(done.outcome).toMatchObject({ verified: true, ledger: { written: 'applied' }, result: 'applied' });
    expect(done.outcome!.phases!.map((phase) => phase.phase)).toEqual(['snapshot', 'apply', 'verification', 'post_execution']);
    const target = harness.targets.get('sandbox')!.pool;
    expect(await ledgerRows(target)).toEqual([expect.objectContaining({ run_id: run.id, action: 'apply', outcome: 'applied', checksum: run.planChecksum })]);

    const types = (await readRunEvents(harness.store.pool, run.id)).map((event) => event.type);
    expect(types).toEqual(expect.arrayContaining(['execute.started', 'phase.started', 'statement.completed', 'step.completed', 'phase.completed', 'execute.finished']));
    const verified = await verifyStoredRunLog(harness.store.pool, run.id, [publicKey()]);
    expect(verified).toMatchObject({ ok: true });
    expect(verified.ok && verified.signedSeq).toBe(types.length);

    const again = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    const refusal = await executeRun(harness.deps, { runId: again.id, actor: ENGINEER }).catch((error) => error);
    expect(refusal).toMatchObject({ kind: 'gate' });
    expect((refusal as RunsheetError).gates!.map((gate) => gate.id)).toContain('ledger');

    const rolledBack = await rollbackRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
    expect(rolledBack.outcome!.rollback).toMatchObject({ verified: true, ledger: { written: 'rolled_back' } });
    const { rows } = await target.query(`select to_regclass('public.engine_t') as t`);
    expect(rows[0].t).toBeNull();
    expect((await ledgerRows(target)).map((row) => [row.action, row.outcome])).toEqual([
      ['apply', 'applied'],
      ['rollback', 'rolled_back'],
    ]);
    // Rolled back: the same checksum may be applied again, under a new run.
    expect((await executeRun(harness.deps, { runId: again.id, actor: ENGINEER })).state).toBe('applied');
    await rollbackRun(harness.deps, { runId: again.id, actor: ENGINEER });
  });

  it('writes a partial ledger row when a later step fails after an earlier one committed, and can roll it back', async () => {
    const run = await openRun(harness.deps, { planId: 'partial-apply', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    const failed = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(failed.state).toBe('failed');
    expect(failed.outcome).toMatchObject({ ledger: { written: 'partial' }, failure: { stepId: 'insert-then-fail', sqlstate: '22012', line: 2 } });
    const target = harness.targets.get('sandbox')!.pool;
    const partial = (await ledgerRows(target)).find((row) => row.run_id === run.id)!;
    expect(partial).toMatchObject({ outcome: 'partial' });
    expect(partial.steps_completed).toEqual([
      { stepId: 'create-table', statementsCompleted: 1, statementCount: 1, complete: true },
      { stepId: 'insert-then-fail', statementsCompleted: 1, statementCount: 2, complete: false },
    ]);
    expect((await rollbackRun(harness.deps, { runId: run.id, actor: ENGINEER })).state).toBe('rolled_back');
  });

  it('refuses to rehearse a plan with a non-transactional step, naming it, before any run is opened', async () => {
    const refusal = await openRun(harness.deps, { planId: 'partial-apply', target: 'sandbox', kind: 'rehearsal', actor: ENGINEER }).catch((error) => error);
    expect(refusal).toMatchObject({ kind: 'gate' });
    expect(refusal.message).toMatch(/insert-then-fail are not transactional/);
    expect(await findRuns(harness.store.pool, { planId: 'partial-apply', target: 'sandbox', kind: 'rehearsal' })).toEqual([]);
  });

  it('rehearses in one transaction and leaves nothing behind', async () => {
    const run = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'rehearsal', actor: ENGINEER });
    const done = await rehearseRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(done.state).toBe('rehearsed');
    expect(done.outcome!.rehearsal).toMatchObject({ apply: { ok: true }, rollback: { ok: true }, rolledBack: true });
    const detail = await readRunDetail(harness.deps, run.id);
    expect(detail.events.map((event) => event.type)).toContain('rehearsal.transaction.rolled_back');
    const { rows } = await harness.targets.get('sandbox')!.pool.query(`select to_regclass('public.engine_t') as t`);
    expect(rows[0].t).toBeNull();
  });
});

describe('locks', () => {
  it('refuses with LockHeldError when another session holds the target\'s advisory lock, and puts the run back to ready', async () => {
    const run = await openRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    const holder = await harness.connect('sandbox');
    try {
      await holder.query('select pg_advisory_lock($1::bigint)', [ADVISORY_LOCKS.targetRun]);
      const started = Date.now();
      const refusal = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER }).catch((error) => error);
      expect(refusal).toMatchObject({ kind: 'busy' });
      expect(refusal.message).toMatch(/locked by another migration session \(pid \d+/);
      // Polled for about two seconds, never waited on.
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await holder.end();
    }
    const after = await getRun(harness.deps, run.id);
    expect(after).toMatchObject({ state: 'ready', targetBackendPid: null, executedBy: null });
    const types = (await readRunEvents(harness.store.pool, run.id)).map((event) => event.type);
    expect(types.slice(-2)).toEqual(['lock.held', 'state.changed']);
    expect((await ledgerRows(harness.targets.get('sandbox')!.pool)).filter((row) => row.run_id === run.id)).toEqual([]);
    // The lock released, the same run executes.
    expect((await executeRun(harness.deps, { runId: run.id, actor: ENGINEER })).state).toBe('applied');
    await rollbackRun(harness.deps, { runId: run.id, actor: ENGINEER });
  });

  it('a lock timeout (55P03) fails the run, names the blocking session and says a new run may retry', async () => {
    const target = harness.targets.get('sandbox')!.pool;
    await target.query('create table if not exists public.locked_t (id int)');
    const run = await openRun(harness.deps, { planId: 'alter-locked', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    const blocker = await harness.connect('sandbox');
    try {
      await blocker.query(`set application_name = 'long-report'`);
      await blocker.query('begin');
      await blocker.query('lock table public.locked_t in access share mode');
      const done = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
      expect(done.state).toBe('failed');
      expect(done.outcome).toMatchObject({ retryable: true, failure: { sqlstate: '55P03', line: 1, stepId: 'add-column' } });
      expect(done.outcome!.failure!.blockers).toEqual([expect.objectContaining({ application: 'long-report' })]);
      const failed = (await readRunEvents(harness.store.pool, run.id)).find((event) => event.type === 'step.failed')!;
      expect(failed.payload).toMatchObject({ retryable: true, failure: { blockers: [expect.objectContaining({ application: 'long-report' })] } });
    } finally {
      await blocker.end();
    }
  });
});
