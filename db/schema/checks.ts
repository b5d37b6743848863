import { sql } from 'drizzle-orm';
import { bigserial, boolean, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/**
 * Every check result Runsheet computed, outside or inside a run. Append-only history: the
 * latest row per (target, plan, check) is what a page shows, with its age.
 */
export const checkResults = pgTable(
  'check_results',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    target: text('target').notNull(),
    planId: text('plan_id').notNull(),
    /** The plan checksum the check ran under: a gate compares it with the plan as it is now. */
    planChecksum: text('plan_checksum').notNull(),
    checkId: text('check_id').notNull(),
    phase: text('phase').notNull(),
    kind: text('kind').notNull(),
    passed: boolean('passed').notNull(),
    /** Skipped checks (http in a rehearsal, a target without an API) neither pass nor fail a gate. */
    skipped: boolean('skipped').notNull().default(false),
    expected: jsonb('expected').notNull(),
    actual: jsonb('actual'),
    sqlText: text('sql_text'),
    error: jsonb('error'),
    /** Why a skipped check was not run (a rehearsal does not call an API; a resumed run skips an unless_resuming pre-check). */
    reason: text('reason'),
    durationMs: integer('duration_ms').notNull(),
    ranAt: timestamp('ran_at', { withTimezone: true, mode: 'date' }).notNull(),
    runId: uuid('run_id'),
    ranBy: text('ran_by'),
  },
  (table) => [
    index('check_results_latest_idx').on(table.target, table.planId, table.checkId, table.ranAt.desc()),
    index('check_results_run_idx').on(table.runId).where(sql`${table.runId} is not null`),
  ],
);

/**
 * Slow facts (target facts, a plan's schema facts, its ledger state), computed once and served
 * with their age; refreshing is explicit so a page never waits on a slow count.
 */
export const factSnapshots = pgTable(
  'fact_snapshots',
  {
    target: text('target').notNull(),
    /** '' for facts of the target itself. */
    planId: text('plan_id').notNull().default(''),
    kind: text('kind', { enum: ['target', 'schema', 'ledger'] }).notNull(),
    facts: jsonb('facts').notNull(),
    computedAt: timestamp('computed_at', { withTimezone: true, mode: 'date' }).notNull(),
    durationMs: integer('duration_ms').notNull(),
  },
  (table) => [primaryKey({ columns: [table.target, table.planId, table.kind] })],
);

export type CheckResultRow = typeof checkResults.$inferSelect;
export type FactSnapshotRow = typeof factSnapshots.$inferSelect;
