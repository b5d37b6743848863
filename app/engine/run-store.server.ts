/**
 * Low-level run rows and state changes in the store. Every change of a run row goes with a run
 * event in the same transaction ('state.changed' for a state), so the signed log always explains
 * the row it signs.
 */
import type pg from 'pg';
import { jsonSafe } from '../checks/evaluate-expectation';
import { ACTIVE_RUN_STATES, type FrozenPlan, type RunKind, type RunState } from '../../db/schema/index';
import { appendRunEvent, inStoreTransaction, type RunEvent } from '../runs/run-log.server';
import type { EngineDeps } from './engine-deps.server';

/** A run as the engine and the dashboard read it. Timestamps are ISO strings from the store. */
export interface RunRecord {
  id: string;
  planId: string;
  planChecksum: string;
  target: string;
  kind: RunKind;
  state: RunState;
  frozenPlan: FrozenPlan;
  createdBy: string;
  createdAt: string;
  signedOffBy: string | null;
  signedOffAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  executedBy: string | null;
  heartbeatAt: string | null;
  targetBackendPid: number | null;
  ownerProcess: string | null;
  outcome: RunOutcome | null;
}

/** Summary of one step as the run's outcome keeps it. */
export interface StepSummary {
  stepId: string;
  title: string;
  transactional: boolean;
  ok: boolean;
  statementCount: number;
  completedCount: number;
  committed: boolean;
  durationMs: number;
  /** A step kind other than sql (create_index_concurrently, batched_backfill). */
  kind?: string;
  /** More than one: it was retried after lock timeouts. */
  attempts?: number;
  /** What the kind reports: the index and its validity, the backfill's last key and rows. */
  detail?: Record<string, unknown>;
}

export interface StepFailure {
  stepId: string;
  statementIndex: number;
  line: number;
  sqlstate?: string;
  message: string;
  detail?: string;
  hint?: string;
  blockers: unknown[];
  cancelled: boolean;
}

export interface PhaseTiming {
  phase: string;
  plannedMs: number | null;
  actualMs: number;
}

export interface ChecksSummary {
  passed: boolean;
  failed: string[];
  skipped: string[];
}

/** What a run did, kept in runs.outcome (and signed with the run). */
export interface RunOutcome {
  result?: RunState;
  phases?: PhaseTiming[];
  steps?: StepSummary[];
  failure?: StepFailure;
  /** A lock timeout (55P03): nothing changed; retry under a new run at a quieter moment. */
  retryable?: boolean;
  cancelledBy?: string;
  /** What this run wrote to the target's ledger: 'applied', 'partial', or nothing. */
  ledger?: { written: 'applied' | 'partial' | 'rolled_back' | null };
  /** Verification after apply (plan.verification) all passed. */
  verified?: boolean;
  verification?: ChecksSummary;
  postExecution?: ChecksSummary;
  error?: string;
  rehearsal?: {
    apply: { ok: boolean; steps: StepSummary[] };
    verification?: ChecksSummary;
    dataQuality?: ChecksSummary;
    rollback?: { ok: boolean; steps: StepSummary[] };
    rollbackVerification?: ChecksSummary;
    rolledBack: boolean;
  };
  rollback?: {
    result: RunState;
    steps: StepSummary[];
    failure?: StepFailure;
    cancelledBy?: string;
    retryable?: boolean;
    verification?: ChecksSummary;
    verified?: boolean;
    ledger?: { written: 'rolled_back' | 'partial' | null };
    phases: PhaseTiming[];
    error?: string;
  };
  interrupted?: {
    previousState: RunState;
    heartbeatAt: string | null;
    ownerProcess: string | null;
    /** Whether the target's ledger holds a row of this run (its COMMIT landed). */
    ledgerRows: { action: string; outcome: string; at: string }[];
  };
}

interface RunDbRow {
  id: string;
  plan_id: string;
  plan_checksum: string;
  target: string;
  kind: RunKind;
  state: RunState;
  frozen_plan: FrozenPlan;
  created_by: string;
  created_at: Date;
  signed_off_by: string | null;
  signed_off_at: Date | null;
  started_at: Date | null;
  finished_at: Date | null;
  executed_by: string | null;
  heartbeat_at: Date | null;
  target_backend_pid: number | null;
  owner_process: string | null;
  outcome: RunOutcome | null;
}

export const RUN_COLUMNS = `id::text as id, plan_id, plan_checksum, target, kind, state, frozen_plan, created_by, created_at,
  signed_off_by, signed_off_at, started_at, finished_at, executed_by, heartbeat_at, target_backend_pid, owner_process, outcome`;

const iso = (value: Date | null) => (value ? value.toISOString() : null);

export function toRunRecord(row: RunDbRow): RunRecord {
  return {
    id: row.id,
    planId: row.plan_id,
    planChecksum: row.plan_checksum,
    target: row.target,
    kind: row.kind,
    state: row.state,
    frozenPlan: row.frozen_plan,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    signedOffBy: row.signed_off_by,
    signedOffAt: iso(row.signed_off_at),
    startedAt: iso(row.started_at),
    finishedAt: iso(row.finished_at),
    executedBy: row.executed_by,
    heartbeatAt: iso(row.heartbeat_at),
    targetBackendPid: row.target_backend_pid,
    ownerProcess: row.owner_process,
    outcome: row.outcome,
  };
}

