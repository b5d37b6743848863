import type pg from 'pg';

/**
 * The database server's current MVCC snapshot as text (`xmin:xmax:xip…`). Two equal snapshots see
 * exactly the same committed rows in every database of that server: every commit or abort either
 * raises `xmax` (past the newest finished transaction) or takes a transaction out of the
 * in-progress list, and neither can come back. So an unchanged snapshot proves that nothing a read
 * could see has changed (the page cache keys on it; docs/decisions/035); a read-only query changes
 * nothing. What lives outside MVCC (pg_locks, pg_stat_activity, sequences' next values) is not
 * covered. `txid_current_snapshot()` is asked (PostgreSQL 9.4 and later, where
 * `pg_current_snapshot()` needs 13). A standby's snapshot does not list the primary's transactions
 * in progress, so a server in recovery answers undefined: nothing may be keyed on it.
 */
export async function readDatabaseSnapshot(pool: pg.Pool | pg.ClientBase): Promise<string | undefined> {
  const { rows } = await pool.query<{ snapshot: string; recovering: boolean }>({
    text: 'select txid_current_snapshot()::text as snapshot, pg_is_in_recovery() as recovering',
    name: 'runsheet_current_snapshot',
  });
  const row = rows[0]!;
  return row.recovering ? undefined : row.snapshot;
}
