/**
 * Signing a run's log at a checkpoint, the engine's one way to do it: 'full' at a drive's start,
 * each phase end and its completion, 'delta' after every human action (docs/decisions/020); each
 * signed checkpoint is also POSTed to RUNSHEET_ANCHOR_URL when set (never waited for).
 */
import { postCheckpointAnchor } from '../runs/anchor-webhook.server';
import { signCheckpoint, type CheckpointKind, type RunCheckpoint } from '../runs/signing.server';
import { RunsheetError } from '../runtime/errors';
import { writeRunAnchor } from '../targets/ledger.server';
import type { EngineDeps } from './engine-deps.server';

export async function checkpointRun(deps: Pick<EngineDeps, 'store' | 'signingKeyPem' | 'anchorWebhookUrl'>, runId: string, kind: CheckpointKind): Promise<RunCheckpoint> {
  const checkpoint = await signCheckpoint(deps.store.pool, runId, deps.signingKeyPem, kind);
  if (deps.anchorWebhookUrl) void postCheckpointAnchor(deps.anchorWebhookUrl, checkpoint);
  return checkpoint;
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
