/**
 * Issue 14, done-when (resumable plans), against the real database: a resumable plan whose third
 * step (a unique index built concurrently, not transactional) fails resumes at the third step in a
 * new run of the same checksum once the cause is fixed, the first two steps not run again (the
 * target's ledger and the run log say so), its unless_resuming pre-checks skipped with the reason;
 * a changed checksum does not resume.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markInterruptedRuns } from '../../app/engine/crash-recovery.server';
import { cancelRun, executeRun } from '../../app/engine/engine.server';
import { evaluateGates } from '../../app/engine/gates.server';
import { getRun, openWorkingRun, readRunDetail, runRunChecks } from '../../app/engine/runs.server';
import { eventsOf as eventsOfType, type RunEventOf, type RunEventType } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { runApplicationName } from '../../app/engine/target-session.server';
import { ENGINEER, ledgerRows, ROOT, startEngineHarness, startEngineWorker, TPM, waitFor, type EngineHarness } from './engine-harness';

let harness: EngineHarness;
let plansDir: string;

beforeAll(async () => {
  // A copy of the fixture: the last test changes the plan on disk.
  plansDir = await mkdtemp(path.join(os.tmpdir(), 'runsheet-resume-'));
  for (const plan of ['resume-slug', 'resume-two-steps']) {
    await cp(path.join(ROOT, 'tests/fixtures/plans-format-additions', plan), path.join(plansDir, plan), { recursive: true });
  }
  harness = await startEngineHarness({ plansDir, targets: [{ name: 'resumed' }, { name: 'changed' }, { name: 'cancelled' }, { name: 'killed' }] });
});

afterAll(async () => {
  await harness?.close();
  if (plansDir) await rm(plansDir, { recursive: true, force: true });
});

const pool = (target: string): pg.Pool => harness.targets.get(target)!.pool;

async function eventsOf<T extends RunEventType>(runId: string, type: T): Promise<RunEventOf<T>[]> {
  return eventsOfType(await readRunEvents(harness.store.pool, runId), type);
}

/** 300 organizations, two of them with the same name (so the same slug): the unique index cannot be built. */
async function createOrgsWithDuplicate(target: string): Promise<void> {
  await pool(target).query(`
    create table public.orgs (id bigserial primary key, name text not null);
    insert into public.orgs (name) select 'Org ' || g from generate_series(1, 300) as g;
    insert into public.orgs (name) values ('Org 7');`);
}

/** Opens an execute run and runs its pre-checks: the run and its pre-check results. */
async function openAndPrecheck(target: string, planId = 'resume-slug') {
  const { run } = await openWorkingRun(harness.deps, { planId, target, kind: 'execute', actor: TPM, newAttempt: true });
  const prechecks = await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  return { run: await getRun(harness.deps, run.id), prechecks };
}

/** Runs a first apply that fails at its third step: the run id. */
async function failAtThirdStep(target: string): Promise<string> {
  await createOrgsWithDuplicate(target);
  const { run, prechecks } = await openAndPrecheck(target);
  expect(prechecks.map((result) => [result.checkId, result.passed, result.skipped ?? false])).toEqual([
    ['slug-absent', true, false],
    ['slug-index-absent', true, false],
    ['name-present', true, false],
  ]);
  expect(run.state).toBe('ready');
  const failed = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
  expect(failed).toMatchObject({ state: 'failed', outcome: { ledger: { written: 'partial' }, stoppedAt: { phase: 'apply', stepId: 'slug-index' } } });
  expect(failed.outcome!.failure).toMatchObject({ stepId: 'slug-index', sqlstate: '23505' });
  return run.id;
}

