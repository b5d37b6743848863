/**
 * A run's life, defined once (PRODUCT.md "Three kinds of state"): its kinds, its states, the
 * groups the rest of Runsheet asks about, and the transitions it may make. The engine refuses any
 * other transition in code (transitionRun), and PostgreSQL refuses it too: the store's
 * `run_state_transitions` table holds exactly RUN_TRANSITIONS (a test compares them) and a
 * trigger on `runs` checks every state change against it. Pure data: the store's schema, the
 * engine and both front ends import it; it imports nothing.
 *
 * A new state (cancelled, watching…) is added here, in a migration that adds its transitions to
 * the table, and in the event union if it brings events: nowhere else.
 */

export const RUN_KINDS = ['execute', 'rehearsal'] as const;
export type RunKind = (typeof RUN_KINDS)[number];

export const RUN_STATES = [
  'draft',
  'ready',
  'superseded',
  'applying',
  'applied',
  'failed',
  'cancelled',
  'interrupted',
  'rolling_back',
  'rolled_back',
  'rollback_failed',
  'watching',
  'watched',
  'watch_alarm',
  'rehearsing',
  'rehearsed',
  'rehearsal_failed',
] as const;
export type RunState = (typeof RUN_STATES)[number];

/** Being prepared (ticks, checks, sign-off, waivers): at most one per plan, target and kind (runs_one_open_per_plan). */
export const PREPARING_STATES = ['draft', 'ready'] as const satisfies readonly RunState[];
/** Holding its target (a dedicated session, the advisory lock, a heartbeat): at most one per target (runs_one_active_per_target). */
export const ACTIVE_RUN_STATES = ['applying', 'rolling_back', 'rehearsing'] as const satisfies readonly RunState[];
/**
 * The runbook's monitoring window after a verified apply (docs/decisions/030): its checks re-run on
 * schedule. Not active states: a watch never holds the target's run lock nor blocks other runs, and
 * the target's ledger still says applied. `watching` (no regression yet) and `watch_alarm` (a check
 * that passed has failed; the watch goes on until it is ended) may still have checks running;
 * `watched` is a window that closed clean, or was ended early by a person with a note.
 */
export const WATCH_STATES = ['watching', 'watched', 'watch_alarm'] as const satisfies readonly RunState[];
/** A watch may still be re-running checks in these (the run_watches row says whether it is). */
export const WATCH_RUNNING_STATES = ['watching', 'watch_alarm'] as const satisfies readonly RunState[];
/** The apply stands, verified: applied, or in or after its watch. require_applied_on counts each. */
export const APPLIED_STATES = ['applied', ...WATCH_STATES] as const satisfies readonly RunState[];
/**
 * Nothing more happens by itself: a person may still start a rollback (see ROLLBACK_FROM_STATES).
 * `watching` and `watch_alarm` are left out on purpose: the watch scheduler still acts on them.
 */
export const SETTLED_STATES = ['superseded', 'applied', 'failed', 'cancelled', 'interrupted', 'rolled_back', 'rollback_failed', 'watched', 'rehearsed', 'rehearsal_failed'] as const satisfies readonly RunState[];
/**
 * States a rollback may start from; the rollback gate then asks the target's ledger whether
 * anything is there to undo. A rollback that failed (or was cancelled) may be tried again. From a
 * watch state the rollback ends the watch first.
 */
export const ROLLBACK_FROM_STATES = ['applied', 'watching', 'watched', 'watch_alarm', 'failed', 'cancelled', 'interrupted', 'rollback_failed'] as const satisfies readonly RunState[];
/** States only a rehearsal takes (and the ones it shares with every run). */
export const REHEARSAL_STATES = ['draft', 'ready', 'superseded', 'rehearsing', 'rehearsed', 'rehearsal_failed', 'interrupted'] as const satisfies readonly RunState[];

/** Every state change a run may make; anything else is refused by the engine and by the store. */
export const RUN_TRANSITIONS: { readonly [From in RunState]: readonly RunState[] } = {
  // Readiness follows the gates; a draft of an older checksum is retired; execute and rehearse claim a ready run.
  draft: ['ready', 'superseded'],
  ready: ['draft', 'superseded', 'applying', 'rehearsing'],
  superseded: [],
  // A drive ends in its outcome, or gives its claim back when the target's lock was held; a dead driver leaves it interrupted.
  // A cancelled apply ends 'cancelled'; a cancelled rollback ends 'rollback_failed' (and may be tried again); a cancelled rehearsal fails.
  applying: ['applied', 'failed', 'cancelled', 'ready', 'interrupted'],
  // A rollback whose target lock was held gives its claim back to the state it started from (a watch state included).
  rolling_back: ['rolled_back', 'rollback_failed', 'applied', 'failed', 'cancelled', 'interrupted', 'watching', 'watched', 'watch_alarm'],
  rehearsing: ['rehearsed', 'rehearsal_failed', 'ready', 'interrupted'],
  // A verified apply whose plan declares a watch enters it; the watch closes clean or alarms on the first regression.
  applied: ['rolling_back', 'watching'],
  watching: ['watched', 'watch_alarm', 'rolling_back'],
  watch_alarm: ['rolling_back'],
  watched: ['rolling_back'],
  failed: ['rolling_back'],
  cancelled: ['rolling_back'],
  interrupted: ['rolling_back'],
  rolled_back: [],
  rollback_failed: ['rolling_back'],
  rehearsed: [],
  rehearsal_failed: [],
};

