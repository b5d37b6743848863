/**
 * The plan page's model: the checklist of one plan on one target, top to bottom in the seed's
 * order, and what each of its form intents does. The route stays a few lines: it guards, parses
 * the form and calls these functions; every change goes through the engine (app/engine/), which
 * records it in the run's log.
 *
 * Which run the page works on is the engine's workingRunFor (the lifecycle's one rule, the same
 * the command line uses): the newest execute run while it still has something to do. A run that
 * rolled back or failed cleanly is history: the next tick or pre-check opens a new run.
 */
import { fillTeamMessage, teamMessageValues } from '../plans/team-messages';
import { checksOfPhase, CHECK_PHASES, type Check, type CheckPhase, type Plan } from '../plans/plan-schema';
import type { ValidPlan } from '../plans/load-plans.server';
import { readPlanOnTarget, type Aged, type LatestCheckResult } from '../plans/plan-on-target.server';
import { refreshPlanFacts } from '../plans/plan-overview.server';
import { runPlanChecks } from '../checks/plan-checks.server';
import { readCheckResultSql } from '../checks/run-checks.server';
import { expectationOf } from '../checks/object-expectation';
import { roleCan } from '../accounts/permissions';
import type { SignedInUser } from '../auth/require.server';
import type { LoggedRunEvent } from '../runs/run-log.server';
import type { EngineDeps } from '../engine/engine-deps.server';
import { isoOf } from '../runtime/format';
import type { SchemaFacts } from '../targets/schema-facts.server';
import type { TargetFacts } from '../targets/target-facts.server';
import type { Target } from '../targets/targets.server';
import type { TargetRules } from '../runtime/target-config';
import { blocksLintGate, type LintFinding } from '../plans/lint-plan.server';
import { lintWaiversFromEvents, waiverFor } from '../engine/lint-waivers.server';
import { formatUtc } from '../runtime/format';
import { cancelRequestedMessage, cancelRun, executeRun, rehearseRun, rollbackRun } from '../engine/engine.server';
import { addNote, authorize, openWorkingRun, readRunDetail, runRunChecks, signOff, tickCriterion, tickPrerequisite, workingRunAmong, workingRunFor, type RunDetail } from '../engine/runs.server';
import { evaluateGates, openGates, planGates } from '../engine/gates.server';
import { previewRollback, type RollbackPreview } from '../engine/rollback-preview.server';
import { waiveLintFinding } from '../engine/waive-lint.server';
import { endWatch, extendWatch } from '../engine/watch.server';
import { restorableRunFor, restoreRun } from '../engine/restore.server';
import { WATCH_EVENT_TYPES, watchStripOf, type WatchStrip } from '../runs/watch-strip';
import { readRunEventsOfTypes } from '../runs/run-log.server';
import { DurationSchema } from '../runtime/duration';
import { formatSpan } from '../runtime/format';
import { isWatchRunningState } from '../../db/run-lifecycle';
import { stepKindOf } from '../steps/step-kinds.server';
import { ACTIVE_RUN_STATES, isActiveState, isAppliedState, isPreparingState, mayRollBackFrom } from '../../db/run-lifecycle';
import { type Gate } from '../engine/engine-deps.server';
import { findRunSummaries, type RunRecord, type RunSummaryRecord } from '../runs/run-store.server';
import { DRIVE_EVENTS, eventsOf, type DriveAction } from '../runs/run-events';
import type { RunState } from '../../db/run-lifecycle';
import { actorOf } from './actor.server';
import { refusalOf, type IntentOutcome } from './http-answers.server';
import { PAGE_SANDBOX_USERS } from './sandbox-reset.server';
import { isRunsheetError } from '../runtime/errors';

/** What the page reads and acts on: the engine's dependencies, nothing of the web server. */
export type ChecklistDeps = EngineDeps;

// ---------------------------------------------------------------------------------------------
// The page

export interface RunSummary {
  id: string;
  kind: 'execute' | 'rehearsal';
  state: string;
  planChecksum: string;
  createdBy: string;
  createdAt: string;
  signedOffBy: string | null;
  signedOffAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  executedBy: string | null;
  verified: boolean | null;
  postExecutionPassed: boolean | null;
  /** The failed statement, when the run (or its rollback) failed on one. */
  failure: { stepId: string; line: number; sqlstate?: string; message: string } | null;
}

export interface PrerequisiteView {
  id: string;
  text: string;
  required: boolean;
  details: string[];
  tick: { ticked: boolean; by: string; role: string | null; at: string } | null;
  /** The pre-check that backs the item, with its result in the working run. */
  check: { id: string; title: string; status: string } | null;
}

export interface CheckRow {
  id: string;
  title: string;
  kind: string;
  expect: { type: string } & Record<string, unknown>;
}

/** A result as the page shows it: its SQL is fetched on demand (readCheckSql), never in the first answer. */
export type ShownCheckResult = Omit<LatestCheckResult, 'sql'> & { hasSql: boolean };

export interface CheckSection {
  phase: CheckPhase;
  title: string;
  checks: CheckRow[];
  results: Record<string, ShownCheckResult>;
  /** Where the results come from: this run, or the newest on the target (no working run). */
  source: 'run' | 'target';
}

