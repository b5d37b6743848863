/**
 * How long a cancel takes, from request to rolled back: plan 008 is executed on the sandbox while
 * another session holds SHARE on platform.users (the snapshot reads, the apply's ALTER TABLE
 * waits). When the engine logs that the step waits for that lock, cancelRun is called; the figure
 * is the time from that call until executeRun returns with the run cancelled (its transaction
 * rolled back, the target's lock released, the final state written).
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { cancelRun, executeRun } from '../app/engine/engine.server';
import type { EngineActor, EngineDeps } from '../app/engine/engine-deps.server';
import { thawPlan } from '../app/engine/frozen-plan.server';
import { openWorkingRun, runRunChecks, tickPrerequisite } from '../app/engine/runs.server';
import { round } from './stats';

export interface CancelMeasurement {
  runId: string;
  state: string;
  /** cancelRun called → executeRun returned. */
  requestToEndMs: number;
  /** How long the step had waited for the lock when the cancel was asked. */
  waitedBeforeCancelMs: number;
}

export async function measureCancel(deps: EngineDeps, input: { planId: string; actor: EngineActor; targetUrl: string; log(line: string): void }): Promise<CancelMeasurement> {
  const { actor } = input;
  const { run } = await openWorkingRun(deps, { planId: input.planId, target: 'sandbox', kind: 'execute', actor, newAttempt: true });
  const { plan } = thawPlan(run.frozenPlan);
  for (const item of plan.prerequisites.filter((candidate) => candidate.required)) {
    await tickPrerequisite(deps, { runId: run.id, itemId: item.id, ticked: true, actor });
  }
  await runRunChecks(deps, { runId: run.id, phase: 'pre', actor });

  const holder = new pg.Client({ connectionString: input.targetUrl, application_name: 'bench-lock-holder' });
  await holder.connect();
  await holder.query('begin');
  await holder.query('lock table platform.users in share mode');
  try {
    let asked: number | undefined;
    let waitedBeforeCancelMs = 0;
    let cancelling: Promise<unknown> | undefined;
    const started = executeRun(deps, {
      runId: run.id,
      actor,
      onEvent: (event) => {
        if (asked !== undefined || event.type !== 'wait.started' || !event.payload.waitingFor.startsWith('step ')) return;
        waitedBeforeCancelMs = Math.max(0, Date.parse(event.at) - Date.parse(event.payload.since));
        asked = performance.now();
        cancelling = cancelRun(deps, { runId: run.id, actor, reason: 'bench: cancel timing' });
      },
    });
    const ended = await started;
    const endedAt = performance.now();
    await cancelling;
    if (asked === undefined) throw new Error(`the apply of run ${run.id} never waited for the lock (it ended ${ended.state})`);
    const measured = { runId: run.id, state: ended.state, requestToEndMs: round(endedAt - asked), waitedBeforeCancelMs: round(waitedBeforeCancelMs) };
    input.log(`  cancel of a blocked apply: ${measured.state} ${measured.requestToEndMs} ms after the request`);
    return measured;
  } finally {
    await holder.query('rollback').catch(() => {});
    await holder.end();
  }
}
