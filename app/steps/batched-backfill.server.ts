/**
 * The batched_backfill step: the plan's UPDATE, run batch after batch over the table's key
 * (keyset: the next `batch_size` keys after the last one done, in key order). Each batch is one
 * short transaction on the run's connection:
 *
 *   BEGIN; SET LOCAL lock_timeout, statement_timeout;
 *   the batch's first and last key; the UPDATE with them as $1, $2;
 *   runsheet.backfill_progress.last_key := the batch's last key (only if it still is the previous one);
 *   COMMIT
 *
 * so the batch and the record of it commit together: after a failure, a cancel or a killed
 * process, the next run starts at the first key after the last committed batch, and no row is
 * updated twice or skipped. Between batches it pauses (`pause`), honours pause and resume
 * requests from the run log, stops on cancel, and reports progress ('progress' events, about
 * once a second). A batch that hits lock_timeout (55P03) is retried after a jittered backoff.
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { BatchedBackfillStep } from '../plans/plan-schema';
import { ensureBackfillProgress } from '../targets/ledger.server';
import { BlockerSampler } from '../targets/lock-waits.server';
import {
  type BlockerInfo,
  type ExecuteStepHooks,
  type ExecuteStepOptions,
  type StatementEvent,
  type StepFailure,
  type StepToRun,
} from './execute-step.server';
import { BATCH_PLACEHOLDERS, NO_ROWS_PLACEHOLDERS, translateBatchTemplate, updateTargetOf } from './batch-template.server';
import { analyseNoRowsStatement, refusedUntilNoRows, runUntilNoRows, validateUntilNoRows } from './backfill-until-no-rows.server';
import { prepareStep, executeStep } from './execute-step.server';
import { splitOrProblems } from './sql-step.server';
import { backfillFailure } from './backfill-failure.server';
import { BackfillPauseGate } from './backfill-pause.server';
import { refusedInTransaction, retryDelayMs, sleepUnlessCancelled, type KindOutcome, type StepKind, type StepKindContext, type StepSqlProblem } from './step-kind';

/** 'progress' events at most this often (and after the first and the last batch). */
const PROGRESS_EVERY_MS = 1_000;
const CONNECTION_CHECK_INTERVAL_MS = 2_000;

interface Cursor {
  lastKey: string | null;
  rowsDone: number;
  rowsUpdated: number;
  batches: number;
}

/** What the batches run: the UPDATE as sent, and the table and key it walks. Another value starts the walk over. */
export function backfillTemplateSha(step: BatchedBackfillStep, sql: string): string {
  return createHash('sha256').update(`${sql}\n${step.table.schema}.${step.table.name}\n${step.key}`).digest('hex');
}

export async function runBatchedBackfill(
  context: StepKindContext,
  step: BatchedBackfillStep,
  spec: StepToRun,
  /** The UPDATE's line in the file (1-based). */
  statementLine: { line: number; endLine: number },
  hooks: ExecuteStepHooks,
  options: ExecuteStepOptions,
): Promise<KindOutcome> {
  return new BackfillRun(context, step, spec, statementLine, hooks, options).run();
}

class BatchStopped extends Error {
  constructor(readonly failure: StepFailure) {
    super(failure.summary);
  }
}

class BackfillRun {
  private readonly started = performance.now();
  private readonly startedAt = new Date().toISOString();
  private readonly table: string;
  private readonly key: string;
  private readonly retries: number;
  private cursor: Cursor = { lastKey: null, rowsDone: 0, rowsUpdated: 0, batches: 0 };
  /** Rows walked by this drive (the rate is this drive's). */
  private doneHere = 0;
  private total: number | null = null;
  private totalEstimated = false;
  private readonly pauseGate: BackfillPauseGate;
  private lastProgressAt = 0;
  private connectionBroken = false;
  private pid?: number;
  private attempts = 1;

