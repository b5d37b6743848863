/**
 * The check suite of a plan, timed two ways on the same state of the same database:
 * - Runsheet: `runChecks` over the target's pool, phase after phase, as the product runs them
 *   (independent checks in parallel on the pool, each in its own rolled-back transaction, asking
 *   for no parallel workers while it runs beside others: decision 036);
 * - psql: the same statements in ONE session (`psql -X -q -f file`), each check wrapped as Runsheet
 *   wraps it (BEGIN [READ ONLY], the statement_timeout and lock_timeout set_config, the visibility probe where
 *   Runsheet adds one, the check's statements, ROLLBACK), so both send the same SQL. One after the
 *   other with the server's settings, parallel workers included: as a person runs them by hand.
 * A state names the phases that can run on it: before the apply (pre-checks + snapshot) and after
 * it (verification + data quality). http checks are not part of the suite (they call an API).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { DEFAULT_CHECK_LOCK_TIMEOUT_MS, runChecks, type CheckResult } from '../app/checks/run-checks.server';
import { checkSql, type ValidPlan } from '../app/plans/load-plans.server';
import type { CheckPhase, Plan, ProbeCheck, SqlCheck } from '../app/plans/plan-schema';
import { splitSql } from '../app/sql/split-sql.server';
import { round } from './stats';

export type SuiteState = 'before' | 'after';

export const SUITE_PHASES: Record<SuiteState, { phase: CheckPhase; checks(plan: Plan): readonly unknown[] }[]> = {
  before: [
    { phase: 'pre', checks: (plan) => plan.prechecks },
    { phase: 'snapshot', checks: (plan) => plan.snapshot },
  ],
  after: [
    { phase: 'verify', checks: (plan) => plan.verification },
    // "post" without its api_tests: the data-quality checks.
    { phase: 'post', checks: (plan) => plan.post_execution.data_quality },
  ],
};

type DbCheck = SqlCheck | ProbeCheck;

export function suiteOf(plan: ValidPlan, state: SuiteState): { phase: CheckPhase; checks: DbCheck[] }[] {
  return SUITE_PHASES[state].map(({ phase, checks }) => ({
    phase,
    checks: (checks(plan.plan) as DbCheck[]).filter((check) => check.kind === 'sql' || check.kind === 'probe'),
  }));
}

export interface RunsheetSuiteTiming {
  wallMs: number;
  phases: { phase: CheckPhase; wallMs: number; checks: { id: string; durationMs: number; passed: boolean; skipped: boolean }[] }[];
  checkCount: number;
  failed: string[];
}

/** Runsheet's time: runChecks per phase over `pool` (the runtime's target pool), summed. */
export async function timeSuiteWithRunsheet(
  plan: ValidPlan,
  state: SuiteState,
  pool: pg.Pool,
): Promise<{ timing: RunsheetSuiteTiming; results: { phase: CheckPhase; results: CheckResult[] }[] }> {
  const phases: RunsheetSuiteTiming['phases'] = [];
  const all: { phase: CheckPhase; results: CheckResult[] }[] = [];
  for (const { phase, checks } of suiteOf(plan, state)) {
    const started = performance.now();
    const results = await runChecks({ checks, sqlOf: (check) => checkSql(plan, check), target: { name: 'sandbox', pool, lockTimeoutMs: plan.plan.check_lock_timeout }, phase });
    const wallMs = performance.now() - started;
    all.push({ phase, results });
    phases.push({
      phase,
      wallMs: round(wallMs),
      checks: results.map((result) => ({ id: result.checkId, durationMs: result.durationMs, passed: result.passed, skipped: result.skipped })),
    });
  }
  const checks = phases.flatMap((phase) => phase.checks);
  return {
    timing: {
      wallMs: round(phases.reduce((sum, phase) => sum + phase.wallMs, 0)),
      phases,
      checkCount: checks.length,
      failed: checks.filter((check) => !check.passed && !check.skipped).map((check) => check.id),
    },
    results: all,
  };
}

/** Where Runsheet adds its "can this role see other sessions" probe (run-checks.server.ts). */
const READS_SESSION_ACTIVITY = /\bpg_stat(?:_get)?_activity\b/i;
const VISIBILITY_PROBE = `select current_user as role,
       coalesce((select rolsuper from pg_roles where rolname = current_user), false) as superuser,
       pg_has_role(current_user, 'pg_read_all_stats', 'member') as read_all_stats`;
const MARKER = '@@runsheet-bench-check';

