import { CopyButton } from './copy-button';

/** A team message as the plan words it, filled from the run's facts, ready to paste. */
export function TeamMessage({ title, notify, text, unfilled }: { title: string; notify: string[]; text: string; unfilled: string[] }) {
  return (
    <div className="rounded border border-slate-200 bg-white p-3" role="group" aria-label={title}>
      <div className="flex items-center gap-2">
        <h3 className="text-sm font-semibold">{title}</h3>
        <div className="ml-auto">
          <CopyButton text={text} label={`Copy ${title.toLowerCase()}`} />
        </div>
      </div>
      {notify.length > 0 ? <p className="mt-1 text-xs text-ink-muted">Notify: {notify.join(', ')}</p> : null}
      <pre className="mt-2 whitespace-pre-wrap rounded bg-slate-50 p-2 font-mono text-xs [overflow-wrap:anywhere]">{text}</pre>
      {unfilled.length > 0 ? (
        <p className="mt-1 text-[11px] text-amber-900">
          Not known yet: {unfilled.map((name) => `{{${name}}}`).join(', ')} (filled once the run has them).
        </p>
      ) : null}
    </div>
  );
}
