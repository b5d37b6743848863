/**
 * What a rollback of a run would do, shown before anyone confirms it (the plan page's dialog and
 * `runsheet rollback`): the rollback steps' statements from the run's frozen plan, the objects of
 * the plan's `objects` section it removes, whether the rollback gate accepts the run now, and
 * whether the target wants its name typed (confirm_target_name).
 */
import { splitSql } from '../sql/split-sql.server';
import type { PlanObjects } from '../plans/plan-schema';
import type { RunRecord } from '../runs/run-store.server';
import type { EngineDeps, Gate } from './engine-deps.server';
import { rollbackGate } from './engine.server';
import { thawPlan, type ThawedPlan } from './frozen-plan.server';
import { stepKindOf } from '../steps/step-kinds.server';
import { objectsToKeep } from './run-steps.server';

export interface RollbackPreview {
  runId: string;
  target: string;
  /** The target's name must be typed to confirm (confirm_target_name). */
  confirmTargetName: boolean;
  gate: Gate;
  steps: { id: string; title: string; file: string; transactional: boolean; statements: { line: number; sql: string }[] }[];
  /** The plan's objects the rollback removes, in words ("column platform.users.active_org_id"). */
  removes: string[];
  /** What it copies to the target's runsheet_backup schema before dropping it (docs/decisions/031), in words. */
  keeps: string[];
}

export function objectsInWords(objects: PlanObjects): string[] {
  return [
    ...objects.columns.map((column) => `column ${column.schema}.${column.table}.${column.column}`),
    ...objects.constraints.map((constraint) => `constraint ${constraint.name} on ${constraint.schema}.${constraint.table}`),
    ...objects.indexes.map((index) => `index ${index.schema}.${index.name}`),
    ...objects.functions.map((fn) => `function ${fn.schema}.${fn.name}`),
    ...objects.tables.map((table) => `table ${table.schema}.${table.name}`),
  ];
}

export async function previewRollback(deps: Pick<EngineDeps, 'targets'>, run: RunRecord): Promise<RollbackPreview> {
  const thawed = thawPlan(run.frozenPlan);
  const { steps, keeps } = await rollbackStepsOf(thawed);
  return {
    runId: run.id,
    target: run.target,
    confirmTargetName: deps.targets.get(run.target).rules.confirm_target_name,
    gate: await rollbackGate(deps, run),
    steps,
    removes: objectsInWords(thawed.plan.objects),
    keeps,
  };
}

/** The rollback's statements and what it keeps depend on the frozen plan only: worked out once per thawed plan (thawPlan keeps one per checksum), not per page view. */
const rollbackStepsByPlan = new WeakMap<ThawedPlan, Promise<Pick<RollbackPreview, 'steps' | 'keeps'>>>();

function rollbackStepsOf(thawed: ThawedPlan): Promise<Pick<RollbackPreview, 'steps' | 'keeps'>> {
  let known = rollbackStepsByPlan.get(thawed);
  if (!known) {
    known = workOutRollbackSteps(thawed);
    rollbackStepsByPlan.set(thawed, known);
    known.catch(() => rollbackStepsByPlan.delete(thawed));
  }
  return known;
}

async function workOutRollbackSteps(thawed: ThawedPlan): Promise<Pick<RollbackPreview, 'steps' | 'keeps'>> {
  const steps: RollbackPreview['steps'] = [];
  const keeps: string[] = [];
  for (const step of thawed.plan.rollback.steps) {
    const sql = await stepKindOf(step).sqlToRun(step, thawed.stepSql(step));
    for (const object of await objectsToKeep(sql, thawed.plan.objects)) {
      keeps.push(object.kind === 'column' ? `column ${object.schema}.${object.table}.${object.column} (its values by primary key)` : `table ${object.schema}.${object.table} (every row)`);
    }
    const split = await splitSql(sql);
    steps.push({
      id: step.id,
      title: step.title,
      file: step.file,
      transactional: step.transactional,
      statements: split.ok ? split.statements.map((statement) => ({ line: statement.startLine, sql: statement.sql })) : [{ line: 0, sql }],
    });
  }
  return { steps, keeps };
}