describe('a resumable plan', () => {
  it('resumes at the third step after it failed and its cause was fixed: the first two not run again, the ledger and the log say so', async () => {
    const first = await failAtThirdStep('resumed');
    const partial = (await ledgerRows(pool('resumed'))).at(-1);
    expect(partial).toMatchObject({ run_id: first, outcome: 'partial' });
    expect(partial!.steps_completed).toEqual([
      expect.objectContaining({ stepId: 'add-slug', complete: true }),
      expect.objectContaining({ stepId: 'fill-slug', complete: true }),
      expect.objectContaining({ stepId: 'slug-index', complete: false }),
    ]);
    // The failed build left an INVALID index behind.
    const invalid = await pool('resumed').query(`select i.indisvalid from pg_index i where i.indexrelid = 'public.orgs_slug_key'::regclass`);
    expect(invalid.rows).toEqual([{ indisvalid: false }]);

    // The cause, fixed: the second "Org 7" gets a slug of its own.
    await pool('resumed').query(`update public.orgs set name = 'Org 7 (second)', slug = 'org-7-second' where id = 301`);

    const { run, prechecks } = await openAndPrecheck('resumed');
    // The pre-checks that would now fail (the column and the index exist) are skipped, saying why; the other runs.
    expect(prechecks.map((result) => [result.checkId, result.passed, result.skipped ?? false])).toEqual([
      ['slug-absent', false, true],
      ['slug-index-absent', false, true],
      ['name-present', true, false],
    ]);
    expect(prechecks[0]!.reason).toBe(
      `skipped: this run resumes the apply of run ${first} at step slug-index, and the check says unless_resuming (what it proves absent may be what that run left)`,
    );
    // The store keeps the reason with the result (the pages show it beside "Skipped").
    const stored = (await readRunDetail(harness.deps, run.id)).checkResults.find((row) => row.checkId === 'slug-absent');
    expect(stored).toMatchObject({ skipped: true, reason: prechecks[0]!.reason });
    expect(run.state).toBe('ready');

    // The go/no-go names what is skipped and why.
    const gates = await evaluateGates(harness.deps, run);
    const resumeGate = gates.find((gate) => gate.id === 'resume')!;
    expect(resumeGate).toMatchObject({ passed: true, label: `Resumes the apply of run ${first} (resumable plan)` });
    expect(resumeGate.detail).toContain(`resumes run ${first} (failed, same checksum`);
    expect(resumeGate.detail).toContain(`starts at step 3 slug-index (run ${first} completed 0 of its 1 statement(s); the create_index_concurrently step goes on from what it left)`);
    expect(resumeGate.detail).toContain(`skips step(s) 1 add-slug, 2 fill-slug (completed by run ${first}); skips pre-check(s) slug-absent, slug-index-absent (unless_resuming)`);
    expect(gates.find((gate) => gate.id === 'prechecks')).toMatchObject({
      passed: true,
      detail: '1 passed; skipped because the run resumes (unless_resuming): slug-absent, slug-index-absent',
    });

    const done = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(done.outcome?.failure).toBeUndefined();
    expect(done).toMatchObject({ state: 'applied', outcome: { verified: true, ledger: { written: 'applied' } } });

    // The log: the first two steps skipped (never started, no statement sent), the last two run.
    const skipped = await eventsOf(run.id, 'step.skipped');
    expect(skipped.map((event) => event.payload)).toEqual([
      expect.objectContaining({ stepId: 'add-slug', completedBy: first, resumes: first }),
      expect.objectContaining({ stepId: 'fill-slug', completedBy: first, resumes: first }),
    ]);
    expect(skipped[0]!.payload.reason).toMatch(new RegExp(`^completed by run ${first}; this run resumes the apply of run ${first}: resumes at step slug-index \\(the ledger of resumed at `));
    expect((await eventsOf(run.id, 'step.started')).map((event) => event.payload.stepId)).toEqual(['slug-index', 'slug-not-null']);
    expect((await eventsOf(run.id, 'statement.completed')).map((event) => event.payload.stepId)).not.toContain('add-slug');
    expect((await eventsOf(run.id, 'index.invalid_found')).map((event) => event.payload.stepId)).toEqual(['slug-index']);
    expect(done.outcome!.steps!.map((step) => step.stepId)).toEqual(['slug-index', 'slug-not-null']);

    // The ledger: applied by the second run, the first two steps recorded as completed by the first.
    const applied = (await ledgerRows(pool('resumed'))).at(-1)!;
    expect(applied).toMatchObject({ run_id: run.id, outcome: 'applied' });
    expect(applied.steps_completed).toEqual([
      expect.objectContaining({ stepId: 'add-slug', complete: true, completedBy: first }),
      expect.objectContaining({ stepId: 'fill-slug', complete: true, completedBy: first }),
      expect.objectContaining({ stepId: 'slug-index', complete: true }),
      expect.objectContaining({ stepId: 'slug-not-null', complete: true }),
    ]);
    expect(applied.steps_completed).not.toContainEqual(expect.objectContaining({ stepId: 'slug-index', completedBy: expect.anything() }));
    const { rows: orgs } = await pool('resumed').query(`select count(*)::int as n, count(distinct slug)::int as slugs from public.orgs`);
    expect(orgs[0]).toEqual({ n: 301, slugs: 301 });

    // Applied: a further run neither resumes nor applies again.
    const { run: after } = await openWorkingRun(harness.deps, { planId: 'resume-slug', target: 'resumed', kind: 'execute', actor: TPM, newAttempt: true });
    const afterGates = await evaluateGates(harness.deps, after);
    expect(afterGates.find((gate) => gate.id === 'resume')!.label).toBe('Starts the apply at its first step (resumable plan)');
    expect(afterGates.find((gate) => gate.id === 'ledger')).toMatchObject({ passed: false });
  });

  it('does not resume under a changed checksum: every step and pre-check runs from the first', async () => {
    const first = await failAtThirdStep('changed');
    const { run: failed } = { run: await getRun(harness.deps, first) };
    await pool('changed').query(`update public.orgs set name = 'Org 7 (second)', slug = 'org-7-second' where id = 301`);

    // The plan changes on disk: a new checksum.
    const planFile = path.join(plansDir, 'resume-slug', 'plan.yaml');
    await writeFile(planFile, (await readFile(planFile, 'utf8')).replace('title: Build the unique index on slug', 'title: Build the unique index on slug (changed)'));

    const { run, prechecks } = await openAndPrecheck('changed');
    expect(run.planChecksum).not.toBe(failed.planChecksum);
    // The pre-checks run, and those that prove "absent" fail: the column and the index are there.
    expect(prechecks.map((result) => [result.checkId, result.passed, result.skipped ?? false])).toEqual([
      ['slug-absent', false, false],
      ['slug-index-absent', false, false],
      ['name-present', true, false],
    ]);
    const gates = await evaluateGates(harness.deps, run);
    const resumeGate = gates.find((gate) => gate.id === 'resume')!;
    expect(resumeGate).toMatchObject({ passed: true, label: 'Starts the apply at its first step (resumable plan)' });
    expect(resumeGate.detail).toBe(
      `every step runs from the first: run ${first} stopped part-way under checksum ${failed.planChecksum.slice(0, 12)}, and this run's plan is ${run.planChecksum.slice(0, 12)}: a different checksum never resumes (its steps may do something else now)`,
    );
    expect(gates.find((gate) => gate.id === 'prechecks')).toMatchObject({ passed: false, detail: 'failed: slug-absent, slug-index-absent' });
    expect(run.state).not.toBe('ready');
  });
  /** The second step waits for the lock `holder` keeps on public.held: the run's session waiting for it. */
  const waitingForHeld = (target: string, runId: string) =>
    waitFor('the second step waiting for the held lock', async () => {
      const { rows } = await pool(target).query(`select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`, [runApplicationName(runId)]);
      return rows[0].n === 1;
    }, 60_000);

  async function holdPublicHeld(target: string): Promise<pg.Client> {
    await pool(target).query('create table public.held (id int)');
    const holder = await harness.connect(target);
    await holder.query('begin');
    await holder.query('lock table public.held in access share mode');
    return holder;
  }

  /** After the first run stopped in its second step: a new run resumes there, skipping the first step and rt-absent. */
  async function expectResumedAtSecondStep(target: string, first: string): Promise<void> {
    const { run, prechecks } = await openAndPrecheck(target, 'resume-two-steps');
    expect(prechecks.map((result) => [result.checkId, result.skipped ?? false])).toEqual([['rt-absent', true]]);
    expect(run.state).toBe('ready');
    const done = await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(done.outcome?.failure).toBeUndefined();
    expect(done).toMatchObject({ state: 'applied', outcome: { ledger: { written: 'applied' } } });
    expect((await eventsOf(run.id, 'step.skipped')).map((event) => [event.payload.stepId, event.payload.completedBy])).toEqual([['create-rt', first]]);
    expect((await eventsOf(run.id, 'step.started')).map((event) => event.payload.stepId)).toEqual(['alter-held']);
    expect((await ledgerRows(pool(target))).at(-1)!.steps_completed).toEqual([
      expect.objectContaining({ stepId: 'create-rt', complete: true, completedBy: first }),
      expect.objectContaining({ stepId: 'alter-held', complete: true }),
    ]);
  }

  it('resumes after a cancelled run, at the step the cancel stopped', async () => {
    const holder = await holdPublicHeld('cancelled');
    let first: string;
    try {
      const opened = await openAndPrecheck('cancelled', 'resume-two-steps');
      first = opened.run.id;
      const driving = executeRun(harness.deps, { runId: first, actor: ENGINEER });
      await waitingForHeld('cancelled', first);
      await cancelRun(harness.deps, { runId: first, actor: ENGINEER });
      expect(await driving).toMatchObject({ state: 'cancelled', outcome: { ledger: { written: 'partial' } } });
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    await expectResumedAtSecondStep('cancelled', first);
  });

  it('resumes after the process driving the run was killed inside the second step: the first step recorded itself in its own transaction', async () => {
    const holder = await holdPublicHeld('killed');
    let first: string;
    try {
      first = (await openAndPrecheck('killed', 'resume-two-steps')).run.id;
      const { child, done } = startEngineWorker({
        storeUrl: harness.storeDb.url,
        plansDir,
        signingKeyPem: harness.signingKeyPem,
        targets: [{ name: 'killed', url: harness.targets.get('killed')!.db.url }],
        actor: ENGINEER,
        executes: [first],
      });
      await waitingForHeld('killed', first);
      child.kill('SIGKILL');
      expect((await done).code).toBeNull();
      await waitFor('the killed session gone', async () => {
        const { rows } = await pool('killed').query('select count(*)::int as n from pg_stat_activity where application_name = $1', [runApplicationName(first)]);
        return rows[0].n === 0;
      });
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    // The only ledger row of the killed run: written in the first step's own transaction.
    expect(await ledgerRows(pool('killed'))).toEqual([
      expect.objectContaining({ run_id: first, outcome: 'partial', steps_completed: [expect.objectContaining({ stepId: 'create-rt', complete: true })] }),
    ]);
    const [report] = await markInterruptedRuns(harness.deps, { staleAfterMs: 0, runId: first });
    expect(report).toMatchObject({ verdict: 'interrupted' });
    await expectResumedAtSecondStep('killed', first);
  });
});
