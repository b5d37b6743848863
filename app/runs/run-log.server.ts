/**
 * The run log: append-only events, each hashed over the previous one
 * (docs/decisions/010-run-log-hash-chain.md). The only way to write an event (appendRunEvent,
 * which takes a typed RunEventInput of the union in run-events.ts and validates it) and the only
 * way to read one (readRunEvents and the page readers, which parse every row into a RunEvent).
 * Appends to one run are serialised by a transaction-scoped advisory lock, so two appends at once
 * never fork the chain; PostgreSQL itself refuses an UPDATE, DELETE or TRUNCATE, and an insert
 * that does not extend the chain.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import { and, asc, eq, gt, inArray, lte } from 'drizzle-orm';
import type pg from 'pg';
import { runEvents } from '../../db/schema/index';
import { jsonSafe } from '../checks/evaluate-expectation';
import type { StoreDb } from '../runtime/store.server';
import { parseRunEvent, RunEventBodySchema, type RunEvent, type RunEventInput, type RunEventType, type Via } from './run-events';
import { RunsheetError } from '../runtime/errors';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';
import { announceStoreChange, NOTIFICATIONS_CHANNEL, RUN_EVENTS_CHANNEL } from '../runtime/store-notifications.server';
import { notificationKindOf } from '../notifications/notification-kinds';

/** Versions the genesis and the hash input; a different scheme gets a new tag. */
export const RUN_LOG_VERSION = 'runsheet/run-log/v1';

