/**
 * The post-run report, assembled from a run's log: phase timings, check results, snapshot before
 * and after, step output, verification and issues. Pure functions over the typed events of the
 * run-event union (no database), so the page, the Markdown download and tests read the same
 * thing. An event this version does not know ('unrecognised') is left out of the summary.
 */
import type { Blocker, RunOutcome } from '../../db/schema/run-outcome';
import type { AnchorVerdict } from './verify-run-log.server';
import { phaseStatusOf, type PhaseStatus } from '../../db/run-lifecycle';
import { describeExpectation } from '../checks/describe-expectation';
import { formatUtc } from '../runtime/format';
import { blockersInWords } from '../runtime/lock-wait-words';
import { driveEdgeOf, eventsOf, type DriveAction, type PayloadOf, type RunEvent, type RunEventOf, type RunEventType, type Via } from './run-events';

/** How an event came, in words for the report: which API token, the dashboard, or which command line. */
export function viaInWords(via: Via | undefined): string | null {
  if (!via) return null;
  switch (via.channel) {
    case 'api':
      return `API token ${via.tokenId}`;
    case 'web':
      return via.auth === 'proxy' ? 'dashboard (single sign-on)' : 'dashboard';
    case 'cli':
      return `command line (${via.osUser}@${via.host})`;
  }
}

const viaOf = (event: RunEvent): string | null => viaInWords((event.payload as { via?: Via }).via);

/** The event types the report summarises (the event list pages through every type). */
export const REPORT_EVENT_TYPES: readonly RunEventType[] = [
  'run.created',
  'checks.ran',
  'signoff',
  'note.added',
  'phase.started',
  'phase.completed',
  'statement.completed',
  'state.changed',
  'execute.refused',
  'rollback.refused',
  'rehearse.refused',
  'action.refused',
  'cancel.requested',
  'cancel.signalled',
  'execute.started',
  'execute.finished',
  'rollback.started',
  'rollback.finished',
  'rehearse.started',
  'rehearse.finished',
  'run.interrupted',
  'wait.started',
  'wait.ended',
];

/** Events in the report page's first HTML; the rest are paged from /runs/:id/events.json. */
export const INITIAL_EVENTS_PAGE = 50;

/**
 * The report page shows a long statement list (a backfill's thousands of batches) as a digest: the
 * first few, the slowest few and the last few, with the count; every one is in the event log and
 * the Markdown report. The page never sends the whole list.
 */
export const STATEMENT_DIGEST = { first: 20, slowest: 5, last: 5 } as const;

export interface StatementDigest {
  statements: ReportStatement[];
  /** Statements the run completed in all. */
  total: number;
  /** The seqs of the slowest few, slowest first. */
  slowestSeqs: number[];
}

/** The digest of a statement list, in seq order (the same rule readReportSummaryDigest applies in the store). */
export function digestStatements(statements: ReportStatement[], digest: { first: number; slowest: number; last: number } = STATEMENT_DIGEST): StatementDigest {
  const slowestSeqs = [...statements]
    .sort((a, b) => (b.durationMs ?? -Infinity) - (a.durationMs ?? -Infinity))
    .slice(0, digest.slowest)
    .map((statement) => statement.seq);
  const slow = new Set(slowestSeqs);
  const shown = statements.filter((statement, index) => index < digest.first || index >= statements.length - digest.last || slow.has(statement.seq));
  return { statements: shown, total: statements.length, slowestSeqs };
}

export const CHECK_PHASE_TITLES: Record<string, string> = {
  pre: 'Pre-checks',
  snapshot: 'Snapshot',
  verify: 'Verification',
  post: 'Post-execution validation',
  rollback: 'Rollback verification',
};

export type CheckStatus = 'pass' | 'fail' | 'error' | 'skipped' | 'cannot_see';

export interface ReportCheck {
  checkId: string;
  title: string;
  kind: string;
  status: CheckStatus;
  expected: ({ type: string } & Record<string, unknown>) | null;
  actual: unknown;
  error: { sqlstate?: string; message: string } | null;
  durationMs: number | null;
  ranAt: string | null;
  sql: string | null;
}

export interface ReportCheckRun {
  seq: number;
  at: string;
  actor: string;
  phase: string;
  passed: boolean;
  checks: ReportCheck[];
}

