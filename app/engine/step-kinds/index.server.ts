/**
 * Runs one step by its kind (docs/decisions/014-big-table-steps.md):
 *
 * - `sql`: execute-step as it always ran (a transactional step in one transaction Runsheet owns,
 *   or statement by statement). With retries, a lock timeout (55P03) runs it again after a
 *   jittered backoff: safe for a transactional step (it rolled back) and for a non-transactional
 *   one whose first statement timed out (nothing committed); otherwise it stays failed.
 * - `create_index_concurrently`: create-index-concurrently.server.ts; a retry drops the INVALID
 *   index the timed-out build left.
 * - `batched_backfill`: batched-backfill.server.ts; it retries a timed-out batch itself.
 *
 * Each retry is a 'step.retry' event with the blockers the lock wait saw. Only in `own` mode: a
 * rehearsal's one transaction is aborted by the first error, and the rehearsal gate refuses
 * plans with non-transactional steps.
 */
import { translateBatchTemplate } from '../../plans/batch-template.server';
import type { Step } from '../../plans/plan-schema';
import { executeStep, prepareStep, type ExecuteStepHooks, type ExecuteStepOptions, type StepOutcome, type StepToRun, type TransactionMode } from '../execute-step.server';
import { runBatchedBackfill } from './batched-backfill.server';
import { createIndexConcurrentlyOnce } from './create-index-concurrently.server';
import { isLockTimeout, retryDelayMs, sleepUnlessCancelled, type KindOutcome, type StepKindContext } from './step-context.server';

export type { KindOutcome, StepKindContext } from './step-context.server';

/**
 * What execute-step runs for a step: its file as is, or for a batched backfill the UPDATE with
 * :batch_start and :batch_end turned into $1 and $2 (same lines; the loader already checked it).
 */
export async function stepToRun(step: Step, fileSql: string): Promise<StepToRun> {
  let sql = fileSql;
  if (step.kind === 'batched_backfill') {
    const template = await translateBatchTemplate(fileSql);
    if (template.ok) sql = template.sql;
  }
  return { id: step.id, title: step.title, sql, transactional: step.transactional, lockTimeoutMs: step.lock_timeout, statementTimeoutMs: step.statement_timeout };
}

export async function runStepOfKind(
  context: StepKindContext,
  step: Step,
  spec: StepToRun,
  mode: TransactionMode,
  hooks: ExecuteStepHooks,
  options: ExecuteStepOptions,
): Promise<KindOutcome> {
  if (step.kind !== 'sql' && mode.kind !== 'own') return refusedInTransaction(step, spec);
  if (step.kind === 'batched_backfill') {
    const prepared = await prepareStep(spec);
    if (!prepared.ok) return { ...(await executeStep(context.client, spec, mode, hooks, options)), attempts: 1 };
    const statement = prepared.statements[0]!;
    return runBatchedBackfill(context, step, spec, { line: statement.startLine, endLine: statement.endLine }, hooks, options);
  }

  const retries = mode.kind === 'own' ? (step.retries ?? context.planRetries) : 0;
  const once = (): Promise<KindOutcome> =>
    step.kind === 'create_index_concurrently'
      ? createIndexConcurrentlyOnce(context, step, spec, hooks, options)
      : executeStep(context.client, spec, mode, hooks, options).then((outcome) => ({ ...outcome, attempts: 1 }));
  for (let attempt = 1; ; attempt++) {
    const outcome = await once();
    const retrySafe = step.kind !== 'sql' || step.transactional || outcome.completedCount === 0;
    if (outcome.ok || !isLockTimeout(outcome) || attempt > retries || !retrySafe || outcome.connectionBroken || context.cancelledBy()) {
      return { ...outcome, attempts: attempt };
    }
    const delayMs = retryDelayMs(attempt);
    const failure = outcome.failure!;
    await context.log('step.retry', {
      stepId: step.id,
      kind: step.kind,
      attempt,
      retries,
      delayMs,
      sqlstate: failure.sqlstate,
      message: failure.message,
      line: failure.line,
      blockers: failure.blockers,
      summary: failure.summary,
    });
    if (await sleepUnlessCancelled(delayMs, context)) return { ...outcome, attempts: attempt };
  }
}

function refusedInTransaction(step: Step, spec: StepToRun): KindOutcome {
  const message = `a ${step.kind} step commits on its own (it cannot run inside another transaction, such as a rehearsal's)`;
  const outcome: StepOutcome = {
    stepId: spec.id,
    ok: false,
    mode: 'caller',
    transactional: false,
    statements: [],
    completedCount: 0,
    committed: false,
    durationMs: 0,
    connectionBroken: false,
    failure: { statementIndex: -1, line: 0, during: 'setup', message, summary: `Step ${step.id} was not run: ${message}`, blockers: [], cancelled: false },
  };
  return { ...outcome, attempts: 0 };
}
