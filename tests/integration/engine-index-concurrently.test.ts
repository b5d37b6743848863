/**
 * Issue "Safe at production scale", done-when (CREATE INDEX CONCURRENTLY): a build made to fail
 * (duplicate values for a UNIQUE index) is reported as INVALID, and the ledger says partial; a
 * retry after the duplicates are fixed drops the INVALID index (DROP INDEX CONCURRENTLY) and
 * builds it again, valid, which the plan's verification checks through pg_index.indisvalid.
 * A plain re-run with IF NOT EXISTS would have "succeeded" without building anything.
 */
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun } from '../../app/engine/runs.server';
import { readIndexState } from '../../app/steps/create-index-concurrently.server';
import { readRunEvents } from '../../app/runs/run-log.server';
import { ENGINEER, ledgerRows, ROOT, startEngineHarness, TPM, type EngineHarness } from './engine-harness';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

const PLANS = path.join(ROOT, 'tests/fixtures/plans-big-table');
const INDEX = { schema: 'public', name: 'cic_t_email_key' };
let harness: EngineHarness;
let target: pg.Pool;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: PLANS, targets: [{ name: 'indexed' }] });
  target = harness.targets.get('indexed')!.pool;
  await target.query(`
    create table public.cic_t (id int primary key, email text not null);
    insert into public.cic_t select g, 'user' || g || '@example.com' from generate_series(1, 500) as g;
    insert into public.cic_t values (501, 'user7@example.com');`);
});

afterAll(async () => {
  await harness?.close();
});

async function execute(): Promise<{ runId: string; run: Awaited<ReturnType<typeof executeRun>> }> {
  const created = await openRun(harness.deps, { planId: 'index-unique', target: 'indexed', kind: 'execute', actor: TPM });
  return { runId: created.id, run: await executeRun(harness.deps, { runId: created.id, actor: ENGINEER }) };
}

describe('a create_index_concurrently step', () => {
  let failedRunId: string;
  let invalidOid: number;

  it('reports a failed build as INVALID, leaves it for the next attempt, and records the run as partial', async () => {
    const { runId, run } = await execute();
    failedRunId = runId;
    expect(run.state).toBe('failed');
    expect(run.outcome!.failure).toMatchObject({ stepId: 'email-key', sqlstate: '23505' });
    expect(run.outcome!.ledger).toEqual({ written: 'partial' });

    const state = await readIndexState(target, INDEX);
    expect(state).toMatchObject({ exists: true, valid: false, table: 'public.cic_t' });
    invalidOid = (await target.query(`select 'public.cic_t_email_key'::regclass::oid::int as oid`)).rows[0].oid;

    const events = await readRunEvents(harness.store.pool, runId);
    const invalid = events.find((event) => event.type === 'index.invalid')!;
    expect(invalid.payload).toMatchObject({ stepId: 'email-key', index: 'public.cic_t_email_key', sqlstate: '23505' });
    const failed = events.find((event) => event.type === 'step.failed')!;
    expect(String(failed.payload.summary)).toMatch(/could not create unique index .*left the index public\.cic_t_email_key INVALID/);
    const ledger = (await ledgerRows(target)).at(-1);
    expect(ledger).toMatchObject({ run_id: runId, outcome: 'partial' });
    expect(ledger!.steps_completed).toEqual([expect.objectContaining({ stepId: 'email-key', complete: false, kind: 'create_index_concurrently', detail: { index: 'public.cic_t_email_key', valid: false } })]);
  });

  it('on a new run after the duplicates are fixed, drops the INVALID index and builds it again, valid', async () => {
    await target.query(`delete from public.cic_t where id = 501`);
    const { runId, run } = await execute();
    expect(run.outcome?.failure).toBeUndefined();
    expect(run).toMatchObject({ state: 'applied', outcome: { verified: true, ledger: { written: 'applied' } } });

    const events = await readRunEvents(harness.store.pool, runId);
    const types = events.map((event) => event.type);
    expect(types.indexOf('index.invalid_found')).toBeGreaterThan(-1);
    expect(types.indexOf('index.invalid_found')).toBeLessThan(types.indexOf('index.dropped'));
    expect(types.indexOf('index.dropped')).toBeLessThan(types.indexOf('index.valid'));
    expect(events.find((event) => event.type === 'index.valid')!.payload).toMatchObject({
      index: 'public.cic_t_email_key',
      definition: 'CREATE UNIQUE INDEX cic_t_email_key ON public.cic_t USING btree (email)',
    });
    const verification = events.find((event) => event.type === 'checks.ran' && event.payload.phase === 'verify')!;
    expect(verification.payload).toMatchObject({ passed: true, failed: [] });

    expect(await readIndexState(target, INDEX)).toMatchObject({ exists: true, valid: true });
    const rebuilt = (await target.query(`select 'public.cic_t_email_key'::regclass::oid::int as oid`)).rows[0].oid;
    expect(rebuilt).not.toBe(invalidOid);
    expect(run.outcome!.steps![0]).toMatchObject({ stepId: 'email-key', kind: 'create_index_concurrently', ok: true, detail: { index: 'public.cic_t_email_key', valid: true } });
  });

  it('rolls back the partial run too: the rollback drops the index concurrently', async () => {
    // The first run's ledger row is partial: its rollback is allowed and removes the (now valid) index.
    const rolledBack = await rollbackRun(harness.deps, { runId: failedRunId, actor: ENGINEER });
    expect(rolledBack.state).toBe('rolled_back');
    expect(await readIndexState(target, INDEX)).toMatchObject({ exists: false });
  });
});
