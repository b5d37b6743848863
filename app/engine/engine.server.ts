/**
 * The execution engine's commands on a run's target: execute, rollback, rehearse and cancel. It
 * takes what it talks to as arguments (EngineDeps) and imports nothing from the web framework;
 * the command line and the dashboard call these functions. Each command judges its gates, then
 * hands drive-run.server.ts its phases (claim, lock, drive, finish live there).
 */
import type { RunOutcome, RunStop } from '../../db/schema/index';
import { isActiveState, isAppliedState, isPreparingState, mayRollBackFrom } from '../../db/run-lifecycle';
import type { Check } from '../plans/plan-schema';
import { phaseLabel } from '../runs/run-timeline';
import { blockersInWords } from '../runtime/lock-wait-words';
import { signalSessions } from '../targets/lock-waits.server';
import { appendRunEvent, assertRunId, type LoggedRunEvent } from '../runs/run-log.server';
import { publishedSigningKeys } from '../runs/signing.server';
import { verifyStoredRunLog } from '../runs/verify-run-log.server';
import { transitionRun, type RunRecord } from '../runs/run-store.server';
import { gateRefusal, RunsheetError } from '../runtime/errors';
import { readLedgerRowsOfRun } from '../targets/ledger.server';
import {
  CANCEL_ESCALATE_AFTER_MS,
  cancelledNow,
  checksOnClient,
  checksOnPool,
  checksStop,
  driveRun,
  noteCancel,
  phase,
  refuser,
  sessionDrivenHere,
  summarizeChecks,
  type DriveOptions,
  type DriveSession,
  type Finish,
} from './drive-run.server';
import { whoOf, type EngineActor, type EngineDeps, type Gate } from './engine-deps.server';
import { checkpointRun } from './checkpoints.server';
import { confirmTargetNameGate, evaluateGates, openGates } from './gates.server';
import { runSteps, type StepsRun } from './run-steps.server';
import { decideResume, resumeSkipsOf } from './resume.server';
import { authorize, getRun, refuseFromLocalCommandLine } from './runs.server';
import type { RunWait } from './lock-wait-watch.server';
import { runApplicationName } from './target-session.server';
import { endWatchForRollback, startWatch, WATCH_COULD_NOT_START } from './watch.server';

export interface RunOptions {
  /** Called with every event the run appends while it drives the target (the command line prints phases). */
  onEvent?(event: LoggedRunEvent): void;
  /** Called about once a second with the run's lock waits while it drives the target (the command line shows them live). */
  onWaits?(waits: RunWait[]): void;
}

// ---------------------------------------------------------------------------------------------
// Execute and rehearse share one prelude

/**
 * What execute and rehearse share: the actor's role, the run's kind and state, every gate judged
 * again (each refusal in the run log), draft → ready when all pass, then the run is driven.
 */
async function claimAndDrive(
  deps: EngineDeps,
  input: { runId: string; actor: EngineActor } & RunOptions,
  rules: {
    action: 'execute' | 'rehearse';
    kind: RunRecord['kind'];
    activeState: 'applying' | 'rehearsing';
    wrongKind: (runId: string) => string;
    notReady: (runId: string, state: string) => string;
    typedTargetName?: string;
    work: DriveOptions['work'];
    whenEngineStops: DriveOptions['whenEngineStops'];
  },
): Promise<RunRecord> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: rules.action, runId });
  let run = await getRun(deps, runId);
  const refuse = refuser(deps, runId, actor, rules.action);
  if (rules.action === 'execute' && deps.targets.get(run.target).rules.require_signoff) {
    await refuseFromLocalCommandLine(deps, { runId, actor, action: 'execute', why: `target ${run.target} requires a sign-off by another person` });
  }
  if (run.kind !== rules.kind) throw await refuse(new RunsheetError('state', rules.wrongKind(runId)));
  if (!isPreparingState(run.state)) throw await refuse(new RunsheetError('state', rules.notReady(runId, run.state)));
  await refuseUnlessLogIntact(deps, runId, refuse);
  const gates = await evaluateGates(deps, run, { executor: actor.email, typedTargetName: rules.typedTargetName });
  const open = openGates(gates);
  if (open.length > 0) throw await refuse(gateRefusal(open), open);
  if (run.state === 'draft') {
    const reason = rules.action === 'execute' ? 'every gate passed when executing' : 'every gate passed when rehearsing';
    await transitionRun(deps.store, { runId, from: ['draft'], to: 'ready', reason, actor: 'system' });
    run = await getRun(deps, runId);
  }
  return driveRun(deps, {
    run,
    actor,
    action: rules.action,
    activeState: rules.activeState,
    claimFrom: ['ready'],
    claimSet: { startedAt: 'now', executedBy: actor.email },
    releaseSet: { startedAt: null, executedBy: null },
    setsFinishedAt: true,
    gates,
    onEvent: input.onEvent,
    onWaits: input.onWaits,
    work: rules.work,
    whenEngineStops: rules.whenEngineStops,
  });
}

