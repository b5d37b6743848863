/**
 * Signing a run's log at a checkpoint, the engine's one way to do it: 'full' at a drive's start,
 * each phase end and its completion, 'delta' after every human action (docs/decisions/020); each
 * signed checkpoint is also POSTed to RUNSHEET_ANCHOR_URL when set (never waited for).
 */
import { postCheckpointAnchor } from '../runs/anchor-webhook.server';
import { readRunEventsOfTypes } from '../runs/run-log.server';
import { buildRunReport, REPORT_EVENT_TYPES } from '../runs/run-report';
import { findRun, writeReportSummary } from '../runs/run-store.server';
import { signCheckpoint, type CheckpointKind, type RunCheckpoint } from '../runs/signing.server';
import { RunsheetError } from '../runtime/errors';
import { writeRunAnchor } from '../targets/ledger.server';
import type { EngineDeps } from './engine-deps.server';

export async function checkpointRun(deps: Pick<EngineDeps, 'store' | 'signingKeyPem' | 'anchorWebhookUrl'>, runId: string, kind: CheckpointKind): Promise<RunCheckpoint> {
  const checkpoint = await signCheckpoint(deps.store.pool, runId, deps.signingKeyPem, kind);
  if (deps.anchorWebhookUrl) void postCheckpointAnchor(deps.anchorWebhookUrl, checkpoint);
  // The report's summary follows the signed log: computed once here, not on every page view.
  await summarizeRunReport(deps, runId, checkpoint).catch((error: Error) => console.error(`[runsheet] the report summary of run ${runId} was not stored: ${error.message}`));
  return checkpoint;
}

/** The report summary of the run's events through the checkpoint, stored with its head. */
export async function summarizeRunReport(deps: Pick<EngineDeps, 'store'>, runId: string, through: Pick<RunCheckpoint, 'seq' | 'head'>): Promise<void> {
  const [events, run] = await Promise.all([
    readRunEventsOfTypes(deps.store.db, { runId, types: REPORT_EVENT_TYPES }),
    findRun(deps.store.pool, runId),
  ]);
  if (!run) return;
  const summary = buildRunReport(
    events.filter((event) => event.seq <= through.seq),
    run.outcome,
  );
  await writeReportSummary(deps.store.db, { runId, throughSeq: through.seq, head: through.head, summary });
}

/**
 * A drive's end, anchored on its target (outside any migration transaction): the final checkpoint's
 * head, so cutting the stored log back is detected. A target that cannot be written leaves the
 * anchor missing; verification shows it as such.
 */
export async function anchorOnTarget(deps: Pick<EngineDeps, 'targets'>, target: string, checkpoint: RunCheckpoint): Promise<void> {
  try {
    await writeRunAnchor(deps.targets.pool(target), checkpoint.runId, { seq: checkpoint.seq, head: checkpoint.head, checkpoints: checkpoint.count });
  } catch (error) {
    throw new RunsheetError('unavailable', `Could not anchor run ${checkpoint.runId} on target ${target}: ${(error as Error).message}`);
  }
}
