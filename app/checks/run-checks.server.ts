/**
 * Runs a plan's checks against a target and records their results.
 *
 * - `sql` checks run in a READ ONLY transaction with the check's statement_timeout; they are
 *   independent, so on a pool several run at once. Checks run side by side ask the server for no
 *   parallel workers (decision 036): Runsheet's own parallelism takes their place.
 * - `probe` checks write inside a transaction (or a savepoint) that is always rolled back.
 * - `http` checks call the target's API with its bearer token.
 * - `object` checks read the catalog with the facts panel's reader (a read-only transaction, the
 *   same timeouts) and say what they expected and found in words.
 * On a given client (a rehearsal's open transaction) every check runs there in turn, each inside
 * a savepoint that is rolled back, so the caller's transaction stays usable.
 * A failing check never throws and never stops the others. Check SQL comes from the plan (reviewed
 * code); values that fill an http request come from `vars_sql` rows and are JSON-encoded, never
 * spliced into SQL.
 */
import { performance } from 'node:perf_hooks';
import { and, asc, desc, eq, sql } from 'drizzle-orm';
import type pg from 'pg';
import { checkResults, type CheckResultRow } from '../../db/schema/index';
import type { Check, Expectation, HttpCheck, ObjectCheck, Plan, ProbeCheck, SqlCheck } from '../plans/plan-schema';
import type { Target } from '../targets/targets.server';
import type { StoreDb } from '../runtime/store.server';
import { findTransactionControl, splitSql, type SqlStatement } from '../sql/split-sql.server';
import { evaluateExpectation, jsonSafe, type CheckOutcome } from './evaluate-expectation';
import { readObject } from './object-check.server';
import { expectationOf, judgeObject, type ObjectExpectation } from './object-expectation';

export interface CheckTarget {
  name: string;
  pool?: pg.Pool;
  /**
   * When given, every check runs on this connection, one after the other. A rehearsal runs its
   * checks inside its own open transaction: each check then gets a SAVEPOINT, never BEGIN/COMMIT.
   */
  client?: pg.ClientBase;
  apiUrl?: string;
  apiToken?: string;
  /** Why the API has no address although it should have one: an http check then fails with this (never skipped, never guessed). */
  apiProblem?: string;
  /** lock_timeout of a check that sets none (the plan's check_lock_timeout, else the target's); default 5 s. */
  lockTimeoutMs?: number;
  /** Told which backend runs a check (the engine shows that session's lock waits live). */
  onCheckSession?: (session: { checkId: string; pid: number; lockTimeoutMs: number }) => void;
}

/**
 * Where a plan's checks run on a target: its pool (or one connection), its API, and the lock
 * timeout of a check that sets none (the plan's check_lock_timeout, else the target's).
 */
export function checkTargetOf(
  target: Pick<Target, 'name' | 'apiUrl' | 'apiToken' | 'apiProblem' | 'rules'>,
  connection: { pool: pg.Pool } | { client: pg.ClientBase },
  plan: Pick<Plan, 'check_lock_timeout'>,
): CheckTarget {
  const lockTimeoutMs = plan.check_lock_timeout ?? target.rules.check_lock_timeout ?? DEFAULT_CHECK_LOCK_TIMEOUT_MS;
  return 'pool' in connection
    ? { name: target.name, pool: connection.pool, apiUrl: target.apiUrl, apiToken: target.apiToken, apiProblem: target.apiProblem, lockTimeoutMs }
    : { name: target.name, client: connection.client, lockTimeoutMs };
}

export interface RunChecksInput {
  checks: Check[];
  /** The check's SQL text, inline or from its file: `(check) => checkSql(loaded, check)`. Not called for http checks. */
  sqlOf: (check: SqlCheck | ProbeCheck) => string;
  target: CheckTarget;
  phase: string;
  /** sql/probe/http checks run at once on a pool (default 4). Ignored on a given client. */
  concurrency?: number;
  /** Asked before each check starts: a reason (e.g. "cancelled by …") leaves the rest not run. */
  stopWhen?: () => string | undefined;
}

export interface CheckError {
  sqlstate?: string;
  message: string;
  /** 1-based line in the check's SQL. */
  line?: number;
  detail?: string;
}

