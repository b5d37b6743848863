/**
 * node-postgres emits 'error' on a client whose backend dies (a restart, pg_terminate_backend), and
 * pg-pool listens for it only while the client is idle: a client checked out at that moment (a
 * check mid-query when its target restarts) had no listener, and the error crashed the process. The
 * query that was running reports the error; these listeners only keep the event from going unheard.
 */
import type pg from 'pg';

export function quietPoolErrors(pool: pg.Pool): pg.Pool {
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
