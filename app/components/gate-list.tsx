import { StatusBadge } from './status-badge';

export interface GateItem {
  id: string;
  label: string;
  passed: boolean;
  detail: string;
  /** Judged only when executing (the typed target name, four-eyes against the executor). */
  atExecute?: boolean;
  waitsOn?: string;
}

/** Every go/no-go gate with its state, what it found, and who it waits on. */
export function GateList({ gates, label = 'Gates' }: { gates: GateItem[]; label?: string }) {
  return (
    <ul aria-label={label} className="divide-y divide-slate-100 rounded border border-slate-200 bg-white">
      {gates.map((gate) => {
        const status = gate.passed ? 'gate_closed' : gate.atExecute ? 'at_execute' : 'gate_open';
        return (
          <li key={gate.id} className="flex flex-col gap-1 px-2 py-1.5 text-xs sm:flex-row sm:items-start sm:gap-3">
            <span className="shrink-0 sm:w-24">
              <StatusBadge status={status} />
            </span>
            <span className="min-w-0 flex-1">
              <span className="font-medium text-ink">{gate.label}</span>
              <span className="block break-words text-ink-muted">{gate.detail}</span>
              {!gate.passed && gate.waitsOn ? <span className="block text-amber-900">Waiting on: {gate.waitsOn}</span> : null}
            </span>
          </li>
        );
      })}
    </ul>
  );
}
