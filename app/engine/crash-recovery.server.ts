/**
 * Crash safety: a run left applying, rolling back or rehearsing by a process that died. Such a
 * run is 'interrupted' once its heartbeat is stale AND its session on the target is gone from
 * pg_stat_activity (a live session means the work is still going, whatever the heartbeat says).
 * What the ledger says decides what can follow: a run is never re-applied by itself.
 */
import type pg from 'pg';
import { anchorOnTarget, checkpointRun } from './checkpoints.server';
import type { RunState } from '../../db/schema/index';
import type { EngineDeps } from './engine-deps.server';
import { readLedgerRowsOfRun, type LedgerRowOfRun } from '../targets/ledger.server';
import { runApplicationName } from './target-session.server';
import { findRuns, transitionRun, type RunRecord } from '../runs/run-store.server';
import { ACTIVE_RUN_STATES } from '../../db/run-lifecycle';

export const DEFAULT_STALE_AFTER_MS = 30_000;

export type RecoveryDeps = Pick<EngineDeps, 'store' | 'targets' | 'anchorWebhookUrl'> & { signingKeyPem?: string };

export interface RecoveryReport {
  runId: string;
  target: string;
  previousState: RunState;
  verdict: 'interrupted' | 'still-running' | 'target-unreachable';
  detail: string;
  ledgerRows?: LedgerRowOfRun[];
}

/**
 * The recovery pass: marks every stale active run whose target session is gone as interrupted
 * (event by 'system', with the ledger's word on whether its COMMIT landed). Run by the server at
 * start-up and on a timer, and by every command-line command that touches runs; never by a page
 * read (reads change nothing).
 */
export async function markInterruptedRuns(deps: RecoveryDeps, options: { staleAfterMs?: number; runId?: string } = {}): Promise<RecoveryReport[]> {
  const staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
  const candidates = await findRuns(deps.store.pool, { id: options.runId, states: ACTIVE_RUN_STATES, heartbeatOlderThanMs: staleAfterMs });
  const reports: RecoveryReport[] = [];
  for (const run of candidates.reverse()) reports.push(await settleRun(deps, run, staleAfterMs));
  return reports;
}

/** How often the server runs the recovery pass: a run whose driver died is marked within about a minute. */
export const RECOVERY_EVERY_MS = 15_000;

/** Runs the recovery pass now and then every RECOVERY_EVERY_MS; returns the stop function. Failures are reported, never thrown. */
export function startRecoveryPass(deps: RecoveryDeps, report: (line: string) => void, everyMs = RECOVERY_EVERY_MS): () => void {
  let running = false;
  const pass = () => {
    if (running) return;
    running = true;
    markInterruptedRuns(deps)
      .then((reports) => reports.filter((entry) => entry.verdict === 'interrupted').forEach((entry) => report(`Run ${entry.runId} on ${entry.target} was ${entry.previousState} and is now interrupted: ${entry.detail}`)))
      .catch((error: Error) => report(`Could not check for interrupted runs: ${error.message}`))
      .finally(() => (running = false));
  };
  pass();
  const timer = setInterval(pass, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

async function settleRun(deps: RecoveryDeps, run: RunRecord, staleAfterMs: number): Promise<RecoveryReport> {
  const base = { runId: run.id, target: run.target, previousState: run.state };
  let pool: pg.Pool;
  let alive: boolean;
  let ledgerRows: LedgerRowOfRun[];
  try {
    pool = deps.targets.pool(run.target);
    alive = await targetSessionAlive(pool, run);
    ledgerRows = alive ? [] : await readLedgerRowsOfRun(pool, run.id);
  } catch (error) {
    return { ...base, verdict: 'target-unreachable', detail: `cannot tell: target ${run.target} cannot be read (${(error as Error).message})` };
  }
  if (alive) return { ...base, verdict: 'still-running', detail: `its session (pid ${run.targetBackendPid}) still runs on ${run.target}` };

  const landed = ledgerRows.some((row) => (run.state === 'rolling_back' ? row.action === 'rollback' : row.action === 'apply'));
  const detail =
    run.kind === 'rehearsal'
      ? 'the rehearsal\'s transaction died with its session: nothing was committed'
      : landed
        ? ledgerRows.every((row) => row.outcome === 'partial')
          ? `the target's ledger holds this run's partial row(s): part of it committed (${ledgerRows.map((row) => `${row.action} ${row.outcome}`).join(', ')}); roll it back, or a new run goes on from there`
          : `the target's ledger holds this run's row (${ledgerRows.map((row) => `${row.action} ${row.outcome}`).join(', ')}): its COMMIT landed`
        : 'the target\'s ledger has no row of this run: its transaction did not commit (a non-transactional step may have committed some statements)';
  const interrupted = {
    previousState: run.state,
    heartbeatAt: run.heartbeatAt?.toISOString() ?? null,
    ownerProcess: run.ownerProcess,
    targetBackendPid: run.targetBackendPid,
    ledgerRows,
    commitLanded: landed,
  };
  const result = await transitionRun(deps.store, {
    runId: run.id,
    from: [run.state],
    to: 'interrupted',
    reason: `the process driving it (${run.ownerProcess ?? 'unknown'}) stopped: heartbeat older than ${Math.round(staleAfterMs / 1000)} s and its target session is gone`,
    actor: 'system',
    // An interrupted rollback keeps the apply's end as the run's finished_at: only the drive that stopped ends now.
    set: { ...(run.state === 'rolling_back' ? {} : { finishedAt: 'now' as const }), outcome: { ...(run.outcome ?? {}), result: 'interrupted', interrupted } },
    events: [{ type: 'run.interrupted', payload: { ...interrupted, detail } }],
  });
  if (result.changed && deps.signingKeyPem) {
    const final = await checkpointRun({ ...deps, signingKeyPem: deps.signingKeyPem }, run.id, 'full').catch(() => undefined);
    if (final && run.kind === 'execute') await anchorOnTarget(deps, run.target, final).catch(() => {});
  }
  return { ...base, verdict: 'interrupted', detail, ledgerRows };
}

/** The run's own backend, by pid and application name (a reused pid of another session does not count). */
async function targetSessionAlive(pool: pg.Pool, run: RunRecord): Promise<boolean> {
  if (run.targetBackendPid === null) return false;
  const { rows } = await pool.query('select 1 from pg_stat_activity where pid = $1 and application_name = $2', [run.targetBackendPid, runApplicationName(run.id)]);
  return rows.length > 0;
}
