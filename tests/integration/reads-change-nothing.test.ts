/**
 * A viewer loading pages never changes a run's state or writes an event. Every page model a
 * loader calls (plans list, plan page, live view and its event stream, report, history, event
 * pages) is read as a viewer, including a run whose driver died (applying, heartbeat stale, no
 * session on the target): marking it interrupted is the recovery pass's job, never a page's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { markInterruptedRuns } from '../../app/engine/crash-recovery.server';
import { openWorkingRun, runRunChecks } from '../../app/engine/runs.server';
import type { SignedInUser } from '../../app/auth/require.server';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { listPlanOverviews } from '../../app/plans/plan-overview.server';
import { transitionRun } from '../../app/runs/run-store.server';
import { loadRunEventsPage, loadRunHistory } from '../../app/web/history-page.server';
import { loadChecklist } from '../../app/web/plan-page.server';
import { readRunReport } from '../../app/web/report-page.server';
import { loadRunView, streamRunEvents } from '../../app/web/run-page.server';
import { ENGINE_PLANS, ENGINEER, startEngineHarness, TPM, type EngineHarness } from './engine-harness';

const VIEWER: SignedInUser = { accountId: '00000000-0000-4000-8000-00000000000a', email: 'viewer@example.com', name: 'Viewer', role: 'viewer', via: 'session' };

let harness: EngineHarness;
const runIds: string[] = [];

/** Every run's state and every event: what a read must leave as it was. */
async function storeSnapshot() {
  const { rows } = await harness.store.pool.query<{ id: string; state: string; events: number; heartbeat: string | null }>(
    `select r.id::text, r.state, (select count(*)::int from run_events e where e.run_id = r.id) as events, r.heartbeat_at::text as heartbeat from runs r order by r.id`,
  );
  return rows;
}

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: ENGINE_PLANS, targets: [{ name: 'sandbox' }] });
  const open = async (planId: string) => (await openWorkingRun(harness.deps, { planId, target: 'sandbox', kind: 'execute', actor: TPM, newAttempt: true })).run;
  // An applied and rolled-back run, a draft with checks, and a run whose driver died mid-apply.
  const applied = await open('create-table');
  await executeRun(harness.deps, { runId: applied.id, actor: ENGINEER });
  await rollbackRun(harness.deps, { runId: applied.id, actor: ENGINEER });
  const draft = await open('create-table');
  await runRunChecks(harness.deps, { runId: draft.id, phase: 'verify', actor: TPM });
  const orphan = await open('slow-apply');
  await transitionRun(harness.store, { runId: orphan.id, from: ['ready'], to: 'applying', reason: 'claimed by a process that then died', actor: ENGINEER.email, role: 'engineer', set: { heartbeatAt: 'now', startedAt: 'now' } });
  await harness.store.pool.query(`update runs set heartbeat_at = now() - interval '10 minutes' where id = $1`, [orphan.id]);
  runIds.push(applied.id, draft.id, orphan.id);
});

afterAll(async () => {
  await harness?.close();
});

describe('reading pages as a viewer', () => {
  it('changes no run and writes no event, even for a run whose driver died', async () => {
    const before = await storeSnapshot();
    const deps = harness.deps;

    await listPlanOverviews(deps);
    for (const planId of ['create-table', 'slow-apply']) {
      const plan = (await loadPlan(deps.plansDir, planId)) as ValidPlan;
      const target = deps.targets.get('sandbox');
      await loadChecklist(deps, { plan, target, targets: deps.targets.list(), user: VIEWER });
    }
    for (const runId of runIds) {
      await loadRunView(deps, { runId, user: VIEWER });
      await readRunReport(deps, { runId });
      await loadRunEventsPage(deps, { runId, afterSeq: 0, limit: 100 });
      const abort = new AbortController();
      const stream = await streamRunEvents(deps, { runId, afterSeq: 0, user: VIEWER, signal: abort.signal });
      const reader = stream.body!.getReader();
      await reader.read();
      await reader.read();
      abort.abort();
      await reader.cancel();
    }
    await loadRunHistory(deps, { filters: {}, sort: { key: 'created', direction: 'desc' }, limit: 25, offset: 0 });

    expect(await storeSnapshot()).toEqual(before);
    // The dead driver's run is still 'applying' for the pages; the recovery pass is what settles it.
    expect(before.find((row) => row.id === runIds[2])?.state).toBe('applying');
    const [report] = await markInterruptedRuns(deps, { runId: runIds[2] });
    expect(report).toMatchObject({ verdict: 'interrupted' });
  });
});
