/**
 * Every event a run log may hold, defined once as a zod discriminated union on `type`
 * (docs/decisions/015-run-event-union.md). It is the public format of exported, signed logs
 * (RUN_EVENT_FORMAT, docs/run-log-events.md is generated from it). appendRunEvent takes only a
 * RunEventInput and validates it before writing; every reader gets RunEvent from parseRunEvent.
 * An event this version does not know (an older or newer writer, a payload that does not fit)
 * parses into the 'unrecognised' fallback, which keeps the stored type and payload to show as raw
 * JSON: reading never throws.
 *
 * Every key an event carries is declared: appendRunEvent refuses a payload with a key the union
 * does not name (so this file documents the whole format). Reading drops keys it does not know
 * (a later version's additions) from the typed view; the stored event, hashed and signed, keeps
 * them. A change that removes or retypes a field is a new format version (and a decision record).
 */
import { z } from 'zod';
import {
  BackupCopySchema,
  BackupObjectSchema,
  BlockerSchema,
  ChecksSummarySchema,
  LedgerRowOfRunSchema,
  RunOutcomeSchema,
  RunStateSchema,
  StepFailureSchema,
  StepSummarySchema,
} from '../../db/schema/run-outcome';
import { RUN_KINDS } from '../../db/run-lifecycle';

/**
 * The version of the event format this code writes (the in-toto predicate names the same version).
 * 2: every event a person (or a pipeline) causes says how it came (`via`).
 */
export const RUN_EVENT_FORMAT = 2;

/**
 * How an event came: through the dashboard (a password session, or the single-sign-on proxy), the
 * JSON API (which token), or the command line on a machine with the store's address (which OS user
 * on which host). Hashed and signed with the rest of the payload; absent on the system's own events
 * (recovery, retiring a draft) and on logs written before format 2.
 */
export const ViaSchema = z.discriminatedUnion('channel', [
  z.object({ channel: z.literal('web'), auth: z.enum(['session', 'proxy']) }),
  z.object({ channel: z.literal('api'), tokenId: z.string() }),
  z.object({ channel: z.literal('cli'), osUser: z.string(), host: z.string() }),
]);
export type Via = z.infer<typeof ViaSchema>;

// ---------------------------------------------------------------------------------------------
// Pieces several events share

export const NoticeSchema = z.object({
  severity: z.string(),
  message: z.string(),
  detail: z.string().optional(),
  hint: z.string().optional(),
  sqlstate: z.string().optional(),
  where: z.string().optional(),
});

export const GateSchema = z.object({ id: z.string(), label: z.string(), passed: z.boolean(), detail: z.string(), atExecute: z.boolean().optional() });

export const CheckErrorSchema = z.object({ message: z.string(), sqlstate: z.string().optional(), line: z.number().optional(), detail: z.string().optional() });

/** One check's result as the run log keeps it (app/checks/run-checks.server.ts CheckResult). */
export const CheckResultEventSchema = z.object({
  checkId: z.string(),
  title: z.string(),
  kind: z.string(),
  passed: z.boolean(),
  skipped: z.boolean(),
  // The check's expectation as the plan said it (its shape is the plan format's, not the log's).
  expected: z.record(z.string(), z.unknown()).nullable(),
  actual: z.unknown(),
  sql: z.string(),
  error: CheckErrorSchema.nullable(),
  reason: z.string().nullable(),
  durationMs: z.number(),
  ranAt: z.string(),
});

const LockHolderSchema = z.object({ pid: z.number(), application: z.string().nullable(), user: z.string().nullable(), state: z.string().nullable(), backendStart: z.string().nullable() });

/** Who acted for a refusal: the action refused, why, and the gates that were open. */
const RefusalPayload = {
  reason: z.string(),
  error: z.string().optional(),
  openGates: z.array(GateSchema).optional(),
};

const TargetFactsPayload = z.object({
  name: z.string(),
  url: z.string(),
  serverVersion: z.string(),
  tls: z.boolean(),
  currentUser: z.string(),
});

const DriveStartedPayload = z.object({
  gates: z.array(GateSchema),
  target: TargetFactsPayload,
  targetBackendPid: z.number(),
  applicationName: z.string(),
});

const DriveFinishedPayload = z.object({ state: RunStateSchema, outcome: RunOutcomeSchema });

const StepRef = { stepId: z.string() };
/** A session of the run waiting for a lock: its backend, what it runs (a step or a check) and in which phase. */
const WaitRef = { pid: z.number(), waitingFor: z.string(), phase: z.string().nullable() };

// ---------------------------------------------------------------------------------------------
// The union

