/**
 * Resumable plans (docs/decisions/027): whether a run resumes an earlier run's apply, and where.
 *
 * A run of a plan that says `resumable: true` resumes when the target's ledger says, in its newest
 * row for the plan, that an earlier run of the same checksum on this target stopped part-way
 * (an apply row 'partial'), and that run is over (failed, cancelled or interrupted). It then
 * starts at the first apply step the row does not record as completed: the steps before it are
 * skipped ('step.skipped', and in the ledger as skipped because completed, by which run), and so
 * are the pre-checks that say `unless_resuming: true`. A different checksum never resumes: the
 * plan changed, so what its steps did is not known to be what they do now.
 *
 * The target's ledger is the witness (it is written in the same transaction as a transactional
 * step, and before and after each step that commits as it goes); the store only says whether the
 * run that wrote it is over. One function decides; the gates, the pre-checks and the apply ask it.
 */
import { isActiveState, type RunState } from '../../db/run-lifecycle';
import type { CheckResult } from '../checks/run-checks.server';
import { expectationOf } from '../checks/object-expectation';
import type { Check } from '../plans/plan-schema';
import { findRun, type RunRecord } from '../runs/run-store.server';
import { readPlanLedgerState } from '../targets/ledger.server';
import type { EngineDeps, Gate } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';

/** A completed step of the earlier apply, as its ledger row recorded it. */
export interface CompletedStep {
  stepId: string;
  title: string;
  /** The run that completed it (an earlier resumed run's entries keep their own). */
  completedBy: string;
  /** The ledger entry, carried into this run's ledger rows. */
  entry: Record<string, unknown>;
}

export type ResumeDecision =
  | { resuming: false; resumable: boolean; reason: string; problem?: string }
  | {
      resuming: true;
      resumable: true;
      reason: string;
      previousRunId: string;
      previousState: RunState;
      /** When the earlier run's ledger row was written. */
      ledgerAt: string;
      /** The apply steps before the first incomplete one, skipped. */
      skippedSteps: CompletedStep[];
      /** The first step that runs (absent when every step completed). */
      resumeAt?: { stepId: string; title: string; partly?: string };
      /** Pre-checks with unless_resuming: true, skipped. */
      skippedPrechecks: string[];
    };

const RESUMES_AFTER: readonly RunState[] = ['failed', 'cancelled', 'interrupted'];

type LedgerStep = { stepId?: unknown; complete?: unknown; statementsCompleted?: unknown; statementCount?: unknown; completedBy?: unknown; kind?: unknown };

/** Whether `run` (an execute run of a resumable plan) resumes an earlier run's apply on its target, and where. */
export async function decideResume(deps: Pick<EngineDeps, 'store' | 'targets'>, run: RunRecord): Promise<ResumeDecision> {
  const { plan } = thawPlan(run.frozenPlan);
  if (!plan.resumable) return { resuming: false, resumable: false, reason: 'the plan is not resumable' };
  if (run.kind !== 'execute') return { resuming: false, resumable: true, reason: 'a rehearsal never resumes' };
  let history;
  try {
    history = (await readPlanLedgerState(deps.targets.pool(run.target), run.planId, { equivalentTo: plan.equivalent_to })).history;
  } catch (error) {
    const problem = `cannot read the ledger of ${run.target}: ${(error as Error).message}`;
    return { resuming: false, resumable: true, reason: problem, problem };
  }
  const fromStart = (why: string): ResumeDecision => ({ resuming: false, resumable: true, reason: `every step runs from the first: ${why}` });
  const newest = history.find((entry) => entry.runId !== run.id);
  if (!newest) return fromStart(`the ledger of ${run.target} has no row of this plan`);
  if (newest.planId !== run.planId) return fromStart(`the newest ledger row is of the equivalent plan ${newest.planId} (run ${newest.runId})`);
  if (newest.action !== 'apply' || newest.outcome !== 'partial') {
    return fromStart(`the newest ledger row (run ${newest.runId}) says ${newest.action === 'apply' ? 'applied' : newest.outcome === 'partial' ? 'a rollback stopped part-way' : 'rolled back'}, not an apply that stopped part-way`);
  }
  if (newest.checksum !== run.planChecksum) {
    return fromStart(
      `run ${newest.runId} stopped part-way under checksum ${newest.checksum.slice(0, 12)}, and this run's plan is ${run.planChecksum.slice(0, 12)}: a different checksum never resumes (its steps may do something else now)`,
    );
  }
  const previous = await findRun(deps.store.pool, newest.runId);
  if (!previous) return fromStart(`run ${newest.runId}, which wrote the ledger row, is not in this Runsheet's store`);
  if (previous.target !== run.target || previous.kind !== 'execute') return fromStart(`run ${newest.runId} is not an execute run on ${run.target}`);
  if (isActiveState(previous.state)) return fromStart(`run ${previous.id} is still ${previous.state}`);
  if (!RESUMES_AFTER.includes(previous.state)) return fromStart(`run ${previous.id} is ${previous.state}; only a failed, cancelled or interrupted apply is resumed`);

  const recorded = new Map<string, LedgerStep>();
  for (const entry of Array.isArray(newest.stepsCompleted) ? (newest.stepsCompleted as LedgerStep[]) : []) {
    if (typeof entry?.stepId === 'string') recorded.set(entry.stepId, entry);
  }
  const skippedSteps: CompletedStep[] = [];
  let resumeAt: { stepId: string; title: string; partly?: string } | undefined;
  for (const step of plan.apply) {
    const entry = recorded.get(step.id);
    if (entry?.complete === true) {
      skippedSteps.push({ stepId: step.id, title: step.title, completedBy: typeof entry.completedBy === 'string' ? entry.completedBy : previous.id, entry: entry as Record<string, unknown> });
      continue;
    }
    const partly =
      entry && typeof entry.statementsCompleted === 'number' && typeof entry.statementCount === 'number'
        ? `run ${previous.id} completed ${entry.statementsCompleted} of its ${entry.statementCount} statement(s)${step.kind === 'sql' ? '; it runs again from its first statement' : `; the ${step.kind} step goes on from what it left`}`
        : undefined;
    resumeAt = { stepId: step.id, title: step.title, ...(partly ? { partly } : {}) };
    break;
  }
  const skippedPrechecks = plan.prechecks.filter((check) => check.unless_resuming === true).map((check) => check.id);
  const position = (stepId: string) => plan.apply.findIndex((step) => step.id === stepId) + 1;
  const skipped = skippedSteps.length > 0 ? `skips step(s) ${skippedSteps.map((step) => `${position(step.stepId)} ${step.stepId}`).join(', ')} (completed by run ${[...new Set(skippedSteps.map((step) => step.completedBy))].join(', ')})` : 'skips no step';
  const at = resumeAt ? `starts at step ${position(resumeAt.stepId)} ${resumeAt.stepId}${resumeAt.partly ? ` (${resumeAt.partly})` : ''}` : 'every step completed: only the verification runs';
  const checks = skippedPrechecks.length > 0 ? `; skips pre-check(s) ${skippedPrechecks.join(', ')} (unless_resuming)` : '';
  return {
    resuming: true,
    resumable: true,
    reason: `resumes run ${previous.id} (${previous.state}, same checksum; the ledger of ${run.target} at ${newest.at}): ${at}, ${skipped}${checks}`,
    previousRunId: previous.id,
    previousState: previous.state,
    ledgerAt: newest.at,
    skippedSteps,
    ...(resumeAt ? { resumeAt } : {}),
    skippedPrechecks,
  };
}

