/**
 * The engine's own session on a target: a dedicated connection named `runsheet:run:<id>` (so
 * crash recovery finds it in pg_stat_activity), the target's advisory lock taken with
 * pg_try_advisory_lock polling (never the blocking pg_advisory_lock, docs/decisions/012), and the
 * store heartbeat. The ledger it writes is app/targets/ledger.server.ts.
 */
import pg from 'pg';
import { readTargetFacts, type TargetFacts } from '../targets/target-facts.server';
import { targetPoolConfig, type Target } from '../targets/targets.server';
import { type EngineDeps } from './engine-deps.server';
import { RunsheetError } from '../runtime/errors';
import { ADVISORY_LOCKS } from '../runtime/advisory-locks';
import { touchHeartbeat } from '../runs/run-store.server';
import { quietPoolErrors } from '../runtime/quiet-pool.server';

/** pg_try_advisory_lock attempts and the pause between them: about 2 s in all. */
const LOCK_ATTEMPTS = 6;
const LOCK_RETRY_MS = 400;
export const HEARTBEAT_EVERY_MS = 5_000;

export const runApplicationName = (runId: string) => `runsheet:run:${runId}`;

/** A dedicated connection for one run (never from a pool: its session holds the lock and the transaction). */
export async function openTargetClient(target: Target, runId: string): Promise<pg.Client> {
  const config = targetPoolConfig(target.url, { applicationName: runApplicationName(runId) });
  const client = new pg.Client({ connectionString: config.connectionString, application_name: config.application_name, connectionTimeoutMillis: config.connectionTimeoutMillis });
  // A terminated backend emits 'error' on the client; the step that was running reports it.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await client.end().catch(() => {});
    throw new RunsheetError('unavailable', `Cannot reach target "${target.name}" (${target.displayUrl}): ${(error as Error).message}`);
  }
  return client;
}

/** How many checks of one run run at once on its target (runChecks' concurrency). */
const RUN_POOL_SIZE = 4;

/**
 * The run's own pool on its target: its checks and ledger reads carry the run's application name
 * too, so a cancel finds every backend the run uses (pg_stat_activity), not only the step session.
 */
export function openRunPool(target: Target, runId: string): pg.Pool {
  // A backend terminated by a cancel's escalation: the check that used it reports the error.
  return quietPoolErrors(new pg.Pool({ ...targetPoolConfig(target.url, { applicationName: runApplicationName(runId) }), max: RUN_POOL_SIZE }));
}

/** The target's facts; a read-only replica or a transaction-mode pooler is refused before anything is claimed. */
export async function requireWritableTarget(deps: Pick<EngineDeps, 'targets'>, target: Target): Promise<TargetFacts> {
  let facts: TargetFacts;
  try {
    facts = await readTargetFacts(deps.targets.pool(target.name));
  } catch (error) {
    throw new RunsheetError('unavailable', `Cannot read the facts of target "${target.name}" (${target.displayUrl}): ${(error as Error).message}`);
  }
  if (facts.readOnlyReplica) throw new RunsheetError('target_refused', `Target "${target.name}" is a read-only replica (pg_is_in_recovery()): apply on the primary.`);
  if (facts.transactionPooler.detected) {
    throw new RunsheetError('target_refused', 
      `Target "${target.name}" is behind a transaction-mode pooler (${facts.transactionPooler.evidence.join('; ')}): session locks and SET do not survive it; use the direct port.`,
    );
  }
  return facts;
}

/**
 * pg_try_advisory_lock, a few times over about 2 s. Never pg_advisory_lock: a session blocked
 * waiting for it takes part in lock waits that CREATE INDEX CONCURRENTLY (which waits for every
 * older transaction) can turn into a deadlock, and it would hang the runner with no answer.
 */
export async function tryTargetLock(client: pg.ClientBase, options: { attempts?: number; retryMs?: number } = {}): Promise<boolean> {
  const attempts = options.attempts ?? LOCK_ATTEMPTS;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const { rows } = await client.query<{ locked: boolean }>('select pg_try_advisory_lock($1::bigint) as locked', [ADVISORY_LOCKS.targetRun]);
    if (rows[0]?.locked) return true;
    if (attempt < attempts - 1) await new Promise((resolve) => setTimeout(resolve, (options.retryMs ?? LOCK_RETRY_MS) + Math.random() * 100));
  }
  return false;
}

export async function releaseTargetLock(client: pg.ClientBase): Promise<void> {
  await client.query('select pg_advisory_unlock($1::bigint)', [ADVISORY_LOCKS.targetRun]);
}

export interface LockHolder {
  pid: number;
  application: string | null;
  user: string | null;
  state: string | null;
  backendStart: string | null;
}

/** Who holds the target's advisory lock (when the role may see it). */
export async function findTargetLockHolders(pool: pg.Pool): Promise<LockHolder[]> {
  const { rows } = await pool.query<{ pid: number; application_name: string | null; usename: string | null; state: string | null; backend_start: Date | null }>(
    `select l.pid, a.application_name, a.usename, a.state, a.backend_start
       from pg_locks l left join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.database = (select oid from pg_database where datname = current_database())
        and l.classid = ($1::bigint >> 32)::oid and l.objid = ($1::bigint & 4294967295)::oid and l.objsubid = 1`,
    [ADVISORY_LOCKS.targetRun],
  );
  return rows.map((row) => ({ pid: row.pid, application: row.application_name, user: row.usename, state: row.state, backendStart: row.backend_start?.toISOString() ?? null }));
}

/** Refreshes runs.heartbeat_at (the store's clock) while the run is active; returns the stop function. */
export function startHeartbeat(store: EngineDeps['store'], runId: string, everyMs = HEARTBEAT_EVERY_MS): () => void {
  const timer = setInterval(() => void touchHeartbeat(store, runId).catch(() => {}), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