const event = <T extends string, P extends z.ZodRawShape>(type: T, payload: z.ZodObject<P>) =>
  z.object({ type: z.literal(type), payload: payload.extend({ via: ViaSchema.optional() }) });

export const RunEventBodySchema = z.discriminatedUnion('type', [
  // Preparing a run
  event(
    'run.created',
    z.object({
      planId: z.string(),
      checksum: z.string(),
      target: z.string(),
      kind: z.enum(RUN_KINDS),
      files: z.array(z.object({ path: z.string(), sha256: z.string() })),
      /** The run this one is a new attempt after. */
      follows: z.object({ runId: z.string(), state: RunStateSchema }).optional(),
    }),
  ),
  event('prerequisite.ticked', z.object({ itemId: z.string(), text: z.string(), required: z.boolean() })),
  event('prerequisite.unticked', z.object({ itemId: z.string(), text: z.string(), required: z.boolean() })),
  event('criterion.ticked', z.object({ index: z.number(), text: z.string() })),
  event('criterion.unticked', z.object({ index: z.number(), text: z.string() })),
  event(
    'checks.ran',
    z.object({ phase: z.string(), planChecksum: z.string(), passed: z.boolean(), failed: z.array(z.string()), skipped: z.array(z.string()), results: z.array(CheckResultEventSchema) }),
  ),
  event('signoff', z.object({ checksum: z.string() })),
  /** On a four-eyes target: every required prerequisite ticked and every pre-check passed (once per run; docs/decisions/033). */
  event('signoff.ready', z.object({ checksum: z.string(), prerequisites: z.array(z.string()), prechecks: z.array(z.string()) })),
  event('note.added', z.object({ text: z.string() })),
  event(
    'lint.waived',
    z.object({ planId: z.string(), checksum: z.string(), file: z.string(), line: z.number(), rule: z.string(), level: z.string(), message: z.string(), reason: z.string() }),
  ),
  event('backfill.pause', z.object({ state: RunStateSchema, steps: z.array(z.string()), reason: z.string().optional() })),
  event('backfill.resume', z.object({ state: RunStateSchema, steps: z.array(z.string()), reason: z.string().optional() })),

  // Any time
  event('state.changed', z.object({ from: RunStateSchema, to: RunStateSchema, reason: z.string(), openGates: z.array(z.object({ id: z.string(), detail: z.string() })).optional() })),
  event('action.refused', z.object({ action: z.string(), reason: z.string(), finding: z.object({ file: z.string(), line: z.number(), rule: z.string() }).optional() })),
  event('execute.refused', z.object(RefusalPayload)),
  event('rehearse.refused', z.object(RefusalPayload)),
  event('rollback.refused', z.object(RefusalPayload)),
  event('cancel.requested', z.object({ state: RunStateSchema, targetBackendPid: z.number().nullable(), reason: z.string().optional() })),
  event('cancel.refused', z.object({ reason: z.string() })),
  event(
    'run.interrupted',
    z.object({
      previousState: RunStateSchema,
      heartbeatAt: z.string().nullable(),
      ownerProcess: z.string().nullable(),
      targetBackendPid: z.number().nullable(),
      ledgerRows: z.array(LedgerRowOfRunSchema),
      commitLanded: z.boolean(),
      detail: z.string(),
    }),
  ),

  // Driving a run: one drive is an action's '.started' to its '.finished'
  event('execute.started', DriveStartedPayload),
  event('rollback.started', DriveStartedPayload),
  event('rehearse.started', DriveStartedPayload),
  event('execute.finished', DriveFinishedPayload),
  event('rollback.finished', DriveFinishedPayload),
  event('rehearse.finished', DriveFinishedPayload),
  event('lock.held', z.object({ holders: z.array(LockHolderSchema) })),
  event('run.error', z.object({ message: z.string() })),
  event('anchor.missing', z.object({ target: z.string(), seq: z.number(), message: z.string() })),
  event(
    'cancel.signalled',
    z.object({ by: z.string(), signal: z.enum(['cancel', 'terminate']), pids: z.array(z.number()), note: z.string() }),
  ),
  event('wait.started', z.object({ ...WaitRef, waitEvent: z.string(), since: z.string(), relation: z.string().nullable(), query: z.string().nullable(), lockTimeoutMs: z.number().nullable(), blockers: z.array(BlockerSchema) })),
  event('wait.changed', z.object({ ...WaitRef, blockers: z.array(BlockerSchema) })),
  event('wait.ended', z.object({ ...WaitRef, waitedMs: z.number() })),
  event('phase.started', z.object({ phase: z.string(), plannedMs: z.number().nullable() })),
  event('phase.completed', z.object({ phase: z.string(), ok: z.boolean(), plannedMs: z.number().nullable(), actualMs: z.number(), overrunMs: z.number().optional() })),
  event(
    'step.started',
    z.object({
      ...StepRef,
      title: z.string(),
      file: z.string(),
      transactional: z.boolean(),
      mode: z.enum(['own', 'caller']),
      statementCount: z.number(),
      lockTimeoutMs: z.number(),
      statementTimeoutMs: z.number(),
      kind: z.string().optional(),
      index: z.string().optional(),
      table: z.string().optional(),
      key: z.string().optional(),
      batchSize: z.number().optional(),
      pauseMs: z.number().optional(),
      retries: z.number().optional(),
    }),
  ),
  event(
    'statement.completed',
    z.object({
      ...StepRef,
      index: z.number(),
      line: z.number(),
      endLine: z.number(),
      command: z.string(),
      durationMs: z.number(),
      rowCount: z.number().nullable(),
      notices: z.array(NoticeSchema),
      startedAt: z.string(),
      blockers: z.array(BlockerSchema).optional(),
    }),
  ),
  event('step.completed', StepSummarySchema),
  event(
    'step.failed',
    z.object({
      ...StepRef,
      failure: StepFailureSchema,
      summary: z.string().optional(),
      during: z.string().optional(),
      timeout: z.string().optional(),
      outcomeUnknown: z.boolean().optional(),
      connectionBroken: z.boolean().optional(),
      cancelledBy: z.string().optional(),
      attempts: z.number().optional(),
      retryable: z.boolean().optional(),
      note: z.string().optional(),
    }),
  ),
  event(
    'step.retry',
    z.object({
      ...StepRef,
      kind: z.string().optional(),
      attempt: z.number(),
      retries: z.number(),
      delayMs: z.number(),
      sqlstate: z.string().optional(),
      message: z.string(),
      line: z.number(),
      blockers: z.array(BlockerSchema),
      summary: z.string(),
      batchAfterKey: z.string().nullable().optional(),
    }),
  ),
  event(
    'step.skipped',
    z.object({
      ...StepRef,
      title: z.string(),
      transactional: z.boolean(),
      /** The run whose apply completed it (recorded in the target's ledger). */
      completedBy: z.string(),
      /** The failed, cancelled or interrupted run this run resumes (docs/decisions/027). */
      resumes: z.string(),
      reason: z.string(),
    }),
  ),
  event('commit.settled', z.object({ ...StepRef, landed: z.boolean(), by: z.string() })),
  event('ledger.checkpoint', z.object({ ...StepRef, outcome: z.string(), stepsCompleted: z.array(z.string()) })),
  event('ledger.write_failed', z.object({ outcome: z.string(), message: z.string() })),
  event('rehearsal.transaction.opened', z.object({ note: z.string() })),
  event('rehearsal.transaction.rolled_back', z.object({ rolledBack: z.boolean(), note: z.string() })),

  // The watch window after a verified apply (docs/decisions/030)
  event('watch.started', z.object({ checks: z.array(z.string()), everyMs: z.number(), forMs: z.number(), startedAt: z.string(), endsAt: z.string() })),
  event('watch.runner', z.object({ runner: z.string(), previous: z.string().nullable(), reason: z.string() })),
  event(
    'watch.round',
    z.object({
      round: z.number(),
      runner: z.string(),
      passed: z.boolean(),
      failed: z.array(z.string()),
      /** The results that differ from the previous round (every result in the first), in full. */
      results: z.array(CheckResultEventSchema),
      /** The checks whose result is as it was in the previous round: named only. */
      unchanged: z.array(z.string()),
      /** Rounds since the previous round kept here in which no result changed: kept as a count. */
      unchangedRounds: z.number(),
      lastUnchangedAt: z.string().nullable(),
      /** The target could not be reached: no check ran this round, and nothing was judged (no alarm). */
      unreachable: z.string().optional(),
    }),
  ),
  event(
    'watch.alarm',
    z.object({
      round: z.number(),
      checkId: z.string(),
      title: z.string(),
      expected: z.record(z.string(), z.unknown()).nullable(),
      actual: z.unknown(),
      error: CheckErrorSchema.nullable(),
      reason: z.string().nullable(),
      ranAt: z.string(),
      /** When the check last passed (in this watch, or at the apply's verification); null: not since the watch began. */
      lastPassedAt: z.string().nullable(),
    }),
  ),
  event('watch.extended', z.object({ previousEndsAt: z.string(), endsAt: z.string(), note: z.string().optional() })),
  event(
    'watch.ended',
    z.object({
      reason: z.enum(['window_closed', 'ended_early', 'rolled_back']),
      clean: z.boolean(),
      rounds: z.number(),
      unchangedRounds: z.number(),
      lastUnchangedAt: z.string().nullable(),
      alarms: z.number(),
      endsAt: z.string(),
      note: z.string().optional(),
    }),
  ),

  // Keeping what a rollback destroys, and putting it back (docs/decisions/031)
  event('backup.taken', z.object({ stepId: z.string(), copy: BackupCopySchema, durationMs: z.number() })),
  event('backup.skipped', z.object({ stepId: z.string(), object: BackupObjectSchema, reason: z.string() })),
  event('restore.started', z.object({ fromRunId: z.string(), backups: z.array(z.string()) })),
  event(
    'restore.finished',
    z.object({
      fromRunId: z.string(),
      ok: z.boolean(),
      objects: z.array(z.object({ object: BackupObjectSchema, backupTable: z.string(), rows: z.number(), restored: z.number(), unchanged: z.number(), skipped: z.number() })),
      /** Every row not put back, with its key and why. */
      skipped: z.array(z.object({ backupTable: z.string(), key: z.record(z.string(), z.unknown()), reason: z.string() })),
      durationMs: z.number(),
      error: z.string().optional(),
    }),
  ),
  event('restore.refused', z.object({ fromRunId: z.string().nullable(), reason: z.string() })),

  // Step kinds: batched_backfill
  event(
    'backfill.started',
    z.object({
      ...StepRef,
      table: z.string(),
      key: z.string(),
      batchSize: z.number(),
      pauseMs: z.number(),
      lockTimeoutMs: z.number(),
      statementTimeoutMs: z.number(),
      retries: z.number(),
      lastKey: z.string().nullable(),
      rowsDone: z.number(),
      total: z.number().nullable(),
      totalEstimated: z.boolean().optional(),
      /** 'no_rows': the UPDATE takes the next rows that still need it until a batch changes nothing (absent: walked by key). */
      until: z.literal('no_rows').optional(),
      /** until no_rows: the "needs it" condition, as written. */
      condition: z.string().optional(),
    }),
  ),
  event(
    'backfill.completed',
    z.object({
      ...StepRef,
      rowsDone: z.number(),
      rowsUpdated: z.number(),
      batches: z.number(),
      lastKey: z.string().nullable(),
      durationMs: z.number(),
      pausedMs: z.number(),
      /** until no_rows: rows the final pass (without SKIP LOCKED) filled. */
      finalPassRows: z.number().optional(),
    }),
  ),
  event('backfill.final_pass', z.object({ ...StepRef, rowsDone: z.number(), lockTimeoutMs: z.number(), note: z.string() })),
  event(
    'backfill.no_progress',
    z.object({
      ...StepRef,
      batch: z.number(),
      rows: z.number(),
      keys: z.array(z.string()),
      previousBatch: z.number(),
      condition: z.string(),
      rolledBack: z.boolean(),
      note: z.string(),
    }),
  ),
  event(
    'backfill.resumed_from',
    z.object({ ...StepRef, lastKey: z.string(), rowsDone: z.number(), rowsUpdated: z.number(), batches: z.number(), previousRunId: z.string(), note: z.string() }),
  ),
  event('backfill.restarted', z.object({ ...StepRef, reason: z.string(), previous: z.object({ lastKey: z.string().nullable(), rowsDone: z.number(), runId: z.string() }) })),
  event(
    'backfill.paused',
    z.object({ ...StepRef, by: z.string().nullable(), reason: z.string().optional(), lastKey: z.string().nullable(), rowsDone: z.number(), batches: z.number(), note: z.string() }),
  ),
  event('backfill.resumed', z.object({ ...StepRef, by: z.string().nullable(), pausedMs: z.number(), lastKey: z.string().nullable() })),
  event(
    'progress',
    z.object({
      ...StepRef,
      done: z.number(),
      total: z.number().nullable(),
      rate: z.number().nullable(),
      etaMs: z.number().nullable(),
      updated: z.number(),
      batches: z.number(),
      lastKey: z.string().nullable(),
      totalEstimated: z.boolean().optional(),
      /** until no_rows: the rows still to do (the planner's estimate unless totalEstimated is absent). */
      remaining: z.number().nullable().optional(),
      /** until no_rows: the final pass (without SKIP LOCKED) is running. */
      finalPass: z.boolean().optional(),
    }),
  ),

  // Step kinds: create_index_concurrently
  event('index.already_valid', z.object({ ...StepRef, index: z.string(), definition: z.string().nullable(), note: z.string() })),
  event('index.invalid_found', z.object({ ...StepRef, index: z.string(), definition: z.string().nullable(), note: z.string() })),
  event('index.dropped', z.object({ ...StepRef, index: z.string(), durationMs: z.number() })),
  event('index.invalid', z.object({ ...StepRef, index: z.string(), sqlstate: z.string().nullable(), definition: z.string().nullable(), note: z.string() })),
  event('index.valid', z.object({ ...StepRef, index: z.string(), table: z.string().nullable(), definition: z.string().nullable() })),
]);

