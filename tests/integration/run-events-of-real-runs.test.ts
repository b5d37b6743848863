/**
 * Every event the engine writes is an event of the union (app/runs/run-events.ts), with every key
 * declared: read back from the store after real runs of each plan and of each ending: plan 008
 * rehearsed, executed and rolled back; plan 008 online (a batched backfill and a concurrent
 * index) executed and rolled back; an apply cancelled mid-statement; an apply that fails after
 * part of it committed, then its rollback; an interrupted run marked by the recovery pass.
 */
import canonicalize from 'canonicalize';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, cancelRun, rehearseRun, rollbackRun } from '../../app/engine/engine.server';
import { markInterruptedRuns } from '../../app/engine/crash-recovery.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { getRun, openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { RUN_EVENT_TYPES, RunEventBodySchema } from '../../app/runs/run-events';
import { readStoredRunEvents } from '../../app/runs/run-log.server';
import { findRuns, transitionRun } from '../../app/runs/run-store.server';
import { ENGINE_PLANS, ENGINEER, REAL_PLANS, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';

let plans008: EngineHarness;
let fixtures: EngineHarness;

beforeAll(async () => {
  [plans008, fixtures] = await Promise.all([
    startEngineHarness({ plansDir: REAL_PLANS, targets: [{ name: 'sandbox', sandboxUsers: 2_000 }] }),
    startEngineHarness({ plansDir: ENGINE_PLANS, targets: [{ name: 'sandbox' }] }),
  ]);
});

afterAll(async () => {
  await Promise.all([plans008?.close(), fixtures?.close()]);
});

async function readyRun(harness: EngineHarness, planId: string, kind: 'execute' | 'rehearsal' = 'execute'): Promise<string> {
  const { run } = await openWorkingRun(harness.deps, { planId, target: 'sandbox', kind, actor: kind === 'execute' ? TPM : ENGINEER, newAttempt: true });
  if (kind === 'execute') {
    for (const item of thawPlan(run.frozenPlan).plan.prerequisites.filter((candidate) => candidate.required)) {
      await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
    }
    await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  }
  return run.id;
}

/** Every stored event of every run in a store, checked against the union: parsed, and nothing dropped in parsing. */
async function checkEveryEvent(harness: EngineHarness): Promise<Set<string>> {
  const types = new Set<string>();
  for (const run of await findRuns(harness.store.pool, { limit: 1_000 })) {
    for (const event of await readStoredRunEvents(harness.store.pool, run.id)) {
      const parsed = RunEventBodySchema.safeParse({ type: event.type, payload: event.payload });
      expect(parsed.success, `event ${event.seq} (${event.type}) of run ${run.id}: ${parsed.success ? '' : parsed.error.message}`).toBe(true);
      expect(canonicalize(parsed.data!.payload), `event ${event.seq} (${event.type}) of run ${run.id} carries a key the union does not declare`).toBe(canonicalize(event.payload));
      types.add(event.type);
    }
  }
  return types;
}

describe('the events of real runs, read through the run-event union', () => {
  it('plan 008 rehearsed, executed and rolled back; plan 008 online executed and rolled back', async () => {
    const rehearsal = await readyRun(plans008, '008-add-active-org-tracking', 'rehearsal');
    expect((await rehearseRun(plans008.deps, { runId: rehearsal, actor: ENGINEER })).state).toBe('rehearsed');
    const classic = await readyRun(plans008, '008-add-active-org-tracking');
    expect((await executeRun(plans008.deps, { runId: classic, actor: ENGINEER })).state).toBe('applied');
    expect((await rollbackRun(plans008.deps, { runId: classic, actor: ENGINEER })).state).toBe('rolled_back');
    const online = await readyRun(plans008, '008-add-active-org-tracking-online');
    expect((await executeRun(plans008.deps, { runId: online, actor: ENGINEER })).state).toBe('applied');
    expect((await rollbackRun(plans008.deps, { runId: online, actor: ENGINEER })).state).toBe('rolled_back');

    const types = await checkEveryEvent(plans008);
    for (const type of ['run.created', 'checks.ran', 'rehearsal.transaction.opened', 'execute.started', 'statement.completed', 'step.completed', 'backfill.started', 'progress', 'backfill.completed', 'index.valid', 'ledger.checkpoint', 'rollback.finished']) {
      expect(types, `a real run wrote no ${type}`).toContain(type);
    }
  });

  it('an apply cancelled while it runs, a partial apply that fails and is rolled back, and an interrupted run', async () => {
    const slow = await readyRun(fixtures, 'slow-apply');
    const cancelled = executeRun(fixtures.deps, { runId: slow, actor: ENGINEER });
    await waitFor('the slow apply to be applying', async () => (await getRun(fixtures.deps, slow)).state === 'applying');
    await waitFor('a statement to be running', async () => (await readStoredRunEvents(fixtures.store.pool, slow)).some((event) => event.type === 'step.started'));
    await cancelRun(fixtures.deps, { runId: slow, actor: ENGINEER });
    expect((await cancelled).outcome?.cancelledBy).toBe(ENGINEER.email);

    const partial = await readyRun(fixtures, 'partial-apply');
    const failed = await executeRun(fixtures.deps, { runId: partial, actor: ENGINEER });
    expect(failed).toMatchObject({ state: 'failed', outcome: { ledger: { written: 'partial' } } });
    expect((await rollbackRun(fixtures.deps, { runId: partial, actor: ENGINEER })).state).toBe('rolled_back');

    // A drive whose process died: claimed, never heartbeating, no target session; the recovery pass marks it.
    const orphan = await readyRun(fixtures, 'create-table');
    await transitionRun(fixtures.store, { runId: orphan, from: ['ready'], to: 'applying', reason: 'claimed by a process that then died', actor: ENGINEER.email, role: ENGINEER.role });
    const [report] = await markInterruptedRuns(fixtures.deps, { staleAfterMs: 0, runId: orphan });
    expect(report).toMatchObject({ verdict: 'interrupted' });

    const types = await checkEveryEvent(fixtures);
    for (const type of ['cancel.requested', 'cancel.signalled', 'step.failed', 'execute.finished', 'rollback.started', 'run.interrupted']) expect(types, `no ${type}`).toContain(type);
    // Every type a test here wrote is one the union knows (the check above parsed each), and the union knows more.
    expect(RUN_EVENT_TYPES.length).toBeGreaterThan(types.size);
  });
});