/**
 * Nothing is driven on a log that no longer matches what was signed: the next checkpoint would sign
 * the change (a rewritten tick, a forged sign-off) as if it had happened.
 */
async function refuseUnlessLogIntact(deps: EngineDeps, runId: string, refuse: ReturnType<typeof refuser>): Promise<void> {
  const keys = await publishedSigningKeys(deps.store.pool, deps.signingKeyPem);
  const verdict = await verifyStoredRunLog(deps.store.pool, runId, keys.map((key) => key.publicKeyPem));
  if (!verdict.ok) {
    throw await refuse(new RunsheetError('integrity', `Refused: the run's log does not match what was signed (${verdict.reason}); npx runsheet log verify --run ${runId} says more.`));
  }
}

// ---------------------------------------------------------------------------------------------
// Execute

/**
 * Executes a ready run: every gate judged again (refused: 'execute.refused' and a 'gate' error
 * naming the open gates), then snapshot → apply → verification → post-execution, ending
 * 'applied' (with outcome.verified) or 'failed'. A failed run is never retried by itself: a retry
 * is a new run (outcome.retryable says whether one may help, e.g. after a lock timeout).
 */
export async function executeRun(deps: EngineDeps, input: { runId: string; actor: EngineActor; typedTargetName?: string } & RunOptions): Promise<RunRecord> {
  const run = await claimAndDrive(deps, input, {
    action: 'execute',
    kind: 'execute',
    activeState: 'applying',
    wrongKind: (runId) => `Run ${runId} is a rehearsal: rehearse it, or open an execute run.`,
    notReady: (runId, state) => `Refused: run ${runId} is ${state}, not ready${state === 'applying' ? ' (it is being applied)' : ''}; a new attempt is a new run.`,
    typedTargetName: input.typedTargetName,
    work: applyPhases,
    // Whatever committed stays (the ledger says so): the run failed, and a rollback may follow.
    whenEngineStops: (session, message) => ({
      to: session.cancelledBy ? 'cancelled' : 'failed',
      outcome: {
        phases: session.phases,
        error: message,
        ...(session.stepsCommitted ? { verified: false, ledger: { written: 'applied' as const } } : {}),
        stoppedAt: { phase: session.currentPhase ?? 'engine', message: `the engine stopped: ${message}`, blockers: [], ...(session.cancelledBy ? { cancelledBy: session.cancelledBy } : {}) },
      },
      reason: `the engine stopped: ${message}`,
    }),
  });
  // A verified apply whose plan declares a watch enters it (docs/decisions/030); the apply stands either way.
  if (run.state !== 'applied') return run;
  return startWatch(deps, run).catch(async (error: Error) => {
    await appendRunEvent(deps.store.pool, { runId: run.id, actor: 'system', type: 'run.error', payload: { message: `${WATCH_COULD_NOT_START}: ${error.message}` } }).catch(() => {});
    return run;
  });
}

/**
 * snapshot → apply → verification → post-execution. A failed or cancelled phase stops what
 * depends on it: nothing is applied after a failed snapshot, no step runs after a failed one, and
 * a cancel stops the run at the next boundary (its running statements are cancelled at once).
 * After a failed verification the read-only post-execution checks still run (they inform the
 * rollback decision), and the run ends failed.
 */