/** A known event's type and payload, as appended (zod input: optional keys may be left out). */
export type RunEventInput = z.input<typeof RunEventBodySchema>;
/** A known event's type and payload, as read. */
export type KnownRunEventBody = z.output<typeof RunEventBodySchema>;
export type RunEventType = KnownRunEventBody['type'];
export const RUN_EVENT_TYPES = RunEventBodySchema.options.map((option) => option.shape.type.value) as readonly RunEventType[];

/** An event whose type or payload this version does not know: shown as raw JSON, never an error. */
export interface UnrecognisedRunEventBody {
  type: 'unrecognised';
  payload: { storedType: string; storedPayload: unknown; problem: string };
}

export type RunEventBody = KnownRunEventBody | UnrecognisedRunEventBody;

/** Where an event sits in its run's log and who wrote it (the database clock is `at`). */
export interface RunEventHeader {
  runId: string;
  seq: number;
  /** Database clock, `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
  at: string;
  /** An account's e-mail, or 'system'. */
  actor: string;
  role: string | null;
}

/** An event as every reader sees it: header plus a typed body. */
export type RunEvent = RunEventHeader & RunEventBody;

/** The payload type of one event type. */
export type PayloadOf<T extends RunEventType> = Extract<KnownRunEventBody, { type: T }>['payload'];
/** A read event of one type. */
export type RunEventOf<T extends RunEventType> = RunEventHeader & Extract<KnownRunEventBody, { type: T }>;

