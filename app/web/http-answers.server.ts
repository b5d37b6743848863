/**
 * How the web app answers a RunsheetError: the one table from an error's kind to an HTTP status,
 * and the refusal a form action shows on the page the user is on.
 */
import { isRunsheetError, type ErrorKind, type OpenGate } from '../runtime/errors';

export const HTTP_STATUS_BY_KIND: Record<ErrorKind, number> = {
  not_found: 404,
  invalid_input: 400,
  invalid_plan: 409,
  conflict: 409,
  unauthenticated: 401,
  permission: 403,
  state: 409,
  gate: 409,
  integrity: 409,
  busy: 409,
  unavailable: 503,
  target_refused: 409,
  configuration: 500,
};

export type IntentOutcome =
  | { kind: 'done'; message: string }
  | { kind: 'started'; runId: string }
  | { kind: 'refused'; status: number; error: string; openGates?: OpenGate[] };

/** A RunsheetError as a refusal on the page; anything else is a bug and propagates. */
export function refusalOf(error: unknown): Extract<IntentOutcome, { kind: 'refused' }> {
  if (!isRunsheetError(error)) throw error;
  return { kind: 'refused', status: HTTP_STATUS_BY_KIND[error.kind], error: error.message, ...(error.gates ? { openGates: [...error.gates] } : {}) };
}

/** For loaders: a RunsheetError becomes a plain-text answer with its status (the route's error boundary shows it). */
export function asHttpResponse(error: unknown): Response {
  if (!isRunsheetError(error)) throw error;
  return new Response(error.message, { status: HTTP_STATUS_BY_KIND[error.kind], headers: { 'Content-Type': 'text/plain; charset=utf-8' } });
}

/** Runs a loader step, turning a RunsheetError into its HTTP answer (thrown, as Remix expects). */
export async function orHttpError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw asHttpResponse(error);
  }
}
