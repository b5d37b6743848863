/**
 * The execution engine's commands on a run's target: execute, rollback, rehearse and cancel. It
 * takes what it talks to as arguments (EngineDeps) and imports nothing from the web framework;
 * the command line and the dashboard call these functions. Each command judges its gates, then
 * hands drive-run.server.ts its phases (claim, lock, drive, finish live there).
 */
import type { RunOutcome } from '../../db/schema/index';
import { isActiveState, isPreparingState } from '../../db/run-lifecycle';
import { appendRunEvent, assertRunId, type LoggedRunEvent } from '../runs/run-log.server';
import { transitionRun, type RunRecord } from '../runs/run-store.server';
import { gateRefusal, RunsheetError } from '../runtime/errors';
import { readLedgerRowsOfRun } from '../targets/ledger.server';
import {
  checksOnClient,
  checksOnPool,
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
import type { EngineActor, EngineDeps, Gate } from './engine-deps.server';
import { evaluateGates, openGates } from './gates.server';
import { runSteps, type StepsRun } from './run-steps.server';
import { authorize, getRun } from './runs.server';
import { runApplicationName } from './target-session.server';

export interface RunOptions {
  /** Called with every event the run appends while it drives the target (the command line prints phases). */
  onEvent?(event: LoggedRunEvent): void;
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
  if (run.kind !== rules.kind) throw await refuse(new RunsheetError('state', rules.wrongKind(runId)));
  if (!isPreparingState(run.state)) throw await refuse(new RunsheetError('state', rules.notReady(runId, run.state)));
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
    gates,
    onEvent: input.onEvent,
    work: rules.work,
    whenEngineStops: rules.whenEngineStops,
  });
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
  return claimAndDrive(deps, input, {
    action: 'execute',
    kind: 'execute',
    activeState: 'applying',
    wrongKind: (runId) => `Run ${runId} is a rehearsal: rehearse it, or open an execute run.`,
    notReady: (runId, state) => `Refused: run ${runId} is ${state}, not ready${state === 'applying' ? ' (it is being applied)' : ''}; a new attempt is a new run.`,
    typedTargetName: input.typedTargetName,
    work: applyPhases,
    // After the apply committed, the run is applied whatever failed later (unverified).
    whenEngineStops: (session, message) => ({
      to: session.stepsCommitted ? 'applied' : 'failed',
      outcome: { phases: session.phases, error: message, ...(session.stepsCommitted ? { verified: false, ledger: { written: 'applied' as const } } : {}) },
      reason: `the engine stopped: ${message}`,
    }),
  });
}

async function applyPhases(session: DriveSession): Promise<Finish> {
  const { plan } = session.thawed;
  const outcome: RunOutcome = { phases: session.phases };

  await phase(session, 'snapshot', plan.estimated_duration.snapshot, async () => {
    const results = await checksOnPool(session, plan.snapshot, 'snapshot');
    return summarizeChecks(results).passed;
  });

  if (session.cancelledBy) return cancelledBeforeApply(session, outcome);
  const applied = await phase(session, 'apply', plan.estimated_duration.apply, async () => {
    const steps = await runSteps(session, plan.apply, { mode: 'own', ledger: 'apply' });
    return [steps.ok, steps] as const;
  });
  session.cancellable = false;
  session.stepsCommitted = applied.ok;
  outcome.steps = applied.steps;
  outcome.ledger = { written: applied.ledgerWritten as 'applied' | 'partial' | null };
  if (!applied.ok) {
    outcome.failure = applied.failure;
    if (applied.failure?.sqlstate === '55P03') outcome.retryable = true;
    if (applied.cancelledBy) outcome.cancelledBy = applied.cancelledBy;
    return { to: 'failed', outcome, reason: failureReason(applied) };
  }

  const verification = await phase(session, 'verification', plan.estimated_duration.verification, async () => {
    const summary = summarizeChecks(await checksOnPool(session, plan.verification, 'verify'));
    return [summary.passed, summary] as const;
  });
  outcome.verification = verification;
  outcome.verified = verification.passed;

  outcome.postExecution = await phase(session, 'post_execution', plan.estimated_duration.post_execution, async () => {
    const checks = [...plan.post_execution.api_tests, ...plan.post_execution.data_quality];
    const summary = summarizeChecks(await checksOnPool(session, checks, 'post'));
    return [summary.passed, summary] as const;
  });
  return {
    to: 'applied',
    outcome,
    reason: verification.passed ? 'applied and verified' : `applied, but verification failed: ${verification.failed.join(', ')}`,
  };
}

function cancelledBeforeApply(session: DriveSession, outcome: RunOutcome): Finish {
  outcome.cancelledBy = session.cancelledBy;
  outcome.ledger = { written: null };
  return { to: 'failed', outcome, reason: `cancelled by ${session.cancelledBy} before the apply started` };
}

