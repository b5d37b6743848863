import type { LoaderFunctionArgs, MetaFunction } from '@remix-run/node';
import { Link, useLoaderData } from '@remix-run/react';
import { z } from 'zod';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { CopyButton } from '../components/copy-button';
import { EventLogWindow } from '../components/event-log-window';
import { formatDuration, formatUtc } from '../runtime/format';
import { PhaseTimeline, phaseLabel } from '../components/phase-timeline';
import { WatchStripView } from '../components/watch-strip';
import { ActionsTable, CheckRunHeading, FailureSummaryPanel, IssuesList, ReportChecksTable, ReportSection, ScrollTable, SignatureBadge, SnapshotTable, StatementsTable } from '../components/run-report-sections';
import { RehearsalChip, StatusBadge } from '../components/status-badge';
import { CHECK_PHASE_TITLES, INITIAL_EVENTS_PAGE } from '../runs/run-report';
import { readRunReport } from '../web/report-page.server';
import { markPageIncomplete } from '../web/page-cache.server';

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: data ? `Report ${data.header.runId.slice(0, 8)} · ${data.header.planId} · Runsheet` : 'Report · Runsheet' },
];

export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const { after } = ReportQuerySchema.parse(Object.fromEntries(new URL(request.url).searchParams));
  const data = await readRunReport(context.runtime, { runId: params.runId ?? '', afterSeq: after, statements: 'digest' });
  if (!data) throw new Response(`No run "${params.runId}". The history lists every run.`, { status: 404 });
  if (data.signature.anchors?.status === 'unreadable') markPageIncomplete(context);
  return { user: pageViewerOf(user), ...data };
}

/** `after`: where the event list opens (a cursor, for paging without JavaScript and for links to one event). */
const ReportQuerySchema = z.object({ after: z.coerce.number().int().min(0).catch(0) });

