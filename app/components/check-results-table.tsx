import { useState } from 'react';
import type { LatestCheckResult } from '../plans/plan-on-target.server';
import { describeExpectation } from '../checks/describe-expectation';
import { CopyButton } from './copy-button';
import { formatAge, formatDuration } from '../runtime/format';
import { StatusBadge } from './status-badge';

interface CheckRow {
  id: string;
  title: string;
  kind: string;
  expect: { type: string } & Record<string, unknown>;
}

/** A result as a table shows it: with its SQL inline, or only whether it has one (`hasSql`), fetched by `sqlHref` when opened. */
export type TableCheckResult = Omit<LatestCheckResult, 'sql' | 'id'> & { id?: number; sql?: string | null; hasSql?: boolean };

/**
 * Expected vs actual for each check of a phase, with its age and the exact SQL on demand: inline
 * when the results carry it, else fetched from `sqlHref(result id)` when its disclosure opens (a
 * page of many checks does not send every SQL body in its first answer).
 */
export function CheckResultsTable({
  checks,
  results,
  checksum,
  sqlHref,
}: {
  checks: CheckRow[];
  results: Record<string, TableCheckResult>;
  checksum: string;
  sqlHref?: (resultId: number) => string;
}) {
  if (checks.length === 0) return <p className="mt-2 text-xs text-ink-muted">No checks in this phase.</p>;
  return (
    <div className="mt-2 overflow-x-auto rounded border border-slate-200 bg-white">
      <table className="w-full text-left text-xs">
        <thead className="bg-slate-50 uppercase tracking-wide text-ink-muted">
          <tr>
            <th scope="col" className="px-2 py-1.5">Check</th>
            <th scope="col" className="px-2 py-1.5">Result</th>
            <th scope="col" className="px-2 py-1.5">Expected</th>
            <th scope="col" className="px-2 py-1.5">Actual</th>
            <th scope="col" className="px-2 py-1.5">Took</th>
            <th scope="col" className="px-2 py-1.5">Checked</th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {checks.map((check) => {
            const result = results[check.id];
            const stale = result && result.planChecksum !== checksum;
            const status = !result ? 'pending' : result.skipped ? 'skipped' : stale ? 'stale' : result.actual === 'cannot see' ? 'cannot_see' : result.passed ? 'pass' : result.error ? 'error' : 'fail';
            return (
              <tr key={check.id} id={`check-${check.id}`} className="scroll-mt-4 align-top">
                <td className="px-2 py-1.5">
                  <div className="font-medium text-ink">{check.title}</div>
                  <div className="font-mono text-ink-muted">
                    {check.id} · {check.kind}
                  </div>
                  {result?.sql ? (
                    <details className="mt-1">
                      <summary className="cursor-pointer text-blue-700">SQL</summary>
                      <div className="mt-1 flex items-start gap-2">
                        <pre className="max-w-xl overflow-x-auto whitespace-pre-wrap rounded bg-slate-50 p-2 font-mono text-[11px]">{result.sql}</pre>
                        <CopyButton text={result.sql} label={`Copy SQL of ${check.id}`} />
                      </div>
                    </details>
                  ) : result?.hasSql && result.id !== undefined && sqlHref ? (
                    <SqlOnDemand href={sqlHref(result.id)} checkId={check.id} />
                  ) : null}
                </td>
                <td className="px-2 py-1.5">
                  <StatusBadge status={status} title={stale ? 'Ran under another plan checksum' : undefined} />
                </td>
                <td className="max-w-sm px-2 py-1.5 font-mono [overflow-wrap:anywhere]">{describeExpectation(check.expect)}</td>
                <td className="max-w-xs px-2 py-1.5 font-mono">
                  {result ? (
                    <>
                      <span className="[overflow-wrap:anywhere]">{describeActual(result.actual)}</span>
                      {result.skipped && result.reason ? <div className="mt-1 font-sans text-ink-muted">{result.reason}</div> : null}
                      {result.error ? (
                        <div className="mt-1 text-red-800">
                          {result.error.sqlstate ? `SQLSTATE ${result.error.sqlstate}: ` : ''}
                          {result.error.message}
                        </div>
                      ) : null}
                    </>
                  ) : (
                    <span className="text-ink-faint">—</span>
                  )}
                </td>
                <td className="px-2 py-1.5 whitespace-nowrap">{result ? formatDuration(result.durationMs) : ''}</td>
                <td className="px-2 py-1.5 whitespace-nowrap" title={result?.ranAt}>
                  {result ? `${formatAge(result.ageMs)} ago` : 'not run'}
                  {result?.ranBy ? <div className="text-ink-muted">{result.ranBy}</div> : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function describeActual(actual: unknown): string {
  if (actual === null || actual === undefined) return '—';
  if (typeof actual === 'string') return actual;
  const text = JSON.stringify(actual);
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

type SqlState = { kind: 'idle' } | { kind: 'loading' } | { kind: 'loaded'; sql: string } | { kind: 'failed'; message: string };

/** A check's SQL, fetched when its disclosure is first opened; a failed fetch says why and offers a retry. */
function SqlOnDemand({ href, checkId }: { href: string; checkId: string }) {
  const [state, setState] = useState<SqlState>({ kind: 'idle' });
  const load = async () => {
    setState({ kind: 'loading' });
    try {
      const response = await fetch(href, { headers: { Accept: 'application/json' } });
      const body = (await response.json().catch(() => null)) as { sql?: unknown; error?: unknown } | null;
      if (!response.ok || typeof body?.sql !== 'string') throw new Error(typeof body?.error === 'string' ? body.error : `the server answered ${response.status}`);
      setState({ kind: 'loaded', sql: body.sql });
    } catch (cause) {
      setState({ kind: 'failed', message: cause instanceof Error ? cause.message : String(cause) });
    }
  };
  return (
    <details
      className="mt-1"
      data-sql-on-demand={checkId}
      onToggle={(event) => {
        if (event.currentTarget.open && state.kind === 'idle') void load();
      }}
    >
      <summary className="cursor-pointer text-blue-700">SQL</summary>
      <div className="mt-1" aria-live="polite">
        {state.kind === 'loaded' ? (
          <div className="flex items-start gap-2">
            <pre className="max-w-xl overflow-x-auto whitespace-pre-wrap rounded bg-slate-50 p-2 font-mono text-[11px]">{state.sql}</pre>
            <CopyButton text={state.sql} label={`Copy SQL of ${checkId}`} />
          </div>
        ) : state.kind === 'failed' ? (
          <p role="alert" className="text-red-800">
            Could not load the SQL of {checkId}: {state.message}.{' '}
            <button type="button" className="underline" onClick={() => void load()}>
              Try again
            </button>
          </p>
        ) : state.kind === 'loading' ? (
          <p className="text-ink-muted">Loading the SQL…</p>
        ) : (
          <a href={href} className="text-blue-700 underline">
            Open the SQL of {checkId}
          </a>
        )}
      </div>
    </details>
  );
}