export interface ReportPhase {
  phase: string;
  /** The drive it belongs to (an apply's phases and a later rollback's are kept apart). */
  action: DriveAction | null;
  /** db/run-lifecycle.ts phaseStatusOf: a failed phase is never "done". */
  status: PhaseStatus;
  /** Database clock of phase.started / phase.completed, when logged. */
  startedAt: string | null;
  completedAt: string | null;
  plannedMs: number | null;
  actualMs: number | null;
  /** Started but never completed (failed, cancelled or interrupted). */
  incomplete: boolean;
}

export interface ReportStatement {
  seq: number;
  stepId: string;
  /** "Step 2 · Build the index" or "Rollback step 1 · Drop the index": the plan's title and position. */
  stepLabel: string | null;
  index: number;
  line: number | null;
  command: string | null;
  durationMs: number | null;
  rowCount: number | null;
  notices: string[];
  sql: string | null;
}

export interface ReportIssue {
  seq: number | null;
  at: string | null;
  actor: string | null;
  kind: 'note' | 'refused' | 'cancel' | 'failure' | 'state' | 'wait';
  text: string;
}

/** One action on the run (apply, rollback, rehearse, cancel) with its own start, end and duration. */
export interface ReportAction {
  action: DriveAction | 'cancel';
  actor: string;
  /** How the actor came, in words ("API token 1a2b…", "dashboard", "command line as ops on host-1"); null on older logs. */
  via: string | null;
  startedAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  /** The state it ended in (a cancel: the state the drive it stopped ended in). */
  state: string | null;
}

/** Where the run stopped and why, for the top of the report and the Markdown. */
export interface FailureSummary {
  action: DriveAction | null;
  phase: string;
  /** "check snapshot-counts", "step apply-008". */
  what: string;
  line: number | null;
  sqlstate: string | null;
  message: string;
  detail: string | null;
  hint: string | null;
  blockers: Blocker[];
  cancelledBy: string | null;
}

export interface SnapshotRow {
  checkId: string;
  title: string;
  before: { actual: unknown; status: CheckStatus; ranAt: string | null } | null;
  after: { actual: unknown; status: CheckStatus; ranAt: string | null } | null;
  changed: boolean;
}

export interface RunReport {
  phases: ReportPhase[];
  /** Each action with its own times: a rollback never stretches the apply's duration. */
  actions: ReportAction[];
  /** Where and why the run (or its latest rollback) stopped; null when nothing failed. */
  failureSummary: FailureSummary | null;
  /** Latest pre-check run first shown; `earlierPrecheckRuns` counts the ones before it. */
  prechecks: ReportCheckRun | null;
  earlierPrecheckRuns: { seq: number; at: string; passed: boolean; failed: number }[];
  snapshot: { rows: SnapshotRow[]; beforeAt: string | null; afterAt: string | null };
  statements: ReportStatement[];
  /** Latest run of each of verify, post and rollback, in that order. */
  verification: ReportCheckRun[];
  issues: ReportIssue[];
  /** The statement that failed (from the run's outcome), shown after the ones that completed. */
  failedStatement: {
    stepId: string;
    stepLabel: string | null;
    index: number | null;
    line: number | null;
    sqlstate: string | null;
    message: string;
    cancelled: boolean;
    transactional: boolean | null;
  } | null;
  stateChanges: { seq: number; at: string; from: string; to: string; reason: string | null }[];
  /** Every sign-off, with how it came (four-eyes is read from these and the actions' actors). */
  signoffs: { seq: number; at: string; actor: string; via: string | null }[];
}

type CheckResultEvent = PayloadOf<'checks.ran'>['results'][number];

function checkStatus(result: CheckResultEvent): CheckStatus {
  if (result.skipped) return 'skipped';
  if (result.actual === 'cannot see') return 'cannot_see';
  if (result.passed) return 'pass';
  return result.error ? 'error' : 'fail';
}

function checkRunOf(event: RunEventOf<'checks.ran'>): ReportCheckRun {
  const { phase, passed, results } = event.payload;
  const checks: ReportCheck[] = results.map((result) => ({
    checkId: result.checkId,
    title: result.title,
    kind: result.kind,
    status: checkStatus(result),
    expected: typeof result.expected?.type === 'string' ? (result.expected as { type: string } & Record<string, unknown>) : null,
    actual: result.actual ?? null,
    error: result.error ? { sqlstate: result.error.sqlstate, message: result.error.message } : null,
    durationMs: result.durationMs,
    ranAt: result.ranAt,
    sql: result.sql,
  }));
  return { seq: event.seq, at: event.at, actor: event.actor, phase, passed, checks };
}

