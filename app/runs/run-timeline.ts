/**
 * Folds a run's log into what the live view draws: attempts (each execute, rollback or rehearse
 * drive), their phases with planned vs actual time, steps with their statements, NOTICE output,
 * progress and failures. Pure and shared: the loader folds the events so far (a reload shows the
 * same page), the browser folds the same events plus those the stream brings.
 *
 * Events are the run-event union (run-events.ts): an event this version does not know arrives as
 * 'unrecognised', is shown in the raw log, and is otherwise ignored, never an error.
 */
import type { Blocker, RunStop } from '../../db/schema/run-outcome';
import { isSettledState, phaseStatusOf, type PhaseStatus, type RunState } from '../../db/run-lifecycle';
import { driveEdgeOf, type RunEvent } from './run-events';

export interface NoticeView {
  severity: string;
  message: string;
  detail?: string;
  hint?: string;
}

export type BlockerView = Blocker;

export interface StatementView {
  index: number;
  line: number;
  endLine: number;
  command: string;
  durationMs: number;
  rowCount: number | null;
  notices: NoticeView[];
  blockers: BlockerView[];
}

export interface FailureView {
  stepId: string;
  statementIndex: number;
  line: number;
  sqlstate?: string;
  message: string;
  detail?: string;
  hint?: string;
  summary?: string;
  timeout?: string;
  blockers: BlockerView[];
  cancelled: boolean;
  cancelledBy?: string;
  retryable: boolean;
  note?: string;
  at: string;
}

export interface ProgressView {
  done: number;
  total: number | null;
  rate: number | null;
  etaMs: number | null;
  at: string;
  /** The total (and the rows still to do) is the planner's estimate, not a count. */
  estimated?: boolean;
  /** A backfill until no rows are left: the rows still to do. */
  remaining?: number | null;
  /** Its final pass (without SKIP LOCKED) is running. */
  finalPass?: boolean;
}

export interface StepView {
  stepId: string;
  title: string;
  file?: string;
  transactional: boolean;
  statementCount: number | null;
  statements: StatementView[];
  status: 'running' | 'done' | 'failed' | 'stopped';
  durationMs?: number;
  failure?: FailureView;
  progress?: ProgressView;
  /** What happened to the step besides its statements: retries after a lock timeout, backfill pauses. */
  notes: { at: string; text: string }[];
  /** A batched backfill paused between batches (nothing locked while paused). */
  paused?: boolean;
}

export interface ChecksView {
  phase: string;
  passed: boolean;
  failed: string[];
  skipped: string[];
  results: { checkId: string; title: string; passed: boolean; skipped: boolean; actual: unknown; durationMs: number; reason?: string | null }[];
  at: string;
}

export interface PhaseView {
  phase: string;
  startedAt: string;
  plannedMs: number | null;
  actualMs?: number;
  ok?: boolean;
  /** db/run-lifecycle.ts phaseStatusOf: 'stopped' when the run was interrupted while the phase ran. */
  status: PhaseStatus;
  steps: StepView[];
  checks: ChecksView[];
}

/** A session of the run that waited (or waits) for a lock, and who blocked it. */
export interface WaitView {
  pid: number;
  waitingFor: string;
  phase: string | null;
  waitEvent: string;
  since: string;
  relation: string | null;
  query: string | null;
  lockTimeoutMs: number | null;
  blockers: BlockerView[];
  /** When the run stopped waiting (undefined while it waits). */
  endedAt?: string;
  waitedMs?: number;
}

export type AttemptAction = 'execute' | 'rollback' | 'rehearse';

export interface AttemptView {
  action: AttemptAction;
  seq: number;
  startedAt: string;
  actor: string;
  phases: PhaseView[];
  /** The state the attempt ended in; undefined while it runs. */
  finishedState?: string;
  finishedAt?: string;
  /** The attempt never started: the target's advisory lock was held. */
  lockHeld?: boolean;
  error?: string;
  cancelRequested?: { by: string; at: string };
  /** Every lock wait longer than a second, open ones last seen. */
  waits: WaitView[];
  /** Where the drive stopped before its end (from its outcome): the failure summary. */
  stoppedAt?: RunStop;
  notes: string[];
}

export interface RefusalView {
  seq: number;
  type: string;
  at: string;
  actor: string;
  reason: string;
  openGates: { id: string; label: string; detail: string }[];
}

export interface TimelineView {
  state: string;
  attempts: AttemptView[];
  refusals: RefusalView[];
  notes: { seq: number; at: string; actor: string; role: string | null; text: string }[];
  stateChanges: { seq: number; at: string; actor: string; from: string; to: string; reason: string }[];
  lastSeq: number;
}

