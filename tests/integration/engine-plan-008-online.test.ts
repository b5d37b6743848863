/**
 * Issue "Safe at production scale", done-when (plan 008 online): applied on a sandbox it gives
 * every user the same active_org_id as plan 008 on an identical sandbox (and the same schema),
 * and passes plan 008's own checks, which it includes rather than copies; a row of either plan
 * in the target's ledger counts for both; it passes a strict lint-clean gate with no waiver; and
 * the rollback of a partly applied run (stopped in the middle of its backfill) leaves the schema
 * exactly as it was before.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseBackfill, resumeBackfill } from '../../app/engine/backfill-control.server';
import { cancelRun, executeRun, rollbackRun } from '../../app/engine/engine.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { gateFindings } from '../../app/engine/lint-waivers.server';
import { openWorkingRun, readRunDetail, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { loadPlan, type ValidPlan } from '../../app/plans/load-plans.server';
import { sha256Hex } from '../../app/plans/plan-checksum.server';
import { eventsOf as eventsOfType } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { findRuns } from '../../app/runs/run-store.server';
import { readBackfillProgress, readPlanLedgerState } from '../../app/targets/ledger.server';
import { ENGINEER, ledgerRows, REAL_PLANS, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';
import { RunsheetError } from '../../app/runtime/errors';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

const CLASSIC = '008-add-active-org-tracking';
const ONLINE = '008-add-active-org-tracking-online';
let harness: EngineHarness;
const pool = (target: string): pg.Pool => harness.targets.get(target)!.pool;

beforeAll(async () => {
  harness = await startEngineHarness({
    plansDir: REAL_PLANS,
    targets: [
      { name: 'classic', sandboxUsers: 2_000 },
      { name: 'online', sandboxUsers: 2_000, rules: { require_lint_clean: true } },
      { name: 'partial', sandboxUsers: 10_000 },
    ],
  });
});

afterAll(async () => {
  await harness?.close();
});

/** Columns, indexes, constraints, functions (full definitions) and every users row, of the sandbox's schemas. */
async function schemaFingerprint(target: string): Promise<Record<string, unknown>> {
  const { rows } = await pool(target).query(`
    select
      (select jsonb_agg(jsonb_build_array(table_schema, table_name, column_name, data_type, is_nullable, column_default) order by table_schema, table_name, ordinal_position)
         from information_schema.columns where table_schema in ('platform', 'other')) as columns,
      (select jsonb_agg(jsonb_build_array(schemaname, indexname, indexdef) order by schemaname, indexname)
         from pg_indexes where schemaname in ('platform', 'other')) as indexes,
      (select jsonb_agg(jsonb_build_array(n.nspname, c.conname, pg_get_constraintdef(c.oid), c.convalidated) order by n.nspname, c.conname)
         from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname in ('platform', 'other')) as constraints,
      (select coalesce(jsonb_agg(pg_get_functiondef(p.oid) order by p.oid::regprocedure::text), '[]')
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('platform', 'other') and p.prokind in ('f', 'p')) as functions,
      (select jsonb_agg(jsonb_build_array(c.relname, i.indisvalid) order by c.relname)
         from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'platform') as index_validity,
      (select md5(string_agg(u::text, ',' order by u.id)) from platform.users u) as users`);
  return rows[0];
}

/** md5 over every user's (id, active_org_id), in id order. */
async function activeOrgDigest(target: string): Promise<{ digest: string; withOrg: number }> {
  const { rows } = await pool(target).query(
    `select md5(string_agg(id::text || ':' || coalesce(active_org_id::text, '-'), ',' order by id)) as digest, count(active_org_id)::int as "withOrg" from platform.users`,
  );
  return rows[0];
}

async function readyExecuteRun(planId: string, target: string): Promise<string> {
  const run = await openRun(harness.deps, { planId, target, kind: 'execute', actor: TPM });
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  const prechecks = await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  expect(prechecks.filter((result) => !result.passed && !result.skipped)).toEqual([]);
  return run.id;
}

const valid = async (id: string): Promise<ValidPlan> => {
  const loaded = await loadPlan(REAL_PLANS, id);
  if (!loaded?.ok) throw new Error(`plan ${id} does not load: ${JSON.stringify(loaded)}`);
  return loaded;
};

