/**
 * Driving a run on its target, in four parts: claim (the store's partial unique index lets one
 * run per target be active), lock (the target's advisory lock, pg_try_advisory_lock polling),
 * drive (a heartbeat, the action's phases with events and signed checkpoints, cancel watching),
 * and finish (the outcome and the final state, then always: lock released, heartbeat stopped,
 * connection closed). One run drives its target through one dedicated connection
 * (`runsheet:run:<id>`), so a cancel or crash recovery can find it in pg_stat_activity.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { ACTIVE_RUN_STATES, type Blocker, type RunOutcome, type RunState, type RunStop } from '../../db/schema/index';
import { checkTargetOf, runChecks, type CheckResult, type CheckTarget } from '../checks/run-checks.server';
import { expectationOf } from '../checks/object-expectation';
import type { Check } from '../plans/plan-schema';
import { DRIVE_EVENTS, eventsOf, type DriveAction, type RunEventInput } from '../runs/run-events';
import { appendRunEvent, readRunEvents, type LoggedRunEvent } from '../runs/run-log.server';
import { findRun, findRuns, isUniqueViolation, transitionRun, type RunColumns, type RunRecord } from '../runs/run-store.server';
import type { RunCheckpoint } from '../runs/signing.server';
import { RunsheetError } from '../runtime/errors';
import { signalSessions } from '../targets/lock-waits.server';
import type { Target } from '../targets/targets.server';
import { backendPidOf, cancelRunningStep } from '../steps/execute-step.server';
import { ownerProcess, type EngineActor, type EngineDeps, type Gate, whoOf } from './engine-deps.server';
import { thawPlan, type ThawedPlan } from './frozen-plan.server';
import { recordRunChecks, summarizeChecks } from './runs.server';
import { anchorOnTarget, checkpointRun } from './checkpoints.server';
import { watchLockWaits, type RunWait } from './lock-wait-watch.server';
import {
  findTargetLockHolders,
  openRunPool,
  openTargetClient,
  releaseTargetLock,
  requireWritableTarget,
  runApplicationName,
  startHeartbeat,
  tryTargetLock,
} from './target-session.server';

/**
 * How often the driving process looks for a cancel requested from another process (the one that
 * asked has already signalled the run's sessions; every phase and step boundary looks too).
 */
const CANCEL_POLL_MS = 250;
/** A session still busy this long after a cancel is terminated (pg_terminate_backend). */
export const CANCEL_ESCALATE_AFTER_MS = 5_000;

type ActiveState = (typeof ACTIVE_RUN_STATES)[number];

/** A drive in progress: what its phases and steps share. */
export interface DriveSession {
  deps: EngineDeps;
  run: RunRecord;
  thawed: ThawedPlan;
  target: Target;
  actor: EngineActor;
  /** The run's dedicated session: the advisory lock, the steps, a rehearsal's one transaction. */
  client: pg.Client;
  /** The run's own pool on the target (application `runsheet:run:<id>`): its checks and ledger reads, cancelled with the run. */
  runPool: pg.Pool;
  /** The target's shared pool: probes (lock waits, blockers) and signals, never cancelled with the run. */
  pool: pg.Pool;
  backendPid: number;
  /** The seq after which a 'cancel.requested' counts for this drive. */
  claimSeq: number;
  cancelledBy?: string;
  /** The cancel's signals being sent and logged: the drive waits for them before its '.finished' event. */
  cancelSignals?: Promise<unknown>;
  /** The drive's phases have returned: a cancel's escalation has nothing left to stop. */
  workDone: boolean;
  /** The apply (or rollback) steps committed: what follows cannot undo them. */
  stepsCommitted: boolean;
  phases: RunOutcome['phases'] & {};
  /** The phase running now (the lock-wait watcher says which phase a wait belongs to). */
  currentPhase: string | null;
  /** What each of the run's backends runs now (pid → a step or check, and its lock_timeout): the lock-wait watcher names waits with it. */
  backends: Map<number, { waitingFor: string; lockTimeoutMs: number | null }>;
  /** The blockers last seen for a step or check (a failure after the wait ended still names them). */
  lastBlockers: Map<string, Blocker[]>;
  /** The latest signed checkpoint: ledger rows written now carry its head (an anchor on the target). */
  lastCheckpoint?: RunCheckpoint;
  log(event: RunEventInput): Promise<LoggedRunEvent>;
  /** Who asked (from another process) to cancel this drive, from the run log. */
  cancelRequester(): Promise<string | undefined>;
}

