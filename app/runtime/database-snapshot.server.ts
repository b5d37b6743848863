import type pg from 'pg';

/**
 * The database server's current MVCC snapshot as text (`xmin:xmax:xip…`). Two equal snapshots see
 * exactly the same committed rows in every database of that server: a write needs a transaction
 * id, which moves `xmax` when it is assigned and leaves the in-progress list when it commits or
 * aborts. So an unchanged snapshot proves that nothing a read could see has changed (the page cache
 * keys on it; docs/decisions/035). A read-only query moves nothing. What lives outside MVCC
 * (pg_locks, pg_stat_activity, sequences' next values) is not covered.
 */
export async function readDatabaseSnapshot(pool: pg.Pool | pg.ClientBase): Promise<string> {
  const { rows } = await pool.query<{ snapshot: string }>({ text: 'select pg_current_snapshot()::text as snapshot', name: 'runsheet_current_snapshot' });
  return rows[0]!.snapshot;
}

/**
 * Whether two pools reach the same database server (its system identifier, the same on every
 * database of it): then one snapshot covers both (the embedded sandbox lives beside the store).
 * Asked once per pool; a server that cannot say counts as another server.
 */
export async function onSameServer(a: pg.Pool, b: pg.Pool): Promise<boolean> {
  if (a === b) return true;
  const [first, second] = await Promise.all([serverIdentity(a), serverIdentity(b)]);
  return first !== null && first === second;
}

const identities = new WeakMap<pg.Pool, Promise<string | null>>();

function serverIdentity(pool: pg.Pool): Promise<string | null> {
  let identity = identities.get(pool);
  if (!identity) {
    identity = pool.query<{ id: string }>('select system_identifier::text as id from pg_control_system()').then(
      ({ rows }) => rows[0]?.id ?? null,
      () => {
        identities.delete(pool); // Unreachable now: asked again next time.
        return null;
      },
    );
    identities.set(pool, identity);
  }
  return identity;
}