export interface GateView extends Gate {
  /** Who or what the gate waits on, in words ("a TPM ticks them", "the executor types the name"). */
  waitsOn: string;
}

export interface CriterionView {
  index: number;
  text: string;
  /** Backed by checks: judged from their results; otherwise ticked by hand (in the run log). */
  checks: { id: string; status: string }[];
  status: string;
  manual: { ticked: boolean; by: string; at: string } | null;
}

export interface TeamMessageView {
  notify: string[];
  text: string;
  /** Placeholders not known yet (e.g. {{executor}} before anyone executed). */
  unfilled: string[];
}

export interface StepperItem {
  id: 'prerequisites' | 'prechecks' | 'execute' | 'verify' | 'post' | 'report';
  label: string;
  status: 'done' | 'current' | 'waiting' | 'blocked' | 'failed';
  detail: string;
  anchor: string;
}

export interface ChecklistView {
  plan: {
    id: string;
    title: string;
    summary?: string;
    source?: string;
    created?: string;
    checksum: string;
    /** Each finding, whether the target's lint-clean gate counts it, and its waiver in the working run. */
    lint: (LintFinding & { gateCounts: boolean; waiver: { by: string; reason: string; at: string } | null })[];
    apply: { id: string; title: string; file: string; transactional: boolean; lockTimeoutMs: number; statementTimeoutMs: number; how: string }[];
    rollbackSteps: { id: string; title: string; file: string }[];
    estimated: Plan['estimated_duration'];
    risk: Plan['risk'];
    notes: Plan['notes'];
    /** review: pending in plan.yaml (an imported or new plan): the review gate refuses execute and rehearse. */
    underReview: boolean;
    /** Whether the plan itself allows a rehearsal (the gates judged from the plan alone), and why not. */
    rehearsal: { allowed: boolean; reason: string | null };
    /** The plan has a sandbox.sql that a sandbox reset applies. */
    sandboxFixture: boolean;
  };
  target: { name: string; label: string; displayUrl: string; rules: TargetRules };
  targets: { name: string; label: string }[];
  planState: {
    state: string;
    reason: string;
    /** The schema facts are older than the latest change: being read again (the page revalidates). */
    rereading: boolean;
    ledgerError?: string;
    ledger?: { runId?: string; checksum?: string; by?: string; at?: string; partial: boolean };
  };
  targetFacts?: Aged<TargetFacts>;
  schemaFacts?: Aged<SchemaFacts>;
  run: RunSummary | null;
  previousRun: RunSummary | null;
  /** What rolling back the working run would do, and whether the rollback gate accepts it now (null: no run a rollback may start from). */
  rollback: RollbackPreview | null;
  /** The way on after a run that ended without something to roll back (interrupted, failed or cancelled cleanly), or one left part-way. */
  newAttempt: { after: RunSummary; why: string } | null;
  /** A draft opened under an older checksum: the next tick opens a new run. */
  staleDraft: RunSummary | null;
  rehearsal: RunSummary | null;
  /** Another plan's run holding this target now. */
  otherActive: { id: string; planId: string; state: string; kind: string } | null;
  recentRuns: RunSummary[];
  prerequisites: PrerequisiteView[];
  sections: Record<CheckPhase, CheckSection>;
  gates: GateView[] | null;
  signoffs: { by: string; role: string | null; at: string }[];
  successCriteria: CriterionView[];
  /** Each message the plan words, filled from the run's facts; post and rollback only once that happened. */
  teamMessages: { pre?: TeamMessageView; post?: TeamMessageView; rollback?: TeamMessageView };
  issues: { seq: number; at: string; actor: string; role: string | null; text: string }[];
  stepper: StepperItem[];
  /** The working run's watch window (docs/decisions/030): its strip, and whether its checks still run. */
  watch: { runId: string; strip: WatchStrip; running: boolean; nowIso: string } | null;
  /** A rolled-back run's copies that a restore could put back into the working run (docs/decisions/031). */
  restore: { runId: string; fromRunId: string; backups: string[] } | null;
  /** Something the page shows could not be read now (the target's ledger, a gate's ledger of another target): the page says so, and is not kept (docs/decisions/035). */
  readFailed: boolean;
  may: Record<'tick' | 'runChecks' | 'signOff' | 'addNote' | 'waiveLint' | 'execute' | 'rehearse' | 'rollback' | 'cancel' | 'resetSandbox' | 'endWatch' | 'restore', boolean>;
  /** How many users a reset from this page generates. */
  sandboxResetUsers: number;
}

const SECTION_TITLES: Record<CheckPhase, string> = {
  pre: 'Pre-checks',
  snapshot: 'Snapshot',
  verify: 'Verification',
  post: 'Post-execution validation',
  rollback: 'Rollback verification',
};

/** The plan's targets, and the one asked for (the first, sandbox, by default). */
export function resolveChecklistTarget(deps: Pick<ChecklistDeps, 'targets'>, targetName: string | null): { target?: Target; targets: Target[] } {
  const targets = deps.targets.list();
  return { target: targetName ? targets.find((candidate) => candidate.name === targetName) : targets[0], targets };
}

/** The plan and target's newest runs the page reads: its history list, and the working-run rule's input. */
const RUNS_READ = 20;

