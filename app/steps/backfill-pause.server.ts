/**
 * Pause and resume between the batches of a batched_backfill step, for both of its walks (by key,
 * and until no rows are left): the newest `backfill.pause` / `backfill.resume` request in the run
 * log decides, polled at most every 250 ms; while paused the step holds no transaction and no lock,
 * and a cancel still stops it. One definition, so both walks pause, resume and log alike.
 */
import { performance } from 'node:perf_hooks';
import { sleepUnlessCancelled, type StepKindContext } from './step-kind';

/** How often the driving process asks the run log whether a pause or resume was requested. */
const PAUSE_POLL_MS = 250;
const PAUSED_POLL_MS = 500;

export interface BackfillPosition {
  lastKey: string | null;
  rowsDone: number;
  batches: number;
}

export class BackfillPauseGate {
  private lastPoll = 0;
  /** Time spent paused so far (the rate leaves it out). */
  pausedMs = 0;

  constructor(
    private readonly context: StepKindContext,
    private readonly stepId: string,
  ) {}

  /**
   * Between batches: while the newest request is a pause, hold. `paused` runs once the pause is
   * logged (a progress report); `stopIfCancelled` throws when a cancel arrives while paused.
   */
  async hold(position: () => BackfillPosition, hooks: { paused: () => Promise<void>; stopIfCancelled: () => void }): Promise<void> {
    if (performance.now() - this.lastPoll < PAUSE_POLL_MS) return;
    this.lastPoll = performance.now();
    let state = await this.context.pauseState().catch(() => ({ paused: false }) as { paused: boolean; by?: string; reason?: string });
    if (!state.paused) return;
    const pausedAt = performance.now();
    const at = position();
    await this.context.log({
      type: 'backfill.paused',
      payload: {
        stepId: this.stepId,
        by: state.by ?? null,
        ...(state.reason ? { reason: state.reason } : {}),
        lastKey: at.lastKey,
        rowsDone: at.rowsDone,
        batches: at.batches,
        note: 'every batch so far has committed; nothing is locked while paused',
      },
    });
    await hooks.paused();
    while (state.paused) {
      if (await sleepUnlessCancelled(PAUSED_POLL_MS, this.context)) {
        this.pausedMs += performance.now() - pausedAt;
        hooks.stopIfCancelled();
      }
      state = await this.context.pauseState().catch(() => state);
    }
    const pausedMs = Math.round(performance.now() - pausedAt);
    this.pausedMs += pausedMs;
    await this.context.log({ type: 'backfill.resumed', payload: { stepId: this.stepId, by: state.by ?? null, pausedMs, lastKey: position().lastKey } });
  }
}
