import type { FailureSummary, ReportAction, ReportCheck, ReportCheckRun, ReportIssue, ReportStatement, RunReport, SignatureVerdict, SnapshotRow } from '../runs/run-report';
import { compactJson } from '../runs/run-report';
import { describeExpectation } from '../checks/describe-expectation';
import { formatDuration, formatUtc } from '../runtime/format';
import { StatusBadge } from './status-badge';
import { BlockersTable } from './blockers-table';

/** Most rows a report section draws; the rest are in the event list and the downloads. */
export const SECTION_ROW_LIMIT = 200;

/** A table that may scroll sideways on a narrow screen: focusable, so a keyboard can scroll it. */
export function ScrollTable({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div className="overflow-x-auto rounded border border-slate-200 bg-white print:overflow-visible" tabIndex={0} role="region" aria-label={label}>
      {children}
    </div>
  );
}

export function ReportSection({ id, title, children, aside }: { id: string; title: string; children: React.ReactNode; aside?: React.ReactNode }) {
  return (
    <section id={id} aria-labelledby={`${id}-title`} className="mt-8 print:mt-5">
      <div className="flex flex-wrap items-baseline gap-x-3 gap-y-1 break-after-avoid">
        <h2 id={`${id}-title`} className="text-base font-semibold">
          {title}
        </h2>
        {aside ? <div className="text-xs text-ink-muted">{aside}</div> : null}
      </div>
      <div className="mt-2">{children}</div>
    </section>
  );
}

/** The signature badge: valid through which event, not signed yet, or which event broke it. */
export function SignatureBadge({ signature, eventHref }: { signature: SignatureVerdict; eventHref: (seq: number) => string }) {
  if (signature.status === 'valid') {
    const unsignedTail = signature.eventCount - signature.signedSeq;
    return (
      <div data-signature="valid">
        <div className="flex flex-wrap items-center gap-2">
          <StatusBadge status="valid" label="Signature valid" title={signature.head ? `Chain head ${signature.head}` : undefined} />
          <span className="text-xs text-ink-muted">
            {signature.checkpointCount} signed checkpoint{signature.checkpointCount === 1 ? '' : 's'}, through event {signature.signedSeq}
            {unsignedTail > 0 ? `; ${unsignedTail} later event${unsignedTail === 1 ? ' is' : 's are'} chained, not yet signed` : ''}
          </span>
        </div>
        <AnchorLine anchors={signature.anchors} />
      </div>
    );
  }
  if (signature.status === 'unsigned') {
    return (
      <div data-signature="unsigned">
        <div className="flex flex-wrap items-center gap-2">
          <StatusBadge status="pending" label="Not signed yet" />
          <span className="text-xs text-ink-muted">The log is signed after every action and at each phase end and completion; its hash chain is intact.</span>
        </div>
        <AnchorLine anchors={signature.anchors} />
      </div>
    );
  }
  return (
    <div className="rounded border border-red-300 bg-red-50 p-2" role="alert" data-signature="broken">
      <div className="flex flex-wrap items-center gap-2">
        <StatusBadge status="invalid" label="Signature broken" />
        {signature.firstBadSeq !== null ? (
          <a href={eventHref(signature.firstBadSeq)} className="text-xs font-semibold text-red-900 underline">
            at event {signature.firstBadSeq}
            {signature.firstBadEvent ? ` (${signature.firstBadEvent.type}, ${formatUtc(signature.firstBadEvent.at)})` : ''}
          </a>
        ) : null}
      </div>
      <p className="mt-1 text-xs text-red-900">{signature.reason}</p>
    </div>
  );
}

