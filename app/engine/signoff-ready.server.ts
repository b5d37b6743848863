/**
 * 'signoff.ready' (docs/decisions/033): on a target that requires a sign-off, the moment every
 * required prerequisite is ticked and every pre-check has passed, the run says it waits for a
 * second person, once. Judged inside the transaction of the tick or the pre-check results that may
 * complete it, under the run log's lock, so two completions at once append it once; the outbox
 * row that tells the target's channels is inserted with it (run-log.server.ts).
 */
import type pg from 'pg';
import { isPreparingState } from '../../db/run-lifecycle';
import { latestRunPhaseResults } from '../checks/run-checks.server';
import { eventsOf } from '../runs/run-events';
import { appendRunEvent, lockRunLog, readRunEvents } from '../runs/run-log.server';
import type { RunRecord } from '../runs/run-store.server';
import type { EngineDeps } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';
import { PREPARATION_EVENT_TYPES, prechecksGate, prerequisitesGate } from './gates.server';
import { decideResume, prechecksSkippedBy } from './resume.server';

export async function appendSignoffReadyIfDue(deps: EngineDeps, client: pg.ClientBase, run: RunRecord): Promise<void> {
  if (run.kind !== 'execute' || !isPreparingState(run.state)) return;
  if (!deps.targets.find(run.target)?.rules.require_signoff) return;
  await lockRunLog(client, run.id);
  const events = await readRunEvents(client, run.id, { types: [...PREPARATION_EVENT_TYPES, 'signoff.ready'] });
  // Once per run; and a run someone already signed off is not waiting for a sign-off.
  if (eventsOf(events, 'signoff.ready', 'signoff').length > 0) return;
  const { plan } = thawPlan(run.frozenPlan);
  const prerequisites = prerequisitesGate(plan, events);
  if (!prerequisites.passed) return;
  const rows = await latestRunPhaseResults(deps.store.db, { runId: run.id, phase: 'pre' });
  const skipped = plan.resumable ? prechecksSkippedBy(await decideResume(deps, run)) : new Set<string>();
  if (!prechecksGate(plan, rows, skipped).passed) return;
  await appendRunEvent(client, {
    runId: run.id,
    actor: 'system',
    type: 'signoff.ready',
    payload: {
      checksum: run.planChecksum,
      prerequisites: plan.prerequisites.filter((item) => item.required).map((item) => item.id),
      prechecks: plan.prechecks.filter((check) => !skipped.has(check.id)).map((check) => check.id),
    },
  });
}
