import type { ReactNode } from 'react';
import type { PlanOutline } from '../web/import-page.server';
import { CheckResultsTable } from './check-results-table';
import { StatusBadge } from './status-badge';

/**
 * A plan as its checklist reads, before it has a run: every heading is a section of the plan,
 * steps are numbered by their position, nothing is ticked or run yet. The import page shows an
 * imported runbook this way before it is saved.
 */
export function PlanOutlineView({ outline }: { outline: PlanOutline }) {
  const none = <p className="text-xs text-ink-muted">None in this plan.</p>;
  return (
    <div className="space-y-5">
      <div>
        <h2 className="flex flex-wrap items-center gap-2 text-lg font-semibold">
          {outline.title}
          {outline.underReview ? <StatusBadge status="under_review" /> : null}
        </h2>
        {outline.summary ? <p className="mt-1 text-xs text-ink-muted">{outline.summary}</p> : null}
        {outline.source ? <p className="mt-1 font-mono text-[11px] text-ink-muted">{outline.source}</p> : null}
      </div>

      <OutlineSection id="outline-prerequisites" title="Prerequisites">
        {outline.prerequisites.length === 0 ? (
          none
        ) : (
          <ul className="divide-y divide-slate-100 rounded border border-slate-200 bg-white text-xs">
            {outline.prerequisites.map((item) => (
              <li key={item.id} className="flex items-start gap-2 px-2 py-1.5">
                <span aria-hidden="true" className="mt-0.5 inline-block h-3 w-3 shrink-0 rounded-sm border border-slate-400" />
                <div className="min-w-0 flex-1">
                  <span className="font-medium">{item.text}</span> {!item.required ? <StatusBadge status="optional" /> : null}
                  {item.details.length > 0 ? (
                    <ul className="mt-0.5 list-disc pl-4 text-ink-muted">
                      {item.details.map((detail) => (
                        <li key={detail}>{detail}</li>
                      ))}
                    </ul>
                  ) : null}
                </div>
              </li>
            ))}
          </ul>
        )}
      </OutlineSection>

      <OutlineSection id="outline-prechecks" title="Pre-checks">
        <Checks checks={outline.prechecks} />
      </OutlineSection>

      <OutlineSection id="outline-execution" title="Execution steps">
        {outline.snapshot.length > 0 ? (
          <>
            <h4 className="text-xs font-semibold">Snapshot</h4>
            <Checks checks={outline.snapshot} />
          </>
        ) : null}
        <h4 className="mt-2 text-xs font-semibold">Apply</h4>
        <Steps steps={outline.apply} />
      </OutlineSection>

      <OutlineSection id="outline-verification" title="Verification">
        <Checks checks={outline.verification} />
      </OutlineSection>

      <OutlineSection id="outline-post" title="Post-execution validation">
        <h4 className="text-xs font-semibold">API tests</h4>
        <Checks checks={outline.apiTests} />
        <h4 className="mt-2 text-xs font-semibold">Data quality</h4>
        <Checks checks={outline.dataQuality} />
      </OutlineSection>

      <OutlineSection id="outline-rollback" title="Rollback procedure">
        <Steps steps={outline.rollbackSteps} />
        <h4 className="mt-2 text-xs font-semibold">Rollback verification</h4>
        <Checks checks={outline.rollbackVerification} />
      </OutlineSection>

      <OutlineSection id="outline-success" title="Success criteria">
        {outline.successCriteria.length === 0 ? (
          none
        ) : (
          <ul className="list-disc space-y-0.5 pl-5 text-xs">
            {outline.successCriteria.map((criterion, index) => (
              <li key={index}>
                {criterion.text}
                {criterion.checks.length > 0 ? <span className="text-ink-muted"> (judged by {criterion.checks.join(', ')})</span> : <span className="text-ink-muted"> (ticked by hand)</span>}
              </li>
            ))}
          </ul>
        )}
      </OutlineSection>

      {outline.risk ? (
        <OutlineSection id="outline-risk" title="Risk assessment">
          <p className="text-xs">
            Risk level <StatusBadge status={outline.risk.level === 'low' ? 'pass' : outline.risk.level === 'medium' ? 'stale' : 'fail'} label={outline.risk.level.toUpperCase()} />
          </p>
          <ul className="mt-1 list-disc pl-5 text-xs">
            {[...outline.risk.rationale, ...outline.risk.mitigation].map((line) => (
              <li key={line}>{line}</li>
            ))}
          </ul>
        </OutlineSection>
      ) : null}

      <OutlineSection id="outline-team" title="Team communication">
        {(['pre', 'post'] as const).map((key) => {
          const message = outline.teamMessages[key];
          if (!message) return null;
          return (
            <div key={key} className="mt-1 rounded border border-slate-200 bg-white p-2 text-xs" role="group" aria-label={key === 'pre' ? 'Pre-execution message' : 'Post-execution message'}>
              <h4 className="font-semibold">{key === 'pre' ? 'Pre-execution message' : 'Post-execution message'}</h4>
              {message.notify.length > 0 ? <p className="text-ink-muted">Notify: {message.notify.join(', ')}</p> : null}
              <pre className="mt-1 whitespace-pre-wrap font-mono">{message.body}</pre>
            </div>
          );
        })}
      </OutlineSection>

      {outline.notes.length > 0 ? (
        <OutlineSection id="outline-notes" title="Notes">
          <dl className="space-y-1 text-xs">
            {outline.notes.map((note) => (
              <div key={note.title}>
                <dt className="font-semibold">{note.title}</dt>
                <dd className="text-ink-muted">{note.body}</dd>
              </div>
            ))}
          </dl>
        </OutlineSection>
      ) : null}
    </div>
  );
}

function OutlineSection({ id, title, children }: { id: string; title: string; children: ReactNode }) {
  return (
    <section aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`} className="border-b border-slate-200 pb-1 text-sm font-semibold">
        {title}
      </h3>
      <div className="mt-2">{children}</div>
    </section>
  );
}

function Checks({ checks }: { checks: PlanOutline['prechecks'] }) {
  return <CheckResultsTable checks={checks} results={{}} checksum="" />;
}

function Steps({ steps }: { steps: PlanOutline['apply'] }) {
  return (
    <ol className="divide-y divide-slate-100 rounded border border-slate-200 bg-white text-xs">
      {steps.map((step, position) => (
        <li key={step.id} className="flex flex-wrap items-center gap-2 px-2 py-1.5">
          <span className="font-medium">
            Step {position + 1} · {step.title}
          </span>
          <span className="font-mono text-ink-muted">{step.file}</span>
          <span className="text-ink-muted">{step.how}</span>
        </li>
      ))}
    </ol>
  );
}
