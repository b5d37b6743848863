/**
 * The execution engine: execute, rollback, rehearse and cancel a run on its target. It takes
 * what it talks to as arguments (EngineDeps) and imports nothing from the web framework; the
 * command line and the dashboard call these functions.
 *
 * One run drives its target through one dedicated connection (`runsheet:run:<id>`): claimed in
 * the store (the partial unique index allows one active run per target), then the target's
 * advisory lock (pg_try_advisory_lock polling), a heartbeat in the store, phases with events and
 * signed checkpoints, and always: lock released, heartbeat stopped, connection closed.
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { roleCan } from '../auth/permissions';
import { runChecks, type CheckResult } from '../checks/run-checks.server';
import type { Check, Step } from '../plans/plan-schema';
import { appendRunEvent, assertRunId, readRunEvents, type RunEvent } from '../runs/run-log.server';
import { signCheckpoint } from '../runs/signing.server';
import type { Target } from '../targets/targets.server';
import type { RunState } from '../../db/schema/index';
import { backendPidOf, cancelRunningStep, prepareStep } from './execute-step.server';
import { runStepOfKind, stepToRun, type KindOutcome, type StepKindContext } from './step-kinds/index.server';
import { clearBackfillProgress, readLedgerRowsOfRun, writeLedgerRow, writeLedgerRowWithPool, type LedgerRowToWrite } from '../targets/ledger.server';
import { ownerProcess, type EngineActor, type EngineDeps, type Gate } from './engine-deps.server';
import { thawPlan, type ThawedPlan } from './frozen-plan.server';
import { evaluateGates, openGates } from './gates.server';
import { authorize, getRun, recordRunChecks, summarizeChecks } from './runs.server';
import {
  findTargetLockHolders,
  openTargetClient,
  releaseTargetLock,
  requireWritableTarget,
  runApplicationName,
  startHeartbeat,
  tryTargetLock,
} from './target-session.server';
import {
  isActiveState,
  isUniqueViolation,
  jsonPayload,
  transitionRun,
  type ChecksSummary,
  type PhaseTiming,
  type RunOutcome,
  type RunRecord,
  type StepFailure,
  type StepSummary,
} from './run-store.server';
import { RunsheetError, gateRefusal } from '../runtime/errors';

export interface RunOptions {
  /** Called with every event the run appends while it drives the target (the command line prints phases). */
  onEvent?(event: RunEvent): void;
}

/** How often the driving process looks for a cancel requested from another process. */
const CANCEL_POLL_MS = 1_000;
const HTTP_SKIPPED_IN_REHEARSAL = 'skipped: a rehearsal does not call the API';

/** Runs this process drives now: a cancel from this process reaches them at once. */
const drivenHere = new Map<string, RunSession>();

type ActiveState = 'applying' | 'rolling_back' | 'rehearsing';
type Action = 'execute' | 'rollback' | 'rehearse';

interface RunSession {
  deps: EngineDeps;
  run: RunRecord;
  thawed: ThawedPlan;
  target: Target;
  actor: EngineActor;
  client: pg.Client;
  pool: pg.Pool;
  backendPid: number;
  /** The seq after which a 'cancel.requested' counts for this drive. */
  claimSeq: number;
  cancelledBy?: string;
  /** False once nothing is left to cancel (the apply committed). */
  cancellable: boolean;
  /** The apply (or rollback) steps committed: what follows cannot undo them. */
  stepsCommitted: boolean;
  phases: PhaseTiming[];
  log(type: string, payload?: Record<string, unknown>): Promise<RunEvent>;
}

// ---------------------------------------------------------------------------------------------
/**
 * What execute and rehearse share: the actor's role, the run's kind and state, every gate judged
 * again (each refusal in the run log), draft → ready when all pass, then the run is driven.
 */
