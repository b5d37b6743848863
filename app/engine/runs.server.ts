/**
 * Runs before they execute: which run a plan on a target is working on (one rule for both front
 * ends), opening one from the plan as it is now (frozen), ticking its prerequisites and success
 * criteria, running its checks, signing it off, adding notes; and reading a run and its detail.
 * Every change is a run event; ticks are replayed from the events, never kept in a column. Reads
 * never change a run: marking interrupted runs is the recovery pass's (crash-recovery.server.ts).
 */
import { recordAudit } from '../audit/audit-log.server';
import { roleCan, type Permission } from '../accounts/permissions';
import { requireValidPlan } from '../checks/plan-checks.server';
import { jsonSafe } from '../checks/evaluate-expectation';
import { checkTargetOf, readRunCheckResults, recordCheckResults, runChecks, type CheckResult } from '../checks/run-checks.server';
import { checksOfPhase, type Check, type CheckPhase, type Plan } from '../plans/plan-schema';
import type { PayloadOf, RunEvent } from '../runs/run-events';
import { appendRunEvent, assertRunId, inStoreTransaction, readRunEvents, type LoggedRunEvent } from '../runs/run-log.server';
import { findRun, findRunSummaries, insertDraftRun, isUniqueViolation, transitionRun, type RunRecord, type RunSummaryRecord } from '../runs/run-store.server';
import { gateRefusal, RunsheetError } from '../runtime/errors';
import type { CheckResultRow } from '../../db/schema/index';
import { isActiveState, isPreparingState, pickWorkingRun, PREPARING_STATES, type RunKind, type RunState, type WorkingRunChoice } from '../../db/run-lifecycle';
import { checkpointRun } from './checkpoints.server';
import { whoOf, type EngineActor, type EngineDeps, type Gate } from './engine-deps.server';
import { freezePlan, thawPlan, type ThawedPlan } from './frozen-plan.server';
import { decideResume, runPrechecksResuming } from './resume.server';
import { appendSignoffReadyIfDue } from './signoff-ready.server';
import { PREPARATION_EVENT_TYPES, evaluateGates, openGates, planGates, signoffsFromEvents, ticksFromEvents, criteriaTicksFromEvents, type PrerequisiteTick } from './gates.server';

/**
 * Refuses an actor whose role does not allow `action` (defence in depth: the web app and the
 * command line check first). A refusal is logged: in the run log when there is a run, else in
 * the audit log.
 */
export async function authorize(deps: EngineDeps, input: { actor: EngineActor; action: Permission; runId?: string; subject?: string }): Promise<void> {
  const { actor, action } = input;
  if (roleCan(actor.role, action)) return;
  const reason = `role ${actor.role} may not ${action}`;
  const logged = input.runId
    ? await appendRunEvent(deps.store.pool, { runId: input.runId, ...whoOf(actor), type: 'action.refused', payload: { action, reason } }).then(
        () => true,
        () => false, // no such run: the audit log records the refusal instead
      )
    : false;
  if (!logged) {
    await recordAudit(deps.store.db, { actor: actor.email, actorRole: actor.role, action, subject: input.subject ?? input.runId ?? null, outcome: 'refused', reason });
  }
  throw new RunsheetError('permission', `Refused: ${actor.email} (${actor.role}) may not ${action}.`);
}

/**
 * The local command line reaches the store directly and names its account with `--as`, which no
 * one checked: it may not give what four-eyes rests on (a sign-off, an execute where a sign-off
 * is required). The dashboard, or an API token, is two authenticated people. Refused in the run
 * log and the audit log, with the way on.
 */
export async function refuseFromLocalCommandLine(deps: EngineDeps, input: { runId: string; actor: EngineActor; action: string; why: string }): Promise<void> {
  if (input.actor.via?.channel !== 'cli') return;
  const reason = `the local command line may not ${input.action} (${input.why}, and --as is not authentication): use the dashboard, or an API token`;
  await appendRunEvent(deps.store.pool, { runId: input.runId, ...whoOf(input.actor), type: 'action.refused', payload: { action: input.action, reason } }).catch(() => {});
  await recordAudit(deps.store.db, { actor: input.actor.email, actorRole: input.actor.role, action: input.action, subject: input.runId, outcome: 'refused', reason });
  throw new RunsheetError('permission', `Refused: ${reason}.`);
}

