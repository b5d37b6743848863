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

/** Expected vs actual for each check of a phase, with its age and the exact SQL on demand. */
export function CheckResultsTable({ checks, results, checksum }: { checks: CheckRow[]; results: Record<string, LatestCheckResult>; checksum: string }) {
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
