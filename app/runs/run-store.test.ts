import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';
import { appendRunEvent, readRunEventsOfTypes, readRunEventsPage } from './run-log.server';
import { createRun, statementCompleted } from './run-log-fixtures';
import { migrateStore, openStore, type Store } from '../runtime/store.server';
import { listRunFacets, listRunHistory, readRunForReport, runExists } from './run-store.server';

let database: TestDatabase;
let store: Store;
const ids = { a: '', b: '', c: '', d: '' };

/** A run in the state the engine would leave it, with its people and times (inserted so: the lifecycle trigger checks changes, not inserts). */
async function finished(target: string, facts: { kind?: 'execute' | 'rehearsal'; state: string; executedBy?: string; signedOffBy?: string; startedMinutesAgo?: number; tookMinutes?: number }) {
  const runId = await createRun(store.pool, { target, kind: facts.kind, state: facts.state });
  const started = facts.startedMinutesAgo === undefined ? null : new Date(Date.now() - facts.startedMinutesAgo * 60_000);
  const ended = started && facts.tookMinutes !== undefined ? new Date(started.getTime() + facts.tookMinutes * 60_000) : null;
  await store.pool.query('update runs set executed_by = $2, signed_off_by = $3, started_at = $4, finished_at = $5 where id = $1', [runId, facts.executedBy ?? null, facts.signedOffBy ?? null, started, ended]);
  return runId;
}

beforeAll(async () => {
  database = await createTestDatabase('run_models');
  store = openStore(database.url);
  await migrateStore(store);
  ids.a = await finished('sandbox', { state: 'applied', executedBy: 'eve@example.com', signedOffBy: 'tom@example.com', startedMinutesAgo: 60, tookMinutes: 5 });
  ids.b = await finished('staging', { state: 'failed', executedBy: 'ed@example.com', signedOffBy: 'tom@example.com', startedMinutesAgo: 30, tookMinutes: 1 });
  ids.c = await finished('sandbox', { kind: 'rehearsal', state: 'rehearsed', executedBy: 'ed@example.com', startedMinutesAgo: 10, tookMinutes: 20 });
  ids.d = await createRun(store.pool, { target: 'sandbox' }); // a draft: never started
  for (let index = 0; index < 25; index++) {
    await appendRunEvent(store.pool, { runId: ids.a, actor: 'system', ...(index % 5 === 0 ? { type: 'note.added' as const, payload: { text: `note ${index}` } } : statementCompleted(index)) });
  }
});

afterAll(async () => {
  await store?.close();
  await database?.drop();
});

const page = (input: Partial<Parameters<typeof listRunHistory>[1]> = {}) =>
  listRunHistory(store.db, { filters: {}, sort: { key: 'created', direction: 'desc' }, limit: 25, offset: 0, ...input });

describe('listRunHistory', () => {
  it('filters by target, kind, state and person (created, executed or signed off by)', async () => {
    expect((await page({ filters: { target: 'staging' } })).rows.map((run) => run.id)).toEqual([ids.b]);
    expect((await page({ filters: { kind: 'rehearsal' } })).rows.map((run) => run.id)).toEqual([ids.c]);
    expect((await page({ filters: { state: 'applied' } })).rows.map((run) => run.id)).toEqual([ids.a]);
    expect((await page({ filters: { person: 'tom@example.com' } })).rows.map((run) => run.id).sort()).toEqual([ids.a, ids.b].sort());
    expect((await page({ filters: { person: 'tpm@example.com' } })).total).toBe(4);
    expect((await page({ filters: { person: "x' or 1=1 --" } })).total).toBe(0);
  });

  it('sorts by duration and by start, unstarted runs last either way', async () => {
    const longestFirst = await page({ sort: { key: 'duration', direction: 'desc' } });
    expect(longestFirst.rows.map((run) => run.id)).toEqual([ids.c, ids.a, ids.b, ids.d]);
    expect(longestFirst.rows[0]!.durationMs).toBe(20 * 60_000);
    const earliestFirst = await page({ sort: { key: 'started', direction: 'asc' } });
    expect(earliestFirst.rows.map((run) => run.id)).toEqual([ids.a, ids.b, ids.c, ids.d]);
  });

  it('pages with limit and offset and counts every match', async () => {
    const second = await page({ limit: 3, offset: 3 });
    expect(second.total).toBe(4);
    expect(second.rows).toHaveLength(1);
  });

  it('lists the plans, targets and people that appear on runs', async () => {
    const facets = await listRunFacets(store.db);
    expect(facets.targets).toEqual(['sandbox', 'staging']);
    expect(facets.people).toEqual(['ed@example.com', 'eve@example.com', 'tom@example.com', 'tpm@example.com']);
  });
});

describe('a run for its report and its event pages', () => {
  it('reads one run with its event count; a malformed or unknown id is no run', async () => {
    const run = await readRunForReport(store.db, { runId: ids.a });
    expect(run).toMatchObject({ id: ids.a, state: 'applied', eventCount: 25, lastSeq: 25, signedThroughSeq: null });
    expect(await readRunForReport(store.db, { runId: 'not-a-uuid' })).toBeUndefined();
    expect(await runExists(store.db, { runId: '00000000-0000-0000-0000-000000000000' })).toBe(false);
  });

  it('pages events after a cursor and says whether more follow', async () => {
    const first = await readRunEventsPage(store.db, { runId: ids.a, afterSeq: 0, limit: 10 });
    expect(first.events.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(first).toMatchObject({ lastSeq: 10, hasMore: true });
    const last = await readRunEventsPage(store.db, { runId: ids.a, afterSeq: 20, limit: 10 });
    expect(last).toMatchObject({ lastSeq: 25, hasMore: false });
    expect(last.events).toHaveLength(5);
  });

  it('reads the events of some types only', async () => {
    const notes = await readRunEventsOfTypes(store.db, { runId: ids.a, types: ['note.added'] });
    expect(notes.map((event) => event.seq)).toEqual([1, 6, 11, 16, 21]);
  });
});