export interface CheckResult {
  checkId: string;
  title: string;
  kind: Check['kind'];
  phase: string;
  passed: boolean;
  /** Neither passed nor failed (an http check on a target without an API). */
  skipped: boolean;
  /** The expectation as evaluated (an http check's `{{name}}` placeholders filled; an object check's in words). */
  expected: Expectation | ObjectExpectation;
  actual: unknown;
  /** The exact SQL that ran (an http check: its vars_sql, or ''). */
  sql: string;
  error?: CheckError;
  durationMs: number;
  /** ISO time the check started, from the database clock when it reached the database. */
  ranAt: string;
  reason?: string;
}

const DEFAULT_CONCURRENCY = 4;
/** A check waits this long for a lock unless its plan or target says otherwise. */
export const DEFAULT_CHECK_LOCK_TIMEOUT_MS = 5_000;
const HTTP_TIMEOUT_MS = 10_000;
const SAVEPOINT = 'runsheet_check';
/** A check's set-up: its timeouts, and when and where it ran (the server's clock, its backend). */
const CHECK_SETUP_SQL = `select set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true), clock_timestamp() as ran_at, pg_backend_pid() as pid`;
/**
 * The same for a check run beside others: it asks for no parallel workers. The checks already
 * fill the pool's connections; each also taking the server's workers oversubscribed a 2-core
 * server (the 1M bench's data-quality checks took 25-30 % longer) and takes from a production
 * primary the workers its application's queries use. Decision 036.
 */
const CHECK_SETUP_SIDE_BY_SIDE_SQL = `select set_config('statement_timeout', $1, true), set_config('lock_timeout', $2, true), set_config('max_parallel_workers_per_gather', '0', true), clock_timestamp() as ran_at, pg_backend_pid() as pid`;
/** Where only a role with pg_read_all_stats (or superuser) sees other sessions' queries and states. */
const READS_SESSION_ACTIVITY = /\bpg_stat(?:_get)?_activity\b/i;

export async function runChecks(input: RunChecksInput): Promise<CheckResult[]> {
  const { checks, target } = input;
  const results: CheckResult[] = new Array(checks.length);
  const runAt = async (index: number, sideBySide: boolean) => {
    results[index] = await runOneCheck(input, checks[index]!, sideBySide);
  };
  if (target.client) {
    for (let index = 0; index < checks.length; index++) await runAt(index, false);
    return results;
  }
  const workers = Math.max(1, Math.min(input.concurrency ?? DEFAULT_CONCURRENCY, checks.length));
  const sideBySide = workers > 1;
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < checks.length) await runAt(next++, sideBySide);
    }),
  );
  return results;
}

async function runOneCheck(input: RunChecksInput, check: Check, sideBySide: boolean): Promise<CheckResult> {
  const started = performance.now();
  const base = { checkId: check.id, title: check.title, kind: check.kind, phase: input.phase, expected: expectationOf(check) };
  let sql = '';
  const stopped = input.stopWhen?.();
  if (stopped) {
    return { ...base, passed: false, skipped: true, actual: null, sql, durationMs: 0, ranAt: new Date().toISOString(), reason: `not run: ${stopped}` };
  }
  try {
    if (check.kind === 'http') return await runHttpCheck(input, check, started, sideBySide);
    if (check.kind === 'object') return await runObjectCheck(input, check, started);
    sql = input.sqlOf(check);
    return await runSqlCheck(input, check, sql, started, sideBySide);
  } catch (error) {
    // Nothing above should throw; if it does, it is this check's failure, not the batch's.
    const failure = errorOf(error);
    return {
      ...base,
      passed: false,
      skipped: false,
      actual: null,
      sql,
      error: failure,
      durationMs: elapsed(started),
      ranAt: new Date().toISOString(),
      reason: failure.message,
    };
  }
}

