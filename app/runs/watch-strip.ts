/**
 * A run's watch window as the plan page and the report draw it (a strip of results over time):
 * folded from its run-log events only, so every page that has the log can draw it the same way.
 */
import { eventsOf, type RunEvent, type RunEventType } from './run-events';

/** The events a strip is folded from: what a page reads for it. */
export const WATCH_EVENT_TYPES = ['watch.started', 'watch.runner', 'watch.round', 'watch.alarm', 'watch.extended', 'watch.ended'] as const satisfies readonly RunEventType[];

export interface WatchStrip {
  startedAt: string;
  endsAt: string;
  checks: string[];
  everyMs: number;
  /** The rounds the log keeps in full (the first, and each that changed a result). */
  /** `unreachable`: the target could not be reached that round (no check ran), with why. */
  rounds: { round: number; at: string; passed: boolean; failed: string[]; changed: string[]; unchangedBefore: number; unreachable: string | null }[];
  alarms: { round: number; at: string; checkId: string; reason: string | null; lastPassedAt: string | null }[];
  extensions: { at: string; by: string; endsAt: string; note: string | null }[];
  runners: { at: string; runner: string; reason: string }[];
  ended: { at: string; reason: 'window_closed' | 'ended_early' | 'rolled_back'; clean: boolean; rounds: number; by: string; note: string | null } | null;
}

export function watchStripOf(events: readonly RunEvent[]): WatchStrip | null {
  const started = eventsOf(events, 'watch.started')[0];
  if (!started) return null;
  const extensions = eventsOf(events, 'watch.extended').map((event) => ({ at: event.at, by: event.actor, endsAt: event.payload.endsAt, note: event.payload.note ?? null }));
  const ended = eventsOf(events, 'watch.ended')[0];
  return {
    startedAt: started.payload.startedAt,
    endsAt: extensions.at(-1)?.endsAt ?? started.payload.endsAt,
    checks: started.payload.checks,
    everyMs: started.payload.everyMs,
    rounds: eventsOf(events, 'watch.round').map((event) => ({
      round: event.payload.round,
      at: event.at,
      passed: event.payload.passed,
      failed: event.payload.failed,
      changed: event.payload.results.map((result) => result.checkId),
      unchangedBefore: event.payload.unchangedRounds,
      unreachable: event.payload.unreachable ?? null,
    })),
    alarms: eventsOf(events, 'watch.alarm').map((event) => ({ round: event.payload.round, at: event.payload.ranAt, checkId: event.payload.checkId, reason: event.payload.reason, lastPassedAt: event.payload.lastPassedAt })),
    extensions,
    runners: eventsOf(events, 'watch.runner').map((event) => ({ at: event.at, runner: event.payload.runner, reason: event.payload.reason })),
    ended: ended
      ? { at: ended.at, reason: ended.payload.reason, clean: ended.payload.clean, rounds: ended.payload.rounds, by: ended.actor, note: ended.payload.note ?? null }
      : null,
  };
}
