/**
 * The live view's source of events: one feed per store pool (per app instance) that reads each
 * new event of a run once and hands it to every open stream of that run, however many there are.
 * It reads when the store announces new events (LISTEN/NOTIFY, store-notifications.server.ts):
 * an announcement names the run and the newest seq committed, so one that a read already covered
 * costs nothing, and announcements that arrive during a read cause at most one more read. Hundreds
 * of viewers cost the store one query per event, not one per viewer per interval.
 *
 * Announcements are hints and may be lost (a failed NOTIFY is only logged), so the feed also
 * checks on a timer: one statement for every run it follows (the newest seq of each), every
 * SWEEP_MS, or every POLL_MS while the listening connection is down (the streams are told they are
 * being polled); only a run with news is then read. Each stream reads its own backlog when it
 * opens, and drops what it already has by seq, so a reconnect or a late joiner misses nothing.
 * Decision 032.
 */
import type pg from 'pg';
import { RUN_EVENTS_CHANNEL, storeListenerOf, type ListenerMode, type StoreListener } from '../runtime/store-notifications.server';
import type { RunEvent } from './run-events';
import { parseRunEventsAnnouncement, readNewestRunSeqs, readRunEventsSince } from './run-log.server';

/** Events per read; a longer backlog is read in several. */
const READ_LIMIT = 500;
/** The timed check of every followed run while announcements arrive normally: covers a lost one. */
const SWEEP_MS = 5_000;
/** The timed check while the listening connection is down. */
const POLL_MS = 1_000;

/** How a stream is being fed: by announcements, or by polling while they cannot arrive. */
export type FeedMode = 'live' | 'polling';

export interface RunFeedHandlers {
  /**
   * New events in seq order (never one the stream already had), with the run's state as read with
   * them when nothing was left unread (undefined while a long backlog is still being read).
   */
  events(events: RunEvent[], state: string | undefined): void;
  /** The run no longer exists. */
  gone(): void;
  /** The feed changed how it learns of new events. */
  mode(mode: FeedMode): void;
  /** A read failed (the store blipped); the feed retries on its own. */
  failed(message: string): void;
}

interface Follower {
  lastSeq: number;
  /** Events that arrived while the follower read its backlog. */
  pending: { events: RunEvent[]; state: string | undefined }[] | undefined;
  handlers: RunFeedHandlers;
}

interface FollowedRun {
  followers: Set<Follower>;
  /** The last seq this feed read. */
  lastSeq: number;
  reading: Promise<void> | undefined;
  /** The newest seq asked for since the current read began (Infinity: read whatever it is; 0: nothing asked). */
  wantedSeq: number;
  /** When the run was last read or checked. */
  checkedAt: number;
}

class RunEventFeed {
  private readonly runs = new Map<string, FollowedRun>();
  private readonly listener: StoreListener;
  private timer: NodeJS.Timeout | undefined;
  private checking = false;
  /** A check was asked for while one ran (a reconnect): run another once it ends. */
  private checkAgain = false;
  private stopListening: (() => void) | undefined;
  private stopModes: (() => void) | undefined;

  constructor(private readonly pool: pg.Pool) {
    this.listener = storeListenerOf(pool);
  }

  get mode(): FeedMode {
    return this.listener.mode === 'live' ? 'live' : 'polling';
  }

  follow(runId: string, afterSeq: number, handlers: RunFeedHandlers): () => void {
    this.start();
    let run = this.runs.get(runId);
    if (!run) {
      run = { followers: new Set(), lastSeq: afterSeq, reading: undefined, wantedSeq: 0, checkedAt: Date.now() };
      this.runs.set(runId, run);
    }
    const follower: Follower = { lastSeq: afterSeq, pending: [], handlers };
    run.followers.add(follower);
    handlers.mode(this.mode);
    void this.readBacklog(runId, follower);
    return () => {
      const followed = this.runs.get(runId);
      followed?.followers.delete(follower);
      if (followed && followed.followers.size === 0) this.runs.delete(runId);
      if (this.runs.size === 0) this.idle();
    };
  }

  private start(): void {
    if (this.timer) return;
    this.stopListening = this.listener.subscribe(RUN_EVENTS_CHANNEL, (payload) => {
      const { runId, seq } = parseRunEventsAnnouncement(payload);
      this.read(runId, seq);
    });
    this.stopModes = this.listener.onMode((mode) => this.modeChanged(mode));
    this.timer = setInterval(() => this.tick(), POLL_MS);
    this.timer.unref();
  }

  private idle(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.stopListening?.();
    this.stopModes?.();
  }

  private modeChanged(mode: ListenerMode): void {
    const feedMode: FeedMode = mode === 'live' ? 'live' : 'polling';
    for (const run of this.runs.values()) for (const follower of run.followers) follower.handlers.mode(feedMode);
    // Back from a lost connection: what was announced meanwhile was never heard.
    if (mode === 'live') void this.checkRuns();
  }

  private tick(): void {
    const now = Date.now();
    // Half a tick early: a run checked just after the last tick is due at this one, not the next.
    const due = (this.listener.mode === 'live' ? SWEEP_MS : POLL_MS) - POLL_MS / 2;
    for (const run of this.runs.values()) {
      if (now - run.checkedAt >= due) return void this.checkRuns();
    }
  }