/** Where the change began: the first apply (or rehearsal) phase, else the state change into applying. */
function applyStartSeq(events: readonly RunEvent[]): number | null {
  const started = eventsOf(events, 'phase.started').find((event) => /apply|rehears/.test(event.payload.phase));
  if (started) return started.seq;
  const moved = eventsOf(events, 'state.changed').find((event) => event.payload.to === 'applying' || event.payload.to === 'rehearsing');
  return moved?.seq ?? null;
}

function phasesOf(events: readonly RunEvent[], outcome: RunOutcome | null): ReportPhase[] {
  type Folded = ReportPhase & { completed: boolean; ok?: boolean; seq: number };
  const phases: Folded[] = [];
  let action: DriveAction | null = null;
  // How each drive ended, by the seq of its start: a phase left open is failed (finished) or stopped (interrupted).
  const driveEnds = new Map<number, 'finished' | 'interrupted'>();
  let driveSeq = 0;
  for (const event of events) {
    const edge = driveEdgeOf(event);
    if (edge?.edge === 'started') {
      action = edge.action;
      driveSeq = event.seq;
    } else if (edge?.edge === 'finished') driveEnds.set(driveSeq, 'finished');
    else if (event.type === 'run.interrupted') driveEnds.set(driveSeq, 'interrupted');
    if (event.type === 'phase.started') {
      phases.push({ phase: event.payload.phase, action, status: 'running', startedAt: event.at, completedAt: null, plannedMs: event.payload.plannedMs, actualMs: null, incomplete: true, completed: false, seq: driveSeq });
    } else if (event.type === 'phase.completed') {
      const name = event.payload.phase;
      const open = [...phases].reverse().find((phase) => phase.phase === name && phase.incomplete);
      const target: Folded = open ?? { phase: name, action, status: 'running', startedAt: null, completedAt: null, plannedMs: null, actualMs: null, incomplete: true, completed: false, seq: driveSeq };
      if (!open) phases.push(target);
      target.completedAt = event.at;
      target.plannedMs = event.payload.plannedMs ?? target.plannedMs;
      target.actualMs = event.payload.actualMs;
      target.incomplete = false;
      target.completed = true;
      target.ok = event.payload.ok;
    }
  }
  // A phase that never completed ran until the last thing the log says happened after it began.
  const lastAt = events.at(-1)?.at;
  for (const phase of phases) {
    if (phase.incomplete && phase.startedAt && lastAt) phase.actualMs = Math.max(0, Date.parse(lastAt) - Date.parse(phase.startedAt));
    phase.status = phaseStatusOf(phase, driveEnds.get(phase.seq) ?? 'on');
  }
  if (phases.length > 0) return phases.map(({ phase, action: of, status, startedAt, completedAt, plannedMs, actualMs, incomplete }) => ({ phase, action: of, status, startedAt, completedAt, plannedMs, actualMs, incomplete }));
  // A run whose log has no phase events yet may still carry its timings in the outcome.
  return (outcome?.phases ?? []).map((phase) => ({
    phase: phase.phase,
    action: null,
    status: phaseStatusOf({ completed: true, ok: phase.ok }, 'finished'),
    startedAt: null,
    completedAt: null,
    plannedMs: phase.plannedMs,
    actualMs: phase.actualMs,
    incomplete: false,
  }));
}

/** Every drive and every cancel, each with its own start and end (from the log's clock). */
function actionsOf(events: readonly RunEvent[]): ReportAction[] {
  const actions: ReportAction[] = [];
  let open: ReportAction | undefined;
  let cancel: ReportAction | undefined;
  const close = (at: string, state: string) => {
    for (const action of [open, cancel]) {
      if (!action || action.finishedAt) continue;
      action.finishedAt = at;
      action.durationMs = Math.max(0, Date.parse(at) - Date.parse(action.startedAt));
      action.state = state;
    }
    open = undefined;
    cancel = undefined;
  };
  for (const event of events) {
    const edge = driveEdgeOf(event);
    if (edge?.edge === 'started') {
      open = { action: edge.action, actor: event.actor, via: viaOf(event), startedAt: event.at, finishedAt: null, durationMs: null, state: null };
      actions.push(open);
    } else if (edge?.edge === 'finished' && event.type.endsWith('.finished')) {
      close(event.at, (event.payload as { state: string }).state);
    } else if (event.type === 'run.interrupted') {
      close(event.at, 'interrupted');
    } else if (event.type === 'cancel.requested' && open && !cancel) {
      cancel = { action: 'cancel', actor: event.actor, via: viaOf(event), startedAt: event.at, finishedAt: null, durationMs: null, state: null };
      actions.push(cancel);
    }
  }
  return actions;
}