async function applyPhases(session: DriveSession): Promise<Finish> {
  const { plan } = session.thawed;
  const outcome: RunOutcome = { phases: session.phases, ledger: { written: null } };

  if (await cancelledNow(session)) return cancelledFinish(session, outcome, { phase: 'snapshot', message: 'before the snapshot began' });
  const snapshot = await phase(session, 'snapshot', plan.estimated_duration.snapshot, async () => {
    const results = await checksOnPool(session, plan.snapshot, 'snapshot');
    return [summarizeChecks(results).passed, results] as const;
  });
  if (await cancelledNow(session)) return cancelledFinish(session, outcome, { phase: 'snapshot', message: 'during the snapshot; the apply never began' });
  const snapshotStop = checksStop(session, 'snapshot', snapshot);
  if (snapshotStop) {
    outcome.stoppedAt = snapshotStop;
    if (snapshotStop.sqlstate === '55P03') outcome.retryable = true;
    return { to: 'failed', outcome, reason: `the snapshot failed (${describeStop(snapshotStop)}): the apply never began` };
  }

  // A resumable plan whose earlier run of this checksum stopped part-way goes on where it stopped (docs/decisions/027).
  const resumeDecision = plan.resumable ? await decideResume(session.deps, session.run) : undefined;
  if (resumeDecision && !resumeDecision.resuming && resumeDecision.problem) throw new RunsheetError('unavailable', `Cannot tell where the apply starts: ${resumeDecision.problem}`);
  const resume = resumeDecision ? resumeSkipsOf(resumeDecision, session.run.target) : undefined;
  const applied = await phase(session, 'apply', plan.estimated_duration.apply, async () => {
    const steps = await runSteps(session, plan.apply, { mode: 'own', ledger: 'apply', ...(resume ? { resume } : {}) });
    return [steps.ok, steps] as const;
  });
  session.stepsCommitted = applied.ok;
  outcome.steps = applied.steps;
  outcome.ledger = { written: applied.ledgerWritten as 'applied' | 'partial' | null };
  if (!applied.ok) {
    outcome.failure = applied.failure;
    outcome.stoppedAt = stepStop('apply', applied);
    if (applied.failure?.sqlstate === '55P03') outcome.retryable = true;
    if (applied.cancelledBy) return cancelledFinish(session, outcome, outcome.stoppedAt);
    return { to: 'failed', outcome, reason: failureReason(applied) };
  }

  const checkPhase = async (name: 'verification' | 'post_execution', checks: Check[], checkPhaseName: string) => {
    if (await cancelledNow(session)) return undefined;
    return phase(session, name, plan.estimated_duration[name], async () => {
      const results = await checksOnPool(session, checks, checkPhaseName);
      const summary = summarizeChecks(results);
      return [summary.passed, { summary, stop: checksStop(session, name, results) }] as const;
    });
  };
  const verification = await checkPhase('verification', plan.verification, 'verify');
  if (verification) {
    outcome.verification = verification.summary;
    outcome.verified = verification.summary.passed;
  }
  // Read-only, and what the rollback decision needs: they run after a failed verification too.
  const post = verification ? await checkPhase('post_execution', [...plan.post_execution.api_tests, ...plan.post_execution.data_quality], 'post') : undefined;
  if (post) outcome.postExecution = post.summary;
  if (await cancelledNow(session)) return cancelledFinish(session, outcome, { phase: session.phases.at(-1)?.phase ?? 'verification', message: 'after the apply committed' });

  const stop = (verification && !verification.summary.passed ? verification.stop : undefined) ?? (post && !post.summary.passed ? post.stop : undefined);
  if (stop || !verification!.summary.passed || !post!.summary.passed) {
    outcome.stoppedAt = stop ?? { phase: verification!.summary.passed ? 'post_execution' : 'verification', message: 'checks failed', blockers: [] };
    const failedChecks = [...verification!.summary.failed, ...post!.summary.failed];
    return { to: 'failed', outcome, reason: `the apply committed, but ${verification!.summary.passed ? 'post-execution' : 'verification'} failed: ${failedChecks.join(', ')}; roll back, or fix and verify` };
  }
  return { to: 'applied', outcome, reason: 'applied and verified' };
}