async function runSqlCheck(input: RunChecksInput, check: SqlCheck | ProbeCheck, sql: string, started: number, sideBySide: boolean): Promise<CheckResult> {
  const base = { checkId: check.id, title: check.title, kind: check.kind, phase: input.phase, expected: check.expect, sql, skipped: false };
  const readOnly = check.kind === 'sql';
  const run = await runStatements(input.target, sql, {
    readOnly,
    timeoutMs: check.timeout,
    lockTimeoutMs: lockTimeoutOf(input.target, check),
    checkId: check.id,
    guardSessionVisibility: readOnly && READS_SESSION_ACTIVITY.test(sql),
    withoutParallelWorkers: sideBySide,
  });
  const durationMs = elapsed(started);
  if (run.kind === 'cannot_run' || run.kind === 'earlier_statement_failed') {
    return { ...base, passed: false, actual: null, error: run.error, durationMs, ranAt: run.ranAt, reason: run.reason };
  }
  if (run.kind === 'cannot_see') {
    return { ...base, passed: false, actual: 'cannot see', durationMs, ranAt: run.ranAt, reason: run.reason };
  }
  const evaluation = evaluateExpectation(check.expect, run.outcome);
  const error = 'error' in run.outcome && !evaluation.passed ? run.error : undefined;
  return {
    ...base,
    passed: evaluation.passed,
    actual: evaluation.actual,
    ...(error ? { error } : {}),
    durationMs,
    ranAt: run.ranAt,
    ...(evaluation.reason ? { reason: evaluation.reason } : {}),
  };
}

/** An object check: the catalog entry read in a read-only transaction (the check's timeouts), judged in words. */
async function runObjectCheck(input: RunChecksInput, check: ObjectCheck, started: number): Promise<CheckResult> {
  const { target } = input;
  const base = { checkId: check.id, title: check.title, kind: check.kind, phase: input.phase, expected: expectationOf(check), skipped: false };
  if (!target.pool && !target.client) {
    const message = `no database connection for target ${target.name}`;
    return { ...base, passed: false, actual: null, sql: '', error: { message }, durationMs: elapsed(started), ranAt: new Date().toISOString(), reason: message };
  }
  const lockTimeoutMs = lockTimeoutOf(target, check);
  let ranAt = new Date().toISOString();
  let sql = '';
  try {
    return await withRolledBackTransaction(target, true, async (client) => {
      const setup = await client.query<{ ran_at: Date; pid: number }>(CHECK_SETUP_SQL, [String(Math.max(1, Math.round(check.timeout))), String(Math.max(1, Math.round(lockTimeoutMs)))],
      );
      ranAt = setup.rows[0]?.ran_at.toISOString() ?? ranAt;
      if (setup.rows[0]) target.onCheckSession?.({ checkId: check.id, pid: Number(setup.rows[0].pid), lockTimeoutMs });
      const read = await readObject(client, check);
      sql = read.sql;
      const verdict = judgeObject(check, read.found);
      return { ...base, sql, passed: verdict.passed, actual: verdict.actual, durationMs: elapsed(started), ranAt, ...(verdict.reason ? { reason: verdict.reason } : {}) };
    });
  } catch (error) {
    const failure = errorOf(error);
    return { ...base, sql, passed: false, actual: null, error: failure, durationMs: elapsed(started), ranAt, reason: `could not read the catalog: ${failure.message}` };
  }
}

type StatementsRun =
  | { kind: 'outcome'; outcome: CheckOutcome; error?: CheckError; ranAt: string }
  | { kind: 'cannot_run'; error: CheckError; reason: string; ranAt: string }
  | { kind: 'earlier_statement_failed'; error: CheckError; reason: string; ranAt: string }
  | { kind: 'cannot_see'; reason: string; ranAt: string };

/**
 * Splits `sql` as psql would and runs its statements in a transaction (or savepoint) that is
 * rolled back whatever happens; the last statement's rows or error is the outcome.
 */
