/**
 * Every read of runs for the history, the post-run report and its event pages: one module, each
 * function taking one typed object and selecting only the columns it needs. Filters and sorting
 * are built with Drizzle's query builder: every value a person chose is a bind parameter, and a
 * sort key is one of RUN_SORT_KEYS, never text from the request.
 */
import { and, asc, count, desc, eq, gt, inArray, or, sql, type SQL } from 'drizzle-orm';
import { runCheckpoints, runEvents, runs, RUN_KINDS, RUN_STATES, type FrozenPlan, type RunKind, type RunState } from '../../db/schema/index';
import { assertRunId, type RunEvent } from '../runs/run-log.server';
import type { StoreDb } from '../runtime/store.server';
import type { RunSortKey, SortDirection } from './run-sort';
import { isRunsheetError } from '../runtime/errors';

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

export { RUN_SORT_KEYS, type RunSortKey, type SortDirection } from './run-sort';

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

export interface RunListRow {
  id: string;
  planId: string;
  planChecksum: string;
  target: string;
  kind: RunKind;
  state: RunState;
  createdBy: string;
  createdAt: Date;
  executedBy: string | null;
  signedOffBy: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** finished − started, in ms; null until the run has both. */
  durationMs: number | null;
}

export interface RunListPage {
  rows: RunListRow[];
  /** Runs matching the filters, over every page. */
  total: number;
}

/** Hard ceiling on a page, whatever the URL asks. */
export const MAX_PAGE_SIZE = 200;

const durationMs = sql<number | null>`(extract(epoch from (${runs.finishedAt} - ${runs.startedAt})) * 1000)::float8`;

const SORT_COLUMNS: Record<RunSortKey, SQL> = {
  started: sql`${runs.startedAt}`,
  created: sql`${runs.createdAt}`,
  finished: sql`${runs.finishedAt}`,
  duration: durationMs,
  plan: sql`${runs.planId}`,
  target: sql`${runs.target}`,
  state: sql`${runs.state}`,
};

function filterCondition(filters: RunListFilters): SQL | undefined {
  const conditions: (SQL | undefined)[] = [
    filters.plan ? eq(runs.planId, filters.plan) : undefined,
    filters.target ? eq(runs.target, filters.target) : undefined,
    filters.kind ? eq(runs.kind, filters.kind) : undefined,
    filters.state ? eq(runs.state, filters.state) : undefined,
    filters.person ? or(eq(runs.createdBy, filters.person), eq(runs.executedBy, filters.person), eq(runs.signedOffBy, filters.person)) : undefined,
  ];
  return and(...conditions.filter((condition): condition is SQL => condition !== undefined));
}

