/**
 * What a run did, kept in `runs.outcome` (jsonb) and signed with the run: its phases, steps,
 * failure, verification, rollback and rehearsal. Written only by the engine when a drive ends.
 * Defined once as zod schemas: the run-event union reuses them for the events that carry a step
 * summary, a failure or a whole outcome, and the TypeScript types are inferred from them. Objects
 * strip keys they do not know when parsed: an outcome written by a later version still reads.
 */
import { z } from 'zod';
import { RUN_STATES } from '../run-lifecycle';

export const RunStateSchema = z.enum(RUN_STATES);

/** A session that blocked a statement, as pg_blocking_pids() and pg_stat_activity showed it. */
export const BlockerSchema = z.object({
  pid: z.number(),
  /** false: the role may not see this session's details (pg_stat_activity shows <insufficient privilege>). */
  visible: z.boolean().optional(),
  user: z.string().nullish(),
  application: z.string().nullish(),
  state: z.string().nullish(),
  query: z.string().nullish(),
  xactStart: z.string().nullish(),
  waitEvent: z.string().nullish(),
  lockMode: z.string().nullish(),
  relation: z.string().nullish(),
});
export type Blocker = z.infer<typeof BlockerSchema>;

/** Summary of one step as the run's outcome keeps it. */
export const StepSummarySchema = z.object({
  stepId: z.string(),
  title: z.string(),
  transactional: z.boolean(),
  ok: z.boolean(),
  statementCount: z.number(),
  completedCount: z.number(),
  committed: z.boolean(),
  durationMs: z.number(),
  /** A step kind other than sql (create_index_concurrently, batched_backfill). */
  kind: z.string().optional(),
  /** More than one: it was retried after lock timeouts. */
  attempts: z.number().optional(),
  /** What the kind reports: the index and its validity, the backfill's last key and rows. */
  detail: z.record(z.string(), z.unknown()).optional(),
});
export type StepSummary = z.infer<typeof StepSummarySchema>;

export const StepFailureSchema = z.object({
  stepId: z.string(),
  statementIndex: z.number(),
  line: z.number(),
  sqlstate: z.string().optional(),
  message: z.string(),
  detail: z.string().optional(),
  hint: z.string().optional(),
  blockers: z.array(BlockerSchema),
  cancelled: z.boolean(),
});
export type StepFailure = z.infer<typeof StepFailureSchema>;

/**
 * Where a drive stopped before its end: the phase, the step or check, the statement's line, and
 * why (the error with SQLSTATE, DETAIL and HINT, the sessions that blocked it, or who cancelled).
 * The report's failure summary reads this.
 */
export const RunStopSchema = z.object({
  phase: z.string(),
  stepId: z.string().optional(),
  checkId: z.string().optional(),
  line: z.number().optional(),
  sqlstate: z.string().optional(),
  message: z.string(),
  detail: z.string().optional(),
  hint: z.string().optional(),
  blockers: z.array(BlockerSchema),
  cancelledBy: z.string().optional(),
});
export type RunStop = z.infer<typeof RunStopSchema>;

export const PhaseTimingSchema = z.object({
  phase: z.string(),
  plannedMs: z.number().nullable(),
  actualMs: z.number(),
  /** Whether the phase passed (absent in logs written before phases carried it). */
  ok: z.boolean().optional(),
});
export type PhaseTiming = z.infer<typeof PhaseTimingSchema>;

export const ChecksSummarySchema = z.object({
  passed: z.boolean(),
  failed: z.array(z.string()),
  skipped: z.array(z.string()),
});
export type ChecksSummary = z.infer<typeof ChecksSummarySchema>;

const StepsRunSchema = z.object({ ok: z.boolean(), steps: z.array(StepSummarySchema) });

export const LedgerRowOfRunSchema = z.object({ action: z.string(), outcome: z.string(), at: z.string(), stepsCompleted: z.unknown() });

/** A column or table of the plan's `objects` that a rollback drops: what a backup keeps (docs/decisions/031). */
export const BackupObjectSchema = z.object({
  kind: z.enum(['column', 'table']),
  schema: z.string(),
  table: z.string(),
  column: z.string().optional(),
});
export type BackupObject = z.infer<typeof BackupObjectSchema>;

