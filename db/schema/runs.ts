import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { ACTIVE_RUN_STATES, PREPARING_STATES, REHEARSAL_STATES, RUN_KINDS, RUN_STATES } from '../run-lifecycle';
import type { RunOutcome } from './run-outcome';

/** What a run ran, frozen when it was created: re-running uses the plan as it is now, under a new run. */
export interface FrozenPlan {
  /** The plan manifest (docs/decisions/001): `<sha256>  <path>\n` per file; its sha256 is the plan checksum. */
  manifest: string;
  files: { path: string; sha256: string; content: string }[];
}

const inList = (values: readonly string[]) => sql.raw(values.map((value) => `'${value}'`).join(', '));

/**
 * One attempt of one plan on one target (PRODUCT.md "Run"). Its states and their transitions are
 * db/run-lifecycle.ts; a trigger refuses any state change not in run_state_transitions. `kind` and
 * `state` are checked together: a rehearsal never applies, an execution never rehearses. PostgreSQL
 * enforces at most one run per target applying, rolling back or rehearsing
 * (runs_one_active_per_target) and at most one open (draft or ready) run per plan, target and
 * kind (runs_one_open_per_plan): two processes never open two drafts of one plan.
 */
export const runs = pgTable(
  'runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    planId: text('plan_id').notNull(),
    planChecksum: text('plan_checksum').notNull(),
    target: text('target').notNull(),
    kind: text('kind', { enum: RUN_KINDS }).notNull(),
    state: text('state', { enum: RUN_STATES }).notNull().default('draft'),
    frozenPlan: jsonb('frozen_plan').$type<FrozenPlan>().notNull(),
    createdBy: text('created_by').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    signedOffBy: text('signed_off_by'),
    signedOffAt: timestamp('signed_off_at', { withTimezone: true, mode: 'date' }),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }),
    finishedAt: timestamp('finished_at', { withTimezone: true, mode: 'date' }),
    executedBy: text('executed_by'),
    /** Refreshed by the process driving the run; a stale heartbeat means the run was interrupted. */
    heartbeatAt: timestamp('heartbeat_at', { withTimezone: true, mode: 'date' }),
    /** pg_backend_pid() of the session applying on the target, to find it in pg_stat_activity. */
    targetBackendPid: integer('target_backend_pid'),
    /** `host:pid` of the Runsheet process driving the run. */
    ownerProcess: text('owner_process'),
    outcome: jsonb('outcome').$type<RunOutcome>(),
    /** The notification channels of the target when the run was opened (runsheet.config.ts `notify`): its events that notify go to these (docs/decisions/033). */
    notifyChannels: text('notify_channels').array().notNull().default(sql`'{}'::text[]`),
  },
  (table) => [
    check('runs_kind_known', sql`${table.kind} in (${inList(RUN_KINDS)})`),
    check('runs_state_known', sql`${table.state} in (${inList(RUN_STATES)})`),
    check(
      'runs_state_fits_kind',
      sql`(${table.kind} = 'rehearsal' and ${table.state} in (${inList(REHEARSAL_STATES)})) or (${table.kind} = 'execute' and ${table.state} not in ('rehearsing', 'rehearsed', 'rehearsal_failed'))`,
    ),
    uniqueIndex('runs_one_active_per_target')
      .on(table.target)
      .where(sql`${table.state} in (${inList(ACTIVE_RUN_STATES)})`),
    uniqueIndex('runs_one_open_per_plan')
      .on(table.planId, table.target, table.kind)
      .where(sql`${table.state} in (${inList(PREPARING_STATES)})`),
    index('runs_target_created_idx').on(table.target, table.createdAt.desc()),
    index('runs_plan_idx').on(table.planId, table.target),
  ],
);

/**
 * The run log. Append-only: rows are never updated or deleted (PostgreSQL triggers refuse UPDATE,
 * DELETE and TRUNCATE, and refuse an INSERT that does not extend the chain by exactly one link);
 * read in `(run_id, seq)` order. Each row is hashed over the previous one
 * (docs/decisions/010-run-log-hash-chain.md): `hash = sha256_hex(prev_hash + "\n" + JCS(body))`.
 * `at` is the database clock as text (`YYYY-MM-DDTHH:MM:SS.ffffffZ`), so the hashed value is
 * exactly what is stored. Written only through app/runs/run-log.server.ts.
 */
