/**
 * The one status component: every state Runsheet shows (a run's, a plan's on a target, a check's)
 * is drawn here, by colour AND by icon and word, so it reads without colour too.
 */
import type { RunState } from '../../db/run-lifecycle';

export type StatusTone = 'ok' | 'bad' | 'warn' | 'busy' | 'idle' | 'info';

const STATUS: Record<string, { tone: StatusTone; label: string }> = {
  // checks
  pass: { tone: 'ok', label: 'Pass' },
  fail: { tone: 'bad', label: 'Fail' },
  error: { tone: 'bad', label: 'Error' },
  skipped: { tone: 'idle', label: 'Skipped' },
  pending: { tone: 'idle', label: 'Not run' },
  stale: { tone: 'warn', label: 'Stale' },
  cannot_see: { tone: 'warn', label: 'Cannot see' },
  // a plan's state on a target (from the target's ledger)
  not_applied: { tone: 'idle', label: 'Not applied' },
  applied: { tone: 'ok', label: 'Applied' },
  rolled_back: { tone: 'info', label: 'Rolled back' },
  drift: { tone: 'warn', label: 'Drift' },
  partial: { tone: 'warn', label: 'Partly applied' },
  unknown: { tone: 'warn', label: 'Unknown' },
  invalid: { tone: 'bad', label: 'Invalid' },
  // a plan's own review (review: pending in plan.yaml), not a run's state
  under_review: { tone: 'warn', label: 'Plan under review' },
  // a run's state
  draft: { tone: 'idle', label: 'Draft' },
  ready: { tone: 'info', label: 'Ready' },
  applying: { tone: 'busy', label: 'Applying' },
  failed: { tone: 'bad', label: 'Failed' },
  interrupted: { tone: 'warn', label: 'Interrupted' },
  rolling_back: { tone: 'busy', label: 'Rolling back' },
  rollback_failed: { tone: 'bad', label: 'Rollback failed' },
  watching: { tone: 'busy', label: 'Watching' },
  watched: { tone: 'ok', label: 'Watched' },
  watch_alarm: { tone: 'bad', label: 'Watch alarm' },
  rehearsing: { tone: 'busy', label: 'Rehearsing' },
  rehearsed: { tone: 'ok', label: 'Rehearsed' },
  rehearsal_failed: { tone: 'bad', label: 'Rehearsal failed' },
  superseded: { tone: 'idle', label: 'Superseded' },
  // facts
  present: { tone: 'ok', label: 'Present' },
  absent: { tone: 'idle', label: 'Absent' },
  valid: { tone: 'ok', label: 'Valid' },
  not_valid: { tone: 'bad', label: 'Invalid' },
  // go/no-go gates
  gate_closed: { tone: 'ok', label: 'Go' },
  gate_open: { tone: 'bad', label: 'No-go' },
  at_execute: { tone: 'idle', label: 'At execute' },
  // prerequisites, success criteria, sign-off
  ticked: { tone: 'ok', label: 'Ticked' },
  not_ticked: { tone: 'idle', label: 'Not ticked' },
  optional: { tone: 'idle', label: 'Optional' },
  signed_off: { tone: 'ok', label: 'Signed off' },
  // the phase stepper
  done: { tone: 'ok', label: 'Done' },
  current: { tone: 'busy', label: 'In progress' },
  waiting: { tone: 'idle', label: 'Waiting' },
  blocked: { tone: 'warn', label: 'Blocked' },
  // the live view
  running: { tone: 'busy', label: 'Running' },
  over_estimate: { tone: 'warn', label: 'Over estimate' },
  slowest: { tone: 'warn', label: 'Slowest' },
  cancelled: { tone: 'warn', label: 'Cancelled' },
} satisfies Record<RunState, { tone: StatusTone; label: string }> & Record<string, { tone: StatusTone; label: string }>;

const TONE_CLASSES: Record<StatusTone, string> = {
  ok: 'bg-emerald-50 text-emerald-800 ring-emerald-600/30',
  bad: 'bg-red-50 text-red-800 ring-red-600/30',
  warn: 'bg-amber-50 text-amber-900 ring-amber-600/40',
  busy: 'bg-blue-50 text-blue-800 ring-blue-600/30',
  idle: 'bg-slate-100 text-slate-700 ring-slate-500/30',
  info: 'bg-violet-50 text-violet-800 ring-violet-600/30',
};

/** Distinct shapes per tone, so colour is never the only signal. */
const TONE_ICONS: Record<StatusTone, string> = {
  ok: '✓',
  bad: '✕',
  warn: '!',
  busy: '●',
  idle: '○',
  info: '↺',
};

export function statusInfo(status: string): { tone: StatusTone; label: string } {
  return STATUS[status] ?? { tone: 'idle', label: status.replace(/_/g, ' ') };
}

/**
 * `rehearsal` marks a rehearsal run's state (a rehearsal changes nothing on the target): a dashed
 * outline and the word REHEARSAL before the state, so it is never mistaken for the real thing.
 */
export function StatusBadge({ status, label, title, rehearsal = false }: { status: string; label?: string; title?: string; rehearsal?: boolean }) {
  const info = statusInfo(status);
  return (
    <span
      className={`inline-flex items-center gap-1 whitespace-nowrap rounded px-1.5 py-0.5 text-xs font-medium ring-1 ring-inset ${TONE_CLASSES[info.tone]} ${rehearsal ? 'outline-1 outline-dashed outline-offset-1 outline-violet-500' : ''}`}
      title={title}
      data-status={status}
      data-rehearsal={rehearsal ? 'true' : undefined}
    >
      {rehearsal ? <span className="font-bold tracking-wide text-violet-800">REHEARSAL ·</span> : null}
      <span aria-hidden="true">{TONE_ICONS[info.tone]}</span>
      {label ?? info.label}
    </span>
  );
}

/** The chip that marks a rehearsal wherever a run shows (lists, headers, banners). */
export function RehearsalChip() {
  return (
    <span className="inline-flex items-center rounded border border-dashed border-violet-500 bg-violet-50 px-1.5 py-0.5 text-[11px] font-bold tracking-wide text-violet-800" title="A rehearsal runs everything in a transaction that is rolled back: it changes nothing">
      REHEARSAL
    </span>
  );
}