async function claimAndDrive(
  deps: EngineDeps,
  input: { runId: string; actor: EngineActor; signal?: AbortSignal } & RunOptions,
  rules: {
    action: 'execute' | 'rehearse';
    kind: RunRecord['kind'];
    activeState: 'applying' | 'rehearsing';
    wrongKind: (runId: string) => string;
    notReady: (runId: string, state: string) => string;
    typedTargetName?: string;
    work: DriveOptions['work'];
  },
): Promise<RunRecord> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: rules.action, runId });
  let run = await getRun(deps, runId);
  const refuse = refuser(deps, runId, actor, `${rules.action}.refused`);
  if (run.kind !== rules.kind) throw await refuse(new RunsheetError('state', rules.wrongKind(runId)));
  if (run.state !== 'draft' && run.state !== 'ready') throw await refuse(new RunsheetError('state', rules.notReady(runId, run.state)));
  const gates = await evaluateGates(deps, run, { executor: actor.email, typedTargetName: rules.typedTargetName });
  const open = openGates(gates);
  if (open.length > 0) throw await refuse(gateRefusal(open), { openGates: open.map(gatePayload) });
  if (run.state === 'draft') {
    const reason = rules.action === 'execute' ? 'every gate passed when executing' : 'every gate passed when rehearsing';
    await transitionRun(deps.store, { runId, from: ['draft'], to: 'ready', reason, actor: 'system' });
    run = (await getRun(deps, runId))!;
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
    signal: input.signal,
    onEvent: input.onEvent,
    work: rules.work,
  });
}

// Execute

/**
 * Executes a ready run: every gate judged again (refused: 'execute.refused' and GateRefusedError
 * naming the open gates), then snapshot → apply → verification → post-execution, ending
 * 'applied' (with outcome.verified) or 'failed'. A failed run is never retried by itself: a retry
 * is a new run (outcome.retryable says whether one may help, e.g. after a lock timeout).
 */
export async function executeRun(
  deps: EngineDeps,
  input: { runId: string; actor: EngineActor; typedTargetName?: string; signal?: AbortSignal } & RunOptions,
): Promise<RunRecord> {
  return claimAndDrive(deps, input, {
    action: 'execute',
    kind: 'execute',
    activeState: 'applying',
    wrongKind: (runId) => `Run ${runId} is a rehearsal: rehearse it, or open an execute run.`,
    notReady: (runId, state) => `Refused: run ${runId} is ${state}, not ready${state === 'applying' ? ' (it is being applied)' : ''}; a new attempt is a new run.`,
    typedTargetName: input.typedTargetName,
    work: applyPhases,
  });
}

