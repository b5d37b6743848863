/**
 * Every step kind, by its `kind` (docs/decisions/014-big-table-steps.md): the one place the
 * engine, the plan loader, the linter and the plan page look a step's behaviour up.
 *
 * - `sql`: execute-step as psql would run the file, in one transaction Runsheet owns or statement
 *   by statement (sql-step.server.ts).
 * - `create_index_concurrently`: a build that drops an INVALID leftover first and must end valid
 *   (create-index-concurrently.server.ts).
 * - `batched_backfill`: an UPDATE run batch by batch over a key, resumable (batched-backfill.server.ts).
 */
import type { Step } from '../plans/plan-schema';
import { batchedBackfillStepKind } from './batched-backfill.server';
import { createIndexConcurrentlyStepKind } from './create-index-concurrently.server';
import { sqlStepKind } from './sql-step.server';
import type { StepKind } from './step-kind';

export const STEP_KINDS: { readonly [K in Step['kind']]: StepKind<Extract<Step, { kind: K }>> } = {
  sql: sqlStepKind,
  create_index_concurrently: createIndexConcurrentlyStepKind,
  batched_backfill: batchedBackfillStepKind,
};

/** The kind of a step the schema validated. */
export const stepKindOf = <S extends Step>(step: S): StepKind<S> => STEP_KINDS[step.kind] as unknown as StepKind<S>;

/** The kind a raw (not yet validated) step names; an unknown or missing kind is checked as sql. */
export const stepKindNamed = (kind: unknown): StepKind => ((typeof kind === 'string' && kind in STEP_KINDS ? STEP_KINDS[kind as Step['kind']] : STEP_KINDS.sql) as unknown as StepKind);
