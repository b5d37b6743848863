/**
 * One error type for everything Runsheet refuses or cannot do, told apart by `kind`. Each front
 * end maps a kind once: the command line to an exit code (cli/exit-codes.ts), the web app to an
 * HTTP status (app/web/http-answers.server.ts). A new failure picks a kind, never a new class
 * and never a new mapping.
 */

export const ERROR_KINDS = [
  /** No such run, plan, target or account. */
  'not_found',
  /** The request itself is wrong: a malformed id, an unknown prerequisite, an empty note. */
  'invalid_input',
  /** The plan on disk does not validate. */
  'invalid_plan',
  /** No valid credentials: an API request without a bearer token, or with an unknown, revoked or expired one. */
  'unauthenticated',
  /** The actor's role does not allow the action. */
  'permission',
  /** The run (or account) is not in a state that allows the action. */
  'state',
  /** What would be created exists already (an account with that e-mail). */
  'conflict',
  /** One or more go/no-go gates are open: nothing was changed. */
  'gate',
  /** Another run holds the target, or its advisory lock is held: nothing was changed. */
  'busy',
  /** The target (or another service) cannot be reached now. */
  'unavailable',
  /** The target may not be written to (a read-only replica, a transaction-mode pooler). */
  'target_refused',
  /** What was stored does not match what was signed or chained. */
  'integrity',
  /** Runsheet itself is not configured to do this. */
  'configuration',
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

/** A gate as an error carries it: enough for any front end to list what is open. */
export interface OpenGate {
  id: string;
  label: string;
  passed: boolean;
  detail: string;
  atExecute?: boolean;
}

export class RunsheetError extends Error {
  override name = 'RunsheetError';
  /** The open gates, for kind 'gate'. */
  readonly gates?: readonly OpenGate[];

  constructor(
    readonly kind: ErrorKind,
    message: string,
    options: { gates?: readonly OpenGate[]; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.gates) this.gates = options.gates;
  }
}

export const isRunsheetError = (error: unknown, kind?: ErrorKind): error is RunsheetError =>
  error instanceof RunsheetError && (kind === undefined || error.kind === kind);

/** Every open gate, in words: the refusal's message. */
export function gateRefusal(openGates: readonly OpenGate[]): RunsheetError {
  const lines = openGates.map((gate) => `  - ${gate.label}: ${gate.detail}`);
  return new RunsheetError('gate', `Refused: ${openGates.length} gate${openGates.length === 1 ? ' is' : 's are'} open:\n${lines.join('\n')}`, { gates: openGates });
}