describe('plan 008 online, as a plan', () => {
  it("runs plan 008's own checks (included, not copied), and lists plan 008's plan.yaml in its manifest", async () => {
    const [classic, online] = await Promise.all([valid(CLASSIC), valid(ONLINE)]);
    expect(online.plan.equivalent_to).toEqual([CLASSIC]);
    expect(online.plan.verification).toEqual(classic.plan.verification);
    expect(online.plan.post_execution).toEqual(classic.plan.post_execution);
    expect(online.plan.snapshot).toEqual(classic.plan.snapshot);
    expect(online.plan.rollback.verification).toEqual(classic.plan.rollback.verification);
    // Every pre-check of plan 008 but column-absent (a new run after a partial one finds the column), then its own.
    expect(online.plan.prechecks.map((check) => check.id)).toEqual([
      ...classic.plan.prechecks.filter((check) => check.id !== 'column-absent').map((check) => check.id),
      'active-org-column-absent-or-ours',
    ]);
    const classicYaml = classic.files.find((file) => file.path === 'plan.yaml')!;
    expect(online.manifest).toContain(`${classicYaml.sha256}  ../${CLASSIC}/plan.yaml\n`);
    expect(sha256Hex(classicYaml.content)).toBe(classicYaml.sha256);
    // The frozen copy resolves the include the same way.
    expect(thawPlan({ manifest: online.manifest, files: online.files }).plan.verification).toEqual(classic.plan.verification);
  });

  it('is squawk-clean: nothing in its apply files, and the strict lint gate counts nothing (the rollback may drop its column)', async () => {
    const online = await valid(ONLINE);
    expect(online.plan.lint_gate).toBe('strict');
    expect(online.lint.map((finding) => `${finding.file.split('/').pop()}:${finding.line} ${finding.rule}`)).toEqual(['rollback_3_drop_column.sql:10 ban-drop-column']);
    expect(gateFindings(online.plan, online.lint, [])).toEqual([]);
  });
});

describe('plan 008 online on a sandbox', () => {
  let onlineRunId: string;

  it("gives every user the same active_org_id as plan 008, leaves the same schema, and passes plan 008's checks", async () => {
    const classicRun = await readyExecuteRun(CLASSIC, 'classic');
    expect((await executeRun(harness.deps, { runId: classicRun, actor: ENGINEER })).state).toBe('applied');

    onlineRunId = await readyExecuteRun(ONLINE, 'online');
    const detail = await readRunDetail(harness.deps, onlineRunId, { gates: true });
    expect(detail.gates!.filter((gate) => !gate.passed)).toEqual([]);
    expect(detail.gates!.find((gate) => gate.id === 'lint-clean')).toMatchObject({ passed: true, detail: 'no finding the gate counts (lint_gate: strict)' });

    const done = await executeRun(harness.deps, { runId: onlineRunId, actor: ENGINEER });
    expect(done.outcome?.failure).toBeUndefined();
    expect(done).toMatchObject({
      state: 'applied',
      outcome: { verified: true, ledger: { written: 'applied' }, postExecution: { passed: true, skipped: ['api-validate', 'api-set-active-org'] } },
    });

    const [classic, online] = [await activeOrgDigest('classic'), await activeOrgDigest('online')];
    expect(online).toEqual(classic);
    expect(online.withOrg).toBeGreaterThan(1_000);
    expect(await schemaFingerprint('online')).toEqual(await schemaFingerprint('classic'));

    const events = await readRunEvents(harness.store.pool, onlineRunId);
    const verify = eventsOfType(events, 'checks.ran').find((event) => event.payload.phase === 'verify')!;
    const classicPlan = (await valid(CLASSIC)).plan;
    expect((verify.payload.results as { checkId: string; passed: boolean }[]).map((result) => [result.checkId, result.passed])).toEqual(
      classicPlan.verification.map((check) => [check.id, true]),
    );
    const post = eventsOfType(events, 'checks.ran').find((event) => event.payload.phase === 'post')!;
    expect(post.payload).toMatchObject({ passed: true, failed: [] });
    expect(events.filter((event) => event.type === 'progress').at(-1)!.payload).toMatchObject({ stepId: 'backfill-active-org', done: 2_002, total: 2_002, etaMs: 0 });
    expect(events.find((event) => event.type === 'index.valid')!.payload).toMatchObject({ index: 'platform.idx_users_active_org' });
    expect(done.outcome!.steps!.map((step) => [step.stepId, step.kind ?? 'sql', step.ok])).toEqual([
      ['add-column', 'sql', true],
      ['add-foreign-key-not-valid', 'sql', true],
      ['validate-foreign-key', 'sql', true],
      ['backfill-active-org', 'batched_backfill', true],
      ['backfill-stragglers', 'sql', true],
      ['create-index-concurrently', 'create_index_concurrently', true],
      ['helper-functions', 'sql', true],
    ]);
  });

  it('records the equivalence in the ledger, and either plan\'s row counts for both', async () => {
    // Checkpoints before the backfill and the concurrent build (partial), then the applied row; each names plan 008 as equivalent.
    const { rows } = await pool('online').query(`select plan_id, outcome, equivalent_plan_ids, steps_completed from runsheet.ledger order by id`);
    expect(rows.map((row) => [row.plan_id, row.outcome, row.equivalent_plan_ids])).toEqual([
      [ONLINE, 'partial', [CLASSIC]],
      [ONLINE, 'partial', [CLASSIC]],
      [ONLINE, 'applied', [CLASSIC]],
    ]);
    expect(rows[2].steps_completed.map((step: { stepId: string; complete: boolean }) => step.complete)).toEqual([true, true, true, true, true, true, true]);
    expect(await readPlanLedgerState(pool('online'), CLASSIC)).toMatchObject({ state: 'applied', runId: onlineRunId });
    expect(await readPlanLedgerState(pool('classic'), ONLINE, { equivalentTo: [CLASSIC] })).toMatchObject({ state: 'applied' });

    const classicThere = await openRun(harness.deps, { planId: CLASSIC, target: 'online', kind: 'execute', actor: TPM });
    const ledgerGate = (await readRunDetail(harness.deps, classicThere.id, { gates: true })).gates!.find((gate) => gate.id === 'ledger');
    expect(ledgerGate).toMatchObject({ passed: false, detail: expect.stringMatching(new RegExp(`by the equivalent plan ${ONLINE} \\(run ${onlineRunId}`)) });

    // Its pre-checks pass there (the column is exactly the one it adds); the ledger gate is what refuses.
    const onlineThere = await readyExecuteRun(ONLINE, 'classic');
    const refusal = await executeRun(harness.deps, { runId: onlineThere, actor: ENGINEER }).catch((error) => error);
    expect(refusal).toMatchObject({ kind: 'gate' });
    expect((refusal as RunsheetError).gates!.find((gate) => gate.id === 'ledger')?.detail).toMatch(new RegExp(`by the equivalent plan ${CLASSIC}`));
  });

  it('cannot be rehearsed (its concurrent index and batches commit on their own), and says so without opening a run', async () => {
    const refusal = (await openRun(harness.deps, { planId: ONLINE, target: 'online', kind: 'rehearsal', actor: ENGINEER }).catch((error) => error)) as RunsheetError;
    const gate = refusal.gates?.find((candidate) => candidate.id === 'transactional-steps');
    expect(gate).toMatchObject({ passed: false, detail: expect.stringContaining('backfill-active-org, create-index-concurrently') });
    expect(await findRuns(harness.store.pool, { planId: ONLINE, target: 'online', kind: 'rehearsal' })).toEqual([]);
  });
});

