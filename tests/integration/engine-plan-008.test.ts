/**
 * Issue "Execution engine", done-when (plan 008 on a sandbox of ~2,000 users): a rehearsal leaves
 * the schema exactly as it was; execute (after ticks and pre-checks) leaves column, index,
 * functions and backfill as the seed expects, with a ledger row; a second execute of the same
 * checksum is refused by the ledger gate, while running the migration SQL again by hand changes
 * nothing; rollback leaves none of column, index, either function.
 */
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, rehearseRun, rollbackRun } from '../../app/engine/engine.server';
import { openWorkingRun, readRunDetail, runRunChecks, tickPrerequisite } from '../../app/engine/runs.server';
import { thawPlan } from '../../app/engine/frozen-plan.server';
import { eventsOf as eventsOfType } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { loadSigningKey } from '../../app/runs/signing.server';
import { verifyStoredRunLog } from '../../app/runs/verify-run-log.server';
import { ENGINEER, ledgerRows, REAL_PLANS, startEngineHarness, TPM, type EngineHarness } from './engine-harness';
import { RunsheetError } from '../../app/runtime/errors';

/** The plan's open run on a target, or a new attempt after the last one ended (as the plan page's "new attempt"). */
const openRun = async (deps: Parameters<typeof openWorkingRun>[0], input: Parameters<typeof openWorkingRun>[1]) => (await openWorkingRun(deps, { newAttempt: true, ...input })).run;

const PLAN = '008-add-active-org-tracking';
let harness: EngineHarness;
let target: pg.Pool;

/** Columns, indexes, constraints, functions (full definitions) and the users' rows, of every schema the sandbox has. */
async function schemaFingerprint(pool: pg.Pool): Promise<Record<string, unknown>> {
  const { rows } = await pool.query(`
    select
      (select jsonb_agg(jsonb_build_array(table_schema, table_name, column_name, data_type, is_nullable, column_default) order by table_schema, table_name, ordinal_position)
         from information_schema.columns where table_schema in ('platform', 'other')) as columns,
      (select jsonb_agg(jsonb_build_array(schemaname, indexname, indexdef) order by schemaname, indexname)
         from pg_indexes where schemaname in ('platform', 'other')) as indexes,
      (select jsonb_agg(jsonb_build_array(n.nspname, c.conname, pg_get_constraintdef(c.oid)) order by n.nspname, c.conname)
         from pg_constraint c join pg_namespace n on n.oid = c.connamespace where n.nspname in ('platform', 'other')) as constraints,
      (select coalesce(jsonb_agg(pg_get_functiondef(p.oid) order by p.oid::regprocedure::text), '[]')
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname in ('platform', 'other') and p.prokind in ('f', 'p')) as functions,
      (select md5(string_agg(u::text, ',' order by u.id)) from platform.users u) as users,
      to_regclass('runsheet.ledger') is not null as ledger`);
  return rows[0];
}

async function readyExecuteRun(): Promise<string> {
  const run = await openRun(harness.deps, { planId: PLAN, target: 'sandbox', kind: 'execute', actor: TPM });
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(harness.deps, { runId: run.id, itemId: item.id, ticked: true, actor: TPM });
  }
  await runRunChecks(harness.deps, { runId: run.id, phase: 'pre', actor: TPM });
  return run.id;
}

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: REAL_PLANS, targets: [{ name: 'sandbox', sandboxUsers: 2_000 }] });
  target = harness.targets.get('sandbox')!.pool;
});

afterAll(async () => {
  await harness?.close();
});