/** A cancelled drive: what committed stays in the outcome (ledger, steps); the run ends cancelled. */
function cancelledFinish(session: DriveSession, outcome: RunOutcome, stop: Pick<RunStop, 'phase' | 'message'> & Partial<RunStop>): Finish {
  const by = session.cancelledBy!;
  outcome.cancelledBy = by;
  const stoppedAt: RunStop = { blockers: [], ...stop, cancelledBy: by, message: stop.message.startsWith('cancelled') ? stop.message : `cancelled by ${by} ${stop.message}` };
  outcome.stoppedAt = stoppedAt;
  const committed = outcome.ledger?.written ? ` (the target's ledger says ${outcome.ledger.written}: roll it back)` : '; nothing was committed';
  return { to: 'cancelled', outcome, reason: `${stoppedAt.message}${committed}` };
}

/** Where a failed list of steps stopped. */
function stepStop(phaseName: string, steps: StepsRun): RunStop {
  const failure = steps.failure;
  if (!failure) return { phase: phaseName, message: 'a step failed', blockers: [] };
  return {
    phase: phaseName,
    stepId: failure.stepId,
    ...(failure.line > 0 ? { line: failure.line } : {}),
    ...(failure.sqlstate ? { sqlstate: failure.sqlstate } : {}),
    message: failure.message,
    ...(failure.detail ? { detail: failure.detail } : {}),
    ...(failure.hint ? { hint: failure.hint } : {}),
    blockers: failure.blockers,
    ...(steps.cancelledBy ? { cancelledBy: steps.cancelledBy } : {}),
  };
}

function describeStop(stop: RunStop): string {
  const where = stop.checkId ? `check ${stop.checkId}` : stop.stepId ? `step ${stop.stepId}` : stop.phase;
  const blockers = stop.blockers.length > 0 ? `; blocked by ${blockersInWords(stop.blockers)}` : '';
  return `${where}${stop.line ? ` line ${stop.line}` : ''}${stop.sqlstate ? ` SQLSTATE ${stop.sqlstate}` : ''}: ${stop.message}${blockers}`;
}

function failureReason(steps: StepsRun): string {
  const failure = steps.failure;
  if (!failure) return 'a step failed';
  if (steps.cancelledBy) return `cancelled by ${steps.cancelledBy} during step ${failure.stepId}`;
  return `step ${failure.stepId} failed at line ${failure.line}${failure.sqlstate ? ` with SQLSTATE ${failure.sqlstate}` : ''}: ${failure.message}${failure.blockers.length > 0 ? ` (blocked by ${blockersInWords(failure.blockers)})` : ''}`;
}

// ---------------------------------------------------------------------------------------------
// Rollback

/**
 * Rolls a run back with the plan's rollback steps (frozen with the run): from 'applied'; from
 * 'failed', 'cancelled' or 'interrupted' when the target's ledger says part of the apply
 * committed; from 'rollback_failed' to try again. On a target with confirm_target_name the
 * engineer types its name, as for execute. Ends 'rolled_back' (steps committed and rollback
 * verification passed) or 'rollback_failed' (a failed step, a failed verification, or a cancel).
 * The ledger row (action 'rollback') commits with the last step.
 */