  /** One statement for every followed run (its newest seq); then reads only the runs with news. */
  private async checkRuns(): Promise<void> {
    if (this.runs.size === 0) return;
    if (this.checking) {
      // The running check may have read the store before what it is now asked to catch up on.
      this.checkAgain = true;
      return;
    }
    this.checking = true;
    this.checkAgain = false;
    const runIds = [...this.runs.keys()];
    const checkedAt = Date.now();
    try {
      const newest = await readNewestRunSeqs(this.pool, runIds);
      for (const runId of runIds) {
        const run = this.runs.get(runId);
        if (!run) continue;
        run.checkedAt = checkedAt;
        const seq = newest.get(runId);
        // A first follower may have claimed more than the log holds (?after= and Last-Event-ID
        // come from the browser): the feed's place never stays above the log's end. It goes back
        // to the followers' own places (each drops by seq what it already has).
        if (seq !== undefined && seq < run.lastSeq && !run.reading) {
          run.lastSeq = Math.min(seq, ...[...run.followers].map((follower) => follower.lastSeq));
        }
        // Absent: the run is gone, which a read tells its followers.
        this.read(runId, seq ?? Number.POSITIVE_INFINITY);
      }
    } catch (error) {
      for (const runId of runIds) for (const follower of this.runs.get(runId)?.followers ?? []) follower.handlers.failed((error as Error).message);
    } finally {
      this.checking = false;
      if (this.checkAgain) void this.checkRuns();
    }
  }

  /**
   * Reads the run's events after the last one read, up to at least `seq`, once, and gives them to
   * each of its followers. A seq this feed has already read asks for nothing.
   */
  private read(runId: string, seq: number): void {
    const run = this.runs.get(runId);
    if (!run || seq <= run.lastSeq) return;
    run.wantedSeq = Math.max(run.wantedSeq, seq);
    if (run.reading) return;
    run.reading = (async () => {
      do {
        run.wantedSeq = 0;
        run.checkedAt = Date.now();
        try {
          let more = true;
          while (more) {
            const since = await readRunEventsSince(this.pool, runId, { afterSeq: run.lastSeq, limit: READ_LIMIT });
            if (since.state === undefined) {
              for (const follower of run.followers) follower.handlers.gone();
              return;
            }
            if (since.events.length > 0) run.lastSeq = since.events.at(-1)!.seq;
            more = since.more;
            for (const follower of run.followers) deliver(follower, since.events, more ? undefined : since.state);
          }
        } catch (error) {
          for (const follower of run.followers) follower.handlers.failed((error as Error).message);
        }
        // Asked for during the read and not covered by it: read once more.
      } while (run.wantedSeq > run.lastSeq && this.runs.get(runId) === run);
    })().finally(() => {
      run.reading = undefined;
    });
  }

  /** A new follower's own read of what came before it joined; what the feed hands it meanwhile waits. */
  private async readBacklog(runId: string, follower: Follower): Promise<void> {
    try {
      let more = true;
      while (more) {
        const since = await readRunEventsSince(this.pool, runId, { afterSeq: follower.lastSeq, limit: READ_LIMIT });
        if (since.state === undefined) return follower.handlers.gone();
        more = since.more;
        const events = since.events.filter((event) => event.seq > follower.lastSeq);
        if (events.length > 0) follower.lastSeq = events.at(-1)!.seq;
        // The last read always reports, even with nothing new: the stream learns the run's state (a finished run's stream ends).
        if (events.length > 0 || !more) follower.handlers.events(events, more ? undefined : since.state);
      }
      const waiting = follower.pending ?? [];
      follower.pending = undefined;
      for (const batch of waiting) deliver(follower, batch.events, batch.state);
    } catch (error) {
      follower.handlers.failed((error as Error).message);
      // Read this follower's backlog again; what the feed hands it meanwhile keeps waiting, so
      // nothing between its place and the feed's is skipped (the feed's place is shared).
      const retry = setTimeout(() => {
        if (this.runs.get(runId)?.followers.has(follower)) void this.readBacklog(runId, follower);
      }, POLL_MS);
      retry.unref();
    }
  }
}

function deliver(follower: Follower, events: RunEvent[], state: string | undefined): void {
  if (follower.pending) {
    follower.pending.push({ events, state });
    return;
  }
  const fresh = events.filter((event) => event.seq > follower.lastSeq);
  if (fresh.length > 0) follower.lastSeq = fresh.at(-1)!.seq;
  follower.handlers.events(fresh, state);
}

const feeds = new WeakMap<pg.Pool, RunEventFeed>();

function feedOf(pool: pg.Pool): RunEventFeed {
  let feed = feeds.get(pool);
  if (!feed) {
    feed = new RunEventFeed(pool);
    feeds.set(pool, feed);
  }
  return feed;
}

/**
 * Follows a run's log from `afterSeq`: every later event exactly once, in order, for as long as
 * the returned function is not called.
 */
export function followRunEvents(pool: pg.Pool, input: { runId: string; afterSeq: number }, handlers: RunFeedHandlers): () => void {
  return feedOf(pool).follow(input.runId, input.afterSeq, handlers);
}
