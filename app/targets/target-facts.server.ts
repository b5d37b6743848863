/**
 * What Runsheet shows about a target before any write: server version, TLS, whether it is a
 * read-only replica (refused), whether a transaction-mode pooler sits in front (refused: session
 * locks and SET do not survive it), and what the connecting role may see.
 * Every field is JSON-safe so the facts can be cached in fact_snapshots as they are.
 */
import type pg from 'pg';

export interface TargetFacts {
  serverVersion: {
    /** server_version, e.g. "18.1" or "16.4 (Ubuntu 16.4-1)". */
    version: string;
    /** server_version_num, e.g. 180001. */
    num: number;
    /** version(): build and platform. */
    full: string;
  };
  tls: { ssl: boolean; version?: string; cipher?: string };
  /** pg_is_in_recovery(): a standby; Runsheet refuses to write to it. */
  readOnlyReplica: boolean;
  transactionPooler: {
    detected: boolean;
    /** What was observed, in words; some entries are hints that do not decide `detected` alone. */
    evidence: string[];
  };
  currentUser: string;
  isSuperuser: boolean;
  /** Superuser or member of pg_read_all_stats: pg_stat_activity shows other sessions' queries. */
  canSeeAllSessions: boolean;
  database: string;
  /** The server's clock (ISO). */
  now: string;
}

/** Supabase's (Supavisor's) transaction-mode port; its session-mode port is 5432. */
const SUPABASE_TRANSACTION_POOLER_PORT = 6543;
/** Statements sent outside a transaction to see whether they reach the same backend. */
const PID_PROBES = 4;

interface FactsRow {
  server_version: string;
  server_version_num: string;
  version_full: string;
  ssl: boolean | null;
  tls_version: string | null;
  cipher: string | null;
  in_recovery: boolean;
  current_user: string;
  superuser: boolean;
  read_all_stats: boolean;
  database: string;
  now: Date;
  pid: number;
  server_port: number | null;
}

export async function readTargetFacts(pool: pg.Pool): Promise<TargetFacts> {
  const client = await pool.connect();
  try {
    const { rows } = await client.query<FactsRow>(
      `select current_setting('server_version') as server_version,
              current_setting('server_version_num') as server_version_num,
              version() as version_full,
              s.ssl, s.version as tls_version, s.cipher,
              pg_is_in_recovery() as in_recovery,
              current_user as current_user,
              coalesce(r.rolsuper, false) as superuser,
              pg_has_role(current_user, 'pg_read_all_stats', 'member') as read_all_stats,
              current_database() as database,
              clock_timestamp() as now,
              pg_backend_pid() as pid,
              inet_server_port() as server_port
         from (select 1) as one
         left join pg_stat_ssl s on s.pid = pg_backend_pid()
         left join pg_roles r on r.rolname = current_user`,
    );
    const row = rows[0]!;
    const transactionPooler = await detectTransactionPooler(client, row, connectedPort(pool));
    return {
      serverVersion: { version: row.server_version, num: Number(row.server_version_num), full: row.version_full },
      tls: {
        ssl: row.ssl === true,
        ...(row.tls_version ? { version: row.tls_version } : {}),
        ...(row.cipher ? { cipher: row.cipher } : {}),
      },
      readOnlyReplica: row.in_recovery,
      transactionPooler,
      currentUser: row.current_user,
      isSuperuser: row.superuser,
      canSeeAllSessions: row.superuser || row.read_all_stats,
      database: row.database,
      now: row.now.toISOString(),
    };
  } finally {
    client.release();
  }
}

/**
 * A transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supavisor on 6543) hands each
 * transaction to whichever server connection is free, so two statements outside a transaction may
 * reach different backends and session state (SET, advisory locks, temp tables) is lost between
 * them. The heuristic, strongest first:
 *  1. `SHOW pool_mode` answers (only a pooler knows that setting): detected when it says transaction.
 *  2. Backend pid changes between statements sent outside a transaction on one connection: detected.
 *  3. A session setting (set_config(…, false)) is gone in the next statement: detected.
 *  4. The connection's port is 6543: detected (Supabase's transaction pooler port).
 *  5. The port we connected to differs from the server's own port (inet_server_port): a proxy is in
 *     between, possibly a session-mode pooler; recorded as a hint only.
 * A pooler that happens to return the same backend every time (a quiet pool) passes 2 and 3, so
 * "not detected" is not proof of absence; the evidence says what was tried.
 */
async function detectTransactionPooler(
  client: pg.PoolClient,
  first: FactsRow,
  port: number | undefined,
): Promise<TargetFacts['transactionPooler']> {
  const evidence: string[] = [];
  let detected = false;

  try {
    const shown = await client.query<{ pool_mode?: string }>('show pool_mode');
    const mode = Object.values(shown.rows[0] ?? {})[0];
    evidence.push(`SHOW pool_mode answered "${String(mode)}": a pooler is in between`);
    if (String(mode).toLowerCase() === 'transaction' || String(mode).toLowerCase() === 'statement') detected = true;
  } catch {
    // PostgreSQL itself has no pool_mode setting (42704): the expected answer without a pooler.
  }

  const pids = new Set<number>([first.pid]);
  await client.query(`select set_config('runsheet.pooler_probe', $1, false)`, [String(first.pid)]);
  let settingLost = false;
  for (let probe = 0; probe < PID_PROBES; probe++) {
    const { rows } = await client.query<{ pid: number; setting: string | null }>(
      `select pg_backend_pid() as pid, current_setting('runsheet.pooler_probe', true) as setting`,
    );
    const row = rows[0]!;
    pids.add(row.pid);
    if (row.setting !== String(first.pid)) settingLost = true;
  }
  if (pids.size > 1) {
    detected = true;
    evidence.push(`backend pid changed between statements on one connection (${[...pids].join(', ')}): transaction pooling`);
  }
  if (settingLost) {
    detected = true;
    evidence.push('a session setting did not survive to the next statement: session state is lost between transactions');
  }
  // Leave the connection as we found it (on a direct connection the probe setting is ours alone).
  await client.query(`select set_config('runsheet.pooler_probe', '', false)`).catch(() => {});

  if (port === SUPABASE_TRANSACTION_POOLER_PORT) {
    detected = true;
    evidence.push(`connected on port ${SUPABASE_TRANSACTION_POOLER_PORT}, the transaction-mode pooler port of Supabase/Supavisor: use the direct or session port`);
  }
  if (port !== undefined && first.server_port !== null && port !== first.server_port) {
    evidence.push(`connected on port ${port} but the server listens on ${first.server_port}: a proxy or pooler is in between`);
  }
  if (!detected) {
    evidence.unshift(`not detected: the same backend (pid ${first.pid}) answered ${PID_PROBES + 1} statements outside a transaction and kept session state`);
  }
  return { detected, evidence };
}

/** The port the pool connects to, from its options or connection string. */
function connectedPort(pool: pg.Pool): number | undefined {
  const options = (pool as unknown as { options?: { port?: number | string; connectionString?: string } }).options ?? {};
  if (options.connectionString) {
    try {
      const url = new URL(options.connectionString);
      return url.port ? Number(url.port) : 5432;
    } catch {
      return undefined;
    }
  }
  return options.port !== undefined ? Number(options.port) : undefined;
}