export async function loadChecklist(deps: ChecklistDeps, input: { plan: ValidPlan; target: Target; targets: Target[]; user: SignedInUser }): Promise<ChecklistView> {
  const { plan: loaded, target, user } = input;
  const plan = loaded.plan;
  const runs = await findRunSummaries(deps.store.pool, { planId: loaded.id, target: target.name, limit: RUNS_READ });
  const { working, previous, stale: staleDraft } = await workingRunAmong(deps, { runs, limit: RUNS_READ, planId: loaded.id, target: target.name, kind: 'execute', checksum: loaded.checksum });
  const rehearsal = runs.find((run) => run.kind === 'rehearsal') ?? null;
  const mayExecute = roleCan(user.role, 'execute');

  const [detail, onTarget, otherActive, rollback] = await Promise.all([
    working ? readRunDetail(deps, working.id, { gates: true, executor: mayExecute ? user.email : undefined, preparationOnly: true, run: working }) : Promise.resolve(undefined),
    readPlanOnTarget(deps, loaded, target),
    findRunSummaries(deps.store.pool, { target: target.name, states: ACTIVE_RUN_STATES, limit: 5 }).then((active) => active.find((run) => run.planId !== loaded.id)),
    working && mayRollBackFrom(working.state) ? previewRollback(deps, working) : Promise.resolve(null),
  ]);

  // Facts read before the latest change are never judged: readPlanOnTarget reads them again in the background.
  const { schemaFacts, targetFacts, state: planState } = onTarget;

  const events = detail?.events ?? [];
  const waivers = lintWaiversFromEvents(events, loaded.checksum);
  const runResults = detail ? latestRunResults(detail) : undefined;
  const sections = Object.fromEntries(
    CHECK_PHASES.map((phase) => [
      phase,
      {
        phase,
        title: SECTION_TITLES[phase],
        checks: checksOfPhase(plan, phase).map(checkRow),
        results: runResults ? pick(runResults, checksOfPhase(plan, phase)) : pick(onTarget.results, checksOfPhase(plan, phase)),
        source: runResults ? 'run' : 'target',
      } satisfies CheckSection,
    ]),
  ) as Record<CheckPhase, CheckSection>;
  const allResults: Record<string, ShownCheckResult> = Object.assign({}, ...CHECK_PHASES.map((phase) => sections[phase].results));

  const prerequisites: PrerequisiteView[] = plan.prerequisites.map((item) => {
    const tick = detail?.ticks[item.id];
    const backing = item.check ? plan.prechecks.find((check) => check.id === item.check) : undefined;
    return {
      id: item.id,
      text: item.text,
      required: item.required,
      details: item.details,
      tick: tick ? { ticked: tick.ticked, by: tick.by, role: tick.role, at: tick.at } : null,
      check: backing ? { id: backing.id, title: backing.title, status: resultStatus(sections.pre.results[backing.id], loaded.checksum) } : null,
    };
  });

  const gates = detail?.gates ? detail.gates.map((gate) => ({ ...gate, waitsOn: waitsOn(gate, target) })) : null;
  const runSummary = working ? summarize(detail?.run ?? working) : null;
  const logRun = working ?? previous;
  const logDetail = working ? detail : previous ? await readRunDetail(deps, previous.id, { preparationOnly: true, run: previous }) : undefined;
  const logEvents = logDetail?.events ?? [];

  const criteria = successCriteria(plan, allResults, loaded.checksum, logDetail?.criteriaTicks ?? {});
  // The page's run detail holds preparation events only: the watch's are read on their own.
  const strip = working && (isWatchRunningState(working.state) || working.state === 'watched') ? watchStripOf(await readRunEventsOfTypes(deps.store.db, { runId: working.id, types: WATCH_EVENT_TYPES })) : null;
  const restorable = working && isAppliedState(working.state) ? await restorableRunFor(deps, working) : undefined;
  const rehearsalRefused = openGates(planGates(plan, 'rehearsal'));
  const ledger = onTarget.ledger;
  const view: ChecklistView = {
    plan: {
      id: loaded.id,
      title: plan.title,
      summary: plan.summary,
      source: plan.source,
      created: plan.created,
      checksum: loaded.checksum,
      lint: loaded.lint.map((finding) => {
        const waiver = waiverFor(finding, waivers);
        return { ...finding, gateCounts: target.rules.require_lint_clean && blocksLintGate(finding, plan.lint_gate), waiver: waiver ? { by: waiver.by, reason: waiver.reason, at: waiver.at } : null };
      }),
      apply: plan.apply.map((step) => ({
        id: step.id,
        title: step.title,
        file: step.file,
        transactional: step.transactional,
        lockTimeoutMs: step.lock_timeout,
        statementTimeoutMs: step.statement_timeout,
        how: stepKindOf(step).describe(step),
      })),
      rollbackSteps: plan.rollback.steps.map((step) => ({ id: step.id, title: step.title, file: step.file })),
      estimated: plan.estimated_duration,
      risk: plan.risk,
      notes: plan.notes,
      underReview: plan.review === 'pending',
      rehearsal: { allowed: rehearsalRefused.length === 0, reason: rehearsalRefused.length === 0 ? null : rehearsalRefused.map((gate) => gate.detail).join('; ') },
      sandboxFixture: loaded.sandboxFixture !== undefined,
    },
    target: { name: target.name, label: target.label, displayUrl: target.displayUrl, rules: target.rules },
    targets: input.targets.map((candidate) => ({ name: candidate.name, label: candidate.label })),
    planState: {
      state: planState.state,
      reason: planState.reason,
      rereading: planState.rereading,
      ...(onTarget.ledgerError ? { ledgerError: onTarget.ledgerError } : {}),
      ...(ledger ? { ledger: { runId: ledger.runId, checksum: ledger.checksum, by: ledger.by, at: ledger.at, partial: ledger.partial !== undefined } } : {}),
    },
    targetFacts,
    schemaFacts,
    run: runSummary,
    previousRun: previous ? summarize(previous) : null,
    rollback,
    newAttempt: newAttemptOffer(working, previous, plan.resumable),
    staleDraft: staleDraft ? summarize(staleDraft) : null,
    rehearsal: rehearsal ? summarize(rehearsal) : null,
    otherActive: otherActive ? { id: otherActive.id, planId: otherActive.planId, state: otherActive.state, kind: otherActive.kind } : null,
    recentRuns: runs.slice(0, 8).map(summarize),
    prerequisites,
    sections,
    gates,
    signoffs: detail?.signoffs ?? [],
    successCriteria: criteria,
    teamMessages: teamMessages(plan, { target, checksum: logRun?.planChecksum ?? loaded.checksum, run: logRun }),
    issues: eventsOf(logEvents, 'note.added').map((event) => ({ seq: event.seq, at: event.at, actor: event.actor, role: event.role, text: event.payload.text })),
    stepper: [],
    // The ledger gates say "cannot read the ledger of …" when a target did not answer (gates.server.ts).
    readFailed: Boolean(onTarget.ledgerError) || (gates ?? []).some((gate) => gate.detail.startsWith('cannot read the ledger')),
    may: {
      tick: roleCan(user.role, 'tick'),
      runChecks: roleCan(user.role, 'run-checks'),
      signOff: roleCan(user.role, 'sign-off'),
      addNote: roleCan(user.role, 'add-note'),
      waiveLint: mayExecute,
      execute: mayExecute,
      rehearse: roleCan(user.role, 'rehearse'),
      rollback: roleCan(user.role, 'rollback'),
      cancel: roleCan(user.role, 'cancel'),
      resetSandbox: roleCan(user.role, 'reset-sandbox') && target.rules.sandbox,
      endWatch: roleCan(user.role, 'end-watch'),
      restore: roleCan(user.role, 'restore'),
    },
    watch: working && strip ? { runId: working.id, strip, running: isWatchRunningState(working.state) && strip.ended === null, nowIso: new Date().toISOString() } : null,
    restore: working && restorable ? { runId: working.id, fromRunId: restorable.id, backups: (restorable.outcome?.rollback?.backups ?? []).map((copy) => copy.backupTable) } : null,
    sandboxResetUsers: PAGE_SANDBOX_USERS,
  };
  view.stepper = stepper(view);
  return view;
}

