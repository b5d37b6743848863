/**
 * The target's own ledger: what the target has applied, read from the target itself. The engine
 * writes a row in the same transaction as a transactional step, so a lost COMMIT acknowledgement
 * is settled by reading it. This module owns the DDL, every read and every write
 * (docs/decisions/002-target-ledger.md).
 */
import type pg from 'pg';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';

/** Idempotent: safe to run on every apply, and by two engines at once (see ensureLedger). */
export const LEDGER_DDL = `create schema if not exists runsheet;

create table if not exists runsheet.ledger (
  id bigserial primary key,
  run_id uuid not null,
  plan_id text not null,
  checksum text not null,
  action text not null check (action in ('apply', 'rollback')),
  outcome text not null check (outcome in ('applied', 'rolled_back', 'partial')),
  steps_completed jsonb not null default '[]',
  applied_by text not null,
  applied_at timestamptz not null default clock_timestamp(),
  equivalent_plan_ids text[] not null default '{}',
  constraint ledger_outcome_matches_action check (
    (action = 'apply' and outcome in ('applied', 'partial')) or
    (action = 'rollback' and outcome in ('rolled_back', 'partial'))
  )
);

create index if not exists ledger_plan_idx on runsheet.ledger (plan_id, applied_at desc);

comment on table runsheet.ledger is
  'Written by Runsheet: one row per apply or rollback of a plan on this database. Append-only.';

-- Anchors of the run log outside Runsheet's store (docs/decisions/020): each ledger row carries the
-- run's latest signed checkpoint at that moment, and each drive's end writes one more anchor row.
alter table runsheet.ledger add column if not exists anchor_seq integer;
alter table runsheet.ledger add column if not exists anchor_head text;
alter table runsheet.ledger add column if not exists anchor_checkpoints integer;

create table if not exists runsheet.run_anchors (
  run_id uuid not null,
  seq integer not null,
  head text not null,
  checkpoints integer not null,
  anchored_at timestamptz not null default clock_timestamp(),
  primary key (run_id, seq)
);

comment on table runsheet.run_anchors is
  'Written by Runsheet: the signed head of a run log when a drive of it ended. Append-only.';

-- What rollbacks kept of what they dropped, and the restores from them (docs/decisions/031).
create table if not exists runsheet.backups (
  backup_table text primary key,
  run_id uuid not null,
  plan_id text not null,
  checksum text not null,
  object jsonb not null,
  key_columns text[] not null,
  columns text[] not null,
  rows bigint not null,
  bytes bigint not null,
  sha256 text not null,
  taken_at timestamptz not null default clock_timestamp()
);

create table if not exists runsheet.restores (
  id bigserial primary key,
  backup_table text not null,
  from_run_id uuid not null,
  run_id uuid not null,
  restored bigint not null,
  unchanged bigint not null,
  skipped bigint not null,
  skipped_rows jsonb not null default '[]',
  restored_by text not null,
  restored_at timestamptz not null default clock_timestamp()
);

comment on table runsheet.backups is
  'Written by Runsheet: a copy in schema runsheet_backup of a column or table a rollback dropped. Never deleted by Runsheet.';
`;


/**
 * Creates the ledger when it is missing. Inside the caller's transaction the DDL commits (or rolls
 * back) with it; outside one, the statements run as one implicit transaction.
 */
export async function ensureLedger(client: pg.ClientBase): Promise<void> {
  // The newest object of the DDL: a ledger made by an older version gets its additions too.
  const { rows } = await client.query<{ present: boolean }>(`select to_regclass('runsheet.restores') is not null as present`);
  if (rows[0]?.present) return;
  await client.query(`select pg_advisory_xact_lock(${ADVISORY_LOCKS.ledgerDdl});\n${LEDGER_DDL}`);
}

export type PlanLedgerStateName = 'not_applied' | 'applied' | 'rolled_back';

export interface LedgerEntry {
  id: number;
  runId: string;
  planId: string;
  checksum: string;
  action: 'apply' | 'rollback';
  outcome: 'applied' | 'rolled_back' | 'partial';
  stepsCompleted: unknown;
  by: string;
  /** ISO */
  at: string;
  equivalentPlanIds: string[];
}

