/**
 * Folds a run's log into what the live view draws: attempts (each execute, rollback or rehearse
 * drive), their phases with planned vs actual time, steps with their statements, NOTICE output,
 * progress and failures. Pure and shared: the loader folds the events so far (a reload shows the
 * same page), the browser folds the same events plus those the stream brings.
 *
 * Payloads are read defensively: an event of an unknown type, or with a field missing, is shown
 * in the raw log and otherwise ignored, never an error.
 */

export interface TimelineEvent {
  seq: number;
  /** Database clock, ISO. */
  at: string;
  actor: string;
  role: string | null;
  type: string;
  payload: Record<string, unknown>;
}

export interface NoticeView {
  severity: string;
  message: string;
  detail?: string;
  hint?: string;
}

export interface BlockerView {
  pid: number;
  user?: string;
  application?: string;
  state?: string;
  query?: string;
  waitEvent?: string;
  lockMode?: string;
  relation?: string;
}

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
  /** 'stopped': the run was interrupted while the phase ran. */
  status: 'running' | 'done' | 'failed' | 'stopped';
  steps: StepView[];
  checks: ChecksView[];
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

/** States after which nothing more happens to a run unless a person starts something new (a rollback). */
export const FINAL_STATES: readonly string[] = ['applied', 'failed', 'interrupted', 'rolled_back', 'rollback_failed', 'rehearsed', 'rehearsal_failed'];

