import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { runs } from './runs';

/** What a watch remembers of each check between rounds (the next round compares with it). */
export interface WatchCheckMemory {
  passed: boolean;
  skipped: boolean;
  /** sha256 of the result's canonical JSON (expected, actual, error): equal digests are an unchanged result. */
  digest: string;
  /** When the check last passed (database clock, ISO); null while it has not passed in this watch. */
  lastPassedAt: string | null;
}

/**
 * A run's watch window (docs/decisions/030): the checks it re-runs, how often, until when, and who
 * runs it now. At most one runner per run across every Runsheet process: a process claims the row
 * (runner, heartbeat_at) and keeps its heartbeat fresh; another takes it over once the heartbeat is
 * stale. A round is recorded in one store transaction that also moves next_round_at, and only by
 * the runner that holds the claim, so two processes never both record a round. The run log is what
 * the watch did (signed); this row is working state: the claim, the schedule, the results the next
 * round compares with, and the count of unchanged rounds not yet written to the log.
 */
export const runWatches = pgTable(
  'run_watches',
  {
    runId: uuid('run_id')
      .primaryKey()
      .references(() => runs.id),
    /** The check ids, in the plan's order (watch-only checks and the verification and data-quality checks it names). */
    checks: jsonb('checks').$type<string[]>().notNull(),
    everyMs: integer('every_ms').notNull(),
    startedAt: timestamp('started_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    /** The window's end; a person may extend it. */
    endsAt: timestamp('ends_at', { withTimezone: true, mode: 'date' }).notNull(),
    status: text('status', { enum: ['running', 'ended'] })
      .notNull()
      .default('running'),
    endedAt: timestamp('ended_at', { withTimezone: true, mode: 'date' }),
    /** `host:pid` of the process running the watch now; null before the first claim. */
    runner: text('runner'),
    heartbeatAt: timestamp('heartbeat_at', { withTimezone: true, mode: 'date' }),
    nextRoundAt: timestamp('next_round_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
    rounds: integer('rounds').notNull().default(0),
    lastRoundAt: timestamp('last_round_at', { withTimezone: true, mode: 'date' }),
    /** Rounds since the last one the log keeps in full whose every result was unchanged: written to the log as a count. */
    unchangedRounds: integer('unchanged_rounds').notNull().default(0),
    lastUnchangedAt: timestamp('last_unchanged_at', { withTimezone: true, mode: 'date' }),
    lastResults: jsonb('last_results').$type<Record<string, WatchCheckMemory>>().notNull().default({}),
  },
  (table) => [
    check('run_watches_status_known', sql`${table.status} in ('running', 'ended')`),
    check('run_watches_every_positive', sql`${table.everyMs} > 0`),
    index('run_watches_running_idx')
      .on(table.nextRoundAt)
      .where(sql`${table.status} = 'running'`),
  ],
);

export type RunWatchRow = typeof runWatches.$inferSelect;