/** The failure summary: the latest drive's stoppedAt, else (logs written before it) the failed step. */
function failureSummaryOf(outcome: RunOutcome | null, actions: ReportAction[]): FailureSummary | null {
  if (!outcome) return null;
  const latest = actions.filter((action) => action.action !== 'cancel').at(-1);
  const rollbackLatest = latest?.action === 'rollback';
  const stop = rollbackLatest ? outcome.rollback?.stoppedAt : outcome.stoppedAt;
  const failure = rollbackLatest ? outcome.rollback?.failure : outcome.failure;
  const action = (latest?.action as DriveAction | undefined) ?? null;
  if (stop) {
    return {
      action,
      phase: stop.phase,
      what: stop.checkId ? `check ${stop.checkId}` : stop.stepId ? `step ${stop.stepId}` : stop.phase,
      line: stop.line ?? null,
      sqlstate: stop.sqlstate ?? null,
      message: stop.message,
      detail: stop.detail ?? null,
      hint: stop.hint ?? null,
      blockers: stop.blockers,
      cancelledBy: stop.cancelledBy ?? null,
    };
  }
  if (failure) {
    return {
      action,
      phase: rollbackLatest ? 'rollback' : 'apply',
      what: `step ${failure.stepId}`,
      line: failure.line || null,
      sqlstate: failure.sqlstate ?? null,
      message: failure.message,
      detail: failure.detail ?? null,
      hint: failure.hint ?? null,
      blockers: failure.blockers,
      cancelledBy: failure.cancelled ? (outcome.cancelledBy ?? outcome.rollback?.cancelledBy ?? null) : null,
    };
  }
  return null;
}

/** The failure summary in one line (the Markdown's first words after the header). */
export function failureSummaryText(summary: FailureSummary): string {
  const where = [summary.what, summary.line ? `line ${summary.line}` : null].filter(Boolean).join(', ');
  const code = summary.sqlstate ? `SQLSTATE ${summary.sqlstate}: ` : '';
  const blockers = summary.blockers.length > 0 ? `; blocked by ${blockersInWords(summary.blockers)}` : '';
  return `${summary.cancelledBy ? 'Cancelled' : 'Failed'} in ${summary.phase} (${where}): ${code}${summary.message}${blockers}`;
}

function refusalText(event: RunEventOf<'execute.refused' | 'action.refused'>): string {
  const gates = event.type === 'execute.refused' ? (event.payload.openGates ?? []) : [];
  const gateText = gates.map((gate) => `${gate.label}${gate.detail ? `: ${gate.detail}` : ''}`).join('; ');
  const action = event.type === 'action.refused' ? event.payload.action : undefined;
  return [action ? `${action} refused` : 'Refused', event.payload.reason, gateText].filter(Boolean).join(' — ');
}

const FAILURE_STATES = new Set(['failed', 'cancelled', 'interrupted', 'rollback_failed', 'rehearsal_failed']);

const failureOfOutcome = (outcome: RunOutcome | null) => outcome?.failure ?? outcome?.rollback?.failure ?? null;

function failureText(outcome: RunOutcome | null): string | null {
  const failure = failureOfOutcome(outcome);
  if (failure) {
    const where = [`step ${failure.stepId}`, failure.line ? `line ${failure.line}` : null].filter(Boolean).join(', ');
    const code = failure.sqlstate ? `SQLSTATE ${failure.sqlstate}: ` : '';
    return `${where}: ${code}${failure.message}${failure.cancelled ? ' (cancelled)' : ''}`;
  }
  return outcome?.error ?? null;
}

