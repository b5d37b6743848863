/**
 * A run's frozen copy of its plan: the files and manifest captured when the run was created. A
 * run executes from this copy, never from the plans folder (which may have changed since).
 */
import { parseDocument } from 'yaml';
import type { FrozenPlan } from '../../db/schema/index';
import { PLAN_FILE, type ValidPlan } from '../plans/load-plans.server';
import { planChecksum } from '../plans/plan-checksum.server';
import { includedPlanPath, PlanSchema, withIncludedChecks, type Check, type Plan, type ProbeCheck, type SqlCheck, type Step } from '../plans/plan-schema';

export interface ThawedPlan {
  plan: Plan;
  checksum: string;
  files: FrozenPlan['files'];
  /** The SQL a sql or probe check runs, from the frozen files. */
  sqlOf(check: SqlCheck | ProbeCheck): string;
  /** The SQL file a step runs, from the frozen files. */
  stepSql(step: Step): string;
}

export function freezePlan(loaded: ValidPlan): FrozenPlan {
  return { manifest: loaded.manifest, files: loaded.files.map((file) => ({ path: file.path, sha256: file.sha256, content: file.content })) };
}

/** The plan a run froze, parsed again with the one PlanSchema (it was valid when frozen). */
/** A frozen plan never changes and its manifest names every byte of it: thaw each one once. */
const thawed = new Map<string, ThawedPlan>();
const THAWED_KEPT = 64;

export function thawPlan(frozen: FrozenPlan): ThawedPlan {
  const known = thawed.get(frozen.manifest);
  if (known) return known;
  const result = thawPlanNow(frozen);
  if (thawed.size >= THAWED_KEPT) thawed.delete(thawed.keys().next().value!);
  thawed.set(frozen.manifest, result);
  return result;
}

function thawPlanNow(frozen: FrozenPlan): ThawedPlan {
  const fileText = (path: string): string => {
    const file = frozen.files.find((candidate) => candidate.path === path);
    if (!file) throw new Error(`the run's frozen plan has no file ${path}`);
    return file.content;
  };
  const own = PlanSchema.parse(parseDocument(fileText(PLAN_FILE)).toJS());
  // The included plan's plan.yaml was frozen with the run (../<id>/plan.yaml in the manifest).
  const plan = own.include_checks_from
    ? withIncludedChecks(own, PlanSchema.parse(parseDocument(fileText(includedPlanPath(own.include_checks_from.plan, PLAN_FILE))).toJS()))
    : own;
  return {
    plan,
    checksum: planChecksum(frozen.manifest),
    files: frozen.files,
    sqlOf: (check) => (check.sql !== undefined ? check.sql : fileText(check.file!)),
    stepSql: (step) => fileText(step.file),
  };
}

export const isHttpCheck = (check: Check): boolean => check.kind === 'http';
