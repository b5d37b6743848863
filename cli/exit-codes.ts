/** The command line's exit codes (PRODUCT.md): other tools rely on them. */
import type { ErrorKind } from '../app/runtime/errors';
import { RunsheetError } from '../app/runtime/errors';

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
  permission: EXIT.failed,
  state: EXIT.failed,
  gate: EXIT.failed,
  integrity: EXIT.failed,
  busy: EXIT.unavailable,
  unavailable: EXIT.unavailable,
  target_refused: EXIT.unavailable,
  configuration: EXIT.unavailable,
};

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
