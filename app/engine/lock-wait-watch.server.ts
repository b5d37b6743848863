/**
 * Watches a driven run's sessions on its target for lock waits (every backend tagged with the
 * run's application name: its step session and its checks' pool), about once a second, from the
 * target's shared pool. A wait longer than a second is logged when it starts, each time the set
 * of sessions blocking it changes, and when it ends (never every sample); the live view counts
 * the time left to lock_timeout from those events, and the command line gets every sample.
 */
import type pg from 'pg';
import type { Blocker } from '../../db/schema/index';
import type { RunEventInput } from '../runs/run-events';
import { readLockWaits, type LockWait } from '../targets/lock-waits.server';
import { runApplicationName } from './target-session.server';

/** What the watcher reads of a drive (drive-run.server.ts's DriveSession has all of it). */
export interface WatchedDrive {
  run: { id: string };
  /** The target's shared pool: the watcher's reads are never cancelled with the run. */
  pool: pg.Pool;
  currentPhase: string | null;
  backends: Map<number, { waitingFor: string; lockTimeoutMs: number | null }>;
  lastBlockers: Map<string, Blocker[]>;
  log(event: RunEventInput): Promise<unknown>;
}

const SAMPLE_EVERY_MS = 1_000;
/** Shorter waits are normal lock traffic: not worth a line in the log. */
const REPORT_WAITS_LONGER_THAN_MS = 1_000;

/** A wait as the run sees it: which step or check, in which phase, and its lock_timeout. */
export interface RunWait extends LockWait {
  waitingFor: string;
  phase: string | null;
  lockTimeoutMs: number | null;
}

interface OpenWait {
  wait: RunWait;
  blockerKey: string;
}

const blockerKeyOf = (blockers: Blocker[]) =>
  blockers
    .map((blocker) => blocker.pid)
    .sort((a, b) => a - b)
    .join(',');

/** Starts watching; the returned function stops it and logs the end of every wait still open. */
export function watchLockWaits(session: WatchedDrive, options: { onWaits?: (waits: RunWait[]) => void; everyMs?: number } = {}): () => Promise<void> {
  const applicationName = runApplicationName(session.run.id);
  const open = new Map<number, OpenWait>();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const end = async (pid: number, at: number) => {
    const entry = open.get(pid)!;
    open.delete(pid);
    const { waitingFor, phase } = entry.wait;
    await session.log({ type: 'wait.ended', payload: { pid, waitingFor, phase, waitedMs: Math.max(0, Math.round(at - Date.parse(entry.wait.since))) } });
  };

  const sample = async () => {
    const found = await readLockWaits(session.pool, applicationName, REPORT_WAITS_LONGER_THAN_MS);
    const waits = found.map((wait): RunWait => {
      const backend = session.backends.get(wait.pid);
      return { ...wait, waitingFor: backend?.waitingFor ?? `session pid ${wait.pid}`, phase: session.currentPhase, lockTimeoutMs: backend?.lockTimeoutMs ?? null };
    });
    options.onWaits?.(waits);
    const readAt = waits[0] ? Date.parse(waits[0].readAt) : Date.now();
    for (const pid of [...open.keys()]) if (!waits.some((wait) => wait.pid === pid)) await end(pid, readAt);
    for (const wait of waits) {
      if (wait.blockers.length > 0) session.lastBlockers.set(wait.waitingFor, wait.blockers);
      const blockerKey = blockerKeyOf(wait.blockers);
      const known = open.get(wait.pid);
      const { pid, waitingFor, phase, blockers } = wait;
      if (!known) {
        open.set(pid, { wait, blockerKey });
        await session.log({
          type: 'wait.started',
          payload: { pid, waitingFor, phase, waitEvent: wait.waitEvent, since: wait.since, relation: wait.relation, query: wait.query, lockTimeoutMs: wait.lockTimeoutMs, blockers },
        });
      } else if (known.blockerKey !== blockerKey || known.wait.waitingFor !== waitingFor) {
        open.set(pid, { wait, blockerKey });
        await session.log({ type: 'wait.changed', payload: { pid, waitingFor, phase, blockers } });
      }
    }
  };

  const tick = () => {
    if (stopped) return;
    inFlight = sample()
      .catch(() => {})
      .finally(() => {
        inFlight = undefined;
        if (!stopped) timer = setTimeout(tick, options.everyMs ?? SAMPLE_EVERY_MS);
      });
  };
  timer = setTimeout(tick, options.everyMs ?? SAMPLE_EVERY_MS);
  timer.unref();

  return async () => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    await inFlight;
    const now = Date.now();
    for (const pid of [...open.keys()]) await end(pid, now).catch(() => {});
  };
}
