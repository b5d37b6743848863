import { data, type ActionFunctionArgs, type LoaderFunctionArgs, type MetaFunction } from '@remix-run/node';
import { Link, useFetcher, useLoaderData } from '@remix-run/react';
import { useEffect, useMemo, useState } from 'react';
import { z } from 'zod';
import { requireIntentPermission } from '../auth/intent-access.server';
import { requirePermission, pageViewerOf } from '../auth/require.server';
import { AppHeader } from '../components/app-header';
import { BlockersTable } from '../components/blockers-table';
import { CopyButton } from '../components/copy-button';
import { LockWaitPanel, PastWaits, StoppedAtPanel } from '../components/lock-wait-panel';
import { formatClock, formatDuration, formatUtc } from '../runtime/format';
import { RehearsalChip, StatusBadge } from '../components/status-badge';
import { cancelFromRunView, loadRunView, runIdOrNotFound, type RunView, type StatementText } from '../web/run-page.server';
import { failureOf, foldTimeline, isFinalState, phaseLabel, type AttemptView, type FailureView, type PhaseView, type StepView } from '../runs/run-timeline';
import { storedTypeOf, type RunEvent } from '../runs/run-events';
import { isActiveState, type RunState } from '../../db/run-lifecycle';
import { useRunStream, type FeedMode, type StreamState } from '../web/use-run-stream';

export const meta: MetaFunction<typeof loader> = ({ data }) => [
  { title: data ? `${data.view.run.kind === 'rehearsal' ? 'Rehearsal' : 'Run'} ${data.view.run.id.slice(0, 8)} · ${data.view.run.planId} on ${data.view.run.targetLabel} · Runsheet` : 'Run · Runsheet' },
];

export async function loader({ request, params, context }: LoaderFunctionArgs) {
  const user = await requirePermission(request, context, 'view');
  const runId = runIdOrNotFound(params.runId);
  const view = await loadRunView(context.runtime, { runId, user });
  return { user: pageViewerOf(user), view };
}

const IntentSchema = z.discriminatedUnion('intent', [z.object({ intent: z.literal('cancel') })]);

export async function action({ request, params, context }: ActionFunctionArgs) {
  const { user, form } = await requireIntentPermission(request, context, 'routes/runs.$runId');
  const runId = runIdOrNotFound(params.runId);
  const parsed = IntentSchema.safeParse(Object.fromEntries(form));
  if (!parsed.success) return data({ ok: false, error: 'Unknown form intent.' }, { status: 400 });
  const outcome = await cancelFromRunView(context.runtime, { runId, user });
  if (outcome.kind === 'refused') return data({ ok: false, error: outcome.error }, { status: outcome.status });
  return data({ ok: true, message: outcome.kind === 'done' ? outcome.message : 'Cancel requested.' });
}

