import { sql } from 'drizzle-orm';
import { check, index, integer, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { runs } from './runs';

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/**
 * The notifications outbox (docs/decisions/033): one row per channel and run event that notifies,
 * inserted in the same store transaction as the event it announces (app/runs/run-log.server.ts),
 * so a committed event is never left unannounced. Its id is the delivery id every attempt repeats.
 * A delivery worker claims due rows FOR UPDATE SKIP LOCKED, per channel and run in seq order (a
 * pending row holds the later ones of its run behind it), and records each attempt here: status,
 * attempts, the receiver's response code, the last error, the next retry. `failed` is given up
 * (after RUNSHEET_NOTIFY_GIVE_UP_AFTER). A test send has no run. Rows are kept, never deleted.
 */
export const notificationDeliveries = pgTable(
  'notification_deliveries',
  {
    /** The delivery id (X-Runsheet-Delivery): fixed at insert, so a redelivery repeats it. */
    id: uuid('id').primaryKey().defaultRandom(),
    channel: text('channel').notNull(),
    /** The run and the event announced; null for a test send. */
    runId: uuid('run_id').references(() => runs.id),
    seq: integer('seq'),
    /** The run's state in the event's transaction (a drive's start event: the state it claimed); null for a test send. */
    runState: text('run_state'),
    /** app/notifications/notification-kinds.ts NotificationKind, or 'test'. */
    kind: text('kind').notNull(),
    /** Who asked for a test send; null for a run event (its actor is in the log). */
    requestedBy: text('requested_by'),
    status: text('status', { enum: DELIVERY_STATUSES }).notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    lastAttemptAt: timestamp('last_attempt_at', { withTimezone: true, mode: 'date' }),
    deliveredAt: timestamp('delivered_at', { withTimezone: true, mode: 'date' }),
    /** The receiver's HTTP status of the last attempt; null when it never answered. */
    responseCode: integer('response_code'),
    lastError: text('last_error'),
  },
  (table) => [
    check('notification_deliveries_status_known', sql`${table.status} in ('pending', 'delivered', 'failed')`),
    check('notification_deliveries_run_and_seq', sql`(${table.runId} is null) = (${table.seq} is null)`),
    uniqueIndex('notification_deliveries_one_per_event').on(table.channel, table.runId, table.seq),
    index('notification_deliveries_due_idx')
      .on(table.nextAttemptAt)
      .where(sql`${table.status} = 'pending'`),
    index('notification_deliveries_channel_idx').on(table.channel, table.createdAt.desc()),
  ],
);

export type NotificationDeliveryRow = typeof notificationDeliveries.$inferSelect;
