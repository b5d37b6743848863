/**
 * Every read and write of the `runs` table, through Drizzle: one module, each function taking one
 * typed object. A RunRecord is the table's row as the schema infers it (outcome typed). Every
 * change of a run's state goes through transitionRun, which checks the lifecycle
 * (db/run-lifecycle.ts) and writes the run's events in the same transaction, so the signed log
 * always explains the row it signs. Filters are typed, never SQL passed in by a caller.
 */
import { and, asc, count, desc, eq, getTableColumns, inArray, isNull, lt, ne, or, sql, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import * as schema from '../../db/schema/index';
import { runCheckpoints, runEvents, runReportSummaries, runs, type FrozenPlan, type RunKind, type RunOutcome, type RunRow, type RunState } from '../../db/schema/index';
import { ACTIVE_RUN_STATES, isAllowedTransition, RUN_KINDS, RUN_STATES } from '../../db/run-lifecycle';
import type { StoreDb } from '../runtime/store.server';
import { appendRunEvent, assertRunId, inStoreTransaction, jsonPayload, parseRunId, pgExecutor, type LoggedRunEvent, type StoreExecutor } from './run-log.server';
import type { RunEventInput, Via } from './run-events';
import type { RunSortKey, SortDirection } from './run-sort';

export { RUN_SORT_KEYS, type RunSortKey, type SortDirection } from './run-sort';

/** A run as the engine, the pages and the command line read it: the row, as the schema types it. */
export type RunRecord = RunRow;

/** Drizzle over whatever the caller holds: the pool, or a pg client inside its transaction. */
function dbOf(executor: StoreExecutor): StoreDb {
  if ('$client' in executor) return executor as StoreDb;
  // Drizzle only sends queries through it; a client checked out of the pool (inside a transaction) serves as well as the pool.
  return drizzle(pgExecutor(executor) as pg.Pool, { schema });
}

// ---------------------------------------------------------------------------------------------
// Reading runs

export interface RunFilter {
  id?: string;
  planId?: string;
  target?: string;
  kind?: RunKind;
  states?: readonly RunState[];
  checksum?: string;
  /** Only runs whose outcome says verification passed. */
  verified?: boolean;
  /** Leave this run out. */
  exceptId?: string;
  /** Only runs whose heartbeat is older than this (or missing): what crash recovery looks at. */
  heartbeatOlderThanMs?: number;
  limit?: number;
}

function whereOf(filter: RunFilter): SQL | undefined {
  const conditions: (SQL | undefined)[] = [
    filter.id !== undefined ? eq(runs.id, filter.id) : undefined,
    filter.planId !== undefined ? eq(runs.planId, filter.planId) : undefined,
    filter.target !== undefined ? eq(runs.target, filter.target) : undefined,
    filter.kind !== undefined ? eq(runs.kind, filter.kind) : undefined,
    filter.states !== undefined ? inArray(runs.state, [...filter.states]) : undefined,
    filter.checksum !== undefined ? eq(runs.planChecksum, filter.checksum) : undefined,
    filter.verified !== undefined ? sql`coalesce((${runs.outcome}->>'verified')::boolean, false) = ${filter.verified}` : undefined,
    filter.exceptId !== undefined ? ne(runs.id, filter.exceptId) : undefined,
    filter.heartbeatOlderThanMs !== undefined
      ? or(isNull(runs.heartbeatAt), lt(runs.heartbeatAt, sql`now() - make_interval(secs => ${filter.heartbeatOlderThanMs}::float8 / 1000)`))
      : undefined,
  ];
  return and(...conditions.filter((condition): condition is SQL => condition !== undefined));
}

/** Runs matching a filter, newest first (at most `limit`, default 100). */
export async function findRuns(executor: StoreExecutor, filter: RunFilter = {}): Promise<RunRecord[]> {
  return dbOf(executor)
    .select()
    .from(runs)
    .where(whereOf(filter))
    .orderBy(desc(runs.createdAt), asc(runs.id))
    .limit(filter.limit ?? 100);
}

/** A run without its frozen plan (every file of the plan): what lists and the working-run rule read. */
export type RunSummaryRecord = Omit<RunRecord, 'frozenPlan'>;

const { frozenPlan: _frozenPlan, ...SUMMARY_COLUMNS } = getTableColumns(runs);

/** findRuns without the frozen plans: a list of twenty runs reads kilobytes, not megabytes. */
export async function findRunSummaries(executor: StoreExecutor, filter: RunFilter = {}): Promise<RunSummaryRecord[]> {
  return dbOf(executor)
    .select(SUMMARY_COLUMNS)
    .from(runs)
    .where(whereOf(filter))
    .orderBy(desc(runs.createdAt), asc(runs.id))
    .limit(filter.limit ?? 100);
}

/** One run by id (locked FOR UPDATE inside the caller's transaction when asked). */
export async function findRun(executor: StoreExecutor, runId: string, options: { forUpdate?: boolean } = {}): Promise<RunRecord | undefined> {
  const id = assertRunId(runId);
  const known = frozenPlans.get(id);
  if (known) {
    const query = dbOf(executor).select(SUMMARY_COLUMNS).from(runs).where(eq(runs.id, id));
    const [row] = options.forUpdate ? await query.for('update') : await query;
    return row ? { ...row, frozenPlan: known } : undefined;
  }
  const query = dbOf(executor).select().from(runs).where(eq(runs.id, id));
  const [row] = options.forUpdate ? await query.for('update') : await query;
  if (row) keepFrozenPlan(id, row.frozenPlan);
  return row;
}

/**
 * Frozen plans by run id. A run's frozen plan is written once, when the run is opened, and never
 * changed (every file of the plan, ~50 KB of JSON): a page that reads a few runs per request reads
 * their rows without it once this process has seen it. Per process; immutable, so never stale on
 * another instance.
 */
const frozenPlans = new Map<string, FrozenPlan>();
const FROZEN_PLANS_KEPT = 64;

function keepFrozenPlan(runId: string, frozen: FrozenPlan): void {
  frozenPlans.delete(runId);
  if (frozenPlans.size >= FROZEN_PLANS_KEPT) frozenPlans.delete(frozenPlans.keys().next().value!);
  frozenPlans.set(runId, frozen);
}

/** Whether a run exists; false for a malformed id too. */
export async function runExists(db: StoreDb, input: { runId: string }): Promise<boolean> {
  const id = parseRunId(input.runId);
  if (!id) return false;
  const rows = await db.select({ id: runs.id }).from(runs).where(eq(runs.id, id)).limit(1);
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Creating and changing runs

export interface NewRun {
  planId: string;
  planChecksum: string;
  target: string;
  kind: RunKind;
  frozenPlan: FrozenPlan;
  createdBy: string;
  /** The target's notification channels now (runsheet.config.ts `notify`): the run's events that notify go there. */
  notifyChannels?: string[];
}

/** Inserts a draft run (inside the caller's transaction); a second open run of one plan, target and kind fails with 23505 on runs_one_open_per_plan. */
export async function insertDraftRun(client: pg.ClientBase, run: NewRun): Promise<string> {
  const [row] = await dbOf(client)
    .insert(runs)
    .values({ ...run, state: 'draft' })
    .returning({ id: runs.id });
  return row!.id;
}

/** Columns a transition may set; 'now' is the store's clock. */
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

function columnsOf(columns: RunColumns): Partial<typeof runs.$inferInsert> {
  const now = sql`now()`;
  const at = (value: 'now' | null | undefined) => (value === undefined ? undefined : value === 'now' ? now : null);
  const set: Record<string, unknown> = {
    startedAt: at(columns.startedAt),
    finishedAt: at(columns.finishedAt),
    heartbeatAt: at(columns.heartbeatAt),
    signedOffAt: at(columns.signedOffAt),
    executedBy: columns.executedBy,
    ownerProcess: columns.ownerProcess,
    targetBackendPid: columns.targetBackendPid,
    signedOffBy: columns.signedOffBy,
    outcome: columns.outcome === undefined ? undefined : columns.outcome === null ? null : (jsonPayload(columns.outcome) as RunOutcome),
  };
  return Object.fromEntries(Object.entries(set).filter(([, value]) => value !== undefined)) as Partial<typeof runs.$inferInsert>;
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
  /** How the change came (web, api, cli); absent for the system's own. */
  via?: Via;
  set?: RunColumns;
  /** Events appended in the same transaction, before 'state.changed'. */
  events?: RunEventInput[];
  /** Extra fields of the 'state.changed' payload (the gates still open). */
  details?: { openGates?: { id: string; detail: string }[] };
  /**
   * More writes in the same store transaction, once the run is known to be in `from` and before
   * its events (a watch's own row moves with its run); throwing rolls everything back.
   */
  also?: (client: pg.ClientBase, current: RunRecord) => Promise<void>;
}

export type TransitionResult = { changed: true; from: RunState; run: RunRecord; events: LoggedRunEvent[] } | { changed: false; state: RunState | undefined };

/**
 * Moves a run from one of `from` to `to` (with columns and events) in one store transaction, or
 * changes nothing when the run is in another state. A move the lifecycle does not allow is a bug:
 * refused here before anything is written (and by the store's trigger, should code get past
 * this). A unique violation (23505) propagates: the caller says "already running".
 */
export async function transitionRun(store: { pool: pg.Pool }, transition: RunTransition): Promise<TransitionResult> {
  if (transition.to) {
    const refused = transition.from.filter((from) => from !== transition.to && !isAllowedTransition(from, transition.to!));
    if (refused.length > 0) throw new Error(`run lifecycle: ${refused.join(', ')} → ${transition.to} is not an allowed transition (db/run-lifecycle.ts)`);
  }
  return inStoreTransaction(store.pool, async (client) => {
    const current = await findRun(client, transition.runId, { forUpdate: true });
    if (!current || !transition.from.includes(current.state)) return { changed: false, state: current?.state };
    await transition.also?.(client, current);
    const set = { ...columnsOf(transition.set ?? {}), ...(transition.to ? { state: transition.to } : {}) };
    if (Object.keys(set).length > 0) await dbOf(client).update(runs).set(set).where(eq(runs.id, current.id));
    const events: LoggedRunEvent[] = [];
    const who = { runId: current.id, actor: transition.actor, role: transition.role ?? null, ...(transition.via ? { via: transition.via } : {}) };
    for (const event of transition.events ?? []) events.push(await appendRunEvent(client, { ...who, ...event }));
    if (transition.to && transition.to !== current.state) {
      events.push(await appendRunEvent(client, { ...who, type: 'state.changed', payload: { from: current.state, to: transition.to, reason: transition.reason, ...transition.details } }));
    }
    const run = (await findRun(client, current.id))!;
    return { changed: true, from: current.state, run, events };
  });
}

/** Refreshes the heartbeat of a run this process drives (only while it holds its target). */
export async function touchHeartbeat(store: { pool: pg.Pool }, runId: string): Promise<void> {
  await dbOf(store.pool)
    .update(runs)
    .set({ heartbeatAt: sql`now()` })
    .where(and(eq(runs.id, runId), inArray(runs.state, [...ACTIVE_RUN_STATES])));
}

/** Whether a store error is a unique violation (of `constraint`), whether pg's own or wrapped by Drizzle (its `cause`). */
export function isUniqueViolation(error: unknown, constraint?: string): boolean {
  const failure = (error as { code?: string; cause?: unknown })?.code === undefined ? ((error as { cause?: unknown })?.cause as { code?: string; constraint?: string }) : (error as { code?: string; constraint?: string });
  return failure?.code === '23505' && (constraint === undefined || failure.constraint === constraint);
}

// ---------------------------------------------------------------------------------------------
// The history page and the report header

/** The columns every run listing and the report header show. */
const RUN_SUMMARY_COLUMNS = {
  id: runs.id,
  planId: runs.planId,
  planChecksum: runs.planChecksum,
  target: runs.target,
  kind: runs.kind,
  state: runs.state,
  createdBy: runs.createdBy,
  createdAt: runs.createdAt,
  executedBy: runs.executedBy,
  signedOffBy: runs.signedOffBy,
  startedAt: runs.startedAt,
  finishedAt: runs.finishedAt,
};

export interface RunListFilters {
  plan?: string;
  target?: string;
  kind?: RunKind;
  state?: RunState;
  /** An account's e-mail: runs it created, executed or signed off. */
  person?: string;
}

export interface ListRunsInput {
  filters: RunListFilters;
  sort: { key: RunSortKey; direction: SortDirection };
  limit: number;
  offset: number;
}

export type RunListRow = Pick<RunRecord, keyof typeof RUN_SUMMARY_COLUMNS> & {
  /** finished − started, in ms; null until the run has both (the apply's own: a rollback never stretches it). */
  durationMs: number | null;
  /** Why the run is in its state (its latest state change's reason). */
  reason: string | null;
};

export interface RunListPage {
  rows: RunListRow[];
  /** Runs matching the filters, over every page. */
  total: number;
}

/** Hard ceiling on a page, whatever the URL asks. */
export const MAX_PAGE_SIZE = 200;

const durationMs = sql<number | null>`(extract(epoch from (${runs.finishedAt} - ${runs.startedAt})) * 1000)::float8`;
/** Why the run is in its state: the reason of its latest state change (the run log says it once). */
const stateReason = sql<string | null>`(select ${runEvents.payload} ->> 'reason' from ${runEvents}
  where ${runEvents.runId} = ${runs.id} and ${runEvents.type} = 'state.changed' order by ${runEvents.seq} desc limit 1)`;

const SORT_COLUMNS: Record<RunSortKey, SQL> = {
  started: sql`${runs.startedAt}`,
  created: sql`${runs.createdAt}`,
  finished: sql`${runs.finishedAt}`,
  duration: durationMs,
  plan: sql`${runs.planId}`,
  target: sql`${runs.target}`,
  state: sql`${runs.state}`,
};

function historyWhere(filters: RunListFilters): SQL | undefined {
  const person = filters.person ? or(eq(runs.createdBy, filters.person), eq(runs.executedBy, filters.person), eq(runs.signedOffBy, filters.person)) : undefined;
  return and(...[whereOf({ planId: filters.plan, target: filters.target, kind: filters.kind, states: filters.state ? [filters.state] : undefined }), person].filter((condition): condition is SQL => condition !== undefined));
}

/** A page of the run history, filtered and sorted in the database, with the total over every page. */
export async function listRunHistory(db: StoreDb, input: ListRunsInput): Promise<RunListPage> {
  const where = historyWhere(input.filters);
  const column = SORT_COLUMNS[input.sort.key];
  // Runs not started (or not finished) yet sort last either way; ties fall back to newest first.
  const primary = input.sort.direction === 'asc' ? sql`${column} asc nulls last` : sql`${column} desc nulls last`;
  const limit = Math.max(1, Math.min(MAX_PAGE_SIZE, Math.trunc(input.limit)));
  const offset = Math.max(0, Math.trunc(input.offset));
  const [rows, totals] = await Promise.all([
    db
      .select({ ...RUN_SUMMARY_COLUMNS, durationMs, reason: stateReason })
      .from(runs)
      .where(where)
      .orderBy(primary, desc(runs.createdAt), asc(runs.id))
      .limit(limit)
      .offset(offset),
    db.select({ total: count() }).from(runs).where(where),
  ]);
  return { rows: rows.map((row) => ({ ...row, durationMs: row.durationMs === null ? null : Number(row.durationMs) })), total: totals[0]?.total ?? 0 };
}

export interface RunFacets {
  plans: string[];
  targets: string[];
  people: string[];
}

/** The values the history's filters offer: every plan, target and person that appears on a run. */
export async function listRunFacets(db: StoreDb): Promise<RunFacets> {
  const [plans, targets, people] = await Promise.all([
    db.selectDistinct({ value: runs.planId }).from(runs).orderBy(runs.planId),
    db.selectDistinct({ value: runs.target }).from(runs).orderBy(runs.target),
    db
      .select({ value: sql<string>`person` })
      .from(
        sql`(select ${runs.createdBy} as person from ${runs}
              union select ${runs.executedBy} from ${runs}
              union select ${runs.signedOffBy} from ${runs}) as people`,
      )
      .where(sql`person is not null`)
      .orderBy(sql`person`),
  ]);
  return { plans: plans.map((row) => row.value), targets: targets.map((row) => row.value), people: people.map((row) => row.value) };
}

export type RunForReport = Pick<RunRecord, keyof typeof RUN_SUMMARY_COLUMNS | 'signedOffAt' | 'outcome'> & {
  eventCount: number;
  lastSeq: number;
  /** The latest signed checkpoint: through which event, and when. */
  signedThroughSeq: number | null;
  signedAt: Date | null;
};

/** The plan.yaml text frozen with a run (not every SQL file); null when there is none. */
export async function readFrozenPlanYaml(db: StoreDb, runId: string): Promise<string | null> {
  const [row] = await db
    .select({ yaml: sql<string | null>`(select file->>'content' from jsonb_array_elements(${runs.frozenPlan}->'files') as file where file->>'path' = 'plan.yaml' limit 1)` })
    .from(runs)
    .where(eq(runs.id, assertRunId(runId)));
  return row?.yaml ?? null;
}

/** The target a run was opened on: written when the run opens and never changed. */
export async function readRunTargetName(db: StoreDb, input: { runId: string }): Promise<string | undefined> {
  const id = parseRunId(input.runId);
  if (!id) return undefined;
  const [row] = await db.select({ target: runs.target }).from(runs).where(eq(runs.id, id));
  return row?.target;
}

/** One run with what its report header needs; undefined for an unknown or malformed id. */
export async function readRunForReport(db: StoreDb, input: { runId: string }): Promise<RunForReport | undefined> {
  const id = parseRunId(input.runId);
  if (!id) return undefined;
  const [row] = await db
    .select({
      ...RUN_SUMMARY_COLUMNS,
      signedOffAt: runs.signedOffAt,
      outcome: runs.outcome,
      eventCount: sql<number>`(select count(*)::int from ${runEvents} where ${runEvents.runId} = ${runs.id})`,
      lastSeq: sql<number>`(select coalesce(max(${runEvents.seq}), 0)::int from ${runEvents} where ${runEvents.runId} = ${runs.id})`,
    })
    .from(runs)
    .where(eq(runs.id, id));
  if (!row) return undefined;
  // What can be downloaded is the latest full checkpoint (a delta carries only its own events).
  const [checkpoint] = await db
    .select({ seq: runCheckpoints.seq, signedAt: runCheckpoints.signedAt })
    .from(runCheckpoints)
    .where(and(eq(runCheckpoints.runId, id), eq(runCheckpoints.kind, 'full')))
    .orderBy(desc(runCheckpoints.seq))
    .limit(1);
  return {
    ...row,
    eventCount: Number(row.eventCount),
    lastSeq: Number(row.lastSeq),
    signedThroughSeq: checkpoint?.seq ?? null,
    signedAt: checkpoint?.signedAt ?? null,
  };
}

export function isRunKind(value: unknown): value is RunKind {
  return typeof value === 'string' && (RUN_KINDS as readonly string[]).includes(value);
}

export function isRunState(value: unknown): value is RunState {
  return typeof value === 'string' && (RUN_STATES as readonly string[]).includes(value);
}

/**
 * When a run of these plans last started or ended on a target (the store's clock): facts read
 * before it describe the target as it was, and are read again before anything is judged from them.
 */
export async function latestRunActivity(db: StoreDb, input: { target: string; planIds: string[] }): Promise<Date | null> {
  const [row] = await db
    .select({ at: sql<Date | null>`max(greatest(${runs.startedAt}, ${runs.finishedAt}))` })
    .from(runs)
    .where(and(eq(runs.target, input.target), inArray(runs.planId, input.planIds)));
  return row?.at ? new Date(row.at) : null;
}

/** The stored report summary of a run and the last event it covers; undefined before its first checkpoint. */
export async function readReportSummary(db: StoreDb, runId: string): Promise<{ throughSeq: number; head: string; summary: unknown } | undefined> {
  const [row] = await db
    .select({ throughSeq: runReportSummaries.throughSeq, head: runReportSummaries.head, summary: runReportSummaries.summary })
    .from(runReportSummaries)
    .where(eq(runReportSummaries.runId, assertRunId(runId)));
  return row;
}

/** Which events the stored summary covers, without reading it. */
export async function readReportSummaryHead(db: StoreDb, runId: string): Promise<{ throughSeq: number; head: string } | undefined> {
  const [row] = await db
    .select({ throughSeq: runReportSummaries.throughSeq, head: runReportSummaries.head })
    .from(runReportSummaries)
    .where(eq(runReportSummaries.runId, assertRunId(runId)));
  return row;
}

/**
 * The stored summary with its statement list cut to a digest in the store (the first, the slowest
 * and the last few, as digestStatements does): a backfill's 2,000 statements are not read out of
 * the store, parsed and sent for a page that shows thirty.
 */
export async function readReportSummaryDigest(
  db: StoreDb,
  runId: string,
  digest: { first: number; slowest: number; last: number },
): Promise<{ throughSeq: number; head: string; summary: Record<string, unknown>; statementCount: number; slowestSeqs: number[] } | undefined> {
  const id = assertRunId(runId);
  // The summary is detoasted once (the materialised CTE), its statements unnested once.
  const { rows } = await db.execute<{ throughSeq: number; head: string; summary: Record<string, unknown>; statementCount: number; slowestSeqs: number[] | null; statements: unknown[] | null }>(sql`
    with stored as materialized (
      select through_seq, head, summary - 'statements' as rest, coalesce(summary->'statements', '[]'::jsonb) as list
        from run_report_summaries where run_id = ${id}
    ), listed as materialized (
      select e.value, e.ord, (e.value->>'seq')::int as seq, (e.value->>'durationMs')::float8 as ms
        from stored, jsonb_array_elements(stored.list) with ordinality as e(value, ord)
    ), slowest as (
      select array_agg(seq order by ms desc nulls last, ord) as seqs
        from (select seq, ms, ord from listed order by ms desc nulls last, ord limit ${digest.slowest}) x
    ), counted as (select count(*)::int as n from listed)
    select stored.through_seq as "throughSeq", stored.head, stored.rest as summary, counted.n as "statementCount", slowest.seqs as "slowestSeqs",
           (select jsonb_agg(listed.value order by listed.ord) from listed
             where listed.ord <= ${digest.first} or listed.ord > counted.n - ${digest.last} or listed.seq = any(coalesce(slowest.seqs, '{}'))) as statements
      from stored, slowest, counted`);
  const row = rows[0];
  if (!row) return undefined;
  return { throughSeq: Number(row.throughSeq), head: row.head, summary: { ...row.summary, statements: row.statements ?? [] }, statementCount: Number(row.statementCount), slowestSeqs: row.slowestSeqs ?? [] };
}

/** Replaces the run's stored report summary (derived from its events through `throughSeq`). */
export async function writeReportSummary(db: StoreDb, input: { runId: string; throughSeq: number; head: string; summary: unknown }): Promise<void> {
  const values = { runId: assertRunId(input.runId), throughSeq: input.throughSeq, head: input.head, summary: input.summary, computedAt: new Date() };
  await db
    .insert(runReportSummaries)
    .values(values)
    .onConflictDoUpdate({ target: runReportSummaries.runId, set: { throughSeq: values.throughSeq, head: values.head, summary: values.summary, computedAt: values.computedAt }, where: sql`${runReportSummaries.throughSeq} <= ${values.throughSeq}` });
}
