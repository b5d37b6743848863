/**
 * The one status component: every state Runsheet shows (a run's, a plan's on a target, a check's)
 * is drawn here, by colour AND by icon and word, so it reads without colour too.
 */
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
  unknown: { tone: 'warn', label: 'Unknown' },
  invalid: { tone: 'bad', label: 'Invalid' },
  // a run's state
  draft: { tone: 'idle', label: 'Draft' },
  ready: { tone: 'info', label: 'Ready' },
  applying: { tone: 'busy', label: 'Applying' },
  failed: { tone: 'bad', label: 'Failed' },
  interrupted: { tone: 'warn', label: 'Interrupted' },
  rolling_back: { tone: 'busy', label: 'Rolling back' },
  rollback_failed: { tone: 'bad', label: 'Rollback failed' },
  rehearsing: { tone: 'busy', label: 'Rehearsing' },
  rehearsed: { tone: 'ok', label: 'Rehearsed' },
  rehearsal_failed: { tone: 'bad', label: 'Rehearsal failed' },
  // facts
  present: { tone: 'ok', label: 'Present' },
  absent: { tone: 'idle', label: 'Absent' },
  valid: { tone: 'ok', label: 'Valid' },
  not_valid: { tone: 'bad', label: 'Invalid' },
};

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

export function StatusBadge({ status, label, title }: { status: string; label?: string; title?: string }) {
  const info = statusInfo(status);
  return (
    <span
      className={`inline-flex items-center gap-1 whitespace-nowrap rounded px-1.5 py-0.5 text-xs font-medium ring-1 ring-inset ${TONE_CLASSES[info.tone]}`}
      title={title}
      data-status={status}
    >
      <span aria-hidden="true">{TONE_ICONS[info.tone]}</span>
      {label ?? info.label}
    </span>
  );
}