/**
 * A service account is a pipeline: its sign-off of a run it opened would be the pipeline approving
 * its own run (docs/decisions/029). Refused in the run log and the audit log.
 */
async function refuseServiceAccountOwnRun(deps: EngineDeps, input: { run: RunRecord; actor: EngineActor }): Promise<void> {
  const { run, actor } = input;
  if (actor.accountKind !== 'service' || run.createdBy !== actor.email) return;
  const reason = `a service account never signs off its own run (${actor.email} opened run ${run.id}): a person, or another account, signs off`;
  await appendRunEvent(deps.store.pool, { runId: run.id, ...whoOf(actor), type: 'action.refused', payload: { action: 'sign-off', reason } });
  await recordAudit(deps.store.db, { actor: actor.email, actorRole: actor.role, action: 'sign-off', subject: run.id, outcome: 'refused', reason });
  throw new RunsheetError('permission', `Refused: ${reason}.`);
}

/** A run by id, as stored (reading never changes it). */
export async function getRun(deps: Pick<EngineDeps, 'store'>, runId: string): Promise<RunRecord> {
  const run = await findRun(deps.store.pool, assertRunId(runId));
  if (!run) throw new RunsheetError('not_found', `No run ${assertRunId(runId)}.`);
  return run;
}

/** How far back the working-run rule looks: the newest runs of a plan on a target. */
const WORKING_RUN_LOOKBACK = 20;

/**
 * The run a plan on a target is working on now, for one kind (db/run-lifecycle.ts
 * pickWorkingRun): the plan page and the command line both ask this. Reads only.
 */
export async function workingRunFor(deps: Pick<EngineDeps, 'store'>, input: { planId: string; target: string; kind: RunKind; checksum: string }): Promise<WorkingRunChoice<RunRecord>> {
  // The rule reads summaries; only the (at most three) runs it picks are read whole.
  const runs = await findRunSummaries(deps.store.pool, { planId: input.planId, target: input.target, kind: input.kind, limit: WORKING_RUN_LOOKBACK });
  const choice = pickWorkingRun(
    runs.map((run) => ({ ...run, changedTarget: changedTarget(run) })),
    input.kind,
    input.checksum,
  );
  return wholeChoice(deps, choice);
}

/**
 * workingRunFor over the plan and target's newest runs (every kind, newest first, at most
 * `limit`) that a page read already: the same rule on the same runs, without reading them again.
 * When the list may end before the rule's lookback of this kind, the store is asked.
 */
export async function workingRunAmong(
  deps: Pick<EngineDeps, 'store'>,
  input: { runs: readonly RunSummaryRecord[]; limit: number; planId: string; target: string; kind: RunKind; checksum: string },
): Promise<WorkingRunChoice<RunRecord>> {
  const ofKind = input.runs.filter((run) => run.kind === input.kind && run.planId === input.planId && run.target === input.target);
  if (input.runs.length >= input.limit && ofKind.length < WORKING_RUN_LOOKBACK) return workingRunFor(deps, input);
  const choice = pickWorkingRun(
    ofKind.slice(0, WORKING_RUN_LOOKBACK).map((run) => ({ ...run, changedTarget: changedTarget(run) })),
    input.kind,
    input.checksum,
  );
  return wholeChoice(deps, choice);
}

async function wholeChoice(deps: Pick<EngineDeps, 'store'>, choice: WorkingRunChoice<RunSummaryRecord>): Promise<WorkingRunChoice<RunRecord>> {
  const whole = async (run: RunSummaryRecord | undefined) => (run ? findRun(deps.store.pool, run.id) : undefined);
  const [working, previous, stale] = await Promise.all([whole(choice.working), whole(choice.previous), whole(choice.stale)]);
  return { ...(working ? { working } : {}), ...(previous ? { previous } : {}), ...(stale ? { stale } : {}) };
}

/**
 * Whether any of the run's apply committed on its target: it wrote a ledger row (applied, or
 * partial when a non-transactional step committed before a failure or cancel), or the target's
 * ledger held a row of it when it was found interrupted.
 */
