/**
 * Issue "Execution engine", done-when, crash safety: a process killed mid-apply leaves its run
 * interrupted (once the heartbeat is stale and its target session is gone) and the target
 * unchanged; a run whose session still runs is not marked; cancel (from this process or another)
 * ends a long apply and leaves the target unchanged; a connection killed mid-apply ends the run
 * failed with its log intact.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { markInterruptedRuns } from '../../app/engine/crash-recovery.server';
import { cancelRun, executeRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun, getRun } from '../../app/engine/runs.server';
import { readRunEvents } from '../../app/runs/run-log.server';
import { loadSigningKey } from '../../app/runs/signing.server';
import { verifyStoredRunLog } from '../../app/runs/verify-run-log.server';
import { ENGINE_PLANS, ENGINEER, ledgerRows, SECOND_ENGINEER, startEngineHarness, startEngineWorker as startWorker, waitFor, type EngineHarness } from './engine-harness';
import type { WorkerJob } from './engine-worker';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

let harness: EngineHarness;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: ENGINE_PLANS, targets: [{ name: 'killed' }, { name: 'cancelled' }, { name: 'remote' }, { name: 'terminated' }] });
});

afterAll(async () => {
  await harness?.close();
});

const publicKey = () => loadSigningKey(harness.signingKeyPem).publicKeyPem;

async function readySlowRun(target: string): Promise<string> {
  const run = await openRun(harness.deps, { planId: 'slow-apply', target, kind: 'execute', actor: ENGINEER });
  expect(run.state).toBe('ready');
  return run.id;
}

/** Until the run is applying and its session sleeps inside the step's transaction on the target. */
async function waitUntilSleeping(runId: string, target: string): Promise<number> {
  return waitFor(`run ${runId} sleeping on ${target}`, async () => {
    const run = await getRun(harness.deps, runId);
    if (run.state !== 'applying' || run.targetBackendPid === null) return undefined;
    const { rows } = await harness.targets
      .get(target)!
      .pool.query(`select pid from pg_stat_activity where pid = $1 and state = 'active' and query ilike '%pg_sleep%'`, [run.targetBackendPid]);
    return rows[0]?.pid as number | undefined;
  });
}

async function targetUnchanged(target: string): Promise<void> {
  const pool = harness.targets.get(target)!.pool;
  const { rows } = await pool.query(`select to_regclass('public.slow_t') as slow_t`);
  expect(rows[0].slow_t).toBeNull();
  expect((await ledgerRows(pool)).filter((row) => row.action === 'apply' && row.outcome === 'applied')).toEqual([]);
}

const jobFor = (target: string, runId: string): WorkerJob => ({
  storeUrl: harness.storeDb.url,
  plansDir: ENGINE_PLANS,
  signingKeyPem: harness.signingKeyPem,
  targets: [{ name: target, url: harness.targets.get(target)!.db.url }],
  actor: ENGINEER,
  executes: [runId],
});

describe('a process killed mid-apply', () => {
  it('leaves the run interrupted after restart, with the ledger saying nothing committed, and the target unchanged', async () => {
    const runId = await readySlowRun('killed');
    const worker = startWorker(jobFor('killed', runId));
    await waitUntilSleeping(runId, 'killed');
    worker.child.kill('SIGKILL');
    expect((await worker.done).code).toBeNull();

    // A fresh heartbeat: the default threshold marks nothing yet.
    expect(await markInterruptedRuns(harness.deps, { runId })).toEqual([]);
    // "Restart": once the heartbeat is stale and the server noticed the client is gone.
    const report = await waitFor('the run marked interrupted', async () => {
      const reports = await markInterruptedRuns(harness.deps, { staleAfterMs: 300, runId });
      return reports.find((candidate) => candidate.verdict === 'interrupted');
    }, 30_000, 250);
    expect(report.ledgerRows).toEqual([]);

    const run = await getRun(harness.deps, runId);
    expect(run.state).toBe('interrupted');
    expect(run.outcome?.interrupted).toMatchObject({ previousState: 'applying', commitLanded: false, ledgerRows: [] });
    const interrupted = (await readRunEvents(harness.store.pool, runId)).find((event) => event.type === 'run.interrupted')!;
    expect(interrupted.actor).toBe('system');
    expect(String(interrupted.payload.detail)).toMatch(/did not commit/);
    await targetUnchanged('killed');
    expect(await verifyStoredRunLog(harness.store.pool, runId, [publicKey()])).toMatchObject({ ok: true });

    // Never re-applied by itself, and nothing to roll back: the ledger has no row of it.
    const refusal = await rollbackRun(harness.deps, { runId, actor: ENGINEER }).catch((error) => error);
    expect(refusal).toMatchObject({ kind: 'gate' });
    expect(refusal.message).toMatch(/did not commit/);
  });
});

describe('cancel', () => {
  it('ends a long apply from this process: cancelled, by whom, the target unchanged; a live session is never marked interrupted', async () => {
    const runId = await readySlowRun('cancelled');
    const execution = executeRun(harness.deps, { runId, actor: ENGINEER });
    await waitUntilSleeping(runId, 'cancelled');
    const reports = await markInterruptedRuns(harness.deps, { staleAfterMs: 0, runId });
    expect(reports).toEqual([expect.objectContaining({ verdict: 'still-running' })]);

    await cancelRun(harness.deps, { runId, actor: SECOND_ENGINEER });
    const run = await execution;
    expect(run.state).toBe('cancelled');
    expect(run.outcome).toMatchObject({ cancelledBy: SECOND_ENGINEER.email, failure: { cancelled: true, sqlstate: '57014', stepId: 'create-then-sleep' } });
    await targetUnchanged('cancelled');
    const types = (await readRunEvents(harness.store.pool, runId)).map((event) => event.type);
    expect(types).toContain('cancel.requested');
    expect(types).toContain('cancel.signalled');
  });

  it('ends a long apply driven by another process (it learns of the cancel from the run log)', async () => {
    const runId = await readySlowRun('remote');
    const worker = startWorker(jobFor('remote', runId));
    await waitUntilSleeping(runId, 'remote');
    await cancelRun(harness.deps, { runId, actor: SECOND_ENGINEER });
    const { code, stdout } = await worker.done;
    expect(code).toBe(0);
    expect(JSON.parse(stdout.trim()).results).toEqual([{ runId, state: 'cancelled' }]);
    const run = await getRun(harness.deps, runId);
    expect(run.outcome).toMatchObject({ cancelledBy: SECOND_ENGINEER.email, failure: { cancelled: true } });
    await targetUnchanged('remote');
  });
});

describe('a connection killed mid-apply', () => {
  it('ends the run failed with its log intact', async () => {
    const runId = await readySlowRun('terminated');
    const execution = executeRun(harness.deps, { runId, actor: ENGINEER });
    const pid = await waitUntilSleeping(runId, 'terminated');
    await harness.targets.get('terminated')!.pool.query('select pg_terminate_backend($1)', [pid]);
    const run = await execution;
    expect(run.state).toBe('failed');
    expect(run.outcome?.failure).toMatchObject({ stepId: 'create-then-sleep', cancelled: false });
    await targetUnchanged('terminated');
    const verdict = await verifyStoredRunLog(harness.store.pool, runId, [publicKey()]);
    expect(verdict).toMatchObject({ ok: true });
    const events = await readRunEvents(harness.store.pool, runId);
    expect(verdict.ok && verdict.signedSeq).toBe(events.length);
    expect(events.find((event) => event.type === 'step.failed')!.payload).toMatchObject({ connectionBroken: true });
  });
});