export interface PlanLedgerState {
  state: PlanLedgerStateName;
  /** The run, plan, checksum, person and time of the row that decided `state` (the plan may be one this is equivalent_to). */
  runId?: string;
  planId?: string;
  checksum?: string;
  by?: string;
  at?: string;
  /**
   * The newest row when it is a partial apply or rollback (a non-transactional step stopped
   * midway): it does not change `state`, but the page must say so.
   */
  partial?: LedgerEntry;
  /** Newest first. */
  history: LedgerEntry[];
  /** False when the target has no runsheet.ledger (nothing was ever applied by Runsheet). */
  ledgerPresent: boolean;
}

interface LedgerRow {
  id: string;
  run_id: string;
  plan_id: string;
  checksum: string;
  action: LedgerEntry['action'];
  outcome: LedgerEntry['outcome'];
  steps_completed: unknown;
  applied_by: string;
  applied_at: Date;
  equivalent_plan_ids: string[];
}

const HISTORY_LIMIT = 100;

export interface LedgerReadOptions {
  /**
   * The plan's own `equivalent_to`: plans that make the same change. Their rows count for this
   * plan too (rows that list this plan, or one of these, in equivalent_plan_ids always do).
   */
  equivalentTo?: readonly string[];
}

export async function readPlanLedgerState(pool: pg.Pool | pg.ClientBase, planId: string, options: LedgerReadOptions = {}): Promise<PlanLedgerState> {
  const presence = await pool.query<{ present: boolean }>(`select to_regclass('runsheet.ledger') is not null as present`);
  if (!presence.rows[0]?.present) return { state: 'not_applied', history: [], ledgerPresent: false };

  const planIds = [planId, ...(options.equivalentTo ?? []).filter((id) => id !== planId)];
  const { rows } = await pool.query<LedgerRow>(
    `select id, run_id, plan_id, checksum, action, outcome, steps_completed, applied_by, applied_at, equivalent_plan_ids
       from runsheet.ledger
      where plan_id = any ($1::text[]) or equivalent_plan_ids && $1::text[]
      order by applied_at desc, id desc
      limit ${HISTORY_LIMIT}`,
    [planIds],
  );
  const history = rows.map(toEntry);
  const newest = history[0];
  const decisive = history.find((entry) => entry.outcome !== 'partial');
  const partial = newest && newest.outcome === 'partial' ? { partial: newest } : {};
  if (!decisive) return { state: 'not_applied', ...partial, history, ledgerPresent: true };
  const state: PlanLedgerStateName = decisive.outcome === 'applied' ? 'applied' : 'rolled_back';
  return {
    state,
    runId: decisive.runId,
    planId: decisive.planId,
    checksum: decisive.checksum,
    by: decisive.by,
    at: decisive.at,
    ...partial,
    history,
    ledgerPresent: true,
  };
}

function toEntry(row: LedgerRow): LedgerEntry {
  return {
    id: Number(row.id),
    runId: row.run_id,
    planId: row.plan_id,
    checksum: row.checksum,
    action: row.action,
    outcome: row.outcome,
    stepsCompleted: row.steps_completed,
    by: row.applied_by,
    at: row.applied_at.toISOString(),
    equivalentPlanIds: row.equivalent_plan_ids,
  };
}

/**
 * Where each batched backfill stopped: one row per plan and step, updated in the same transaction
 * as each batch, so a backfill stopped by a failure, a cancel or a killed process resumes at the
 * first key after the last committed batch (no row done twice, none skipped). Idempotent.
 */