async function applyPhases(session: RunSession): Promise<Finish> {
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

function cancelledBeforeApply(session: RunSession, outcome: RunOutcome): Finish {
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
export async function rollbackRun(deps: EngineDeps, input: { runId: string; actor: EngineActor; signal?: AbortSignal } & RunOptions): Promise<RunRecord> {
  const runId = assertRunId(input.runId);
  const { actor } = input;
  await authorize(deps, { actor, action: 'rollback', runId });
  const run = await getRun(deps, runId);
  const refuse = refuser(deps, runId, actor, 'rollback.refused');
  if (run.kind !== 'execute') throw await refuse(new RunsheetError('state', 'A rehearsal has nothing to roll back: it always rolls back itself.'));

  const eligible = await rollbackEligibility(deps, run);
  if (!eligible.passed) throw await refuse(gateRefusal([eligible]), { openGates: [gatePayload(eligible)] });
  const gates = await evaluateGates(deps, run);
  const targetFree = gates.filter((gate) => gate.id === 'target-free' && !gate.passed);
  if (targetFree.length > 0) throw await refuse(gateRefusal(targetFree), { openGates: targetFree.map(gatePayload) });

  return driveRun(deps, {
    run,
    actor,
    action: 'rollback',
    activeState: 'rolling_back',
    claimFrom: [run.state],
    claimSet: {},
    releaseSet: {},
    gates: [eligible, ...targetFree],
    signal: input.signal,
    onEvent: input.onEvent,
    work: rollbackPhases,
  });
}

async function rollbackEligibility(deps: EngineDeps, run: RunRecord): Promise<Gate> {
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

async function rollbackPhases(session: RunSession): Promise<Finish> {
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
export async function rehearseRun(deps: EngineDeps, input: { runId: string; actor: EngineActor; signal?: AbortSignal } & RunOptions): Promise<RunRecord> {
  return claimAndDrive(deps, input, {
    action: 'rehearse',
    kind: 'rehearsal',
    activeState: 'rehearsing',
    wrongKind: (runId) => `Run ${runId} is an execute run: open a rehearsal run to rehearse.`,
    notReady: (runId, state) => `Refused: rehearsal ${runId} is ${state}; a new rehearsal is a new run.`,
    work: rehearsalPhases,
  });
}

async function rehearsalPhases(session: RunSession): Promise<Finish> {
  const { plan } = session.thawed;
  const { client } = session;
  const rehearsal: NonNullable<RunOutcome['rehearsal']> = { apply: { ok: false, steps: [] }, rolledBack: false };
  const outcome: RunOutcome = { phases: session.phases, rehearsal };
  await client.query('begin');
  await session.log('rehearsal.transaction.opened', {
    note:
      "The rehearsal runs the apply and rollback steps inside one transaction that is always rolled back. It holds the migration's locks " +
      '(e.g. ACCESS EXCLUSIVE on the tables it alters) for its whole length, so other sessions using those tables wait until it ends.',
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
    await session.log('rehearsal.transaction.rolled_back', {
      rolledBack: rehearsal.rolledBack,
      note: rehearsal.rolledBack ? 'ROLLBACK: the target is as it was' : 'the connection broke: the server rolled the transaction back when the session ended',
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
export async function cancelRun(deps: EngineDeps, input: { runId: string; actor: EngineActor }): Promise<{ requested: RunEvent; signalled: boolean }> {
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
  const local = drivenHere.get(runId);
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

function noteCancel(session: RunSession, by: string): void {
  if (session.cancelledBy) return;
  session.cancelledBy = by;
  if (session.cancellable) cancelRunningStep(session.client, session.pool);
}

// ---------------------------------------------------------------------------------------------
// Driving a run: claim, lock, heartbeat, phases, finish, release

interface Finish {
  to: RunState;
  outcome: RunOutcome;
  reason: string;
}

interface DriveOptions {
  run: RunRecord;
  actor: EngineActor;
  action: Action;
  activeState: ActiveState;
  claimFrom: readonly RunState[];
  claimSet: { startedAt?: 'now' | null; executedBy?: string | null };
  releaseSet: { startedAt?: 'now' | null; executedBy?: string | null };
  gates: Gate[];
  signal?: AbortSignal;
  onEvent?: (event: RunEvent) => void;
  work(session: RunSession): Promise<Finish>;
}

async function driveRun(deps: EngineDeps, options: DriveOptions): Promise<RunRecord> {
  const { run, actor, action } = options;
  const refuse = refuser(deps, run.id, actor, `${action}.refused`);
  let target: Target;
  try {
    target = deps.targets.get(run.target);
  } catch (error) {
    throw await refuse(error as Error);
  }

  let client: pg.Client;
  try {
    client = await openTargetClient(target, run.id);
  } catch (error) {
    throw await refuse(error as Error);
  }
  let claimed = false;
  let locked = false;
  let stopHeartbeat = () => {};
  let stopCancelWatch = () => {};
  try {
    const facts = await requireWritableTarget(deps, target).catch((error: Error) => refuse(error).then((refusal) => Promise.reject(refusal)));
    const backendPid = await backendPidOf(client);

    // Claim in the store: the partial unique index lets one run per target be active.
    let claim;
    try {
      claim = await transitionRun(deps.store, {
        runId: run.id,
        from: options.claimFrom,
        to: options.activeState,
        reason: `${action} by ${actor.email}`,
        actor: actor.email,
        role: actor.role,
        set: { ...options.claimSet, heartbeatAt: 'now', ownerProcess: ownerProcess(), targetBackendPid: backendPid },
        events: [
          {
            type: `${action}.started`,
            payload: jsonPayload({
              gates: options.gates.map(gatePayload),
              target: { name: target.name, url: target.displayUrl, serverVersion: facts.serverVersion.version, tls: facts.tls.ssl, currentUser: facts.currentUser },
              targetBackendPid: backendPid,
              applicationName: runApplicationName(run.id),
            }),
          },
        ],
      });
    } catch (error) {
      if (isUniqueViolation(error)) {
        const others = await deps.store.pool.query<{ id: string; state: string }>(
          `select id::text as id, state from runs where target = $1 and state in ('applying', 'rolling_back', 'rehearsing') and id <> $2`,
          [run.target, run.id],
        );
        const holder = others.rows.map((row) => `run ${row.id} is ${row.state}`).join('; ') || 'another run is active';
        throw await refuse(new RunsheetError('busy', `Refused: another run holds target ${run.target} (${holder}); one run at a time per target.`));
      }
      throw error;
    }
    if (!claim.changed) {
      throw await refuse(new RunsheetError('state', `Refused: run ${run.id} is ${claim.state ?? 'gone'}, not ${options.claimFrom.join(' or ')}: it was claimed by another request.`));
    }
    claimed = true;
    claim.events.forEach((event) => options.onEvent?.(event));

    locked = await tryTargetLock(client);
    if (!locked) {
      const holders = await findTargetLockHolders(deps.targets.pool(target.name)).catch(() => []);
      await transitionRun(deps.store, {
        runId: run.id,
        from: [options.activeState],
        to: claim.from,
        reason: 'the target\'s advisory lock is held by another session: nothing was changed',
        actor: actor.email,
        role: actor.role,
        set: { ...options.releaseSet, heartbeatAt: null, ownerProcess: null, targetBackendPid: null },
        events: [{ type: 'lock.held', payload: jsonPayload({ holders }) }],
      });
      claimed = false;
      const who = holders.map((holder) => `pid ${holder.pid}${holder.application ? ` (${holder.application})` : ''}`).join(', ') || 'a session this role cannot see';
      throw new RunsheetError('busy', `Target ${target.name} is locked by another migration session (${who}): nothing was changed; try again when it ends.`);
    }

    stopHeartbeat = startHeartbeat(deps.store, run.id);
    const session: RunSession = {
      deps,
      run: claim.run,
      thawed: thawPlan(run.frozenPlan),
      target,
      actor,
      client,
      pool: deps.targets.pool(target.name),
      backendPid,
      claimSeq: claim.events.at(-1)!.seq,
      cancellable: true,
      stepsCommitted: false,
      phases: [],
      log: async (type, payload = {}) => {
        const event = await appendRunEvent(deps.store.pool, { runId: run.id, actor: actor.email, role: actor.role, type, payload: jsonPayload(payload) });
        options.onEvent?.(event);
        return event;
      },
    };
    drivenHere.set(run.id, session);
    stopCancelWatch = watchForCancel(session, options.signal);
    await signCheckpoint(deps.store.pool, run.id, deps.signingKeyPem);

    let finish: Finish;
    try {
      finish = await options.work(session);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await session.log('run.error', { message }).catch(() => {});
      // After the apply committed, the run is applied whatever failed later (unverified).
      const failed: RunState =
        action === 'rehearse' ? 'rehearsal_failed' : action === 'rollback' ? 'rollback_failed' : session.stepsCommitted ? 'applied' : 'failed';
      const base: RunOutcome =
        action === 'rollback'
          ? { ...(run.outcome ?? {}), rollback: { result: failed, steps: [], phases: session.phases, error: message } }
          : { phases: session.phases, error: message, ...(session.stepsCommitted ? { verified: false, ledger: { written: 'applied' as const } } : {}) };
      finish = { to: failed, outcome: base, reason: `the engine stopped: ${message}` };
    }
    finish.outcome.result = finish.to;
    // Let go of the target before the claim: a run claimed the moment this one ends must never
    // find the target's lock still held by a run that has finished.
    stopCancelWatch();
    stopHeartbeat();
    if (locked) {
      await releaseTargetLock(client).catch(() => {});
      locked = false;
    }
    const ended = await transitionRun(deps.store, {
      runId: run.id,
      from: [options.activeState],
      to: finish.to,
      reason: finish.reason,
      actor: actor.email,
      role: actor.role,
      set: { finishedAt: 'now', outcome: finish.outcome },
      events: [{ type: `${action}.finished`, payload: jsonPayload({ state: finish.to, outcome: finish.outcome }) }],
    });
    claimed = false;
    if (ended.changed) ended.events.forEach((event) => options.onEvent?.(event));
    await signCheckpoint(deps.store.pool, run.id, deps.signingKeyPem);
    return (await getRun(deps, run.id))!;
  } finally {
    stopCancelWatch();
    stopHeartbeat();
    drivenHere.delete(run.id);
    if (locked) await releaseTargetLock(client).catch(() => {});
    await client.end().catch(() => {});
    // A claim never finished (the store failed mid-way): heartbeat stopped and session closed,
    // so markInterruptedRuns settles it once the heartbeat is stale.
    void claimed;
  }
}

/** Polls the run log for a cancel requested by another process, and turns an abort signal into a cancel. */
function watchForCancel(session: RunSession, signal?: AbortSignal): () => void {
  const { deps, run } = session;
  const timer = setInterval(() => {
    if (session.cancelledBy) return;
    deps.store.pool
      .query<{ actor: string }>(`select actor from run_events where run_id = $1 and type = 'cancel.requested' and seq > $2 order by seq limit 1`, [run.id, session.claimSeq])
      .then(({ rows }) => rows[0] && noteCancel(session, rows[0].actor))
      .catch(() => {});
  }, CANCEL_POLL_MS);
  timer.unref();
  const onAbort = () => void cancelRun(deps, { runId: run.id, actor: session.actor }).catch(() => noteCancel(session, session.actor.email));
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return () => {
    clearInterval(timer);
    signal?.removeEventListener('abort', onAbort);
  };
}

/** Logs a refusal ('<action>.refused') and hands back the error to throw. */
function refuser(deps: EngineDeps, runId: string, actor: EngineActor, type: string) {
  return async <E extends Error>(error: E, payload: Record<string, unknown> = {}): Promise<E> => {
    await appendRunEvent(deps.store.pool, { runId, actor: actor.email, role: actor.role, type, payload: jsonPayload({ reason: error.message, error: error.name, ...payload }) }).catch(() => {});
    return error;
  };
}

const gatePayload = (gate: Gate) => ({ id: gate.id, label: gate.label, passed: gate.passed, detail: gate.detail });

/**
 * One phase: 'phase.started' and 'phase.completed' with planned and actual time, then a signed
 * checkpoint. `work` returns a value, or [ok, value].
 */
async function phase<T>(session: RunSession, name: string, plannedMs: number | undefined, work: () => Promise<T | readonly [boolean, T]>): Promise<T> {
  const planned = plannedMs ?? null;
  await session.log('phase.started', { phase: name, plannedMs: planned });
  const started = performance.now();
  const result = await work();
  const [ok, value] = Array.isArray(result) && result.length === 2 && typeof result[0] === 'boolean' ? (result as readonly [boolean, T]) : [result !== false, result as T];
  const actualMs = Math.round(performance.now() - started);
  session.phases.push({ phase: name, plannedMs: planned, actualMs });
  await session.log('phase.completed', { phase: name, ok, plannedMs: planned, actualMs, ...(planned !== null ? { overrunMs: Math.max(0, actualMs - planned) } : {}) });
  await signCheckpoint(session.deps.store.pool, session.run.id, session.deps.signingKeyPem);
  return value;
}

async function checksOnPool(session: RunSession, checks: Check[], phaseName: string): Promise<CheckResult[]> {
  const { target } = session;
  const results = await runChecks({
    checks,
    sqlOf: session.thawed.sqlOf,
    target: { name: target.name, pool: session.pool, apiUrl: target.apiUrl, apiToken: target.apiToken },
    phase: phaseName,
  });
  await recordRunChecks(session.deps, session.run, session.thawed, { phase: phaseName, results, actor: session.actor });
  return results;
}

/** Checks inside the rehearsal's transaction (each in a savepoint); http checks are skipped and say why. */
async function checksOnClient(session: RunSession, checks: Check[], phaseName: string): Promise<CheckResult[]> {
  const runnable = checks.filter((check) => check.kind !== 'http');
  const ran = await runChecks({ checks: runnable, sqlOf: session.thawed.sqlOf, target: { name: session.target.name, client: session.client }, phase: phaseName });
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
        expected: check.expect,
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

// ---------------------------------------------------------------------------------------------
// Steps

interface StepsRun {
  ok: boolean;
  steps: StepSummary[];
  failure?: StepFailure;
  cancelledBy?: string;
  ledgerWritten: 'applied' | 'rolled_back' | 'partial' | null;
}

/**
 * Runs steps in order with executeStep, one event per statement. With `ledger`, the success row
 * commits in the last transactional step's transaction (beforeCommit), or follows the last
 * statement of a non-transactional last step; a failure after something committed writes
 * 'partial' with the completed steps.
 */
async function runSteps(session: RunSession, steps: Step[], options: { mode: 'own' | 'caller'; ledger?: 'apply' | 'rollback' }): Promise<StepsRun> {
  const { run, thawed, client, pool } = session;
  const summaries: StepSummary[] = [];
  const progress: { stepId: string; statementsCompleted: number; statementCount: number; complete: boolean; kind?: string; detail?: Record<string, unknown> }[] = [];
  // What a step kind needs of this run (step-kinds/): its connection, the log, cancel and pause.
  const kindContext: StepKindContext = {
    runId: run.id,
    planId: run.planId,
    planRetries: thawed.plan.retries,
    client,
    pool,
    store: session.deps.store.pool,
    log: (type, payload) => session.log(type, payload),
    cancelledBy: () => session.cancelledBy,
  };
  const successOutcome = options.ledger === 'rollback' ? 'rolled_back' : 'applied';
  const ledgerRow = (outcome: LedgerRowToWrite['outcome']): LedgerRowToWrite => ({
    runId: run.id,
    planId: run.planId,
    checksum: run.planChecksum,
    action: options.ledger!,
    outcome,
    stepsCompleted: progress,
    appliedBy: session.actor.email,
    equivalentPlanIds: thawed.plan.equivalent_to,
  });
  // A rollback resets the plan's backfill cursors with its ledger row: a later apply walks from the first key.
  const writeLedger = async (target: pg.ClientBase, outcome: LedgerRowToWrite['outcome']) => {
    if (options.ledger === 'rollback' && outcome === 'rolled_back') await clearBackfillProgress(target, run.planId);
    await writeLedgerRow(target, ledgerRow(outcome));
  };

  for (const [index, step] of steps.entries()) {
    const last = index === steps.length - 1;
    const spec = await stepToRun(step, thawed.stepSql(step));
    const prepared = await prepareStep(spec);
    const statementCount = prepared.ok ? prepared.statements.length : 0;
    if (session.cancelledBy && options.mode === 'own') {
      const failure: StepFailure = { stepId: step.id, statementIndex: -1, line: 0, message: `cancelled by ${session.cancelledBy} before step ${step.id} started`, blockers: [], cancelled: true };
      await session.log('step.failed', { stepId: step.id, failure, cancelledBy: session.cancelledBy });
      return finishFailed(failure, session.cancelledBy);
    }
    await session.log('step.started', {
      stepId: step.id,
      title: step.title,
      file: step.file,
      transactional: step.transactional,
      mode: options.mode,
      statementCount,
      lockTimeoutMs: step.lock_timeout,
      statementTimeoutMs: step.statement_timeout,
      ...(step.kind !== 'sql' ? { kind: step.kind } : {}),
      ...(step.kind === 'create_index_concurrently' ? { index: `${step.index.schema}.${step.index.name}` } : {}),
      ...(step.kind === 'batched_backfill'
        ? { table: `${step.table.schema}.${step.table.name}`, key: step.key, batchSize: step.batch_size, pauseMs: step.pause }
        : {}),
      ...((step.retries ?? thawed.plan.retries) > 0 ? { retries: step.retries ?? thawed.plan.retries } : {}),
    });
    const writesLedgerInTransaction = options.ledger !== undefined && options.mode === 'own' && last && step.transactional;
    if (options.ledger === 'apply' && options.mode === 'own' && step.kind !== 'sql') {
      // A backfill or a concurrent build commits piece by piece: should this process die inside
      // it, the target's ledger already says the run changed it (partial, with the steps done so
      // far), so the interrupted run can be rolled back; a new run resumes it either way.
      await writeLedgerRow(client, ledgerRow('partial'));
      await session.log('ledger.checkpoint', { stepId: step.id, outcome: 'partial', stepsCompleted: progress.map((entry) => entry.stepId) });
    }
    const outcome: KindOutcome = await runStepOfKind(
      kindContext,
      step,
      spec,
      { kind: options.mode },
      {
        onStatement: async (event) => {
          await session.log('statement.completed', {
            stepId: event.stepId,
            index: event.index,
            line: event.line,
            endLine: event.endLine,
            command: event.command,
            durationMs: event.durationMs,
            rowCount: event.rowCount,
            notices: event.notices,
            startedAt: event.startedAt,
            ...(event.blockers ? { blockers: event.blockers } : {}),
          });
        },
        ...(writesLedgerInTransaction
          ? {
              beforeCommit: async (transaction: pg.ClientBase) => {
                progress.push({ stepId: step.id, statementsCompleted: statementCount, statementCount, complete: true });
                try {
                  await writeLedger(transaction, successOutcome);
                } finally {
                  progress.pop();
                }
              },
            }
          : {}),
      },
      { blockerProbe: pool, cancelPool: pool },
    );
    let ok = outcome.ok;
    let committed = outcome.committed;
    if (!ok && outcome.failure?.outcomeUnknown && writesLedgerInTransaction) {
      // The COMMIT's answer was lost: the ledger row, written in the same transaction, settles it.
      const rows = await readLedgerRowsOfRun(pool, run.id).catch(() => []);
      const landed = rows.some((row) => row.action === options.ledger && row.outcome === successOutcome);
      await session.log('commit.settled', { stepId: step.id, landed, by: 'reading the target ledger for this run' });
      if (landed) ok = committed = true;
    }
    const completedCount = ok ? statementCount : outcome.completedCount;
    const summary: StepSummary = {
      stepId: step.id,
      title: step.title,
      transactional: step.transactional,
      ok,
      statementCount,
      completedCount,
      committed,
      durationMs: outcome.durationMs,
      ...(step.kind !== 'sql' ? { kind: step.kind } : {}),
      ...(outcome.attempts > 1 ? { attempts: outcome.attempts } : {}),
      ...(outcome.detail ? { detail: outcome.detail } : {}),
    };
    summaries.push(summary);
    // A failed step that still changed the target (batches committed, an INVALID index left) counts as progress: the ledger says partial.
    const nonTransactionalProgress = !step.transactional && options.mode === 'own' && (completedCount > 0 || outcome.leftover === true);
    if (committed || nonTransactionalProgress) {
      progress.push({
        stepId: step.id,
        statementsCompleted: completedCount,
        statementCount,
        complete: ok,
        ...(step.kind !== 'sql' ? { kind: step.kind } : {}),
        ...(outcome.detail ? { detail: outcome.detail } : {}),
      });
    }

    if (ok) {
      let ledgerWritten: StepsRun['ledgerWritten'] = null;
      if (options.ledger && options.mode === 'own' && last) {
        if (!step.transactional) await writeLedger(client, successOutcome);
        ledgerWritten = successOutcome;
      }
      await session.log('step.completed', { ...summary });
      if (last) return { ok: true, steps: summaries, ledgerWritten };
      continue;
    }

    const raw = outcome.failure!;
    let cancelledBy = raw.cancelled ? (session.cancelledBy ?? (await cancelRequester(session))) : undefined;
    if (!cancelledBy && raw.sqlstate === '57014') cancelledBy = await cancelRequester(session);
    const failure: StepFailure = {
      stepId: step.id,
      statementIndex: raw.statementIndex,
      line: raw.line,
      ...(raw.sqlstate ? { sqlstate: raw.sqlstate } : {}),
      message: raw.message,
      ...(raw.detail ? { detail: raw.detail } : {}),
      ...(raw.hint ? { hint: raw.hint } : {}),
      blockers: raw.blockers,
      cancelled: cancelledBy !== undefined,
    };
    await session.log('step.failed', {
      stepId: step.id,
      failure,
      summary: raw.summary,
      during: raw.during,
      ...(raw.timeout ? { timeout: raw.timeout } : {}),
      ...(raw.outcomeUnknown ? { outcomeUnknown: true } : {}),
      connectionBroken: outcome.connectionBroken,
      ...(cancelledBy ? { cancelledBy } : {}),
      ...(outcome.attempts > 1 ? { attempts: outcome.attempts } : {}),
      ...(raw.sqlstate === '55P03'
        ? {
            retryable: true,
            note:
              outcome.attempts > 1
                ? `still locked after ${outcome.attempts} attempts: retry under a new run when the blocking sessions are gone`
                : 'a lock timeout changes nothing: retry under a new run when the blocking sessions are gone',
          }
        : {}),
    });
    let ledgerWritten: StepsRun['ledgerWritten'] = null;
    if (options.ledger && options.mode === 'own' && progress.length > 0) {
      const row = ledgerRow('partial');
      const written = await (outcome.connectionBroken ? writeLedgerRowWithPool(pool, row) : writeLedgerRow(client, row)).then(
        () => true,
        (error: Error) => session.log('ledger.write_failed', { outcome: 'partial', message: error.message }).then(() => false),
      );
      if (written) ledgerWritten = 'partial';
    }
    return { ok: false, steps: summaries, failure, ...(cancelledBy ? { cancelledBy } : {}), ledgerWritten };
  }
  return { ok: true, steps: summaries, ledgerWritten: null };

  function finishFailed(failure: StepFailure, cancelledBy?: string): StepsRun {
    return { ok: false, steps: summaries, failure, ...(cancelledBy ? { cancelledBy } : {}), ledgerWritten: null };
  }
}

/** Who asked to cancel this drive, from the run log (a cancel from another process). */
async function cancelRequester(session: RunSession): Promise<string | undefined> {
  const events = await readRunEvents(session.deps.store.pool, session.run.id, { afterSeq: session.claimSeq });
  return events.find((event) => event.type === 'cancel.requested')?.actor;
}

/** Whether an actor's role allows an action: for front ends that hide what they may not do. */
export const actorCan = (actor: EngineActor, action: Parameters<typeof roleCan>[1]) => roleCan(actor.role, action);

export type { ChecksSummary };
