/**
 * The notifications outbox's reads and writes (db/schema/notifications.ts, docs/decisions/033).
 * Rows for run events are inserted by the run log itself (run-log.server.ts), in the event's
 * transaction; a test send is inserted here. A delivery worker claims one due row at a time in a
 * store transaction of its own (FOR UPDATE SKIP LOCKED: instances on one store never claim the
 * same row), posts it, and records the attempt before it commits.
 */
import type pg from 'pg';
import type { DeliveryStatus } from '../../db/schema/notifications';
import { announceStoreChange, NOTIFICATIONS_CHANNEL } from '../runtime/store-notifications.server';
import type { DeliveryKind } from './notification-kinds';

export interface DeliveryRow {
  id: string;
  channel: string;
  runId: string | null;
  seq: number | null;
  /** The run's state in the event's transaction. */
  runState: string | null;
  kind: DeliveryKind;
  requestedBy: string | null;
  status: DeliveryStatus;
  attempts: number;
  /** ISO timestamps (UTC). */
  createdAt: string;
  nextAttemptAt: string;
  lastAttemptAt: string | null;
  deliveredAt: string | null;
  responseCode: number | null;
  lastError: string | null;
}

const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

const COLUMNS = `d.id::text as id, d.channel, d.run_id::text as "runId", d.seq, d.run_state as "runState", d.kind, d.requested_by as "requestedBy", d.status, d.attempts,
  ${iso('d.created_at')} as "createdAt", ${iso('d.next_attempt_at')} as "nextAttemptAt", ${iso('d.last_attempt_at')} as "lastAttemptAt",
  ${iso('d.delivered_at')} as "deliveredAt", d.response_code as "responseCode", d.last_error as "lastError"`;

/**
 * The next due row of these channels, locked for this transaction; a row whose run has an earlier
 * pending row on the same channel waits behind it (per channel and run in seq order), other runs
 * go on. Rows another transaction holds are skipped, never waited for.
 */
export async function claimDueDelivery(client: pg.ClientBase, channels: readonly string[]): Promise<DeliveryRow | undefined> {
  if (channels.length === 0) return undefined;
  const { rows } = await client.query<DeliveryRow>(
    `select ${COLUMNS} from notification_deliveries d
      where d.status = 'pending' and d.next_attempt_at <= now() and d.channel = any($1::text[])
        and not exists (select 1 from notification_deliveries e
                         where e.channel = d.channel and e.run_id = d.run_id and e.status = 'pending' and e.seq < d.seq)
      order by d.next_attempt_at, d.created_at
      limit 1
      for update of d skip locked`,
    [[...channels]],
  );
  return rows[0];
}

export interface AttemptResult {
  delivered: boolean;
  responseCode: number | null;
  error: string | null;
}

export interface RetryPolicy {
  /** The first retry's delay; each later one doubles it. */
  baseMs: number;
  /** The longest delay between two attempts. */
  capMs: number;
  /** A row still failing this long after it was inserted is given up (status failed). */
  giveUpAfterMs: number;
}

/** Records one attempt on a claimed row (the clock after the attempt, not the transaction's start): delivered, or the next retry (exponential, capped, up to 20 % jitter), or given up. */
export async function recordDeliveryAttempt(client: pg.ClientBase, id: string, result: AttemptResult, retry: RetryPolicy): Promise<DeliveryRow> {
  const { rows } = await client.query<DeliveryRow>(
    `update notification_deliveries d set
        attempts = d.attempts + 1,
        last_attempt_at = clock_timestamp(),
        response_code = $2,
        last_error = $3,
        status = case when $4 then 'delivered'
                      when clock_timestamp() - d.created_at >= make_interval(secs => $7::float8 / 1000) then 'failed'
                      else 'pending' end,
        delivered_at = case when $4 then clock_timestamp() else null end,
        next_attempt_at = case when $4 then d.next_attempt_at
                               else clock_timestamp() + make_interval(secs => least($6::float8, $5::float8 * power(2, d.attempts)) * (1 + random() * 0.2) / 1000) end
      where d.id = $1
      returning ${COLUMNS}`,
    [id, result.responseCode, result.delivered ? null : result.error, result.delivered, retry.baseMs, retry.capMs, retry.giveUpAfterMs],
  );
  return rows[0]!;
}

/** Rows of any channel still pending after the give-up age (a channel no instance delivers, too): given up, saying why. */
export async function giveUpOldDeliveries(pool: pg.Pool, giveUpAfterMs: number): Promise<number> {
  const { rowCount } = await pool.query(
    `update notification_deliveries set status = 'failed',
            last_error = coalesce(last_error || '; ', '') || 'given up: not delivered within ' || ($1::float8 / 3600000)::numeric(10, 2)::text || ' h'
      where status = 'pending' and now() - created_at >= make_interval(secs => $1::float8 / 1000)`,
    [giveUpAfterMs],
  );
  return rowCount ?? 0;
}

/** Milliseconds until the next row of these channels is due (0: now), or undefined when none is pending. */
export async function msUntilNextDelivery(pool: pg.Pool, channels: readonly string[]): Promise<number | undefined> {
  if (channels.length === 0) return undefined;
  const { rows } = await pool.query<{ ms: number | null }>(
    `select greatest(0, extract(epoch from (min(next_attempt_at) - now())) * 1000)::float8 as ms
       from notification_deliveries where status = 'pending' and channel = any($1::text[])`,
    [[...channels]],
  );
  return rows[0]?.ms ?? undefined;
}

/** A test notification for a channel (the notifications page's "Send test"): queued, and delivery workers woken. */
export async function enqueueTestDelivery(pool: pg.Pool, input: { channel: string; requestedBy: string }): Promise<DeliveryRow> {
  const { rows } = await pool.query<DeliveryRow>(
    `insert into notification_deliveries as d (channel, kind, requested_by) values ($1, 'test', $2) returning ${COLUMNS}`,
    [input.channel, input.requestedBy],
  );
  await announceStoreChange(pool, NOTIFICATIONS_CHANNEL, '');
  return rows[0]!;
}

/** A delivery as the notifications page lists it: with the run's plan and target. */
export type ListedDelivery = DeliveryRow & { planId: string | null; target: string | null };

/** A channel's newest deliveries (or a run's), newest first. */
export async function readDeliveries(pool: pg.Pool | pg.ClientBase, input: { channel?: string; runId?: string; limit?: number }): Promise<ListedDelivery[]> {
  const { rows } = await pool.query<ListedDelivery>(
    `select ${COLUMNS}, r.plan_id as "planId", r.target from notification_deliveries d left join runs r on r.id = d.run_id
      where ($1::text is null or d.channel = $1) and ($2::uuid is null or d.run_id = $2)
      order by d.created_at desc, d.seq desc nulls last
      limit $3`,
    [input.channel ?? null, input.runId ?? null, Math.max(1, Math.min(500, input.limit ?? 50))],
  );
  return rows;
}

/** How many deliveries of each channel are in each status. */
export async function countDeliveries(pool: pg.Pool | pg.ClientBase): Promise<Map<string, Record<DeliveryStatus, number>>> {
  const { rows } = await pool.query<{ channel: string; status: DeliveryStatus; count: number }>(
    'select channel, status, count(*)::int as count from notification_deliveries group by channel, status',
  );
  const counts = new Map<string, Record<DeliveryStatus, number>>();
  for (const row of rows) {
    const entry = counts.get(row.channel) ?? { pending: 0, delivered: 0, failed: 0 };
    entry[row.status] = row.count;
    counts.set(row.channel, entry);
  }
  return counts;
}
