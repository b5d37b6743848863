/**
 * Before a command runs checks on a target whose API has no known address (the embedded sandbox
 * with no running server: app/boot/server-record.server.ts), it stops if any of those checks
 * calls the API: exit 3 with what to do, before anything runs, rather than an apply whose
 * post-execution checks then fail, or a guess at where the API might be.
 */
import type { Runtime } from '../app/boot/runtime.server';
import { thawPlan } from '../app/engine/frozen-plan.server';
import { checksOfPhase, type CheckPhase, type Plan } from '../app/plans/plan-schema';
import type { RunRecord } from '../app/runs/run-store.server';
import { RunsheetError } from '../app/runtime/errors';

export function requireTargetApiForPlan(runtime: Pick<Runtime, 'targets'>, input: { targetName: string; planId: string; plan: Plan }, phases: CheckPhase[]): void {
  const target = runtime.targets.get(input.targetName);
  if (target.apiUrl || !target.apiProblem) return;
  const http = phases.flatMap((phase) => checksOfPhase(input.plan, phase)).filter((check) => check.kind === 'http');
  if (http.length === 0) return;
  throw new RunsheetError(
    'configuration',
    `${target.apiProblem}\nNothing was run: ${input.planId} has http checks on ${target.name} (${http.map((check) => check.id).join(', ')}).`,
  );
}

/** The same, for the plan a run froze. */
export function requireTargetApi(runtime: Pick<Runtime, 'targets'>, run: Pick<RunRecord, 'target' | 'planId' | 'frozenPlan'>, phases: CheckPhase[]): void {
  requireTargetApiForPlan(runtime, { targetName: run.target, planId: run.planId, plan: thawPlan(run.frozenPlan).plan }, phases);
}