const ATTEMPT_STARTS: Record<string, AttemptAction> = { 'execute.started': 'execute', 'rollback.started': 'rollback', 'rehearse.started': 'rehearse' };

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
const obj = (value: unknown): Record<string, unknown> => (value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

function notices(value: unknown): NoticeView[] {
  return list(value).map((entry) => {
    const notice = obj(entry);
    return {
      severity: str(notice.severity) ?? 'NOTICE',
      message: str(notice.message) ?? '',
      ...(str(notice.detail) ? { detail: str(notice.detail) } : {}),
      ...(str(notice.hint) ? { hint: str(notice.hint) } : {}),
    };
  });
}

function blockers(value: unknown): BlockerView[] {
  return list(value).map((entry) => {
    const blocker = obj(entry);
    const view: BlockerView = { pid: num(blocker.pid) ?? 0 };
    for (const key of ['user', 'application', 'state', 'query', 'waitEvent', 'lockMode', 'relation'] as const) {
      const text = str(blocker[key]);
      if (text) view[key] = text;
    }
    return view;
  });
}

/** The initial state is the run's state when the events were read; 'state.changed' events move it on. */
export function foldTimeline(events: readonly TimelineEvent[], initialState = 'draft'): TimelineView {
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

  for (const event of events) {
    view.lastSeq = Math.max(view.lastSeq, event.seq);
    const payload = obj(event.payload);
    const started = ATTEMPT_STARTS[event.type];
    if (started) {
      attempt = { action: started, seq: event.seq, startedAt: event.at, actor: event.actor, phases: [], notes: [] };
      phase = undefined;
      view.attempts.push(attempt);
      continue;
    }
    switch (event.type) {
      case 'state.changed': {
        const to = str(payload.to);
        if (to) {
          view.state = to;
          view.stateChanges.push({ seq: event.seq, at: event.at, actor: event.actor, from: str(payload.from) ?? '', to, reason: str(payload.reason) ?? '' });
          // A drive that ends without its '.finished' event (the process driving it died): close it here.
          if (attempt && to === 'interrupted') {
            attempt.finishedState = to;
            attempt.finishedAt = event.at;
            for (const open of attempt.phases) {
              if (open.status === 'running') open.status = 'stopped';
              for (const step of open.steps) if (step.status === 'running') step.status = 'stopped';
            }
            attempt = undefined;
            phase = undefined;
          }
        }
        break;
      }
      case 'phase.started': {
        if (!attempt) break;
        phase = { phase: str(payload.phase) ?? 'phase', startedAt: event.at, plannedMs: num(payload.plannedMs) ?? null, status: 'running', steps: [], checks: [] };
        attempt.phases.push(phase);
        break;
      }
      case 'phase.completed': {
        const name = str(payload.phase);
        const target = attempt?.phases.findLast((entry) => entry.phase === name) ?? phase;
        if (!target) break;
        target.actualMs = num(payload.actualMs);
        target.plannedMs = num(payload.plannedMs) ?? target.plannedMs;
        target.ok = payload.ok !== false;
        target.status = target.ok ? 'done' : 'failed';
        if (target === phase) phase = undefined;
        break;
      }
      case 'step.started': {
        const current = ensurePhase(event.at);
        if (!current) break;
        current.steps.push({
          stepId: str(payload.stepId) ?? 'step',
          title: str(payload.title) ?? str(payload.stepId) ?? 'step',
          file: str(payload.file),
          transactional: payload.transactional !== false,
          statementCount: num(payload.statementCount) ?? null,
          statements: [],
          status: 'running',
          notes: [],
        });
        break;
      }
      case 'statement.completed': {
        const step = stepOf(str(payload.stepId) ?? '');
        if (!step) break;
        step.statements.push({
          index: num(payload.index) ?? step.statements.length,
          line: num(payload.line) ?? 0,
          endLine: num(payload.endLine) ?? num(payload.line) ?? 0,
          command: str(payload.command) ?? '',
          durationMs: num(payload.durationMs) ?? 0,
          rowCount: num(payload.rowCount) ?? null,
          notices: notices(payload.notices),
          blockers: blockers(payload.blockers),
        });
        break;
      }
      case 'progress': {
        const step = stepOf(str(payload.stepId) ?? '');
        if (!step) break;
        step.progress = { done: num(payload.done) ?? 0, total: num(payload.total) ?? null, rate: num(payload.rate) ?? null, etaMs: num(payload.etaMs) ?? null, at: event.at };
        break;
      }
      case 'step.retry': {
        const step = stepOf(str(payload.stepId) ?? '');
        step?.notes.push({
          at: event.at,
          text: `Lock timeout${num(payload.line) ? ` at line ${num(payload.line)}` : ''}: try ${(num(payload.attempt) ?? 0) + 1} of ${(num(payload.retries) ?? 0) + 1} after ${num(payload.delayMs) ?? 0} ms${blockers(payload.blockers).length ? ` (blocked by pid ${blockers(payload.blockers).map((blocker) => blocker.pid).join(', ')})` : ''}`,
        });
        break;
      }
      case 'backfill.started':
      case 'backfill.paused':
      case 'backfill.resumed':
      case 'backfill.resumed_from':
      case 'backfill.restarted':
      case 'backfill.completed': {
        const step = stepOf(str(payload.stepId) ?? '');
        if (!step) break;
        if (event.type === 'backfill.paused') step.paused = true;
        if (event.type === 'backfill.resumed' || event.type === 'backfill.completed') step.paused = false;
        const text: Record<string, string> = {
          'backfill.started': `Backfill of ${str(payload.table) ?? 'the table'} by ${str(payload.key) ?? 'key'}, ${num(payload.batchSize) ?? '?'} rows a batch`,
          'backfill.paused': `Paused by ${str(payload.by) ?? 'someone'}${str(payload.reason) ? `: ${str(payload.reason)}` : ''} (every batch so far committed; nothing locked)`,
          'backfill.resumed': `Resumed by ${str(payload.by) ?? 'someone'}`,
          'backfill.resumed_from': `Resumed after key ${String(payload.lastKey ?? '?')}, where an earlier run stopped`,
          'backfill.restarted': `Started over: ${str(payload.reason) ?? 'the earlier progress does not apply'}`,
          'backfill.completed': `Backfill complete: ${num(payload.rowsDone) ?? '?'} rows in ${num(payload.batches) ?? '?'} batches`,
        };
        step.notes.push({ at: event.at, text: text[event.type]! });
        break;
      }
      case 'step.completed': {
        const step = stepOf(str(payload.stepId) ?? '');
        if (!step) break;
        step.status = payload.ok === false ? 'failed' : 'done';
        step.durationMs = num(payload.durationMs);
        break;
      }
      case 'step.failed': {
        const stepId = str(payload.stepId) ?? str(obj(payload.failure).stepId) ?? 'step';
        let step = stepOf(stepId);
        if (!step) {
          // Cancelled before the step started: no step.started event.
          const current = ensurePhase(event.at);
          if (!current) break;
          step = { stepId, title: stepId, transactional: true, statementCount: null, statements: [], status: 'failed', notes: [] };
          current.steps.push(step);
        }
        const failure = obj(payload.failure);
        step.status = 'failed';
        step.failure = {
          stepId,
          statementIndex: num(failure.statementIndex) ?? -1,
          line: num(failure.line) ?? 0,
          ...(str(failure.sqlstate) ? { sqlstate: str(failure.sqlstate) } : {}),
          message: str(failure.message) ?? str(payload.summary) ?? 'the step failed',
          ...(str(failure.detail) ? { detail: str(failure.detail) } : {}),
          ...(str(failure.hint) ? { hint: str(failure.hint) } : {}),
          ...(str(payload.summary) ? { summary: str(payload.summary) } : {}),
          ...(str(payload.timeout) ? { timeout: str(payload.timeout) } : {}),
          blockers: blockers(failure.blockers),
          cancelled: failure.cancelled === true,
          ...(str(payload.cancelledBy) ? { cancelledBy: str(payload.cancelledBy) } : {}),
          retryable: payload.retryable === true,
          ...(str(payload.note) ? { note: str(payload.note) } : {}),
          at: event.at,
        };
        break;
      }
      case 'checks.ran': {
        const checks: ChecksView = {
          phase: str(payload.phase) ?? '',
          passed: payload.passed !== false,
          failed: list(payload.failed).map(String),
          skipped: list(payload.skipped).map(String),
          results: list(payload.results).map((entry) => {
            const result = obj(entry);
            return {
              checkId: str(result.checkId) ?? '',
              title: str(result.title) ?? str(result.checkId) ?? '',
              passed: result.passed === true,
              skipped: result.skipped === true,
              actual: result.actual,
              durationMs: num(result.durationMs) ?? 0,
              reason: str(result.reason) ?? null,
            };
          }),
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
      case 'lock.held': {
        if (attempt) {
          attempt.lockHeld = true;
          attempt.finishedAt = event.at;
          attempt.finishedState = 'not started';
          attempt.notes.push('the target\'s advisory lock was held by another session: nothing was changed');
          attempt = undefined;
          phase = undefined;
        }
        break;
      }
      case 'run.error': {
        if (attempt) attempt.error = str(payload.message) ?? 'the engine stopped';
        break;
      }
      case 'commit.settled': {
        attempt?.notes.push(`the COMMIT's answer was lost; the target's ledger says it ${payload.landed === true ? 'landed' : 'did not land'}`);
        break;
      }
      case 'rehearsal.transaction.opened':
      case 'rehearsal.transaction.rolled_back': {
        const note = str(payload.note);
        if (note) attempt?.notes.push(note);
        break;
      }
      case 'note.added': {
        view.notes.push({ seq: event.seq, at: event.at, actor: event.actor, role: event.role, text: str(payload.text) ?? '' });
        break;
      }
      default: {
        if (event.type.endsWith('.finished')) {
          if (attempt) {
            attempt.finishedState = str(payload.state) ?? view.state;
            attempt.finishedAt = event.at;
            for (const open of attempt.phases) if (open.status === 'running') open.status = 'failed';
            attempt = undefined;
            phase = undefined;
          }
        } else if (event.type.endsWith('.refused')) {
          view.refusals.push({
            seq: event.seq,
            type: event.type,
            at: event.at,
            actor: event.actor,
            reason: str(payload.reason) ?? '',
            openGates: list(payload.openGates).map((entry) => {
              const gate = obj(entry);
              return { id: str(gate.id) ?? '', label: str(gate.label) ?? str(gate.id) ?? '', detail: str(gate.detail) ?? '' };
            }),
          });
        }
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