  constructor(
    private readonly context: StepKindContext,
    private readonly step: BatchedBackfillStep,
    private readonly spec: StepToRun,
    private readonly statement: { line: number; endLine: number },
    private readonly hooks: ExecuteStepHooks,
    private readonly options: ExecuteStepOptions,
  ) {
    this.table = `${pg.escapeIdentifier(step.table.schema)}.${pg.escapeIdentifier(step.table.name)}`;
    this.key = pg.escapeIdentifier(step.key);
    this.retries = step.retries ?? context.planRetries;
    this.pauseGate = new BackfillPauseGate(context, step.id);
  }

  async run(): Promise<KindOutcome> {
    const { client } = this.context;
    try {
      this.pid = Number((await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid);
      await client.query(`select set_config('client_connection_check_interval', $1, false)`, [String(CONNECTION_CHECK_INTERVAL_MS)]).catch(() => {});
      await ensureBackfillProgress(client);
      await this.claimCursor();
      await this.countTotal();
    } catch (error) {
      if (error instanceof BatchStopped) return this.finish(error.failure);
      return this.finish(this.failureOf(error, 'setup', 'could not prepare the backfill'));
    }
    await this.context.log({ type: 'backfill.started', payload: {
      stepId: this.step.id,
      table: `${this.step.table.schema}.${this.step.table.name}`,
      key: this.step.key,
      batchSize: this.step.batch_size,
      pauseMs: this.step.pause,
      lockTimeoutMs: this.step.lock_timeout,
      statementTimeoutMs: this.step.statement_timeout,
      retries: this.retries,
      lastKey: this.cursor.lastKey,
      rowsDone: this.cursor.rowsDone,
      total: this.total,
      ...(this.totalEstimated ? { totalEstimated: true } : {}),
    } });
    await this.reportProgress(true);

    try {
      for (;;) {
        this.stopIfCancelled();
        await this.waitWhilePaused();
        const rows = await this.batchWithRetries();
        if (rows === 0) break;
        await this.reportProgress(false);
        if (this.step.pause > 0 && (await sleepUnlessCancelled(this.step.pause, this.context))) this.stopIfCancelled();
      }
      await client.query(`update runsheet.backfill_progress set completed_at = clock_timestamp(), run_id = $3 where plan_id = $1 and step_id = $2`, [
        this.context.planId,
        this.step.id,
        this.context.runId,
      ]);
    } catch (error) {
      if (error instanceof BatchStopped) return this.finish(error.failure);
      return this.finish(this.failureOf(error, 'statement', 'the backfill stopped'));
    }
    if (this.total === null || this.total < this.cursor.rowsDone) this.total = this.cursor.rowsDone;
    await this.reportProgress(true);
    await this.context.log({ type: 'backfill.completed', payload: {
      stepId: this.step.id,
      rowsDone: this.cursor.rowsDone,
      rowsUpdated: this.cursor.rowsUpdated,
      batches: this.cursor.batches,
      lastKey: this.cursor.lastKey,
      durationMs: this.elapsed(),
      pausedMs: this.pauseGate.pausedMs,
    } });
    // One 'statement.completed' for the UPDATE, run once per batch: its rows are every row it changed.
    await this.hooks.onStatement?.(this.statementEvent());
    return this.finish(undefined);
  }

  /**
   * Takes the step's cursor: resumes where the last committed batch left it, unless what the
   * batches run changed (another UPDATE, table or key) or the plan was rolled back since.
   */
  private async claimCursor(): Promise<void> {
    const { client, planId, runId } = this.context;
    const sha = backfillTemplateSha(this.step, this.spec.sql);
    const tableOid = (await client.query<{ oid: number | null }>('select to_regclass($1)::oid::bigint as oid', [this.table])).rows[0]?.oid;
    if (tableOid === null || tableOid === undefined) {
      throw new BatchStopped(this.failureOf(new Error(`the table ${this.step.table.schema}.${this.step.table.name} does not exist`), 'setup', 'could not prepare the backfill'));
    }
    const { rows } = await client.query<{ template_sha256: string; table_oid: string; last_key: string | null; rows_done: string; rows_updated: string; batches: string; run_id: string; updated_at: Date }>(
      `select template_sha256, table_oid::bigint::text as table_oid, last_key, rows_done, rows_updated, batches, run_id::text as run_id, updated_at
         from runsheet.backfill_progress
        where plan_id = $1 and step_id = $2`,
      [planId, this.step.id],
    );
    const previous = rows[0];
    const rolledBackSince = previous ? await this.rolledBackSince(previous.updated_at) : false;
    const restartReason = !previous
      ? undefined
      : previous.template_sha256 !== sha
        ? 'the UPDATE, or the table or key it walks, changed since that progress was recorded'
        : previous.table_oid !== String(tableOid)
          ? 'the table was dropped and created again since that progress was recorded (another oid)'
        : rolledBackSince
          ? 'the plan was rolled back after that progress was recorded'
          : undefined;
    if (previous && !restartReason) {
      this.cursor = { lastKey: previous.last_key, rowsDone: Number(previous.rows_done), rowsUpdated: Number(previous.rows_updated), batches: Number(previous.batches) };
      await client.query(`update runsheet.backfill_progress set run_id = $3, completed_at = null where plan_id = $1 and step_id = $2`, [planId, this.step.id, runId]);
      if (previous.last_key !== null) {
        await this.context.log({ type: 'backfill.resumed_from', payload: {
          stepId: this.step.id,
          lastKey: previous.last_key,
          rowsDone: this.cursor.rowsDone,
          rowsUpdated: this.cursor.rowsUpdated,
          batches: this.cursor.batches,
          previousRunId: previous.run_id,
          note: 'batches up to and including this key committed earlier (with their progress row): the walk goes on after it',
        } });
      }
      return;
    }
    if (restartReason) {
      await this.context.log({ type: 'backfill.restarted', payload: { stepId: this.step.id, reason: restartReason, previous: { lastKey: previous!.last_key, rowsDone: Number(previous!.rows_done), runId: previous!.run_id } } });
    }
    await client.query(
      `insert into runsheet.backfill_progress (plan_id, step_id, template_sha256, table_name, table_oid, key_column, run_id)
       values ($1, $2, $3, $4, $7::bigint::oid, $5, $6)
       on conflict (plan_id, step_id) do update
          set template_sha256 = excluded.template_sha256, table_name = excluded.table_name, table_oid = excluded.table_oid, key_column = excluded.key_column,
              last_key = null, rows_done = 0, rows_updated = 0, batches = 0, run_id = excluded.run_id,
              started_at = clock_timestamp(), updated_at = clock_timestamp(), completed_at = null`,
      [planId, this.step.id, sha, `${this.step.table.schema}.${this.step.table.name}`, this.step.key, runId, String(tableOid)],
    );
  }

  /** Whether the target's ledger records a rollback of this plan (or an equivalent one) after `since`. */
  private async rolledBackSince(since: Date): Promise<boolean> {
    const { client, planId } = this.context;
    const presence = await client.query<{ present: boolean }>(`select to_regclass('runsheet.ledger') is not null as present`);
    if (!presence.rows[0]?.present) return false;
    const { rows } = await client.query<{ found: boolean }>(
      `select exists (select 1 from runsheet.ledger
                       where (plan_id = $1 or $1 = any (equivalent_plan_ids))
                         and action = 'rollback' and outcome = 'rolled_back' and applied_at > $2) as found`,
      [planId, since],
    );
    return rows[0]?.found === true;
  }

  /** Rows still to walk plus those done: exact (an index-only count) within the step's statement_timeout, else the planner's estimate. */
  private async countTotal(): Promise<void> {
    const { client } = this.context;
    const where = this.cursor.lastKey === null ? '' : ` where ${this.key} > $1`;
    try {
      await client.query('begin');
      await client.query(`select set_config('statement_timeout', $1, true)`, [String(this.step.statement_timeout)]);
      const { rows } = await client.query<{ remaining: string }>(`select count(*) as remaining from ${this.table}${where}`, this.cursor.lastKey === null ? [] : [this.cursor.lastKey]);
      await client.query('commit');
      this.total = this.cursor.rowsDone + Number(rows[0]?.remaining ?? 0);
    } catch {
      await client.query('rollback').catch(() => {});
      const { rows } = await client.query<{ estimate: number }>(
        `select greatest(c.reltuples, 0)::float8 as estimate from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where n.nspname = $1 and c.relname = $2`,
        [this.step.table.schema, this.step.table.name],
      );
      this.total = Math.max(this.cursor.rowsDone, Math.round(Number(rows[0]?.estimate ?? 0)));
      this.totalEstimated = true;
    }
  }

  /** One batch, again after a lock timeout while retries are left; the number of rows it walked (0: done). */
  private async batchWithRetries(): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.batch();
      } catch (error) {
        if (!(error instanceof BatchStopped) || error.failure.sqlstate !== '55P03' || attempt > this.retries || this.connectionBroken) throw error;
        const delayMs = retryDelayMs(attempt);
        this.attempts++;
        await this.context.log({ type: 'step.retry', payload: {
          stepId: this.step.id,
          attempt,
          retries: this.retries,
          delayMs,
          sqlstate: '55P03',
          message: error.failure.message,
          line: error.failure.line,
          blockers: error.failure.blockers,
          batchAfterKey: this.cursor.lastKey,
          summary: error.failure.summary,
        } });
        if (await sleepUnlessCancelled(delayMs, this.context)) this.stopIfCancelled();
      }
    }
  }

  private async batch(): Promise<number> {
    const { client, planId, runId } = this.context;
    const previous = this.cursor.lastKey;
    try {
      await client.query('begin');
    } catch (error) {
      throw new BatchStopped(this.failureOf(error, 'setup', 'BEGIN of a batch failed'));
    }
    let sampler: BlockerSampler | undefined;
    try {
      await client.query(`select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`, [String(this.step.lock_timeout), String(this.step.statement_timeout)]);
      const keyed = previous === null ? '' : `where t.${this.key} > $2`;
      const bounds = await client.query<{ batch_start: string | null; batch_end: string | null; rows: number }>(
        `with batch as materialized (
           select t.${this.key} as k from ${this.table} as t ${keyed} order by t.${this.key} limit $1
         )
         select (select b.k from batch as b order by b.k limit 1)::text as batch_start,
                (select b.k from batch as b order by b.k desc limit 1)::text as batch_end,
                (select count(*) from batch)::int as rows`,
        previous === null ? [this.step.batch_size] : [this.step.batch_size, previous],
      );
      const { batch_start: batchStart, batch_end: batchEnd, rows } = bounds.rows[0] ?? { batch_start: null, batch_end: null, rows: 0 };
      if (rows === 0 || batchStart === null || batchEnd === null) {
        await client.query('commit');
        return 0;
      }
      sampler = this.options.blockerProbe && this.pid !== undefined ? new BlockerSampler(this.options.blockerProbe, this.pid) : undefined;
      let updated: pg.QueryResult;
      try {
        updated = await client.query({ text: this.spec.sql, values: [batchStart, batchEnd] });
      } catch (error) {
        const blockers = (await sampler?.stop()) ?? [];
        sampler = undefined;
        throw new BatchStopped(this.failureOf(error, 'statement', `the batch after key ${previous ?? '(start)'} failed`, blockers));
      }
      await sampler?.stop();
      sampler = undefined;
      const recorded = await client.query(
        `update runsheet.backfill_progress
            set last_key = $3, rows_done = rows_done + $4, rows_updated = rows_updated + $5, batches = batches + 1,
                run_id = $6, updated_at = clock_timestamp()
          where plan_id = $1 and step_id = $2 and last_key is not distinct from $7`,
        [planId, this.step.id, batchEnd, rows, updated.rowCount ?? 0, runId, previous],
      );
      if (recorded.rowCount !== 1) {
        throw new BatchStopped({
          statementIndex: 0,
          line: this.statement.line,
          during: 'statement',
          message: `runsheet.backfill_progress no longer says the last key is ${previous ?? '(none)'}: another session moved it, so this batch was rolled back`,
          summary: `Step ${this.step.id}: the backfill's progress row changed under it (another Runsheet?); the batch was rolled back`,
          blockers: [],
          cancelled: false,
        });
      }
      await client.query('commit');
      this.cursor = { lastKey: batchEnd, rowsDone: this.cursor.rowsDone + rows, rowsUpdated: this.cursor.rowsUpdated + (updated.rowCount ?? 0), batches: this.cursor.batches + 1 };
      this.doneHere += rows;
      return rows;
    } catch (error) {
      await sampler?.stop();
      if (!this.connectionBroken) await client.query('rollback').catch(() => (this.connectionBroken = true));
      if (error instanceof BatchStopped) throw error;
      throw new BatchStopped(this.failureOf(error, 'statement', `the batch after key ${previous ?? '(start)'} failed`));
    }
  }

  private stopIfCancelled(): void {
    const by = this.context.cancelledBy();
    if (!by) return;
    const message = `cancelled by ${by} before the batch after key ${this.cursor.lastKey ?? '(start)'}`;
    throw new BatchStopped({
      statementIndex: 0,
      line: this.statement.line,
      during: 'statement',
      message,
      summary: `Step ${this.step.id} was ${message}; ${this.cursor.batches} batch(es) had committed and stay committed (the next run resumes after key ${this.cursor.lastKey ?? '(none)'})`,
      blockers: [],
      cancelled: true,
    });
  }

  /** Between batches: while the newest request in the run log is a pause, hold (no transaction open, no lock held). */
  private async waitWhilePaused(): Promise<void> {
    await this.pauseGate.hold(() => this.cursor, { paused: () => this.reportProgress(true), stopIfCancelled: () => this.stopIfCancelled() });
  }

  private async reportProgress(force: boolean): Promise<void> {
    const now = performance.now();
    if (!force && now - this.lastProgressAt < PROGRESS_EVERY_MS) return;
    this.lastProgressAt = now;
    const activeMs = Math.max(1, this.elapsed() - this.pauseGate.pausedMs);
    const rate = this.doneHere > 0 ? (this.doneHere * 1000) / activeMs : null;
    const total = this.total === null ? null : Math.max(this.total, this.cursor.rowsDone);
    const etaMs = rate && total !== null ? Math.round(((total - this.cursor.rowsDone) / rate) * 1000) : null;
    await this.context.log({ type: 'progress', payload: {
      stepId: this.step.id,
      done: this.cursor.rowsDone,
      total,
      rate: rate === null ? null : Math.round(rate * 10) / 10,
      etaMs,
      updated: this.cursor.rowsUpdated,
      batches: this.cursor.batches,
      lastKey: this.cursor.lastKey,
      ...(this.totalEstimated ? { totalEstimated: true } : {}),
    } });
  }

  private statementEvent(): StatementEvent {
    return {
      stepId: this.step.id,
      index: 0,
      line: this.statement.line,
      endLine: this.statement.endLine,
      sql: this.spec.sql,
      durationMs: this.elapsed(),
      rowCount: this.cursor.rowsUpdated,
      command: 'UPDATE',
      notices: [],
      startedAt: this.startedAt,
    };
  }

  private finish(failure: StepFailure | undefined): KindOutcome {
    const ok = failure === undefined;
    return {
      stepId: this.step.id,
      ok,
      mode: 'own',
      transactional: false,
      statements: ok ? [this.statementEvent()] : [],
      completedCount: ok ? 1 : 0,
      ...(failure ? { failure } : {}),
      committed: ok,
      durationMs: this.elapsed(),
      ...(this.pid !== undefined ? { backendPid: this.pid } : {}),
      connectionBroken: this.connectionBroken,
      attempts: this.attempts,
      leftover: this.cursor.batches > 0,
      detail: {
        backfill: {
          table: `${this.step.table.schema}.${this.step.table.name}`,
          key: this.step.key,
          lastKey: this.cursor.lastKey,
          rowsDone: this.cursor.rowsDone,
          rowsUpdated: this.cursor.rowsUpdated,
          batches: this.cursor.batches,
          total: this.total,
          complete: ok,
        },
      },
    };
  }

  /** A server error as the step's failure, with the UPDATE's line when the UPDATE failed. */
  private failureOf(error: unknown, during: StepFailure['during'], what: string, blockers: BlockerInfo[] = []): StepFailure {
    const { failure, connectionLost } = backfillFailure({
      error,
      during,
      what,
      blockers,
      cancelledBy: this.context.cancelledBy(),
      step: this.step,
      statementLine: this.statement.line,
      kept: `${this.cursor.batches} batch(es) had committed and stay committed; the next run resumes after key ${this.cursor.lastKey ?? '(none)'}`,
    });
    if (connectionLost) this.connectionBroken = true;
    return failure;
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started);
  }
}