/** The go/no-go line of a resumable plan: where the apply starts, what is skipped and why. Open only when the ledger cannot be read. */
export function resumeGate(decision: ResumeDecision): Gate | undefined {
  if (!decision.resumable) return undefined;
  return {
    id: 'resume',
    label: decision.resuming ? `Resumes the apply of run ${decision.previousRunId} (resumable plan)` : 'Starts the apply at its first step (resumable plan)',
    passed: decision.resuming || decision.problem === undefined,
    detail: decision.reason,
  };
}

/** The pre-checks a run skips because it resumes (none when it does not). */
export const prechecksSkippedBy = (decision: ResumeDecision): ReadonlySet<string> => new Set(decision.resuming ? decision.skippedPrechecks : []);

/**
 * A pre-check phase of a resuming run: the checks that say unless_resuming are not run, and their
 * results say why (skipped); the others run. Results come back in the plan's order.
 */
export async function runPrechecksResuming(decision: ResumeDecision, checks: Check[], run: (checks: Check[]) => Promise<CheckResult[]>): Promise<CheckResult[]> {
  const skip = prechecksSkippedBy(decision);
  if (skip.size === 0 || !decision.resuming) return run(checks);
  const ran = new Map((await run(checks.filter((check) => !skip.has(check.id)))).map((result) => [result.checkId, result]));
  const reason = `skipped: this run resumes the apply of run ${decision.previousRunId}${decision.resumeAt ? ` at step ${decision.resumeAt.stepId}` : ''}, and the check says unless_resuming (what it proves absent may be what that run left)`;
  return checks.map(
    (check) =>
      ran.get(check.id) ?? {
        checkId: check.id,
        title: check.title,
        kind: check.kind,
        phase: 'pre',
        passed: false,
        skipped: true,
        expected: expectationOf(check),
        actual: null,
        sql: '',
        durationMs: 0,
        ranAt: new Date().toISOString(),
        reason,
      },
  );
}

/** What runSteps needs to skip the completed steps of a resumed apply. */
export interface ResumeSkips {
  previousRunId: string;
  steps: ReadonlyMap<string, CompletedStep>;
  /** The first step that runs, in words (for the log). */
  resumesAt: string;
}

export const resumeSkipsOf = (decision: ResumeDecision, target: string): ResumeSkips | undefined =>
  decision.resuming
    ? {
        previousRunId: decision.previousRunId,
        steps: new Map(decision.skippedSteps.map((step) => [step.stepId, step])),
        resumesAt: `${decision.resumeAt ? `resumes at step ${decision.resumeAt.stepId}` : 'every step completed earlier'} (the ledger of ${target} at ${decision.ledgerAt})`,
      }
    : undefined;
