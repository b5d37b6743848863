import type { Blocker } from '../../db/schema/run-outcome';
import { formatAge, formatUtc } from '../runtime/format';

/** The sessions that blocked (or block) a statement: one table for the live wait, a failure and the report. */
export function BlockersTable({ blockers, now, caption = 'Blocked by' }: { blockers: readonly Blocker[]; now?: number; caption?: string }) {
  return (
    <div className="overflow-x-auto">
      <table className="w-full text-left">
        <caption className="text-left font-semibold">{caption}</caption>
        <thead className="text-[10px] uppercase tracking-wide">
          <tr>
            <th scope="col" className="pr-2">pid</th>
            <th scope="col" className="pr-2">Application</th>
            <th scope="col" className="pr-2">User</th>
            <th scope="col" className="pr-2">State</th>
            <th scope="col" className="pr-2">{now !== undefined ? 'In its transaction for' : 'In a transaction'}</th>
            <th scope="col" className="pr-2">Lock</th>
            <th scope="col">Query</th>
          </tr>
        </thead>
        <tbody className="font-mono">
          {blockers.map((blocker) =>
            blocker.visible === false ? (
              <tr key={blocker.pid} className="align-top">
                <td className="pr-2">{blocker.pid}</td>
                <td colSpan={6} className="font-sans italic">
                  cannot see (insufficient privilege){blocker.user ? `: user ${blocker.user}` : ''}; grant pg_read_all_stats to the target role to see who this is
                </td>
              </tr>
            ) : (
              <tr key={blocker.pid} className="align-top">
                <td className="pr-2">{blocker.pid || 'prepared xact'}</td>
                <td className="pr-2">{blocker.application || '—'}</td>
                <td className="pr-2">{blocker.user ?? '—'}</td>
                <td className="pr-2">{blocker.state ?? blocker.waitEvent ?? '—'}</td>
                <td className="pr-2">
                  {!blocker.xactStart ? '—' : now !== undefined ? formatAge(Math.max(0, now - Date.parse(blocker.xactStart))) : `since ${formatUtc(blocker.xactStart)}`}
                </td>
                <td className="pr-2">
                  {blocker.lockMode ?? ''}
                  {blocker.relation ? ` on ${blocker.relation}` : ''}
                </td>
                <td className="break-all">{blocker.query ?? ''}</td>
              </tr>
            ),
          )}
        </tbody>
      </table>
    </div>
  );
}