/** The database clock as text: UTC, microseconds, fixed width (`2025-11-25T12:34:56.123456Z`). */
export const DB_CLOCK_SQL = `to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
/** The same rendering for a stored timestamptz column (a constant column name of this code, never input). */
export const utcText = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;


const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A pg pool or client, or the store's Drizzle handle (unwrapped to its pool). */
export type StoreExecutor = pg.Pool | pg.ClientBase | StoreDb;

/** An event exactly as stored (and signed): what the chain is computed over. */
export interface StoredRunEvent {
  runId: string;
  seq: number;
  /** Database clock, `YYYY-MM-DDTHH:MM:SS.ffffffZ`. */
  at: string;
  /** An account's e-mail, or 'system'. */
  actor: string;
  role: string | null;
  type: string;
  payload: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

/** An event as appended: who acts, and a typed event of the union. */
/** An event to append: who, how it came (`via`, kept in the payload), its type and payload. */
export type NewRunEvent = { runId: string; actor: string; role?: string | null; via?: Via } & RunEventInput;

/** A parsed event with its place in the chain: what appendRunEvent returns. */
export type LoggedRunEvent = RunEvent & { prevHash: string; hash: string };

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** RFC 8785 (JCS) via the `canonicalize` package; refuses what JSON cannot carry. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}

/** The prev_hash of event 1: sha256_hex("runsheet/run-log/v1\n" + run id as PostgreSQL prints it). */
export function genesisHash(runId: string): string {
  return sha256Hex(Buffer.from(`${RUN_LOG_VERSION}\n${runId}`, 'utf8'));
}

/** What is hashed for one event (with the previous hash as prefix), in RFC 8785 canonical JSON. */
export type HashedEventBody = ReturnType<typeof runEventBody>;

/** hash_n = sha256_hex(prev_hash_hex + "\n" + JCS(body)), over UTF-8 bytes. */
export function hashRunEvent(prevHash: string, body: HashedEventBody): string {
  return sha256Hex(Buffer.from(`${prevHash}\n${canonicalJson(body)}`, 'utf8'));
}

/** The hashed form of a stored event: its run, place, clock, author, and type and payload as stored. */
export function runEventBody(runId: string, event: Pick<StoredRunEvent, 'seq' | 'at' | 'actor' | 'role' | 'type' | 'payload'>) {
  return {
    run_id: runId,
    seq: event.seq,
    at: event.at,
    actor: event.actor,
    role: event.role ?? null,
    type: event.type,
    payload: event.payload,
  };
}

/** An event as a chain link, independent of where it was read from (the store or a signed statement). */
export type ChainLink = Omit<StoredRunEvent, 'runId'>;

export type ChainCheck =
  | { ok: true; head: string; hashes: string[] }
  | { ok: false; firstBadSeq: number; reason: string };

/**
 * Recompute the chain from the events alone: seq runs 1, 2, 3… without gaps, each prev_hash is
 * the previous hash (the genesis for event 1), each hash is recomputed from the event's contents.
 */
export function checkChain(runId: string, events: readonly ChainLink[]): ChainCheck {
  let previous = genesisHash(runId);
  const hashes: string[] = [];
  for (const [index, event] of events.entries()) {
    const expectedSeq = index + 1;
    if (event.seq !== expectedSeq) {
      return {
        ok: false,
        firstBadSeq: expectedSeq,
        reason:
          event.seq > expectedSeq
            ? `event ${expectedSeq} is missing (the next event is ${event.seq})`
            : `event ${event.seq} appears again or out of order where event ${expectedSeq} belongs`,
      };
    }
    if (event.prevHash !== previous) {
      return {
        ok: false,
        firstBadSeq: event.seq,
        reason: `event ${event.seq} does not follow event ${event.seq - 1}: its prev_hash is ${event.prevHash}, the chain says ${previous}`,
      };
    }
    let recomputed: string;
    try {
      recomputed = hashRunEvent(previous, runEventBody(runId, event));
    } catch (error) {
      return { ok: false, firstBadSeq: event.seq, reason: `event ${event.seq} cannot be hashed: ${(error as Error).message}` };
    }
    if (recomputed !== event.hash) {
      return {
        ok: false,
        firstBadSeq: event.seq,
        reason: `event ${event.seq} (${event.type}) does not match its hash: its contents were changed after it was written`,
      };
    }
    hashes.push(recomputed);
    previous = recomputed;
  }
  return { ok: true, head: previous, hashes };
}

/** A run id as the store prints it, or undefined when the text is not one. */
export function parseRunId(runId: string): string | undefined {
  const normalised = runId.trim().toLowerCase();
  return UUID.test(normalised) ? normalised : undefined;
}

export function assertRunId(runId: string): string {
  const normalised = runId.trim().toLowerCase();
  if (!UUID.test(normalised)) throw new RunsheetError('invalid_input', `"${runId}" is not a run id (a uuid)`);
  return normalised;
}

export function pgExecutor(executor: StoreExecutor): pg.Pool | pg.ClientBase {
  const candidate = ('$client' in executor ? (executor as { $client: unknown }).$client : executor) as pg.Pool | pg.ClientBase;
  if (typeof candidate?.query !== 'function') {
    // A Drizzle transaction has no pg client to lock with: pass the pg client the transaction runs on.
    throw new TypeError('the run log needs a pg Pool or client (or the store\'s Drizzle handle)');
  }
  return candidate;
}

function isClient(executor: pg.Pool | pg.ClientBase): executor is pg.ClientBase {
  return typeof (executor as pg.ClientBase).getTransactionStatus === 'function';
}

/**
 * Run `work` inside a transaction: a client already inside one is used as it is (the caller
 * commits; no savepoint); an idle client or a pool gets BEGIN … COMMIT here.
 */
export async function inStoreTransaction<T>(executor: StoreExecutor, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  const target = pgExecutor(executor);
  if (isClient(target)) {
    const status = target.getTransactionStatus();
    if (status === 'T') return work(target);
    if (status === 'E') throw new Error('the store transaction has already failed; roll it back before writing to the run log');
    if (status !== 'I') throw new Error('the store client is not connected');
    return ownTransaction(target, work);
  }
  const client = await target.connect();
  let broken: Error | undefined;
  try {
    return await ownTransaction(client, work, (error) => (broken = error));
  } finally {
    // A connection that could not even roll back is discarded, not handed to the next caller.
    client.release(broken);
  }
}

async function ownTransaction<T>(
  client: pg.ClientBase,
  work: (client: pg.ClientBase) => Promise<T>,
  onBroken: (error: Error) => void = () => {},
): Promise<T> {
  await client.query('begin');
  try {
    const result = await work(client);
    await client.query('commit');
    await announceAppendedRuns(client);
    return result;
  } catch (error) {
    appendedInTransaction.delete(client);
    notifiedInTransaction.delete(client);
    await client.query('rollback').catch((rollbackError: Error) => onBroken(rollbackError));
    throw error;
  }
}

/** Runs whose log got events in the transaction open on a client, with the newest seq of each: announced once it commits. */
const appendedInTransaction = new WeakMap<pg.ClientBase, Map<string, number>>();

/** Transactions open on a client that added rows to the notifications outbox: delivery workers are woken once it commits. */
const notifiedInTransaction = new WeakSet<pg.ClientBase>();

/** After the commit, in statements of their own: listening instances read the new events (store-notifications.server.ts). */
async function announceAppendedRuns(client: pg.ClientBase): Promise<void> {
  const appended = appendedInTransaction.get(client);
  appendedInTransaction.delete(client);
  for (const [runId, seq] of appended ?? []) await announceStoreChange(client, RUN_EVENTS_CHANNEL, runEventsAnnouncement(runId, seq));
  if (notifiedInTransaction.delete(client)) await announceStoreChange(client, NOTIFICATIONS_CHANNEL, '');
}

/** What a run-events announcement says: the run, and the newest seq its transaction committed. */
export function runEventsAnnouncement(runId: string, seq: number): string {
  return `${runId}:${seq}`;
}

/**
 * Reads an announcement back. An announcement without a seq (as an older instance sends it) or
 * with one that is not a number asks for a read whatever the reader has: `seq` is Infinity.
 */
export function parseRunEventsAnnouncement(payload: string): { runId: string; seq: number } {
  const [runId = '', seqText] = payload.split(':', 2);
  const seq = seqText === undefined ? Number.NaN : Number(seqText);
  return { runId, seq: Number.isSafeInteger(seq) && seq > 0 ? seq : Number.POSITIVE_INFINITY };
}

/**
 * The outbox rows of an event that notifies (app/notifications/notification-kinds.ts): one per
 * channel the run notifies, in the event's own transaction, so a committed event is never left
 * unannounced and a rolled-back one never announced. Rehearsals notify nobody.
 */
async function enqueueNotifications(client: pg.ClientBase, event: { runId: string; seq: number; type: string; payload: Record<string, unknown> }): Promise<void> {
  const kind = notificationKindOf({ type: event.type, payload: event.payload } as Parameters<typeof notificationKindOf>[0]);
  if (!kind) return;
  const { rowCount } = await client.query(
    `insert into notification_deliveries (channel, run_id, seq, kind, run_state)
     select channel, r.id, $2, $3, r.state from runs r cross join lateral unnest(r.notify_channels) as channel
      where r.id = $1 and r.kind = 'execute'`,
    [event.runId, event.seq, kind],
  );
  if (rowCount) notifiedInTransaction.add(client);
}

/**
 * Serialise writers of one run's chain until the transaction ends. A separate statement from the
 * reads that follow: under READ COMMITTED each later statement sees what the previous holder
 * committed.
 */
export async function lockRunLog(client: pg.ClientBase, runId: string): Promise<void> {
  await client.query('select pg_advisory_xact_lock($1::int4, hashtext($2::text))', [ADVISORY_LOCKS.runLogClass, runId]);
}

/** A JSON object for an event payload: what JSON cannot carry (Dates, bigints, undefined) is made JSON-safe. */
export function jsonPayload(value: unknown): Record<string, unknown> {
  const safe = jsonSafe(value);
  return safe === undefined || safe === null ? {} : (JSON.parse(JSON.stringify(safe)) as Record<string, unknown>);
}

/** A typed event of the union, checked: an append that does not fit the union is a bug, refused before anything is written. */
function validatedEvent(event: NewRunEvent): { type: RunEventType; payloadText: string } {
  // Refused first: what JSON cannot carry exactly (NaN, U+0000, a non-object) is a bug, never silently changed.
  const payloadText = payloadJson(event.via ? { ...(event.payload ?? {}), via: event.via } : (event.payload ?? {}));
  const payload = JSON.parse(payloadText) as Record<string, unknown>;
  const checked = RunEventBodySchema.safeParse({ type: event.type, payload });
  const misfit = (problems: string) => new TypeError(`a "${String(event.type)}" event does not fit the run-event union (app/runs/run-events.ts): ${problems}`);
  if (!checked.success) throw misfit(checked.error.issues.map((issue) => `${issue.path.join('.') || 'event'}: ${issue.message}`).join('; '));
  // Parsing drops keys the union does not declare: a payload that loses any was not declared in full.
  if (canonicalJson(checked.data.payload) !== canonicalJson(payload)) throw misfit(`it carries keys the union does not declare (${undeclaredKeys(payload, checked.data.payload).join(', ')})`);
  return { type: checked.data.type, payloadText };
}

/** The paths of keys in `written` that `kept` lost (what the union does not declare). */
function undeclaredKeys(written: unknown, kept: unknown, at = 'payload'): string[] {
  if (Array.isArray(written)) return written.flatMap((item, index) => undeclaredKeys(item, Array.isArray(kept) ? kept[index] : undefined, `${at}[${index}]`));
  if (!written || typeof written !== 'object') return [];
  const keptObject = (kept && typeof kept === 'object' ? kept : {}) as Record<string, unknown>;
  return Object.entries(written).flatMap(([key, value]) => (key in keptObject ? undeclaredKeys(value, keptObject[key], `${at}.${key}`) : [`${at}.${key}`]));
}

function payloadJson(payload: unknown): string {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) throw new TypeError('a run event payload must be a JSON object');
  canonicalJson(payload); // throws on NaN, Infinity, lone surrogates and cycles, which could not be hashed later
  const text = JSON.stringify(payload);
  // jsonb refuses \u0000; refuse it here, before a failed statement aborts the caller's transaction.
  if (/(^|[^\\])(\\\\)*\\u0000/.test(text)) throw new TypeError('a run event payload may not contain the character U+0000');
  return text;
}

/**
 * Append one event of the union to a run's log and return it as stored, parsed. Inside the
 * caller's transaction when `executor` is a client in one (READ COMMITTED, the default), else in
 * its own.
 */
export async function appendRunEvent(executor: StoreExecutor, event: NewRunEvent): Promise<LoggedRunEvent> {
  const runId = assertRunId(event.runId);
  if (typeof event.actor !== 'string' || event.actor === '') throw new TypeError('a run event needs an actor');
  const { type, payloadText } = validatedEvent(event);
  const role = event.role ?? null;

  return inStoreTransaction(executor, async (client) => {
    await lockRunLog(client, runId);
    // The payload goes through jsonb first: the hash covers exactly what a later read returns.
    const { rows } = await client.query<{ runExists: boolean; lastSeq: number | null; lastHash: string | null; at: string; payload: Record<string, unknown> }>(
      `select exists (select 1 from runs where id = $1) as "runExists",
              last.seq as "lastSeq", last.hash as "lastHash",
              ${DB_CLOCK_SQL} as at,
              $2::jsonb as payload
         from (values (1)) as one
         left join lateral (
           select e.seq, e.hash from run_events e where e.run_id = $1 order by e.seq desc limit 1
         ) as last on true`,
      [runId, payloadText],
    );
    const state = rows[0]!;
    if (!state.runExists) throw new Error(`run ${runId} does not exist`);
    const seq = (state.lastSeq ?? 0) + 1;
    const prevHash = state.lastHash ?? genesisHash(runId);
    const stored: StoredRunEvent = { runId, seq, at: state.at, actor: event.actor, role, type, payload: state.payload, prevHash, hash: '' };
    stored.hash = hashRunEvent(prevHash, runEventBody(runId, stored));
    const appended = appendedInTransaction.get(client) ?? new Map<string, number>();
    appendedInTransaction.set(client, appended.set(runId, seq));
    await client.query(
      `insert into run_events (run_id, seq, at, actor, role, type, payload, prev_hash, hash)
       values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)`,
      [runId, seq, stored.at, stored.actor, role, stored.type, payloadText, prevHash, stored.hash],
    );
    await enqueueNotifications(client, stored);
    return parseRunEvent(stored);
  });
}

const EVENT_COLUMNS = `run_id::text as "runId", seq, at, actor, role, type, payload, prev_hash as "prevHash", hash`;

export interface EventReadOptions {
  /** Only events after this seq (default 0: from the first). */
  afterSeq?: number;
  /** At most this many (default: all). */
  limit?: number;
  /** Only events of these types. */
  types?: readonly RunEventType[];
}

/** A run's events exactly as stored, in seq order: what the chain check and signing read. */
export async function readStoredRunEvents(executor: StoreExecutor, runId: string, options: EventReadOptions = {}): Promise<StoredRunEvent[]> {
  const id = assertRunId(runId);
  const { rows } = await pgExecutor(executor).query<StoredRunEvent>(
    `select ${EVENT_COLUMNS} from run_events
      where run_id = $1 and seq > $2 and ($4::text[] is null or type = any($4::text[]))
      order by run_id, seq limit $3`,
    [id, options.afterSeq ?? 0, options.limit ?? null, options.types ? [...options.types] : null],
  );
  return rows;
}

/** A run's events in seq order, each parsed into the union (unknown ones into its fallback). */
export async function readRunEvents(executor: StoreExecutor, runId: string, options: EventReadOptions = {}): Promise<RunEvent[]> {
  return (await readStoredRunEvents(executor, runId, options)).map(({ prevHash: _prevHash, hash: _hash, ...stored }) => parseRunEvent(stored));
}

/** What a live view reads after each announcement: the run's events after a seq, and its state, in one statement (one snapshot). */
export interface RunEventsSince {
  /** The run's state as of the same snapshot; undefined when the run does not exist. */
  state: string | undefined;
  events: RunEvent[];
  /** Whether `limit` cut the read short (read again from the last event's seq). */
  more: boolean;
}

export async function readRunEventsSince(executor: StoreExecutor, runId: string, input: { afterSeq: number; limit: number }): Promise<RunEventsSince> {
  const id = assertRunId(runId);
  const { rows } = await pgExecutor(executor).query<StoredRunEvent & { state: string; seq: number | null }>(
    `select r.state, e.*
       from runs r
       left join lateral (
         select ${EVENT_COLUMNS} from run_events where run_id = r.id and seq > $2 order by seq limit $3
       ) as e on true
      where r.id = $1
      order by e.seq`,
    [id, Math.max(0, Math.trunc(input.afterSeq)), input.limit + 1],
  );
  if (rows.length === 0) return { state: undefined, events: [], more: false };
  const stored = rows.filter((row) => row.seq !== null);
  const events = stored.slice(0, input.limit).map(({ state: _state, prevHash: _prevHash, hash: _hash, ...event }) => parseRunEvent(event));
  return { state: rows[0]!.state, events, more: stored.length > input.limit };
}

/**
 * The newest seq of each of these runs (0 while a run has no events), in one statement: what the
 * live view's timed pass compares with what it has read. A run that does not exist is absent.
 */
export async function readNewestRunSeqs(executor: StoreExecutor, runIds: readonly string[]): Promise<Map<string, number>> {
  if (runIds.length === 0) return new Map();
  const { rows } = await pgExecutor(executor).query<{ runId: string; newestSeq: number | null }>(
    `select r.id::text as "runId",
            (select e.seq from run_events e where e.run_id = r.id order by e.seq desc limit 1) as "newestSeq"
       from runs r
      where r.id = any($1::uuid[])`,
    [runIds.map(assertRunId)],
  );
  return new Map(rows.map((row) => [row.runId, row.newestSeq ?? 0]));
}

/** Most events one page of the event list carries. */
export const MAX_EVENTS_PAGE = 1_000;

export interface RunEventsPage {
  /** Parsed, with their place in the chain (the report's event list shows the hashes). */
  events: LoggedRunEvent[];
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
  // Seqs are 1…N without gaps, so the page is first read as a seq range: cheap whatever the
  // planner believes about the run's size (a just-written log has no statistics yet). A short
  // range (the log's end, or a gap in a damaged log) is read again without the bound.
  const query = (bounded: boolean) =>
    db
      .select(EVENT_SELECTION)
      .from(runEvents)
      .where(and(eq(runEvents.runId, id), gt(runEvents.seq, afterSeq), bounded ? lte(runEvents.seq, afterSeq + limit + 1) : undefined))
      .orderBy(asc(runEvents.seq))
      .limit(limit + 1);
  const ranged = await query(true);
  const rows = ranged.length > limit ? ranged : await query(false);
  const events = rows.slice(0, limit).map(parseRunEvent);
  return { events, lastSeq: events.at(-1)?.seq ?? afterSeq, hasMore: rows.length > limit };
}

/** Most events of a type the report reads at once (a log can hold tens of thousands of events). */
export const REPORT_EVENTS_LIMIT = 2_000;

/** The events of the given types, in seq order, at most `limit`: what the report summarises. */
export async function readRunEventsOfTypes(db: StoreDb, input: { runId: string; types: readonly RunEventType[]; limit?: number }): Promise<RunEvent[]> {
  const id = assertRunId(input.runId);
  if (input.types.length === 0) return [];
  const rows = await db
    .select(EVENT_SELECTION)
    .from(runEvents)
    .where(and(eq(runEvents.runId, id), inArray(runEvents.type, [...input.types])))
    .orderBy(asc(runEvents.seq))
    .limit(Math.max(1, Math.min(REPORT_EVENTS_LIMIT, input.limit ?? REPORT_EVENTS_LIMIT)));
  return rows.map(parseRunEvent);
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

/** The seq of a run's newest event (0 when it has none). */
export async function lastSeqOf(executor: StoreExecutor, runId: string): Promise<number> {
  const { rows } = await pgExecutor(executor).query<{ seq: number | null }>('select max(seq) as seq from run_events where run_id = $1', [assertRunId(runId)]);
  return rows[0]?.seq ?? 0;
}