export const BACKFILL_PROGRESS_DDL = `create schema if not exists runsheet;

create table if not exists runsheet.backfill_progress (
  plan_id text not null,
  step_id text not null,
  template_sha256 text not null,
  table_name text not null,
  table_oid oid not null,
  key_column text not null,
  last_key text,
  rows_done bigint not null default 0,
  rows_updated bigint not null default 0,
  batches bigint not null default 0,
  run_id uuid not null,
  started_at timestamptz not null default clock_timestamp(),
  updated_at timestamptz not null default clock_timestamp(),
  completed_at timestamptz,
  primary key (plan_id, step_id)
);

comment on table runsheet.backfill_progress is
  'Written by Runsheet: the last key a batched backfill step committed, updated in the same transaction as each batch. template_sha256 covers the UPDATE and the table and key it walks, table_oid the table itself: another value starts over.';
`;

/** Creates runsheet.backfill_progress when it is missing (same lock as the ledger's DDL). */
export async function ensureBackfillProgress(client: pg.ClientBase): Promise<void> {
  const { rows } = await client.query<{ present: boolean }>(`select to_regclass('runsheet.backfill_progress') is not null as present`);
  if (rows[0]?.present) return;
  await client.query(`select pg_advisory_xact_lock(${ADVISORY_LOCKS.ledgerDdl});\n${BACKFILL_PROGRESS_DDL}`);
}

export interface BackfillProgress {
  planId: string;
  stepId: string;
  templateSha256: string;
  table: string;
  key: string;
  /** The last key of the last committed batch, as text; null before the first. */
  lastKey: string | null;
  /** Rows the batches walked (keys covered). */
  rowsDone: number;
  /** Rows the UPDATE changed. */
  rowsUpdated: number;
  batches: number;
  runId: string;
  /** ISO */
  startedAt: string;
  updatedAt: string;
  completedAt: string | null;
}

/** The backfill cursors of a plan on a target (empty when there are none). */
export async function readBackfillProgress(pool: pg.Pool | pg.ClientBase, planId: string): Promise<BackfillProgress[]> {
  const presence = await pool.query<{ present: boolean }>(`select to_regclass('runsheet.backfill_progress') is not null as present`);
  if (!presence.rows[0]?.present) return [];
  const { rows } = await pool.query<{
    plan_id: string;
    step_id: string;
    template_sha256: string;
    table_name: string;
    key_column: string;
    last_key: string | null;
    rows_done: string;
    rows_updated: string;
    batches: string;
    run_id: string;
    started_at: Date;
    updated_at: Date;
    completed_at: Date | null;
  }>(`select * from runsheet.backfill_progress where plan_id = $1 order by step_id`, [planId]);
  return rows.map((row) => ({
    planId: row.plan_id,
    stepId: row.step_id,
    templateSha256: row.template_sha256,
    table: row.table_name,
    key: row.key_column,
    lastKey: row.last_key,
    rowsDone: Number(row.rows_done),
    rowsUpdated: Number(row.rows_updated),
    batches: Number(row.batches),
    runId: row.run_id,
    startedAt: row.started_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    completedAt: row.completed_at?.toISOString() ?? null,
  }));
}

/** Forgets a plan's backfill cursors (a rollback does, in its ledger row's transaction). */
export async function clearBackfillProgress(client: pg.ClientBase, planId: string): Promise<void> {
  const { rows } = await client.query<{ present: boolean }>(`select to_regclass('runsheet.backfill_progress') is not null as present`);
  if (!rows[0]?.present) return;
  await client.query('delete from runsheet.backfill_progress where plan_id = $1', [planId]);
}

export interface LedgerRowOfRun {
  action: 'apply' | 'rollback';
  outcome: 'applied' | 'rolled_back' | 'partial';
  stepsCompleted: unknown;
  at: string;
}

/** What the target's ledger says this run wrote (empty when the target has no ledger). */
export async function readLedgerRowsOfRun(executor: pg.Pool | pg.ClientBase, runId: string): Promise<LedgerRowOfRun[]> {
  const presence = await executor.query<{ present: boolean }>(`select to_regclass('runsheet.ledger') is not null as present`);
  if (!presence.rows[0]?.present) return [];
  const { rows } = await executor.query<{ action: LedgerRowOfRun['action']; outcome: LedgerRowOfRun['outcome']; steps_completed: unknown; applied_at: Date }>(
    `select action, outcome, steps_completed, applied_at from runsheet.ledger where run_id = $1 order by applied_at, id`,
    [runId],
  );
  return rows.map((row) => ({ action: row.action, outcome: row.outcome, stepsCompleted: row.steps_completed, at: row.applied_at.toISOString() }));
}

