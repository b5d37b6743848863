/**
 * Runs a plan's checks of one phase on one target and records the results: the one path the
 * command line (`runsheet check`) and the dashboard ("Run pre-checks") share.
 */
import { recordAudit } from '../audit/audit-log.server';
import { checkSql, loadPlan, type ValidPlan } from '../plans/load-plans.server';
import { formatPlanError } from '../plans/plan-error';
import { checksOfPhase, type CheckPhase } from '../plans/plan-schema';
import type { Store } from '../runtime/store.server';
import type { TargetRegistry } from '../targets/target-registry.server';
import type { Target } from '../targets/targets.server';
import { RunsheetError } from '../runtime/errors';
import { checkTargetOf, recordCheckResults, runChecks, type CheckResult } from './run-checks.server';

export type PlanChecksDeps = { store: Pick<Store, 'pool' | 'db'>; plansDir: string; targets: TargetRegistry };

/** A valid plan by id, or a named error that says what is wrong and what to do. */
export async function requireValidPlan(plansDir: string, planId: string): Promise<ValidPlan> {
  const loaded = await loadPlan(plansDir, planId);
  if (!loaded) throw new RunsheetError('not_found', `No plan "${planId}" under ${plansDir}. \`npx runsheet plans\` lists them.`);
  if (!loaded.ok) {
    const lines = loaded.errors.map((error) => `  ${formatPlanError(error)}`);
    throw new RunsheetError('invalid_plan', `Plan "${planId}" is not valid:\n${lines.join('\n')}`);
  }
  return loaded;
}

export interface PlanChecksOutcome {
  plan: ValidPlan;
  target: Target;
  phase: CheckPhase;
  results: CheckResult[];
}

export async function runPlanChecks(
  deps: PlanChecksDeps,
  request: { planId: string; targetName: string; phase: CheckPhase; ranBy: string; ranByRole?: string; runId?: string },
): Promise<PlanChecksOutcome> {
  const plan = await requireValidPlan(deps.plansDir, request.planId);
  const target = deps.targets.get(request.targetName);
  await assertTargetReachable(deps, target);
  const results = await runChecks({
    checks: checksOfPhase(plan.plan, request.phase),
    sqlOf: (check) => checkSql(plan, check),
    target: checkTargetOf(target, { pool: deps.targets.pool(target.name) }, plan.plan),
    phase: request.phase,
  });
  await recordCheckResults(
    deps.store.db,
    { target: target.name, planId: plan.id, planChecksum: plan.checksum, runId: request.runId, ranBy: request.ranBy },
    results,
  );
  // Inside a run, the run log records the checks; outside one, the audit log does.
  if (!request.runId) {
    const failed = results.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);
    await recordAudit(deps.store.db, {
      actor: request.ranBy,
      actorRole: request.ranByRole,
      action: 'checks.run',
      subject: `${plan.id}@${target.name}`,
      outcome: failed.length === 0 ? 'ok' : 'failed',
      detail: { phase: request.phase, checksum: plan.checksum, checks: results.length, failed },
    });
  }
  return { plan, target, phase: request.phase, results };
}

/** One round trip before a batch of checks, so "cannot reach the target" is said once, clearly. */
export async function assertTargetReachable(deps: PlanChecksDeps, target: Target): Promise<void> {
  try {
    await deps.targets.pool(target.name).query('select 1');
  } catch (error) {
    throw new RunsheetError('unavailable', `Cannot reach target "${target.name}" (${target.displayUrl}): ${(error as Error).message}`);
  }
}