export default function RunPage() {
  const { user, view } = useLoaderData<typeof loader>() as { user: Parameters<typeof AppHeader>[0]['user']; view: RunView };
  const stream = useRunStream(view.run.id, { events: view.events, watchers: view.watchers });
  const timeline = useMemo(() => foldTimeline(stream.events, 'draft'), [stream.events]);
  const state = timeline.stateChanges.length > 0 ? timeline.state : view.run.state;
  const active = isActiveState(state as RunState);
  const now = useNow(view.readAt, active);
  const rehearsal = view.run.kind === 'rehearsal';
  const latest = timeline.attempts.at(-1);
  const earlier = timeline.attempts.slice(0, -1);
  const checklistUrl = `/plans/${view.run.planId}?target=${view.run.target}`;

  return (
    <>
      <AppHeader user={user} />
      <main className={`mx-auto max-w-7xl px-3 py-4 sm:px-4 sm:py-6 ${rehearsal ? 'border-x-2 border-dashed border-violet-400' : ''}`}>
        <nav aria-label="Breadcrumb" className="text-xs text-ink-muted">
          <Link to="/" className="hover:underline">
            Plans
          </Link>{' '}
          /{' '}
          <Link to={checklistUrl} className="font-mono hover:underline">
            {view.run.planId}
          </Link>{' '}
          / <span className="font-mono">{view.run.id.slice(0, 8)}</span>
        </nav>

        <div className="mt-2 flex flex-wrap items-start gap-x-4 gap-y-2">
          <div className="min-w-0 flex-1">
            <h1 className="flex flex-wrap items-center gap-2 text-xl font-semibold leading-tight">
              {rehearsal ? <RehearsalChip /> : null}
              {rehearsal ? 'Rehearsal' : 'Run'} <span className="font-mono">{view.run.id.slice(0, 8)}</span>
            </h1>
            <p className="mt-0.5 text-sm">{view.plan.title}</p>
            <p className="mt-0.5 text-xs text-ink-muted">
              on <span className="font-medium text-ink">{view.run.targetLabel}</span> · checksum <span className="font-mono">{view.run.planChecksum.slice(0, 12)}</span> · opened by {view.run.createdBy}
              {view.run.signedOffBy ? ` · signed off by ${view.run.signedOffBy}` : ''}
            </p>
          </div>
          <div className="flex flex-col items-start gap-1 sm:items-end">
            <div role="status" aria-label="Run state" aria-live="polite" className="text-base">
              <StatusBadge status={state} rehearsal={rehearsal} />
            </div>
            <Elapsed attempt={latest} now={now} />
          </div>
        </div>

        <ConnectionBanner state={stream.state} stoppedBecause={stream.stoppedBecause} feedMode={stream.feedMode} />

        <div className="mt-3 flex flex-wrap items-center gap-2 text-xs">
          <span className="text-ink-muted">Watching now:</span>
          {stream.watchers.length === 0 ? <span className="text-ink-muted">nobody else</span> : null}
          {stream.watchers.map((watcher) => (
            <span key={watcher.email} className="rounded-full bg-slate-200 px-2 py-0.5">
              {watcher.email === user.email ? 'you' : watcher.email} <span className="text-ink-muted">({watcher.role})</span>
            </span>
          ))}
          <span className="ml-auto flex flex-wrap items-center gap-2">
            {active && view.may.cancel ? <CancelForm /> : null}
            <Link to={checklistUrl} className="rounded border border-slate-300 bg-white px-2 py-1 hover:bg-slate-100">
              Back to the checklist
            </Link>
          </span>
        </div>

        {timeline.refusals.length > 0 ? (
          <section aria-label="Refusals" className="mt-3 space-y-2">
            {timeline.refusals.slice(-3).map((refusal) => (
              <div key={refusal.seq} className="rounded border border-red-300 bg-red-50 p-2 text-xs text-red-900">
                <p className="font-semibold">
                  {refusal.type.replace('.', ' ')} · {refusal.actor} · {formatUtc(refusal.at)}
                </p>
                <p className="whitespace-pre-wrap">{refusal.reason}</p>
              </div>
            ))}
          </section>
        ) : null}

        {latest ? (
          <Attempt attempt={latest} statements={view.statements} estimated={view.plan.estimated} now={now} latest />
        ) : (
          <p className="mt-4 rounded border border-slate-200 bg-white p-3 text-xs text-ink-muted">
            Not started: this run is being prepared on the{' '}
            <Link to={checklistUrl} className="text-blue-700 underline">
              checklist
            </Link>
            . Its phases and statements appear here as they happen.
          </p>
        )}

        {isFinalState(state) ? (
          <FinalState state={state} reason={timeline.stateChanges.at(-1)?.reason} verified={latest?.phases.findLast((phase) => phase.phase === 'verification')?.ok ?? view.run.verified}
            attempt={latest}
            checklistUrl={checklistUrl}
            reportUrl={`/runs/${view.run.id}/report`}
            rehearsal={rehearsal}
          />
        ) : null}

        {earlier.length > 0 ? (
          <section className="mt-4" aria-label="Earlier attempts">
            <h2 className="text-sm font-semibold">Earlier attempts in this run</h2>
            {earlier.reverse().map((attempt) => (
              <details key={attempt.seq} className="mt-1 rounded border border-slate-200 bg-white">
                <summary className="cursor-pointer px-2 py-1.5 text-xs">
                  {attemptTitle(attempt)} · {formatUtc(attempt.startedAt)} · <StatusBadge status={attempt.finishedState ?? 'running'} />
                </summary>
                <div className="px-2 pb-2">
                  <Attempt attempt={attempt} statements={view.statements} estimated={view.plan.estimated} now={now} latest={false} />
                </div>
              </details>
            ))}
          </section>
        ) : null}

        {timeline.notes.length > 0 ? (
          <section className="mt-4" aria-labelledby="notes-title">
            <h2 id="notes-title" className="text-sm font-semibold">
              Issues encountered
            </h2>
            <ol className="mt-1 space-y-1 text-xs">
              {timeline.notes.map((note) => (
                <li key={note.seq} className="rounded border border-slate-200 bg-white p-2">
                  <div className="text-[11px] text-ink-muted">
                    {note.actor} · {formatUtc(note.at)}
                  </div>
                  <p className="whitespace-pre-wrap">{note.text}</p>
                </li>
              ))}
            </ol>
          </section>
        ) : null}

        <RunLog events={stream.events} />

        {view.earlierRuns.length > 0 ? (
          <details className="mt-4 rounded border border-slate-200 bg-white">
            <summary className="cursor-pointer px-2 py-1.5 text-xs font-semibold">Earlier runs of this plan on {view.run.targetLabel} ({view.earlierRuns.length})</summary>
            <ul className="space-y-1 px-2 pb-2 text-xs">
              {view.earlierRuns.map((run) => (
                <li key={run.id} className="flex flex-wrap items-center gap-2">
                  {run.kind === 'rehearsal' ? <RehearsalChip /> : null}
                  <StatusBadge status={run.state} rehearsal={run.kind === 'rehearsal'} />
                  <Link to={`/runs/${run.id}`} className="font-mono text-blue-700 underline">
                    {run.id.slice(0, 8)}
                  </Link>
                  <span className="text-ink-muted">
                    {formatUtc(run.createdAt)}
                    {run.executedBy ? ` · ${run.executedBy}` : ''}
                  </span>
                </li>
              ))}
            </ul>
          </details>
        ) : null}
      </main>
    </>
  );
}