export async function rollbackRun(deps: EngineDeps, input: { runId: string; actor: EngineActor; typedTargetName?: string } & RunOptions): Promise<RunRecord> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'rollback', runId });
  const run = await getRun(deps, runId);
  const refuse = refuser(deps, runId, actor, 'rollback');
  if (run.kind !== 'execute') throw await refuse(new RunsheetError('state', 'A rehearsal has nothing to roll back: it always rolls back itself.'));

  await refuseUnlessLogIntact(deps, runId, refuse);
  const eligible = await rollbackGate(deps, run);
  const confirm = confirmTargetNameGate(deps.targets.get(run.target), input.typedTargetName, 'rolling back');
  const gates = [eligible, ...(confirm ? [confirm] : [])];
  const open = gates.filter((gate) => !gate.passed);
  if (open.length > 0) throw await refuse(gateRefusal(open), open);
  const targetFree = (await evaluateGates(deps, run)).filter((gate) => gate.id === 'target-free' && !gate.passed);
  if (targetFree.length > 0) throw await refuse(gateRefusal(targetFree), targetFree);

  return driveRun(deps, {
    run,
    actor,
    action: 'rollback',
    activeState: 'rolling_back',
    claimFrom: [run.state],
    claimSet: {},
    releaseSet: {},
    setsFinishedAt: false,
    gates,
    onEvent: input.onEvent,
    onWaits: input.onWaits,
    work: rollbackPhases,
    whenEngineStops: (session, message) => ({
      to: 'rollback_failed',
      outcome: {
        ...(run.outcome ?? {}),
        rollback: {
          result: 'rollback_failed',
          steps: [],
          phases: session.phases,
          by: session.actor.email,
          finishedAt: new Date().toISOString(),
          error: message,
          stoppedAt: { phase: session.currentPhase ?? 'rollback', message: `the engine stopped: ${message}`, blockers: [] },
        },
      },
      reason: `the engine stopped: ${message}`,
    }),
  });
}

/**
 * Whether the run has something to roll back: its state, and for a run that did not end applied
 * the target's ledger (an apply row of this run, applied or partial, and no completed rollback).
 * The detail says what is there.
 */
export async function rollbackGate(deps: Pick<EngineDeps, 'targets'>, run: RunRecord): Promise<Gate> {
  const gate = (passed: boolean, detail: string): Gate => ({ id: 'rollback-state', label: 'The run has something to roll back', passed, detail });
  if (!mayRollBackFrom(run.state)) return gate(false, `the run is ${run.state}: only an applied run, or one that committed part of its apply, is rolled back`);
  if (run.state === 'applied') return gate(true, 'the run applied');
  if (isAppliedState(run.state)) return gate(true, `the run applied and is ${run.state}: the watch ends first`);
  let rows;
  try {
    rows = await readLedgerRowsOfRun(deps.targets.pool(run.target), run.id);
  } catch (error) {
    return gate(false, `cannot read the ledger of ${run.target}: ${(error as Error).message}`);
  }
  if (rows.some((row) => row.action === 'rollback' && row.outcome === 'rolled_back')) return gate(false, "the target's ledger says this run was already rolled back");
  const applyRow = rows.findLast((row) => row.action === 'apply');
  if (applyRow) {
    const completed = Array.isArray(applyRow.stepsCompleted) ? (applyRow.stepsCompleted as { stepId?: string; complete?: boolean }[]) : [];
    const steps = completed.map((step) => `${step.stepId}${step.complete === false ? ' (part)' : ''}`).join(', ');
    return gate(true, applyRow.outcome === 'partial' ? `part of the apply committed (the ledger says partial${steps ? `: ${steps}` : ''})` : `the ledger says the apply landed (${applyRow.outcome})`);
  }
  if (run.outcome?.ledger?.written) return gate(true, `the run wrote a ${run.outcome.ledger.written} ledger row (not readable on the target now)`);
  const nothing = {
    failed: 'the run failed and its transaction rolled back: nothing to roll back',
    cancelled: 'the run was cancelled before anything committed: nothing to roll back',
    interrupted: 'the ledger has no row of this run: the interrupted apply did not commit',
    rollback_failed: "the ledger has no apply row of this run: nothing to roll back",
  } as const;
  return gate(false, nothing[run.state as keyof typeof nothing] ?? 'the ledger has no row of this run: nothing to roll back');
}

/** The rollback drive: its own start, end and who, kept in outcome.rollback (never over the apply's times). */
async function rollbackPhases(session: DriveSession): Promise<Finish> {
  const previous = session.run.outcome ?? {};
  const rollback: NonNullable<RunOutcome['rollback']> = { result: 'rollback_failed', steps: [], phases: session.phases, startedAt: new Date().toISOString(), by: session.actor.email };
  const outcome: RunOutcome = { ...previous, rollback };
  // A rollback ends the watch first: its checks would otherwise judge a schema being taken apart.
  if (await endWatchForRollback(session.deps, session.run.id, session.actor)) {
    outcome.watch = { ...(previous.watch ?? { result: 'watching', startedAt: '', endsAt: '' }), finishedAt: new Date().toISOString(), endedBy: 'rolled_back' };
  }
  const work = await rollbackWork(session, rollback, outcome);
  rollback.finishedAt = new Date().toISOString();
  return work;
}

