/**
 * Issue "When a migration goes wrong at 2 am", reproductions 4, 5, 6, 9 and 10, through the page
 * models the dashboard's loaders and actions call (and the engine): the report of a failed apply
 * says so and opens with the failure; right after an apply the plans list judges fresh facts only;
 * Runsheet's own partial apply is not drift; a rollback never stretches the apply's times; a
 * rollback needs the typed target name where execute does; after an interruption or a refusal the
 * way on is on the page.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SignedInUser } from '../../app/auth/require.server';
import { markInterruptedRuns } from '../../app/engine/crash-recovery.server';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { previewRollback } from '../../app/engine/rollback-preview.server';
import { getRun, openWorkingRun, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { listPlanOverviews } from '../../app/plans/plan-overview.server';
import { eventsOf } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { runReportMarkdown } from '../../app/runs/run-report';
import { transitionRun } from '../../app/runs/run-store.server';
import { loadRunHistory } from '../../app/web/history-page.server';
import { loadChecklist, performChecklistIntent } from '../../app/web/plan-page.server';
import { readRunReport } from '../../app/web/report-page.server';
import { ENGINE_PLANS, ENGINEER, REAL_PLANS, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';

const PLAN = '008-add-active-org-tracking';
const ONLINE = '008-add-active-org-tracking-online';
const ENGINEER_USER: SignedInUser = { accountId: '00000000-0000-4000-8000-0000000000e1', email: ENGINEER.email, name: 'Engineer', role: 'engineer', via: 'session' };
const SECOND_USER: SignedInUser = { ...ENGINEER_USER, accountId: '00000000-0000-4000-8000-0000000000e2', email: 'engineer2@example.com' };

let harness: EngineHarness;
let plansDir: string;

beforeAll(async () => {
  plansDir = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-pages-'));
  for (const id of [PLAN, ONLINE]) fs.cpSync(path.join(REAL_PLANS, id), path.join(plansDir, id), { recursive: true });
  for (const id of ['partial-failure', 'create-table', 'slow-apply']) fs.cpSync(path.join(ENGINE_PLANS, id), path.join(plansDir, id), { recursive: true });
  harness = await startEngineHarness({
    plansDir,
    targets: [
      { name: 'sandbox', sandboxUsers: 300 },
      { name: 'failing', sandboxUsers: 300 },
      { name: 'partial' },
      { name: 'guarded', rules: { confirm_target_name: true } },
      { name: 'stuck' },
      { name: 'race' },
    ],
  });
});

afterAll(async () => {
  await harness?.close();
  fs.rmSync(plansDir, { recursive: true, force: true });
});

const planOf = async (id: string) => (await loadPlan(plansDir, id)) as ValidPlan;
const targetOf = (name: string) => harness.deps.targets.get(name);
const checklist = async (planId: string, target: string, user: SignedInUser = ENGINEER_USER) =>
  loadChecklist(harness.deps, { plan: await planOf(planId), target: targetOf(target), targets: harness.deps.targets.list(), user });

async function readyRun(planId: string, target: string): Promise<string> {
  const run = (await openWorkingRun(harness.deps, { planId, target, kind: 'execute', actor: TPM, newAttempt: true })).run;
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  if (plan.prechecks.length > 0) await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  return run.id;
}

describe('the report of a failed apply (reproduction 4)', () => {
  it('shows the apply failed, never Done, and opens with the failure and its blocker, in the page and the Markdown', async () => {
    const runId = await readyRun(PLAN, 'failing');
    // SHARE lets the snapshot read and blocks the apply's ALTER TABLE until its lock_timeout (5 s) fires.
    const holder: pg.Client = await harness.connect('failing');
    await holder.query(`set application_name = 'psql'`);
    const holderPid = Number((await holder.query('select pg_backend_pid() as pid')).rows[0].pid);
    await holder.query('begin');
    await holder.query('lock table platform.users in share mode');
    let run;
    try {
      run = await executeRun(harness.deps, { runId, actor: ENGINEER });
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    expect(run.state).toBe('failed');

    const data = (await readRunReport(harness.deps, { runId }))!;
    const apply = data.report.phases.find((phase) => phase.phase === 'apply')!;
    expect(apply.status).toBe('failed');
    expect(data.report.phases.filter((phase) => phase.status === 'done').map((phase) => phase.phase)).toEqual(['snapshot']);
    expect(data.report.failureSummary).toMatchObject({ phase: 'apply', what: 'step apply-008', sqlstate: '55P03', blockers: [expect.objectContaining({ pid: holderPid, application: 'psql' })] });

    const markdown = runReportMarkdown(data.header, data.report, data.signature);
    const beforeFacts = markdown.slice(0, markdown.indexOf('**Plan**'));
    expect(beforeFacts).toMatch(/Failed\*\* in apply: step apply-008.*SQLSTATE 55P03/);
    expect(beforeFacts).toContain(`pid ${holderPid} (application psql`);
    expect(markdown).toMatch(/\[phase\] apply: .* — FAILED/);
    expect(markdown).not.toMatch(/\[phase\] apply: .* — done/);

    // History says why, in its reason column.
    const history = await loadRunHistory(harness.deps, { filters: { target: 'failing' }, sort: { key: 'created', direction: 'desc' }, limit: 10, offset: 0 });
    expect(history.runs.find((row) => row.id === runId)?.reason).toMatch(/step apply-008 failed .*SQLSTATE 55P03.*blocked by pid/);
  });
});

describe('after a successful apply, then a rollback (reproductions 5 and 6)', () => {
  it('judges the plan applied from facts read after the run ended; the online twin says which plan applied it', async () => {
    const runId = await readyRun(PLAN, 'sandbox');
    const applied = await executeRun(harness.deps, { runId, actor: ENGINEER });
    expect(applied.state).toBe('applied');

    const cellOf = async (planId: string) => {
      const overview = (await listPlanOverviews(harness.deps)).find((plan) => plan.id === planId);
      return overview?.ok ? overview.targets.find((cell) => cell.target === 'sandbox') : undefined;
    };
    // Never drift: until fresh facts are read the state is the ledger's, marked as being read again.
    const first = (await cellOf(PLAN))!;
    expect(first.state).toBe('applied');
    const judged = await waitFor('facts read after the apply', async () => {
      const cell = await cellOf(PLAN);
      return cell && !cell.rereading ? cell : undefined;
    });
    expect(judged.state).toBe('applied');
    expect(Date.parse(judged.factsReadAt!)).toBeGreaterThan(applied.finishedAt!.getTime());

    const online = await waitFor('the online plan judged', async () => {
      const cell = await cellOf(ONLINE);
      return cell && !cell.rereading ? cell : undefined;
    });
    expect(online.state).toBe('applied');
    expect(online.reason).toContain(`recorded by plan ${PLAN}`);
  });

  it('keeps the apply its own times: a rollback changes neither its duration nor its team message', async () => {
    const run = (await checklist(PLAN, 'sandbox')).run!;
    expect(run.state).toBe('applied');
    const before = (await readRunReport(harness.deps, { runId: run.id }))!;
    const afterApply = await checklist(PLAN, 'sandbox');
    expect(afterApply.teamMessages.post?.text).toContain(`at ${before.header.finishedAt!.slice(0, 10)}`);
    expect(afterApply.teamMessages.rollback).toBeUndefined();
    const finishedBefore = (await getRun(harness.deps, run.id)).finishedAt!.getTime();
    const historyOf = async () => (await loadRunHistory(harness.deps, { filters: { target: 'sandbox' }, sort: { key: 'created', direction: 'desc' }, limit: 10, offset: 0 })).runs.find((row) => row.id === run.id);
    const durationBefore = (await historyOf())?.durationMs;
    expect(durationBefore).toBeGreaterThan(0);

    const rolledBack = await rollbackRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
    expect(rolledBack.finishedAt!.getTime()).toBe(finishedBefore);

    const after = (await readRunReport(harness.deps, { runId: run.id }))!;
    expect(after.header.durationMs).toBe(before.header.durationMs);
    expect(after.header.finishedAt).toBe(before.header.finishedAt);
    expect(after.report.actions.map((action) => [action.action, action.state])).toEqual([
      ['execute', 'applied'],
      ['rollback', 'rolled_back'],
    ]);
    const rollbackAction = after.report.actions[1]!;
    expect(Date.parse(rollbackAction.startedAt)).toBeGreaterThan(Date.parse(before.header.finishedAt!));

    expect((await historyOf())?.durationMs).toBe(durationBefore);

    // The rolled-back plan offers the rollback message, not "deployed successfully".
    const page = await checklist(PLAN, 'sandbox');
    expect(page.teamMessages.post).toBeUndefined();
    expect(page.teamMessages.rollback?.text).toMatch(new RegExp(`rolled back on .* by ${ENGINEER.email} at ${rollbackAction.finishedAt!.slice(0, 10)}`));
  });
});

describe("Runsheet's own partial apply (reproduction 5)", () => {
  it('is shown as a partial apply with what completed and what to do, never as drift made outside Runsheet', async () => {
    const runId = (await openWorkingRun(harness.deps, { planId: 'partial-failure', target: 'partial', kind: 'execute', actor: ENGINEER })).run.id;
    const failed = await executeRun(harness.deps, { runId, actor: ENGINEER });
    expect(failed).toMatchObject({ state: 'failed', outcome: { ledger: { written: 'partial' } } });
    const cell = await waitFor('the partial apply judged', async () => {
      const overview = (await listPlanOverviews(harness.deps)).find((plan) => plan.id === 'partial-failure');
      const found = overview?.ok ? overview.targets.find((candidate) => candidate.target === 'partial') : undefined;
      return found && !found.rereading ? found : undefined;
    });
    expect(cell.state).toBe('partial');
    expect(cell.reason).toMatch(/partial apply by Runsheet: run .* completed create-table, stopped in add-column-then-fail.*roll it back, or start a new attempt/);
    expect(cell.reason).not.toMatch(/outside Runsheet|drift/);

    const page = await checklist('partial-failure', 'partial');
    expect(page.planState.state).toBe('partial');
    expect(page.rollback?.gate).toMatchObject({ passed: true, detail: expect.stringContaining('part of the apply committed') });
    expect(page.newAttempt?.why).toMatch(/roll it back, or start a new attempt/);
  });
});

describe('rollback confirmation (reproduction 9)', () => {
  it('lists the statements and the objects it removes, and needs the typed target name where execute does', async () => {
    const runId = (await openWorkingRun(harness.deps, { planId: 'create-table', target: 'guarded', kind: 'execute', actor: ENGINEER })).run.id;
    expect((await executeRun(harness.deps, { runId, actor: ENGINEER, typedTargetName: 'guarded' })).state).toBe('applied');

    const preview = await previewRollback(harness.deps, await getRun(harness.deps, runId));
    expect(preview).toMatchObject({ confirmTargetName: true, gate: { passed: true } });
    expect(preview.steps[0]!.statements.map((statement) => statement.sql)).toEqual([expect.stringMatching(/DROP TABLE (IF EXISTS )?public\.engine_t/i)]);

    const refused = await rollbackRun(harness.deps, { runId, actor: ENGINEER }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ kind: 'gate' });
    expect((refused as Error).message).toMatch(/typed the target's name/);
    const wrong = await performChecklistIntent(harness.deps, { plan: await planOf('create-table'), target: targetOf('guarded'), user: ENGINEER_USER, intent: { intent: 'rollback', runId, typedTargetName: 'production' } });
    expect(wrong).toMatchObject({ kind: 'refused', status: 409, openGates: [expect.objectContaining({ id: 'confirm-target-name', detail: 'typed "production", not "guarded"' })] });
    expect((await getRun(harness.deps, runId)).state).toBe('applied');

    const started = await performChecklistIntent(harness.deps, { plan: await planOf('create-table'), target: targetOf('guarded'), user: ENGINEER_USER, intent: { intent: 'rollback', runId, typedTargetName: 'guarded' } });
    expect(started).toEqual({ kind: 'started', runId });
    await waitFor('the rollback to end', async () => (await getRun(harness.deps, runId)).state === 'rolled_back');
  });
});

describe('after an interruption or a refusal, the way on is on the page (reproduction 10)', () => {
  it('offers a new attempt after an interrupted run that did not commit; a tick opens it, linked to the interrupted one', async () => {
    const interrupted = (await openWorkingRun(harness.deps, { planId: 'slow-apply', target: 'stuck', kind: 'execute', actor: ENGINEER })).run;
    // Its driver died (claimed, heartbeat stale, no session on the target): the recovery pass marks it.
    await transitionRun(harness.store, { runId: interrupted.id, from: ['ready'], to: 'applying', reason: 'claimed by a process that then died', actor: ENGINEER.email, role: 'engineer', set: { heartbeatAt: 'now', startedAt: 'now' } });
    const [report] = await markInterruptedRuns(harness.deps, { staleAfterMs: 0, runId: interrupted.id });
    expect(report).toMatchObject({ verdict: 'interrupted' });

    const page = await checklist('slow-apply', 'stuck');
    expect(page.run).toBeNull();
    expect(page.rollback).toBeNull();
    expect(page.previousRun?.id).toBe(interrupted.id);
    expect(page.newAttempt?.after.id).toBe(interrupted.id);

    const tick = await performChecklistIntent(harness.deps, { plan: await planOf('slow-apply'), target: targetOf('stuck'), user: ENGINEER_USER, intent: { intent: 'new-attempt' } });
    expect(tick).toMatchObject({ kind: 'done', message: expect.stringContaining(`after run ${interrupted.id.slice(0, 8)} (interrupted)`) });
    const next = (await checklist('slow-apply', 'stuck')).run!;
    expect(next.id).not.toBe(interrupted.id);
    expect(next.state).toBe('ready');
    const created = eventsOf(await readRunEvents(harness.store.pool, next.id), 'run.created')[0]!;
    expect(created.payload.follows).toEqual({ runId: interrupted.id, state: 'interrupted' });
  });

  it('answers a lost execute with its refusal, not a redirect to the run', async () => {
    const plan = await planOf('create-table');
    await openWorkingRun(harness.deps, { planId: 'create-table', target: 'race', kind: 'execute', actor: ENGINEER });
    const outcomes = await Promise.all(
      [ENGINEER_USER, SECOND_USER, ENGINEER_USER, SECOND_USER].map((user) => performChecklistIntent(harness.deps, { plan, target: targetOf('race'), user, intent: { intent: 'execute' } })),
    );
    expect(outcomes.filter((outcome) => outcome.kind === 'started')).toHaveLength(1);
    const refused = outcomes.filter((outcome) => outcome.kind === 'refused');
    expect(refused).toHaveLength(3);
    for (const outcome of refused) expect(outcome).toMatchObject({ status: 409, error: expect.stringMatching(/Refused|is applying|is applied|another run/) });
    const winner = outcomes.find((outcome) => outcome.kind === 'started') as { runId: string };
    await waitFor('the winning execute to end', async () => (await getRun(harness.deps, winner.runId)).state === 'applied');
  });
});
