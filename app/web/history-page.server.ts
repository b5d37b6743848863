/**
 * The run history page's model and the report's event pages: what they load, read through the
 * runs data access and the run log.
 */
import type { EngineDeps } from '../engine/engine-deps.server';
import { MAX_EVENTS_PAGE, parseRunId, readRunEventsPage, type RunEventsPage } from '../runs/run-log.server';
import { listRunFacets, listRunHistory, runExists, type ListRunsInput } from '../runs/run-store.server';
import { isoOf } from '../runtime/format';

export { MAX_EVENTS_PAGE };

/** A page of the history, labelled with each target's name, times as ISO text. */
export async function loadRunHistory(runtime: EngineDeps, input: ListRunsInput) {
  const db = runtime.store.db;
  const [page, facets] = await Promise.all([listRunHistory(db, input), listRunFacets(db)]);
  const labels = new Map(runtime.targets.list().map((target) => [target.name, target.label]));
  return {
    total: page.total,
    facets,
    labels,
    runs: page.rows.map((run) => ({
      id: run.id,
      planId: run.planId,
      planChecksum: run.planChecksum,
      target: run.target,
      targetLabel: labels.get(run.target) ?? run.target,
      kind: run.kind,
      state: run.state,
      createdBy: run.createdBy,
      createdAt: isoOf(run.createdAt),
      executedBy: run.executedBy,
      signedOffBy: run.signedOffBy,
      startedAt: isoOf(run.startedAt),
      finishedAt: isoOf(run.finishedAt),
      durationMs: run.durationMs,
      reason: run.reason,
    })),
  };
}

/** One page of a run's log after a cursor; undefined when there is no such run. */
export async function loadRunEventsPage(runtime: EngineDeps, input: { runId: string; afterSeq: number; limit: number }): Promise<(RunEventsPage & { runId: string }) | undefined> {
  const runId = parseRunId(input.runId);
  if (!runId || !(await runExists(runtime.store.db, { runId }))) return undefined;
  return { runId, ...(await readRunEventsPage(runtime.store.db, { runId, afterSeq: input.afterSeq, limit: input.limit })) };
}
