import { formatDuration } from '../runtime/format';

export interface TimelinePhase {
  phase: string;
  startedAt: string | null;
  plannedMs: number | null;
  actualMs: number | null;
  incomplete: boolean;
  /** db/run-lifecycle.ts phaseStatusOf: failed and stopped phases are drawn red, never as done. */
  status?: 'running' | 'done' | 'failed' | 'stopped';
}

const PHASE_LABELS: Record<string, string> = {
  pre: 'Pre-checks',
  prechecks: 'Pre-checks',
  snapshot: 'Snapshot',
  apply: 'Apply',
  verify: 'Verification',
  verification: 'Verification',
  post: 'Post-execution',
  post_execution: 'Post-execution',
  rollback: 'Rollback',
  rehearsal: 'Rehearsal',
};

export const phaseLabel = (phase: string): string => PHASE_LABELS[phase] ?? phase.replace(/[_-]/g, ' ');

const WIDTH = 800;
const LABEL_WIDTH = 130;
const VALUE_WIDTH = 150;
const ROW_HEIGHT = 36;
const TOP = 8;
const AXIS_HEIGHT = 26;

interface Laid {
  phase: TimelinePhase;
  offsetMs: number;
  actualMs: number;
  plannedMs: number | null;
  over: boolean;
}

/** Each phase at its real start (from the log's clock) when known, else one after the other. */
function layout(phases: readonly TimelinePhase[]): { rows: Laid[]; spanMs: number } {
  const starts = phases.map((phase) => (phase.startedAt ? Date.parse(phase.startedAt) : Number.NaN));
  const t0 = Math.min(...starts.filter((value) => !Number.isNaN(value)));
  let cursor = 0;
  const rows = phases.map((phase, index) => {
    const start = starts[index]!;
    const offsetMs = Number.isFinite(t0) && !Number.isNaN(start) ? start - t0 : cursor;
    const actualMs = Math.max(0, phase.actualMs ?? 0);
    cursor = offsetMs + actualMs;
    return { phase, offsetMs, actualMs, plannedMs: phase.plannedMs, over: phase.plannedMs !== null && actualMs > phase.plannedMs };
  });
  const spanMs = Math.max(1, ...rows.map((row) => row.offsetMs + Math.max(row.actualMs, row.plannedMs ?? 0)));
  return { rows, spanMs };
}

const failedRow = (row: Laid) => row.phase.incomplete || row.phase.status === 'failed' || row.phase.status === 'stopped';

function describe(row: Laid): string {
  const took = row.phase.incomplete ? `ran ${formatDuration(row.actualMs)} and did not complete` : row.phase.status === 'failed' ? `failed after ${formatDuration(row.actualMs)}` : `took ${formatDuration(row.actualMs)}`;
  if (row.plannedMs === null) return `${phaseLabel(row.phase.phase)} ${took}, no estimate.`;
  const delta = row.actualMs - row.plannedMs;
  const verdict = delta > 0 ? `${formatDuration(delta)} over` : `${formatDuration(-delta)} under`;
  return `${phaseLabel(row.phase.phase)} ${took}, planned ${formatDuration(row.plannedMs)} (${verdict}).`;
}

/**
 * The run's phases on one time axis: a dashed bar for the plan's estimate, a solid one for what
 * it took (amber when over the estimate, red when the phase never completed). A picture for
 * sighted readers; the same facts in <desc> and in the table beside it.
 */
export function PhaseTimeline({ phases, id = 'phase-timeline' }: { phases: readonly TimelinePhase[]; id?: string }) {
  if (phases.length === 0) return <p className="text-xs text-ink-muted">No phase has started: the run has not executed.</p>;
  const { rows, spanMs } = layout(phases);
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  const x = (ms: number) => LABEL_WIDTH + (ms / spanMs) * plotWidth;
  const height = TOP + rows.length * ROW_HEIGHT + AXIS_HEIGHT;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <figure className="break-inside-avoid">
      <svg viewBox={`0 0 ${WIDTH} ${height}`} className="h-auto w-full max-w-4xl" role="img" aria-labelledby={`${id}-title`} aria-describedby={`${id}-desc`}>
        <title id={`${id}-title`}>Phases, planned against actual</title>
        <desc id={`${id}-desc`}>{rows.map(describe).join(' ')}</desc>
        {ticks.map((tick) => (
          <g key={tick}>
            <line x1={x(tick * spanMs)} x2={x(tick * spanMs)} y1={TOP - 4} y2={TOP + rows.length * ROW_HEIGHT} stroke="#e2e8f0" strokeWidth={1} />
            <text x={x(tick * spanMs)} y={height - 8} fontSize={11} fill="#475569" textAnchor={tick === 0 ? 'start' : tick === 1 ? 'end' : 'middle'}>
              {tick === 0 ? '0' : formatDuration(tick * spanMs)}
            </text>
          </g>
        ))}
        {rows.map((row, index) => {
          const y = TOP + index * ROW_HEIGHT;
          const fill = failedRow(row) ? '#dc2626' : row.over ? '#d97706' : '#059669';
          return (
            <g key={`${row.phase.phase}-${index}`}>
              <text x={0} y={y + 21} fontSize={13} fill="#0f172a">
                {phaseLabel(row.phase.phase)}
              </text>
              {row.plannedMs !== null ? (
                <rect
                  x={x(row.offsetMs)}
                  y={y + 4}
                  width={Math.max(2, x(row.offsetMs + row.plannedMs) - x(row.offsetMs))}
                  height={10}
                  fill="#f1f5f9"
                  stroke="#64748b"
                  strokeDasharray="4 3"
                  strokeWidth={1}
                />
              ) : null}
              <rect x={x(row.offsetMs)} y={y + 16} width={Math.max(2, x(row.offsetMs + row.actualMs) - x(row.offsetMs))} height={12} fill={fill} rx={1} />
              <text x={WIDTH} y={y + 21} fontSize={12} fill="#334155" textAnchor="end">
                {formatDuration(row.actualMs)}
                {row.plannedMs !== null ? ` / ${formatDuration(row.plannedMs)}` : ''}
                {failedRow(row) ? ' ✕' : row.over ? ' !' : ''}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption className="mt-1 flex flex-wrap gap-x-4 gap-y-1 text-xs text-ink-muted">
        <span className="inline-flex items-center gap-1">
          <span aria-hidden="true" className="inline-block h-2.5 w-5 border border-dashed border-slate-500 bg-slate-100" /> planned (the plan&apos;s estimate)
        </span>
        <span className="inline-flex items-center gap-1">
          <span aria-hidden="true" className="inline-block h-2.5 w-5 bg-emerald-600" /> actual, within estimate
        </span>
        <span className="inline-flex items-center gap-1">
          <span aria-hidden="true" className="inline-block h-2.5 w-5 bg-amber-600" /> over estimate (!)
        </span>
        <span className="inline-flex items-center gap-1">
          <span aria-hidden="true" className="inline-block h-2.5 w-5 bg-red-600" /> failed or did not complete (✕)
        </span>
      </figcaption>
    </figure>
  );
}