export const batchedBackfillStepKind: StepKind<BatchedBackfillStep> = {
  kind: 'batched_backfill',
  async validate(step, fileSql) {
    if (step.until === 'no_rows') return validateUntilNoRows(step, fileSql);
    const template = await translateBatchTemplate(fileSql);
    if (!template.ok) return template.errors.map((error) => ({ line: error.line, message: error.message }));
    const split = await splitOrProblems(template.sql);
    if (!split.ok) return split.problems;
    const statements = split.statements.statements;
    if (statements.length !== 1 || statements[0]!.kind !== 'UpdateStmt') {
      return [
        {
          line: statements[1]?.startLine ?? statements[0]?.startLine,
          message: `A batched_backfill step's file is exactly one UPDATE statement, run once per batch (found ${statements.length} statement(s)${statements[0] ? `, the first a ${statements[0].kind}` : ''}).`,
        },
      ];
    }
    const statement = statements[0]!;
    const problems: StepSqlProblem[] = [];
    const missing = BATCH_PLACEHOLDERS.filter((name) => !template.uses.includes(name));
    if (missing.length > 0) {
      problems.push({
        line: statement.startLine,
        message: `The UPDATE does not use ${missing.map((name) => `:${name}`).join(' and ')}: restrict it to the batch, e.g. WHERE <key> BETWEEN :batch_start AND :batch_end (both inclusive; sent as bind parameters).`,
      });
    }
    const target = updateTargetOf(statement.sql);
    const table = (step.table ?? {}) as Record<string, unknown>;
    if (typeof table.schema === 'string' && typeof table.name === 'string' && (target?.schema !== table.schema || target?.table !== table.name)) {
      problems.push({
        line: statement.startLine,
        message: `The UPDATE updates ${target ? `${target.schema ?? '(no schema)'}.${target.table}` : 'an unknown table'}, but the step walks ${table.schema}.${table.name}: update the step's table, schema-qualified.`,
      });
    }
    return problems;
  },
  describe: (step) =>
    step.until === 'no_rows'
      ? `batched backfill of ${step.table.schema}.${step.table.name}, the next ${step.batch_size} rows that still need it per batch (SKIP LOCKED, then a final pass for locked rows), each batch its own transaction, until none is left`
      : `batched backfill of ${step.table.schema}.${step.table.name} by ${step.key}, ${step.batch_size} rows a batch, each batch its own transaction`,
  startFacts: (step) => ({ kind: step.kind, table: `${step.table.schema}.${step.table.name}`, key: step.key, batchSize: step.batch_size, pauseMs: step.pause }),
  async sqlToRun(step, fileSql) {
    // The loader already checked the template: :batch_start and :batch_end (or :batch_size) become $1 and $2 (or $1), on the same lines.
    const template = await translateBatchTemplate(fileSql, step.until === 'no_rows' ? NO_ROWS_PLACEHOLDERS : BATCH_PLACEHOLDERS);
    return template.ok ? template.sql : fileSql;
  },
  partialLedgerFirst: true,
  async run({ context, step, spec, mode, hooks, options }) {
    if (mode.kind !== 'own') return refusedInTransaction(step, spec);
    if (step.until === 'no_rows') {
      // What the loader checked, derived again from the frozen file: the engine runs only what loads.
      const analysed = await analyseNoRowsStatement(step, spec.sql);
      if (!analysed.ok) return refusedUntilNoRows(step, analysed.problems);
      return runUntilNoRows(context, step, spec, analysed.statements, hooks, options);
    }
    const prepared = await prepareStep(spec);
    if (!prepared.ok) return { ...(await executeStep(context.client, spec, mode, hooks, options)), attempts: 1 };
    const statement = prepared.statements[0]!;
    return runBatchedBackfill(context, step, spec, { line: statement.startLine, endLine: statement.endLine }, hooks, options);
  },
};