async function runStatements(
  target: CheckTarget,
  sql: string,
  options: { readOnly: boolean; timeoutMs: number; lockTimeoutMs: number; checkId: string; guardSessionVisibility: boolean; withoutParallelWorkers: boolean },
): Promise<StatementsRun> {
  const localNow = () => new Date().toISOString();
  const split = await splitSql(sql);
  if (!split.ok) {
    const first = split.errors[0];
    const message = split.errors.map((error) => error.message).join('; ');
    return { kind: 'cannot_run', error: { message, ...(first ? { line: first.line } : {}) }, reason: `the check's SQL cannot run: ${message}`, ranAt: localNow() };
  }
  const statements = split.statements;
  if (statements.length === 0) {
    return { kind: 'cannot_run', error: { message: 'the check has no SQL statement' }, reason: 'the check has no SQL statement', ranAt: localNow() };
  }
  const control = findTransactionControl(statements)[0];
  if (control) {
    const message = `${control.command} on line ${control.line}: Runsheet owns the check's transaction (always rolled back), so a check may not begin, end or split it`;
    return { kind: 'cannot_run', error: { message, line: control.line }, reason: message, ranAt: localNow() };
  }
  if (!target.pool && !target.client) {
    const message = `no database connection for target ${target.name}`;
    return { kind: 'cannot_run', error: { message }, reason: message, ranAt: localNow() };
  }

  return withRolledBackTransaction<StatementsRun>(target, options.readOnly, async (client) => {
    let ranAt = localNow();
    try {
      // set_config(…, true) is SET LOCAL with a bind parameter; it ends with the (sub)transaction.
      // The check's own statements come after it, so a check may SET LOCAL its own parallel workers.
      const setup = await client.query<{ ran_at: Date; pid: number }>(
        options.withoutParallelWorkers ? CHECK_SETUP_SIDE_BY_SIDE_SQL : CHECK_SETUP_SQL,
        [String(Math.max(1, Math.round(options.timeoutMs))), String(Math.max(1, Math.round(options.lockTimeoutMs)))],
      );
      ranAt = setup.rows[0]?.ran_at.toISOString() ?? ranAt;
      if (setup.rows[0]) target.onCheckSession?.({ checkId: options.checkId, pid: Number(setup.rows[0].pid), lockTimeoutMs: options.lockTimeoutMs });
      if (options.guardSessionVisibility) {
        const privileges = await client.query<{ role: string; superuser: boolean; read_all_stats: boolean }>(
          `select current_user as role,
                  coalesce((select rolsuper from pg_roles where rolname = current_user), false) as superuser,
                  pg_has_role(current_user, 'pg_read_all_stats', 'member') as read_all_stats`,
        );
        const seen = privileges.rows[0];
        if (seen && !seen.superuser && !seen.read_all_stats) {
          return {
            kind: 'cannot_see',
            reason:
              `cannot see: role ${seen.role} is neither superuser nor a member of pg_read_all_stats, so pg_stat_activity ` +
              `hides other sessions' queries and states (shown as <insufficient privilege>); grant pg_read_all_stats ` +
              `(or pg_monitor) to ${seen.role} to check this`,
            ranAt,
          } as const;
        }
      }
    } catch (error) {
      const failure = errorOf(error);
      return { kind: 'cannot_run', error: failure, reason: `could not prepare the check's transaction: ${failure.message}`, ranAt } as const;
    }

    for (const statement of statements) {
      const last = statement.index === statements.length - 1;
      try {
        // Extended protocol: one statement per message, whatever the splitter decided.
        const result = await client.query({ text: statement.sql, queryMode: 'extended' } as pg.QueryConfig);
        if (last) {
          const outcome: CheckOutcome = { rows: result.rows ?? [], fields: (result.fields ?? []).map((field) => field.name) };
          return { kind: 'outcome', outcome, ranAt } as const;
        }
      } catch (error) {
        const failure = statementError(error, statement, options.timeoutMs, options.lockTimeoutMs);
        if (last) {
          const outcome: CheckOutcome = { error: { ...(failure.sqlstate ? { sqlstate: failure.sqlstate } : {}), message: failure.message } };
          return { kind: 'outcome', outcome, error: failure, ranAt } as const;
        }
        return {
          kind: 'earlier_statement_failed',
          error: failure,
          reason:
            `statement ${statement.index + 1} of ${statements.length} (line ${statement.startLine}) failed before the check's ` +
            `last statement${failure.sqlstate ? ` with SQLSTATE ${failure.sqlstate}` : ''}: ${failure.message}`,
          ranAt,
        } as const;
      }
    }
    throw new Error('unreachable: a check with statements returns from its last one');
  }).catch((error: unknown) => {
    const failure = errorOf(error);
    return { kind: 'cannot_run', error: failure, reason: failure.message, ranAt: localNow() } as const;
  });
}