export default function RunReportPage() {
  const { user, header, report, statements, summaryTruncated, summarySource, signature, lastSeq, signedThroughSeq, firstEvents, watch } = useLoaderData<typeof loader>();
  const rehearsal = header.kind === 'rehearsal';
  const base = `/runs/${header.runId}`;
  const eventHref = (seq: number) => `${base}/report?after=${Math.max(0, seq - 1)}#events`;
  const firstShown = firstEvents.events[0]?.seq ?? 0;
  const nextHref = firstEvents.hasMore ? `${base}/report?after=${firstEvents.lastSeq}#events` : null;
  const previousHref = firstShown > 1 ? `${base}/report?after=${Math.max(0, firstShown - 1 - INITIAL_EVENTS_PAGE)}#events` : null;
  const verifyRun = report.verification;

  return (
    <>
      <AppHeader user={user} />
      <main className="mx-auto max-w-7xl px-4 py-6 print:max-w-none print:px-0 print:py-0">
        <nav aria-label="Breadcrumb" className="text-xs text-ink-muted print:hidden">
          <Link to="/runs" className="hover:underline">
            History
          </Link>{' '}
          / <span className="font-mono">{header.runId.slice(0, 8)}</span> / report
        </nav>

        <div className="mt-2 flex flex-wrap items-start gap-3">
          <div className="min-w-0 flex-1">
            <h1 className="text-xl font-semibold">
              {rehearsal ? 'Rehearsal report' : 'Run report'}: {header.planTitle ?? header.planId}
            </h1>
            <p className="mt-1 font-mono text-xs text-ink-muted">run {header.runId}</p>
          </div>
          <div className="flex flex-wrap items-center gap-2">
            {rehearsal ? <RehearsalChip /> : null}
            <StatusBadge status={header.state} rehearsal={rehearsal} />
          </div>
        </div>

        {rehearsal ? (
          <p className="mt-3 rounded border border-dashed border-violet-400 bg-violet-50 px-3 py-2 text-xs text-violet-900">
            A rehearsal ran the plan inside a transaction that was rolled back: nothing it did was kept on {header.targetLabel}.
          </p>
        ) : null}

        {report.failureSummary ? <FailureSummaryPanel summary={report.failureSummary} /> : null}

        <section aria-label="Run facts" className="mt-4 rounded border border-slate-200 bg-white p-4 break-inside-avoid">
          <dl className="grid grid-cols-2 gap-x-6 gap-y-3 text-sm lg:grid-cols-4">
            <Fact label="Plan">
              <Link to={`/plans/${header.planId}?target=${header.target}`} className="font-mono text-blue-700 hover:underline">
                {header.planId}
              </Link>
            </Fact>
            <Fact label="Checksum" wide>
              <span className="flex items-start gap-2">
                <span className="break-all font-mono text-xs" title="sha256 over the frozen plan's manifest">
                  {header.planChecksum}
                </span>
                <span className="print:hidden">
                  <CopyButton text={header.planChecksum} label="Copy checksum" />
                </span>
              </span>
            </Fact>
            <Fact label="Target">
              {header.targetLabel} <span className="font-mono text-xs text-ink-muted">({header.target})</span>
            </Fact>
            <Fact label="Kind">{rehearsal ? 'Rehearsal (rolled back)' : 'Execution'}</Fact>
            <Fact label="State">
              <StatusBadge status={header.state} rehearsal={rehearsal} />
            </Fact>
            <Fact label="Executed by">{header.executedBy ?? <Missing>not executed</Missing>}</Fact>
            <Fact label="Signed off by">
              {header.signedOffBy ? (
                <>
                  {header.signedOffBy}
                  <span className="block text-xs text-ink-muted">{formatUtc(header.signedOffAt)}</span>
                </>
              ) : (
                <Missing>{rehearsal ? 'not needed for a rehearsal' : 'not signed off'}</Missing>
              )}
            </Fact>
            <Fact label="Created">
              {formatUtc(header.createdAt)}
              <span className="block text-xs text-ink-muted">by {header.createdBy}</span>
            </Fact>
            <Fact label="Started">{header.startedAt ? formatUtc(header.startedAt) : <Missing>not started</Missing>}</Fact>
            <Fact label="Finished">{header.finishedAt ? formatUtc(header.finishedAt) : <Missing>not finished</Missing>}</Fact>
            <Fact label="Duration">{header.durationMs !== null ? formatDuration(header.durationMs) : <Missing>—</Missing>}</Fact>
          </dl>
          <div className="mt-3 border-t border-slate-100 pt-3">
            <h2 className="text-xs font-medium uppercase tracking-wide text-ink-muted">Signed log</h2>
            <div className="mt-1">
              <SignatureBadge signature={signature} eventHref={eventHref} />
            </div>
            <p className="mt-1 text-xs text-ink-muted" data-summary-source={summarySource.stored ? 'stored' : 'computed'}>
              {summarySource.stored
                ? `This report summarises events 1–${summarySource.throughSeq}, as they were when signed.`
                : 'This report summarises the events as stored now (the run has moved past its last checkpoint).'}
            </p>
          </div>
        </section>

        <div className="mt-3 flex flex-wrap items-center gap-2 text-xs print:hidden">
          <Link to={base} className="rounded border border-slate-300 bg-white px-2 py-1 hover:bg-slate-100">
            Live view
          </Link>
          {signedThroughSeq !== null ? (
            <a href={`${base}/log.json`} download className="rounded bg-slate-800 px-2 py-1 font-medium text-white hover:bg-slate-700">
              Download signed log
            </a>
          ) : (
            <span className="rounded border border-dashed border-slate-300 px-2 py-1 text-ink-muted">No signed log yet to download</span>
          )}
          <a href={`${base}/report.md`} download className="rounded border border-slate-300 bg-white px-2 py-1 hover:bg-slate-100">
            Download report (Markdown)
          </a>
          <span className="text-ink-muted">
            Verify a downloaded log with <code className="font-mono">npx runsheet log verify &lt;file&gt; --url &lt;this site&gt;</code>
          </span>
        </div>

        {report.actions.length > 0 ? (
          <ReportSection id="actions" title="Actions" aside="Each with its own start, end and duration">
            <ActionsTable actions={report.actions} />
          </ReportSection>
        ) : null}

        {watch ? (
          <ReportSection id="watch" title="Watch window" aside="The plan's checks re-run after the apply: kept rounds, unchanged stretches and alarms">
            <WatchStripView strip={watch.strip} nowIso={watch.nowIso} />
          </ReportSection>
        ) : null}

        <ReportSection id="timeline" title="Timeline" aside="Each phase, planned against actual">
          <PhaseTimeline phases={report.phases} />
          {report.phases.length > 0 ? (
            <div className="mt-3">
              <ScrollTable label="Phase durations, planned and actual">
                <table className="w-full text-left text-xs">
                  <caption className="sr-only">Phase durations, planned and actual</caption>
                  <thead className="bg-slate-50 uppercase tracking-wide text-ink-muted">
                    <tr>
                      <th scope="col" className="px-2 py-1.5">
                        Phase
                      </th>
                      <th scope="col" className="px-2 py-1.5">
                        Started
                      </th>
                      <th scope="col" className="px-2 py-1.5 text-right">
                        Planned
                      </th>
                      <th scope="col" className="px-2 py-1.5 text-right">
                        Actual
                      </th>
                      <th scope="col" className="px-2 py-1.5">
                        Outcome
                      </th>
                    </tr>
                  </thead>
                  <tbody className="divide-y divide-slate-100">
                    {report.phases.map((phase, index) => (
                      <tr key={`${phase.phase}-${index}`}>
                        <th scope="row" className="px-2 py-1.5 text-left font-medium">
                          {phase.action === 'rollback' ? 'Rollback · ' : ''}
                          {phaseLabel(phase.phase)}
                        </th>
                        <td className="whitespace-nowrap px-2 py-1.5">{formatUtc(phase.startedAt)}</td>
                        <td className="px-2 py-1.5 text-right tabular-nums">{phase.plannedMs !== null ? formatDuration(phase.plannedMs) : '—'}</td>
                        <td className="px-2 py-1.5 text-right tabular-nums">{phase.actualMs !== null ? formatDuration(phase.actualMs) : '—'}</td>
                        <td className="px-2 py-1.5">
                          {phase.status === 'failed' ? (
                            <StatusBadge status="fail" label="Failed" />
                          ) : phase.status === 'stopped' ? (
                            <StatusBadge status="failed" label="Did not complete" />
                          ) : phase.status === 'running' ? (
                            <StatusBadge status="running" />
                          ) : phase.plannedMs !== null && phase.actualMs !== null && phase.actualMs > phase.plannedMs ? (
                            <>
                              <StatusBadge status="done" /> <StatusBadge status="over_estimate" />
                            </>
                          ) : (
                            <StatusBadge status="done" />
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </ScrollTable>
            </div>
          ) : null}
        </ReportSection>

        <ReportSection
          id="checks"
          title="Check results"
          aside={report.earlierPrecheckRuns.length > 0 ? `Latest of ${report.earlierPrecheckRuns.length + 1} pre-check runs` : 'Pre-checks, as the run recorded them'}
        >
          {report.prechecks ? (
            <>
              <CheckRunHeading run={report.prechecks} title="Pre-checks" />
              <ReportChecksTable run={report.prechecks} caption="Pre-check results" />
              {report.earlierPrecheckRuns.length > 0 ? (
                <details className="mt-2 text-xs">
                  <summary className="cursor-pointer text-blue-700">Earlier pre-check runs ({report.earlierPrecheckRuns.length})</summary>
                  <ul className="mt-1 space-y-0.5">
                    {report.earlierPrecheckRuns.map((run) => (
                      <li key={run.seq}>
                        <a href={eventHref(run.seq)} className="underline">
                          event {run.seq}
                        </a>{' '}
                        · {formatUtc(run.at)} · {run.passed ? 'all passed' : `${run.failed} failed`}
                      </li>
                    ))}
                  </ul>
                </details>
              ) : null}
            </>
          ) : (
            <p className="text-xs text-ink-muted">No pre-checks were run in this run.</p>
          )}
        </ReportSection>

        <ReportSection id="snapshot" title="Snapshot: before and after">
          <SnapshotTable rows={report.snapshot.rows} beforeAt={report.snapshot.beforeAt} afterAt={report.snapshot.afterAt} />
        </ReportSection>

        <ReportSection id="output" title="Step output" aside={statements.digest && statements.total > report.statements.length ? `${statements.total.toLocaleString('en-US')} statements: the first, the slowest and the last, with their line, duration, rows and notices` : 'Every statement, with its line, duration, rows and notices'}>
          <StatementsTable statements={report.statements} failed={report.failedStatement} total={statements.total} slowestSeqs={statements.slowestSeqs} eventHref={eventHref} />
        </ReportSection>

        <ReportSection id="verification" title="Verification">
          {verifyRun.length > 0 ? (
            <div className="space-y-4">
              {verifyRun.map((run) => (
                <div key={run.seq} className="break-inside-avoid">
                  <CheckRunHeading run={run} title={CHECK_PHASE_TITLES[run.phase] ?? run.phase} />
                  <ReportChecksTable run={run} caption={`${CHECK_PHASE_TITLES[run.phase] ?? run.phase} results`} />
                </div>
              ))}
            </div>
          ) : (
            <p className="text-xs text-ink-muted">No verification checks were run.</p>
          )}
        </ReportSection>

        <ReportSection id="issues" title="Issues encountered">
          <IssuesList issues={report.issues} />
        </ReportSection>

        {summaryTruncated ? (
          <p className="mt-4 rounded border border-amber-300 bg-amber-50 px-3 py-2 text-xs text-amber-900">
            This run&apos;s log is long: the sections above summarise its first events of each kind; the event list below has every one.
          </p>
        ) : null}

        <ReportSection id="events" title="Event log" aside={`${signature.eventCount.toLocaleString('en-US')} events, hash-chained`}>
          <div className="print:hidden">
            <EventLogWindow key={firstShown} runId={header.runId} total={lastSeq} initial={firstEvents.events} nextHref={nextHref} previousHref={previousHref} />
          </div>
          <p className="hidden text-xs print:block">
            {signature.eventCount.toLocaleString('en-US')} events; the complete log is in the signed log download ({base}/log.json).
          </p>
        </ReportSection>
      </main>
    </>
  );
}

function Fact({ label, children, wide = false }: { label: string; children: React.ReactNode; wide?: boolean }) {
  return (
    <div className={`min-w-0 ${wide ? 'col-span-2 lg:col-span-1' : ''}`}>
      <dt className="text-xs font-medium uppercase tracking-wide text-ink-muted">{label}</dt>
      <dd className="mt-0.5">{children}</dd>
    </div>
  );
}

function Missing({ children }: { children: React.ReactNode }) {
  return <span className="text-ink-muted">{children}</span>;
}

export { RouteErrorBoundary as ErrorBoundary } from '../components/route-error-boundary';