/** How a drive ends: the state, what it did, and why in words. */
export interface Finish {
  to: RunState;
  outcome: RunOutcome;
  reason: string;
}

export interface DriveOptions {
  run: RunRecord;
  actor: EngineActor;
  action: DriveAction;
  activeState: ActiveState;
  claimFrom: readonly RunState[];
  claimSet: Pick<RunColumns, 'startedAt' | 'executedBy'>;
  releaseSet: Pick<RunColumns, 'startedAt' | 'executedBy'>;
  /** Whether this drive's end is the run's finished_at (execute, rehearse); a rollback keeps the apply's. */
  setsFinishedAt: boolean;
  gates: Gate[];
  onEvent?: (event: LoggedRunEvent) => void;
  /** Called about once a second with the run's lock waits (the command line shows them live). */
  onWaits?: (waits: RunWait[]) => void;
  work(session: DriveSession): Promise<Finish>;
  /** What the run ends as when `work` throws (the engine stopped), given what committed. */
  whenEngineStops(session: DriveSession, message: string): Finish;
}

/** Runs this process drives now: a cancel from this process reaches them at once. */
const drivenHere = new Map<string, DriveSession>();

export const sessionDrivenHere = (runId: string): DriveSession | undefined => drivenHere.get(runId);

export const gatePayload = (gate: Gate) => ({ id: gate.id, label: gate.label, passed: gate.passed, detail: gate.detail });

/** Logs a refusal of a drive ('<action>.refused') and hands back the error to throw. */
export function refuser(deps: EngineDeps, runId: string, actor: EngineActor, action: DriveAction) {
  return async <E extends Error>(error: E, openGates: Gate[] = []): Promise<E> => {
    await appendRunEvent(deps.store.pool, {
      runId,
      ...whoOf(actor),
      type: DRIVE_EVENTS[action].refused,
      payload: { reason: error.message, error: (error as { kind?: string }).kind ?? error.name, ...(openGates.length > 0 ? { openGates: openGates.map(gatePayload) } : {}) },
    }).catch(() => {});
    return error;
  };
}

/** Claim, lock, drive, finish; always lets go of the target. */
export async function driveRun(deps: EngineDeps, options: DriveOptions): Promise<RunRecord> {
  const { run, actor, action } = options;
  const refuse = refuser(deps, run.id, actor, action);
  let target: Target;
  let client: pg.Client;
  try {
    target = deps.targets.get(run.target);
    client = await openTargetClient(target, run.id);
  } catch (error) {
    throw await refuse(error as Error);
  }
  let session: DriveSession | undefined;
  let locked = false;
  let stopHeartbeat = () => {};
  let stopCancelWatch = () => {};
  let stopWaitWatch = async () => {};
  const runPool = openRunPool(target, run.id);
  try {
    const claim = await claimRun(deps, options, target, client, refuse);
    locked = await tryTargetLock(client);
    if (!locked) await giveClaimBack(deps, options, target, claim.from);

    stopHeartbeat = startHeartbeat(deps.store, run.id);
    session = {
      deps,
      run: claim.run,
      thawed: thawPlan(run.frozenPlan),
      target,
      actor,
      client,
      runPool,
      pool: deps.targets.pool(target.name),
      backendPid: claim.backendPid,
      claimSeq: claim.seq,
      workDone: false,
      stepsCommitted: false,
      phases: [],
      currentPhase: null,
      backends: new Map(),
      lastBlockers: new Map(),
      log: async (event) => {
        const logged = await appendRunEvent(deps.store.pool, { runId: run.id, ...whoOf(actor), ...event });
        options.onEvent?.(logged);
        return logged;
      },
      cancelRequester: async () => eventsOf(await readRunEvents(deps.store.pool, run.id, { afterSeq: claim.seq, types: ['cancel.requested'] }), 'cancel.requested')[0]?.actor,
    };
    drivenHere.set(run.id, session);
    stopCancelWatch = watchForCancel(session);
    stopWaitWatch = watchLockWaits(session, { onWaits: options.onWaits });
    session.lastCheckpoint = await checkpointRun(deps, run.id, 'full');

    const finish = await drive(session, options);
    session.workDone = true;
    await stopWaitWatch();
    await session.cancelSignals;
    // Let go of the target before the claim: a run claimed the moment this one ends must never
    // find the target's lock still held by a run that has finished.
    stopCancelWatch();
    stopHeartbeat();
    if (locked) {
      await releaseTargetLock(client).catch(() => {});
      locked = false;
    }
    return await finishDrive(deps, options, finish);
  } finally {
    if (session) session.workDone = true;
    await stopWaitWatch().catch(() => {});
    stopCancelWatch();
    stopHeartbeat();
    drivenHere.delete(run.id);
    if (locked) await releaseTargetLock(client).catch(() => {});
    await client.end().catch(() => {});
    await runPool.end().catch(() => {});
    // A claim never finished (the store failed mid-way) keeps its state: with the heartbeat
    // stopped and the session closed, the recovery pass marks it interrupted.
  }
}

