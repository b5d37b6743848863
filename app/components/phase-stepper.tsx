import { StatusBadge } from './status-badge';

export interface PhaseStep {
  id: string;
  label: string;
  status: 'done' | 'current' | 'waiting' | 'blocked' | 'failed';
  /** Where things stand and who it waits on, in a few words. */
  detail: string;
  /** The section of the page it links to ("#prechecks"). */
  anchor: string;
}

const BAR: Record<PhaseStep['status'], string> = {
  done: 'border-emerald-600',
  current: 'border-blue-600',
  waiting: 'border-slate-300',
  blocked: 'border-amber-500',
  failed: 'border-red-600',
};

/** Prerequisites → Pre-checks → Execute → Verify → Post-execution → Report: where the run stands and what waits on whom. */
export function PhaseStepper({ steps }: { steps: PhaseStep[] }) {
  return (
    <nav aria-label="Phases" className="mt-3">
      <ol className="grid grid-cols-2 gap-1 sm:grid-cols-3 lg:grid-cols-6">
        {steps.map((step, index) => (
          <li key={step.id} aria-current={step.status === 'current' || step.status === 'blocked' ? 'step' : undefined}>
            <a
              href={step.anchor}
              className={`block h-full rounded-sm border-t-4 bg-white px-2 py-1.5 ring-1 ring-slate-200 hover:bg-slate-50 ${BAR[step.status]}`}
            >
              <span className="block text-xs font-semibold">
                <span className="text-ink-muted">{index + 1}.</span> {step.label}
              </span>
              <span className="mt-1 flex flex-wrap items-start gap-x-1.5 gap-y-0.5">
                <StatusBadge status={step.status} />
                <span className="min-w-0 flex-1 basis-24 text-[11px] leading-snug text-ink-muted [overflow-wrap:anywhere]">{step.detail}</span>
              </span>
            </a>
          </li>
        ))}
      </ol>
    </nav>
  );
}
