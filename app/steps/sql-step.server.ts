/**
 * The `sql` step kind: its file as psql would run it, either in one transaction Runsheet owns
 * (transactional: true, the default) or statement by statement, each committed on its own. A lock
 * timeout is retried when nothing committed: a transactional step rolled back, or a
 * non-transactional one timed out on its first statement.
 */
import type { SqlStep } from '../plans/plan-schema';
import { splitSql } from '../sql/split-sql.server';
import { createIndexConcurrentlyOutsideItsKind, stepTransactionProblems } from './step-sql-rules.server';
import { executeStep } from './execute-step.server';
import { withLockTimeoutRetries, type StepKind, type StepSqlProblem } from './step-kind';

const withFullStop = (sentence: string) => (/[.!?]$/.test(sentence) ? sentence : `${sentence}.`);

/** A file that does not split is reported line by line: nothing of it would be sent. */
export async function splitOrProblems(sql: string): Promise<{ ok: true; statements: Awaited<ReturnType<typeof splitSql>> & { ok: true } } | { ok: false; problems: StepSqlProblem[] }> {
  const split = await splitSql(sql);
  if (split.ok) return { ok: true, statements: split };
  return { ok: false, problems: split.errors.map((error) => ({ line: error.line, message: `${withFullStop(error.message)} Nothing of this file would be sent: fix it.` })) };
}

export const sqlStepKind: StepKind<SqlStep> = {
  kind: 'sql',
  async validate(step, fileSql) {
    const split = await splitOrProblems(fileSql);
    if (!split.ok) return split.problems;
    const problems: StepSqlProblem[] = [];
    if (split.statements.statements.length === 0) problems.push({ message: `${String(step.file)} has no SQL statement: write the step's SQL, or remove the step.` });
    const shape = { transactional: step.transactional !== false };
    problems.push(...stepTransactionProblems(split.statements.statements, shape), ...createIndexConcurrentlyOutsideItsKind(split.statements.statements, shape));
    return problems;
  },
  describe: (step) => (step.transactional ? 'one transaction' : 'statement by statement'),
  startFacts: () => ({}),
  sqlToRun: async (_step, fileSql) => fileSql,
  partialLedgerFirst: false,
  run: (input) =>
    withLockTimeoutRetries(
      input,
      () => executeStep(input.context.client, input.spec, input.mode, input.hooks, input.options).then((outcome) => ({ ...outcome, attempts: 1 })),
      (outcome) => input.step.transactional || outcome.completedCount === 0,
    ),
};