export function changedTarget(run: Pick<RunRecord, 'outcome'>): boolean {
  const written = run.outcome?.ledger?.written;
  return written === 'applied' || written === 'partial' || (run.outcome?.interrupted?.ledgerRows ?? []).length > 0;
}

/**
 * The working run of a plan on a target, opened from the plan as it is now when there is none:
 * its files and manifest are frozen into the run, which executes from that copy. A draft of an
 * older checksum is retired first (state 'superseded', in its log). Two processes opening at
 * once get the same run: the store allows one open run per plan, target and kind
 * (runs_one_open_per_plan), and the loser reads the winner's. Opening an execute run needs
 * 'tick'; a rehearsal needs 'rehearse'.
 *
 * The working run may be one that waits on a person (applied, interrupted, failed part-way):
 * it is handed back as it is, and acting on it is refused by its state. `newAttempt` opens a new
 * run after it instead (the way on after an interruption), unless it still holds the target.
 */
export async function openWorkingRun(
  deps: EngineDeps,
  input: { planId: string; target: string; kind: RunKind; actor: EngineActor; newAttempt?: boolean },
): Promise<{ run: RunRecord; opened: boolean }> {
  const { actor } = input;
  await authorize(deps, { actor, action: input.kind === 'rehearsal' ? 'rehearse' : 'tick', subject: `${input.planId}@${input.target}` });
  const target = deps.targets.get(input.target);
  const loaded = await requireValidPlan(deps.plansDir, input.planId);
  if (input.kind === 'rehearsal') await refuseUnrehearsablePlan(deps, loaded.plan, actor, `${loaded.id}@${target.name}`);
  const scope = { planId: loaded.id, target: target.name, kind: input.kind, checksum: loaded.checksum };
  const choice = await workingRunFor(deps, scope);
  const { working } = choice;
  if (working && (isPreparingState(working.state) || !input.newAttempt)) return { run: working, opened: false };
  if (working && isActiveState(working.state)) throw new RunsheetError('state', `Refused: run ${working.id} is ${working.state}; a new attempt starts once it ends.`);
  if (choice.stale) await supersede(deps, choice.stale, loaded.checksum);

  const follows = working ?? choice.previous;
  const frozen = freezePlan(loaded);
  let runId: string;
  try {
    runId = await inStoreTransaction(deps.store.pool, async (client) => {
      const id = await insertDraftRun(client, { planId: loaded.id, planChecksum: loaded.checksum, target: target.name, kind: input.kind, frozenPlan: frozen, createdBy: actor.email, notifyChannels: target.rules.notify });
      await appendRunEvent(client, {
        runId: id,
        ...whoOf(actor),
        type: 'run.created',
        payload: {
          planId: loaded.id,
          checksum: loaded.checksum,
          target: target.name,
          kind: input.kind,
          files: loaded.files.map((file) => ({ path: file.path, sha256: file.sha256 })),
          // A new attempt names the run it follows (an interrupted or failed one), so each links to the other.
          ...(follows ? { follows: { runId: follows.id, state: follows.state } } : {}),
        },
      });
      return id;
    });
  } catch (error) {
    if (!isUniqueViolation(error, 'runs_one_open_per_plan')) throw error;
    // Another request opened it first: work on that one.
    const winner = (await workingRunFor(deps, scope)).working;
    if (!winner) throw error;
    return { run: winner, opened: false };
  }
  await refreshReadiness(deps, runId);
  await checkpointRun(deps, runId, 'delta');
  return { run: await getRun(deps, runId), opened: true };
}

/**
 * A rehearsal the plan itself cannot take (under review, or a step that commits on its own) is
 * refused before any run is opened: nothing is left behind but the refusal in the audit log.
 */
async function refuseUnrehearsablePlan(deps: EngineDeps, plan: Plan, actor: EngineActor, subject: string): Promise<void> {
  const open = openGates(planGates(plan, 'rehearsal'));
  if (open.length === 0) return;
  await recordAudit(deps.store.db, {
    actor: actor.email,
    actorRole: actor.role,
    action: 'rehearse',
    subject,
    outcome: 'refused',
    reason: open.map((gate) => `${gate.label}: ${gate.detail}`).join('; '),
  });
  throw gateRefusal(open);
}