/** Whether the outcome says the step ran in one transaction (so a failure rolled back all of it). */
function stepTransactional(outcome: RunOutcome | null, stepId: string): boolean | null {
  const step = [...(outcome?.steps ?? []), ...(outcome?.rollback?.steps ?? [])].find((candidate) => candidate.stepId === stepId);
  return step?.transactional ?? null;
}

/**
 * Each step's title and its position in its section, from the outcome (which lists the steps that
 * ran, in the plan's order): the report names steps as the plan does, whatever the plan.
 */
function stepLabelsOf(outcome: RunOutcome | null): Map<string, string> {
  const labels = new Map<string, string>();
  const add = (steps: readonly { stepId: string; title: string }[] | undefined, prefix: string) =>
    (steps ?? []).forEach((step, position) => labels.set(step.stepId, `${prefix} ${position + 1} · ${step.title}`));
  add(outcome?.steps ?? outcome?.rehearsal?.apply.steps, 'Step');
  add(outcome?.rollback?.steps ?? outcome?.rehearsal?.rollback?.steps, 'Rollback step');
  return labels;
}

export function buildRunReport(events: readonly RunEvent[], outcome: RunOutcome | null): RunReport {
  const applyAt = applyStartSeq(events);
  const stepLabels = stepLabelsOf(outcome);
  const checkRuns = eventsOf(events, 'checks.ran').map(checkRunOf);

  const preRuns = checkRuns.filter((run) => run.phase === 'pre');
  const prechecks = preRuns.at(-1) ?? null;
  const earlierPrecheckRuns = preRuns.slice(0, -1).map((run) => ({
    seq: run.seq,
    at: run.at,
    passed: run.passed,
    failed: run.checks.filter((check) => check.status === 'fail' || check.status === 'error').length,
  }));

  const snapshots = checkRuns.filter((run) => run.phase === 'snapshot');
  const before = snapshots.filter((run) => applyAt === null || run.seq < applyAt).at(-1) ?? null;
  const after = applyAt === null ? null : snapshots.filter((run) => run.seq > applyAt).at(-1) ?? null;
  const snapshotIds = [...new Set([...(before?.checks ?? []), ...(after?.checks ?? [])].map((check) => check.checkId))];
  const snapshotRows: SnapshotRow[] = snapshotIds.map((checkId) => {
    const b = before?.checks.find((check) => check.checkId === checkId);
    const a = after?.checks.find((check) => check.checkId === checkId);
    return {
      checkId,
      title: (b ?? a)!.title,
      before: b ? { actual: b.actual, status: b.status, ranAt: b.ranAt } : null,
      after: a ? { actual: a.actual, status: a.status, ranAt: a.ranAt } : null,
      changed: Boolean(a && b && JSON.stringify(a.actual) !== JSON.stringify(b.actual)),
    };
  });

  const verification = ['verify', 'post', 'rollback']
    .map((phase) => checkRuns.filter((run) => run.phase === phase).at(-1))
    .filter((run): run is ReportCheckRun => run !== undefined);

  const statements: ReportStatement[] = eventsOf(events, 'statement.completed').map((event) => {
    const p = event.payload;
    return {
      seq: event.seq,
      stepId: p.stepId,
      stepLabel: stepLabels.get(p.stepId) ?? null,
      index: p.index,
      line: p.line,
      command: p.command,
      durationMs: p.durationMs,
      rowCount: p.rowCount,
      notices: p.notices.map((notice) => `${notice.severity}: ${notice.message}`),
      sql: null,
    };
  });

  const issues: ReportIssue[] = [];
  for (const event of events) {
    const at = { seq: event.seq, at: event.at, actor: event.actor };
    if (event.type === 'note.added') issues.push({ ...at, kind: 'note', text: event.payload.text });
    else if (event.type === 'execute.refused' || event.type === 'action.refused') issues.push({ ...at, kind: 'refused', text: refusalText(event) });
    else if (event.type === 'rollback.refused' || event.type === 'rehearse.refused') issues.push({ ...at, kind: 'refused', text: `${event.type.replace('.', ' ')}: ${event.payload.reason}` });
    else if (event.type === 'cancel.requested') issues.push({ ...at, kind: 'cancel', text: `Cancel requested${event.payload.reason ? `: ${event.payload.reason}` : ''}` });
    else if (event.type === 'wait.started') {
      issues.push({ ...at, kind: 'wait', text: `${event.payload.waitingFor} waited for a lock${event.payload.relation ? ` on ${event.payload.relation}` : ''} held by ${blockersInWords(event.payload.blockers) || 'a session not identified'}` });
    }
    else if (event.type === 'state.changed' && FAILURE_STATES.has(event.payload.to)) {
      issues.push({ ...at, kind: 'state', text: `${event.payload.from} → ${event.payload.to}${event.payload.reason ? `: ${event.payload.reason}` : ''}` });
    }
  }
  const failure = failureText(outcome);
  // The outcome's failure, unless a logged state change already said it.
  const message = outcome?.failure?.message ?? null;
  if (failure && !issues.some((issue) => issue.kind === 'state' && message !== null && issue.text.includes(message))) {
    issues.push({ seq: null, at: null, actor: null, kind: 'failure', text: failure });
  }

  const stateChanges = eventsOf(events, 'state.changed').map((event) => ({ seq: event.seq, at: event.at, from: event.payload.from, to: event.payload.to, reason: event.payload.reason }));

  const failureRecord = failureOfOutcome(outcome);
  const failedStatement = failureRecord
    ? {
        stepId: failureRecord.stepId,
        stepLabel: stepLabels.get(failureRecord.stepId) ?? null,
        index: failureRecord.statementIndex >= 0 ? failureRecord.statementIndex : null,
        line: failureRecord.line || null,
        sqlstate: failureRecord.sqlstate ?? null,
        message: failureRecord.message,
        cancelled: failureRecord.cancelled,
        transactional: stepTransactional(outcome, failureRecord.stepId),
      }
    : null;

  const actions = actionsOf(events);
  return {
    phases: phasesOf(events, outcome),
    actions,
    failureSummary: failureSummaryOf(outcome, actions),
    failedStatement,
    prechecks,
    earlierPrecheckRuns,
    snapshot: { rows: snapshotRows, beforeAt: before?.at ?? null, afterAt: after?.at ?? null },
    statements,
    verification,
    issues,
    stateChanges,
    signoffs: eventsOf(events, 'signoff').map((event) => ({ seq: event.seq, at: event.at, actor: event.actor, via: viaOf(event) })),
  };
}

