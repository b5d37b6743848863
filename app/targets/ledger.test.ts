import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { ensureLedger, LEDGER_DDL, readPlanLedgerState } from './ledger.server';

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase('ledger');
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

const RUN_1 = '11111111-1111-4111-8111-111111111111';
const RUN_2 = '22222222-2222-4222-8222-222222222222';
const RUN_3 = '33333333-3333-4333-8333-333333333333';

async function write(row: { runId: string; planId: string; checksum: string; action: string; outcome: string; by: string; at: string; equivalent?: string[] }) {
  await pool.query(
    `insert into runsheet.ledger (run_id, plan_id, checksum, action, outcome, applied_by, applied_at, equivalent_plan_ids)
     values ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [row.runId, row.planId, row.checksum, row.action, row.outcome, row.by, row.at, row.equivalent ?? []],
  );
}

describe('the target ledger', () => {
  it('reads not applied, without error, where the runsheet schema does not exist', async () => {
    expect(await readPlanLedgerState(pool, '008-add-active-org-tracking')).toEqual({ state: 'not_applied', history: [], ledgerPresent: false });
  });

  it('is created idempotently, also by two sessions at once', async () => {
    const [a, b] = await Promise.all([pool.connect(), pool.connect()]);
    try {
      await Promise.all([ensureLedger(a), ensureLedger(b)]);
      await ensureLedger(a);
      await a.query(LEDGER_DDL);
    } finally {
      a.release();
      b.release();
    }
    expect(await readPlanLedgerState(pool, '008-add-active-org-tracking')).toEqual({ state: 'not_applied', history: [], ledgerPresent: true });
  });

  it('inside a transaction, its creation rolls back with it', async () => {
    const other = await createTestDatabase('ledger_tx');
    const client = new pg.Client({ connectionString: other.url });
    await client.connect();
    try {
      await client.query('begin');
      await ensureLedger(client);
      expect((await readPlanLedgerState(client, 'x')).ledgerPresent).toBe(true);
      await client.query('rollback');
      expect((await readPlanLedgerState(client, 'x')).ledgerPresent).toBe(false);
    } finally {
      await client.end();
      await other.drop();
    }
  });

  it('refuses an outcome that does not belong to the action', async () => {
    await expect(
      write({ runId: RUN_1, planId: 'p', checksum: 'c', action: 'apply', outcome: 'rolled_back', by: 'e', at: '2025-11-22T10:00:00Z' }),
    ).rejects.toMatchObject({ code: '23514' });
    await expect(
      write({ runId: RUN_1, planId: 'p', checksum: 'c', action: 'drop', outcome: 'applied', by: 'e', at: '2025-11-22T10:00:00Z' }),
    ).rejects.toMatchObject({ code: '23514' });
  });

  it('reads applied, rolled back and a partial step from the newest rows', async () => {
    const plan = '008-add-active-org-tracking';
    await write({ runId: RUN_1, planId: plan, checksum: 'sha256:aaa', action: 'apply', outcome: 'applied', by: 'engineer@example.test', at: '2025-11-22T10:00:00Z' });
    await write({ runId: RUN_1, planId: 'another-plan', checksum: 'sha256:zzz', action: 'apply', outcome: 'applied', by: 'x', at: '2025-11-22T12:00:00Z' });
    let state = await readPlanLedgerState(pool, plan);
    expect(state).toMatchObject({ state: 'applied', runId: RUN_1, checksum: 'sha256:aaa', by: 'engineer@example.test', at: '2025-11-22T10:00:00.000Z', ledgerPresent: true });
    expect(state.history).toHaveLength(1);
    expect(state.partial).toBeUndefined();

    await write({ runId: RUN_2, planId: plan, checksum: 'sha256:aaa', action: 'rollback', outcome: 'rolled_back', by: 'engineer@example.test', at: '2025-11-22T11:00:00Z' });
    state = await readPlanLedgerState(pool, plan);
    expect(state).toMatchObject({ state: 'rolled_back', runId: RUN_2 });
    expect(state.history.map((entry) => entry.action)).toEqual(['rollback', 'apply']);

    // A non-transactional step that stopped midway does not make the plan applied.
    await write({ runId: RUN_3, planId: plan, checksum: 'sha256:bbb', action: 'apply', outcome: 'partial', by: 'engineer@example.test', at: '2025-11-22T13:00:00Z' });
    state = await readPlanLedgerState(pool, plan);
    expect(state).toMatchObject({ state: 'rolled_back', runId: RUN_2, partial: { runId: RUN_3, outcome: 'partial', checksum: 'sha256:bbb' } });
    expect(state.history[0]!.stepsCompleted).toEqual([]);
  });

  it('finds rows of an equivalent plan', async () => {
    await write({
      runId: RUN_3,
      planId: '008-renamed',
      checksum: 'sha256:ccc',
      action: 'apply',
      outcome: 'applied',
      by: 'engineer@example.test',
      at: '2025-11-23T09:00:00Z',
      equivalent: ['008-original'],
    });
    expect(await readPlanLedgerState(pool, '008-original')).toMatchObject({ state: 'applied', checksum: 'sha256:ccc', history: [{ planId: '008-renamed', equivalentPlanIds: ['008-original'] }] });
    expect((await readPlanLedgerState(pool, 'never-applied')).state).toBe('not_applied');
  });
});