/**
 * When the page offers a new attempt: after a run that ended with nothing to undo (it is history:
 * the next tick opens a new run anyway, this says so and links it), or beside a run left
 * part-way (failed, cancelled or interrupted after something committed: roll back, or go on).
 */
function newAttemptOffer(working: RunRecord | undefined, previous: RunRecord | undefined, resumable: boolean): ChecklistView['newAttempt'] {
  if (!working && previous && (previous.state === 'interrupted' || previous.state === 'failed' || previous.state === 'cancelled')) {
    const why = {
      interrupted: 'the process driving it stopped before anything committed',
      failed: 'it failed and its transaction rolled back',
      cancelled: 'it was cancelled before anything committed',
    }[previous.state];
    return { after: summarize(previous), why: `Run ${previous.id.slice(0, 8)} is ${previous.state}: ${why}. A new attempt is a new run: its preparation starts fresh.` };
  }
  if (working && (working.state === 'failed' || working.state === 'cancelled' || working.state === 'interrupted')) {
    return {
      after: summarize(working),
      why: `Run ${working.id.slice(0, 8)} is ${working.state} with part of its apply committed: roll it back, or start a new attempt that goes on from there (${resumable ? 'the plan is resumable: a new attempt of the same checksum starts at the first step not completed, and skips the pre-checks that say unless_resuming' : 'a batched backfill resumes after its last committed key'}).`,
    };
  }
  return null;
}

function summarize(run: RunSummaryRecord): RunSummary {
  const outcome = run.outcome;
  const failure = outcome?.rollback?.failure ?? outcome?.failure;
  return {
    id: run.id,
    kind: run.kind,
    state: run.state,
    planChecksum: run.planChecksum,
    createdBy: run.createdBy,
    createdAt: isoOf(run.createdAt),
    signedOffBy: run.signedOffBy,
    signedOffAt: isoOf(run.signedOffAt),
    startedAt: isoOf(run.startedAt),
    finishedAt: isoOf(run.finishedAt),
    executedBy: run.executedBy,
    verified: outcome?.verified ?? null,
    postExecutionPassed: outcome?.postExecution ? outcome.postExecution.passed : null,
    failure: failure ? { stepId: failure.stepId, line: failure.line, ...(failure.sqlstate ? { sqlstate: failure.sqlstate } : {}), message: failure.message } : null,
  };
}