/** The psql script of a state: every check wrapped as Runsheet wraps it, with a marker line before each. */
export async function psqlScript(plan: ValidPlan, state: SuiteState): Promise<string> {
  const lines = ['\\timing on'];
  for (const { checks } of suiteOf(plan, state)) {
    for (const check of checks) {
      const sql = checkSql(plan, check);
      const split = await splitSql(sql);
      if (!split.ok) throw new Error(`check ${check.id}: its SQL does not split: ${split.errors[0]?.message}`);
      const readOnly = check.kind === 'sql';
      lines.push(`\\echo ${MARKER} ${check.id}`);
      lines.push(readOnly ? 'begin transaction read only;' : 'begin;');
      lines.push(
        `select set_config('statement_timeout', '${Math.max(1, Math.round(check.timeout))}', true), set_config('lock_timeout', '${Math.max(1, Math.round(check.lock_timeout ?? plan.plan.check_lock_timeout ?? DEFAULT_CHECK_LOCK_TIMEOUT_MS))}', true), clock_timestamp() as ran_at, pg_backend_pid() as pid;`,
      );
      if (readOnly && READS_SESSION_ACTIVITY.test(sql)) lines.push(`${VISIBILITY_PROBE};`);
      for (const statement of split.statements) lines.push(`${statement.sql};`);
      lines.push('rollback;');
    }
  }
  return `${lines.join('\n')}\n`;
}

export interface PsqlConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /** Server settings for the session (PGOPTIONS), e.g. `-c max_parallel_workers_per_gather=0`. */
  options?: string;
}

/** psql's session with the server's parallel workers turned off: what Runsheet's checks side by side run with. */
export function withoutParallelWorkers(connection: PsqlConnection): PsqlConnection {
  return { ...connection, options: '-c max_parallel_workers_per_gather=0' };
}

export function psqlConnectionOf(url: string): PsqlConnection {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    user: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
    database: decodeURIComponent(parsed.pathname.slice(1)),
  };
}

export interface PsqlSuiteTiming {
  /** psql's whole life: start, connect, every statement, exit. */
  wallMs: number;
  /** Sum of psql's own \timing of every statement (what the server and the socket took). */
  statementsMs: number;
  /** Per check: the sum of its statements' \timing. */
  checks: Record<string, number>;
  /** Errors psql printed (a probe's expected error among them). */
  errors: string[];
}

/** Runs `scriptFile` with psql in one session and times it. */
export async function timeScriptWithPsql(connection: PsqlConnection, scriptFile: string, timeoutMs = 15 * 60_000): Promise<PsqlSuiteTiming> {
  const env = {
    ...process.env,
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGUSER: connection.user,
    PGPASSWORD: connection.password,
    PGDATABASE: connection.database,
    PGAPPNAME: 'psql',
    ...(connection.options ? { PGOPTIONS: connection.options } : {}),
    PGCONNECT_TIMEOUT: '10',
  };
  const started = performance.now();
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    // -o: query results go nowhere; \echo and \timing still print to stdout.
    const child = spawn('psql', ['-X', '-q', '-o', '/dev/null', '-f', scriptFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
      reject(new Error(`psql did not finish ${scriptFile} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.once('error', (error) => (clearTimeout(timer), reject(new Error(`cannot run psql: ${error.message}`))));
    child.once('close', (exitCode) => (clearTimeout(timer), resolve({ code: exitCode, stdout: out, stderr: err })));
  });
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`psql exited with ${code}: ${stderr.slice(0, 2000)}`);

  const checks: Record<string, number> = {};
  let current: string | undefined;
  let statementsMs = 0;
  for (const line of stdout.split('\n')) {
    if (line.startsWith(MARKER)) {
      current = line.slice(MARKER.length).trim();
      checks[current] = 0;
      continue;
    }
    const timing = /^Time: ([0-9.]+) ms/.exec(line);
    if (timing) {
      const ms = Number(timing[1]);
      statementsMs += ms;
      if (current) checks[current] = round(checks[current]! + ms, 3);
    }
  }
  const errors = stderr
    .split('\n')
    .filter((line) => /ERROR:/.test(line))
    .map((line) => line.replace(/^.*?ERROR:\s*/, '').trim());
  return { wallMs: round(wallMs), statementsMs: round(statementsMs), checks, errors };
}

/** Writes the state's psql script under `dir` and returns its path. */
export async function writePsqlScript(plan: ValidPlan, state: SuiteState, dir: string): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `check-suite-${plan.id}-${state}.sql`);
  fs.writeFileSync(file, await psqlScript(plan, state));
  return file;
}
