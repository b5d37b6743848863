/**
 * An open live-view stream (server-sent events) is one long answer: the guard ran once, when it
 * opened. So every open stream of this process is checked again, at most every 10 seconds, all of
 * them in one query (not one per stream): its session still live and its account enabled (an
 * admin's disable or a sign-out ends it within 10 s), its role still allowed to view, and a run
 * still preparing (draft or ready, nothing happening until someone executes) is followed for 30
 * minutes at most. A finished run's stream ends by itself (run-page.server.ts) once every event
 * is sent.
 *
 * An open stream counts as activity for its session's idle timeout, as a page request does
 * (touched at most once a minute); the session's absolute lifetime still ends it. Decision 024.
 */
import type pg from 'pg';
import { isPreparingState, type RunState } from '../../db/run-lifecycle';
import { isRole, roleCan } from '../accounts/permissions';
import { SESSION_IDLE_SECONDS, TOUCH_EVERY_SECONDS } from '../auth/session.server';

export const STREAM_RECHECK_MS = 10_000;
export const PREPARING_STREAM_MAX_MS = 30 * 60_000;

export type StreamEndReason = 'signed-out' | 'no-access' | 'preparing-too-long' | 'run-gone';

export interface StreamEnd {
  reason: StreamEndReason;
  /** Shown on the live view where the updates stopped. */
  message: string;
}

export interface WatchedStream {
  runId: string;
  accountId: string;
  /** The password session it was opened with; absent when the single-sign-on proxy vouched for the account. */
  sessionIdHash?: string;
  /** ms since epoch */
  openedAt: number;
  /** Ends the stream (sends the reason, then closes). */
  end(why: StreamEnd): void;
}

/** What one re-check read from the store. */
export interface StreamFacts {
  /** Live sessions (not ended, not expired, account enabled) by id hash, with the account's role now. */
  sessions: Map<string, string>;
  /** Enabled accounts (for proxy-vouched streams) by id, with their role now. */
  accounts: Map<string, string>;
  /** Runs by id, with their state now. */
  runs: Map<string, string>;
}

const ENDS: Readonly<Record<StreamEndReason, string>> = {
  'signed-out': 'Your session ended (signed out, expired, or the account was disabled). Sign in again to follow this run.',
  'no-access': 'Your role no longer lets you view runs.',
  'preparing-too-long': 'Live updates paused: this run has not started, and the page followed it for 30 minutes. Reload to follow it again.',
  'run-gone': 'This run no longer exists.',
};

/** Pure: why a stream must end now, or undefined when it may go on. */
export function streamVerdict(stream: WatchedStream, facts: StreamFacts, now: number): StreamEnd | undefined {
  const role = stream.sessionIdHash !== undefined ? facts.sessions.get(stream.sessionIdHash) : facts.accounts.get(stream.accountId);
  const end = (reason: StreamEndReason): StreamEnd => ({ reason, message: ENDS[reason] });
  if (role === undefined) return end('signed-out');
  if (!isRole(role) || !roleCan(role, 'view')) return end('no-access');
  const state = facts.runs.get(stream.runId);
  if (state === undefined) return end('run-gone');
  if (isPreparingState(state as RunState) && now - stream.openedAt >= PREPARING_STREAM_MAX_MS) return end('preparing-too-long');
  return undefined;
}

/** Everything a re-check needs, for every open stream at once: one round trip to the store. */
export async function readStreamFacts(pool: pg.Pool, streams: readonly WatchedStream[]): Promise<StreamFacts> {
  const sessionIds = [...new Set(streams.flatMap((stream) => (stream.sessionIdHash !== undefined ? [stream.sessionIdHash] : [])))];
  const accountIds = [...new Set(streams.filter((stream) => stream.sessionIdHash === undefined).map((stream) => stream.accountId))];
  const runIds = [...new Set(streams.map((stream) => stream.runId))];
  const { rows } = await pool.query<{ kind: 'session' | 'account' | 'run'; key: string; value: string }>(
    `with live as (
       select s.id_hash, s.last_seen_at, a.role
       from sessions s join accounts a on a.id = s.account_id
       where s.id_hash = any($1::text[])
         and s.expires_at > now()
         and s.last_seen_at > now() - make_interval(secs => $4)
         and not a.disabled
     ), touched as (
       update sessions set last_seen_at = now()
       where id_hash in (select id_hash from live where last_seen_at < now() - make_interval(secs => $5))
     )
     select 'session' as kind, id_hash as key, role as value from live
     union all
     select 'account', id::text, role from accounts where id = any($2::uuid[]) and not disabled
     union all
     select 'run', id::text, state from runs where id = any($3::uuid[])`,
    [sessionIds, accountIds, runIds, SESSION_IDLE_SECONDS, TOUCH_EVERY_SECONDS],
  );
  const facts: StreamFacts = { sessions: new Map(), accounts: new Map(), runs: new Map() };
  for (const row of rows) (row.kind === 'session' ? facts.sessions : row.kind === 'account' ? facts.accounts : facts.runs).set(row.key, row.value);
  return facts;
}

interface Registry {
  streams: Set<WatchedStream>;
  timer?: NodeJS.Timeout;
  checking?: Promise<void>;
}

/** Per store (a process has one; tests may have several): the streams open on it. */
const registries = new WeakMap<pg.Pool, Registry>();

/**
 * Adds a stream to this process's re-checks; returns the function that takes it out (calling it
 * twice is harmless). The timer runs while any stream is open.
 */
export function watchStream(pool: pg.Pool, stream: WatchedStream): () => void {
  let registry = registries.get(pool);
  if (!registry) {
    registry = { streams: new Set() };
    registries.set(pool, registry);
  }
  const own = registry;
  own.streams.add(stream);
  if (!own.timer) {
    own.timer = setInterval(() => void recheckStreams(pool), STREAM_RECHECK_MS);
    own.timer.unref();
  }
  return () => {
    own.streams.delete(stream);
    if (own.streams.size === 0 && own.timer) {
      clearInterval(own.timer);
      own.timer = undefined;
    }
  };
}

/** One re-check of every open stream on this store (what the timer runs). A failed read ends nothing: the next one tries again. */
export async function recheckStreams(pool: pg.Pool): Promise<void> {
  const registry = registries.get(pool);
  if (!registry || registry.streams.size === 0) return;
  // A slow store never stacks re-checks up.
  if (registry.checking) return registry.checking;
  registry.checking = (async () => {
    const streams = [...registry.streams];
    const facts = await readStreamFacts(pool, streams);
    for (const stream of streams) {
      const why = streamVerdict(stream, facts, Date.now());
      if (why && registry.streams.has(stream)) stream.end(why);
    }
  })()
    .catch(() => {})
    .finally(() => {
      registry.checking = undefined;
    });
  return registry.checking;
}