/**
 * Runs `work` in a transaction that is rolled back afterwards: on a pool, its own transaction on a
 * connection of its own; on a given client, a savepoint inside the caller's transaction (or, when
 * that client is not in a transaction, a transaction of its own).
 */
async function withRolledBackTransaction<T>(target: CheckTarget, readOnly: boolean, work: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  if (target.client) {
    const client = target.client;
    let ownTransaction = false;
    try {
      await client.query(`savepoint ${SAVEPOINT}`);
    } catch (error) {
      // 25P01: not in a transaction block, so there is no caller's transaction to protect.
      if ((error as { code?: string }).code !== '25P01') throw error;
      await client.query(readOnly ? 'begin transaction read only' : 'begin');
      ownTransaction = true;
    }
    try {
      // Going read-only is allowed mid-transaction; rolling back to the savepoint restores read-write.
      if (readOnly && !ownTransaction) await client.query('set local transaction_read_only = on');
      return await work(client);
    } finally {
      if (ownTransaction) await client.query('rollback');
      else {
        await client.query(`rollback to savepoint ${SAVEPOINT}`);
        await client.query(`release savepoint ${SAVEPOINT}`);
      }
    }
  }
  if (!target.pool) throw new Error(`no database connection for target ${target.name}`);
  const client = await target.pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(readOnly ? 'begin transaction read only' : 'begin');
    return await work(client);
  } finally {
    try {
      await client.query('rollback');
    } catch (error) {
      broken = error instanceof Error ? error : new Error(String(error));
    }
    // A connection that could not roll back is destroyed, never handed to the next check.
    client.release(broken);
  }
}