/** Claim in the store: the partial unique index lets one run per target be active. */
async function claimRun(deps: EngineDeps, options: DriveOptions, target: Target, client: pg.Client, refuse: ReturnType<typeof refuser>) {
  const { run, actor, action } = options;
  const facts = await requireWritableTarget(deps, target).catch((error: Error) => refuse(error).then((refusal) => Promise.reject(refusal)));
  const backendPid = await backendPidOf(client);
  let claim;
  try {
    claim = await transitionRun(deps.store, {
      runId: run.id,
      from: options.claimFrom,
      to: options.activeState,
      reason: `${action} by ${actor.email}`,
      ...whoOf(actor),
      set: { ...options.claimSet, heartbeatAt: 'now', ownerProcess: ownerProcess(), targetBackendPid: backendPid },
      events: [
        {
          type: DRIVE_EVENTS[action].started,
          payload: {
            gates: options.gates.map(gatePayload),
            target: { name: target.name, url: target.displayUrl, serverVersion: facts.serverVersion.version, tls: facts.tls.ssl, currentUser: facts.currentUser },
            targetBackendPid: backendPid,
            applicationName: runApplicationName(run.id),
          },
        },
      ],
    });
  } catch (error) {
    if (!isUniqueViolation(error)) throw error;
    const others = await findRuns(deps.store.pool, { target: run.target, states: ACTIVE_RUN_STATES, exceptId: run.id });
    const holder = others.map((other) => `run ${other.id} is ${other.state}`).join('; ') || 'another run is active';
    throw await refuse(new RunsheetError('busy', `Refused: another run holds target ${run.target} (${holder}); one run at a time per target.`));
  }
  if (!claim.changed) {
    throw await refuse(new RunsheetError('state', `Refused: run ${run.id} is ${claim.state ?? 'gone'}, not ${options.claimFrom.join(' or ')}: it was claimed by another request.`));
  }
  claim.events.forEach((event) => options.onEvent?.(event));
  return { run: claim.run, from: claim.from, backendPid, seq: claim.events.at(-1)!.seq };
}

/** The target's advisory lock is held by another session: the claim goes back, nothing changed. */
async function giveClaimBack(deps: EngineDeps, options: DriveOptions, target: Target, from: RunState): Promise<never> {
  const holders = await findTargetLockHolders(deps.targets.pool(target.name)).catch(() => []);
  await transitionRun(deps.store, {
    runId: options.run.id,
    from: [options.activeState],
    to: from,
    reason: "the target's advisory lock is held by another session: nothing was changed",
    ...whoOf(options.actor),
    set: { ...options.releaseSet, heartbeatAt: null, ownerProcess: null, targetBackendPid: null },
    events: [{ type: 'lock.held', payload: { holders } }],
  });
  const who = holders.map((holder) => `pid ${holder.pid}${holder.application ? ` (${holder.application})` : ''}`).join(', ') || 'a session this role cannot see';
  throw new RunsheetError('busy', `Target ${target.name} is locked by another migration session (${who}): nothing was changed; try again when it ends.`);
}

