/**
 * The run log: append-only events, each hashed over the previous one
 * (docs/decisions/010-run-log-hash-chain.md). Appends to one run are serialised by a
 * transaction-scoped advisory lock, so two appends at once never fork the chain; PostgreSQL
 * itself refuses an UPDATE, DELETE or TRUNCATE, and an insert that does not extend the chain.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type pg from 'pg';
import type { StoreDb } from '../runtime/store.server';
import { RunsheetError } from '../runtime/errors';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';

/** Versions the genesis and the hash input; a different scheme gets a new tag. */
export const RUN_LOG_VERSION = 'runsheet/run-log/v1';

/** The database clock as text: UTC, microseconds, fixed width (`2025-11-25T12:34:56.123456Z`). */
export const DB_CLOCK_SQL = `to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
/** The same rendering for a stored timestamptz column (a constant column name of this code, never input). */
export const utcText = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;


const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A pg pool or client, or the store's Drizzle handle (unwrapped to its pool). */
export type StoreExecutor = pg.Pool | pg.ClientBase | StoreDb;

export interface RunEvent {
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

export interface NewRunEvent {
  runId: string;
  actor: string;
  role?: string | null;
  type: string;
  /** A JSON object; stored as jsonb and hashed as PostgreSQL returns it. */
  payload?: Record<string, unknown>;
}

/** What is hashed for one event (with the previous hash as prefix), in RFC 8785 canonical JSON. */
export interface RunEventBody {
  run_id: string;
  seq: number;
  at: string;
  actor: string;
  role: string | null;
  type: string;
  payload: Record<string, unknown>;
}

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

/** hash_n = sha256_hex(prev_hash_hex + "\n" + JCS(body)), over UTF-8 bytes. */
export function hashRunEvent(prevHash: string, body: RunEventBody): string {
  return sha256Hex(Buffer.from(`${prevHash}\n${canonicalJson(body)}`, 'utf8'));
}

export function runEventBody(runId: string, event: Pick<RunEvent, 'seq' | 'at' | 'actor' | 'role' | 'type' | 'payload'>): RunEventBody {
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
export interface ChainLink {
  seq: number;
  at: string;
  actor: string;
  role: string | null;
  type: string;
  payload: Record<string, unknown>;
  prevHash: string;
  hash: string;
}

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
    return result;
  } catch (error) {
    await client.query('rollback').catch((rollbackError: Error) => onBroken(rollbackError));
    throw error;
  }
}

/**
 * Serialise writers of one run's chain until the transaction ends. A separate statement from the
 * reads that follow: under READ COMMITTED each later statement sees what the previous holder
 * committed.
 */
export async function lockRunLog(client: pg.ClientBase, runId: string): Promise<void> {
  await client.query('select pg_advisory_xact_lock($1::int4, hashtext($2::text))', [ADVISORY_LOCKS.runLogClass, runId]);
}

function payloadJson(payload: unknown): string {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) {
    throw new TypeError('a run event payload must be a JSON object');
  }
  canonicalJson(payload); // throws on NaN, Infinity, lone surrogates and cycles, which could not be hashed later
  const text = JSON.stringify(payload);
  // jsonb refuses \u0000; refuse it here, before a failed statement aborts the caller's transaction.
  if (/(^|[^\\])(\\\\)*\\u0000/.test(text)) throw new TypeError('a run event payload may not contain the character U+0000');
  return text;
}

/**
 * Append one event to a run's log and return it as stored. Inside the caller's transaction when
 * `executor` is a client in one (READ COMMITTED, the default), else in its own.
 */
export async function appendRunEvent(executor: StoreExecutor, event: NewRunEvent): Promise<RunEvent> {
  const runId = assertRunId(event.runId);
  if (typeof event.actor !== 'string' || event.actor === '') throw new TypeError('a run event needs an actor');
  if (typeof event.type !== 'string' || event.type === '') throw new TypeError('a run event needs a type');
  const payloadText = payloadJson(event.payload ?? {});
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
    const stored: RunEvent = {
      runId,
      seq,
      at: state.at,
      actor: event.actor,
      role,
      type: event.type,
      payload: state.payload,
      prevHash,
      hash: '',
    };
    stored.hash = hashRunEvent(prevHash, runEventBody(runId, stored));
    await client.query(
      `insert into run_events (run_id, seq, at, actor, role, type, payload, prev_hash, hash)
       values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)`,
      [runId, seq, stored.at, stored.actor, role, stored.type, payloadText, prevHash, stored.hash],
    );
    return stored;
  });
}

const EVENT_COLUMNS = `run_id::text as "runId", seq, at, actor, role, type, payload, prev_hash as "prevHash", hash`;

/** A page of a run's events in seq order: those after `afterSeq` (default 0), at most `limit` (default all). */
export async function readRunEvents(
  executor: StoreExecutor,
  runId: string,
  options: { afterSeq?: number; limit?: number } = {},
): Promise<RunEvent[]> {
  const id = assertRunId(runId);
  const { rows } = await pgExecutor(executor).query<RunEvent>(
    `select ${EVENT_COLUMNS} from run_events where run_id = $1 and seq > $2 order by run_id, seq limit $3`,
    [id, options.afterSeq ?? 0, options.limit ?? null],
  );
  return rows;
}