function failureReason(steps: StepsRun): string {
  const failure = steps.failure;
  if (!failure) return 'a step failed';
  if (steps.cancelledBy) return `cancelled by ${steps.cancelledBy} during step ${failure.stepId}`;
  return `step ${failure.stepId} failed at line ${failure.line}${failure.sqlstate ? ` with SQLSTATE ${failure.sqlstate}` : ''}: ${failure.message}`;
}

// ---------------------------------------------------------------------------------------------
// Rollback

/**
 * Rolls a run back with the plan's rollback steps (frozen with the run): from 'applied', from
 * 'failed' when part of the apply committed, or from 'interrupted' when the target's ledger says
 * the apply landed. Ends 'rolled_back' (steps committed and rollback verification passed) or
 * 'rollback_failed'. The ledger row (action 'rollback') commits with the last step.
 */
export async function rollbackRun(deps: EngineDeps, input: { runId: string; actor: EngineActor } & RunOptions): Promise<RunRecord> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'rollback', runId });
  const run = await getRun(deps, runId);
  const refuse = refuser(deps, runId, actor, 'rollback');
  if (run.kind !== 'execute') throw await refuse(new RunsheetError('state', 'A rehearsal has nothing to roll back: it always rolls back itself.'));

  const eligible = await rollbackGate(deps, run);
  if (!eligible.passed) throw await refuse(gateRefusal([eligible]), [eligible]);
  const gates = await evaluateGates(deps, run);
  const targetFree = gates.filter((gate) => gate.id === 'target-free' && !gate.passed);
  if (targetFree.length > 0) throw await refuse(gateRefusal(targetFree), targetFree);

  return driveRun(deps, {
    run,
    actor,
    action: 'rollback',
    activeState: 'rolling_back',
    claimFrom: [run.state],
    claimSet: {},
    releaseSet: {},
    gates: [eligible, ...targetFree],
    onEvent: input.onEvent,
    work: rollbackPhases,
    whenEngineStops: (session, message) => ({
      to: 'rollback_failed',
      outcome: { ...(run.outcome ?? {}), rollback: { result: 'rollback_failed', steps: [], phases: session.phases, error: message } },
      reason: `the engine stopped: ${message}`,
    }),
  });
}

/** Whether the run has something to roll back: its state, and for a failed or interrupted run the target's ledger. */
export async function rollbackGate(deps: EngineDeps, run: RunRecord): Promise<Gate> {
  const gate = (passed: boolean, detail: string): Gate => ({ id: 'rollback-state', label: 'The run has something to roll back', passed, detail });
  if (run.state === 'applied') return gate(true, 'the run applied');
  if (run.state !== 'failed' && run.state !== 'interrupted') return gate(false, `the run is ${run.state}: only an applied, partly applied or interrupted run is rolled back`);
  let rows;
  try {
    rows = await readLedgerRowsOfRun(deps.targets.pool(run.target), run.id);
  } catch (error) {
    return gate(false, `cannot read the ledger of ${run.target}: ${(error as Error).message}`);
  }
  const applyRow = rows.find((row) => row.action === 'apply');
  if (run.state === 'failed') {
    return applyRow?.outcome === 'partial' || run.outcome?.ledger?.written === 'partial'
      ? gate(true, 'part of the apply committed (the ledger says partial)')
      : gate(false, 'the run failed and its transaction rolled back: nothing to roll back');
  }
  return applyRow ? gate(true, `the ledger says the apply landed (${applyRow.outcome})`) : gate(false, 'the ledger has no row of this run: the interrupted apply did not commit');
}