export async function selectRun(executor: pg.Pool | pg.ClientBase, runId: string, options: { forUpdate?: boolean } = {}): Promise<RunRecord | undefined> {
  const { rows } = await executor.query<RunDbRow>(`select ${RUN_COLUMNS} from runs where id = $1${options.forUpdate ? ' for update' : ''}`, [runId]);
  return rows[0] ? toRunRecord(rows[0]) : undefined;
}

export async function selectRuns(executor: pg.Pool | pg.ClientBase, whereSql: string, params: unknown[]): Promise<RunRecord[]> {
  const { rows } = await executor.query<RunDbRow>(`select ${RUN_COLUMNS} from runs ${whereSql}`, params);
  return rows.map(toRunRecord);
}

/** A JSON object for a run event or outcome: what JSON cannot carry is made JSON-safe. */
export function jsonPayload(value: unknown): Record<string, unknown> {
  const safe = jsonSafe(value);
  return safe === undefined || safe === null ? {} : (JSON.parse(JSON.stringify(safe)) as Record<string, unknown>);
}

/** Columns a transition may set; the names are fixed here, values always travel as parameters. */
export interface RunColumns {
  startedAt?: 'now' | null;
  finishedAt?: 'now' | null;
  heartbeatAt?: 'now' | null;
  executedBy?: string | null;
  ownerProcess?: string | null;
  targetBackendPid?: number | null;
  outcome?: RunOutcome | null;
  signedOffBy?: string | null;
  signedOffAt?: 'now' | null;
}

const COLUMN_NAMES: Record<keyof RunColumns, string> = {
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  heartbeatAt: 'heartbeat_at',
  executedBy: 'executed_by',
  ownerProcess: 'owner_process',
  targetBackendPid: 'target_backend_pid',
  outcome: 'outcome',
  signedOffBy: 'signed_off_by',
  signedOffAt: 'signed_off_at',
};

function setClause(columns: RunColumns, params: unknown[]): string[] {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(columns) as [keyof RunColumns, unknown][]) {
    if (value === undefined) continue;
    const column = COLUMN_NAMES[key];
    if (value === 'now') parts.push(`${column} = now()`);
    else if (key === 'outcome') {
      params.push(value === null ? null : JSON.stringify(jsonPayload(value)));
      parts.push(`${column} = $${params.length}::jsonb`);
    } else {
      params.push(value);
      parts.push(`${column} = $${params.length}`);
    }
  }
  return parts;
}

export interface EventToAppend {
  type: string;
  payload?: Record<string, unknown>;
}

export interface RunTransition {
  runId: string;
  /** The states the run may be in; otherwise nothing changes. */
  from: readonly RunState[];
  /** The new state; undefined: only columns and events change. */
  to?: RunState;
  reason: string;
  actor: string;
  role?: string | null;
  set?: RunColumns;
  /** Events appended in the same transaction, before 'state.changed'. */
  events?: EventToAppend[];
  /** Extra fields of the 'state.changed' payload. */
  details?: Record<string, unknown>;
}

export type TransitionResult = { changed: true; from: RunState; run: RunRecord; events: RunEvent[] } | { changed: false; state: RunState | undefined };

/**
 * Moves a run from one of `from` to `to` (with columns and events) in one store transaction, or
 * changes nothing when the run is in another state. A unique violation (23505 on
 * runs_one_active_per_target) propagates: the caller says "already running".
 */
export async function transitionRun(store: EngineDeps['store'], transition: RunTransition): Promise<TransitionResult> {
  return inStoreTransaction(store.pool, async (client) => {
    const current = await selectRun(client, transition.runId, { forUpdate: true });
    if (!current || !transition.from.includes(current.state)) return { changed: false, state: current?.state };
    const params: unknown[] = [transition.runId];
    const parts = setClause(transition.set ?? {}, params);
    if (transition.to) {
      params.push(transition.to);
      parts.push(`state = $${params.length}`);
    }
    if (parts.length > 0) await client.query(`update runs set ${parts.join(', ')} where id = $1`, params);
    const events: RunEvent[] = [];
    for (const event of transition.events ?? []) {
      events.push(await appendRunEvent(client, { runId: transition.runId, actor: transition.actor, role: transition.role ?? null, type: event.type, payload: event.payload ?? {} }));
    }
    if (transition.to && transition.to !== current.state) {
      events.push(
        await appendRunEvent(client, {
          runId: transition.runId,
          actor: transition.actor,
          role: transition.role ?? null,
          type: 'state.changed',
          payload: { from: current.state, to: transition.to, reason: transition.reason, ...jsonPayload(transition.details ?? {}) },
        }),
      );
    }
    const run = (await selectRun(client, transition.runId))!;
    return { changed: true, from: current.state, run, events };
  });
}

export const isActiveState = (state: RunState): boolean => (ACTIVE_RUN_STATES as readonly RunState[]).includes(state);

export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const failure = error as { code?: string; constraint?: string };
  return failure?.code === '23505' && (constraint === undefined || failure.constraint === constraint);
}
