/**
 * A finished rehearsal run of a plan whose log holds exactly `events` events, for the report page's
 * load test. Its log is what a batched backfill leaves: phases, a step, one 'statement.completed'
 * per batch, check results, notes. Written through the product's own appendRunEvent (hash-chained,
 * in one store transaction) and signed with signCheckpoint, so the report verifies it as it would
 * any run. A rehearsal, so that it never becomes the plan page's working run (an execute run would).
 */
import type { CheckResult } from '../app/checks/run-checks.server';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { jsonPayload, transitionRun } from '../app/engine/run-store.server';
import { createRun } from '../app/engine/runs.server';
import { appendRunEvent, inStoreTransaction } from '../app/runs/run-log.server';
import { signCheckpoint } from '../app/runs/signing.server';

export async function createReportRun(
  deps: EngineDeps,
  input: { planId: string; actor: EngineActor; events: number; checkResults: { phase: string; results: CheckResult[] }[] },
): Promise<{ runId: string; events: number; writeMs: number }> {
  const { actor } = input;
  const started = performance.now();
  const run = await createRun(deps, { planId: input.planId, target: 'sandbox', kind: 'rehearsal', actor });
  // createRun appended 'run.created' (and 'state.changed' when the run is ready at once); the
  // closing transition appends one more 'state.changed'.
  const { rows: opened } = await deps.store.pool.query<{ n: number }>('select count(*)::int as n from run_events where run_id = $1', [run.id]);
  const toAppend = input.events - opened[0]!.n - 1;
  if (toAppend < 10) throw new Error(`a report run needs at least 12 events, asked for ${input.events}`);
  const append = (client: Parameters<typeof appendRunEvent>[0], type: string, payload: Record<string, unknown>) =>
    appendRunEvent(client, { runId: run.id, actor: actor.email, role: actor.role, type, payload: jsonPayload(payload) });

  await inStoreTransaction(deps.store.pool, async (client) => {
    let written = 0;
    const checks = (phase: string) => {
      const results = input.checkResults.find((entry) => entry.phase === phase)?.results ?? [];
      const failed = results.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);
      return {
        phase,
        passed: failed.length === 0,
        failed,
        skipped: results.filter((result) => result.skipped).map((result) => result.checkId),
        results: results.map((result) => ({ ...result, error: result.error ?? null, reason: result.reason ?? null })),
      };
    };
    const fixed: [string, Record<string, unknown>][] = [
      ['rehearse.started', { note: 'bench: a synthetic rehearsal of a batched backfill' }],
      ['phase.started', { phase: 'snapshot', plannedMs: 30_000 }],
      ['checks.ran', checks('snapshot')],
      ['phase.completed', { phase: 'snapshot', ok: true, plannedMs: 30_000, actualMs: 900 }],
      ['phase.started', { phase: 'apply', plannedMs: 120_000 }],
      ['step.started', { stepId: 'backfill', title: 'Backfill in batches', file: 'backfill.sql', transactional: false, mode: 'own' }],
    ];
    const closing: [string, Record<string, unknown>][] = [
      ['step.completed', { stepId: 'backfill', ok: true }],
      ['phase.completed', { phase: 'apply', ok: true, plannedMs: 120_000, actualMs: 95_000 }],
      ['phase.started', { phase: 'verification', plannedMs: 30_000 }],
      ['checks.ran', checks('verify')],
      ['phase.completed', { phase: 'verification', ok: true, plannedMs: 30_000, actualMs: 1_200 }],
      ['phase.started', { phase: 'post_execution', plannedMs: 120_000 }],
      ['checks.ran', checks('post')],
      ['phase.completed', { phase: 'post_execution', ok: true, plannedMs: 120_000, actualMs: 2_500 }],
    ];
    for (const [type, payload] of fixed) (await append(client, type, payload), written++);
    const batches = toAppend - fixed.length - closing.length;
    for (let batch = 0; batch < batches; batch++) {
      if (batch % 500 === 499) {
        await append(client, 'note.added', { text: `Batch ${batch + 1}: replication lag checked, under 1 s.` });
      } else {
        await append(client, 'statement.completed', {
          stepId: 'backfill',
          index: batch,
          line: 12,
          endLine: 24,
          command: 'UPDATE',
          durationMs: 40 + (batch % 17),
          rowCount: 1000,
          notices: [],
          startedAt: new Date(Date.UTC(2025, 0, 1, 0, 0, 0, batch * 95)).toISOString(),
        });
      }
      written++;
    }
    for (const [type, payload] of closing) (await append(client, type, payload), written++);
    if (written !== toAppend) throw new Error(`wrote ${written} events, meant ${toAppend}`);
  });
  const closed = await transitionRun(deps.store, {
    runId: run.id,
    from: ['draft', 'ready'],
    to: 'rehearsed',
    reason: 'bench: synthetic rehearsal finished',
    actor: actor.email,
    role: actor.role,
    set: { startedAt: 'now', finishedAt: 'now', executedBy: actor.email },
  });
  if (!closed.changed) throw new Error(`the report run ${run.id} could not be closed (it is ${closed.state})`);
  await signCheckpoint(deps.store.pool, run.id, deps.signingKeyPem);
  const { rows } = await deps.store.pool.query<{ n: number }>('select count(*)::int as n from run_events where run_id = $1', [run.id]);
  return { runId: run.id, events: rows[0]!.n, writeMs: Math.round(performance.now() - started) };
}
