/**
 * Pausing and resuming a batched backfill from the dashboard or the command line. A request is
 * an event in the run log ('backfill.pause', 'backfill.resume'); the process driving the run
 * reads the newest one between two batches (as it learns of a cancel), stops before the next
 * batch while paused, and answers with 'backfill.paused' / 'backfill.resumed'. A paused backfill
 * holds no lock on the table: every batch has committed. A pause asked before the backfill
 * starts (the run still draft or ready) makes it start paused.
 */
import type pg from 'pg';
import { eventsOf, type RunEvent } from '../runs/run-events';
import { appendRunEvent, assertRunId, readRunEvents, type LoggedRunEvent } from '../runs/run-log.server';
import { checkpointRun } from './checkpoints.server';
import { type EngineActor, type EngineDeps, whoOf } from './engine-deps.server';
import { thawPlan } from './frozen-plan.server';
import { authorize, getRun } from './runs.server';
import { RunsheetError } from '../runtime/errors';
import type { RunState } from '../../db/run-lifecycle';


/** In which states a run's backfill may be paused or resumed: before it runs, and while it applies. */
const CONTROLLABLE_STATES = ['draft', 'ready', 'applying'] as const satisfies readonly RunState[];

export interface BackfillPauseState {
  paused: boolean;
  /** Who asked for the current state, and why (a pause's reason). */
  by?: string;
  at?: string;
  reason?: string;
  seq?: number;
}

/** The newest pause or resume request of a run: what the driving process polls. */
export async function readBackfillPauseState(store: pg.Pool | pg.ClientBase, runId: string): Promise<BackfillPauseState> {
  return backfillPauseStateFromEvents(await readRunEvents(store, runId, { types: ['backfill.pause', 'backfill.resume'] }));
}

/** The same answer from events already read (the run page folds them). */
export function backfillPauseStateFromEvents(events: readonly RunEvent[]): BackfillPauseState {
  const latest = eventsOf(events, 'backfill.pause', 'backfill.resume').at(-1);
  if (!latest) return { paused: false };
  const reason = latest.payload.reason;
  return { paused: latest.type === 'backfill.pause', by: latest.actor, at: latest.at, seq: latest.seq, ...(reason ? { reason } : {}) };
}

export interface BackfillControlResult {
  /** The request appended to the run log; undefined when the backfill already was in that state. */
  requested?: LoggedRunEvent;
  state: BackfillPauseState;
}

/**
 * Asks the run's batched backfill to pause before its next batch (engineer: the 'cancel'
 * permission, since it stops a running migration). Idempotent: pausing a paused backfill appends
 * nothing.
 */
export async function pauseBackfill(deps: EngineDeps, input: { runId: string; actor: EngineActor; reason?: string }): Promise<BackfillControlResult> {
  return requestBackfillState(deps, { ...input, paused: true });
}

/** Lets a paused backfill go on from its last committed batch. Idempotent. */
export async function resumeBackfill(deps: EngineDeps, input: { runId: string; actor: EngineActor }): Promise<BackfillControlResult> {
  return requestBackfillState(deps, { ...input, paused: false });
}

async function requestBackfillState(deps: EngineDeps, input: { runId: string; actor: EngineActor; paused: boolean; reason?: string }): Promise<BackfillControlResult> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  const action = input.paused ? 'pause' : 'resume';
  await authorize(deps, { actor, action: 'cancel', runId });
  const run = await getRun(deps, runId);
  const refuse = async (reason: string) => {
    await appendRunEvent(deps.store.pool, { runId, ...whoOf(actor), type: 'action.refused', payload: { action: `backfill.${action}`, reason } });
  };
  if (run.kind !== 'execute') {
    await refuse('a rehearsal has no batched backfill to pause');
    throw new RunsheetError('state', `Refused: run ${runId} is a rehearsal; a batched backfill runs only in an execute run.`);
  }
  if (!(CONTROLLABLE_STATES as readonly RunState[]).includes(run.state)) {
    await refuse(`the run is ${run.state}`);
    throw new RunsheetError('state', `Refused: run ${runId} is ${run.state}; a backfill is paused or resumed while the run is draft, ready or applying.`);
  }
  const backfills = thawPlan(run.frozenPlan).plan.apply.filter((step) => step.kind === 'batched_backfill');
  if (backfills.length === 0) {
    await refuse('the plan has no batched_backfill step');
    throw new RunsheetError('invalid_input', `Run ${runId}'s plan has no batched_backfill step: there is nothing to ${action}.`);
  }
  const reason = input.reason?.trim();
  if (reason && reason.length > 2_000) throw new RunsheetError('invalid_input', 'A reason is at most 2,000 characters.');
  const current = await readBackfillPauseState(deps.store.pool, runId);
  if (current.paused === input.paused) return { state: current };
  const requested = await appendRunEvent(deps.store.pool, {
    runId,
    ...whoOf(actor),
    type: input.paused ? 'backfill.pause' : 'backfill.resume',
    payload: { state: run.state, steps: backfills.map((step) => step.id), ...(reason ? { reason } : {}) },
  });
  await checkpointRun(deps, runId, 'delta');
  return { requested, state: { paused: input.paused, by: requested.actor, at: requested.at, seq: requested.seq, ...(reason ? { reason } : {}) } };
}