/** A clock for elapsed times: starts at the loader's time (same text on server and client), ticks while the run is active. */
function useNow(readAt: string, ticking: boolean): number {
  const [now, setNow] = useState(() => Date.parse(readAt));
  useEffect(() => {
    setNow(Date.now());
    if (!ticking) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [ticking]);
  return now;
}

function attemptTitle(attempt: AttemptView): string {
  const verb = attempt.action === 'execute' ? 'Execute' : attempt.action === 'rollback' ? 'Rollback' : 'Rehearsal';
  return `${verb} by ${attempt.actor}`;
}

function Elapsed({ attempt, now }: { attempt?: AttemptView; now: number }) {
  if (!attempt) return null;
  const end = attempt.finishedAt ? Date.parse(attempt.finishedAt) : now;
  return (
    <p className="text-xs text-ink-muted">
      {attempt.finishedAt ? 'Took' : 'Elapsed'} <span className="font-mono text-sm font-semibold text-ink">{formatClock(end - Date.parse(attempt.startedAt))}</span>
    </p>
  );
}

function ConnectionBanner({ state, stoppedBecause, feedMode }: { state: StreamState; stoppedBecause: string | null; feedMode: FeedMode }) {
  if (state === 'stopped') {
    return (
      <div role="alert" className="mt-3 rounded border border-slate-300 bg-slate-50 px-3 py-2 text-xs font-medium text-slate-900">
        {stoppedBecause ?? 'Live updates stopped. Reload the page to see where the run is.'}
      </div>
    );
  }
  if (state === 'reconnecting') {
    return (
      <div role="alert" className="mt-3 rounded border border-amber-400 bg-amber-50 px-3 py-2 text-xs font-medium text-amber-900">
        Reconnecting… the live updates dropped; what follows will catch up when the connection is back.
      </div>
    );
  }
  if (state === 'lost') {
    return (
      <div role="alert" className="mt-3 rounded border border-red-300 bg-red-50 px-3 py-2 text-xs font-medium text-red-900">
        Live updates stopped. Reload the page to see where the run is.
      </div>
    );
  }
  if (state === 'open' && feedMode === 'polling') {
    return (
      <div role="status" data-feed-mode="polling" className="mt-3 rounded border border-amber-400 bg-amber-50 px-3 py-2 text-xs font-medium text-amber-900">
        Updates by polling: the server lost its notification connection to the store, so it checks for new events every second until it is back. Nothing is missed.
      </div>
    );
  }
  return null;
}

function CancelForm() {
  const fetcher = useFetcher<{ ok: boolean; message?: string; error?: string }>();
  const busy = fetcher.state !== 'idle';
  return (
    <fetcher.Form method="post" className="flex items-center gap-2">
      <button
        name="intent"
        value="cancel"
        disabled={busy}
        className="rounded bg-red-700 px-3 py-1 text-xs font-semibold text-white hover:bg-red-600 disabled:cursor-not-allowed disabled:opacity-60"
      >
        {busy ? 'Cancelling…' : 'Cancel run'}
      </button>
      {fetcher.data ? (
        <span role={fetcher.data.ok ? 'status' : 'alert'} className={fetcher.data.ok ? 'text-emerald-800' : 'text-red-800'}>
          {fetcher.data.ok ? fetcher.data.message : fetcher.data.error}
        </span>
      ) : null}
    </fetcher.Form>
  );
}

const ESTIMATE_KEYS: Record<string, string> = { verification: 'verification', post_execution: 'post_execution', snapshot: 'snapshot', apply: 'apply', rollback: 'rollback' };

function Attempt({ attempt, statements, estimated, now, latest }: { attempt: AttemptView; statements: Record<string, StatementText[]>; estimated: Record<string, number | undefined>; now: number; latest: boolean }) {
  const failure = failureOf(attempt);
  return (
    <section className={latest ? 'mt-4' : 'mt-1'} aria-label={latest ? 'Current attempt' : attemptTitle(attempt)}>
      {latest ? (
        <h2 className="flex flex-wrap items-center gap-2 text-sm font-semibold">
          {attemptTitle(attempt)} <span className="font-normal text-ink-muted">started {formatUtc(attempt.startedAt)}</span>
        </h2>
      ) : null}
      {attempt.cancelRequested ? (
        <p className="mt-1 text-xs text-amber-900">
          Cancel requested by {attempt.cancelRequested.by} at {formatUtc(attempt.cancelRequested.at)}.
        </p>
      ) : null}
      {attempt.notes.map((note) => (
        <p key={note} className="mt-1 text-xs text-ink-muted">
          {note}
        </p>
      ))}
      {attempt.error ? <p className="mt-1 text-xs text-red-800">The engine stopped: {attempt.error}</p> : null}

      <LockWaitPanel waits={attempt.waits} now={now} />
      {failure ? <FailurePanel failure={failure.failure} step={failure.step} statements={statements[failure.step.stepId] ?? []} /> : null}
      {!failure && attempt.stoppedAt ? <StoppedAtPanel stop={attempt.stoppedAt} now={now} /> : null}
      <PastWaits waits={attempt.waits} />

      <ol className="mt-2 space-y-2">
        {attempt.phases.map((phase, index) => (
          <PhaseRow key={`${phase.phase}-${index}`} phase={phase} plannedMs={phase.plannedMs ?? estimated[ESTIMATE_KEYS[phase.phase] ?? ''] ?? null} statements={statements} now={now} />
        ))}
      </ol>
    </section>
  );
}

function PhaseRow({ phase, plannedMs, statements, now }: { phase: PhaseView; plannedMs: number | null; statements: Record<string, StatementText[]>; now: number }) {
  const actual = phase.actualMs ?? (phase.status === 'running' ? Math.max(0, now - Date.parse(phase.startedAt)) : undefined);
  const over = plannedMs !== null && actual !== undefined && actual > plannedMs;
  const scale = Math.max(actual ?? 0, plannedMs ?? 0, 1);
  return (
    <li className="rounded border border-slate-200 bg-white p-2" aria-label={`Phase ${phaseLabel(phase.phase)}`}>
      <div className="flex flex-wrap items-center gap-2 text-xs">
        <span className="font-semibold">{phaseLabel(phase.phase)}</span>
        <StatusBadge status={badgeOf(phase.status)} />
        <span className="ml-auto whitespace-nowrap font-mono">
          <span className={over ? 'font-semibold text-amber-700' : ''}>{actual === undefined ? '—' : formatDuration(actual)}</span>
          <span className="text-ink-muted"> / planned {plannedMs === null ? '—' : formatDuration(plannedMs)}</span>
        </span>
        {over ? <StatusBadge status="over_estimate" /> : null}
      </div>
      <div className="mt-1 h-1.5 rounded bg-slate-100" aria-hidden="true">
        <div className={`h-1.5 rounded ${phase.status === 'failed' || phase.status === 'stopped' ? 'bg-red-500' : over ? 'bg-amber-500' : phase.status === 'running' ? 'bg-blue-500' : 'bg-emerald-500'}`} style={{ width: `${Math.min(100, ((actual ?? 0) / scale) * 100)}%` }} />
      </div>
      {phase.steps.map((step) => (
        <StepBlock key={step.stepId} step={step} statements={statements[step.stepId] ?? []} />
      ))}
      {phase.checks.filter((checks) => checks.results.length > 0).map((checks, index) => (
        <div key={index} className="mt-2 text-xs">
          <div className="flex flex-wrap items-center gap-1">
            <span className="text-ink-muted">Checks:</span>
            {checks.results.map((result) => (
              <StatusBadge key={result.checkId} status={result.skipped ? 'skipped' : result.passed ? 'pass' : 'fail'} label={result.checkId} title={result.reason ?? result.title} />
            ))}
          </div>
        </div>
      ))}
    </li>
  );
}

const badgeOf = (status: PhaseView['status']): string => (status === 'done' ? 'done' : status === 'failed' ? 'fail' : status === 'stopped' ? 'interrupted' : 'running');

function StepBlock({ step, statements }: { step: StepView; statements: StatementText[] }) {
  const total = step.statementCount ?? statements.length;
  return (
    <div className="mt-2 border-t border-slate-100 pt-2 text-xs">
      <div className="flex flex-wrap items-center gap-2">
        <span className="font-medium">{step.title}</span>
        {step.file ? <span className="font-mono text-ink-muted">{step.file}</span> : null}
        <span className="text-ink-muted">
          {step.statements.length} of {total || '?'} statements · {step.transactional ? 'one transaction' : 'statement by statement'}
        </span>
        <StatusBadge status={badgeOf(step.status)} />
      </div>
      {step.progress ? <StepProgress progress={step.progress} paused={step.paused === true} /> : null}
      {step.notes.length > 0 ? (
        <ul className="mt-1 space-y-0.5 text-[11px] text-ink-muted">
          {step.notes.map((note, index) => (
            <li key={index}>
              <span className="font-mono">{formatUtc(note.at).slice(11, 19)}</span> {note.text}
            </li>
          ))}
        </ul>
      ) : null}
      {step.statements.length > 0 ? (
        <div className="mt-1 overflow-x-auto">
          <table className="text-left">
            <caption className="sr-only">Statements of {step.title}</caption>
            <thead className="text-[10px] uppercase tracking-wide text-ink-muted">
              <tr>
                <th scope="col" className="pr-4">#</th>
                <th scope="col" className="pr-4">Line</th>
                <th scope="col" className="pr-4">Command</th>
                <th scope="col" className="pr-4 text-right">Took</th>
                <th scope="col" className="pr-4 text-right">Rows</th>
                <th scope="col">Notices</th>
              </tr>
            </thead>
            <tbody className="font-mono">
              {step.statements.map((statement) => (
                <tr key={statement.index} className="align-top">
                  <td className="pr-4">{statement.index + 1}</td>
                  <td className="pr-4 whitespace-nowrap">
                    {statement.line}
                    {statement.endLine > statement.line ? `–${statement.endLine}` : ''}
                  </td>
                  <td className="pr-4 whitespace-nowrap">{statement.command}</td>
                  <td className="pr-4 text-right whitespace-nowrap">{formatDuration(statement.durationMs)}</td>
                  <td className="pr-4 text-right">{statement.rowCount ?? ''}</td>
                  <td className="font-sans">
                    {statement.notices.map((notice, index) => (
                      <div key={index} className="text-sky-900">
                        <span className="font-mono text-[10px]">{notice.severity}</span> {notice.message}
                      </div>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}

function StepProgress({ progress, paused }: { progress: NonNullable<StepView['progress']>; paused: boolean }) {
  const percent = progress.total ? Math.min(100, (progress.done / progress.total) * 100) : null;
  return (
    <div className="mt-1">
      <div
        role="progressbar"
        aria-label="Step progress"
        aria-valuemin={0}
        aria-valuemax={progress.total ?? undefined}
        aria-valuenow={progress.done}
        className="h-2 rounded bg-slate-200"
      >
        <div className={`h-2 rounded ${paused ? 'bg-amber-500' : 'bg-blue-600'}`} style={{ width: `${percent ?? 100}%` }} />
      </div>
      <p className="mt-0.5 text-[11px] text-ink-muted">
        {progress.done.toLocaleString('en-US')}
        {progress.total !== null ? ` of ${progress.estimated ? 'about ' : ''}${progress.total.toLocaleString('en-US')}` : ''} rows
        {percent !== null ? ` (${percent.toFixed(1)}%)` : ''}
        {progress.remaining !== undefined && progress.remaining !== null
          ? ` · ${progress.estimated ? 'about ' : ''}${progress.remaining.toLocaleString('en-US')} still to do${progress.estimated ? ' (estimate)' : ''}`
          : ''}
        {progress.finalPass ? ' · final pass for rows other sessions held' : ''}
        {progress.rate !== null ? ` · ${Math.round(progress.rate).toLocaleString('en-US')} rows/s` : ''}
        {progress.etaMs !== null && !paused ? ` · about ${formatDuration(progress.etaMs)} left` : ''}
        {paused ? ' · paused' : ''}
      </p>
    </div>
  );
}

function FailurePanel({ failure, step, statements }: { failure: FailureView; step: StepView; statements: StatementText[] }) {
  const statement = statements.find((candidate) => candidate.index === failure.statementIndex);
  return (
    <details open className="mt-2 rounded border border-red-300 bg-red-50 text-xs text-red-950">
      <summary className="cursor-pointer px-2 py-1.5 font-semibold">
        {failure.cancelled ? 'Cancelled' : 'Failure'}: {step.title}
        {failure.line ? `, line ${failure.line}` : ''}
        {failure.sqlstate ? `, SQLSTATE ${failure.sqlstate}` : ''}
      </summary>
      <section aria-label="Failure" className="space-y-2 px-2 pb-2">
        <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-0.5">
          <dt className="text-red-800">Statement</dt>
          <dd>{failure.statementIndex >= 0 ? `${failure.statementIndex + 1} of step ${failure.stepId}` : `none (step ${failure.stepId})`}</dd>
          <dt className="text-red-800">Line</dt>
          <dd className="font-mono">{failure.line || '—'}</dd>
          <dt className="text-red-800">SQLSTATE</dt>
          <dd className="font-mono">{failure.sqlstate ?? '—'}</dd>
          <dt className="text-red-800">Message</dt>
          <dd className="break-words font-mono">{failure.message}</dd>
          {failure.detail ? (
            <>
              <dt className="text-red-800">Detail</dt>
              <dd className="break-words">{failure.detail}</dd>
            </>
          ) : null}
          {failure.hint ? (
            <>
              <dt className="text-red-800">Hint</dt>
              <dd className="break-words">{failure.hint}</dd>
            </>
          ) : null}
          {failure.cancelledBy ? (
            <>
              <dt className="text-red-800">Cancelled by</dt>
              <dd>{failure.cancelledBy}</dd>
            </>
          ) : null}
        </dl>
        {failure.summary ? <p>{failure.summary}</p> : null}
        {failure.note ? <p className="text-amber-900">{failure.note}</p> : null}
        {failure.blockers.length > 0 ? <BlockersTable blockers={failure.blockers} /> : null}
        {statement ? (
          <div>
            <div className="flex items-center gap-2">
              <span className="font-semibold">
                SQL, lines {statement.line}–{statement.endLine}
              </span>
              <CopyButton text={statement.sql} label="Copy the failing statement" />
            </div>
            <pre className="mt-1 max-h-80 overflow-auto rounded bg-white p-2 font-mono text-[11px] text-ink">
              {statement.sql.split('\n').map((text, index) => {
                const line = statement.line + index;
                return (
                  <span key={index} className={`block ${line === failure.line ? 'bg-red-100 font-semibold' : ''}`}>
                    <span className="mr-3 inline-block w-8 select-none text-right text-ink-faint">{line}</span>
                    {text}
                  </span>
                );
              })}
            </pre>
          </div>
        ) : null}
      </section>
    </details>
  );
}

function FinalState({
  state,
  reason,
  verified,
  attempt,
  checklistUrl,
  reportUrl,
  rehearsal,
}: {
  state: string;
  reason?: string;
  verified: boolean | null;
  attempt?: AttemptView;
  checklistUrl: string;
  reportUrl: string;
  rehearsal: boolean;
}) {
  const failed = ['failed', 'cancelled', 'rollback_failed', 'rehearsal_failed', 'interrupted'].includes(state);
  return (
    <section aria-label="Final state" className={`mt-4 rounded border p-3 text-sm ${failed ? 'border-red-300 bg-red-50' : 'border-emerald-300 bg-emerald-50'} ${rehearsal ? 'border-dashed' : ''}`}>
      <p className="flex flex-wrap items-center gap-2 font-semibold">
        Final state <StatusBadge status={state} rehearsal={rehearsal} />
        {state === 'applied' && verified === false ? <StatusBadge status="fail" label="Verification failed" /> : null}
        {attempt?.finishedAt ? <span className="text-xs font-normal text-ink-muted">at {formatUtc(attempt.finishedAt)}</span> : null}
      </p>
      {reason ? <p className="mt-1 text-xs font-medium">{reason}</p> : null}
      <p className="mt-1 text-xs">
        {state === 'interrupted'
          ? 'The process driving the run stopped. What the target\'s ledger says decides what follows: if the apply landed, roll back from the checklist; otherwise start a new attempt there.'
          : state === 'cancelled'
          ? `Cancelled${attempt?.cancelRequested ? ` by ${attempt.cancelRequested.by}` : ''}: the running statements were cancelled and their transaction rolled back. The checklist says whether anything had committed (then roll back) or offers a new attempt.`
          : state === 'rollback_failed'
          ? 'The rollback did not finish: see where it stopped above. It may be tried again from the checklist once the cause is gone.'
          : state === 'watching' || state === 'watch_alarm'
          ? `The apply stands; its watch re-runs the plan's checks until the window closes${state === 'watch_alarm' ? ', and a check that passed has failed: see the watch on the checklist, and decide whether to roll back' : ''}.`
          : state === 'watched'
          ? 'The apply stands and its watch ended (see the watch on the checklist). Send the post message — or roll back.'
          : state === 'applied'
          ? 'Next: check verification and post-execution results on the checklist, tick the success criteria, send the post message — or roll back.'
          : state === 'rolled_back'
            ? 'The rollback committed and its verification ran.'
            : rehearsal
              ? 'The rehearsal rolled everything back: the target is as it was.'
              : `The run stopped${attempt?.stoppedAt ? ` in ${phaseLabel(attempt.stoppedAt.phase)}` : ''}: see where and why above. The checklist offers a rollback when part of it committed, or a new attempt.`}{' '}
        <Link to={checklistUrl} className="font-medium text-blue-700 underline">
          Open the checklist
        </Link>{' '}
        ·{' '}
        <Link to={reportUrl} className="font-medium text-blue-700 underline">
          Open the report
        </Link>
      </p>
    </section>
  );
}

function RunLog({ events }: { events: RunEvent[] }) {
  return (
    <details className="mt-4 rounded border border-slate-200 bg-white">
      <summary className="cursor-pointer px-2 py-1.5 text-xs font-semibold">Run log ({events.length} events)</summary>
      <div className="overflow-x-auto px-2 pb-2">
        <table className="w-full text-left text-[11px]">
          <caption className="sr-only">Every event of the run log</caption>
          <thead className="uppercase tracking-wide text-ink-muted">
            <tr>
              <th scope="col" className="pr-2">Seq</th>
              <th scope="col" className="pr-2">At</th>
              <th scope="col" className="pr-2">Who</th>
              <th scope="col" className="pr-2">Event</th>
              <th scope="col">What</th>
            </tr>
          </thead>
          <tbody className="font-mono">
            {events.map((event) => (
              <tr key={event.seq} className="align-top">
                <td className="pr-2">{event.seq}</td>
                <td className="pr-2 whitespace-nowrap">{formatUtc(event.at).slice(11)}</td>
                <td className="pr-2">{event.actor}</td>
                <td className="pr-2 whitespace-nowrap">{storedTypeOf(event)}</td>
                <td className="max-w-md truncate text-ink-muted" title={JSON.stringify(event.payload)}>
                  {summarizePayload(event)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </details>
  );
}

function summarizePayload(event: RunEvent): string {
  switch (event.type) {
    case 'state.changed':
      return `${event.payload.from} → ${event.payload.to}: ${event.payload.reason}`;
    case 'prerequisite.ticked':
    case 'prerequisite.unticked':
      return event.payload.itemId;
    case 'checks.ran':
      return `${event.payload.phase}: ${event.payload.passed ? 'passed' : `failed ${JSON.stringify(event.payload.failed)}`}`;
    case 'statement.completed':
      return `line ${event.payload.line} ${event.payload.command} ${formatDuration(event.payload.durationMs)}`;
    case 'note.added':
      return event.payload.text;
    case 'unrecognised':
      return JSON.stringify(event.payload.storedPayload).slice(0, 160);
    default:
      return JSON.stringify(event.payload).slice(0, 160);
  }
}

export { RouteErrorBoundary as ErrorBoundary } from '../components/route-error-boundary';
