/**
 * Issue 14, done-when (a backfill that runs until no rows are left), against the real database:
 * - 200,000 rows fill while a writer inserts rows that need it: live progress with the rows still
 *   to do marked as an estimate, paused and resumed like the keyset walk, every row filled at the end;
 * - a batch that cannot make progress stops the step naming it (and the batch is rolled back);
 * - a row another session holds during the walk is skipped, and filled by the final pass (without
 *   SKIP LOCKED) once that session lets go.
 * No timed assertions: every wait is for an event or a database state.
 */
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pauseBackfill, resumeBackfill } from '../../app/engine/backfill-control.server';
import { executeRun } from '../../app/engine/engine.server';
import { openWorkingRun } from '../../app/engine/runs.server';
import { runApplicationName } from '../../app/engine/target-session.server';
import { eventsOf as eventsOfType, type RunEventOf, type RunEventType } from '../../app/runs/run-events';
import { readRunEvents } from '../../app/runs/run-log.server';
import { ENGINEER, ledgerRows, ROOT, startEngineHarness, TPM, waitFor, type EngineHarness } from './engine-harness';

const PLANS = path.join(ROOT, 'tests/fixtures/plans-format-additions');
const ROWS = 200_000;
let harness: EngineHarness;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: PLANS, targets: [{ name: 'writer' }, { name: 'stuck' }, { name: 'locked' }] });
});

afterAll(async () => {
  await harness?.close();
});

const pool = (target: string): pg.Pool => harness.targets.get(target)!.pool;

async function eventsOf<T extends RunEventType>(runId: string, type: T): Promise<RunEventOf<T>[]> {
  return eventsOfType(await readRunEvents(harness.store.pool, runId), type);
}
const waitForEvent = <T extends RunEventType>(runId: string, type: T, timeoutMs?: number) =>
  waitFor(`${type} in run ${runId}`, async () => (await eventsOf(runId, type))[0], timeoutMs);

async function readyRun(planId: string, target: string): Promise<string> {
  const { run } = await openWorkingRun(harness.deps, { planId, target, kind: 'execute', actor: TPM, newAttempt: true });
  expect(run.state).toBe('ready');
  return run.id;
}

async function createOrgs(target: string, rows: number): Promise<void> {
  await pool(target).query(`
    create table public.orgs (id bigserial primary key, name text not null, slug text, writer boolean not null default false);
    insert into public.orgs (name) select 'org ' || g from generate_series(1, ${rows}) as g;
    analyze public.orgs;`);
}

