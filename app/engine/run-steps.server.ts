/**
 * Runs a list of steps (a plan's apply or rollback) on the run's session, each through its step
 * kind (app/steps), one event per statement. With `ledger`, the target's ledger says what
 * happened: the success row commits in the last transactional step's own transaction
 * (beforeCommit), or follows the last statement of a non-transactional last step; a step that
 * commits as it goes is preceded by a 'partial' row (should this process die inside it, the
 * target already says the run changed it); a failure after something committed writes 'partial'
 * with the completed steps.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { BackupCopy, BackupObject, StepFailure, StepSummary } from '../../db/schema/index';
import type { PlanObjects, Step } from '../plans/plan-schema';
import { findDroppedObjects } from '../sql/dropped-objects.server';
import { takeBackup } from '../targets/backups.server';
import { prepareStep } from '../steps/execute-step.server';
import type { KindOutcome, StepKindContext } from '../steps/step-kind';
import { stepKindOf } from '../steps/step-kinds.server';
import { clearBackfillProgress, readLedgerRowsOfRun, writeLedgerRow, writeLedgerRowWithPool, type LedgerRowToWrite } from '../targets/ledger.server';
import { readBackfillPauseState } from './backfill-control.server';
import type { ResumeSkips } from './resume.server';
import { cancelledNow, type DriveSession } from './drive-run.server';

export interface StepsRun {
  ok: boolean;
  steps: StepSummary[];
  failure?: StepFailure;
  cancelledBy?: string;
  ledgerWritten: 'applied' | 'rolled_back' | 'partial' | null;
  /** What the steps kept of the declared columns and tables they dropped (a rollback's backups). */
  backups: BackupCopy[];
}

export interface RunStepsOptions {
  /** 'own': each step owns its transaction; 'caller': inside the session's open transaction (a rehearsal). */
  mode: 'own' | 'caller';
  /** Which ledger rows to write (only in 'own' mode). */
  ledger?: 'apply' | 'rollback';
  /** A resumed apply (docs/decisions/027): the steps an earlier run completed, skipped and carried into this run's ledger rows. */
  resume?: ResumeSkips;
  /**
   * Copy every column and table of the plan's `objects` a step drops before it is dropped: in the
   * step's own transaction, or just before a non-transactional step (docs/decisions/031).
   */
  keepDropped?: boolean;
}

/** The declared objects a step's SQL drops: what a rollback keeps a copy of. */
export async function objectsToKeep(sql: string, objects: PlanObjects): Promise<BackupObject[]> {
  const dropped = await findDroppedObjects(sql).catch(() => ({ columns: [], tables: [] }));
  const columns = dropped.columns
    .filter((column) => objects.columns.some((declared) => declared.schema === column.schema && declared.table === column.table && declared.column === column.column))
    .map((column): BackupObject => ({ kind: 'column', schema: column.schema, table: column.table, column: column.column }));
  const tables = dropped.tables
    .filter((table) => objects.tables.some((declared) => declared.schema === table.schema && declared.name === table.name))
    .map((table): BackupObject => ({ kind: 'table', schema: table.schema, table: table.name }));
  return [...tables, ...columns.filter((column) => !tables.some((table) => table.schema === column.schema && table.table === column.table))];
}

interface StepProgress {
  stepId: string;
  statementsCompleted: number;
  statementCount: number;
  complete: boolean;
  kind?: string;
  detail?: Record<string, unknown>;
  /** Set on a step a resumed run skipped: the run that completed it (absent: the run of the ledger row). */
  completedBy?: string;
}