const KNOWN_TYPES = new Set<string>(RUN_EVENT_TYPES);

/** A stored event (type and payload as written) as a typed RunEvent; the fallback when it does not fit. */
export function parseRunEvent<H extends RunEventHeader>(stored: H & { type: string; payload: unknown }): H & RunEventBody {
  const { type, payload, ...header } = stored;
  const parsed = RunEventBodySchema.safeParse({ type, payload });
  if (parsed.success) return { ...(header as unknown as H), ...parsed.data };
  const problem = KNOWN_TYPES.has(type)
    ? parsed.error.issues.map((issue) => `${issue.path.slice(1).join('.') || 'payload'}: ${issue.message}`).join('; ')
    : `this version of Runsheet does not know the event type "${type}"`;
  return { ...(header as unknown as H), type: 'unrecognised', payload: { storedType: type, storedPayload: payload, problem } };
}

/** The type an event was stored under (the unrecognised fallback keeps it). */
export const storedTypeOf = (event: RunEventBody): string => (event.type === 'unrecognised' ? event.payload.storedType : event.type);

export function isEventOf<T extends RunEventType>(event: RunEvent, ...types: T[]): event is RunEventOf<T> {
  return (types as string[]).includes(event.type);
}

/** The events of some types, in log order, typed. */
export function eventsOf<T extends RunEventType>(events: readonly RunEvent[], ...types: T[]): RunEventOf<T>[] {
  return events.filter((candidate): candidate is RunEventOf<T> => isEventOf(candidate, ...types));
}

/** The three actions that drive a run, and their start, end and refusal events. */
export const DRIVE_ACTIONS = ['execute', 'rollback', 'rehearse'] as const;
export type DriveAction = (typeof DRIVE_ACTIONS)[number];
export const DRIVE_EVENTS = {
  execute: { started: 'execute.started', finished: 'execute.finished', refused: 'execute.refused' },
  rollback: { started: 'rollback.started', finished: 'rollback.finished', refused: 'rollback.refused' },
  rehearse: { started: 'rehearse.started', finished: 'rehearse.finished', refused: 'rehearse.refused' },
} as const satisfies Record<DriveAction, { started: RunEventType; finished: RunEventType; refused: RunEventType }>;

const DRIVE_BY_EVENT = new Map<string, { action: DriveAction; edge: 'started' | 'finished' | 'refused' }>(
  DRIVE_ACTIONS.flatMap((action) => (['started', 'finished', 'refused'] as const).map((edge) => [DRIVE_EVENTS[action][edge], { action, edge }] as const)),
);

/** Which drive an event starts, ends or refuses, if any. */
export const driveEdgeOf = (event: RunEventBody) => DRIVE_BY_EVENT.get(event.type);
