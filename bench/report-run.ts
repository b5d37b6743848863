/**
 * A finished rehearsal run of a plan whose log holds exactly `events` events, for the report page's
 * load test. Its log is what a batched backfill leaves: phases, a step, one 'statement.completed'
 * per batch, check results, notes. Written through the product's own appendRunEvent (hash-chained,
 * in one store transaction) and closed as the engine closes a run (a full signed checkpoint and the stored report summary), so the report verifies and serves it as it would
 * any run. A rehearsal, so that it never becomes the plan page's working run (an execute run would).
 */
import type { CheckResult } from '../app/checks/run-checks.server';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { openWorkingRun } from '../app/engine/runs.server';
import type { RunEventInput } from '../app/runs/run-events';
import { appendRunEvent, inStoreTransaction } from '../app/runs/run-log.server';
import { transitionRun } from '../app/runs/run-store.server';
import { checkpointRun } from '../app/engine/checkpoints.server';

export async function createReportRun(
  deps: EngineDeps,
  input: { planId: string; actor: EngineActor; events: number; checkResults: { phase: string; results: CheckResult[] }[] },
): Promise<{ runId: string; events: number; writeMs: number }> {
  const { actor } = input;
  const started = performance.now();
  const { run } = await openWorkingRun(deps, { planId: input.planId, target: 'sandbox', kind: 'rehearsal', actor });
  const who = { actor: actor.email, role: actor.role };
  // A synthetic drive, with the states a real one passes through: ready → rehearsing → rehearsed.
  const target = { name: 'sandbox', url: 'postgres://bench@localhost/sandbox', serverVersion: '18', tls: false, currentUser: 'bench' };
  const rehearsing = await transitionRun(deps.store, {
    runId: run.id,
    from: ['draft', 'ready'],
    to: 'ready',
    reason: 'bench: every gate taken as passed',
    ...who,
  }).then(() =>
    transitionRun(deps.store, {
      runId: run.id,
      from: ['ready'],
      to: 'rehearsing',
      reason: 'bench: a synthetic rehearsal of a batched backfill',
      ...who,
      set: { startedAt: 'now', executedBy: actor.email },
      events: [{ type: 'rehearse.started', payload: { gates: [], target, targetBackendPid: 0, applicationName: `runsheet:run:${run.id}` } }],
    }),
  );
  if (!rehearsing.changed) throw new Error(`the report run ${run.id} could not start (it is ${rehearsing.state})`);
  // Opening and starting appended some events; the closing transition appends two more ('rehearse.finished', 'state.changed').
  const { rows: opened } = await deps.store.pool.query<{ n: number }>('select count(*)::int as n from run_events where run_id = $1', [run.id]);
  const toAppend = input.events - opened[0]!.n - 2;
  if (toAppend < 10) throw new Error(`a report run needs at least ${opened[0]!.n + 12} events, asked for ${input.events}`);
  const append = (client: Parameters<typeof appendRunEvent>[0], event: RunEventInput) => appendRunEvent(client, { runId: run.id, ...who, ...event });

  await inStoreTransaction(deps.store.pool, async (client) => {
    let written = 0;
    const checks = (phase: string): RunEventInput => {
      const results = input.checkResults.find((entry) => entry.phase === phase)?.results ?? [];
      const failed = results.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);
      return {
        type: 'checks.ran',
        payload: {
          phase,
          planChecksum: run.planChecksum,
          passed: failed.length === 0,
          failed,
          skipped: results.filter((result) => result.skipped).map((result) => result.checkId),
          results: results.map(({ phase: _phase, ...result }) => ({ ...result, error: result.error ?? null, reason: result.reason ?? null })),
        },
      };
    };
    const fixed: RunEventInput[] = [
      { type: 'phase.started', payload: { phase: 'snapshot', plannedMs: 30_000 } },
      checks('snapshot'),
      { type: 'phase.completed', payload: { phase: 'snapshot', ok: true, plannedMs: 30_000, actualMs: 900 } },
      { type: 'phase.started', payload: { phase: 'apply', plannedMs: 120_000 } },
      {
        type: 'step.started',
        payload: { stepId: 'backfill', title: 'Backfill in batches', file: 'backfill.sql', transactional: false, mode: 'own', statementCount: 1, lockTimeoutMs: 2_000, statementTimeoutMs: 60_000 },
      },
    ];
    const closing: RunEventInput[] = [
      {
        type: 'step.completed',
        payload: { stepId: 'backfill', title: 'Backfill in batches', transactional: false, ok: true, statementCount: 1, completedCount: 1, committed: true, durationMs: 95_000 },
      },
      { type: 'phase.completed', payload: { phase: 'apply', ok: true, plannedMs: 120_000, actualMs: 95_000 } },
      { type: 'phase.started', payload: { phase: 'verification', plannedMs: 30_000 } },
      checks('verify'),
      { type: 'phase.completed', payload: { phase: 'verification', ok: true, plannedMs: 30_000, actualMs: 1_200 } },
      { type: 'phase.started', payload: { phase: 'post_execution', plannedMs: 120_000 } },
      checks('post'),
      { type: 'phase.completed', payload: { phase: 'post_execution', ok: true, plannedMs: 120_000, actualMs: 2_500 } },
    ];
    for (const event of fixed) (await append(client, event), written++);
    const batches = toAppend - fixed.length - closing.length;
    for (let batch = 0; batch < batches; batch++) {
      if (batch % 500 === 499) {
        await append(client, { type: 'note.added', payload: { text: `Batch ${batch + 1}: replication lag checked, under 1 s.` } });
      } else {
        await append(client, {
          type: 'statement.completed',
          payload: {
            stepId: 'backfill',
            index: batch,
            line: 12,
            endLine: 24,
            command: 'UPDATE',
            durationMs: 40 + (batch % 17),
            rowCount: 1000,
            notices: [],
            startedAt: new Date(Date.UTC(2025, 0, 1, 0, 0, 0, batch * 95)).toISOString(),
          },
        });
      }
      written++;
    }
    for (const event of closing) (await append(client, event), written++);
    if (written !== toAppend) throw new Error(`wrote ${written} events, meant ${toAppend}`);
  });
  const outcome = { result: 'rehearsed' as const, rehearsal: { apply: { ok: true, steps: [] }, rolledBack: true } };
  const closed = await transitionRun(deps.store, {
    runId: run.id,
    from: ['rehearsing'],
    to: 'rehearsed',
    reason: 'bench: synthetic rehearsal finished',
    ...who,
    set: { finishedAt: 'now', outcome },
    events: [{ type: 'rehearse.finished', payload: { state: 'rehearsed', outcome } }],
  });
  if (!closed.changed) throw new Error(`the report run ${run.id} could not be closed (it is ${closed.state})`);
  // As the engine ends a run: a full signed checkpoint, and the report summary stored with it.
  await checkpointRun(deps, run.id, 'full');
  const { rows } = await deps.store.pool.query<{ n: number }>('select count(*)::int as n from run_events where run_id = $1', [run.id]);
  return { runId: run.id, events: rows[0]!.n, writeMs: Math.round(performance.now() - started) };
}