describe('a batched backfill until no rows are left', () => {
  it(`fills ${ROWS.toLocaleString('en-US')} rows while a writer inserts rows that need it, with live estimated progress, pause and resume`, async () => {
    await createOrgs('writer', ROWS);
    const runId = await readyRun('fill-slug', 'writer');
    const driving = executeRun(harness.deps, { runId, actor: ENGINEER });

    // The writer: one organization without a slug at a time, each its own transaction, until told to stop.
    const writer = await harness.connect('writer');
    let writing = true;
    let written = 0;
    const writes = (async () => {
      while (writing) {
        await writer.query(`insert into public.orgs (name, writer) values ('written while the backfill runs', true)`);
        written++;
      }
    })();

    // Live: progress events arrive while the run applies, the rows still to do marked as an estimate.
    const live = await waitFor('progress past 20,000 rows and some rows written', async () => {
      const progress = await eventsOf(runId, 'progress');
      const latest = progress.at(-1);
      return latest && latest.payload.done >= 20_000 && written >= 20 ? latest : undefined;
    }, 120_000);
    expect(live.payload).toMatchObject({ stepId: 'fill', totalEstimated: true, lastKey: null });
    expect(live.payload.remaining).toEqual(expect.any(Number));
    expect(live.payload.total).toBe(live.payload.done + live.payload.remaining!);
    expect(live.payload.done).toBeLessThan(ROWS);

    // Paused, the writer stops (so its last row is in before the walk can end), then resumed.
    await pauseBackfill(harness.deps, { runId, actor: ENGINEER, reason: 'let the writer finish' });
    const paused = await waitForEvent(runId, 'backfill.paused');
    expect(paused.payload).toMatchObject({ stepId: 'fill', lastKey: null });
    writing = false;
    await writes;
    await writer.end();
    await resumeBackfill(harness.deps, { runId, actor: ENGINEER });

    const done = await driving;
    expect(done.outcome?.failure).toBeUndefined();
    expect(done).toMatchObject({ state: 'applied', outcome: { verified: true, ledger: { written: 'applied' } } });
    const { rows } = await pool('writer').query(`select count(*)::int as rows, count(*) filter (where slug is null)::int as missing,
                                                      count(*) filter (where writer)::int as written, count(*) filter (where writer and slug = 'org-' || id)::int as written_filled
                                                 from public.orgs`);
    expect(written).toBeGreaterThanOrEqual(20);
    expect(rows[0]).toEqual({ rows: ROWS + written, missing: 0, written, written_filled: written });

    const started = (await eventsOf(runId, 'backfill.started'))[0]!;
    expect(started.payload).toMatchObject({ until: 'no_rows', condition: 's.slug IS NULL', totalEstimated: true, batchSize: 1000 });
    const completed = (await eventsOf(runId, 'backfill.completed'))[0]!;
    expect(completed.payload).toMatchObject({ stepId: 'fill', rowsDone: ROWS + written, rowsUpdated: ROWS + written, finalPassRows: 0 });
    expect(await eventsOf(runId, 'backfill.final_pass')).toHaveLength(1);
    expect(await eventsOf(runId, 'backfill.resumed')).toHaveLength(1);
    const last = (await eventsOf(runId, 'progress')).at(-1)!;
    expect(last.payload).toMatchObject({ done: ROWS + written, total: ROWS + written, remaining: 0 });
    expect(done.outcome!.steps![0]).toMatchObject({ stepId: 'fill', kind: 'batched_backfill', ok: true, detail: { backfill: { until: 'no_rows', rowsDone: ROWS + written, complete: true } } });
    // The object check of the verification says what it found in words.
    const checks = (await eventsOf(runId, 'checks.ran')).find((event) => event.payload.phase === 'verify')!;
    expect(checks.payload.results.find((result) => result.checkId === 'slug-column')).toMatchObject({ passed: true, actual: 'column public.orgs.slug: present, text, nullable' });
  });

  it('stops the step as "no progress" at the second batch in a row whose rows all still need it, naming it, and rolls that batch back', async () => {
    await pool('stuck').query(`create table public.np (id int primary key, touched int not null default 0);
                               insert into public.np (id) select g from generate_series(1, 500) as g;`);
    const runId = await readyRun('no-progress', 'stuck');
    const done = await executeRun(harness.deps, { runId, actor: ENGINEER });
    expect(done).toMatchObject({ state: 'failed', outcome: { ledger: { written: 'partial' }, stoppedAt: { phase: 'apply', stepId: 'touch' } } });
    expect(done.outcome!.stoppedAt!.message).toMatch(/^no progress: batch 2 \(50 row\(s\), keys [\d, ]+, …\) changed rows that all still match "touched >= 0", as batch 1 did/);
    const stopped = (await eventsOf(runId, 'backfill.no_progress'))[0]!;
    expect(stopped.payload).toMatchObject({ stepId: 'touch', batch: 2, previousBatch: 1, rows: 50, condition: 'touched >= 0', rolledBack: true });
    expect(stopped.payload.keys).toHaveLength(5);
    const failed = (await eventsOf(runId, 'step.failed'))[0]!;
    expect(failed.payload.summary).toContain('Step touch: no progress: batch 2');
    // Batch 1 committed (50 rows touched once); batch 2 was rolled back.
    const { rows } = await pool('stuck').query(`select count(*) filter (where touched = 1)::int as once, count(*) filter (where touched > 1)::int as more from public.np`);
    expect(rows[0]).toEqual({ once: 50, more: 0 });
    const ledger = (await ledgerRows(pool('stuck'))).at(-1)!;
    expect(ledger).toMatchObject({ run_id: runId, outcome: 'partial', steps_completed: [expect.objectContaining({ stepId: 'touch', complete: false })] });
  });

  it('skips a row another session holds during the walk, and fills it in the final pass once that session lets go', async () => {
    await createOrgs('locked', 5_000);
    const holder = await harness.connect('locked');
    try {
      await holder.query('begin');
      await holder.query('select 1 from public.orgs where id = 10 for update');
      const runId = await readyRun('fill-slug', 'locked');
      const driving = executeRun(harness.deps, { runId, actor: ENGINEER });

      const finalPass = await waitForEvent(runId, 'backfill.final_pass', 60_000);
      expect(finalPass.payload).toMatchObject({ stepId: 'fill', rowsDone: 4_999, lockTimeoutMs: 60_000 });
      // The walk went round the held row; the final pass now waits for it.
      expect((await pool('locked').query(`select slug from public.orgs where id = 10`)).rows[0].slug).toBeNull();
      await waitFor('the final pass waiting for the held row', async () => {
        const { rows } = await pool('locked').query(`select count(*)::int as n from pg_stat_activity where application_name = $1 and wait_event_type = 'Lock'`, [runApplicationName(runId)]);
        return rows[0].n === 1;
      });
      await holder.query('commit');

      const done = await driving;
      expect(done).toMatchObject({ state: 'applied', outcome: { verified: true } });
      expect((await eventsOf(runId, 'backfill.completed'))[0]!.payload).toMatchObject({ rowsDone: 5_000, finalPassRows: 1 });
      const { rows } = await pool('locked').query(`select count(*) filter (where slug is null)::int as missing, max(slug) filter (where id = 10) as held from public.orgs`);
      expect(rows[0]).toEqual({ missing: 0, held: 'org-10' });
    } finally {
      await holder.end();
    }
  });
});