/** Whether nothing more happens to a run by itself (a stream can end; a person may start a rollback). */
export const isFinalState = (state: string): boolean => isSettledState(state as RunState);

const BACKFILL_NOTES = {
  'backfill.started': (p: { table: string; key: string; batchSize: number; until?: string; condition?: string }) =>
    p.until === 'no_rows' ? `Backfill of ${p.table} until no row matches ${p.condition ?? 'its condition'}, ${p.batchSize} rows a batch` : `Backfill of ${p.table} by ${p.key}, ${p.batchSize} rows a batch`,
  'backfill.paused': (p: { by: string | null; reason?: string }) => `Paused by ${p.by ?? 'someone'}${p.reason ? `: ${p.reason}` : ''} (every batch so far committed; nothing locked)`,
  'backfill.resumed': (p: { by: string | null }) => `Resumed by ${p.by ?? 'someone'}`,
  'backfill.resumed_from': (p: { lastKey: string }) => `Resumed after key ${p.lastKey}, where an earlier run stopped`,
  'backfill.restarted': (p: { reason: string }) => `Started over: ${p.reason}`,
  'backfill.completed': (p: { rowsDone: number; batches: number; finalPassRows?: number }) =>
    `Backfill complete: ${p.rowsDone} rows in ${p.batches} batches${p.finalPassRows !== undefined ? ` (${p.finalPassRows} in the final pass)` : ''}`,
  'backfill.final_pass': (p: { rowsDone: number }) => `Final pass after ${p.rowsDone} rows: the UPDATE again without SKIP LOCKED, for rows other sessions held`,
  'backfill.no_progress': (p: { batch: number; previousBatch: number; condition: string }) =>
    `No progress: batches ${p.previousBatch} and ${p.batch} changed rows that all still match ${p.condition}; batch ${p.batch} was rolled back`,
};