describe('rollback of a partly applied plan 008 online', () => {
  it('stopped in the middle of its backfill, the rollback leaves the schema as it was before', async () => {
    const before = await schemaFingerprint('partial');
    const runId = await readyExecuteRun(ONLINE, 'partial');
    // The backfill starts paused; then a row of its second batch is held by "the application":
    // resumed, the first batch commits, the second waits for that row and retries; then a cancel.
    await pauseBackfill(harness.deps, { runId, actor: ENGINEER, reason: 'start the backfill by hand' });
    const holder = await harness.connect('partial');
    let failed;
    try {
      const driving = executeRun(harness.deps, { runId, actor: ENGINEER });
      await waitFor('the backfill paused before its first batch', async () => (await readRunEvents(harness.store.pool, runId)).find((event) => event.type === 'backfill.paused'));
      const { rows } = await holder.query(`select id from platform.users order by id offset 3000 limit 1`);
      await holder.query('begin');
      await holder.query('select 1 from platform.users where id = $1 for update', [rows[0].id]);
      await resumeBackfill(harness.deps, { runId, actor: ENGINEER });
      await waitFor('the backfill retrying its second batch', async () =>
        (await readRunEvents(harness.store.pool, runId)).find((event) => event.type === 'step.retry' && event.payload.stepId === 'backfill-active-org'),
      );
      await cancelRun(harness.deps, { runId, actor: ENGINEER });
      failed = await driving;
    } finally {
      await holder.query('rollback').catch(() => {});
      await holder.end();
    }
    expect(failed).toMatchObject({ state: 'cancelled', outcome: { cancelledBy: ENGINEER.email, ledger: { written: 'partial' } } });
    const partial = (await ledgerRows(pool('partial'))).at(-1);
    expect(partial).toMatchObject({ run_id: runId, action: 'apply', outcome: 'partial' });
    expect((partial!.steps_completed as { stepId: string; complete: boolean }[]).map((step) => [step.stepId, step.complete])).toEqual([
      ['add-column', true],
      ['add-foreign-key-not-valid', true],
      ['validate-foreign-key', true],
      ['backfill-active-org', false],
    ]);
    expect((partial!.steps_completed as { detail?: { backfill?: { rowsDone: number } } }[])[3]!.detail!.backfill!.rowsDone).toBe(2_000);
    const { rows: filled } = await pool('partial').query(`select count(active_org_id)::int as n from platform.users`);
    expect(filled[0].n).toBeGreaterThan(0);
    expect(await schemaFingerprint('partial')).not.toEqual(before);

    const rolledBack = await rollbackRun(harness.deps, { runId, actor: ENGINEER });
    expect(rolledBack).toMatchObject({ state: 'rolled_back', outcome: { rollback: { verified: true, ledger: { written: 'rolled_back' } } } });
    expect(await schemaFingerprint('partial')).toEqual(before);
    expect(await readBackfillProgress(pool('partial'), ONLINE)).toEqual([]);
    expect((await ledgerRows(pool('partial'))).map((row) => `${row.action}:${row.outcome}`)).toEqual(['apply:partial', 'apply:partial', 'rollback:rolled_back']);
  });
});