/** Retires a draft or ready run whose plan changed on disk since it was opened. */
async function supersede(deps: EngineDeps, run: RunRecord, checksum: string): Promise<void> {
  await transitionRun(deps.store, {
    runId: run.id,
    from: PREPARING_STATES,
    to: 'superseded',
    reason: `the plan changed on disk since this run was opened (now ${checksum.slice(0, 12)}, this run ${run.planChecksum.slice(0, 12)}): a new run follows it`,
    actor: 'system',
  });
}

async function requirePreparingRun(deps: EngineDeps, runId: string, actor: EngineActor, action: string): Promise<RunRecord> {
  const run = await getRun(deps, runId);
  if (!isPreparingState(run.state)) {
    await appendRunEvent(deps.store.pool, { runId: run.id, ...whoOf(actor), type: 'action.refused', payload: { action, reason: `the run is ${run.state}` } });
    throw new RunsheetError('state', `Refused: run ${run.id} is ${run.state}; ${action} is only possible while it is draft or ready.`);
  }
  return run;
}

/** Ticks or unticks a prerequisite (an event; the tick itself is replayed from the log). */
export async function tickPrerequisite(deps: EngineDeps, input: { runId: string; itemId: string; ticked: boolean; actor: EngineActor }): Promise<PrerequisiteTick> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'tick', runId });
  const run = await requirePreparingRun(deps, runId, input.actor, input.ticked ? 'tick' : 'untick');
  const prerequisites = thawPlan(run.frozenPlan).plan.prerequisites;
  const item = prerequisites.find((candidate) => candidate.id === input.itemId);
  if (!item) {
    throw new RunsheetError('invalid_input', `The plan has no prerequisite "${input.itemId}": use one of ${prerequisites.map((candidate) => candidate.id).join(', ') || '(none)'}.`);
  }
  const event = await inStoreTransaction(deps.store.pool, async (client) => {
    const ticked = await appendRunEvent(client, {
      runId,
      ...whoOf(input.actor),
      type: input.ticked ? 'prerequisite.ticked' : 'prerequisite.unticked',
      payload: { itemId: item.id, text: item.text, required: item.required },
    });
    if (input.ticked) await appendSignoffReadyIfDue(deps, client, run);
    return ticked;
  });
  await refreshReadiness(deps, runId);
  await checkpointRun(deps, runId, 'delta');
  return { itemId: item.id, ticked: input.ticked, by: event.actor, role: event.role, at: event.at };
}

/**
 * Ticks or unticks a success criterion that is judged by hand (one backed by checks is judged
 * from their results). Success criteria describe the outcome, so they are ticked in a run that
 * has executed (or at any time after it was opened), never to gate it.
 */
export async function tickCriterion(deps: EngineDeps, input: { runId: string; index: number; ticked: boolean; actor: EngineActor }): Promise<LoggedRunEvent> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'tick', runId });
  const run = await getRun(deps, runId);
  if (run.kind !== 'execute') throw new RunsheetError('state', 'A rehearsal has no success criteria to tick: they describe an executed run.');
  const criteria = thawPlan(run.frozenPlan).plan.success_criteria;
  const criterion = criteria[input.index];
  if (!criterion) throw new RunsheetError('invalid_input', `The plan has no success criterion #${input.index + 1} (it has ${criteria.length}).`);
  if (criterion.checks.length > 0) throw new RunsheetError('invalid_input', `Success criterion #${input.index + 1} is judged from its checks (${criterion.checks.join(', ')}), not ticked by hand.`);
  const event = await appendRunEvent(deps.store.pool, {
    runId,
    ...whoOf(input.actor),
    type: input.ticked ? 'criterion.ticked' : 'criterion.unticked',
    payload: { index: input.index, text: criterion.text },
  });
  await checkpointRun(deps, runId, 'delta');
  return event;
}

