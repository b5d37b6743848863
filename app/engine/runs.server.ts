/**
 * Runs before they execute: create one from the plan as it is now (frozen), tick its
 * prerequisites, run its checks, sign it off, add notes; read runs and their detail. Every
 * change is a run event; ticks are replayed from the events, never kept in a column.
 */
import { recordAudit } from '../audit/audit-log.server';
import { roleCan, type Permission } from '../auth/permissions';
import { requireValidPlan } from '../checks/plan-checks.server';
import { recordCheckResults, runChecks, type CheckResult } from '../checks/run-checks.server';
import { checksOfPhase, type CheckPhase } from '../plans/plan-schema';
import { appendRunEvent, assertRunId, inStoreTransaction, readRunEvents, type RunEvent } from '../runs/run-log.server';
import type { RunKind, RunState } from '../../db/schema/index';
import { markInterruptedRuns } from './crash-recovery.server';
import { type EngineActor, type EngineDeps, type Gate } from './engine-deps.server';
import { freezePlan, thawPlan, type ThawedPlan } from './frozen-plan.server';
import { evaluateGates, openGates, signoffsFromEvents, ticksFromEvents, type PrerequisiteTick } from './gates.server';
import { isActiveState, jsonPayload, selectRun, selectRuns, transitionRun, type RunRecord } from './run-store.server';
import { RunsheetError } from '../runtime/errors';

/** States in which a run is still being prepared (ticks, checks, sign-off). */
export const PREPARING_STATES = ['draft', 'ready'] as const satisfies readonly RunState[];

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
    ? await appendRunEvent(deps.store.pool, { runId: input.runId, actor: actor.email, role: actor.role, type: 'action.refused', payload: { action, reason } }).then(
        () => true,
        () => false, // no such run: the audit log records the refusal instead
      )
    : false;
  if (!logged) {
    await recordAudit(deps.store.db, { actor: actor.email, actorRole: actor.role, action, subject: input.subject ?? input.runId ?? null, outcome: 'refused', reason });
  }
  throw new RunsheetError('permission', `Refused: ${actor.email} (${actor.role}) may not ${action}.`);
}

/** A run by id. Reading an active run whose heartbeat is stale first settles whether it was interrupted. */
export async function getRun(deps: EngineDeps, runId: string): Promise<RunRecord> {
  const id = assertRunId(runId);
  let run = await selectRun(deps.store.pool, id);
  if (!run) throw new RunsheetError('not_found', `No run ${id}.`);
  if (isActiveState(run.state)) {
    await markInterruptedRuns(deps, { runId: id });
    run = (await selectRun(deps.store.pool, id))!;
  }
  return run;
}

export interface RunFilter {
  planId?: string;
  target?: string;
  kind?: RunKind;
  states?: readonly RunState[];
  limit?: number;
}

/** Runs, newest first. */
export async function listRuns(deps: EngineDeps, filter: RunFilter = {}): Promise<RunRecord[]> {
  return selectRuns(
    deps.store.pool,
    `where ($1::text is null or plan_id = $1) and ($2::text is null or target = $2) and ($3::text is null or kind = $3)
       and ($4::text[] is null or state = any($4)) order by created_at desc, id limit $5`,
    [filter.planId ?? null, filter.target ?? null, filter.kind ?? null, filter.states ? [...filter.states] : null, filter.limit ?? 100],
  );
}

/** The newest draft or ready run of a plan on a target (of `checksum`, when given): the command line's "the open run". */
export async function openRunFor(deps: EngineDeps, input: { planId: string; target: string; kind: RunKind; checksum?: string }): Promise<RunRecord | undefined> {
  const [run] = await selectRuns(
    deps.store.pool,
    `where plan_id = $1 and target = $2 and kind = $3 and state in ('draft', 'ready') and ($4::text is null or plan_checksum = $4)
     order by created_at desc, id limit 1`,
    [input.planId, input.target, input.kind, input.checksum ?? null],
  );
  return run;
}

/**
 * Opens a run of the plan as it is now on a target: its files and manifest are frozen into the
 * run, which executes from that copy. Opening an execute run is where ticking starts ('tick');
 * a rehearsal needs 'rehearse'.
 */
