import type { RunStop } from '../../db/schema/run-outcome';
import { formatAge, formatDuration } from '../runtime/format';
import { lockWaitInWords } from '../runtime/lock-wait-words';
import type { WaitView } from '../runs/run-timeline';
import { phaseLabel } from '../runs/run-timeline';
import { BlockersTable } from './blockers-table';

/**
 * What the run waits on right now: each session of the run that has waited over a second for a
 * lock, who holds it (pg_blocking_pids), and the time left until lock_timeout fires. The seconds
 * are counted here from the logged start, so the panel moves between the engine's samples.
 */
export function LockWaitPanel({ waits, now }: { waits: readonly WaitView[]; now: number }) {
  const open = waits.filter((wait) => !wait.endedAt);
  if (open.length === 0) return null;
  return (
    <section role="alert" aria-label="Lock waits" className="mt-2 space-y-2 rounded border border-amber-400 bg-amber-50 p-2 text-xs text-amber-950">
      {open.map((wait) => {
        const waited = Math.max(0, now - Date.parse(wait.since));
        const left = wait.lockTimeoutMs !== null ? wait.lockTimeoutMs - waited : null;
        return (
          <div key={`${wait.pid}-${wait.since}`}>
            <p className="font-semibold">{capitalized(lockWaitInWords(wait, now))}</p>
            <p className="mt-0.5 text-amber-900">
              {wait.phase ? `${phaseLabel(wait.phase)} · ` : ''}session pid {wait.pid} · wait event {wait.waitEvent}
              {left !== null ? ` · ${left > 0 ? `lock_timeout (${formatDuration(wait.lockTimeoutMs!)}) fires in ${formatAge(left)}` : 'lock_timeout due now'}` : ''}
            </p>
            {wait.query ? <pre className="mt-1 max-h-24 overflow-auto whitespace-pre-wrap rounded bg-white p-1 font-mono text-[11px] text-ink">{wait.query}</pre> : null}
            {wait.blockers.length > 0 ? <BlockersTable blockers={wait.blockers} now={now} caption="Held by" /> : null}
          </div>
        );
      })}
      <p className="text-amber-900">Nothing is lost by waiting; Cancel run stops it now and rolls back what has not committed.</p>
    </section>
  );
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** Lock waits that ended, one line each (how long, blocked by whom). */
export function PastWaits({ waits }: { waits: readonly WaitView[] }) {
  const ended = waits.filter((wait) => wait.endedAt);
  if (ended.length === 0) return null;
  return (
    <ul className="mt-1 space-y-0.5 text-xs text-ink-muted" aria-label="Lock waits that ended">
      {ended.map((wait) => (
        <li key={`${wait.pid}-${wait.since}`}>
          {capitalized(wait.waitingFor)} waited {formatDuration(wait.waitedMs ?? Date.parse(wait.endedAt!) - Date.parse(wait.since))} for a lock
          {wait.relation ? ` on ${wait.relation}` : ''}
          {wait.blockers.length > 0 ? ` held by pid ${wait.blockers.map((blocker) => blocker.pid).join(', ')}` : ''}
        </li>
      ))}
    </ul>
  );
}

/** Where a drive stopped (its outcome's stoppedAt): the phase, the check or step, SQLSTATE, message and blockers. */
export function StoppedAtPanel({ stop, now }: { stop: RunStop; now?: number }) {
  const what = stop.checkId ? `check ${stop.checkId}` : stop.stepId ? `step ${stop.stepId}` : phaseLabel(stop.phase);
  return (
    <section aria-label="Where the run stopped" className="mt-2 rounded border border-red-300 bg-red-50 p-2 text-xs text-red-950">
      <p className="font-semibold">
        {stop.cancelledBy ? 'Cancelled' : 'Stopped'} in {phaseLabel(stop.phase)}: {what}
        {stop.line ? `, line ${stop.line}` : ''}
        {stop.sqlstate ? `, SQLSTATE ${stop.sqlstate}` : ''}
      </p>
      <p className="mt-0.5 break-words font-mono">{stop.message}</p>
      {stop.detail ? <p className="mt-0.5">Detail: {stop.detail}</p> : null}
      {stop.hint ? <p className="mt-0.5">Hint: {stop.hint}</p> : null}
      {stop.blockers.length > 0 ? <BlockersTable blockers={stop.blockers} now={now} /> : null}
    </section>
  );
}