async function rollbackPhases(session: DriveSession): Promise<Finish> {
  const { plan } = session.thawed;
  const previous = session.run.outcome ?? {};
  const rollback: NonNullable<RunOutcome['rollback']> = { result: 'rollback_failed', steps: [], phases: session.phases };
  const outcome: RunOutcome = { ...previous, rollback };

  const steps = await phase(session, 'rollback', plan.estimated_duration.rollback, async () => {
    const result = await runSteps(session, plan.rollback.steps, { mode: 'own', ledger: 'rollback' });
    return [result.ok, result] as const;
  });
  session.cancellable = false;
  session.stepsCommitted = steps.ok;
  rollback.steps = steps.steps;
  rollback.ledger = { written: steps.ledgerWritten as 'rolled_back' | 'partial' | null };
  if (!steps.ok) {
    rollback.failure = steps.failure;
    if (steps.cancelledBy) rollback.cancelledBy = steps.cancelledBy;
    if (steps.failure?.sqlstate === '55P03') rollback.retryable = true;
    return { to: 'rollback_failed', outcome, reason: failureReason(steps) };
  }
  const verification = await phase(session, 'rollback_verification', undefined, async () => {
    const summary = summarizeChecks(await checksOnPool(session, plan.rollback.verification, 'rollback'));
    return [summary.passed, summary] as const;
  });
  rollback.verification = verification;
  rollback.verified = verification.passed;
  rollback.result = verification.passed ? 'rolled_back' : 'rollback_failed';
  return {
    to: rollback.result,
    outcome,
    reason: verification.passed ? 'rolled back and verified' : `the rollback committed, but its verification failed: ${verification.failed.join(', ')}`,
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
  let ok = false;
  try {
    await phase(session, 'snapshot', plan.estimated_duration.snapshot, async () => summarizeChecks(await checksOnClient(session, plan.snapshot, 'snapshot')).passed);
    const applied = await phase(session, 'apply', plan.estimated_duration.apply, async () => {
      const steps = await runSteps(session, plan.apply, { mode: 'caller' });
      return [steps.ok, steps] as const;
    });
    rehearsal.apply = { ok: applied.ok, steps: applied.steps };
    if (!applied.ok) {
      outcome.failure = applied.failure;
      if (applied.cancelledBy) outcome.cancelledBy = applied.cancelledBy;
      return { to: 'rehearsal_failed', outcome, reason: failureReason(applied) };
    }
    rehearsal.verification = await phase(session, 'verification', plan.estimated_duration.verification, async () => {
      const summary = summarizeChecks(await checksOnClient(session, plan.verification, 'verify'));
      return [summary.passed, summary] as const;
    });
    rehearsal.dataQuality = await phase(session, 'post_execution', plan.estimated_duration.post_execution, async () => {
      const summary = summarizeChecks(await checksOnClient(session, [...plan.post_execution.api_tests, ...plan.post_execution.data_quality], 'post'));
      return [summary.passed, summary] as const;
    });
    if (session.cancelledBy) {
      outcome.cancelledBy = session.cancelledBy;
      return { to: 'rehearsal_failed', outcome, reason: `cancelled by ${session.cancelledBy}` };
    }
    const rolledBack = await phase(session, 'rollback', plan.estimated_duration.rollback, async () => {
      const steps = await runSteps(session, plan.rollback.steps, { mode: 'caller' });
      return [steps.ok, steps] as const;
    });
    rehearsal.rollback = { ok: rolledBack.ok, steps: rolledBack.steps };
    if (!rolledBack.ok) {
      outcome.failure = rolledBack.failure;
      if (rolledBack.cancelledBy) outcome.cancelledBy = rolledBack.cancelledBy;
      return { to: 'rehearsal_failed', outcome, reason: `rollback ${failureReason(rolledBack)}` };
    }
    rehearsal.rollbackVerification = await phase(session, 'rollback_verification', undefined, async () => {
      const summary = summarizeChecks(await checksOnClient(session, plan.rollback.verification, 'rollback'));
      return [summary.passed, summary] as const;
    });
    ok = rehearsal.verification.passed && rehearsal.dataQuality.passed && rehearsal.rollbackVerification.passed;
    const failedChecks = [...rehearsal.verification.failed, ...rehearsal.dataQuality.failed, ...rehearsal.rollbackVerification.failed];
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
 * Cancels an applying, rolling back or rehearsing run: 'cancel.requested' in its log (how a
 * process driving it elsewhere learns of it), then pg_cancel_backend of its target session from
 * another connection. The running statement fails (57014), its transaction rolls back, and the
 * run ends failed with outcome.cancelledBy. Returns whether a backend was signalled.
 */
export async function cancelRun(deps: EngineDeps, input: { runId: string; actor: EngineActor }): Promise<{ requested: LoggedRunEvent; signalled: boolean }> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'cancel', runId });
  const run = await getRun(deps, runId);
  if (!isActiveState(run.state)) {
    await appendRunEvent(deps.store.pool, { runId, actor: actor.email, role: actor.role, type: 'cancel.refused', payload: { reason: `the run is ${run.state}` } });
    throw new RunsheetError('state', `Refused: run ${runId} is ${run.state}; only an applying, rolling back or rehearsing run can be cancelled.`);
  }
  const requested = await appendRunEvent(deps.store.pool, {
    runId,
    actor: actor.email,
    role: actor.role,
    type: 'cancel.requested',
    payload: { state: run.state, targetBackendPid: run.targetBackendPid },
  });
  const local = sessionDrivenHere(runId);
  if (local) noteCancel(local, actor.email);
  let signalled = false;
  if (run.targetBackendPid !== null) {
    // Only the run's own session: a pid reused by another session is left alone.
    const { rows } = await deps.targets
      .pool(run.target)
      .query<{ cancelled: boolean }>('select pg_cancel_backend(pid) as cancelled from pg_stat_activity where pid = $1 and application_name = $2', [
        run.targetBackendPid,
        runApplicationName(runId),
      ])
      .catch(() => ({ rows: [] as { cancelled: boolean }[] }));
    signalled = rows[0]?.cancelled === true;
  }
  return { requested, signalled };
}