async function rollbackWork(session: DriveSession, rollback: NonNullable<RunOutcome['rollback']>, outcome: RunOutcome): Promise<Finish> {
  const { plan } = session.thawed;
  const cancelled = (stop: Pick<RunStop, 'phase' | 'message'> & Partial<RunStop>): Finish => {
    const by = session.cancelledBy!;
    rollback.cancelledBy = by;
    const stoppedAt: RunStop = { blockers: [], ...stop, cancelledBy: by, message: `cancelled by ${by} ${stop.message}` };
    rollback.stoppedAt = stoppedAt;
    return { to: 'rollback_failed', outcome, reason: `${stoppedAt.message}: the rollback may be tried again` };
  };

  if (await cancelledNow(session)) return cancelled({ phase: 'rollback', message: 'before the rollback began' });
  const steps = await phase(session, 'rollback', plan.estimated_duration.rollback, async () => {
    const result = await runSteps(session, plan.rollback.steps, { mode: 'own', ledger: 'rollback', keepDropped: true });
    return [result.ok, result] as const;
  });
  session.stepsCommitted = steps.ok;
  rollback.steps = steps.steps;
  if (steps.backups.length > 0) rollback.backups = steps.backups;
  rollback.ledger = { written: steps.ledgerWritten as 'rolled_back' | 'partial' | null };
  if (!steps.ok) {
    rollback.failure = steps.failure;
    const stop = stepStop('rollback', steps);
    if (steps.cancelledBy) return cancelled({ ...stop, message: `during step ${stop.stepId ?? ''}`.trim() });
    rollback.stoppedAt = stop;
    if (steps.failure?.sqlstate === '55P03') rollback.retryable = true;
    return { to: 'rollback_failed', outcome, reason: failureReason(steps) };
  }
  if (await cancelledNow(session)) return cancelled({ phase: 'rollback_verification', message: 'after the rollback committed, before its verification' });
  const verification = await phase(session, 'rollback_verification', undefined, async () => {
    const results = await checksOnPool(session, plan.rollback.verification, 'rollback');
    const summary = summarizeChecks(results);
    return [summary.passed, { summary, stop: checksStop(session, 'rollback_verification', results) }] as const;
  });
  rollback.verification = verification.summary;
  rollback.verified = verification.summary.passed;
  if (await cancelledNow(session)) return cancelled({ phase: 'rollback_verification', message: 'during the rollback verification' });
  rollback.result = verification.summary.passed ? 'rolled_back' : 'rollback_failed';
  if (!verification.summary.passed) rollback.stoppedAt = verification.stop ?? { phase: 'rollback_verification', message: 'checks failed', blockers: [] };
  return {
    to: rollback.result,
    outcome,
    reason: verification.summary.passed ? 'rolled back and verified' : `the rollback committed, but its verification failed: ${verification.summary.failed.join(', ')}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Rehearse

/**
 * Rehearses a rehearsal run: one transaction on one connection, the apply steps, verification
 * and data-quality checks inside it (savepoints), the rollback steps and their verification,
 * then ROLLBACK, always. It holds the migration's locks for its whole length, writes no ledger
 * row, and skips http checks. Refused when the plan has a non-transactional step.
 */
export async function rehearseRun(deps: EngineDeps, input: { runId: string; actor: EngineActor } & RunOptions): Promise<RunRecord> {
  return claimAndDrive(deps, input, {
    action: 'rehearse',
    kind: 'rehearsal',
    activeState: 'rehearsing',
    wrongKind: (runId) => `Run ${runId} is an execute run: open a rehearsal run to rehearse.`,
    notReady: (runId, state) => `Refused: rehearsal ${runId} is ${state}; a new rehearsal is a new run.`,
    work: rehearsalPhases,
    whenEngineStops: (session, message) => ({ to: 'rehearsal_failed', outcome: { phases: session.phases, error: message }, reason: `the engine stopped: ${message}` }),
  });
}

async function rehearsalPhases(session: DriveSession): Promise<Finish> {
  const { plan } = session.thawed;
  const { client } = session;
  const rehearsal: NonNullable<RunOutcome['rehearsal']> = { apply: { ok: false, steps: [] }, rolledBack: false };
  const outcome: RunOutcome = { phases: session.phases, rehearsal };
  await client.query('begin');
  await session.log({
    type: 'rehearsal.transaction.opened',
    payload: {
      note:
        "The rehearsal runs the apply and rollback steps inside one transaction that is always rolled back. It holds the migration's locks " +
        '(e.g. ACCESS EXCLUSIVE on the tables it alters) for its whole length, so other sessions using those tables wait until it ends.',
    },
  });
  const cancelled = (phaseName: string, stop?: RunStop): Finish => {
    const by = session.cancelledBy!;
    outcome.cancelledBy = by;
    const stoppedAt: RunStop = { phase: phaseName, blockers: [], ...(stop ?? {}), cancelledBy: by, message: `cancelled by ${by}${stop?.stepId ? ` during step ${stop.stepId}` : ` during the ${phaseLabel(phaseName).toLowerCase()}`}` };
    outcome.stoppedAt = stoppedAt;
    return { to: 'rehearsal_failed', outcome, reason: stoppedAt.message };
  };
  const checksPhase = async (name: string, checks: Check[], checkPhaseName: string) => {
    const results = await phase(session, name, plan.estimated_duration[name as keyof typeof plan.estimated_duration], async () => {
      const ran = await checksOnClient(session, checks, checkPhaseName);
      return [summarizeChecks(ran).passed, ran] as const;
    });
    return { summary: summarizeChecks(results), stop: checksStop(session, name, results) };
  };
  try {
    if (await cancelledNow(session)) return cancelled('snapshot');
    const snapshot = await checksPhase('snapshot', plan.snapshot, 'snapshot');
    if (await cancelledNow(session)) return cancelled('snapshot');
    if (snapshot.stop) {
      outcome.stoppedAt = snapshot.stop;
      return { to: 'rehearsal_failed', outcome, reason: `the snapshot failed (${describeStop(snapshot.stop)}): nothing was rehearsed` };
    }
    const applied = await phase(session, 'apply', plan.estimated_duration.apply, async () => {
      const steps = await runSteps(session, plan.apply, { mode: 'caller' });
      return [steps.ok, steps] as const;
    });
    rehearsal.apply = { ok: applied.ok, steps: applied.steps };
    if (!applied.ok) {
      outcome.failure = applied.failure;
      if (applied.cancelledBy) return cancelled('apply', stepStop('apply', applied));
      outcome.stoppedAt = stepStop('apply', applied);
      return { to: 'rehearsal_failed', outcome, reason: failureReason(applied) };
    }
    // A failed check does not stop a rehearsal: its rollback steps still run inside the transaction (that is what it rehearses).
    if (await cancelledNow(session)) return cancelled('verification');
    const verification = await checksPhase('verification', plan.verification, 'verify');
    rehearsal.verification = verification.summary;
    if (await cancelledNow(session)) return cancelled('verification');
    const dataQuality = await checksPhase('post_execution', [...plan.post_execution.api_tests, ...plan.post_execution.data_quality], 'post');
    rehearsal.dataQuality = dataQuality.summary;
    if (await cancelledNow(session)) return cancelled('post_execution');
    const rolledBack = await phase(session, 'rollback', plan.estimated_duration.rollback, async () => {
      const steps = await runSteps(session, plan.rollback.steps, { mode: 'caller' });
      return [steps.ok, steps] as const;
    });
    rehearsal.rollback = { ok: rolledBack.ok, steps: rolledBack.steps };
    if (!rolledBack.ok) {
      outcome.failure = rolledBack.failure;
      if (rolledBack.cancelledBy) return cancelled('rollback', stepStop('rollback', rolledBack));
      outcome.stoppedAt = stepStop('rollback', rolledBack);
      return { to: 'rehearsal_failed', outcome, reason: `rollback ${failureReason(rolledBack)}` };
    }
    if (await cancelledNow(session)) return cancelled('rollback_verification');
    const rollbackVerification = await checksPhase('rollback_verification', plan.rollback.verification, 'rollback');
    rehearsal.rollbackVerification = rollbackVerification.summary;
    if (await cancelledNow(session)) return cancelled('rollback_verification');
    const ok = verification.summary.passed && dataQuality.summary.passed && rollbackVerification.summary.passed;
    if (!ok) outcome.stoppedAt = verification.stop ?? dataQuality.stop ?? rollbackVerification.stop;
    const failedChecks = [...verification.summary.failed, ...dataQuality.summary.failed, ...rollbackVerification.summary.failed];
    return { to: ok ? 'rehearsed' : 'rehearsal_failed', outcome, reason: ok ? 'rehearsed: every step ran and every check passed' : `checks failed: ${failedChecks.join(', ')}` };
  } finally {
    // Whatever happened, nothing of the rehearsal stays on the target.
    await client.query('rollback').then(
      () => (rehearsal.rolledBack = true),
      () => (rehearsal.rolledBack = false),
    );
    await session.log({
      type: 'rehearsal.transaction.rolled_back',
      payload: {
        rolledBack: rehearsal.rolledBack,
        note: rehearsal.rolledBack ? 'ROLLBACK: the target is as it was' : 'the connection broke: the server rolled the transaction back when the session ended',
      },
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Cancel

/**
 * Cancels an applying, rolling back or rehearsing run, from any process: 'cancel.requested' in
 * its log (the driving process asks at every phase and step boundary, and polls), then at once
 * pg_cancel_backend of every busy session of the run on the target (its step session and its
 * checks' pool all carry the run's application name). The driving process escalates to
 * pg_terminate_backend for any still busy 5 s later. The running statement fails (57014), its
 * transaction rolls back, and the apply ends 'cancelled' (a rollback 'rollback_failed', a
 * rehearsal 'rehearsal_failed') with who cancelled. Returns the pids signalled.
 */
export async function cancelRun(deps: EngineDeps, input: { runId: string; actor: EngineActor; reason?: string }): Promise<{ requested: LoggedRunEvent; signalled: number[] }> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'cancel', runId });
  const run = await getRun(deps, runId);
  if (!isActiveState(run.state)) {
    await appendRunEvent(deps.store.pool, { runId, ...whoOf(actor), type: 'cancel.refused', payload: { reason: `the run is ${run.state}` } });
    throw new RunsheetError('state', `Refused: run ${runId} is ${run.state}; only an applying, rolling back or rehearsing run can be cancelled.`);
  }
  const requested = await appendRunEvent(deps.store.pool, {
    runId,
    ...whoOf(actor),
    type: 'cancel.requested',
    payload: { state: run.state, targetBackendPid: run.targetBackendPid, ...(input.reason ? { reason: input.reason } : {}) },
  });
  // Signed at once: who asked to cancel, and when, is part of what a cut-back log would lose.
  await checkpointRun(deps, runId, 'delta');
  const local = sessionDrivenHere(runId);
  if (local) {
    noteCancel(local, actor.email);
    return { requested, signalled: [] };
  }
  // Driven by another process: signal its sessions from here too, so a blocked statement stops now, not at that process's next poll.
  const signalled = await signalSessions(deps.targets.pool(run.target), runApplicationName(runId), 'cancel', true).catch(() => [] as number[]);
  await appendRunEvent(deps.store.pool, {
    runId,
    ...whoOf(actor),
    type: 'cancel.signalled',
    payload: { by: actor.email, signal: 'cancel', pids: signalled, note: 'pg_cancel_backend sent from the process that asked; the process driving the run stops at its next boundary and escalates if needed' },
  }).catch(() => {});
  return { requested, signalled };
}

/** What a person is told after asking to cancel (the dashboard and the command line say the same). */
export function cancelRequestedMessage(result: { signalled: number[] }): string {
  const signalled = result.signalled.length > 0 ? ` (pg_cancel_backend sent to pid ${result.signalled.join(', ')})` : '';
  return `Cancel requested${signalled}: the run's running statements are cancelled now and nothing else begins; a session still busy in ${CANCEL_ESCALATE_AFTER_MS / 1000} s is terminated.`;
}