/** The action's phases; an exception is the engine stopping, recorded as such. */
async function drive(session: DriveSession, options: DriveOptions): Promise<Finish> {
  let finish: Finish;
  try {
    finish = await options.work(session);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await session.log({ type: 'run.error', payload: { message } }).catch(() => {});
    finish = options.whenEngineStops(session, message);
  }
  finish.outcome.result = finish.to;
  return finish;
}

/** The final state and outcome, the '.finished' event, and a signed checkpoint. */
async function finishDrive(deps: EngineDeps, options: DriveOptions, finish: Finish): Promise<RunRecord> {
  const { run, actor, action } = options;
  const ended = await transitionRun(deps.store, {
    runId: run.id,
    from: [options.activeState],
    to: finish.to,
    reason: finish.reason,
    ...whoOf(actor),
    set: options.setsFinishedAt ? { finishedAt: 'now', outcome: finish.outcome } : { outcome: finish.outcome },
    events: [{ type: DRIVE_EVENTS[action].finished, payload: { state: finish.to, outcome: finish.outcome } }],
  });
  if (ended.changed) ended.events.forEach((event) => options.onEvent?.(event));
  const final = await checkpointRun(deps, run.id, 'full');
  // A rehearsal writes nothing to its target: only the webhook anchors it.
  if (run.kind === 'execute') {
    await anchorOnTarget(deps, run.target, final).catch(async (error: Error) => {
      await appendRunEvent(deps.store.pool, { runId: run.id, actor: 'system', type: 'anchor.missing', payload: { target: run.target, seq: final.seq, message: error.message } });
      await checkpointRun(deps, run.id, 'delta');
    });
  }
  return ended.changed ? ended.run : (await findRun(deps.store.pool, run.id))!;
}

/**
 * A cancel, noted by the process driving the run (asked here, or seen in the run log): every busy
 * session of the run on the target gets pg_cancel_backend at once (the running step's statement
 * again until it stops), and pg_terminate_backend if the drive is still at work 5 s later. Nothing
 * starts after it: every phase and step boundary asks.
 */
export function noteCancel(session: DriveSession, by: string): void {
  if (session.cancelledBy || session.workDone) return;
  session.cancelledBy = by;
  cancelRunningStep(session.client, session.pool);
  const applicationName = runApplicationName(session.run.id);
  session.cancelSignals = signalSessions(session.pool, applicationName, 'cancel', true)
    .then((pids) =>
      session.log({
        type: 'cancel.signalled',
        payload: { by, signal: 'cancel', pids, note: `pg_cancel_backend sent to every busy session of the run; pg_terminate_backend follows in ${CANCEL_ESCALATE_AFTER_MS / 1000} s if it has not stopped` },
      }),
    )
    .catch(() => {});
  const escalate = setTimeout(() => {
    if (session.workDone) return;
    void signalSessions(session.pool, applicationName, 'terminate', true)
      .then((pids) =>
        session.log({
          type: 'cancel.signalled',
          payload: { by, signal: 'terminate', pids, note: `still busy ${CANCEL_ESCALATE_AFTER_MS / 1000} s after the cancel: pg_terminate_backend (the server rolls back their transactions)` },
        }),
      )
      .catch(() => {});
  }, CANCEL_ESCALATE_AFTER_MS);
  escalate.unref();
}

/** Whether this drive is cancelled; asks the run log too, so a cancel from another process is seen at a boundary, not only by the poll. */
export async function cancelledNow(session: DriveSession): Promise<string | undefined> {
  if (!session.cancelledBy) {
    const by = await session.cancelRequester().catch(() => undefined);
    if (by) noteCancel(session, by);
  }
  return session.cancelledBy;
}