/** A page of runs, filtered and sorted in the database, with the total over every page. */
export async function listRuns(db: StoreDb, input: ListRunsInput): Promise<RunListPage> {
  const where = filterCondition(input.filters);
  const column = SORT_COLUMNS[input.sort.key];
  // Runs not started (or not finished) yet sort last either way; ties fall back to newest first.
  const primary = input.sort.direction === 'asc' ? sql`${column} asc nulls last` : sql`${column} desc nulls last`;
  const limit = Math.max(1, Math.min(MAX_PAGE_SIZE, Math.trunc(input.limit)));
  const offset = Math.max(0, Math.trunc(input.offset));
  const [rows, totals] = await Promise.all([
    db
      .select({
        ...RUN_SUMMARY_COLUMNS,
        durationMs,
      })
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
              union select ${runs.signedOffBy} from ${runs}) as people`
      )
      .where(sql`person is not null`)
      .orderBy(sql`person`),
  ]);
  return { plans: plans.map((row) => row.value), targets: targets.map((row) => row.value), people: people.map((row) => row.value) };
}

export interface RunForReport {
  id: string;
  planId: string;
  planChecksum: string;
  target: string;
  kind: RunKind;
  state: RunState;
  createdBy: string;
  createdAt: Date;
  signedOffBy: string | null;
  signedOffAt: Date | null;
  executedBy: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  outcome: unknown;
  /** The frozen plan's manifest and its plan.yaml text (not every SQL file). */
  frozenManifest: string | null;
  frozenPlanYaml: string | null;
  eventCount: number;
  lastSeq: number;
  /** The latest signed checkpoint: through which event, and when. */
  signedThroughSeq: number | null;
  signedAt: Date | null;
}

/** One run with what its report header needs; undefined for an unknown or malformed id. */
export async function readRunForReport(db: StoreDb, input: { runId: string }): Promise<RunForReport | undefined> {
  let id: string;
  try {
    id = assertRunId(input.runId);
  } catch (error) {
    if (isRunsheetError(error, 'invalid_input')) return undefined;
    throw error;
  }
  const planYaml = sql<string | null>`(select file->>'content' from jsonb_array_elements(${runs.frozenPlan}->'files') as file where file->>'path' = 'plan.yaml' limit 1)`;
  const [row] = await db
    .select({
      ...RUN_SUMMARY_COLUMNS,
      signedOffAt: runs.signedOffAt,
      outcome: runs.outcome,
      frozenManifest: sql<FrozenPlan['manifest'] | null>`${runs.frozenPlan}->>'manifest'`,
      frozenPlanYaml: planYaml,
      eventCount: sql<number>`(select count(*)::int from ${runEvents} where ${runEvents.runId} = ${runs.id})`,
      lastSeq: sql<number>`(select coalesce(max(${runEvents.seq}), 0)::int from ${runEvents} where ${runEvents.runId} = ${runs.id})`,
    })
    .from(runs)
    .where(eq(runs.id, id));
  if (!row) return undefined;
  const [checkpoint] = await db
    .select({ seq: runCheckpoints.seq, signedAt: runCheckpoints.signedAt })
    .from(runCheckpoints)
    .where(eq(runCheckpoints.runId, id))
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

/** Most events of a type the report reads at once (a log can hold tens of thousands of events). */
export const REPORT_EVENTS_LIMIT = 2_000;

/** The events of the given types, in seq order, at most `limit`: what the report summarises. */
export async function readRunEventsOfTypes(db: StoreDb, input: { runId: string; types: readonly string[]; limit?: number }): Promise<RunEvent[]> {
  const id = assertRunId(input.runId);
  if (input.types.length === 0) return [];
  return db
    .select(EVENT_SELECTION)
    .from(runEvents)
    .where(and(eq(runEvents.runId, id), inArray(runEvents.type, [...input.types])))
    .orderBy(asc(runEvents.seq))
    .limit(Math.max(1, Math.min(REPORT_EVENTS_LIMIT, input.limit ?? REPORT_EVENTS_LIMIT)));
}

/** Most events one page of the event list carries. */
export const MAX_EVENTS_PAGE = 1_000;

export interface RunEventsPage {
  events: RunEvent[];
  /** The last seq on this page (the cursor for the next one); afterSeq when the page is empty. */
  lastSeq: number;
  /** Whether events after this page exist (as of this read). */
  hasMore: boolean;
}

/** One page of a run's events after a cursor (seq), in seq order. */
export async function readRunEventsPage(db: StoreDb, input: { runId: string; afterSeq: number; limit: number }): Promise<RunEventsPage> {
  const id = assertRunId(input.runId);
  const limit = Math.max(1, Math.min(MAX_EVENTS_PAGE, Math.trunc(input.limit)));
  const afterSeq = Math.max(0, Math.trunc(input.afterSeq));
  // One more than asked tells whether another page follows without a count over the whole log.
  const rows = await db
    .select(EVENT_SELECTION)
    .from(runEvents)
    .where(and(eq(runEvents.runId, id), gt(runEvents.seq, afterSeq)))
    .orderBy(asc(runEvents.seq))
    .limit(limit + 1);
  const events = rows.slice(0, limit);
  return { events, lastSeq: events.at(-1)?.seq ?? afterSeq, hasMore: rows.length > limit };
}

const EVENT_SELECTION = {
  runId: runEvents.runId,
  seq: runEvents.seq,
  at: runEvents.at,
  actor: runEvents.actor,
  role: runEvents.role,
  type: runEvents.type,
  payload: runEvents.payload,
  prevHash: runEvents.prevHash,
  hash: runEvents.hash,
};

export function isRunKind(value: unknown): value is RunKind {
  return typeof value === 'string' && (RUN_KINDS as readonly string[]).includes(value);
}

export function isRunState(value: unknown): value is RunState {
  return typeof value === 'string' && (RUN_STATES as readonly string[]).includes(value);
}

/** Whether a run exists; false for a malformed id too. */
export async function runExists(db: StoreDb, input: { runId: string }): Promise<boolean> {
  let id: string;
  try {
    id = assertRunId(input.runId);
  } catch (error) {
    if (isRunsheetError(error, 'invalid_input')) return false;
    throw error;
  }
  const rows = await db.select({ id: runs.id }).from(runs).where(eq(runs.id, id)).limit(1);
  return rows.length > 0;
}