function checkRow(check: Check): CheckRow {
  return { id: check.id, title: check.title, kind: check.kind, expect: expectationOf(check) as CheckRow['expect'] };
}

function pick(results: Record<string, LatestCheckResult>, checks: Check[]): Record<string, ShownCheckResult> {
  return Object.fromEntries(
    checks
      .filter((check) => results[check.id])
      .map((check) => {
        const { sql, ...shown } = results[check.id]!;
        return [check.id, { ...shown, hasSql: sql !== null && sql !== '' }];
      }),
  );
}

/** The SQL one of the plan's stored check results ran, for the page's on-demand disclosure; undefined when the plan has no such result. */
export async function readCheckSql(deps: Pick<ChecklistDeps, 'store'>, input: { planId: string; resultId: number }): Promise<{ resultId: number; checkId: string; planChecksum: string; sql: string } | undefined> {
  const found = await readCheckResultSql(deps.store.db, input);
  return found && found.sql !== null ? { ...found, sql: found.sql } : undefined;
}

/** The newest result of every check recorded in the run, shaped as the results table reads them. */
function latestRunResults(detail: RunDetail): Record<string, LatestCheckResult> {
  const now = Date.now();
  const latest: Record<string, LatestCheckResult> = {};
  for (const row of detail.checkResults) {
    latest[row.checkId] = {
      id: row.id,
      checkId: row.checkId,
      phase: row.phase,
      passed: row.passed,
      skipped: row.skipped,
      expected: row.expected,
      actual: row.actual,
      sql: row.sqlText,
      error: (row.error as LatestCheckResult['error']) ?? null,
      ...(row.reason ? { reason: row.reason } : {}),
      durationMs: row.durationMs,
      ranAt: row.ranAt.toISOString(),
      ageMs: Math.max(0, now - row.ranAt.getTime()),
      ranBy: row.ranBy,
      planChecksum: row.planChecksum,
    };
  }
  return latest;
}

export function resultStatus(result: Pick<LatestCheckResult, 'skipped' | 'planChecksum' | 'actual' | 'passed' | 'error'> | undefined, checksum: string): string {
  if (!result) return 'pending';
  if (result.skipped) return 'skipped';
  if (result.planChecksum !== checksum) return 'stale';
  if (result.actual === 'cannot see') return 'cannot_see';
  if (result.passed) return 'pass';
  return result.error ? 'error' : 'fail';
}

/** Who or what an open gate waits on. */
function waitsOn(gate: Gate, target: Target): string {
  if (gate.passed) return '';
  switch (gate.id) {
    case 'prerequisites':
      return 'a TPM or engineer ticks them';
    case 'prechecks':
      return 'a TPM or engineer runs the pre-checks';
    case 'signoff':
      return 'a TPM or engineer other than the executor signs off';
    case 'confirm-target-name':
      return `the executor types "${target.name}" below`;
    case 'checksum':
      return 'the plan changed: tick again in a new run';
    case 'target-free':
      return 'the other run on this target finishes';
    case 'ledger':
      return 'nobody: it is already applied';
    case 'lint-clean':
      return 'the plan\'s author fixes the findings';
    default:
      return gate.id.startsWith('applied-on:') ? `an engineer applies and verifies it on ${gate.id.slice('applied-on:'.length)} first` : 'see the detail';
  }
}

/** Success criteria: from check results where checks back them, from the run log's ticks otherwise. */
function successCriteria(plan: Plan, results: Record<string, ShownCheckResult>, checksum: string, manual: RunDetail['criteriaTicks']): CriterionView[] {
  return plan.success_criteria.map((criterion, index) => {
    const checks = criterion.checks.map((id) => ({ id, status: resultStatus(results[id], checksum) }));
    let status: string;
    if (checks.length === 0) status = manual[index]?.ticked ? 'ticked' : 'not_ticked';
    else if (checks.some((check) => check.status === 'fail' || check.status === 'error')) status = 'fail';
    else if (checks.every((check) => check.status === 'pass')) status = 'pass';
    else status = 'pending';
    return { index, text: criterion.text, checks, status, manual: checks.length === 0 ? (manual[index] ?? null) : null };
  });
}

/**
 * The plan's team messages with {{target}}, {{checksum}}, {{executor}}, {{finished_at}} filled
 * from the run's facts. The post message is offered only for a verified apply, with the apply's own
 * end; the rollback message only for a rolled-back run, with who rolled back and when.
 */
function teamMessages(plan: Plan, facts: { target: Target; checksum: string; run?: RunRecord }): ChecklistView['teamMessages'] {
  const { run } = facts;
  const messageFacts = { target: facts.target, checksum: facts.checksum, planId: plan.id, run };
  const fill = (message: { notify: string[]; body: string } | undefined, which: 'pre' | 'post' | 'rollback'): TeamMessageView | undefined =>
    message ? fillTeamMessage(message, teamMessageValues(messageFacts, which)) : undefined;
  const applied = run != null && isAppliedState(run.state) && run.outcome?.verified !== false;
  const rolledBack = run?.state === 'rolled_back';
  return {
    pre: fill(plan.team_messages.pre, 'pre'),
    ...(applied ? { post: fill(plan.team_messages.post, 'post') } : {}),
    ...(rolledBack ? { rollback: fill(plan.team_messages.rollback, 'rollback') } : {}),
  };
}

