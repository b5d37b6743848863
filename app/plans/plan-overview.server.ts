/**
 * What the plans list shows: every plan (valid or not) and, on every target, its state — read
 * from the target's own ledger, cross-checked with the last schema facts read from the target.
 * One unreachable target or one bad plan never takes the list down: each cell carries its error.
 */
import type { Store } from '../runtime/store.server';
import type { TargetRegistry } from '../targets/target-registry.server';
import { withTimeout } from '../runtime/with-timeout';
import { getCachedFacts, refreshFacts, type CachedFacts } from '../targets/fact-cache.server';
import { readPlanLedgerState, type PlanLedgerState } from '../targets/ledger.server';
import { latestRunActivity } from '../runs/run-store.server';
import { explainPlanStateOnTarget, readSchemaFacts, type SchemaFacts } from '../targets/schema-facts.server';
import { readTargetFacts, type TargetFacts } from '../targets/target-facts.server';
import type { Target } from '../targets/targets.server';
import { loadPlans, type PlanError, type ValidPlan } from './load-plans.server';

export type OverviewDeps = { store: Pick<Store, 'pool' | 'db'>; plansDir: string; targets: TargetRegistry };

export interface PlanOnTarget {
  target: string;
  targetLabel: string;
  /** not_applied | applied | rolled_back | drift | unknown (target unreachable). */
  state: string;
  reason: string;
  ledger?: Pick<PlanLedgerState, 'state' | 'runId' | 'checksum' | 'by' | 'at' | 'ledgerPresent'>;
  /** Age of the schema facts the state was cross-checked with; undefined: not read yet. */
  factsAgeMs?: number;
  /** When those facts were read (the store's clock): always after the latest run or ledger change when judged. */
  factsReadAt?: string;
  /** The facts are older than the latest change: shown as "re-reading" while a background refresh runs. */
  rereading: boolean;
  error?: string;
}

export type PlanOverview =
  | { ok: true; id: string; title: string; checksum: string; lintCount: number; lintErrors: number; underReview: boolean; targets: PlanOnTarget[] }
  | { ok: false; id: string; errors: PlanError[] };

const LEDGER_READ_TIMEOUT_MS = 3_000;

export async function listPlanOverviews(deps: OverviewDeps): Promise<PlanOverview[]> {
  const [plans, targets] = [await loadPlans(deps.plansDir), deps.targets.list()];
  return Promise.all(
    plans.map(async (loaded): Promise<PlanOverview> => {
      if (!loaded.ok) return { ok: false, id: loaded.id, errors: loaded.errors };
      return {
        ok: true,
        id: loaded.id,
        title: loaded.plan.title,
        checksum: loaded.checksum,
        lintCount: loaded.lint.length,
        lintErrors: loaded.lint.filter((finding) => finding.level === 'error').length,
        underReview: loaded.plan.review === 'pending',
        targets: await Promise.all(targets.map((target) => planOnTarget(deps, loaded, target))),
      };
    }),
  );
}

/** The ledger is read live (one indexed query); the schema facts come from the last refresh. */
export async function planOnTarget(deps: OverviewDeps, plan: ValidPlan, target: Target): Promise<PlanOnTarget> {
  const base = { target: target.name, targetLabel: target.label };
  let ledger: PlanLedgerState;
  try {
    ledger = await withTimeout(readPlanLedgerState(deps.targets.pool(target.name), plan.id, { equivalentTo: plan.plan.equivalent_to }), LEDGER_READ_TIMEOUT_MS);
  } catch (error) {
    return { ...base, state: 'unknown', reason: 'the target could not be read', error: (error as Error).message, rereading: false };
  }
  const ledgerSummary = { state: ledger.state, runId: ledger.runId, checksum: ledger.checksum, by: ledger.by, at: ledger.at, ledgerPresent: ledger.ledgerPresent };
  const judged = await judgePlanOnTarget(deps, plan, target, ledger);
  return { ...base, ...judged, ledger: ledgerSummary };
}

export interface PlanJudgement {
  /** not_applied | applied | rolled_back | partial | drift. */
  state: string;
  reason: string;
  rereading: boolean;
  factsAgeMs?: number;
  factsReadAt?: string;
  schemaFacts?: CachedFacts<SchemaFacts>;
}

