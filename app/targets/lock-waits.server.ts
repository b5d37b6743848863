/**
 * Lock waits on a target, read from PostgreSQL itself: who blocks a session (pg_blocking_pids()
 * with pg_stat_activity and pg_locks), and which sessions of an application wait for a lock and
 * since when (pg_locks.waitstart, PostgreSQL 14 and later). A step samples its own statement's
 * blockers; the engine samples every session of a run to show its waits live.
 */
import type pg from 'pg';
import type { Blocker } from '../../db/schema/run-outcome';

/** A statement running longer than this gets its blockers sampled. */
const BLOCKER_SAMPLE_AFTER_MS = 200;
const BLOCKER_SAMPLE_EVERY_MS = 100;
/** How long the end of a statement waits for a blocker sample already in flight. */
const BLOCKER_SAMPLE_GRACE_MS = 1_000;
/** What pg_stat_activity shows in `query` to a role that may not see another user's session. */
const HIDDEN_QUERY = '<insufficient privilege>';

/**
 * Samples the sessions that block `pid` (pg_blocking_pids) while a statement runs: after the
 * error the blocker no longer shows there, so the latest sample taken while waiting is kept.
 */
export class BlockerSampler {
  private latest: Blocker[] = [];
  private timer: NodeJS.Timeout | undefined;
  private pending: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly pid: number,
  ) {
    this.timer = setTimeout(this.sample, BLOCKER_SAMPLE_AFTER_MS);
  }

  private readonly sample = (): void => {
    this.pending = this.pool
      .query<BlockerRow>(BLOCKERS_SQL, [this.pid])
      .then(({ rows }) => {
        if (rows.length > 0) this.latest = rows.map(blockerInfo);
      })
      .catch(() => {})
      .finally(() => {
        this.pending = undefined;
        if (!this.stopped) this.timer = setTimeout(this.sample, BLOCKER_SAMPLE_EVERY_MS);
      });
  };

  async stop(): Promise<Blocker[]> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.pending) await Promise.race([this.pending, sleep(BLOCKER_SAMPLE_GRACE_MS)]);
    return this.latest;
  }
}

interface BlockerRow {
  pid: number;
  usename: string | null;
  application_name: string | null;
  state: string | null;
  query: string | null;
  xact_start: Date | null;
  wait_event: string | null;
  lock_mode: string | null;
  relation: string | null;
}

/** The blocker's locks on the same object the statement waits for (a soft blocker queued ahead shows "(waiting)"). */
const BLOCKERS_SQL = `
with waiting as (
  select locktype, database, relation, page, tuple, virtualxid, transactionid, classid, objid, objsubid
    from pg_locks
   where pid = $1 and not granted
)
select b.pid,
       a.usename,
       a.application_name,
       a.state,
       left(a.query, 2000) as query,
       a.xact_start,
       a.wait_event_type || ':' || a.wait_event as wait_event,
       (select string_agg(distinct l.mode || case when l.granted then '' else ' (waiting)' end, ', ')
          from pg_locks l
          join waiting w
            on l.locktype = w.locktype
           and l.database is not distinct from w.database
           and l.relation is not distinct from w.relation
           and l.page is not distinct from w.page
           and l.tuple is not distinct from w.tuple
           and l.virtualxid is not distinct from w.virtualxid
           and l.transactionid is not distinct from w.transactionid
           and l.classid is not distinct from w.classid
           and l.objid is not distinct from w.objid
           and l.objsubid is not distinct from w.objsubid
         where l.pid = b.pid) as lock_mode,
       (select string_agg(distinct w.relation::regclass::text, ', ') from waiting w where w.relation is not null) as relation
  from (select distinct unnest(pg_blocking_pids($1)) as pid
         -- pg_blocking_pids briefly takes every lock-manager partition: only ask while the statement waits for a lock.
         where exists (select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock')) b
  left join pg_stat_activity a on a.pid = b.pid
 order by b.pid`;