function stepper(view: ChecklistView): StepperItem[] {
  const run = view.run;
  const gate = (id: string) => view.gates?.find((candidate) => candidate.id === id);
  const required = view.prerequisites.filter((item) => item.required);
  const tickedRequired = required.filter((item) => item.tick?.ticked).length;
  const preparing = run !== null && isPreparingState(run.state as RunState);
  const executedStates = ['applying', 'applied', 'watching', 'watched', 'watch_alarm', 'rolling_back', 'rolled_back', 'rollback_failed', 'interrupted', 'failed'];
  const executed = run !== null && executedStates.includes(run.state);

  const prerequisites: StepperItem = {
    id: 'prerequisites',
    label: 'Prerequisites',
    anchor: '#prerequisites',
    status: executed || tickedRequired === required.length ? 'done' : 'current',
    detail: executed ? 'ticked before executing' : `${tickedRequired} of ${required.length} required ticked${tickedRequired < required.length ? ' · waiting on a TPM' : ''}`,
  };

  const precheckResults = Object.values(view.sections.pre.results);
  const precheckFailed = precheckResults.some((result) => !result.passed && !result.skipped);
  const precheckGate = gate('prechecks');
  const prechecks: StepperItem = {
    id: 'prechecks',
    label: 'Pre-checks',
    anchor: '#prechecks',
    status: executed ? 'done' : precheckGate?.passed ? 'done' : precheckFailed ? 'failed' : 'current',
    detail: executed
      ? 'passed before executing'
      : precheckGate
        ? precheckGate.passed
          ? precheckGate.detail
          : precheckFailed
            ? 'a pre-check failed · fix it, then run them again'
            : 'not run in this run · waiting on a TPM'
        : 'not run yet · waiting on a TPM',
  };

  let execute: StepperItem;
  const open = (view.gates ?? []).filter((candidate) => !candidate.passed && !candidate.atExecute);
  if (!run || preparing) {
    execute = open.length > 0 || !run
      ? { id: 'execute', label: 'Execute', anchor: '#go-no-go', status: 'blocked', detail: run ? `${open.length} gate${open.length === 1 ? '' : 's'} open · ${open[0]?.waitsOn ?? ''}` : 'no run yet · tick or run the pre-checks' }
      : { id: 'execute', label: 'Execute', anchor: '#go-no-go', status: 'current', detail: 'go · waiting on an engineer to execute' };
  } else if (run.state === 'applying') {
    execute = { id: 'execute', label: 'Execute', anchor: '#go-no-go', status: 'current', detail: `applying · by ${run.executedBy ?? 'an engineer'}` };
  } else if (run.state === 'failed' || run.state === 'interrupted') {
    execute = { id: 'execute', label: 'Execute', anchor: '#execution-log', status: 'failed', detail: run.failure ? `failed at line ${run.failure.line}` : run.state };
  } else {
    execute = { id: 'execute', label: 'Execute', anchor: '#execution-log', status: 'done', detail: `by ${run.executedBy ?? '?'}` };
  }

  const applied = run !== null && ['applied', 'watching', 'watched', 'watch_alarm', 'rolling_back', 'rolled_back', 'rollback_failed'].includes(run.state);
  const verify: StepperItem = !applied
    ? { id: 'verify', label: 'Verify', anchor: '#verification', status: 'waiting', detail: 'after execute' }
    : run.verified === false
      ? { id: 'verify', label: 'Verify', anchor: '#verification', status: 'failed', detail: 'a verification check failed' }
      : { id: 'verify', label: 'Verify', anchor: '#verification', status: 'done', detail: 'verified' };
  const post: StepperItem = !applied
    ? { id: 'post', label: 'Post-execution', anchor: '#post-execution', status: 'waiting', detail: 'after verify' }
    : run.postExecutionPassed === false
      ? { id: 'post', label: 'Post-execution', anchor: '#post-execution', status: 'failed', detail: 'a check failed · an engineer decides: roll back?' }
      : { id: 'post', label: 'Post-execution', anchor: '#post-execution', status: 'done', detail: 'API and data quality passed' };
  const manualOpen = view.successCriteria.filter((criterion) => criterion.checks.length === 0 && criterion.status !== 'ticked').length;
  const report: StepperItem = !applied
    ? { id: 'report', label: 'Report', anchor: '#success-criteria', status: 'waiting', detail: 'after post-execution' }
    : manualOpen > 0
      ? { id: 'report', label: 'Report', anchor: '#success-criteria', status: 'current', detail: `${manualOpen} criteria to tick by hand · then send the post message` }
      : { id: 'report', label: 'Report', anchor: '#team-messages', status: 'done', detail: 'send the post message' };
  return [prerequisites, prechecks, execute, verify, post, report];
}

// ---------------------------------------------------------------------------------------------
// The intents

