/**
 * Issue "The whole team watching one migration", item 2: the report's summary is computed from the
 * signed events once per checkpoint and stored with the last event and head it covers; the page
 * serves it while the log has not moved past it (and says so), and it equals what the events give
 * when summarised again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, rollbackRun } from '../../app/engine/engine.server';
import { addNote, getRun, openWorkingRun } from '../../app/engine/runs.server';
import { appendRunEvent, readRunEventsOfTypes } from '../../app/runs/run-log.server';
import { buildRunReport, REPORT_EVENT_TYPES } from '../../app/runs/run-report';
import { readReportSummary } from '../../app/runs/run-store.server';
import { readRunReport } from '../../app/web/report-page.server';
import { ENGINE_PLANS, ENGINEER, startEngineHarness, type EngineHarness } from './engine-harness';

let harness: EngineHarness;

beforeAll(async () => {
  harness = await startEngineHarness({ plansDir: ENGINE_PLANS, targets: [{ name: 'sandbox' }] });
});

afterAll(async () => {
  await harness?.close();
});

const recomputed = async (runId: string) =>
  buildRunReport(await readRunEventsOfTypes(harness.store.db, { runId, types: REPORT_EVENT_TYPES }), (await getRun(harness.deps, runId)).outcome);

describe('the stored report summary', () => {
  it('is what the signed events give, through the latest checkpoint, and the page serves it', async () => {
    const { run } = await openWorkingRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: ENGINEER });
    await executeRun(harness.deps, { runId: run.id, actor: ENGINEER });
    await rollbackRun(harness.deps, { runId: run.id, actor: ENGINEER });
    await addNote(harness.deps, { runId: run.id, actor: ENGINEER, text: 'rolled back on purpose: a drill' });

    const stored = (await readReportSummary(harness.store.db, run.id))!;
    const { rows } = await harness.store.pool.query<{ seq: number; head: string }>('select seq, head from run_checkpoints where run_id = $1 order by seq desc limit 1', [run.id]);
    expect(stored).toMatchObject({ throughSeq: rows[0]!.seq, head: rows[0]!.head });
    expect(JSON.parse(JSON.stringify(stored.summary))).toEqual(JSON.parse(JSON.stringify(await recomputed(run.id))));

    const page = (await readRunReport(harness.deps, { runId: run.id }))!;
    expect(page.summarySource).toEqual({ stored: true, throughSeq: rows[0]!.seq });
    expect(page.report.actions.map((action) => action.action)).toEqual(['execute', 'rollback']);
  });

  it('is not served once the log has moved past it: the page summarises the events as stored now', async () => {
    const { run } = await openWorkingRun(harness.deps, { planId: 'create-table', target: 'sandbox', kind: 'execute', actor: ENGINEER, newAttempt: true });
    await appendRunEvent(harness.store.pool, { runId: run.id, actor: ENGINEER.email, role: ENGINEER.role, type: 'note.added', payload: { text: 'not signed yet' } });
    const page = (await readRunReport(harness.deps, { runId: run.id }))!;
    expect(page.summarySource).toEqual({ stored: false });
    expect(page.report.issues.map((issue) => issue.text)).toContain('not signed yet');
  });
});
