/**
 * A step kind (docs/decisions/014-big-table-steps.md, in the manner of pgroll's operations): one
 * module per kind knows how to check its SQL when the plan loads, describe itself for the page,
 * what its start event says, what SQL it sends, whether the ledger must say "partial" before it
 * starts, and how it runs (a kind that commits on its own refuses to run inside a rehearsal's
 * transaction). The engine runs steps through this interface only; adding a kind is a module here, its
 * schema in plan-schema.ts, and its events in the run-event union.
 */
import type pg from 'pg';
import type { Step } from '../plans/plan-schema';
import type { PayloadOf, RunEventInput } from '../runs/run-events';
import type { ExecuteStepHooks, ExecuteStepOptions, StepOutcome, StepToRun, TransactionMode } from './execute-step.server';

/** What a kind may write to the run log while it runs: any event of the union. */
export type StepEventInput = RunEventInput;

/** What a step kind gets from the engine while it runs one step of a run. */
export interface StepKindContext {
  runId: string;
  planId: string;
  /** The plan's plan-level `retries` (a step's own `retries` wins). */
  planRetries: number;
  /** The run's own target connection (its session holds the target's advisory lock). */
  client: pg.Client;
  /** The target's shared pool: blocker samples and pg_cancel_backend. */
  pool: pg.Pool;
  /** Appends an event to the run log (as the run's actor). */
  log(event: StepEventInput): Promise<unknown>;
  /** Who asked to cancel the run, once someone has. */
  cancelledBy(): string | undefined;
  /** The newest pause or resume request of the run (a batched backfill polls it between batches). */
  pauseState(): Promise<{ paused: boolean; by?: string; reason?: string }>;
}

export interface KindOutcome extends StepOutcome {
  /** How many times the step ran (1 + retries after lock timeouts). */
  attempts: number;
  /**
   * The step failed but changed the target (an INVALID index left by CREATE INDEX CONCURRENTLY,
   * backfill batches committed): the ledger records the run as partial, so it can be rolled back.
   */
  leftover?: boolean;
  /** Kind-specific facts for the ledger's steps_completed and the step summary. */
  detail?: Record<string, unknown>;
}

/** A problem with a step's SQL file, found when the plan loads (line in the file, when known). */
export interface StepSqlProblem {
  line?: number;
  message: string;
}

export interface StepRunInput<S extends Step> {
  context: StepKindContext;
  step: S;
  spec: StepToRun;
  mode: TransactionMode;
  hooks: ExecuteStepHooks;
  options: ExecuteStepOptions;
}

export interface StepKind<S extends Step = Step> {
  readonly kind: S['kind'];
  /** At load time: the step's file against what this kind runs (the step is the raw, unvalidated YAML record). */
  validate(step: Record<string, unknown>, fileSql: string): Promise<StepSqlProblem[]>;
  /** How the step runs, in words, for the plan page. */
  describe(step: S): string;
  /** What its 'step.started' event says beyond what every step says. */
  startFacts(step: S): Partial<PayloadOf<'step.started'>>;
  /** The SQL execute-step sends for it (e.g. a batch template's placeholders as $1 and $2). */
  sqlToRun(step: S, fileSql: string): Promise<string>;
  /**
   * Whether the ledger says "partial" before it starts: it commits piece by piece with no
   * statement boundary the engine sees (backfill batches, a concurrent build), so should the
   * process die inside it, the target already says the run changed it.
   */
  readonly partialLedgerFirst: boolean;
  /** Runs the step (with its own retries after lock timeouts, where it has any). */
  run(input: StepRunInput<S>): Promise<KindOutcome>;
}

/** The base delay before retry n (1-based): 0.5 s, 1 s, 2 s … capped at 30 s; the wait is a random point in its upper half. */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const base = Math.min(30_000, 500 * 2 ** (attempt - 1));
  return Math.round(base / 2 + random() * (base / 2));
}

/** Sleeps `ms`, waking early when the run is cancelled; returns true when it was. */
export async function sleepUnlessCancelled(ms: number, context: Pick<StepKindContext, 'cancelledBy'>): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (context.cancelledBy()) return true;
    await new Promise((resolve) => setTimeout(resolve, Math.min(100, deadline - Date.now())));
  }
  return context.cancelledBy() !== undefined;
}

export const isLockTimeout = (outcome: StepOutcome): boolean => outcome.failure?.sqlstate === '55P03';

/**
 * Runs `once` again after a lock timeout (55P03), while the step's retries last and `retrySafe`
 * says nothing committed that a second run would repeat; each retry is a 'step.retry' event with
 * the blockers the wait saw, after a jittered backoff that a cancel cuts short. Only in `own`
 * mode: a rehearsal's one transaction is aborted by the first error.
 */
export async function withLockTimeoutRetries<S extends Step>(
  input: Pick<StepRunInput<S>, 'context' | 'step' | 'mode'>,
  once: () => Promise<KindOutcome>,
  retrySafe: (outcome: KindOutcome) => boolean,
): Promise<KindOutcome> {
  const { context, step, mode } = input;
  const retries = mode.kind === 'own' ? (step.retries ?? context.planRetries) : 0;
  for (let attempt = 1; ; attempt++) {
    const outcome = await once();
    if (outcome.ok || !isLockTimeout(outcome) || attempt > retries || !retrySafe(outcome) || outcome.connectionBroken || context.cancelledBy()) {
      return { ...outcome, attempts: attempt };
    }
    const delayMs = retryDelayMs(attempt);
    const failure = outcome.failure!;
    await context.log({
      type: 'step.retry',
      payload: {
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
      },
    });
    if (await sleepUnlessCancelled(delayMs, context)) return { ...outcome, attempts: attempt };
  }
}

/** The outcome of a step a kind refuses to run in this mode (a commit-as-it-goes step inside a rehearsal). */
export function refusedInTransaction(step: Step, spec: StepToRun): KindOutcome {
  const message = `a ${step.kind} step commits on its own (it cannot run inside another transaction, such as a rehearsal's)`;
  return {
    stepId: spec.id,
    ok: false,
    mode: 'caller',
    transactional: false,
    statements: [],
    completedCount: 0,
    committed: false,
    durationMs: 0,
    connectionBroken: false,
    attempts: 0,
    failure: { statementIndex: -1, line: 0, during: 'setup', message, summary: `Step ${step.id} was not run: ${message}`, blockers: [], cancelled: false },
  };
}