export type ChecklistIntent =
  | { intent: 'tick'; itemId: string; ticked: boolean }
  | { intent: 'tick-criterion'; index: number; ticked: boolean }
  | { intent: 'run-checks'; phase: CheckPhase }
  | { intent: 'refresh-facts' }
  | { intent: 'sign-off' }
  | { intent: 'add-note'; text: string }
  | { intent: 'waive-lint'; file: string; line: number; rule: string; reason: string }
  | { intent: 'execute'; typedTargetName?: string }
  | { intent: 'rehearse' }
  | { intent: 'rollback'; runId: string; typedTargetName?: string }
  | { intent: 'new-attempt' }
  | { intent: 'cancel'; runId: string }
  | { intent: 'end-watch'; runId: string; note: string }
  | { intent: 'extend-watch'; runId: string; by: string; note?: string }
  | { intent: 'restore'; runId: string; typedTargetName?: string };

export async function performChecklistIntent(
  deps: ChecklistDeps,
  input: { plan: ValidPlan; target: Target; user: SignedInUser; intent: ChecklistIntent },
): Promise<IntentOutcome> {
  const { plan, target, user, intent } = input;
  const actor = actorOf(user);
  const scope = { planId: plan.id, target: target.name };
  try {
    const { working, previous } = await workingRunFor(deps, { ...scope, kind: 'execute', checksum: plan.checksum });
    // The engine opens the run (or hands back the one another request just opened).
    const workingOrNew = async (): Promise<RunRecord> => working ?? (await openWorkingRun(deps, { ...scope, kind: 'execute', actor })).run;

    switch (intent.intent) {
      case 'tick': {
        const run = await workingOrNew();
        await tickPrerequisite(deps, { runId: run.id, itemId: intent.itemId, ticked: intent.ticked, actor });
        return { kind: 'done', message: intent.ticked ? 'Ticked.' : 'Unticked.' };
      }
      case 'tick-criterion': {
        const run = working ?? previous;
        if (!run) {
          await authorize(deps, { actor, action: 'tick', subject: `${plan.id}@${target.name}` });
          return { kind: 'refused', status: 409, error: 'No run yet: success criteria are ticked in a run, after it executes.' };
        }
        await tickCriterion(deps, { runId: run.id, index: intent.index, ticked: intent.ticked, actor });
        return { kind: 'done', message: intent.ticked ? 'Criterion ticked.' : 'Criterion unticked.' };
      }
      case 'run-checks': {
        if (intent.phase === 'pre') {
          const run = await workingOrNew();
          const results = await runRunChecks(deps, { runId: run.id, phase: 'pre', actor });
          return { kind: 'done', message: checksMessage(results) };
        }
        if (working && !isActiveState(working.state)) {
          const results = await runRunChecks(deps, { runId: working.id, phase: intent.phase, actor });
          await refreshPlanFacts(deps, plan, target).catch(() => {});
          return { kind: 'done', message: checksMessage(results) };
        }
        await authorize(deps, { actor, action: 'run-checks', subject: `${plan.id}@${target.name}` });
        const outcome = await runPlanChecks(deps, { planId: plan.id, targetName: target.name, phase: intent.phase, ranBy: user.email, ranByRole: user.role });
        await refreshPlanFacts(deps, plan, target).catch(() => {});
        return { kind: 'done', message: checksMessage(outcome.results) };
      }
      case 'refresh-facts': {
        await authorize(deps, { actor, action: 'run-checks', subject: `${plan.id}@${target.name}` });
        await refreshPlanFacts(deps, plan, target);
        return { kind: 'done', message: 'Facts read again.' };
      }
      case 'sign-off': {
        if (!working) return { kind: 'refused', status: 409, error: 'No run to sign off yet: tick the prerequisites or run the pre-checks first.' };
        await signOff(deps, { runId: working.id, actor });
        return { kind: 'done', message: 'Signed off.' };
      }
      case 'add-note': {
        const run = working ?? previous ?? (await workingOrNew());
        await addNote(deps, { runId: run.id, actor, text: intent.text });
        return { kind: 'done', message: 'Note added to the run log.' };
      }
      case 'waive-lint': {
        const run = await workingOrNew();
        const { waiver, event } = await waiveLintFinding(deps, { runId: run.id, finding: { file: intent.file, line: intent.line, rule: intent.rule }, reason: intent.reason, actor });
        return { kind: 'done', message: `${event ? 'Waived' : 'Already waived'}: ${waiver.rule} at ${waiver.file}:${waiver.line}, for this run only.` };
      }
      case 'execute': {
        if (!working || !isPreparingState(working.state)) {
          return { kind: 'refused', status: 409, error: working ? `Run ${working.id} is ${working.state}: a new attempt is a new run.` : 'No run to execute: tick the prerequisites and run the pre-checks first.' };
        }
        // Judged here first so that a refusal comes back at once, with every open gate.
        const gates = await evaluateGates(deps, working, { executor: actor.email, typedTargetName: intent.typedTargetName });
        const open = gates.filter((gate) => !gate.passed);
        if (open.length > 0) return { kind: 'refused', status: 409, error: `Execute refused: ${open.length} gate${open.length === 1 ? ' is' : 's are'} open.`, openGates: open };
        return await startInBackground('execute', working.id, (onEvent) => executeRun(deps, { runId: working.id, actor, typedTargetName: intent.typedTargetName, onEvent }));
      }
      case 'rehearse': {
        const { run } = await openWorkingRun(deps, { ...scope, kind: 'rehearsal', actor });
        const open = (await evaluateGates(deps, run, { executor: actor.email })).filter((gate) => !gate.passed);
        if (open.length > 0) return { kind: 'refused', status: 409, error: `Rehearsal refused: ${open.length} gate${open.length === 1 ? ' is' : 's are'} open.`, openGates: open };
        return await startInBackground('rehearse', run.id, (onEvent) => rehearseRun(deps, { runId: run.id, actor, onEvent }));
      }
      case 'rollback': {
        if (!working || working.id !== intent.runId) return { kind: 'refused', status: 409, error: "That run is not this plan's current run on this target: reload the page." };
        if (!mayRollBackFrom(working.state)) return { kind: 'refused', status: 409, error: `Run ${working.id} is ${working.state}: only an applied run, or one that committed part of its apply, is rolled back.` };
        return await startInBackground('rollback', working.id, (onEvent) => rollbackRun(deps, { runId: working.id, actor, typedTargetName: intent.typedTargetName, onEvent }));
      }
      case 'new-attempt': {
        const { run, opened } = await openWorkingRun(deps, { ...scope, kind: 'execute', actor, newAttempt: true });
        const after = working ?? previous;
        return { kind: 'done', message: opened ? `Run ${run.id.slice(0, 8)} opened: a new attempt${after ? ` after run ${after.id.slice(0, 8)} (${after.state})` : ''}.` : `Run ${run.id.slice(0, 8)} is already being prepared: work on it.` };
      }
      case 'end-watch': {
        if (!working || working.id !== intent.runId) return { kind: 'refused', status: 409, error: "That run is not this plan's current run on this target: reload the page." };
        const ended = await endWatch(deps, { runId: working.id, actor, note: intent.note });
        return { kind: 'done', message: `Watch ended early: the run is ${ended.state.replace(/_/g, ' ')}.` };
      }
      case 'extend-watch': {
        if (!working || working.id !== intent.runId) return { kind: 'refused', status: 409, error: "That run is not this plan's current run on this target: reload the page." };
        const by = DurationSchema.safeParse(intent.by);
        if (!by.success) return { kind: 'refused', status: 400, error: `Extend by a duration such as "12h" or "30m", not "${intent.by}".` };
        const extended = await extendWatch(deps, { runId: working.id, actor, byMs: by.data, ...(intent.note ? { note: intent.note } : {}) });
        return { kind: 'done', message: `Watch extended by ${formatSpan(by.data)}: it now ends ${formatUtc(extended.outcome?.watch?.endsAt ?? null)}.` };
      }
      case 'restore': {
        if (!working || working.id !== intent.runId) return { kind: 'refused', status: 409, error: "That run is not this plan's current run on this target: reload the page." };
        const result = await restoreRun(deps, { runId: working.id, actor, typedTargetName: intent.typedTargetName });
        const restored = result.objects.reduce((sum, object) => sum + object.restored, 0);
        return { kind: 'done', message: `Restored ${restored} value(s) from run ${result.fromRunId.slice(0, 8)}; ${result.skipped.length} row(s) skipped${result.skipped.length > 0 ? ` (see the run log's restore.finished: ${result.skipped.slice(0, 3).map((row) => `${JSON.stringify(row.key)}: ${row.reason}`).join('; ')}${result.skipped.length > 3 ? '; …' : ''})` : ''}.` };
      }
      case 'cancel': {
        const [run] = (await findRunSummaries(deps.store.pool, { ...scope, limit: 20 })).filter((candidate) => candidate.id === intent.runId);
        if (!run) return { kind: 'refused', status: 404, error: 'No such run of this plan on this target.' };
        return { kind: 'done', message: cancelRequestedMessage(await cancelRun(deps, { runId: run.id, actor })) };
      }
    }
  } catch (error) {
    return refusalOf(error);
  }
}

function checksMessage(results: { passed: boolean; skipped: boolean }[]): string {
  const failed = results.filter((result) => !result.passed && !result.skipped).length;
  return failed === 0 ? `${results.length} check${results.length === 1 ? '' : 's'} passed.` : `${failed} of ${results.length} checks failed.`;
}

/**
 * Execute, rollback and rehearse take minutes: the request starts them and answers once the drive
 * has begun (its own '.started' event: the page goes to the live view, which then never opens on
 * the state before) or was refused (lost to another request, a gate, the target busy): the refusal
 * is answered on the page the person is on, never hidden behind a redirect. The engine records
 * every refusal and failure in the run log.
 */
function startInBackground(action: DriveAction, runId: string, start: (onEvent: (event: LoggedRunEvent) => void) => Promise<unknown>): Promise<IntentOutcome> {
  return new Promise((resolve) => {
    let answered = false;
    const answer = (outcome: IntentOutcome) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    // A drive that logs nothing for this long is still starting: the live view shows what follows.
    const timer = setTimeout(() => answer({ kind: 'started', runId }), START_WAIT_MS);
    start((event) => {
      if (event.type === DRIVE_EVENTS[action].started) answer({ kind: 'started', runId });
    }).then(
      () => answer({ kind: 'started', runId }),
      (error: unknown) => {
        if (isRunsheetError(error)) return answer(refusalOf(error));
        console.error(`[runsheet] ${action} of run ${runId} stopped: ${(error as Error).name}: ${(error as Error).message}`);
        answer({ kind: 'refused', status: 500, error: `The engine stopped: ${(error as Error).message}` });
      },
    );
  });
}

const START_WAIT_MS = 10_000;