function blockerInfo(row: BlockerRow): Blocker {
  return {
    pid: Number(row.pid),
    ...(row.query === HIDDEN_QUERY ? { visible: false } : {}),
    ...(row.usename ? { user: row.usename } : {}),
    ...(row.application_name !== null ? { application: row.application_name } : {}),
    ...(row.state ? { state: row.state } : {}),
    ...(row.query && row.query !== HIDDEN_QUERY ? { query: row.query } : {}),
    ...(row.xact_start ? { xactStart: row.xact_start.toISOString() } : {}),
    ...(row.wait_event ? { waitEvent: row.wait_event } : {}),
    ...(row.lock_mode ? { lockMode: row.lock_mode } : {}),
    ...(row.relation ? { relation: row.relation } : {}),
  };
}



/** Reads the sessions that block `pid` now (none when it does not wait for a lock). */
export async function readBlockers(pool: pg.Pool, pid: number): Promise<Blocker[]> {
  const { rows } = await pool.query<BlockerRow>(BLOCKERS_SQL, [pid]);
  return rows.map(blockerInfo);
}

/** A session waiting for a lock, and who blocks it. */
export interface LockWait {
  pid: number;
  /** wait_event_type:wait_event, e.g. "Lock:relation". */
  waitEvent: string;
  /** When the wait began (the database clock). */
  since: string;
  /** The database clock when this was read. */
  readAt: string;
  query: string | null;
  /** The relation(s) it waits for, when the lock is on a relation. */
  relation: string | null;
  blockers: Blocker[];
}

interface WaiterRow {
  pid: number;
  wait_event: string;
  since: Date;
  read_at: Date;
  query: string | null;
  relation: string | null;
}

/**
 * The sessions of `applicationName` that have waited for a lock longer than `minWaitMs`, each
 * with its blockers. Read on a connection of another application (a probe), so a cancel of the
 * run's sessions never cancels the reading.
 */
export async function readLockWaits(pool: pg.Pool, applicationName: string, minWaitMs: number): Promise<LockWait[]> {
  const { rows } = await pool.query<WaiterRow>(
    `select a.pid,
            a.wait_event_type || ':' || a.wait_event as wait_event,
            coalesce(w.since, a.query_start) as since,
            clock_timestamp() as read_at,
            left(a.query, 2000) as query,
            w.relation
       from pg_stat_activity a
       cross join lateral (
         select min(l.waitstart) as since, string_agg(distinct l.relation::regclass::text, ', ') as relation
           from pg_locks l
          where l.pid = a.pid and not l.granted) w
      where a.application_name = $1
        and a.state = 'active'
        and a.wait_event_type = 'Lock'
        and coalesce(w.since, a.query_start) < clock_timestamp() - make_interval(secs => $2::double precision / 1000)
      order by a.pid`,
    [applicationName, minWaitMs],
  );
  const waits: LockWait[] = [];
  for (const row of rows) {
    const blockers = await readBlockers(pool, row.pid);
    waits.push({
      pid: Number(row.pid),
      waitEvent: row.wait_event,
      since: row.since.toISOString(),
      readAt: row.read_at.toISOString(),
      query: row.query,
      relation: row.relation,
      blockers,
    });
  }
  return waits;
}

/** The sessions of `applicationName` (other than the asking one): a run's every backend on its target. */
export async function signalSessions(pool: pg.Pool, applicationName: string, signal: 'cancel' | 'terminate', onlyBusy = false): Promise<number[]> {
  const fn = signal === 'cancel' ? 'pg_cancel_backend' : 'pg_terminate_backend';
  const { rows } = await pool.query<{ pid: number; signalled: boolean }>(
    `select pid, ${fn}(pid) as signalled
       from pg_stat_activity
      where application_name = $1 and pid <> pg_backend_pid()
        and ($2::boolean is false or state in ('active', 'idle in transaction', 'idle in transaction (aborted)'))`,
    [applicationName, onlyBusy],
  );
  return rows.filter((row) => row.signalled).map((row) => Number(row.pid));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