/** Runs the frozen plan's checks of a phase against the run's target, records them with the run, and logs every result. */
export async function runRunChecks(deps: EngineDeps, input: { runId: string; phase: CheckPhase; actor: EngineActor }): Promise<CheckResult[]> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'run-checks', runId });
  const run = await getRun(deps, runId);
  if (isActiveState(run.state)) throw new RunsheetError('state', `Run ${run.id} is ${run.state}: its own phases run the checks now.`);
  const thawed = thawPlan(run.frozenPlan);
  const target = deps.targets.get(run.target);
  const pool = deps.targets.pool(run.target);
  try {
    await pool.query('select 1');
  } catch (error) {
    throw new RunsheetError('unavailable', `Cannot reach target "${target.name}" (${target.displayUrl}): ${(error as Error).message}`);
  }
  const run_ = (checks: Check[]) => runChecks({ checks, sqlOf: thawed.sqlOf, target: checkTargetOf(target, { pool }, thawed.plan), phase: input.phase });
  const checks = checksOfPhase(thawed.plan, input.phase);
  // A run that resumes an earlier apply skips the pre-checks that say unless_resuming, saying why.
  const results =
    input.phase === 'pre' && thawed.plan.resumable && run.kind === 'execute' ? await runPrechecksResuming(await decideResume(deps, run), checks, run_) : await run_(checks);
  await recordRunChecks(deps, run, thawed, { phase: input.phase, results, actor: input.actor });
  if (input.phase === 'pre') await refreshReadiness(deps, runId);
  await checkpointRun(deps, runId, 'delta');
  return results;
}

/** check_results rows (with the run id) and one 'checks.ran' event carrying every result. */
export async function recordRunChecks(
  deps: EngineDeps,
  run: RunRecord,
  thawed: ThawedPlan,
  input: { phase: string; results: CheckResult[]; actor: EngineActor | { email: string; role: null } },
): Promise<void> {
  await recordCheckResults(
    deps.store.db,
    { target: run.target, planId: run.planId, planChecksum: thawed.checksum, runId: run.id, ranBy: input.actor.email },
    input.results,
  );
  await inStoreTransaction(deps.store.pool, async (client) => {
    await appendRunEvent(client, {
      runId: run.id,
      ...whoOf(input.actor),
      type: 'checks.ran',
      payload: { phase: input.phase, planChecksum: thawed.checksum, ...summarizeChecks(input.results), results: input.results.map(checkResultPayload) },
    });
    if (input.phase === 'pre') await appendSignoffReadyIfDue(deps, client, run);
  });
}

export function summarizeChecks(results: readonly CheckResult[]): { passed: boolean; failed: string[]; skipped: string[] } {
  const failed = results.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);
  return { passed: failed.length === 0, failed, skipped: results.filter((result) => result.skipped).map((result) => result.checkId) };
}

export function checkResultPayload(result: CheckResult): PayloadOf<'checks.ran'>['results'][number] {
  return {
    checkId: result.checkId,
    title: result.title,
    kind: result.kind,
    passed: result.passed,
    skipped: result.skipped,
    expected: result.expected,
    // What a query returned, made JSON-safe (dates, bigints) as the check_results row keeps it.
    actual: jsonSafe(result.actual) ?? null,
    sql: result.sql,
    error: result.error ?? null,
    reason: result.reason ?? null,
    durationMs: result.durationMs,
    ranAt: result.ranAt,
  };
}

/** Signs the run off ('signoff' event; runs.signed_off_by/at keep the latest). Four-eyes is judged at execute. */
export async function signOff(deps: EngineDeps, input: { runId: string; actor: EngineActor }): Promise<RunRecord> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'sign-off', runId });
  await refuseFromLocalCommandLine(deps, { runId, actor: input.actor, action: 'sign-off', why: 'a sign-off is the second person of four-eyes' });
  const run = await requirePreparingRun(deps, runId, input.actor, 'sign-off');
  if (run.kind !== 'execute') throw new RunsheetError('invalid_input', 'A rehearsal is not signed off: it changes nothing.');
  await refuseServiceAccountOwnRun(deps, { run, actor: input.actor });
  const result = await transitionRun(deps.store, {
    runId,
    from: PREPARING_STATES,
    reason: 'signed off',
    ...whoOf(input.actor),
    set: { signedOffBy: input.actor.email, signedOffAt: 'now' },
    events: [{ type: 'signoff', payload: { checksum: run.planChecksum } }],
  });
  if (!result.changed) throw new RunsheetError('state', `Refused: run ${runId} is ${result.state ?? 'gone'}.`);
  await refreshReadiness(deps, runId);
  await checkpointRun(deps, runId, 'delta');
  return getRun(deps, runId);
}

