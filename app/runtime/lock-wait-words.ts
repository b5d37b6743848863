/**
 * Lock waits and their blockers in words: one wording for the live view, the command line, the
 * report and failure messages. Pure (the browser counts a wait's seconds with it too).
 */
import type { Blocker } from '../../db/schema/run-outcome';
import { formatAge } from './format';

/** "pid 4242 (application psql, user dba, idle in transaction for 40 s, AccessExclusiveLock on platform.users)". */
export function blockerInWords(blocker: Blocker, nowMs?: number): string {
  if (blocker.pid === 0) return 'a prepared transaction';
  if (blocker.visible === false) return `pid ${blocker.pid} (cannot see: insufficient privilege${blocker.user ? `; user ${blocker.user}` : ''})`;
  const since = blocker.xactStart && nowMs !== undefined ? ` for ${formatAge(Math.max(0, nowMs - Date.parse(blocker.xactStart)))}` : '';
  const facts = [
    blocker.application ? `application ${blocker.application}` : blocker.application === '' ? 'no application name' : '',
    blocker.user ? `user ${blocker.user}` : '',
    blocker.state ? `${blocker.state}${since}` : '',
    blocker.lockMode ? `${blocker.lockMode}${blocker.relation ? ` on ${blocker.relation}` : ''}` : '',
  ].filter(Boolean);
  return `pid ${blocker.pid}${facts.length > 0 ? ` (${facts.join(', ')})` : ''}`;
}

export const blockersInWords = (blockers: readonly Blocker[], nowMs?: number): string => blockers.map((blocker) => blockerInWords(blocker, nowMs)).join('; ');

export interface LockWaitFacts {
  waitingFor: string;
  relation: string | null;
  since: string;
  lockTimeoutMs: number | null;
  blockers: readonly Blocker[];
}

/** "check snapshot-counts is waiting for a lock held by pid 4242 (application psql, …) on platform.users: 12 s so far, lock_timeout fires in 3 s". */
export function lockWaitInWords(wait: LockWaitFacts, nowMs: number): string {
  const waited = Math.max(0, nowMs - Date.parse(wait.since));
  const held = wait.blockers.length > 0 ? `held by ${blockersInWords(wait.blockers, nowMs)}` : 'held by a session not yet identified';
  const left = wait.lockTimeoutMs !== null ? `, lock_timeout fires in ${formatAge(Math.max(0, wait.lockTimeoutMs - waited))}` : '';
  return `${wait.waitingFor} is waiting for a lock ${held}${wait.relation ? ` on ${wait.relation}` : ''}: ${formatAge(waited)} so far${left}`;
}