/**
 * A plan's state on a target: the ledger, cross-checked with schema facts only when those were
 * read after the latest run or ledger change there (older facts describe the target as it was:
 * they are read again in the background, and the state meanwhile comes from the ledger alone). A
 * partial apply of Runsheet's own is said as such (what completed, what is left, what to do),
 * never as drift; a state decided by a plan this one is equivalent_to names that plan.
 */
export async function judgePlanOnTarget(deps: OverviewDeps, plan: ValidPlan, target: Target, ledger: PlanLedgerState): Promise<PlanJudgement> {
  const planIds = [plan.id, ...plan.plan.equivalent_to];
  const [cached, runActivity] = await Promise.all([
    getCachedFacts<SchemaFacts>(deps.store.db, { target: target.name, planId: plan.id, kind: 'schema' }),
    latestRunActivity(deps.store.db, { target: target.name, planIds }),
  ]);
  const latestChange = Math.max(runActivity?.getTime() ?? 0, ledger.history[0] ? Date.parse(ledger.history[0].at) : 0);
  // When the reading began: facts computed across a change may have read the target before it.
  const readAt = cached ? cached.computedAt.getTime() - cached.durationMs : undefined;
  const via = ledger.planId && ledger.planId !== plan.id ? ` (recorded by plan ${ledger.planId}, which this plan is equivalent to)` : '';
  const partial = ledger.partial ? partialApplyInWords(ledger.partial, plan.plan.resumable) : undefined;

  if (!cached || readAt! < latestChange) {
    void refreshPlanFacts(deps, plan, target).catch(() => {});
    const why = cached ? 'the schema facts are older than the latest change on the target and are being read again' : 'schema facts not read yet; reading them now';
    return {
      state: partial ? 'partial' : ledger.state,
      reason: `${partial ?? `from the ledger${via}`}; ${why}`,
      rereading: true,
      ...(cached ? { factsAgeMs: cached.ageMs } : {}),
    };
  }
  const judged = partial ? { state: 'partial', reason: partial } : explainPlanStateOnTarget(ledger, cached.facts);
  return {
    state: judged.state,
    reason: `${judged.reason}${via}`,
    rereading: false,
    factsAgeMs: cached.ageMs,
    factsReadAt: new Date(readAt!).toISOString(),
    schemaFacts: cached,
  };
}

/** Runsheet's own partial apply, from its ledger row: which steps completed, what is left, what to do. */
function partialApplyInWords(row: NonNullable<PlanLedgerState['partial']>, resumable: boolean): string {
  const steps = Array.isArray(row.stepsCompleted) ? (row.stepsCompleted as { stepId?: string; complete?: boolean; kind?: string }[]) : [];
  const done = steps.filter((step) => step.complete !== false).map((step) => step.stepId);
  const stopped = steps.filter((step) => step.complete === false).map((step) => `${step.stepId}${step.kind === 'batched_backfill' ? ' (a backfill: a new attempt resumes after its last committed key)' : ''}`);
  const what = row.action === 'rollback' ? 'rollback' : 'apply';
  return (
    `a partial ${what} by Runsheet: run ${row.runId.slice(0, 8)} (${row.by}, ${row.at}) ` +
    `${done.length > 0 ? `completed ${done.join(', ')}` : 'completed no step'}${stopped.length > 0 ? `, stopped in ${stopped.join(', ')}` : ''}; ` +
    (what === 'apply'
      ? `roll it back, or start a new attempt that goes on from there${resumable ? ' (the plan is resumable: under the same checksum it starts at the first step not completed; docs/decisions/027)' : ''}`
      : 'try the rollback again')
  );
}

/** Re-reads the plan's schema facts (with the backfill count) and the target's facts, and stores them. */
export async function refreshPlanFacts(deps: OverviewDeps, plan: ValidPlan, target: Target): Promise<{ schema: SchemaFacts; target: TargetFacts }> {
  const pool = deps.targets.pool(target.name);
  const [schema, targetFacts] = await Promise.all([
    refreshFacts(deps.store.db, { target: target.name, planId: plan.id, kind: 'schema' }, () => readSchemaFacts(pool, plan.plan.objects)),
    refreshFacts(deps.store.db, { target: target.name, kind: 'target' }, () => readTargetFacts(pool)),
  ]);
  return { schema: schema.facts, target: targetFacts.facts };
}