const MAX_NOTE_LENGTH = 10_000;

/** A note in the run log (the runbook's "Issues encountered"), at any state. */
export async function addNote(deps: EngineDeps, input: { runId: string; actor: EngineActor; text: string }): Promise<LoggedRunEvent> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'add-note', runId });
  await getRun(deps, runId);
  const text = input.text.trim();
  if (text === '') throw new RunsheetError('invalid_input', 'A note needs some text.');
  if (text.length > MAX_NOTE_LENGTH) throw new RunsheetError('invalid_input', `A note is at most ${MAX_NOTE_LENGTH} characters.`);
  const event = await appendRunEvent(deps.store.pool, { runId, ...whoOf(input.actor), type: 'note.added', payload: { text } });
  await checkpointRun(deps, runId, 'delta');
  return event;
}

/**
 * draft ↔ ready: ready when every gate is closed except those judged only at execute (the typed
 * name, the executor's four-eyes). Recomputed after each tick, pre-check run, sign-off and
 * waiver; execute judges every gate again anyway.
 */
export async function refreshReadiness(deps: EngineDeps, runId: string): Promise<{ state: RunState; gates: Gate[] }> {
  const run = await getRun(deps, runId);
  if (!isPreparingState(run.state)) return { state: run.state, gates: [] };
  const gates = await evaluateGates(deps, run);
  const open = openGates(gates, { includeAtExecute: false });
  const wanted: RunState = open.length === 0 ? 'ready' : 'draft';
  if (wanted === run.state) return { state: run.state, gates };
  const reason = wanted === 'ready' ? 'every gate judged before execute is closed' : `open gates: ${open.map((gate) => gate.id).join(', ')}`;
  const result = await transitionRun(deps.store, {
    runId,
    from: [run.state],
    to: wanted,
    reason,
    actor: 'system',
    details: { openGates: open.map((gate) => ({ id: gate.id, detail: gate.detail })) },
  });
  return { state: result.changed ? wanted : (result.state ?? run.state), gates };
}

export interface RunDetail {
  run: RunRecord;
  plan: ThawedPlan['plan'];
  ticks: Record<string, PrerequisiteTick>;
  /** Success criteria ticked by hand, by their index in the plan. */
  criteriaTicks: Record<number, { ticked: boolean; by: string; at: string }>;
  signoffs: { by: string; role: string | null; at: string }[];
  events: RunEvent[];
  /** Every check result recorded in this run, oldest first. */
  checkResults: CheckResultRow[];
  /** Present when asked for (they read the plan folder and the target). */
  gates?: Gate[];
}

/** Everything the run page shows. Reads only. */
export async function readRunDetail(deps: EngineDeps, runId: string, options: { gates?: boolean; executor?: string; preparationOnly?: boolean; /** The run as the caller just read it. */ run?: RunRecord } = {}): Promise<RunDetail> {
  const run = options.run && options.run.id === runId ? options.run : await getRun(deps, runId);
  // A page about preparation (ticks, sign-offs, waivers, notes) needs only those events, not a backfill's thousands.
  const [events, checkResults] = await Promise.all([
    readRunEvents(deps.store.pool, run.id, options.preparationOnly ? { types: PREPARATION_EVENT_TYPES } : {}),
    readRunCheckResults(deps.store.db, run.id),
  ]);
  const gates = options.gates && isPreparingState(run.state) ? await evaluateGates(deps, run, { events, executor: options.executor }) : undefined;
  return {
    run,
    plan: thawPlan(run.frozenPlan).plan,
    ticks: Object.fromEntries(ticksFromEvents(events)),
    criteriaTicks: Object.fromEntries(criteriaTicksFromEvents(events)),
    signoffs: signoffsFromEvents(events),
    events,
    checkResults,
    ...(gates ? { gates } : {}),
  };
}