/** A short, one-line rendering of a check's actual value or an event payload. */
export function compactJson(value: unknown, max = 160): string {
  if (value === null || value === undefined) return '—';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export interface ReportHeader {
  runId: string;
  planId: string;
  planTitle: string | null;
  planChecksum: string;
  target: string;
  targetLabel: string;
  kind: string;
  state: string;
  createdBy: string;
  createdAt: string;
  signedOffBy: string | null;
  signedOffAt: string | null;
  executedBy: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
}

export interface SignatureVerdict {
  /** valid: the stored log matches its signed checkpoints; unsigned: no checkpoint yet; broken: it does not. */
  status: 'valid' | 'unsigned' | 'broken';
  eventCount: number;
  signedSeq: number;
  checkpointCount: number;
  head: string | null;
  signedAt: string | null;
  reason: string | null;
  firstBadSeq: number | null;
  firstBadEvent: { type: string; at: string } | null;
  /** Whether the verdict came from the per-head cache (the log was not re-hashed for this view). */
  cached: boolean;
  /** The store against the heads its target anchored (docs/decisions/020). */
  anchors: AnchorVerdict;
}

const STATUS_LINE: Record<string, string> = {
  applied: '✅ Applied',
  rehearsed: '✅ Rehearsed (rolled back, nothing kept)',
  rolled_back: '↩️ Rolled back',
  failed: '❌ Failed',
  cancelled: '⏹️ Cancelled',
  rehearsal_failed: '❌ Rehearsal failed',
  rollback_failed: '❌ Rollback failed',
  interrupted: '⚠️ Interrupted',
  applying: '⏳ Applying',
  rolling_back: '⏳ Rolling back',
  rehearsing: '⏳ Rehearsing',
  ready: '⏳ Awaiting Execution (ready)',
  draft: '⏳ Awaiting Execution (draft)',
};

const PHASE_STATUS_WORDS: Record<PhaseStatus, string> = { done: 'done', failed: 'FAILED', stopped: 'did not complete (interrupted)', running: 'running' };
const ACTION_WORDS: Record<ReportAction['action'], string> = { execute: 'Apply', rollback: 'Rollback', rehearse: 'Rehearsal', cancel: 'Cancel' };

function formatMs(ms: number | null): string {
  if (ms === null) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} minutes`;
}

/** "Step 2 · Build the index (index-sku)", or the id alone when the outcome does not name the step. */
function stepName(statement: { stepId: string; stepLabel: string | null }): string {
  const id = statement.stepId || 'step';
  return statement.stepLabel ? `${statement.stepLabel} (${id})` : id;
}

/** A fenced block whose fence is longer than any backtick run inside it, so output cannot close it early. */
function fenced(lines: string[]): string {
  const body = lines.join('\n');
  const longest = Math.max(2, ...[...body.matchAll(/`+/g)].map((match) => match[0].length));
  const fence = '`'.repeat(longest + 1);
  return `${fence}\n${body}\n${fence}`;
}