/** Polls the run log for a cancel requested by another process. */
function watchForCancel(session: DriveSession): () => void {
  const timer = setInterval(() => {
    if (session.cancelledBy) return;
    session
      .cancelRequester()
      .then((by) => by && noteCancel(session, by))
      .catch(() => {});
  }, CANCEL_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * One phase: 'phase.started' and 'phase.completed' with planned and actual time, then a signed
 * checkpoint. `work` returns a value, or [ok, value].
 */
export async function phase<T>(session: DriveSession, name: string, plannedMs: number | undefined, work: () => Promise<T | readonly [boolean, T]>): Promise<T> {
  const planned = plannedMs ?? null;
  await session.log({ type: 'phase.started', payload: { phase: name, plannedMs: planned } });
  session.currentPhase = name;
  const started = performance.now();
  const result = await work().finally(() => (session.currentPhase = null));
  const [ok, value] = Array.isArray(result) && result.length === 2 && typeof result[0] === 'boolean' ? (result as readonly [boolean, T]) : [result !== false, result as T];
  const actualMs = Math.round(performance.now() - started);
  session.phases.push({ phase: name, plannedMs: planned, actualMs, ok });
  await session.log({ type: 'phase.completed', payload: { phase: name, ok, plannedMs: planned, actualMs, ...(planned !== null ? { overrunMs: Math.max(0, actualMs - planned) } : {}) } });
  session.lastCheckpoint = await checkpointRun(session.deps, session.run.id, 'full');
  return value;
}

const HTTP_SKIPPED_IN_REHEARSAL = 'skipped: a rehearsal does not call the API';

/** A phase's checks on the target's pool, recorded with the run. */
export async function checksOnPool(session: DriveSession, checks: Check[], phaseName: string): Promise<CheckResult[]> {
  const results = await runChecks({
    checks,
    sqlOf: session.thawed.sqlOf,
    target: watchedCheckTarget(session, { pool: session.runPool }),
    phase: phaseName,
    stopWhen: () => (session.cancelledBy ? `cancelled by ${session.cancelledBy}` : undefined),
  });
  await recordRunChecks(session.deps, session.run, session.thawed, { phase: phaseName, results, actor: session.actor });
  return results;
}

/** Checks inside the rehearsal's transaction (each in a savepoint); http checks are skipped and say why. */
export async function checksOnClient(session: DriveSession, checks: Check[], phaseName: string): Promise<CheckResult[]> {
  const runnable = checks.filter((check) => check.kind !== 'http');
  const ran = await runChecks({
    checks: runnable,
    sqlOf: session.thawed.sqlOf,
    target: watchedCheckTarget(session, { client: session.client }),
    phase: phaseName,
    stopWhen: () => (session.cancelledBy ? `cancelled by ${session.cancelledBy}` : undefined),
  });
  const byId = new Map(ran.map((result) => [result.checkId, result]));
  const results = checks.map(
    (check): CheckResult =>
      byId.get(check.id) ?? {
        checkId: check.id,
        title: check.title,
        kind: check.kind,
        phase: phaseName,
        passed: false,
        skipped: true,
        expected: expectationOf(check),
        actual: null,
        sql: '',
        durationMs: 0,
        ranAt: new Date().toISOString(),
        reason: HTTP_SKIPPED_IN_REHEARSAL,
      },
  );
  await recordRunChecks(session.deps, session.run, session.thawed, { phase: phaseName, results, actor: session.actor });
  return results;
}

/** The run's checks on the target, each backend named for the lock-wait watcher. */
function watchedCheckTarget(session: DriveSession, connection: { pool: pg.Pool } | { client: pg.ClientBase }): CheckTarget {
  return {
    ...checkTargetOf(session.target, connection, session.thawed.plan),
    onCheckSession: ({ checkId, pid, lockTimeoutMs }) => session.backends.set(pid, { waitingFor: `check ${checkId}`, lockTimeoutMs }),
  };
}

/**
 * Where a checks phase stopped the run: the first check that failed (an error, with SQLSTATE, or
 * an unmet expectation), with the sessions that blocked it while it waited.
 */
export function checksStop(session: DriveSession, phaseName: string, results: CheckResult[]): RunStop | undefined {
  const failed = results.find((result) => !result.passed && !result.skipped);
  if (!failed) return undefined;
  return {
    phase: phaseName,
    checkId: failed.checkId,
    ...(failed.error?.line !== undefined ? { line: failed.error.line } : {}),
    ...(failed.error?.sqlstate ? { sqlstate: failed.error.sqlstate } : {}),
    message: failed.error?.message ?? failed.reason ?? `check ${failed.checkId} failed`,
    ...(failed.error?.detail ? { detail: failed.error.detail } : {}),
    blockers: session.lastBlockers.get(`check ${failed.checkId}`) ?? [],
  };
}

export { summarizeChecks };