describe('plan 008 through the engine', () => {
  let before: Record<string, unknown>;
  let appliedRunId: string;

  it('rehearses: every phase runs in one transaction and the schema fingerprint is unchanged after', async () => {
    before = await schemaFingerprint(target);
    expect((before.functions as unknown[]).length).toBe(0);
    const run = await openRun(harness.deps, { planId: PLAN, target: 'sandbox', kind: 'rehearsal', actor: ENGINEER });
    const done = await rehearseRun(harness.deps, { runId: run.id, actor: ENGINEER });
    expect(done.outcome?.failure).toBeUndefined();
    expect(done.state).toBe('rehearsed');
    expect(done.outcome!.rehearsal).toMatchObject({ apply: { ok: true }, verification: { passed: true }, dataQuality: { passed: true }, rollback: { ok: true }, rollbackVerification: { passed: true }, rolledBack: true });
    expect(done.outcome!.rehearsal!.dataQuality!.skipped).toEqual(['api-validate', 'api-set-active-org']);

    const events = await readRunEvents(harness.store.pool, run.id);
    const post = eventsOfType(events, 'checks.ran').find((event) => event.payload.phase === 'post')!;
    const skipped = (post.payload.results as { checkId: string; skipped: boolean; reason: string }[]).filter((result) => result.skipped);
    expect(skipped.map((result) => result.reason)).toEqual(['skipped: a rehearsal does not call the API', 'skipped: a rehearsal does not call the API']);
    expect(String(events.find((event) => event.type === 'rehearsal.transaction.opened')!.payload.note)).toMatch(/holds the migration's locks .* for its whole length/);

    expect(await schemaFingerprint(target)).toEqual(before);
  });

  it('executes after ticks and pre-checks: column, index, functions, backfill and the ledger as the seed expects', async () => {
    appliedRunId = await readyExecuteRun();
    const detail = await readRunDetail(harness.deps, appliedRunId, { gates: true });
    expect(detail.run.state).toBe('ready');
    expect(detail.gates!.filter((gate) => !gate.passed)).toEqual([]);

    const done = await executeRun(harness.deps, { runId: appliedRunId, actor: ENGINEER });
    expect(done.outcome?.failure).toBeUndefined();
    expect(done.state).toBe('applied');
    expect(done.outcome).toMatchObject({ verified: true, ledger: { written: 'applied' }, postExecution: { passed: true, skipped: ['api-validate', 'api-set-active-org'] } });

    const { rows } = await target.query(`
      select (select data_type || '/' || is_nullable from information_schema.columns
               where table_schema = 'platform' and table_name = 'users' and column_name = 'active_org_id') as column,
             (select pg_get_indexdef('platform.idx_users_active_org'::regclass)) as index,
             (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
               where n.nspname = 'platform' and p.proname in ('set_user_active_org', 'get_user_active_org'))::int as functions,
             (select count(*) from platform.users u where u.active_org_id is null
                 and exists (select 1 from platform.organization_members m where m.user_id = u.id))::int as unfilled,
             (select count(*) from platform.users u join (
                 select distinct on (m.user_id) m.user_id, m.organization_id from platform.organization_members m
                  order by m.user_id, m.joined_at, m.organization_id) e on e.user_id = u.id
               where u.active_org_id is distinct from e.organization_id)::int as not_earliest`);
    expect(rows[0]).toEqual({
      column: 'uuid/YES',
      index: 'CREATE INDEX idx_users_active_org ON platform.users USING btree (active_org_id) WHERE (active_org_id IS NOT NULL)',
      functions: 2,
      unfilled: 0,
      not_earliest: 0,
    });
    expect(await ledgerRows(target)).toEqual([expect.objectContaining({ run_id: appliedRunId, action: 'apply', outcome: 'applied', checksum: done.planChecksum })]);
    const key = loadSigningKey(harness.signingKeyPem).publicKeyPem;
    expect(await verifyStoredRunLog(harness.store.pool, appliedRunId, [key])).toMatchObject({ ok: true });
  });

  it('refuses a second execute of the same checksum (a new run) with the ledger gate; the SQL run again by hand changes nothing', async () => {
    const second = await readyExecuteRun();
    const refusal = await executeRun(harness.deps, { runId: second, actor: ENGINEER }).catch((error) => error);
    expect(refusal).toMatchObject({ kind: 'gate' });
    const ledgerGate = (refusal as RunsheetError).gates!.find((gate) => gate.id === 'ledger');
    expect(ledgerGate?.detail).toMatch(new RegExp(`already applied on sandbox by run ${appliedRunId}`));
    const refusedEvent = (await readRunEvents(harness.store.pool, second)).find((event) => event.type === 'execute.refused')!;
    expect((refusedEvent.payload.openGates as { id: string }[]).map((gate) => gate.id)).toContain('ledger');
    expect(await ledgerRows(target)).toHaveLength(1);

    const applied = await schemaFingerprint(target);
    const client = await harness.connect('sandbox');
    try {
      await client.query(fs.readFileSync(path.join(REAL_PLANS, PLAN, '008_add_active_org_tracking.sql'), 'utf8'));
    } finally {
      await client.end();
    }
    expect(await schemaFingerprint(target)).toEqual(applied);
  });

  it('rolls back: no column, index or either function remains, and the schema is as before', async () => {
    const done = await rollbackRun(harness.deps, { runId: appliedRunId, actor: ENGINEER });
    expect(done.state).toBe('rolled_back');
    expect(done.outcome!.rollback).toMatchObject({ verified: true, ledger: { written: 'rolled_back' } });
    const { rows } = await target.query(`
      select exists (select 1 from information_schema.columns where table_schema = 'platform' and table_name = 'users' and column_name = 'active_org_id') as column,
             to_regclass('platform.idx_users_active_org') is not null as index,
             exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                      where n.nspname = 'platform' and p.proname in ('set_user_active_org', 'get_user_active_org')) as functions`);
    expect(rows[0]).toEqual({ column: false, index: false, functions: false });
    const after = await schemaFingerprint(target);
    expect({ ...after, ledger: false }).toEqual(before);
    expect((await ledgerRows(target)).map((row) => `${row.action}:${row.outcome}`)).toEqual(['apply:applied', 'rollback:rolled_back']);
  });
});
