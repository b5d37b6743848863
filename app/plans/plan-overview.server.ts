/**
 * What the plans list shows: every plan (valid or not) and, on every target, its state — read
 * from the target's own ledger, cross-checked with the last schema facts read from the target.
 * One unreachable target or one bad plan never takes the list down: each cell carries its error.
 */
import type { Store } from '../runtime/store.server';
import type { TargetRegistry } from '../targets/target-registry.server';
import { withTimeout } from '../runtime/with-timeout';
import { getCachedFacts, refreshFacts } from '../targets/fact-cache.server';
import { readPlanLedgerState, type PlanLedgerState } from '../targets/ledger.server';
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
  error?: string;
}

export type PlanOverview =
  | { ok: true; id: string; title: string; checksum: string; lintCount: number; lintErrors: number; targets: PlanOnTarget[] }
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
    return { ...base, state: 'unknown', reason: 'the target could not be read', error: (error as Error).message };
  }
  const ledgerSummary = { state: ledger.state, runId: ledger.runId, checksum: ledger.checksum, by: ledger.by, at: ledger.at, ledgerPresent: ledger.ledgerPresent };
  const cached = await getCachedFacts<SchemaFacts>(deps.store.db, { target: target.name, planId: plan.id, kind: 'schema' });
  if (!cached) {
    // First sight of this plan on this target: read the facts in the background for the next view.
    void refreshPlanFacts(deps, plan, target).catch(() => {});
    return { ...base, state: ledger.state, reason: 'from the ledger; schema facts not read yet', ledger: ledgerSummary };
  }
  const { state, reason } = explainPlanStateOnTarget(ledger, cached.facts);
  return { ...base, state, reason, ledger: ledgerSummary, factsAgeMs: cached.ageMs };
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