async function runHttpCheck(input: RunChecksInput, check: HttpCheck, started: number, sideBySide: boolean): Promise<CheckResult> {
  const { target } = input;
  const varsSql = check.request.vars_sql ?? '';
  const base = { checkId: check.id, title: check.title, kind: check.kind, phase: input.phase, sql: varsSql };
  const fail = (reason: string, ranAt: string, extra: Partial<CheckResult> = {}): CheckResult => ({
    ...base,
    expected: check.expect,
    passed: false,
    skipped: false,
    actual: null,
    durationMs: elapsed(started),
    ranAt,
    reason,
    ...extra,
  });

  if (!target.apiUrl && target.apiProblem) return fail(target.apiProblem, new Date().toISOString());
  if (!target.apiUrl || !target.apiToken) {
    const upper = target.name.toUpperCase();
    return {
      ...base,
      expected: check.expect,
      passed: false,
      skipped: true,
      actual: null,
      durationMs: elapsed(started),
      ranAt: new Date().toISOString(),
      reason: `no API configured for target ${target.name} (set TARGET_${upper}_API_URL and TARGET_${upper}_API_TOKEN)`,
    };
  }

  let ranAt = new Date().toISOString();
  let vars: Record<string, unknown> = {};
  if (varsSql) {
    const run = await runStatements(target, varsSql, {
      readOnly: true,
      timeoutMs: check.timeout,
      lockTimeoutMs: lockTimeoutOf(target, check),
      checkId: check.id,
      guardSessionVisibility: false,
      withoutParallelWorkers: sideBySide,
    });
    ranAt = run.ranAt;
    if (run.kind !== 'outcome') return fail(`vars_sql: ${run.reason}`, ranAt, 'error' in run ? { error: run.error } : {});
    if ('error' in run.outcome) {
      const error = run.error ?? { message: run.outcome.error.message };
      return fail(`vars_sql failed${error.sqlstate ? ` with SQLSTATE ${error.sqlstate}` : ''}: ${error.message}`, ranAt, { error });
    }
    if (!('rows' in run.outcome) || run.outcome.rows.length === 0) {
      return fail('vars_sql returned no rows: nothing to fill the request\'s {{…}} placeholders with', ranAt);
    }
    vars = jsonSafe(run.outcome.rows[0]) as Record<string, unknown>;
  }

  let path: string;
  let body: unknown;
  let expected: Expectation;
  try {
    path = fillText(check.request.path, vars, encodeURIComponent);
    body = check.request.body === undefined ? undefined : fillPlaceholders(check.request.body, vars);
    expected =
      check.expect.type === 'http'
        ? { ...check.expect, json_equals: fillPlaceholders(check.expect.json_equals ?? {}, vars) as Record<string, string | number | boolean | null> }
        : check.expect;
  } catch (error) {
    return fail((error as Error).message, ranAt);
  }

  const url = `${target.apiUrl.replace(/\/+$/, '')}${path}`;
  const request = { method: check.request.method, url, ...(body === undefined ? {} : { body }) };
  let status: number;
  let json: unknown;
  let text: string;
  try {
    const response = await fetch(url, {
      method: check.request.method,
      headers: {
        authorization: `Bearer ${target.apiToken}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    status = response.status;
    text = await response.text();
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError' || (error as Error).name === 'AbortError';
    const message = timedOut
      ? `no response from ${check.request.method} ${url} within ${HTTP_TIMEOUT_MS / 1000} s`
      : `${check.request.method} ${url} failed: ${describeFetchError(error)}`;
    return fail(message, ranAt, { expected, error: { message }, actual: { request } });
  }
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }

  const evaluation = evaluateExpectation(expected, { http: { status, json } });
  const actual = {
    ...(evaluation.actual as object),
    request,
    ...(json === undefined && text ? { text: text.slice(0, 2_000) } : {}),
  };
  return {
    ...base,
    expected,
    passed: evaluation.passed,
    skipped: false,
    actual,
    durationMs: elapsed(started),
    ranAt,
    ...(evaluation.reason ? { reason: evaluation.reason } : {}),
  };
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;
const WHOLE_PLACEHOLDER = /^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$/;

/**
 * Fills `{{name}}` placeholders with JSON values: a string that is only a placeholder becomes the
 * value itself (a number stays a number, NULL stays null); inside other text, its text.
 */
function fillPlaceholders(value: unknown, vars: Record<string, unknown>): unknown {
  if (typeof value === 'string') {
    const whole = WHOLE_PLACEHOLDER.exec(value);
    if (whole) return lookup(vars, whole[1]!);
    return fillText(value, vars, (text) => text);
  }
  if (Array.isArray(value)) return value.map((item) => fillPlaceholders(item, vars));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, fillPlaceholders(item, vars)]));
  }
  return value;
}

function fillText(text: string, vars: Record<string, unknown>, encode: (text: string) => string): string {
  return text.replace(PLACEHOLDER, (_match, name: string) => {
    const value = lookup(vars, name);
    return encode(typeof value === 'string' ? value : JSON.stringify(value));
  });
}

function lookup(vars: Record<string, unknown>, name: string): unknown {
  if (!Object.hasOwn(vars, name)) {
    const known = Object.keys(vars);
    throw new Error(
      `placeholder {{${name}}} is not filled by vars_sql (${known.length ? `its columns: ${known.join(', ')}` : 'the check has no vars_sql'})`,
    );
  }
  return vars[name] ?? null;
}

function describeFetchError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code || cause?.message) return [cause.code, cause.message].filter(Boolean).join(' ');
  return error instanceof Error ? error.message : String(error);
}

const lockTimeoutOf = (target: CheckTarget, check: Check): number => check.lock_timeout ?? target.lockTimeoutMs ?? DEFAULT_CHECK_LOCK_TIMEOUT_MS;

function statementError(error: unknown, statement: SqlStatement, timeoutMs: number, lockTimeoutMs: number): CheckError {
  const failure = errorOf(error);
  const position = Number((error as { position?: string }).position);
  if (Number.isInteger(position) && position > 0) {
    const before = statement.sql.slice(0, position - 1);
    failure.line = statement.startLine + (before.match(/\n/g)?.length ?? 0);
  } else {
    failure.line = statement.startLine;
  }
  if (failure.sqlstate === '57014' && /statement timeout/i.test(failure.message)) {
    failure.message = `the check exceeded its timeout of ${timeoutMs} ms (statement_timeout): ${failure.message}`;
  }
  if (failure.sqlstate === '55P03' && /lock timeout/i.test(failure.message)) {
    failure.message = `the check waited longer than its lock_timeout of ${lockTimeoutMs} ms for a lock: ${failure.message}`;
  }
  return failure;
}

function errorOf(error: unknown): CheckError {
  const code = (error as { code?: unknown }).code;
  const detail = (error as { detail?: unknown }).detail;
  return {
    ...(typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? { sqlstate: code } : {}),
    message: error instanceof Error ? error.message : String(error),
    ...(typeof detail === 'string' && detail ? { detail } : {}),
  };
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

export interface CheckResultContext {
  target: string;
  planId: string;
  planChecksum: string;
  runId?: string;
  ranBy?: string;
}

/** Appends results to `check_results` (history is never rewritten). */
export async function recordCheckResults(db: StoreDb, context: CheckResultContext, results: CheckResult[]): Promise<CheckResultRow[]> {
  if (results.length === 0) return [];
  return db
    .insert(checkResults)
    .values(
      results.map((result) => ({
        target: context.target,
        planId: context.planId,
        planChecksum: context.planChecksum,
        checkId: result.checkId,
        phase: result.phase,
        kind: result.kind,
        passed: result.passed,
        skipped: result.skipped,
        expected: jsonSafe(result.expected) ?? null,
        actual: jsonSafe(result.actual) ?? null,
        sqlText: result.sql || null,
        error: result.error ? (jsonSafe(result.error) as object) : null,
        reason: result.skipped ? (result.reason ?? null) : null,
        durationMs: result.durationMs,
        ranAt: new Date(result.ranAt),
        runId: context.runId ?? null,
        ranBy: context.ranBy ?? null,
      })),
    )
    .returning();
}

/** The newest result of each check of a plan on a target; its age is now − ranAt. */
export async function latestCheckResults(db: StoreDb, key: { target: string; planId: string }): Promise<CheckResultRow[]> {
  return db
    .selectDistinctOn([checkResults.checkId])
    .from(checkResults)
    .where(and(eq(checkResults.target, key.target), eq(checkResults.planId, key.planId)))
    .orderBy(checkResults.checkId, desc(checkResults.ranAt), desc(checkResults.id));
}

/** Every check result recorded in a run, oldest first (what the run page lists). */
export async function readRunCheckResults(db: StoreDb, runId: string): Promise<CheckResultRow[]> {
  return db.select().from(checkResults).where(eq(checkResults.runId, runId)).orderBy(asc(checkResults.ranAt), asc(checkResults.id));
}

/** The SQL one stored result ran, when it belongs to the plan (a page shows it on demand); undefined otherwise. */
export async function readCheckResultSql(db: StoreDb, input: { resultId: number; planId: string }): Promise<{ resultId: number; checkId: string; planChecksum: string; sql: string | null } | undefined> {
  const [row] = await db
    .select({ resultId: checkResults.id, checkId: checkResults.checkId, planChecksum: checkResults.planChecksum, sql: checkResults.sqlText })
    .from(checkResults)
    .where(and(eq(checkResults.id, input.resultId), eq(checkResults.planId, input.planId)));
  return row;
}

/** The newest result of each check of one phase in a run, with its age by the store's clock (a gate judges freshness). */
export async function latestRunPhaseResults(db: StoreDb, input: { runId: string; phase: string }): Promise<(CheckResultRow & { ageMs: number })[]> {
  const rows = await db
    .selectDistinctOn([checkResults.checkId], { row: checkResults, ageMs: sql<number>`(extract(epoch from (clock_timestamp() - ${checkResults.ranAt})) * 1000)::float8` })
    .from(checkResults)
    .where(and(eq(checkResults.runId, input.runId), eq(checkResults.phase, input.phase)))
    .orderBy(checkResults.checkId, desc(checkResults.ranAt), desc(checkResults.id));
  return rows.map(({ row, ageMs }) => ({ ...row, ageMs: Number(ageMs) }));
}
