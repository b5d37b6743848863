/**
 * Putting back what a rollback kept (docs/decisions/031): an engineer's action on a run whose apply
 * stands again (applied, watching or watched), from the newest rolled-back run of the same plan on
 * the same target that kept copies. Refused (in the run log) unless the re-applied plan declares
 * every object the copies hold and the target's ledger says this run applied. The restore holds the
 * target's advisory lock (no migration runs meanwhile) and runs in one transaction; each row is put
 * back on its own savepoint, and every row not put back is listed with its key and why.
 */
import { performance } from 'node:perf_hooks';
import { ACTIVE_RUN_STATES, isAppliedState } from '../../db/run-lifecycle';
import type { BackupCopy } from '../../db/schema/index';
import type { PayloadOf } from '../runs/run-events';
import { appendRunEvent, assertRunId } from '../runs/run-log.server';
import { findRunSummaries, type RunRecord, type RunSummaryRecord } from '../runs/run-store.server';
import { RunsheetError, type ErrorKind } from '../runtime/errors';
import { copyAsItIsNow, restoreBackup, type RestoredCopy, type SkippedRow } from '../targets/backups.server';
import { readLedgerRowsOfRun } from '../targets/ledger.server';
import { checkpointRun } from './checkpoints.server';
import { whoOf, type EngineActor, type EngineDeps } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';
import { authorize, getRun } from './runs.server';
import { openTargetClient, releaseTargetLock, tryTargetLock } from './target-session.server';

/** The newest rolled-back run of the plan on the target whose rollback kept copies. */
export async function restorableRunFor(deps: Pick<EngineDeps, 'store'>, run: Pick<RunRecord, 'planId' | 'target'>): Promise<RunSummaryRecord | undefined> {
  const rolledBack = await findRunSummaries(deps.store.pool, { planId: run.planId, target: run.target, kind: 'execute', states: ['rolled_back'], limit: 20 });
  return rolledBack.find((candidate) => (candidate.outcome?.rollback?.backups?.length ?? 0) > 0);
}

export interface RestoreResult {
  fromRunId: string;
  objects: RestoredCopy[];
  skipped: SkippedRow[];
}

export async function restoreRun(deps: EngineDeps, input: { runId: string; actor: EngineActor; typedTargetName?: string }): Promise<RestoreResult> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'restore', runId });
  const run = await getRun(deps, runId);
  let fromRunId: string | null = null;
  const refuse = async (kind: ErrorKind, reason: string): Promise<never> => {
    await appendRunEvent(deps.store.pool, { runId, ...whoOf(actor), type: 'restore.refused', payload: { fromRunId, reason } }).catch(() => {});
    throw new RunsheetError(kind, `Refused: ${reason}.`);
  };
  if (run.kind !== 'execute' || !isAppliedState(run.state)) {
    await refuse('state', `the run is ${run.state}: a restore puts values back into a run whose apply stands (applied, watching or watched)`);
  }
  const source = await restorableRunFor(deps, run);
  if (!source) await refuse('state', `no rolled-back run of ${run.planId} on ${run.target} kept a copy of what it dropped`);
  fromRunId = source!.id;
  const copies: BackupCopy[] = source!.outcome!.rollback!.backups!;
  if (input.typedTargetName !== run.target) await refuse('invalid_input', `type the target's name (${run.target}) to confirm the restore`);
  const { objects } = thawPlan(run.frozenPlan).plan;
  const undeclared = copies.filter(({ object }) =>
    object.kind === 'column'
      ? !objects.columns.some((column) => column.schema === object.schema && column.table === object.table && column.column === object.column)
      : !objects.tables.some((table) => table.schema === object.schema && table.name === object.table),
  );
  if (undeclared.length > 0) {
    await refuse('state', `the plan at checksum ${run.planChecksum.slice(0, 12)} does not declare ${undeclared.map(({ object }) => `${object.schema}.${object.table}${object.column ? `.${object.column}` : ''}`).join(', ')}: it is not applied again with the objects the copies hold`);
  }
  const target = deps.targets.get(run.target);
  const ledger = await readLedgerRowsOfRun(deps.targets.pool(run.target), run.id);
  if (!ledger.some((row) => row.action === 'apply' && row.outcome === 'applied') || ledger.some((row) => row.action === 'rollback')) {
    await refuse('state', `the ledger of ${run.target} does not say run ${run.id} applied the plan (and it was not rolled back since)`);
  }
  const active = await findRunSummaries(deps.store.pool, { target: run.target, states: ACTIVE_RUN_STATES, limit: 1 });
  if (active.length > 0) await refuse('busy', `run ${active[0]!.id} is ${active[0]!.state} on ${run.target}: restore when it ends`);

  const client = await openTargetClient(target, run.id);
  try {
    if (!(await tryTargetLock(client))) await refuse('busy', `the target's advisory lock is held by another migration session on ${run.target}: nothing was changed`);
    // Only what the rollback kept goes back: a copy dropped or edited since is refused before anything changes.
    for (const copy of copies) {
      const now = await copyAsItIsNow(client, copy);
      if (!now.present) {
        await refuse('state', `the copy ${copy.backupTable} that run ${fromRunId}'s rollback kept is no longer on ${run.target} (dropped?): nothing was restored; npx runsheet backups --target ${run.target} lists the copies that remain`);
      } else if (now.sha256 !== copy.sha256) {
        await refuse(
          'state',
          `the copy ${copy.backupTable} changed since run ${fromRunId}'s rollback took it (sha256 now ${now.sha256.slice(0, 12)}, recorded ${copy.sha256.slice(0, 12)}): nothing was restored; Runsheet puts back only what the rollback kept: undo the edit, or put the values back by hand`,
        );
      }
    }
    await appendRunEvent(deps.store.pool, { runId, ...whoOf(actor), type: 'restore.started', payload: { fromRunId: fromRunId!, backups: copies.map((copy) => copy.backupTable) } });
    const started = performance.now();
    const result: RestoreResult = { fromRunId: fromRunId!, objects: [], skipped: [] };
    let error: string | undefined;
    try {
      await client.query('begin');
      await client.query(`set local lock_timeout = '5s'`);
      for (const copy of copies) {
        const done = await restoreBackup(client, { copy, fromRunId: fromRunId!, runId: run.id, by: actor.email });
        result.objects.push(done.restored);
        result.skipped.push(...done.skipped);
      }
      await client.query('commit');
    } catch (failure) {
      await client.query('rollback').catch(() => {});
      error = (failure as Error).message;
    }
    const finished: PayloadOf<'restore.finished'> = {
      fromRunId: fromRunId!,
      ok: error === undefined,
      objects: error === undefined ? result.objects : [],
      skipped: error === undefined ? result.skipped : [],
      durationMs: Math.round(performance.now() - started),
      ...(error !== undefined ? { error } : {}),
    };
    await appendRunEvent(deps.store.pool, { runId, ...whoOf(actor), type: 'restore.finished', payload: finished });
    await checkpointRun(deps, runId, 'delta');
    if (error !== undefined) throw new RunsheetError('unavailable', `The restore failed and changed nothing: ${error}`);
    return result;
  } finally {
    await releaseTargetLock(client).catch(() => {});
    await client.end().catch(() => {});
  }
}