export async function createRun(deps: EngineDeps, input: { planId: string; target: string; kind: RunKind; actor: EngineActor }): Promise<RunRecord> {
  const { actor } = input;
  await authorize(deps, { actor, action: input.kind === 'rehearsal' ? 'rehearse' : 'tick', subject: `${input.planId}@${input.target}` });
  const target = deps.targets.get(input.target);
  const loaded = await requireValidPlan(deps.plansDir, input.planId);
  const frozen = freezePlan(loaded);
  const runId = await inStoreTransaction(deps.store.pool, async (client) => {
    const { rows } = await client.query<{ id: string }>(
      `insert into runs (plan_id, plan_checksum, target, kind, state, frozen_plan, created_by)
       values ($1, $2, $3, $4, 'draft', $5::jsonb, $6) returning id::text as id`,
      [loaded.id, loaded.checksum, target.name, input.kind, JSON.stringify(frozen), actor.email],
    );
    const id = rows[0]!.id;
    await appendRunEvent(client, {
      runId: id,
      actor: actor.email,
      role: actor.role,
      type: 'run.created',
      payload: { planId: loaded.id, checksum: loaded.checksum, target: target.name, kind: input.kind, files: loaded.files.map((file) => ({ path: file.path, sha256: file.sha256 })) },
    });
    return id;
  });
  await refreshReadiness(deps, runId);
  return (await selectRun(deps.store.pool, runId))!;
}

async function requirePreparingRun(deps: EngineDeps, runId: string, actor: EngineActor, action: string): Promise<RunRecord> {
  const run = await getRun(deps, runId);
  if (!(PREPARING_STATES as readonly RunState[]).includes(run.state)) {
    await appendRunEvent(deps.store.pool, { runId: run.id, actor: actor.email, role: actor.role, type: 'action.refused', payload: { action, reason: `the run is ${run.state}` } });
    throw new RunsheetError('state', `Refused: run ${run.id} is ${run.state}; ${action} is only possible while it is draft or ready.`);
  }
  return run;
}

/** Ticks or unticks a prerequisite (an event; the tick itself is replayed from the log). */
export async function tickPrerequisite(deps: EngineDeps, input: { runId: string; itemId: string; ticked: boolean; actor: EngineActor }): Promise<PrerequisiteTick> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'tick', runId });
  const run = await requirePreparingRun(deps, runId, input.actor, input.ticked ? 'tick' : 'untick');
  const item = thawPlan(run.frozenPlan).plan.prerequisites.find((candidate) => candidate.id === input.itemId);
  if (!item) {
    const known = thawPlan(run.frozenPlan).plan.prerequisites.map((candidate) => candidate.id);
    throw new RunsheetError('invalid_input', `The plan has no prerequisite "${input.itemId}": use one of ${known.join(', ') || '(none)'}.`);
  }
  const event = await appendRunEvent(deps.store.pool, {
    runId,
    actor: input.actor.email,
    role: input.actor.role,
    type: input.ticked ? 'prerequisite.ticked' : 'prerequisite.unticked',
    payload: { itemId: item.id, text: item.text, required: item.required },
  });
  await refreshReadiness(deps, runId);
  return { itemId: item.id, ticked: input.ticked, by: event.actor, role: event.role, at: event.at };
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
  const results = await runChecks({
    checks: checksOfPhase(thawed.plan, input.phase),
    sqlOf: thawed.sqlOf,
    target: { name: target.name, pool, apiUrl: target.apiUrl, apiToken: target.apiToken },
    phase: input.phase,
  });
  await recordRunChecks(deps, run, thawed, { phase: input.phase, results, actor: input.actor });
  if (input.phase === 'pre') await refreshReadiness(deps, runId);
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
  await appendRunEvent(deps.store.pool, {
    runId: run.id,
    actor: input.actor.email,
    role: input.actor.role,
    type: 'checks.ran',
    payload: jsonPayload({ phase: input.phase, planChecksum: thawed.checksum, ...summarizeChecks(input.results), results: input.results.map(checkResultPayload) }),
  });
}

export function summarizeChecks(results: readonly CheckResult[]): { passed: boolean; failed: string[]; skipped: string[] } {
  const failed = results.filter((result) => !result.passed && !result.skipped).map((result) => result.checkId);
  return { passed: failed.length === 0, failed, skipped: results.filter((result) => result.skipped).map((result) => result.checkId) };
}