export async function runSteps(session: DriveSession, steps: Step[], options: RunStepsOptions): Promise<StepsRun> {
  const { run, thawed, client, pool } = session;
  const summaries: StepSummary[] = [];
  const progress: StepProgress[] = [];
  const kindContext: StepKindContext = {
    runId: run.id,
    planId: run.planId,
    planRetries: thawed.plan.retries,
    client,
    pool,
    log: (event) => session.log(event),
    cancelledBy: () => session.cancelledBy,
    pauseState: () => readBackfillPauseState(session.deps.store.pool, run.id),
  };
  const ownsLedger = options.ledger !== undefined && options.mode === 'own';
  const successOutcome = options.ledger === 'rollback' ? 'rolled_back' : 'applied';
  const ledgerRow = (outcome: LedgerRowToWrite['outcome']): LedgerRowToWrite => ({
    runId: run.id,
    planId: run.planId,
    checksum: run.planChecksum,
    action: options.ledger!,
    outcome,
    stepsCompleted: progress,
    appliedBy: session.actor.email,
    equivalentPlanIds: thawed.plan.equivalent_to,
    ...(session.lastCheckpoint ? { anchor: { seq: session.lastCheckpoint.seq, head: session.lastCheckpoint.head, checkpoints: session.lastCheckpoint.count } } : {}),
  });
  // A rollback resets the plan's backfill cursors with its ledger row: a later apply walks from the first key.
  const writeLedger = async (target: pg.ClientBase, outcome: LedgerRowToWrite['outcome']) => {
    if (options.ledger === 'rollback' && outcome === 'rolled_back') await clearBackfillProgress(target, run.planId);
    await writeLedgerRow(target, ledgerRow(outcome));
  };
  // A ledger row written on the run's session after statements committed records what is already
  // true: a cancel signal landing on it (57014) must not leave the target's ledger silent.
  const writeLedgerAfterCommit = (outcome: LedgerRowToWrite['outcome']) => retryIfCancelled(() => writeLedger(client, outcome));
  const backups: BackupCopy[] = [];
  const failed = (failure: StepFailure, cancelledBy: string | undefined, ledgerWritten: StepsRun['ledgerWritten']): StepsRun => ({
    ok: false,
    backups,
    steps: summaries,
    failure,
    ...(cancelledBy ? { cancelledBy } : {}),
    ledgerWritten,
  });

  for (const [index, step] of steps.entries()) {
    const last = index === steps.length - 1;
    const completedEarlier = options.resume?.steps.get(step.id);
    if (completedEarlier) {
      // Not run again: the ledger rows of this run keep saying it is complete, and by whom.
      progress.push({ ...(completedEarlier.entry as unknown as StepProgress), stepId: step.id, complete: true, completedBy: completedEarlier.completedBy });
      await session.log({
        type: 'step.skipped',
        payload: {
          stepId: step.id,
          title: step.title,
          transactional: step.transactional,
          completedBy: completedEarlier.completedBy,
          resumes: options.resume!.previousRunId,
          reason: `completed by run ${completedEarlier.completedBy}; this run resumes the apply of run ${options.resume!.previousRunId}: ${options.resume!.resumesAt}`,
        },
      });
      if (!last) continue;
      const ledgerWritten = ownsLedger ? successOutcome : null;
      if (ownsLedger) await writeLedgerAfterCommit(successOutcome);
      return { ok: true, steps: summaries, ledgerWritten, backups };
    }
    const kind = stepKindOf(step);
    const spec = {
      id: step.id,
      title: step.title,
      sql: await kind.sqlToRun(step, thawed.stepSql(step)),
      transactional: step.transactional,
      lockTimeoutMs: step.lock_timeout,
      statementTimeoutMs: step.statement_timeout,
    };
    const prepared = await prepareStep(spec);
    const statementCount = prepared.ok ? prepared.statements.length : 0;
    // A cancel recorded before the step begins (here or from another process) stops it from beginning.
    if (await cancelledNow(session)) {
      const failure: StepFailure = { stepId: step.id, statementIndex: -1, line: 0, message: `cancelled by ${session.cancelledBy} before step ${step.id} started`, blockers: [], cancelled: true };
      await session.log({ type: 'step.failed', payload: { stepId: step.id, failure, cancelledBy: session.cancelledBy } });
      return failed(failure, session.cancelledBy, null);
    }
    const retries = step.retries ?? thawed.plan.retries;
    session.backends.set(session.backendPid, { waitingFor: `step ${step.id}`, lockTimeoutMs: step.lock_timeout });
    await session.log({
      type: 'step.started',
      payload: {
        stepId: step.id,
        title: step.title,
        file: step.file,
        transactional: step.transactional,
        mode: options.mode,
        statementCount,
        lockTimeoutMs: step.lock_timeout,
        statementTimeoutMs: step.statement_timeout,
        ...kind.startFacts(step),
        ...(retries > 0 ? { retries } : {}),
      },
    });
    const keep = options.keepDropped && options.mode === 'own' ? await objectsToKeep(spec.sql, thawed.plan.objects) : [];
    type Kept = { object: BackupObject; copy?: BackupCopy; skipped?: string; durationMs: number };
    let kept: Kept[] = [];
    const keepAll = async (transaction: pg.ClientBase) => {
      kept = [];
      for (const object of keep) {
        const started = performance.now();
        const result = await takeBackup(transaction, { runId: run.id, planId: run.planId, checksum: run.planChecksum }, object);
        kept.push({ object, ...('copy' in result ? { copy: result.copy } : { skipped: result.skipped }), durationMs: Math.round(performance.now() - started) });
      }
    };
    const logKept = async () => {
      for (const entry of kept) {
        if (entry.copy) {
          backups.push(entry.copy);
          await session.log({ type: 'backup.taken', payload: { stepId: step.id, copy: entry.copy, durationMs: entry.durationMs } });
        } else await session.log({ type: 'backup.skipped', payload: { stepId: step.id, object: entry.object, reason: entry.skipped! } });
      }
      kept = [];
    };
    if (keep.length > 0 && !step.transactional) {
      // A step that commits statement by statement: the copy commits on its own just before it.
      await client.query('begin');
      try {
        await keepAll(client);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => {});
        throw error;
      }
      await logKept();
    }
    const writesLedgerInTransaction = ownsLedger && last && step.transactional;
    // A resumable plan's ledger says exactly which steps completed, even if this process dies: each
    // transactional step records itself in its own transaction, and every step that commits as it goes
    // is preceded by a row (docs/decisions/027).
    const resumableApply = options.ledger === 'apply' && ownsLedger && thawed.plan.resumable;
    const recordsItselfInTransaction = resumableApply && !last && step.transactional;
    if (options.ledger === 'apply' && ownsLedger && (kind.partialLedgerFirst || (resumableApply && !step.transactional))) {
      await retryIfCancelled(() => writeLedgerRow(client, ledgerRow('partial')));
      await session.log({ type: 'ledger.checkpoint', payload: { stepId: step.id, outcome: 'partial', stepsCompleted: progress.map((entry) => entry.stepId) } });
    }
    const outcome: KindOutcome = await kind.run({
      context: kindContext,
      step,
      spec,
      mode: { kind: options.mode },
      hooks: {
        ...(keep.length > 0 && step.transactional ? { afterBegin: keepAll } : {}),
        onStatement: async (event) => {
          await session.log({
            type: 'statement.completed',
            payload: {
              stepId: event.stepId,
              index: event.index,
              line: event.line,
              endLine: event.endLine,
              command: event.command,
              durationMs: event.durationMs,
              rowCount: event.rowCount,
              notices: event.notices,
              startedAt: event.startedAt,
              ...(event.blockers ? { blockers: event.blockers } : {}),
            },
          });
        },
        ...(writesLedgerInTransaction
          ? {
              beforeCommit: async (transaction: pg.ClientBase) => {
                progress.push({ stepId: step.id, statementsCompleted: statementCount, statementCount, complete: true });
                try {
                  await writeLedger(transaction, successOutcome);
                } finally {
                  progress.pop();
                }
              },
            }
          : recordsItselfInTransaction
            ? {
                beforeCommit: async (transaction: pg.ClientBase) => {
                  progress.push({ stepId: step.id, statementsCompleted: statementCount, statementCount, complete: true });
                  try {
                    await writeLedgerRow(transaction, ledgerRow('partial'));
                  } finally {
                    progress.pop();
                  }
                },
              }
            : {}),
      },
      options: { blockerProbe: pool, cancelPool: pool },
    });
    let ok = outcome.ok;
    let committed = outcome.committed;
    if (!ok && outcome.failure?.outcomeUnknown && writesLedgerInTransaction) {
      // The COMMIT's answer was lost: the ledger row, written in the same transaction, settles it.
      const rows = await readLedgerRowsOfRun(pool, run.id).catch(() => []);
      const landed = rows.some((row) => row.action === options.ledger && row.outcome === successOutcome);
      await session.log({ type: 'commit.settled', payload: { stepId: step.id, landed, by: 'reading the target ledger for this run' } });
      if (landed) ok = committed = true;
    }
    const completedCount = ok ? statementCount : outcome.completedCount;
    const kindFacts = step.kind !== 'sql' ? { kind: step.kind } : {};
    const summary: StepSummary = {
      stepId: step.id,
      title: step.title,
      transactional: step.transactional,
      ok,
      statementCount,
      completedCount,
      committed,
      durationMs: outcome.durationMs,
      ...kindFacts,
      ...(outcome.attempts > 1 ? { attempts: outcome.attempts } : {}),
      ...(outcome.detail ? { detail: outcome.detail } : {}),
    };
    summaries.push(summary);
    // A failed step that still changed the target (batches committed, an INVALID index left) counts as progress: the ledger says partial.
    const nonTransactionalProgress = !step.transactional && options.mode === 'own' && (completedCount > 0 || outcome.leftover === true);
    if (committed || nonTransactionalProgress) {
      progress.push({ stepId: step.id, statementsCompleted: completedCount, statementCount, complete: ok, ...kindFacts, ...(outcome.detail ? { detail: outcome.detail } : {}) });
    }

    if (ok) {
      // The copies committed with the step (in its transaction): now they are facts.
      if (step.transactional) await logKept();
      let ledgerWritten: StepsRun['ledgerWritten'] = null;
      if (ownsLedger && last) {
        if (!step.transactional) await writeLedgerAfterCommit(successOutcome);
        ledgerWritten = successOutcome;
      }
      await session.log({ type: 'step.completed', payload: summary });
      if (last) return { ok: true, steps: summaries, ledgerWritten, backups };
      continue;
    }

    const raw = outcome.failure!;
    let cancelledBy = raw.cancelled ? (session.cancelledBy ?? (await session.cancelRequester())) : undefined;
    if (!cancelledBy && raw.sqlstate === '57014') cancelledBy = await session.cancelRequester();
    // A cancel from another process reached the statement before this process's poll saw it: nothing more starts either.
    if (cancelledBy && !session.cancelledBy) session.cancelledBy = cancelledBy;
    const failure: StepFailure = {
      stepId: step.id,
      statementIndex: raw.statementIndex,
      line: raw.line,
      ...(raw.sqlstate ? { sqlstate: raw.sqlstate } : {}),
      message: raw.message,
      ...(raw.detail ? { detail: raw.detail } : {}),
      ...(raw.hint ? { hint: raw.hint } : {}),
      // The statement's own sample, else what the lock-wait watcher last saw blocking this step.
      blockers: raw.blockers.length > 0 ? raw.blockers : (session.lastBlockers.get(`step ${step.id}`) ?? []),
      cancelled: cancelledBy !== undefined,
    };
    await session.log({
      type: 'step.failed',
      payload: {
        stepId: step.id,
        failure,
        summary: raw.summary,
        during: raw.during,
        ...(raw.timeout ? { timeout: raw.timeout } : {}),
        ...(raw.outcomeUnknown ? { outcomeUnknown: true } : {}),
        connectionBroken: outcome.connectionBroken,
        ...(cancelledBy ? { cancelledBy } : {}),
        ...(outcome.attempts > 1 ? { attempts: outcome.attempts } : {}),
        ...(raw.sqlstate === '55P03'
          ? {
              retryable: true,
              note:
                outcome.attempts > 1
                  ? `still locked after ${outcome.attempts} attempts: retry under a new run when the blocking sessions are gone`
                  : 'a lock timeout changes nothing: retry under a new run when the blocking sessions are gone',
            }
          : {}),
      },
    });
    let ledgerWritten: StepsRun['ledgerWritten'] = null;
    if (ownsLedger && progress.length > 0) {
      const row = ledgerRow('partial');
      const written = await (outcome.connectionBroken ? writeLedgerRowWithPool(pool, row) : retryIfCancelled(() => writeLedgerRow(client, row))).then(
        () => true,
        (error: Error) => session.log({ type: 'ledger.write_failed', payload: { outcome: 'partial', message: error.message } }).then(() => false),
      );
      if (written) ledgerWritten = 'partial';
    }
    return failed(failure, cancelledBy, ledgerWritten);
  }
  return { ok: true, steps: summaries, ledgerWritten: null, backups };
}

/** Runs `write` again (up to 3 times) when a cancel signal cancelled it (57014). */
async function retryIfCancelled(write: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if ((error as { code?: string }).code !== '57014' || attempt >= 3) throw error;
    }
  }
}
