/**
 * Everything the plan page shows for one plan on one target, from what is already known: the
 * ledger (read live, one query), the last target and schema facts with their age, and the newest
 * result of every check. Nothing slow runs here; refreshing facts and running checks are actions.
 */
import { latestCheckResults } from '../checks/run-checks.server';
import type { CheckResultRow } from '../../db/schema/index';
import { getCachedFacts } from '../targets/fact-cache.server';
import { readPlanLedgerState, type PlanLedgerState } from '../targets/ledger.server';
import type { SchemaFacts } from '../targets/schema-facts.server';
import type { TargetFacts } from '../targets/target-facts.server';
import type { Target } from '../targets/targets.server';
import { withTimeout } from '../runtime/with-timeout';
import type { ValidPlan } from './load-plans.server';
import { judgePlanOnTarget, type OverviewDeps } from './plan-overview.server';

export interface Aged<T> {
  value: T;
  ageMs: number;
}

export interface LatestCheckResult {
  /** The stored result's id: a page fetches its SQL on demand by it. */
  id: number;
  checkId: string;
  phase: string;
  passed: boolean;
  skipped: boolean;
  expected: unknown;
  actual: unknown;
  sql: string | null;
  error: { sqlstate?: string; message: string; line?: number } | null;
  /** Why a skipped check was not run. */
  reason?: string | null;
  durationMs: number;
  ranAt: string;
  ageMs: number;
  ranBy: string | null;
  /** The plan checksum the check ran under; a result under another checksum is stale. */
  planChecksum: string;
}

export interface PlanOnTargetView {
  state: { state: string; reason: string; rereading: boolean; factsReadAt?: string };
  ledger?: PlanLedgerState;
  ledgerError?: string;
  targetFacts?: Aged<TargetFacts>;
  schemaFacts?: Aged<SchemaFacts>;
  results: Record<string, LatestCheckResult>;
}

export async function readPlanOnTarget(deps: OverviewDeps, plan: ValidPlan, target: Target): Promise<PlanOnTargetView> {
  const [ledgerRead, targetFacts, schemaFacts, rows] = await Promise.all([
    withTimeout(readPlanLedgerState(deps.targets.pool(target.name), plan.id, { equivalentTo: plan.plan.equivalent_to }), 3_000).then(
      (ledger) => ({ ledger }),
      (error: Error) => ({ error: error.message }),
    ),
    getCachedFacts<TargetFacts>(deps.store.db, { target: target.name, kind: 'target' }),
    getCachedFacts<SchemaFacts>(deps.store.db, { target: target.name, planId: plan.id, kind: 'schema' }),
    latestCheckResults(deps.store.db, { target: target.name, planId: plan.id }),
  ]);
  const now = Date.now();
  const results = Object.fromEntries(rows.map((row) => [row.checkId, toLatest(row, now)]));
  const aged = <T,>(cached: { facts: T; ageMs: number } | undefined) => (cached ? { value: cached.facts, ageMs: cached.ageMs } : undefined);

  if ('error' in ledgerRead) {
    return { state: { state: 'unknown', reason: 'the target could not be read', rereading: false }, ledgerError: ledgerRead.error, targetFacts: aged(targetFacts), schemaFacts: aged(schemaFacts), results };
  }
  const { state, reason, rereading, factsReadAt } = await judgePlanOnTarget(deps, plan, target, ledgerRead.ledger);
  return { state: { state, reason, rereading, ...(factsReadAt ? { factsReadAt } : {}) }, ledger: ledgerRead.ledger, targetFacts: aged(targetFacts), schemaFacts: aged(schemaFacts), results };
}

function toLatest(row: CheckResultRow, now: number): LatestCheckResult {
  return {
    id: row.id,
    checkId: row.checkId,
    phase: row.phase,
    passed: row.passed,
    skipped: row.skipped,
    expected: row.expected,
    actual: row.actual,
    sql: row.sqlText,
    error: row.error as LatestCheckResult['error'],
    ...(row.reason ? { reason: row.reason } : {}),
    durationMs: row.durationMs,
    ranAt: row.ranAt.toISOString(),
    ageMs: Math.max(0, now - row.ranAt.getTime()),
    ranBy: row.ranBy,
    planChecksum: row.planChecksum,
  };
}