/** The initial state is the run's state when the events were read; 'state.changed' events move it on. */
export function foldTimeline(events: readonly RunEvent[], initialState = 'draft'): TimelineView {
  const view: TimelineView = { state: initialState, attempts: [], refusals: [], notes: [], stateChanges: [], lastSeq: 0 };
  let attempt: AttemptView | undefined;
  let phase: PhaseView | undefined;
  const stepOf = (stepId: string): StepView | undefined => {
    for (const candidate of [...(attempt?.phases ?? [])].reverse()) {
      const step = candidate.steps.findLast((entry) => entry.stepId === stepId);
      if (step) return step;
    }
    return undefined;
  };
  const ensurePhase = (at: string): PhaseView | undefined => {
    if (!attempt) return undefined;
    if (!phase) {
      phase = { phase: 'steps', startedAt: at, plannedMs: null, status: 'running', steps: [], checks: [] };
      attempt.phases.push(phase);
    }
    return phase;
  };
  const endAttempt = (state: string, at: string, how: 'finished' | 'interrupted') => {
    if (!attempt) return;
    attempt.finishedState = state;
    attempt.finishedAt = at;
    for (const wait of attempt.waits) if (!wait.endedAt) wait.endedAt = at;
    for (const open of attempt.phases) {
      if (open.status === 'running') open.status = phaseStatusOf({ completed: false }, how);
      if (how === 'interrupted') for (const step of open.steps) if (step.status === 'running') step.status = 'stopped';
    }
    attempt = undefined;
    phase = undefined;
  };

  for (const event of events) {
    view.lastSeq = Math.max(view.lastSeq, event.seq);
    const drive = driveEdgeOf(event);
    if (drive?.edge === 'started') {
      attempt = { action: drive.action, seq: event.seq, startedAt: event.at, actor: event.actor, phases: [], waits: [], notes: [] };
      phase = undefined;
      view.attempts.push(attempt);
      continue;
    }
    switch (event.type) {
      case 'state.changed': {
        const { from, to, reason } = event.payload;
        view.state = to;
        view.stateChanges.push({ seq: event.seq, at: event.at, actor: event.actor, from, to, reason });
        // A drive that ends without its '.finished' event (the process driving it died): close it here.
        if (to === 'interrupted') endAttempt(to, event.at, 'interrupted');
        break;
      }
      case 'phase.started': {
        if (!attempt) break;
        phase = { phase: event.payload.phase, startedAt: event.at, plannedMs: event.payload.plannedMs, status: 'running', steps: [], checks: [] };
        attempt.phases.push(phase);
        break;
      }
      case 'phase.completed': {
        const target = attempt?.phases.findLast((entry) => entry.phase === event.payload.phase) ?? phase;
        if (!target) break;
        target.actualMs = event.payload.actualMs;
        target.plannedMs = event.payload.plannedMs ?? target.plannedMs;
        target.ok = event.payload.ok;
        target.status = phaseStatusOf({ completed: true, ok: event.payload.ok }, 'on');
        if (target === phase) phase = undefined;
        break;
      }
      case 'step.started': {
        const current = ensurePhase(event.at);
        if (!current) break;
        const { stepId, title, file, transactional, statementCount } = event.payload;
        current.steps.push({ stepId, title, file, transactional, statementCount, statements: [], status: 'running', notes: [] });
        break;
      }
      case 'step.skipped': {
        const current = ensurePhase(event.at);
        if (!current) break;
        const { stepId, title, transactional, reason } = event.payload;
        current.steps.push({ stepId, title, transactional, statementCount: null, statements: [], status: 'done', notes: [{ at: event.at, text: `Skipped: ${reason}` }] });
        break;
      }
      case 'statement.completed': {
        const step = stepOf(event.payload.stepId);
        if (!step) break;
        const { index, line, endLine, command, durationMs, rowCount, notices } = event.payload;
        step.statements.push({ index, line, endLine, command, durationMs, rowCount, notices, blockers: event.payload.blockers ?? [] });
        break;
      }
      case 'progress': {
        const step = stepOf(event.payload.stepId);
        if (!step) break;
        const { done, total, rate, etaMs, totalEstimated, remaining, finalPass } = event.payload;
        step.progress = { done, total, rate, etaMs, at: event.at, ...(totalEstimated ? { estimated: true } : {}), ...(remaining !== undefined ? { remaining } : {}), ...(finalPass ? { finalPass } : {}) };
        break;
      }
      case 'step.retry': {
        const { stepId, line, attempt: tried, retries, delayMs, blockers } = event.payload;
        stepOf(stepId)?.notes.push({
          at: event.at,
          text: `Lock timeout${line ? ` at line ${line}` : ''}: try ${tried + 1} of ${retries + 1} after ${delayMs} ms${blockers.length ? ` (blocked by pid ${blockers.map((blocker) => blocker.pid).join(', ')})` : ''}`,
        });
        break;
      }
      case 'backfill.started':
      case 'backfill.paused':
      case 'backfill.resumed':
      case 'backfill.resumed_from':
      case 'backfill.restarted':
      case 'backfill.final_pass':
      case 'backfill.no_progress':
      case 'backfill.completed': {
        const step = stepOf(event.payload.stepId);
        if (!step) break;
        if (event.type === 'backfill.paused') step.paused = true;
        if (event.type === 'backfill.resumed' || event.type === 'backfill.completed') step.paused = false;
        step.notes.push({ at: event.at, text: (BACKFILL_NOTES[event.type] as (payload: typeof event.payload) => string)(event.payload) });
        break;
      }
      case 'step.completed': {
        const step = stepOf(event.payload.stepId);
        if (!step) break;
        step.status = event.payload.ok ? 'done' : 'failed';
        step.durationMs = event.payload.durationMs;
        break;
      }
      case 'step.failed': {
        const { stepId, failure } = event.payload;
        let step = stepOf(stepId);
        if (!step) {
          // Cancelled before the step started: no step.started event.
          const current = ensurePhase(event.at);
          if (!current) break;
          step = { stepId, title: stepId, transactional: true, statementCount: null, statements: [], status: 'failed', notes: [] };
          current.steps.push(step);
        }
        step.status = 'failed';
        step.failure = {
          stepId,
          statementIndex: failure.statementIndex,
          line: failure.line,
          ...(failure.sqlstate ? { sqlstate: failure.sqlstate } : {}),
          message: failure.message || event.payload.summary || 'the step failed',
          ...(failure.detail ? { detail: failure.detail } : {}),
          ...(failure.hint ? { hint: failure.hint } : {}),
          ...(event.payload.summary ? { summary: event.payload.summary } : {}),
          ...(event.payload.timeout ? { timeout: event.payload.timeout } : {}),
          blockers: failure.blockers,
          cancelled: failure.cancelled,
          ...(event.payload.cancelledBy ? { cancelledBy: event.payload.cancelledBy } : {}),
          retryable: event.payload.retryable === true,
          ...(event.payload.note ? { note: event.payload.note } : {}),
          at: event.at,
        };
        break;
      }
      case 'checks.ran': {
        const { phase: checkPhase, passed, failed, skipped, results } = event.payload;
        const checks: ChecksView = {
          phase: checkPhase,
          passed,
          failed,
          skipped,
          results: results.map((result) => ({
            checkId: result.checkId,
            title: result.title,
            passed: result.passed,
            skipped: result.skipped,
            actual: result.actual,
            durationMs: result.durationMs,
            reason: result.reason,
          })),
          at: event.at,
        };
        // Inside a drive the checks belong to its phase; before one they are the preparation's.
        if (attempt && !attempt.finishedState && phase) phase.checks.push(checks);
        break;
      }
      case 'cancel.requested': {
        if (attempt && !attempt.finishedState) attempt.cancelRequested = { by: event.actor, at: event.at };
        break;
      }
      case 'wait.started': {
        if (!attempt) break;
        const { pid, waitingFor, phase: waitPhase, waitEvent, since, relation, query, lockTimeoutMs, blockers } = event.payload;
        attempt.waits.push({ pid, waitingFor, phase: waitPhase, waitEvent, since, relation, query, lockTimeoutMs, blockers });
        break;
      }
      case 'wait.changed': {
        const open = attempt?.waits.findLast((wait) => wait.pid === event.payload.pid && !wait.endedAt);
        if (open) open.blockers = event.payload.blockers;
        break;
      }
      case 'wait.ended': {
        const open = attempt?.waits.findLast((wait) => wait.pid === event.payload.pid && !wait.endedAt);
        if (open) {
          open.endedAt = event.at;
          open.waitedMs = event.payload.waitedMs;
        }
        break;
      }
      case 'cancel.signalled': {
        const { signal, pids, by } = event.payload;
        attempt?.notes.push(`${signal === 'cancel' ? 'pg_cancel_backend' : 'pg_terminate_backend'} sent to ${pids.length > 0 ? `pid ${pids.join(', ')}` : 'no busy session'} for ${by}'s cancel`);
        break;
      }
      case 'lock.held': {
        if (attempt) {
          attempt.lockHeld = true;
          attempt.notes.push("the target's advisory lock was held by another session: nothing was changed");
          endAttempt('not started', event.at, 'finished');
        }
        break;
      }
      case 'run.error': {
        if (attempt) attempt.error = event.payload.message;
        break;
      }
      case 'commit.settled': {
        attempt?.notes.push(`the COMMIT's answer was lost; the target's ledger says it ${event.payload.landed ? 'landed' : 'did not land'}`);
        break;
      }
      case 'rehearsal.transaction.opened':
      case 'rehearsal.transaction.rolled_back': {
        attempt?.notes.push(event.payload.note);
        break;
      }
      case 'note.added': {
        view.notes.push({ seq: event.seq, at: event.at, actor: event.actor, role: event.role, text: event.payload.text });
        break;
      }
      case 'execute.finished':
      case 'rollback.finished':
      case 'rehearse.finished': {
        const outcome = event.payload.outcome;
        const stoppedAt = event.type === 'rollback.finished' ? outcome.rollback?.stoppedAt : outcome.stoppedAt;
        if (attempt && stoppedAt) attempt.stoppedAt = stoppedAt;
        endAttempt(event.payload.state, event.at, 'finished');
        break;
      }
      case 'execute.refused':
      case 'rollback.refused':
      case 'rehearse.refused':
      case 'cancel.refused':
      case 'action.refused': {
        const payload = event.payload;
        view.refusals.push({
          seq: event.seq,
          type: event.type,
          at: event.at,
          actor: event.actor,
          reason: payload.reason,
          openGates: ('openGates' in payload ? (payload.openGates ?? []) : []).map((gate) => ({ id: gate.id, label: gate.label, detail: gate.detail })),
        });
        break;
      }
    }
  }
  return view;
}

/** The newest failure of an attempt (the one the live view opens by itself). */
export function failureOf(attempt: AttemptView): { phase: PhaseView; step: StepView; failure: FailureView } | undefined {
  for (const phase of [...attempt.phases].reverse()) {
    for (const step of [...phase.steps].reverse()) if (step.failure) return { phase, step, failure: step.failure };
  }
  return undefined;
}

/** Phase names as the engine logs them, in words. */
export const PHASE_LABELS: Record<string, string> = {
  snapshot: 'Snapshot',
  apply: 'Apply',
  verification: 'Verification',
  post_execution: 'Post-execution validation',
  rollback: 'Rollback',
  rollback_verification: 'Rollback verification',
  steps: 'Steps',
};

export const phaseLabel = (phase: string): string => PHASE_LABELS[phase] ?? phase.replace(/_/g, ' ');
