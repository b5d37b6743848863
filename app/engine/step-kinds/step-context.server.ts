/**
 * What a step kind gets from the engine while it runs one step of a run (the engine builds it
 * from its run session), and what it hands back: execute-step's StepOutcome, plus what the
 * ledger must know about a step that left something on the target without completing.
 */
import type pg from 'pg';
import type { StepOutcome } from '../execute-step.server';

export interface StepKindContext {
  runId: string;
  planId: string;
  /** The plan's plan-level `retries` (a step's own `retries` wins). */
  planRetries: number;
  /** The run's own target connection (its session holds the target's advisory lock). */
  client: pg.Client;
  /** The target's shared pool: blocker samples and pg_cancel_backend. */
  pool: pg.Pool;
  /** Runsheet's store: where pause and resume requests arrive (the run log). */
  store: pg.Pool;
  /** Appends an event to the run log (as the run's actor). */
  log(type: string, payload?: Record<string, unknown>): Promise<unknown>;
  /** Who asked to cancel the run, once someone has. */
  cancelledBy(): string | undefined;
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