export interface LedgerRowToWrite {
  runId: string;
  planId: string;
  checksum: string;
  action: 'apply' | 'rollback';
  outcome: 'applied' | 'rolled_back' | 'partial';
  stepsCompleted: unknown;
  appliedBy: string;
  equivalentPlanIds: string[];
  /** The run's latest signed checkpoint now: the target keeps its head outside Runsheet's store. */
  anchor?: RunAnchor;
}

/** A signed head of a run log, kept on the target. */
export interface RunAnchor {
  seq: number;
  head: string;
  /** How many checkpoints the run had then (the store may hold more later, never fewer). */
  checkpoints: number;
}

/** Writes one ledger row on `client`: inside its open transaction, or on its own. */
export async function writeLedgerRow(client: pg.ClientBase, row: LedgerRowToWrite): Promise<void> {
  await ensureLedger(client);
  await client.query(
    `insert into runsheet.ledger (run_id, plan_id, checksum, action, outcome, steps_completed, applied_by, equivalent_plan_ids, anchor_seq, anchor_head, anchor_checkpoints)
     values ($1, $2, $3, $4, $5, $6::jsonb, $7, $8::text[], $9, $10, $11)`,
    [
      row.runId,
      row.planId,
      row.checksum,
      row.action,
      row.outcome,
      JSON.stringify(row.stepsCompleted ?? []),
      row.appliedBy,
      row.equivalentPlanIds,
      row.anchor?.seq ?? null,
      row.anchor?.head ?? null,
      row.anchor?.checkpoints ?? null,
    ],
  );
}

/** The anchor of a drive's end (its final checkpoint), outside any migration transaction; idempotent. */
export async function writeRunAnchor(pool: pg.Pool, runId: string, anchor: RunAnchor): Promise<void> {
  const client = await pool.connect();
  try {
    await ensureLedger(client);
    await client.query(
      `insert into runsheet.run_anchors (run_id, seq, head, checkpoints) values ($1, $2, $3, $4) on conflict (run_id, seq) do nothing`,
      [runId, anchor.seq, anchor.head, anchor.checkpoints],
    );
  } finally {
    client.release();
  }
}

/** Every anchor of a run on the target: those its ledger rows carry and those its drives' ends wrote. */
export async function readRunAnchors(pool: pg.Pool | pg.ClientBase, runId: string): Promise<(RunAnchor & { source: 'ledger' | 'end'; at: string })[]> {
  const presence = await pool.query<{ ledger: boolean; anchors: boolean }>(
    `select to_regclass('runsheet.ledger') is not null as ledger, to_regclass('runsheet.run_anchors') is not null as anchors`,
  );
  const { ledger, anchors } = presence.rows[0] ?? { ledger: false, anchors: false };
  if (!ledger || !anchors) return [];
  const { rows } = await pool.query<{ source: 'ledger' | 'end'; seq: number; head: string; checkpoints: number; at: Date }>(
    `select 'ledger' as source, anchor_seq as seq, anchor_head as head, anchor_checkpoints as checkpoints, applied_at as at
       from runsheet.ledger where run_id = $1 and anchor_seq is not null
     union all
     select 'end', seq, head, checkpoints, anchored_at from runsheet.run_anchors where run_id = $1
     order by seq, at`,
    [runId],
  );
  return rows.map((row) => ({ source: row.source, seq: row.seq, head: row.head, checkpoints: row.checkpoints, at: row.at.toISOString() }));
}

/** writeLedgerRow on a pool connection (when the run's own connection is gone). */
export async function writeLedgerRowWithPool(pool: pg.Pool, row: LedgerRowToWrite): Promise<void> {
  const client = await pool.connect();
  try {
    await writeLedgerRow(client, row);
  } finally {
    client.release();
  }
}
