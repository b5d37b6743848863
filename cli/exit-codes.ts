/** The command line's exit codes (PRODUCT.md): other tools rely on them. */
import type { ErrorKind } from '../app/runtime/errors';
import { RunsheetError } from '../app/runtime/errors';
import type { RunOutcome } from '../db/schema/run-outcome';
import { isAppliedState, type RunState } from '../db/run-lifecycle';

export const EXIT = {
  ok: 0,
  /** Something ran and failed, or a gate refused. */
  failed: 1,
  /** Bad usage or bad input. */
  usage: 2,
  /** Could not run: target unreachable, lock held. */
  unavailable: 3,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Every kind of RunsheetError as an exit code: the one place the command line decides this. */
export const EXIT_CODE_BY_KIND: Record<ErrorKind, ExitCode> = {
  not_found: EXIT.usage,
  invalid_input: EXIT.usage,
  invalid_plan: EXIT.usage,
  conflict: EXIT.usage,
  // A missing, unknown, revoked or expired API token (remote mode): fix RUNSHEET_TOKEN.
  unauthenticated: EXIT.usage,
  permission: EXIT.failed,
  state: EXIT.failed,
  gate: EXIT.failed,
  integrity: EXIT.failed,
  busy: EXIT.unavailable,
  unavailable: EXIT.unavailable,
  target_refused: EXIT.unavailable,
  configuration: EXIT.unavailable,
};

/** What a command that drives a run asked for, and the state that means it happened. */
export const RUN_ACTION_SUCCESS = { apply: 'applied', rehearse: 'rehearsed', rollback: 'rolled_back' } as const satisfies Record<string, RunState>;
export type RunAction = keyof typeof RUN_ACTION_SUCCESS;

/** The phases the action itself ran: a rollback's are its own, not the apply's before it. */
export function phasesOfAction(outcome: RunOutcome | null | undefined, action: RunAction): NonNullable<RunOutcome['phases']> {
  return (action === 'rollback' ? outcome?.rollback?.phases : outcome?.phases) ?? [];
}

/**
 * The exit code of a command that drove a run (README: 1 when something ran and failed): 0 only
 * when the run reached its action's state and no phase of the action failed. Any other ending
 * (failed, cancelled, rollback_failed, rehearsal_failed, interrupted…) and any failed phase (a
 * snapshot, verification or post-execution check) is 1; an apply must also be verified.
 */
export function exitCodeOfRun(run: { state: RunState; outcome: RunOutcome | null }, action: RunAction): ExitCode {
  // An apply whose plan declares a watch is already watching when the command returns (docs/decisions/030).
  const reached = action === 'apply' ? isAppliedState(run.state) : run.state === RUN_ACTION_SUCCESS[action];
  if (!reached) return EXIT.failed;
  if (phasesOfAction(run.outcome, action).some((phase) => phase.ok === false)) return EXIT.failed;
  if (action === 'apply' && run.outcome?.verified !== true) return EXIT.failed;
  return EXIT.ok;
}

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);
export const unavailableError = (message: string) => new CliError(message, EXIT.unavailable);
