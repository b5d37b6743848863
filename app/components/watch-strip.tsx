/**
 * The watch window as a strip of results over time (SVG, like the phase timeline): each round the
 * log keeps is a mark (green passed, red failing), the quiet stretch before it a pale band whose
 * title says how many unchanged rounds it holds, alarms a red dot above, the window's end a line.
 */
import type { WatchStrip } from '../runs/watch-strip';
import { formatSpan, formatUtc } from '../runtime/format';

const WIDTH = 640;
const HEIGHT = 46;
const TOP = 14;
const BAND = 20;

export function WatchStripView({ strip, nowIso }: { strip: WatchStrip; nowIso: string }) {
  const start = Date.parse(strip.startedAt);
  const end = Math.max(Date.parse(strip.endsAt), start + 1);
  const x = (iso: string) => Math.max(0, Math.min(WIDTH, ((Date.parse(iso) - start) / (end - start)) * WIDTH));
  const until = strip.ended ? x(strip.ended.at) : x(nowIso);
  const summary = strip.ended
    ? `Ended (${strip.ended.reason.replace('_', ' ')}), ${strip.ended.clean ? 'clean' : `${strip.alarms.length} alarm(s)`}, ${strip.ended.rounds} round(s)`
    : `Watching: ${strip.rounds.length} round(s) kept, ${strip.alarms.length} alarm(s)`;
  return (
    <figure aria-label="Watch window" className="space-y-1">
      <svg role="img" aria-label={`Watch strip: ${summary}`} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} className="h-12 w-full max-w-2xl">
        <rect x={0} y={TOP} width={WIDTH} height={BAND} className="fill-slate-100" />
        <rect x={0} y={TOP} width={until} height={BAND} className="fill-emerald-50" />
        {strip.rounds.map((round, index) => {
          const previous = index > 0 ? x(strip.rounds[index - 1]!.at) : 0;
          const at = x(round.at);
          return (
            <g key={round.round}>
              {round.unchangedBefore > 0 ? (
                <rect x={previous} y={TOP} width={Math.max(1, at - previous)} height={BAND} className="fill-emerald-100">
                  <title>{`${round.unchangedBefore} unchanged round(s)`}</title>
                </rect>
              ) : null}
              <rect x={Math.max(0, at - 2)} y={TOP} width={4} height={BAND} className={round.unreachable ? 'fill-amber-500' : round.passed ? 'fill-emerald-600' : 'fill-red-600'}>
                <title>
                  {round.unreachable
                    ? `Round ${round.round} at ${formatUtc(round.at)}: no check ran (${round.unreachable})`
                    : `Round ${round.round} at ${formatUtc(round.at)}: ${round.passed ? 'all passed' : `failing: ${round.failed.join(', ')}`}; changed: ${round.changed.join(', ') || 'nothing'}`}
                </title>
              </rect>
            </g>
          );
        })}
        {strip.alarms.map((alarm) => (
          <circle key={`${alarm.round}-${alarm.checkId}`} cx={x(alarm.at)} cy={7} r={5} className="fill-red-600">
            <title>{`Alarm, round ${alarm.round}: ${alarm.checkId}${alarm.reason ? ` (${alarm.reason})` : ''}; last passed ${alarm.lastPassedAt ? formatUtc(alarm.lastPassedAt) : 'not since the watch began'}`}</title>
          </circle>
        ))}
        <line x1={until} x2={until} y1={TOP - 2} y2={TOP + BAND + 2} className="stroke-slate-700" strokeWidth={1.5} />
      </svg>
      <figcaption className="text-xs text-slate-600">
        {summary}. Checks {strip.checks.join(', ')} every {formatSpan(strip.everyMs)}, {formatUtc(strip.startedAt)} → {formatUtc(strip.endsAt)}
        {strip.extensions.length > 0 ? ` (extended ${strip.extensions.length}×, last by ${strip.extensions.at(-1)!.by})` : ''}
        {strip.ended?.note ? `; ended by ${strip.ended.by}: ${strip.ended.note}` : ''}.
      </figcaption>
      {strip.alarms.length > 0 ? (
        <ul className="text-xs text-red-800" aria-label="Watch alarms">
          {strip.alarms.map((alarm) => (
            <li key={`${alarm.round}-${alarm.checkId}`}>
              Round {alarm.round}, {formatUtc(alarm.at)}: <span className="font-mono">{alarm.checkId}</span> failed{alarm.reason ? ` (${alarm.reason})` : ''}; last passed{' '}
              {alarm.lastPassedAt ? formatUtc(alarm.lastPassedAt) : 'not since the watch began'}.
            </li>
          ))}
        </ul>
      ) : null}
    </figure>
  );
}
