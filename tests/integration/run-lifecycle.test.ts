/**
 * The run lifecycle (db/run-lifecycle.ts) is enforced twice: transitionRun refuses a move it does
 * not list before writing anything, and PostgreSQL refuses it too (a trigger over the store's
 * run_state_transitions, which must hold exactly RUN_TRANSITIONS). One open run per plan, target
 * and kind is an index; the migration that created it first retired existing duplicates, each
 * with a state change in its own log that still hashes into its chain.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pickWorkingRun, RUN_STATES, transitionPairs, type RunState } from '../../db/run-lifecycle';
import { createRun, RUN_CREATED } from '../../app/runs/run-log-fixtures';
import { appendRunEvent, checkChain, readRunEvents, readStoredRunEvents } from '../../app/runs/run-log.server';
import { findRun, transitionRun } from '../../app/runs/run-store.server';
import { fromRoot } from '../../app/runtime/paths.server';
import { migrateStore, openStore, type Store } from '../../app/runtime/store.server';
import { createTestDatabase, type TestDatabase } from '../support/databases';

let database: TestDatabase;
let store: Store;

beforeAll(async () => {
  database = await createTestDatabase('run_lifecycle');
  store = openStore(database.url);
  await migrateStore(store);
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

describe('the allowed transitions', () => {
  it('are the same in the store as in db/run-lifecycle.ts', async () => {
    const { rows } = await store.pool.query<{ from_state: string; to_state: string }>('select from_state, to_state from run_state_transitions');
    const stored = rows.map((row) => `${row.from_state}→${row.to_state}`).sort();
    expect(stored).toEqual(transitionPairs().map(([from, to]) => `${from}→${to}`).sort());
  });

  it('are enforced by PostgreSQL: every other change of state is refused', async () => {
    const allowed = new Set(transitionPairs().map(([from, to]) => `${from}→${to}`));
    const refusedBy = async (from: RunState, to: RunState) => {
      const kind = ['rehearsing', 'rehearsed', 'rehearsal_failed'].includes(from) || ['rehearsing', 'rehearsed', 'rehearsal_failed'].includes(to) ? 'rehearsal' : 'execute';
      const runId = await createRun(store.pool, { state: from, kind });
      return store.pool.query('update runs set state = $2 where id = $1', [runId, to]).then(
        () => undefined,
        (error: { code?: string; message: string }) => error,
      );
    };
    for (const [from, to] of [['draft', 'applied'], ['applied', 'applying'], ['rolled_back', 'rolling_back'], ['superseded', 'draft'], ['failed', 'applied']] as [RunState, RunState][]) {
      expect(allowed.has(`${from}→${to}`)).toBe(false);
      const error = await refusedBy(from, to);
      expect(error, `${from} → ${to}`).toMatchObject({ code: '23514', message: expect.stringContaining(`may not go from ${from} to ${to}`) });
    }
    expect(await refusedBy('ready', 'applying')).toBeUndefined();
  });

  it('are enforced in code before anything is written', async () => {
    const runId = await createRun(store.pool, { state: 'applied' });
    await expect(transitionRun(store, { runId, from: ['applied'], to: 'ready', reason: 'no', actor: 'system' })).rejects.toThrow(/applied → ready is not an allowed transition/);
    expect((await findRun(store.pool, runId))?.state).toBe('applied');
    expect(await readRunEvents(store.pool, runId)).toEqual([]);
  });

  it('lists every state, and every state but the final ones can be left', () => {
    const leavable = new Set(transitionPairs().map(([from]) => from));
    for (const state of RUN_STATES) expect(leavable.has(state) || ['superseded', 'rolled_back', 'rollback_failed', 'rehearsed', 'rehearsal_failed'].includes(state)).toBe(true);
  });
});

describe('one open run per plan, target and kind', () => {
  it('is an index of the store', async () => {
    await createRun(store.pool, { target: 'one-open' });
    const second = await createRun(store.pool, { target: 'one-open' }).catch((error: { code?: string; message: string }) => error);
    expect(second).toMatchObject({ code: '23505', message: expect.stringContaining('runs_one_open_per_plan') });
    // Another kind, or a run that is no longer open, is fine.
    await createRun(store.pool, { target: 'one-open', kind: 'rehearsal' });
    await createRun(store.pool, { target: 'one-open', state: 'applied' });
  });

  it('was made by a migration that first retired older duplicates, each with an event that extends its chain', async () => {
    const partial = fs.mkdtempSync(path.join(os.tmpdir(), 'runsheet-migrations-'));
    const old = await createTestDatabase('run_lifecycle_old');
    const oldStore = openStore(old.url);
    try {
      // The store as it was before 0003_run_lifecycle: two open drafts of one plan on one target.
      fs.cpSync(fromRoot('db', 'migrations'), partial, { recursive: true });
      const journal = JSON.parse(fs.readFileSync(path.join(partial, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
      journal.entries = journal.entries.filter((entry) => entry.tag < '0003');
      fs.writeFileSync(path.join(partial, 'meta', '_journal.json'), JSON.stringify(journal));
      await migrateStore(oldStore, partial);
      const older = await createRun(oldStore.pool, { target: 'sandbox' });
      await appendRunEvent(oldStore.pool, { runId: older, actor: 'tpm@example.com', role: 'tpm', type: 'run.created', payload: RUN_CREATED });
      await new Promise((resolve) => setTimeout(resolve, 20));
      const newer = await createRun(oldStore.pool, { target: 'sandbox' });

      await migrateStore(oldStore);
      expect((await findRun(oldStore.pool, older))?.state).toBe('superseded');
      expect((await findRun(oldStore.pool, newer))?.state).toBe('draft');
      const events = await readStoredRunEvents(oldStore.pool, older);
      expect(events.at(-1)).toMatchObject({ seq: 2, actor: 'system', type: 'state.changed', payload: { from: 'draft', to: 'superseded', reason: expect.stringContaining(newer) } });
      // Hashed in SQL exactly as TypeScript hashes: the chain checks out.
      expect(checkChain(older, events)).toMatchObject({ ok: true });
    } finally {
      await oldStore.close();
      await old.drop();
      fs.rmSync(partial, { recursive: true, force: true });
    }
  });
});

describe('the working run (pickWorkingRun), the one rule both front ends use', () => {
  const run = (state: RunState, checksum = 'now', changedTarget = false) => ({ kind: 'execute' as const, state, planChecksum: checksum, changedTarget, name: `${state}@${checksum}` });

  it('is the open run at the current checksum; an open run of an older checksum is stale', () => {
    expect(pickWorkingRun([run('ready'), run('rolled_back')], 'execute', 'now')).toMatchObject({ working: { name: 'ready@now' }, previous: { name: 'rolled_back@now' } });
    expect(pickWorkingRun([run('draft', 'old'), run('rolled_back')], 'execute', 'now')).toMatchObject({ stale: { name: 'draft@old' }, previous: { name: 'rolled_back@now' } });
  });

  it('is a run that still waits on a person; a run that is over is only history', () => {
    for (const state of ['applying', 'applied', 'rollback_failed'] as RunState[]) expect(pickWorkingRun([run(state)], 'execute', 'now').working?.state).toBe(state);
    // Failed, cancelled or interrupted: waits on a person only when part of the apply committed (something to roll back).
    for (const state of ['failed', 'cancelled', 'interrupted'] as RunState[]) {
      expect(pickWorkingRun([run(state, 'now', true)], 'execute', 'now').working?.state).toBe(state);
      expect(pickWorkingRun([run(state)], 'execute', 'now')).toMatchObject({ previous: { state } });
      expect(pickWorkingRun([run(state)], 'execute', 'now').working).toBeUndefined();
    }
    for (const state of ['rolled_back', 'superseded'] as RunState[]) expect(pickWorkingRun([run(state)], 'execute', 'now').working).toBeUndefined();
  });

  it('for a rehearsal, nothing waits on a person: a finished rehearsal is history', () => {
    const rehearsal = (state: RunState) => ({ ...run(state), kind: 'rehearsal' as const });
    expect(pickWorkingRun([rehearsal('interrupted')], 'rehearsal', 'now').working).toBeUndefined();
    expect(pickWorkingRun([rehearsal('rehearsing')], 'rehearsal', 'now').working?.state).toBe('rehearsing');
  });
});
