/** The command line's exit codes (PRODUCT.md): other tools rely on them. */
export const EXIT = {
  ok: 0,
  /** Something ran and failed, or a gate refused. */
  failed: 1,
  /** Bad usage or bad input. */
  usage: 2,
  /** Could not run: target unreachable, lock held. */
  unavailable: 3,
} as const;

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