/** A phase of a drive, as the live view and the report both show it. */
export type PhaseStatus = 'running' | 'done' | 'failed' | 'stopped';

/**
 * A phase's outcome from the run's events, one rule for every page: completed and ok is done,
 * completed and not ok is failed (never "Done"); never completed is running while its drive is
 * on, failed when the drive finished without completing it, and stopped when the drive was
 * interrupted (its process died).
 */
export function phaseStatusOf(phase: { completed: boolean; ok?: boolean }, drive: 'on' | 'finished' | 'interrupted'): PhaseStatus {
  if (phase.completed) return phase.ok === false ? 'failed' : 'done';
  return drive === 'on' ? 'running' : drive === 'finished' ? 'failed' : 'stopped';
}

const within = <S extends RunState>(states: readonly S[]) => (state: RunState): state is S => (states as readonly RunState[]).includes(state);

export const isPreparingState = within(PREPARING_STATES);
export const isActiveState = within(ACTIVE_RUN_STATES);
export const isSettledState = within(SETTLED_STATES);
export const isWatchState = within(WATCH_STATES);
export const isWatchRunningState = within(WATCH_RUNNING_STATES);
export const isAppliedState = within(APPLIED_STATES);
export const mayRollBackFrom = within(ROLLBACK_FROM_STATES);

export const isAllowedTransition = (from: RunState, to: RunState): boolean => RUN_TRANSITIONS[from].includes(to);

/** Every allowed (from, to) pair, as the store's run_state_transitions table holds them. */
export function transitionPairs(): [RunState, RunState][] {
  return RUN_STATES.flatMap((from) => [...new Set(RUN_TRANSITIONS[from])].map((to): [RunState, RunState] => [from, to]));
}

/** The part of a run the working-run rule reads. */
export interface RunForWorkingRule {
  kind: RunKind;
  state: RunState;
  planChecksum: string;
  /** Whether any of the apply committed (the run wrote a ledger row, or the ledger held one when it was interrupted): there is something to roll back. */
  changedTarget: boolean;
}

export interface WorkingRunChoice<R> {
  /** The run the plan page and the command line work on now. */
  working?: R;
  /** The newest run before it that is over (history): what a new attempt follows. */
  previous?: R;
  /** A draft or ready run of an older checksum: retired (superseded) before a new run is opened. */
  stale?: R;
}

/**
 * Which run of a plan on a target "we are working on" (both front ends use this one rule): among
 * its runs of one kind, newest first, the newest while it still has something to do: being
 * prepared at the plan's current checksum, holding the target, applied (watching, watched or in a
 * watch alarm: each may still be rolled back), failed in a rollback, or
 * failed, cancelled or interrupted after part of its apply committed (each waits for a person; a
 * rehearsal never does). A run that rolled back, or failed, was cancelled or was interrupted with
 * nothing committed, or was superseded, is history: the next action opens a new run.
 */
export function pickWorkingRun<R extends RunForWorkingRule>(runsNewestFirst: readonly R[], kind: RunKind, currentChecksum: string): WorkingRunChoice<R> {
  const ofKind = runsNewestFirst.filter((run) => run.kind === kind);
  const latest = ofKind[0];
  if (!latest) return {};
  const previousOf = (run: R) => ofKind.find((candidate) => candidate !== run && !isPreparingState(candidate.state) && candidate.state !== 'superseded');
  if (isPreparingState(latest.state)) {
    if (latest.planChecksum === currentChecksum) return { working: latest, ...optional('previous', previousOf(latest)) };
    return { stale: latest, ...optional('previous', previousOf(latest)) };
  }
  // A rehearsal changes nothing that stays: once it ends, nothing waits on anyone.
  const waitsOnAPerson =
    isActiveState(latest.state) ||
    (kind === 'execute' &&
      (isAppliedState(latest.state) ||
        latest.state === 'rollback_failed' ||
        ((latest.state === 'failed' || latest.state === 'cancelled' || latest.state === 'interrupted') && latest.changedTarget)));
  if (waitsOnAPerson) return { working: latest, ...optional('previous', previousOf(latest)) };
  const previous = latest.state === 'superseded' ? previousOf(latest) : latest;
  return optional('previous', previous);
}

const optional = <K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } => (value === undefined ? {} : ({ [key]: value } as { [P in K]?: V }));