/** Where the signed heads are kept outside the store, and whether the store still holds them. */
function AnchorLine({ anchors }: { anchors: SignatureVerdict['anchors'] }) {
  if (anchors.status === 'anchored') {
    return (
      <p className="mt-1 text-xs text-ink-muted" data-anchors="anchored">
        Anchored on {anchors.target}: {anchors.anchors} signed head{anchors.anchors === 1 ? '' : 's'} kept on the target, through event {anchors.throughSeq}, all held by the store.
      </p>
    );
  }
  if (anchors.status === 'none') {
    return (
      <p className="mt-1 text-xs text-ink-muted" data-anchors="none">
        No anchor: {anchors.reason}.
      </p>
    );
  }
  return (
    <p className="mt-1 text-xs font-medium text-amber-900" data-anchors={anchors.status}>
      {anchors.status === 'missing' ? 'Anchor missing' : anchors.status === 'unreadable' ? 'Anchors not checked' : 'Anchors broken'}: {anchors.reason}.
    </p>
  );
}

function ActualCell({ check }: { check: ReportCheck }) {
  return (
    <>
      <span>{compactJson(check.actual, 300)}</span>
      {check.error ? (
        <div className="mt-1 text-red-800">
          {check.error.sqlstate ? `SQLSTATE ${check.error.sqlstate}: ` : ''}
          {check.error.message}
        </div>
      ) : null}
    </>
  );
}