/** CommonMark's line endings: a lone \r breaks a line in a viewer as \n does. */
const LINE_BREAK = /\r\n|\r|\n/;

/**
 * One issue as lines of the Issues block. Only the first line says when and who; a note is quoted
 * under its author line by line ("  > "), and so is every further line of any other issue's text,
 * so nothing a person typed can start a line that passes for another person's entry.
 */
function issueLines(issue: ReportIssue): string {
  const who = `${issue.at ? `${formatUtc(issue.at)} ` : ''}${issue.actor ?? ''}`;
  const quoted = (lines: string[]) => lines.map((line) => (line ? `  > ${line}` : '  >'));
  const lines = issue.text.split(LINE_BREAK);
  if (issue.kind === 'note') return [`${who} wrote:`, ...quoted(lines)].join('\n');
  const [first = '', ...rest] = lines;
  return [`${issue.actor ? `${who}: ` : who}${first}`, ...quoted(rest)].join('\n');
}

/**
 * The report as Markdown, in the shape of the runbook's "Execution Log" section: Executor,
 * Execution Time, Duration, Execution Output, Issues Encountered, Post-Execution Verification.
 */
const signedOffVia = (report: RunReport, by: string): string => {
  const via = report.signoffs.filter((signoff) => signoff.actor === by).at(-1)?.via;
  return via ? ` via ${via}` : '';
};