function checkResultPayload(result: CheckResult) {
  return {
    checkId: result.checkId,
    title: result.title,
    kind: result.kind,
    passed: result.passed,
    skipped: result.skipped,
    expected: result.expected,
    actual: result.actual,
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
  const run = await requirePreparingRun(deps, runId, input.actor, 'sign-off');
  if (run.kind !== 'execute') throw new RunsheetError('invalid_input', 'A rehearsal is not signed off: it changes nothing.');
  const result = await transitionRun(deps.store, {
    runId,
    from: PREPARING_STATES,
    reason: 'signed off',
    actor: input.actor.email,
    role: input.actor.role,
    set: { signedOffBy: input.actor.email, signedOffAt: 'now' },
    events: [{ type: 'signoff', payload: { checksum: run.planChecksum } }],
  });
  if (!result.changed) throw new RunsheetError('state', `Refused: run ${runId} is ${result.state ?? 'gone'}.`);
  await refreshReadiness(deps, runId);
  return (await selectRun(deps.store.pool, runId))!;
}

const MAX_NOTE_LENGTH = 10_000;

/** A note in the run log (the runbook's "Issues encountered"), at any state. */
export async function addNote(deps: EngineDeps, input: { runId: string; actor: EngineActor; text: string }): Promise<RunEvent> {
  const runId = assertRunId(input.runId);
  await authorize(deps, { actor: input.actor, action: 'add-note', runId });
  await getRun(deps, runId);
  const text = input.text.trim();
  if (text === '') throw new RunsheetError('invalid_input', 'A note needs some text.');
  if (text.length > MAX_NOTE_LENGTH) throw new RunsheetError('invalid_input', `A note is at most ${MAX_NOTE_LENGTH} characters.`);
  return appendRunEvent(deps.store.pool, { runId, actor: input.actor.email, role: input.actor.role, type: 'note.added', payload: { text } });
}

/**
 * draft ↔ ready: ready when every gate is closed except those judged only at execute (the typed
 * name, the executor's four-eyes). Recomputed after each tick, pre-check run and sign-off; execute
 * judges every gate again anyway.
 */
export async function refreshReadiness(deps: EngineDeps, runId: string): Promise<{ state: RunState; gates: Gate[] }> {
  const run = await selectRun(deps.store.pool, runId);
  if (!run) throw new RunsheetError('not_found', `No run ${runId}.`);
  if (!(PREPARING_STATES as readonly RunState[]).includes(run.state)) return { state: run.state, gates: [] };
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
  signoffs: { by: string; role: string | null; at: string }[];
  events: RunEvent[];
  /** Every check result recorded in this run, oldest first. */
  checkResults: {
    checkId: string;
    phase: string;
    kind: string;
    passed: boolean;
    skipped: boolean;
    expected: unknown;
    actual: unknown;
    sql: string | null;
    error: unknown;
    durationMs: number;
    ranAt: string;
    ranBy: string | null;
    planChecksum: string;
  }[];
  /** Present when asked for (they read the plan folder and the target). */
  gates?: Gate[];
}

/** Everything the run page shows. */
export async function readRunDetail(deps: EngineDeps, runId: string, options: { gates?: boolean; executor?: string } = {}): Promise<RunDetail> {
  const run = await getRun(deps, runId);
  const events = await readRunEvents(deps.store.pool, run.id);
  const { rows } = await deps.store.pool.query<RunDetail['checkResults'][number] & { ranAtDate: Date }>(
    `select check_id as "checkId", phase, kind, passed, skipped, expected, actual, sql_text as sql, error,
            duration_ms as "durationMs", ran_at as "ranAtDate", ran_by as "ranBy", plan_checksum as "planChecksum"
       from check_results where run_id = $1 order by ran_at, id`,
    [run.id],
  );
  const gates = options.gates && (PREPARING_STATES as readonly RunState[]).includes(run.state) ? await evaluateGates(deps, run, { events, executor: options.executor }) : undefined;
  return {
    run,
    plan: thawPlan(run.frozenPlan).plan,
    ticks: Object.fromEntries(ticksFromEvents(events)),
    signoffs: signoffsFromEvents(events),
    events,
    checkResults: rows.map(({ ranAtDate, ...row }) => ({ ...row, ranAt: ranAtDate.toISOString() })),
    ...(gates ? { gates } : {}),
  };
}