/** One run of a phase's checks: expected against actual, as recorded in the run log. */
export function ReportChecksTable({ run, caption }: { run: ReportCheckRun; caption: string }) {
  if (run.checks.length === 0) return <p className="text-xs text-ink-muted">The phase had no checks.</p>;
  return (
    <ScrollTable label={caption}>
      <table className="w-full min-w-[44rem] table-fixed text-left text-xs">
        <caption className="sr-only">{caption}</caption>
        <thead className="bg-slate-50 uppercase tracking-wide text-ink-muted">
          <tr>
            <th scope="col" className="w-[26%] px-2 py-1.5">
              Check
            </th>
            <th scope="col" className="w-24 px-2 py-1.5">
              Result
            </th>
            <th scope="col" className="px-2 py-1.5">
              Expected
            </th>
            <th scope="col" className="px-2 py-1.5">
              Actual
            </th>
            <th scope="col" className="w-16 px-2 py-1.5">
              Took
            </th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {run.checks.map((check) => (
            <tr key={check.checkId} className="break-inside-avoid align-top">
              <td className="px-2 py-1.5">
                <div className="font-medium text-ink">{check.title}</div>
                <div className="font-mono text-ink-muted">
                  {check.checkId}
                  {check.kind ? ` · ${check.kind}` : ''}
                </div>
                {check.sql ? (
                  <details className="mt-1 print:hidden">
                    <summary className="cursor-pointer text-blue-700">SQL</summary>
                    <pre className="mt-1 max-w-xl overflow-x-auto whitespace-pre-wrap rounded bg-slate-50 p-2 font-mono text-[11px]">{check.sql}</pre>
                  </details>
                ) : null}
              </td>
              <td className="px-2 py-1.5">
                <StatusBadge status={check.status} />
              </td>
              <td className="px-2 py-1.5 font-mono [overflow-wrap:anywhere]">{check.expected ? describeExpectation(check.expected) : '—'}</td>
              <td className="px-2 py-1.5 font-mono [overflow-wrap:anywhere]">
                <ActualCell check={check} />
              </td>
              <td className="whitespace-nowrap px-2 py-1.5 tabular-nums">{check.durationMs !== null ? formatDuration(check.durationMs) : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollTable>
  );
}

export function CheckRunHeading({ run, title }: { run: ReportCheckRun; title: string }) {
  return (
    <div className="mb-1 flex flex-wrap items-center gap-2 text-xs">
      <span className="font-semibold">{title}</span>
      <StatusBadge status={run.passed ? 'pass' : 'fail'} label={run.passed ? 'All passed' : 'Failed'} />
      <span className="text-ink-muted">
        ran {formatUtc(run.at)} by {run.actor} · event {run.seq}
      </span>
    </div>
  );
}

/** Snapshot values before apply beside the same checks after it. */
export function SnapshotTable({ rows, beforeAt, afterAt }: { rows: SnapshotRow[]; beforeAt: string | null; afterAt: string | null }) {
  if (rows.length === 0) return <p className="text-xs text-ink-muted">No snapshot was taken in this run.</p>;
  return (
    <ScrollTable label="Snapshot before and after">
      <table className="w-full table-fixed text-left text-xs">
        <caption className="sr-only">Snapshot before apply and after</caption>
        <thead className="bg-slate-50 uppercase tracking-wide text-ink-muted">
          <tr>
            <th scope="col" className="w-1/4 px-2 py-1.5">
              Check
            </th>
            <th scope="col" className="px-2 py-1.5">
              Before <span className="block font-normal normal-case">{beforeAt ? formatUtc(beforeAt) : 'not taken'}</span>
            </th>
            <th scope="col" className="px-2 py-1.5">
              After <span className="block font-normal normal-case">{afterAt ? formatUtc(afterAt) : 'not taken'}</span>
            </th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {rows.map((row) => (
            <tr key={row.checkId} className="break-inside-avoid align-top">
              <th scope="row" className="px-2 py-1.5 font-normal">
                <div className="font-medium text-ink">{row.title}</div>
                <div className="font-mono text-ink-muted">{row.checkId}</div>
                {row.changed ? <span className="mt-1 inline-block rounded bg-amber-50 px-1 text-[11px] text-amber-900 ring-1 ring-amber-600/40">changed</span> : null}
              </th>
              <td className="break-words px-2 py-1.5 font-mono">{row.before ? compactJson(row.before.actual, 400) : <span className="text-ink-faint">—</span>}</td>
              <td className="break-words px-2 py-1.5 font-mono">{row.after ? compactJson(row.after.actual, 400) : <span className="text-ink-faint">—</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollTable>
  );
}

/**
 * The statements a run completed, and the one that failed. `total` above the rows given: they are
 * a digest (the first, the slowest and the last few); the rest are in the event log (`eventHref`)
 * and the Markdown report.
 */
export function StatementsTable({
  statements,
  failed,
  total = statements.length,
  slowestSeqs = [],
  eventHref,
}: {
  statements: ReportStatement[];
  failed: RunReport['failedStatement'];
  total?: number;
  slowestSeqs?: number[];
  eventHref?: (seq: number) => string;
}) {
  if (statements.length === 0 && !failed) return <p className="text-xs text-ink-muted">No statement ran.</p>;
  const shown = statements.slice(0, SECTION_ROW_LIMIT);
  const slowest = new Set(slowestSeqs);
  return (
    <>
      <ScrollTable label="Step output">
        <table className="w-full text-left text-xs">
          <caption className="sr-only">Statements that ran, with their line, duration, rows and notices</caption>
          <thead className="bg-slate-50 uppercase tracking-wide text-ink-muted">
            <tr>
              <th scope="col" className="px-2 py-1.5">
                Step
              </th>
              <th scope="col" className="px-2 py-1.5">
                #
              </th>
              <th scope="col" className="px-2 py-1.5">
                Line
              </th>
              <th scope="col" className="px-2 py-1.5">
                Command
              </th>
              <th scope="col" className="px-2 py-1.5 text-right">
                Took
              </th>
              <th scope="col" className="px-2 py-1.5 text-right">
                Rows
              </th>
              <th scope="col" className="px-2 py-1.5">
                Notices
              </th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {shown.map((statement) => (
              <tr key={statement.seq} className="break-inside-avoid align-top">
                <td className="px-2 py-1.5">
                  <StepName label={statement.stepLabel} id={statement.stepId} />
                </td>
                <td className="px-2 py-1.5 tabular-nums">
                  {eventHref ? (
                    <a href={eventHref(statement.seq)} className="underline" title={`Event ${statement.seq} in the event log`}>
                      {statement.index + 1}
                    </a>
                  ) : (
                    statement.index + 1
                  )}
                </td>
                <td className="px-2 py-1.5 tabular-nums">{statement.line ?? '—'}</td>
                <td className="px-2 py-1.5">
                  <span className="font-mono">{statement.command ?? '—'}</span>
                  {slowest.has(statement.seq) && total > shown.length ? (
                    <>
                      {' '}
                      <StatusBadge status="slowest" label="One of the slowest" />
                    </>
                  ) : null}
                  {statement.sql ? (
                    <details className="mt-1 print:hidden">
                      <summary className="cursor-pointer text-blue-700">SQL</summary>
                      <pre className="mt-1 max-w-xl overflow-x-auto whitespace-pre-wrap rounded bg-slate-50 p-2 font-mono text-[11px]">{statement.sql}</pre>
                    </details>
                  ) : null}
                </td>
                <td className="whitespace-nowrap px-2 py-1.5 text-right tabular-nums">{statement.durationMs !== null ? formatDuration(statement.durationMs) : '—'}</td>
                <td className="px-2 py-1.5 text-right tabular-nums">{statement.rowCount ?? '—'}</td>
                <td className="px-2 py-1.5">
                  {statement.notices.length > 0 ? (
                    <ul className="space-y-0.5 font-mono text-[11px]">
                      {statement.notices.map((notice, index) => (
                        <li key={index}>{notice}</li>
                      ))}
                    </ul>
                  ) : (
                    <span className="text-ink-faint">—</span>
                  )}
                </td>
              </tr>
            ))}
            {failed ? (
              <tr className="break-inside-avoid bg-red-50 align-top text-red-900">
                <td className="px-2 py-1.5">
                  <StepName label={failed.stepLabel} id={failed.stepId} />
                </td>
                <td className="px-2 py-1.5 tabular-nums">{failed.index !== null ? failed.index + 1 : '—'}</td>
                <td className="px-2 py-1.5 tabular-nums">{failed.line ?? '—'}</td>
                <td className="px-2 py-1.5" colSpan={4}>
                  <StatusBadge status={failed.cancelled ? 'cancelled' : 'failed'} /> <span className="font-mono">{failed.sqlstate ? `SQLSTATE ${failed.sqlstate}: ` : ''}</span>
                  {failed.message}
                  {failed.transactional === true ? (
                    <span className="block text-[11px]">The step ran in one transaction, rolled back: the statements above did not stay.</span>
                  ) : failed.transactional === false ? (
                    <span className="block text-[11px]">A non-transactional step: the statements above stayed committed.</span>
                  ) : null}
                </td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </ScrollTable>
      {total > shown.length ? (
        <p className="mt-1 text-xs text-ink-muted" data-statements-shown={shown.length} data-statements-total={total}>
          {shown.length < statements.length
            ? `${statements.length - shown.length} more statements are in the event list below and in the Markdown report.`
            : `${shown.length} of ${total.toLocaleString('en-US')} statements shown: the first, the slowest and the last. Every one is in the event list below and in the Markdown report.`}
        </p>
      ) : null}
    </>
  );
}

/** A step as the plan names it (its position and title), with its id. */
function StepName({ label, id }: { label: string | null; id: string }) {
  if (!label) return <span className="font-mono">{id || '—'}</span>;
  return (
    <>
      <span>{label}</span>
      <span className="block font-mono text-[11px] text-ink-muted">{id}</span>
    </>
  );
}

const ISSUE_LABELS: Record<ReportIssue['kind'], string> = {
  note: 'Note',
  refused: 'Refused',
  cancel: 'Cancel',
  failure: 'Failure',
  state: 'State',
  wait: 'Lock wait',
};

export function IssuesList({ issues }: { issues: ReportIssue[] }) {
  if (issues.length === 0) return <p className="text-xs text-ink-muted">None recorded: no notes, refusals, cancellations or failures.</p>;
  const shown = issues.slice(0, SECTION_ROW_LIMIT);
  return (
    <>
      <ul className="divide-y divide-slate-100 rounded border border-slate-200 bg-white text-xs">
        {shown.map((issue, index) => (
          <li key={`${issue.seq ?? 'outcome'}-${index}`} className="flex break-inside-avoid flex-wrap gap-x-3 gap-y-0.5 px-3 py-2">
            <span
              className={`w-16 shrink-0 font-semibold ${
                issue.kind === 'note' ? 'text-ink' : issue.kind === 'cancel' || issue.kind === 'state' || issue.kind === 'wait' ? 'text-amber-900' : 'text-red-800'
              }`}
            >
              {ISSUE_LABELS[issue.kind]}
            </span>
            <span className="min-w-0 flex-1 whitespace-pre-wrap break-words">{issue.text}</span>
            <span className="w-full text-ink-muted sm:w-auto">
              {issue.actor ? `${issue.actor} · ` : ''}
              {issue.at ? formatUtc(issue.at) : 'run outcome'}
              {issue.seq !== null ? ` · event ${issue.seq}` : ''}
            </span>
          </li>
        ))}
      </ul>
      {issues.length > shown.length ? <p className="mt-1 text-xs text-ink-muted">{issues.length - shown.length} more in the event list below.</p> : null}
    </>
  );
}

const ACTION_LABELS: Record<ReportAction['action'], string> = { execute: 'Apply', rollback: 'Rollback', rehearse: 'Rehearsal', cancel: 'Cancel' };

/** Each action on the run with its own times: a rollback never stretches the apply's. */
export function ActionsTable({ actions }: { actions: ReportAction[] }) {
  return (
    <ScrollTable label="Actions with their own times">
      <table className="w-full text-left text-xs">
        <caption className="sr-only">Actions on the run, each with its own start, end and duration</caption>
        <thead className="bg-slate-50 uppercase tracking-wide text-ink-muted">
          <tr>
            <th scope="col" className="px-2 py-1.5">Action</th>
            <th scope="col" className="px-2 py-1.5">By</th>
            <th scope="col" className="px-2 py-1.5">Started</th>
            <th scope="col" className="px-2 py-1.5">Ended</th>
            <th scope="col" className="px-2 py-1.5 text-right">Duration</th>
            <th scope="col" className="px-2 py-1.5">Outcome</th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {actions.map((action, index) => (
            <tr key={`${action.action}-${index}`}>
              <th scope="row" className="px-2 py-1.5 text-left font-medium">
                {ACTION_LABELS[action.action]}
              </th>
              <td className="px-2 py-1.5">
                {action.actor}
                {action.via ? <span className="block text-ink-muted">via {action.via}</span> : null}
              </td>
              <td className="whitespace-nowrap px-2 py-1.5">{formatUtc(action.startedAt)}</td>
              <td className="whitespace-nowrap px-2 py-1.5">{action.finishedAt ? formatUtc(action.finishedAt) : '—'}</td>
              <td className="px-2 py-1.5 text-right tabular-nums">{action.durationMs !== null ? formatDuration(action.durationMs) : '—'}</td>
              <td className="px-2 py-1.5">{action.state ? <StatusBadge status={action.state} /> : <StatusBadge status="running" />}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </ScrollTable>
  );
}

/** The report opens with where and why the run stopped: phase, step or check, line, SQLSTATE, message, blockers. */
export function FailureSummaryPanel({ summary }: { summary: FailureSummary }) {
  return (
    <section aria-label="Failure summary" className="mt-4 break-inside-avoid rounded border border-red-300 bg-red-50 p-3 text-sm text-red-950">
      <h2 className="font-semibold">
        {summary.cancelledBy ? `Cancelled by ${summary.cancelledBy}` : 'Failed'} in {summary.phase.replace(/_/g, ' ')}: {summary.what}
        {summary.line ? `, line ${summary.line}` : ''}
        {summary.sqlstate ? `, SQLSTATE ${summary.sqlstate}` : ''}
      </h2>
      <p className="mt-1 break-words font-mono text-xs">{summary.message}</p>
      {summary.detail ? <p className="mt-1 text-xs">DETAIL: {summary.detail}</p> : null}
      {summary.hint ? <p className="mt-1 text-xs">HINT: {summary.hint}</p> : null}
      {summary.blockers.length > 0 ? (
        <div className="mt-2 text-xs">
          <BlockersTable blockers={summary.blockers} />
        </div>
      ) : null}
    </section>
  );
}
