/**
 * The optional anchor outside both the store and the target: each signed checkpoint POSTed to
 * RUNSHEET_ANCHOR_URL as JSON (run, seq, head, kind, checkpoint count, the DSSE envelope). Retried
 * with back-off in this process; never awaited by a run, never failing one (docs/decisions/020).
 * A receiver keeps what it gets; comparing it with the store is its side's check.
 */
import type { RunCheckpoint } from './signing.server';

const RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000];
const TIMEOUT_MS = 10_000;

export interface AnchorPost {
  runId: string;
  seq: number;
  head: string;
  kind: RunCheckpoint['kind'];
  checkpoints: number;
  envelope: RunCheckpoint['envelope'];
}

/** Starts delivering `checkpoint` to `url`; resolves when it was accepted or every retry failed (callers need not wait). */
export function postCheckpointAnchor(url: string, checkpoint: RunCheckpoint, options: { retryDelaysMs?: readonly number[]; report?: (line: string) => void } = {}): Promise<boolean> {
  const body: AnchorPost = { runId: checkpoint.runId, seq: checkpoint.seq, head: checkpoint.head, kind: checkpoint.kind, checkpoints: checkpoint.count, envelope: checkpoint.envelope };
  const delays = options.retryDelaysMs ?? RETRY_DELAYS_MS;
  const report = options.report ?? ((line: string) => console.error(`[runsheet] ${line}`));
  const attempt = async (index: number): Promise<boolean> => {
    let problem: string;
    try {
      const answer = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(TIMEOUT_MS) });
      if (answer.ok) return true;
      problem = `answered ${answer.status}`;
    } catch (error) {
      problem = (error as Error).message;
    }
    const delay = delays[index];
    if (delay === undefined) {
      report(`the anchor of run ${checkpoint.runId} at event ${checkpoint.seq} could not be delivered to ${new URL(url).origin}: ${problem}; giving up`);
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, delay).unref());
    return attempt(index + 1);
  };
  return attempt(0);
}
