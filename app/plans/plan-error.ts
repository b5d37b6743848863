/**
 * A plan's validation error and where it is, written one way wherever it shows: the command line
 * (`plans`, `check`), the plans list and the plan page all name the file and its line.
 */

export interface PlanError {
  /** Relative to the plans folder's parent, e.g. "plans/bad/plan.yaml" or "plans/bad/apply.sql". */
  file: string;
  /** Where in plan.yaml, e.g. "prechecks[2].expect.type"; "" for the whole file. */
  path: string;
  /** What is wrong and what to do about it. */
  message: string;
  /** 1-based line in `file`, when known. */
  line?: number;
  column?: number;
}

/** "plans/bad/apply.sql:4", "plans/bad/plan.yaml:7:1", or the file alone when no line is known. */
export function planErrorLocation(error: Pick<PlanError, 'file' | 'line' | 'column'>): string {
  if (!error.line) return error.file;
  return `${error.file}:${error.line}${error.column ? `:${error.column}` : ''}`;
}

/** "plans/bad/apply.sql:4 apply[0].file: <message>", as the command line prints it. */
export function formatPlanError(error: PlanError): string {
  return `${planErrorLocation(error)}${error.path ? ` ${error.path}` : ''}: ${error.message}`;
}
