/**
 * What a server error means for a backfill step, in words: both backfill shapes (the keyset walk
 * and until: no_rows) read a failed batch the same way (cancelled, a lost connection, a lock or
 * statement timeout) and differ only in what their committed batches leave behind.
 */
import { blockersInWords } from '../runtime/lock-wait-words';
import type { BlockerInfo, StepFailure } from './execute-step.server';

export interface BackfillFailureInput {
  error: unknown;
  during: StepFailure['during'];
  /** What failed, e.g. "batch 12 failed". */
  what: string;
  blockers: BlockerInfo[];
  /** Who cancelled the run, if someone did. */
  cancelledBy: string | undefined;
  step: { id: string; lock_timeout?: number; statement_timeout?: number };
  /** The UPDATE's line in its file. */
  statementLine: number;
  /** The lock wait happened in until: no_rows's final pass (which waits for rows other sessions held). */
  finalPass?: boolean;
  /** What the committed batches leave behind, said at the end of the summary. */
  kept: string;
}

/** The step's failure, and whether the connection was lost (the outcome of the batch in flight is unknown). */
export function backfillFailure(input: BackfillFailureInput): { failure: StepFailure; connectionLost: boolean } {
  const { error, during, blockers, step } = input;
  const fields = (error ?? {}) as { code?: unknown; detail?: unknown; hint?: unknown; where?: unknown; severity?: unknown };
  const sqlstate = typeof fields.code === 'string' && /^[0-9A-Z]{5}$/.test(fields.code) ? fields.code : undefined;
  const message = error instanceof Error ? error.message : String(error);
  const cancelled = sqlstate === '57014' && input.cancelledBy !== undefined;
  const lost = fields.severity === 'FATAL' || sqlstate?.startsWith('08') === true || sqlstate === '57P01' || (!sqlstate && /connection|terminat|ECONNRESET|Client has encountered/i.test(message));
  const timeout = sqlstate === '55P03' ? 'lock_timeout' : sqlstate === '57014' && !cancelled && /statement timeout/i.test(message) ? 'statement_timeout' : undefined;
  let why = '';
  if (cancelled) why = ` (cancelled by ${input.cancelledBy})`;
  else if (timeout === 'lock_timeout') {
    why = ` (lock_timeout ${step.lock_timeout} ms per batch${input.finalPass ? ', in the final pass that waits for rows other sessions held' : ''}${blockers.length ? `; blocked by ${blockersInWords(blockers)}` : ''})`;
  } else if (timeout === 'statement_timeout') why = ` (statement_timeout ${step.statement_timeout} ms per batch: make batch_size smaller)`;
  return {
    connectionLost: lost,
    failure: {
      statementIndex: during === 'statement' ? 0 : -1,
      line: during === 'statement' ? input.statementLine : 0,
      during,
      ...(sqlstate ? { sqlstate } : {}),
      message,
      ...(typeof fields.detail === 'string' && fields.detail ? { detail: fields.detail } : {}),
      ...(typeof fields.hint === 'string' && fields.hint ? { hint: fields.hint } : {}),
      ...(typeof fields.where === 'string' && fields.where ? { where: fields.where } : {}),
      summary: `Step ${step.id}: ${input.what}${sqlstate ? ` with SQLSTATE ${sqlstate}` : ''}: ${message}${why}; ${input.kept}`,
      blockers,
      cancelled,
      ...(timeout ? { timeout } : {}),
      ...(lost ? { outcomeUnknown: true } : {}),
    },
  };
}