/** One copy a rollback made in the target's runsheet_backup schema, and what it holds. */
export const BackupCopySchema = z.object({
  object: BackupObjectSchema,
  /** The copy, schema-qualified (runsheet_backup."…"). */
  backupTable: z.string(),
  /** The primary key it is put back by. */
  keyColumns: z.array(z.string()),
  /** Every column the copy holds (the key and the column's value, or the whole table). */
  columns: z.array(z.string()),
  rows: z.number(),
  bytes: z.number(),
  /** sha256 over the copy's rows as text, in key order: the same rows give the same digest. */
  sha256: z.string(),
});
export type BackupCopy = z.infer<typeof BackupCopySchema>;

/** What a run did, kept in runs.outcome (and signed with the run). */
export const RunOutcomeSchema = z.object({
  result: RunStateSchema.optional(),
  phases: z.array(PhaseTimingSchema).optional(),
  steps: z.array(StepSummarySchema).optional(),
  failure: StepFailureSchema.optional(),
  /** Where the apply (or rehearsal) stopped, when it did not run to its end. */
  stoppedAt: RunStopSchema.optional(),
  /** A lock timeout (55P03): nothing changed; retry under a new run at a quieter moment. */
  retryable: z.boolean().optional(),
  cancelledBy: z.string().optional(),
  /** What this run wrote to the target's ledger: 'applied', 'partial', or nothing. */
  ledger: z.object({ written: z.enum(['applied', 'partial', 'rolled_back']).nullable() }).optional(),
  /** Verification after apply (plan.verification) all passed. */
  verified: z.boolean().optional(),
  verification: ChecksSummarySchema.optional(),
  postExecution: ChecksSummarySchema.optional(),
  error: z.string().optional(),
  rehearsal: z
    .looseObject({
      apply: StepsRunSchema,
      verification: ChecksSummarySchema.optional(),
      dataQuality: ChecksSummarySchema.optional(),
      rollback: StepsRunSchema.optional(),
      rollbackVerification: ChecksSummarySchema.optional(),
      rolledBack: z.boolean(),
    })
    .optional(),
  rollback: z
    .looseObject({
      result: RunStateSchema,
      steps: z.array(StepSummarySchema),
      failure: StepFailureSchema.optional(),
      stoppedAt: RunStopSchema.optional(),
      cancelledBy: z.string().optional(),
      retryable: z.boolean().optional(),
      verification: ChecksSummarySchema.optional(),
      verified: z.boolean().optional(),
      ledger: z.object({ written: z.enum(['rolled_back', 'partial']).nullable() }).optional(),
      phases: z.array(PhaseTimingSchema),
      error: z.string().optional(),
      /** The rollback's own times and who ran it (the run's started_at/finished_at stay the apply's). */
      startedAt: z.string().optional(),
      finishedAt: z.string().optional(),
      by: z.string().optional(),
      /** What the rollback kept of what it destroyed (docs/decisions/031): one copy per dropped column or table the plan declares. */
      backups: z.array(BackupCopySchema).optional(),
    })
    .optional(),
  /** The watch window after the apply (docs/decisions/030): its own start, end and outcome. */
  watch: z
    .looseObject({
      result: RunStateSchema,
      startedAt: z.string(),
      endsAt: z.string(),
      finishedAt: z.string().optional(),
      rounds: z.number().optional(),
      /** Every regression seen: the check, the round and when. */
      alarms: z.array(z.object({ checkId: z.string(), round: z.number(), at: z.string() })).optional(),
      /** Ended before its window closed, by whom and why; or by a rollback. */
      endedEarly: z.object({ by: z.string(), note: z.string(), at: z.string() }).optional(),
      endedBy: z.enum(['window_closed', 'ended_early', 'rolled_back']).optional(),
    })
    .optional(),
  interrupted: z
    .looseObject({
      previousState: RunStateSchema,
      heartbeatAt: z.string().nullable(),
      ownerProcess: z.string().nullable(),
      targetBackendPid: z.number().nullable().optional(),
      /** The target's ledger rows of this run (a row means its COMMIT landed). */
      ledgerRows: z.array(LedgerRowOfRunSchema),
      commitLanded: z.boolean().optional(),
    })
    .optional(),
});
export type RunOutcome = z.infer<typeof RunOutcomeSchema>;