export const runEvents = pgTable(
  'run_events',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id),
    seq: integer('seq').notNull(),
    at: text('at').notNull(),
    /** An account's e-mail, or 'system'. */
    actor: text('actor').notNull(),
    role: text('role'),
    /** e.g. 'run.created', 'prerequisite.ticked', 'checks.ran', 'signoff', 'phase.started', 'state.changed', 'note.added'. */
    type: text('type').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (table) => [
    primaryKey({ columns: [table.runId, table.seq] }),
    // The report, the plan page and the live view read a run's events of a few types (preparation, watch, drive) out of thousands.
    index('run_events_run_type_seq_idx').on(table.runId, table.type, table.seq),
    check('run_events_seq_positive', sql`${table.seq} >= 1`),
    check('run_events_at_format', sql`${table.at} ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z$'`),
    check('run_events_payload_object', sql`jsonb_typeof(${table.payload}) = 'object'`),
    check('run_events_prev_hash_hex', sql`${table.prevHash} ~ '^[0-9a-f]{64}$'`),
    check('run_events_hash_hex', sql`${table.hash} ~ '^[0-9a-f]{64}$'`),
  ],
);

/**
 * Signed checkpoints of the run log: a DSSE envelope over an in-toto Statement whose subject
 * digest is the chain head at `seq` (docs/decisions/011-signed-log-dsse-in-toto.md). Append-only
 * like run_events; an INSERT whose `head` is not the stored hash at `seq` is refused. Export
 * returns the latest one and never signs.
 */
export const runCheckpoints = pgTable(
  'run_checkpoints',
  {
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id),
    /** The last event the checkpoint covers (0: none yet; its head is then the genesis hash). */
    seq: integer('seq').notNull(),
    /** The chain head (hex sha256) at `seq`: the Statement's subject digest. */
    head: text('head').notNull(),
    envelope: jsonb('envelope').notNull(),
    keyid: text('keyid').notNull(),
    signedAt: timestamp('signed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /**
     * 'full': the Statement carries every event (at drive start, phase ends, completion; what export
     * returns); 'delta': only the events since the checkpoint before it, linked to its head (after
     * each human action: ticks, sign-off, notes, waivers, check runs). docs/decisions/020.
     */
    kind: text('kind', { enum: ['full', 'delta'] }).notNull().default('full'),
  },
  (table) => [
    primaryKey({ columns: [table.runId, table.seq] }),
    check('run_checkpoints_seq_nonnegative', sql`${table.seq} >= 0`),
    check('run_checkpoints_kind_known', sql`${table.kind} in ('full', 'delta')`),
    check('run_checkpoints_head_hex', sql`${table.head} ~ '^[0-9a-f]{64}$'`),
  ],
);

/**
 * Every public key that has signed a checkpoint, kept after a rotation so old logs keep
 * verifying; `/signing-key.pem` publishes them all. `keyid` = sha256 hex of the key's DER (SPKI).
 */
export const signingKeys = pgTable(
  'signing_keys',
  {
    keyid: text('keyid').primaryKey(),
    publicKeyPem: text('public_key_pem').notNull(),
    firstUsedAt: timestamp('first_used_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [check('signing_keys_keyid_hex', sql`${table.keyid} ~ '^[0-9a-f]{64}$'`)],
);

/**
 * The store's copy of RUN_TRANSITIONS (db/run-lifecycle.ts), filled by the migrations; the
 * trigger runs_state_change_allowed reads it. A new transition is a new row in a new migration.
 */
export const runStateTransitions = pgTable(
  'run_state_transitions',
  {
    fromState: text('from_state').notNull(),
    toState: text('to_state').notNull(),
  },
  (table) => [primaryKey({ columns: [table.fromState, table.toState] })],
);

export type RunRow = typeof runs.$inferSelect;
export type NewRunRow = typeof runs.$inferInsert;
export type RunEventRow = typeof runEvents.$inferSelect;
export type RunCheckpointRow = typeof runCheckpoints.$inferSelect;
export type SigningKeyRow = typeof signingKeys.$inferSelect;

/**
 * The post-run report's summary (app/runs/run-report.ts buildRunReport), computed from the signed
 * events once per checkpoint instead of per page view, with the last event and chain head it
 * covers: the page uses it while the log has not moved past it, and a test recomputes it from the
 * events. Derived data: replaced at every checkpoint.
 */
export const runReportSummaries = pgTable('run_report_summaries', {
  runId: uuid('run_id')
    .primaryKey()
    .references(() => runs.id),
  throughSeq: integer('through_seq').notNull(),
  head: text('head').notNull(),
  summary: jsonb('summary').notNull(),
  computedAt: timestamp('computed_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
});

/**
 * Who is watching a run now, shared by every app instance (issue 15): one row per instance, run
 * and person, refreshed by the instance's batched heartbeat and counted only while fresh (an
 * instance that died stops refreshing; its rows expire). A courtesy, not a record: never audited.
 */
export const runWatchers = pgTable(
  'run_watchers',
  {
    instanceId: text('instance_id').notNull(),
    runId: uuid('run_id')
      .notNull()
      .references(() => runs.id, { onDelete: 'cascade' }),
    email: text('email').notNull(),
    role: text('role').notNull(),
    since: timestamp('since', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    seenAt: timestamp('seen_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.instanceId, table.runId, table.email] }), index('run_watchers_run').on(table.runId, table.seenAt)],
);