export function runReportMarkdown(header: ReportHeader, report: RunReport, signature: SignatureVerdict): string {
  const rehearsal = header.kind === 'rehearsal';
  const output: string[] = [];
  for (const phase of report.phases) {
    output.push(
      `[phase] ${phase.action && phase.action !== 'execute' ? `${phase.action}: ` : ''}${phase.phase}: ${formatMs(phase.actualMs)}${phase.plannedMs !== null ? ` (planned ${formatMs(phase.plannedMs)})` : ''} — ${PHASE_STATUS_WORDS[phase.status]}`
    );
  }
  for (const statement of report.statements) {
    output.push(
      `[${stepName(statement)} #${statement.index + 1}${statement.line !== null ? `, line ${statement.line}` : ''}] ${statement.command ?? 'statement'}` +
        ` — ${formatMs(statement.durationMs)}${statement.rowCount !== null ? `, ${statement.rowCount} row${statement.rowCount === 1 ? '' : 's'}` : ''}`
    );
    for (const notice of statement.notices) output.push(`    ${notice}`);
  }
  const failed = report.failedStatement;
  if (failed) {
    output.push(
      `[${stepName(failed)}${failed.index !== null ? ` #${failed.index + 1}` : ''}${failed.line !== null ? `, line ${failed.line}` : ''}] ${
        failed.cancelled ? 'CANCELLED' : 'FAILED'
      }: ` + `${failed.sqlstate ? `SQLSTATE ${failed.sqlstate} ` : ''}${failed.message}`
    );
  }
  if (output.length === 0) output.push('No statements were run.');

  const issues = report.issues.map(issueLines);
  if (issues.length === 0) issues.push('None');

  const verification: string[] = [];
  for (const run of report.verification) {
    verification.push(`${CHECK_PHASE_TITLES[run.phase] ?? run.phase} (${formatUtc(run.at)}, by ${run.actor}): ${run.passed ? 'PASSED' : 'FAILED'}`);
    for (const check of run.checks) {
      verification.push(
        `  ${check.status.toUpperCase().padEnd(7)} ${check.checkId} — expected ${check.expected ? describeExpectation(check.expected) : '—'}, actual ${compactJson(
          check.actual,
          200
        )}`
      );
    }
  }
  if (report.snapshot.rows.length > 0) {
    verification.push('Snapshot (before → after):');
    for (const row of report.snapshot.rows) {
      verification.push(`  ${row.checkId}: ${compactJson(row.before?.actual, 120)} → ${compactJson(row.after?.actual, 120)}`);
    }
  }
  if (verification.length === 0) verification.push('No verification checks were run.');

  const signatureLine =
    signature.status === 'valid'
      ? `valid — ${signature.checkpointCount} signed checkpoint${signature.checkpointCount === 1 ? '' : 's'}, through event ${signature.signedSeq} of ${
          signature.eventCount
        } (head ${signature.head ?? '—'})`
      : signature.status === 'unsigned'
      ? `not signed yet (${signature.eventCount} events, chain intact)`
      : `BROKEN${signature.firstBadSeq !== null ? ` at event ${signature.firstBadSeq}` : ''}: ${signature.reason ?? 'the stored log does not match what was signed'}`;
  const anchorLine =
    signature.anchors.status === 'anchored'
      ? `anchored on ${signature.anchors.target} (${signature.anchors.anchors} anchor${signature.anchors.anchors === 1 ? '' : 's'}, through event ${signature.anchors.throughSeq})`
      : signature.anchors.status === 'broken'
        ? `BROKEN: ${signature.anchors.reason}`
        : `${signature.anchors.status === 'none' ? 'none' : `ANCHOR ${signature.anchors.status.toUpperCase()}`}: ${signature.anchors.reason}`;

  const summary = report.failureSummary;
  const failureLines = summary
    ? [
        `> **${summary.cancelledBy ? `Cancelled by ${summary.cancelledBy}` : 'Failed'}** in ${summary.phase}: ${summary.what}${summary.line ? `, line ${summary.line}` : ''}${summary.sqlstate ? `, SQLSTATE ${summary.sqlstate}` : ''}  `,
        `> ${summary.message}  `,
        ...(summary.detail ? [`> DETAIL: ${summary.detail}  `] : []),
        ...(summary.hint ? [`> HINT: ${summary.hint}  `] : []),
        ...(summary.blockers.length > 0 ? [`> Blocked by ${blockersInWords(summary.blockers)}`] : []),
        '',
      ]
    : [];
  const actionLines = report.actions.map(
    (action) =>
      `- ${ACTION_WORDS[action.action]} by ${action.actor}${action.via ? ` via ${action.via}` : ''}: ${formatUtc(action.startedAt)} - ${action.finishedAt ? formatUtc(action.finishedAt) : 'not finished'}${
        action.durationMs !== null ? ` (${formatMs(action.durationMs)})` : ''
      }${action.state ? ` → ${action.state}` : ''}`,
  );
  return [
    `## Execution Log${rehearsal ? ' (rehearsal)' : ''}`,
    '',
    ...failureLines,
    `**Plan**: ${header.planTitle ? `${header.planTitle} (${header.planId})` : header.planId}  `,
    `**Checksum**: \`${header.planChecksum}\`  `,
    `**Target**: ${header.targetLabel} (\`${header.target}\`)  `,
    `**Run**: \`${header.runId}\` — ${rehearsal ? 'rehearsal' : 'execution'}  `,
    `**Executor**: ${header.executedBy ?? '—'}  `,
    `**Signed off by**: ${header.signedOffBy ? `${header.signedOffBy} at ${formatUtc(header.signedOffAt)}${signedOffVia(report, header.signedOffBy)}` : '—'}  `,
    `**Execution Time**: ${formatUtc(header.startedAt)} - ${formatUtc(header.finishedAt)}  `,
    `**Duration**: ${formatMs(header.durationMs)}`,
    '',
    ...(actionLines.length > 0 ? ['### Actions', ...actionLines, ''] : []),
    '### Execution Output',
    fenced(output),
    '',
    '### Issues Encountered',
    fenced(issues),
    '',
    '### Post-Execution Verification',
    fenced(verification),
    '',
    `**Status**: ${STATUS_LINE[header.state] ?? header.state}  `,
    `**Signed log**: ${signatureLine}  `,
    `**Anchors**: ${anchorLine}`,
    '',
  ].join('\n');
}
