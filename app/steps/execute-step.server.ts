/**
 * Runs one step of a plan on a target connection, statement by statement, as PRODUCT.md's
 * "How a migration file runs" says:
 *
 * - The file is split with PostgreSQL's own scanner and parser before anything is sent: a psql
 *   meta-command, a syntax error, or what step-sql-rules.server.ts refuses (transaction control
 *   such as BEGIN or COMMIT in any step; CONCURRENTLY in a transactional one) is reported with its
 *   line and nothing reaches the target. The plan loader applies the same rules.
 * - A transactional step in `own` mode runs in one transaction owned here: BEGIN, SET LOCAL
 *   lock_timeout and statement_timeout, the statements, `hooks.beforeCommit` (the ledger row),
 *   COMMIT; on any error, ROLLBACK. In `caller` mode (a rehearsal) the step runs inside the
 *   caller's open transaction with the same SET LOCALs and never begins, commits or rolls back.
 *   A non-transactional step (`own` mode only) sets the timeouts for the session, runs each
 *   statement in its own implicit transaction (CREATE INDEX CONCURRENTLY, a DO block that
 *   COMMITs between batches) and records how many completed.
 * - Each statement's duration, command tag, row count and NOTICE output are recorded; a server
 *   error names the file line, SQLSTATE and message. While a statement waits, a second connection
 *   samples the sessions blocking it, so a lock_timeout failure names who held the lock.
 * - A person's cancel (markCancelRequested, cancelRunningStep or options.signal) is told apart from
 *   a statement_timeout (both are SQLSTATE 57014) by a flag, and also stops the step between
 *   statements, where pg_cancel_backend has nothing to cancel.
 *
 * Nothing here throws for a failed step: the outcome says what happened. Statement text comes
 * from the plan (reviewed code); every value Runsheet adds is a bind parameter.
 */
import { performance } from 'node:perf_hooks';
import { scanSync } from 'libpg-query';
import type pg from 'pg';
import type { Blocker } from '../../db/schema/run-outcome';
import { splitSql, type SqlStatement } from '../sql/split-sql.server';
import { blockersInWords } from '../runtime/lock-wait-words';
import { BlockerSampler } from '../targets/lock-waits.server';
import { stepTransactionProblems } from './step-sql-rules.server';

export interface StepToRun {
  id: string;
  title?: string;
  sql: string;
  transactional: boolean;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
}

export type TransactionMode =
  /** A transactional step: BEGIN … COMMIT owned here. A non-transactional step: autocommit per statement. */
  | { kind: 'own' }
  /**
   * A rehearsal: the caller has an open transaction; the step runs inside it (SET LOCAL, no
   * BEGIN/COMMIT/ROLLBACK) and the caller rolls back. A non-transactional step runs inside it too,
   * so a statement that cannot run in a transaction block (CREATE INDEX CONCURRENTLY) fails there.
   */
  | { kind: 'caller' };

export interface NoticeInfo {
  /** As the server sends it (localised with lc_messages): NOTICE, WARNING, INFO, … */
  severity: string;
  message: string;
  detail?: string;
  hint?: string;
  sqlstate?: string;
  where?: string;
}

/** A session blocking a statement (the run log's Blocker: one definition, db/schema/run-outcome.ts). */
export type BlockerInfo = Blocker;

export interface StatementEvent {
  stepId: string;
  /** 0-based position in the step's file. */
  index: number;
  /** 1-based file lines of the statement. */
  line: number;
  endLine: number;
  sql: string;
  durationMs: number;
  /** Rows the command reported (INSERT/UPDATE/DELETE/SELECT…); null for commands without a count. */
  rowCount: number | null;
  /** The command tag's verb: "CREATE TABLE", "INSERT", "DO", … */
  command: string;
  notices: NoticeInfo[];
  /** ISO, local clock, when the statement was sent. */
  startedAt: string;
  /** Sessions that blocked the statement while it ran (latest sample), when any did. */
  blockers?: BlockerInfo[];
}

export type StepPhase = 'prepare' | 'setup' | 'statement' | 'hook' | 'before_commit' | 'commit';

export interface StepFailure {
  /** The failed statement's index; -1 when no statement was at fault (prepare, setup, commit, cancel before the step). */
  statementIndex: number;
  /** 1-based file line: the statement's start line plus the lines before the server's error position. 0 when no line applies. */
  line: number;
  /** Where the step was when it failed. */
  during: StepPhase;
  sqlstate?: string;
  /** The server's message as sent (or Runsheet's, when the step was refused). */
  message: string;
  detail?: string;
  hint?: string;
  /** The server's error context (PL/pgSQL line, the SQL statement inside a DO block). */
  where?: string;
  /** The server's error position: 1-based character inside the statement's text. */
  position?: number;
  /** One sentence for the run log: which statement, which line, what went wrong and why. */
  summary: string;
  /** Every problem found before sending (a prepare failure can have several). */
  errors?: { line: number; message: string }[];
  /** Sessions that blocked the failed statement while it waited (latest sample taken while it ran). */
  blockers: BlockerInfo[];
  /** SQLSTATE 57014 (or a stop between statements) because a person cancelled, not a statement_timeout. */
  cancelled: boolean;
  /** The statement hit the step's statement_timeout or lock_timeout. */
  timeout?: 'statement_timeout' | 'lock_timeout';
  /**
   * The connection broke after a statement or COMMIT was sent: whether it took effect is
   * unknown. Read the target (its ledger for a COMMIT) to settle it.
   */
  outcomeUnknown?: boolean;
  /** The failed statement's own timing and NOTICE output. */
  durationMs?: number;
  notices?: NoticeInfo[];
}

export interface StepOutcome {
  stepId: string;
  ok: boolean;
  mode: TransactionMode['kind'];
  transactional: boolean;
  /** The statements that ran without error, in order. */
  statements: StatementEvent[];
  /**
   * Statements that ran without error. A non-transactional step's are committed even when a later
   * one failed; a transactional step's are rolled back on failure (see `committed`).
   */
  completedCount: number;
  failure?: StepFailure;
  /**
   * Every statement of the step is committed on the target: own-mode transactional after COMMIT,
   * non-transactional when all statements completed. Always false in caller mode.
   */
  committed: boolean;
  durationMs: number;
  /** The executing session's backend pid, when the step reached the server. */
  backendPid?: number;
  /** The connection is unusable (lost, or left inside a transaction it could not end): discard it. */
  connectionBroken: boolean;
}

export interface ExecuteStepHooks {
  onStatement?(event: StatementEvent): void | Promise<void>;
  onStatementStart?(info: { stepId: string; index: number; line: number; endLine: number; sql: string; backendPid: number }): void | Promise<void>;
  /** Transactional own-mode only: runs on the same client after BEGIN and the timeouts, before the first statement (a rollback's backups). Throwing aborts and rolls back. */
  afterBegin?(client: pg.ClientBase): Promise<void>;
  /** Transactional own-mode only: runs on the same client after the last statement and before COMMIT (the ledger row goes in the same transaction). Throwing aborts and rolls back. */
  beforeCommit?(client: pg.ClientBase): Promise<void>;
  /** Non-transactional steps: after each statement commits on its own. */
  onStatementCommitted?(event: StatementEvent): void | Promise<void>;
}

export interface ExecuteStepOptions {
  /** A second connection used to sample pg_blocking_pids(backend pid) while a statement runs longer than ~200 ms. */
  blockerProbe?: pg.Pool;
  /** Aborting it cancels the step: the running statement through pg_cancel_backend, or the next one before it starts. */
  signal?: AbortSignal;
  /** Where pg_cancel_backend is sent when `signal` aborts (default: blockerProbe). */
  cancelPool?: pg.Pool;
}

export type PreparedStep = { ok: true; statements: SqlStatement[] } | { ok: false; errors: { line: number; message: string }[] };

/** The server checks this often whether the client is still there, so a dead runner's DDL stops (PG ≥ 14). */
const CONNECTION_CHECK_INTERVAL_MS = 2_000;
const CANCEL_RETRY_EVERY_MS = 250;
const CANCEL_RETRY_FOR_MS = 10_000;
const CALLER_SAVEPOINT = 'runsheet_step_setup';

export async function prepareStep(step: StepToRun): Promise<PreparedStep> {
  const split = await splitSql(step.sql);
  if (!split.ok) return { ok: false, errors: split.errors };
  if (split.statements.length === 0) {
    return { ok: false, errors: [{ line: 0, message: `step ${step.id} has no SQL statement: an empty or comment-only file is almost certainly the wrong file` }] };
  }
  const problems = stepTransactionProblems(split.statements, step);
  if (problems.length > 0) return { ok: false, errors: problems };
  return { ok: true, statements: split.statements };
}

export async function cancelBackend(pool: pg.Pool, pid: number): Promise<boolean> {
  const { rows } = await pool.query<{ cancelled: boolean }>('select pg_cancel_backend($1) as cancelled', [pid]);
  return rows[0]?.cancelled === true;
}

const backendPids = new WeakMap<pg.ClientBase, number>();
const runningSteps = new WeakMap<pg.ClientBase, StepExecution>();

/**
 * The client's backend pid (cached per client). Ask before starting a step: on a client that is
 * running a step the query would wait for the step to end. onStatementStart and the outcome carry it too.
 */
export async function backendPidOf(client: pg.ClientBase): Promise<number> {
  const known = backendPids.get(client);
  if (known !== undefined) return known;
  const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
  const pid = Number(rows[0]?.pid);
  backendPids.set(client, pid);
  return pid;
}

/**
 * Marks the step running on `client` as cancelled by a person: a 57014 it fails with is reported
 * as `cancelled`, and it stops before its next statement. Returns false when no step is running there
 * (a cancel that may come before the step starts belongs in options.signal).
 */
export function markCancelRequested(client: pg.ClientBase): boolean {
  const execution = runningSteps.get(client);
  if (!execution) return false;
  execution.cancelRequested = true;
  return true;
}

/**
 * markCancelRequested, then pg_cancel_backend through `pool`, repeated while a statement is in
 * flight: a cancel that lands between two statements finds nothing to cancel, and the flag alone
 * stops the next one. Returns false when no step is running on `client`.
 */
export function cancelRunningStep(client: pg.ClientBase, pool: pg.Pool): boolean {
  const execution = runningSteps.get(client);
  if (!execution) return false;
  execution.requestCancel(pool);
  return true;
}

export async function executeStep(
  client: pg.ClientBase,
  step: StepToRun,
  mode: TransactionMode,
  hooks: ExecuteStepHooks = {},
  options: ExecuteStepOptions = {},
): Promise<StepOutcome> {
  const started = performance.now();
  const prepared = await prepareStep(step);
  if (!prepared.ok) {
    const first = prepared.errors[0]!;
    const failure: StepFailure = {
      statementIndex: -1,
      line: first.line,
      during: 'prepare',
      message: prepared.errors.map((error) => error.message).join('\n'),
      summary: `Step ${step.id} was not sent to the target: ${prepared.errors.map((error) => error.message).join('; ')}`,
      errors: prepared.errors,
      blockers: [],
      cancelled: false,
    };
    return { stepId: step.id, ok: false, mode: mode.kind, transactional: step.transactional, statements: [], completedCount: 0, failure, committed: false, durationMs: elapsed(started), connectionBroken: false };
  }
  if (runningSteps.has(client)) throw new Error(`a step is already running on this connection (step ${runningSteps.get(client)!.step.id})`);
  const execution = new StepExecution(client, step, prepared.statements, mode, hooks, options);
  runningSteps.set(client, execution);
  try {
    await execution.run();
  } finally {
    execution.finished = true;
    runningSteps.delete(client);
    execution.detachSignal();
  }
  return {
    stepId: step.id,
    ok: !execution.failure,
    mode: mode.kind,
    transactional: step.transactional,
    statements: execution.events,
    completedCount: execution.events.length,
    ...(execution.failure ? { failure: execution.failure } : {}),
    committed: execution.committed,
    durationMs: elapsed(started),
    ...(execution.pid !== undefined ? { backendPid: execution.pid } : {}),
    connectionBroken: execution.connectionBroken,
  };
}

/** Ends the step: carries the failure from where it happened to the transaction handling. */
class StepStopped extends Error {
  constructor(readonly failure: StepFailure) {
    super(failure.summary);
  }
}

interface SessionFacts {
  pid: number;
  serverVersion: number;
  /** 'I' idle, 'T' in a transaction block, 'E' in a failed one. */
  transactionStatus: 'I' | 'T' | 'E';
}

class StepExecution {
  readonly events: StatementEvent[] = [];
  failure?: StepFailure;
  committed = false;
  connectionBroken = false;
  pid?: number;
  cancelRequested = false;
  finished = false;
  /** The statement on the wire, if any: only then is pg_cancel_backend worth sending. */
  inFlight = false;
  private cancelling = false;
  private readonly onAbort?: () => void;

  constructor(
    private readonly client: pg.ClientBase,
    readonly step: StepToRun,
    private readonly statements: SqlStatement[],
    private readonly mode: TransactionMode,
    private readonly hooks: ExecuteStepHooks,
    private readonly options: ExecuteStepOptions,
  ) {
    const signal = options.signal;
    if (signal) {
      const pool = options.cancelPool ?? options.blockerProbe;
      this.onAbort = () => (pool ? this.requestCancel(pool) : (this.cancelRequested = true));
      if (signal.aborted) this.cancelRequested = true;
      else signal.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  detachSignal(): void {
    if (this.onAbort) this.options.signal?.removeEventListener('abort', this.onAbort);
  }

  requestCancel(pool: pg.Pool): void {
    this.cancelRequested = true;
    if (this.cancelling) return;
    this.cancelling = true;
    void (async () => {
      const deadline = Date.now() + CANCEL_RETRY_FOR_MS;
      while (!this.finished && Date.now() < deadline) {
        if (this.inFlight && this.pid !== undefined) await cancelBackend(pool, this.pid).catch(() => false);
        await sleep(CANCEL_RETRY_EVERY_MS);
      }
    })();
  }

  async run(): Promise<void> {
    if (this.cancelRequested) {
      this.failure = this.cancelledBefore(0, 'setup');
      return;
    }
    let session: SessionFacts;
    try {
      session = await this.sessionFacts();
    } catch (error) {
      this.failure = this.setupFailure(error, 'could not read the session before the step');
      return;
    }
    const refusal = this.refusalFor(session);
    if (refusal) {
      this.failure = refusal;
      return;
    }
    try {
      if (this.mode.kind === 'caller') await this.runInCallerTransaction(session);
      else if (this.step.transactional) await this.runInOwnTransaction(session);
      else await this.runStatementByStatement(session);
    } catch (error) {
      this.failure = error instanceof StepStopped ? error.failure : this.setupFailure(error, 'the step stopped unexpectedly');
    }
  }

  private async sessionFacts(): Promise<SessionFacts> {
    const { rows } = await this.client.query<{ pid: number; version: number }>(
      `select pg_backend_pid() as pid, current_setting('server_version_num')::int as version`,
    );
    const pid = Number(rows[0]?.pid);
    backendPids.set(this.client, pid);
    this.pid = pid;
    const status = this.client.getTransactionStatus?.() ?? (await this.transactionStatusFromServer());
    return { pid, serverVersion: Number(rows[0]?.version), transactionStatus: status };
  }

  /** Without the protocol's status: the first command of a transaction shares its start time. Simple protocol on purpose. */
  private async transactionStatusFromServer(): Promise<'I' | 'T'> {
    const { rows } = await this.client.query<{ outside: boolean }>('select transaction_timestamp() = statement_timestamp() as outside');
    return rows[0]?.outside ? 'I' : 'T';
  }

  private refusalFor(session: SessionFacts): StepFailure | undefined {
    const refuse = (message: string): StepFailure => ({
      statementIndex: -1,
      line: 0,
      during: 'setup',
      message,
      summary: `Step ${this.step.id} was not run: ${message}`,
      blockers: [],
      cancelled: false,
    });
    if (this.mode.kind === 'caller') {
      if (session.transactionStatus === 'I') return refuse('caller mode needs an open transaction on the connection (a rehearsal begins one); without it every statement would commit');
      if (session.transactionStatus === 'E') return refuse("the caller's transaction has already failed (an earlier error); roll it back first");
      return undefined;
    }
    if (session.transactionStatus !== 'I') {
      return refuse(
        'the connection is already inside a transaction; own mode begins and commits its own (for a rehearsal inside an open transaction use caller mode)',
      );
    }
    return undefined;
  }

  private async runInOwnTransaction(session: SessionFacts): Promise<void> {
    await this.setup(() => this.setConnectionCheck(session), 'could not set client_connection_check_interval');
    await this.setup(() => this.client.query('begin'), 'BEGIN failed');
    try {
      await this.setup(() => this.setTimeouts(true), 'could not set lock_timeout and statement_timeout');
      if (this.hooks.afterBegin) {
        try {
          await this.hooks.afterBegin(this.client);
        } catch (error) {
          throw new StepStopped(this.phaseFailure(error, 'setup', 'the step was rolled back because its work after BEGIN failed (the backup of what it drops)'));
        }
      }
      for (const statement of this.statements) await this.runStatement(statement);
      this.stopIfCancelled(this.statements.length, 'before_commit');
      if (this.hooks.beforeCommit) {
        try {
          await this.hooks.beforeCommit(this.client);
        } catch (error) {
          throw new StepStopped(this.phaseFailure(error, 'before_commit', 'the step was rolled back because its before-commit work failed (the ledger row)'));
        }
      }
      this.stopIfCancelled(this.statements.length, 'commit');
    } catch (error) {
      await this.rollback();
      throw error;
    }
    let result: pg.QueryResult;
    try {
      result = await this.client.query('commit');
    } catch (error) {
      // Without a server answer, COMMIT may have happened.
      const lost = isConnectionLoss(error, this.client) || !sqlstateOf(error);
      if (isConnectionLoss(error, this.client)) this.connectionBroken = true;
      else await this.rollback();
      const failure = this.phaseFailure(
        error,
        'commit',
        lost
          ? 'the connection broke during COMMIT: whether the step committed is unknown; read the target ledger to settle it'
          : 'COMMIT failed and the step was rolled back',
      );
      throw new StepStopped({ ...failure, ...(lost ? { outcomeUnknown: true } : {}) });
    }
    // COMMIT of a transaction an error had aborted answers ROLLBACK without an error: an error a
    // hook swallowed must not pass for success.
    if (result.command === 'ROLLBACK') {
      const message = 'COMMIT answered ROLLBACK: an earlier error inside the transaction (caught by a hook) had aborted it; nothing was committed';
      throw new StepStopped({ statementIndex: -1, line: 0, during: 'commit', message, summary: `Step ${this.step.id}: ${message}`, blockers: [], cancelled: false });
    }
    this.committed = true;
  }

  private async runInCallerTransaction(session: SessionFacts): Promise<void> {
    // An error here would abort the caller's transaction, so optional settings go in a savepoint.
    if (session.serverVersion >= 140_000) {
      try {
        await this.client.query(`savepoint ${CALLER_SAVEPOINT}`);
        try {
          await this.setConnectionCheck(session);
          await this.client.query(`release savepoint ${CALLER_SAVEPOINT}`);
        } catch {
          await this.client.query(`rollback to savepoint ${CALLER_SAVEPOINT}`);
          await this.client.query(`release savepoint ${CALLER_SAVEPOINT}`);
        }
      } catch (error) {
        throw new StepStopped(this.setupFailure(error, 'could not prepare the caller transaction'));
      }
    }
    const previous = await this.setup(
      () => this.client.query<{ lock_timeout: string; statement_timeout: string }>(
        `select current_setting('lock_timeout') as lock_timeout, current_setting('statement_timeout') as statement_timeout`,
      ),
      'could not read lock_timeout and statement_timeout',
    );
    await this.setup(() => this.setTimeouts(true), 'could not set lock_timeout and statement_timeout');
    for (const statement of this.statements) await this.runStatement(statement);
    // The caller's later work (a rehearsal's checks) keeps its own timeouts.
    const before = previous.rows[0];
    if (before) {
      await this.setup(
        () => this.client.query(`select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`, [before.lock_timeout, before.statement_timeout]),
        'could not restore lock_timeout and statement_timeout',
      );
    }
  }

  private async runStatementByStatement(session: SessionFacts): Promise<void> {
    await this.setup(() => this.setConnectionCheck(session), 'could not set client_connection_check_interval');
    await this.setup(() => this.setTimeouts(false), 'could not set lock_timeout and statement_timeout');
    try {
      for (const statement of this.statements) {
        const event = await this.runStatement(statement);
        if (this.hooks.onStatementCommitted) {
          try {
            await this.hooks.onStatementCommitted(event);
          } catch (error) {
            throw new StepStopped(this.phaseFailure(error, 'hook', `the step stopped after statement ${statement.index + 1} (line ${statement.startLine}, committed) because recording it failed`, statement));
          }
        }
      }
      this.committed = true;
    } finally {
      if (!this.connectionBroken) {
        await this.client.query('reset lock_timeout').catch(() => {});
        await this.client.query('reset statement_timeout').catch(() => {});
      }
    }
  }

  private async setConnectionCheck(session: SessionFacts): Promise<void> {
    if (session.serverVersion < 140_000) return;
    try {
      await this.client.query(`select set_config('client_connection_check_interval', $1, false)`, [String(CONNECTION_CHECK_INTERVAL_MS)]);
    } catch (error) {
      // A server on a platform without the check (no POLLRDHUP) refuses a non-zero value: run without it.
      if (this.mode.kind === 'caller' || !sqlstateOf(error)) throw error;
    }
  }

  private setTimeouts(local: boolean): Promise<pg.QueryResult> {
    return this.client.query(`select set_config('lock_timeout', $1, $3), set_config('statement_timeout', $2, $3)`, [
      String(Math.max(0, Math.round(this.step.lockTimeoutMs))),
      String(Math.max(0, Math.round(this.step.statementTimeoutMs))),
      local,
    ]);
  }

  private async setup<T>(work: () => Promise<T>, what: string): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (error instanceof StepStopped) throw error;
      throw new StepStopped(this.setupFailure(error, what));
    }
  }

  private async runStatement(statement: SqlStatement): Promise<StatementEvent> {
    this.stopIfCancelled(statement.index, 'statement');
    const pid = this.pid!;
    if (this.hooks.onStatementStart) {
      try {
        await this.hooks.onStatementStart({
          stepId: this.step.id,
          index: statement.index,
          line: statement.startLine,
          endLine: statement.endLine,
          sql: statement.sql,
          backendPid: pid,
        });
      } catch (error) {
        throw new StepStopped(this.phaseFailure(error, 'hook', `statement ${statement.index + 1} (line ${statement.startLine}) was not sent because recording its start failed`, statement));
      }
    }
    const notices: NoticeInfo[] = [];
    const onNotice = (notice: NoticeFields) => notices.push(noticeInfo(notice));
    const sampler = this.options.blockerProbe ? new BlockerSampler(this.options.blockerProbe, pid) : undefined;
    const startedAt = new Date().toISOString();
    const started = performance.now();
    let result: pg.QueryResult;
    this.client.on('notice', onNotice);
    this.inFlight = true;
    try {
      // Extended protocol: the server takes exactly one statement per message, whatever the splitter decided.
      result = await this.client.query({ text: statement.sql, queryMode: 'extended' } as pg.QueryConfig);
    } catch (error) {
      this.inFlight = false;
      const durationMs = elapsed(started);
      const blockers = (await sampler?.stop()) ?? [];
      throw new StepStopped(this.statementFailure(error, statement, { blockers, notices, durationMs }));
    } finally {
      this.inFlight = false;
      this.client.removeListener('notice', onNotice);
    }
    const durationMs = elapsed(started);
    const blockers = (await sampler?.stop()) ?? [];
    const event: StatementEvent = {
      stepId: this.step.id,
      index: statement.index,
      line: statement.startLine,
      endLine: statement.endLine,
      sql: statement.sql,
      durationMs,
      rowCount: result.rowCount ?? null,
      command: result.command ?? '',
      notices,
      startedAt,
      ...(blockers.length > 0 ? { blockers } : {}),
    };
    this.events.push(event);
    if (this.hooks.onStatement) {
      try {
        await this.hooks.onStatement(event);
      } catch (error) {
        const committed = this.mode.kind === 'own' && !this.step.transactional;
        throw new StepStopped(
          this.phaseFailure(error, 'hook', `the step stopped after statement ${statement.index + 1} (line ${statement.startLine}${committed ? ', committed' : ''}) because recording it failed`, statement),
        );
      }
    }
    return event;
  }

  private stopIfCancelled(nextIndex: number, during: StepPhase): void {
    if (this.cancelRequested) throw new StepStopped(this.cancelledBefore(nextIndex, during));
  }

  private cancelledBefore(nextIndex: number, during: StepPhase): StepFailure {
    const statement = this.statements[nextIndex];
    const where = statement ? `before statement ${nextIndex + 1} (line ${statement.startLine}) started` : 'after its last statement, before COMMIT';
    const message = `cancelled by a person ${where}`;
    return {
      statementIndex: statement ? nextIndex : -1,
      line: statement?.startLine ?? 0,
      during,
      message,
      summary: `Step ${this.step.id} was ${message}${this.rollbackNote()}`,
      blockers: [],
      cancelled: true,
    };
  }

  private rollbackNote(): string {
    if (this.mode.kind === 'caller') return '; the caller rolls back its transaction';
    if (this.step.transactional) return '; its transaction was rolled back';
    return this.events.length > 0 ? `; ${this.events.length} statement(s) had completed and stay committed` : '; no statement had completed';
  }

  private statementFailure(error: unknown, statement: SqlStatement, extra: { blockers: BlockerInfo[]; notices: NoticeInfo[]; durationMs: number }): StepFailure {
    const details = serverError(error);
    const position = Number(details.position);
    const hasPosition = Number.isInteger(position) && position > 0;
    const line = hasPosition
      ? statement.startLine + newlinesBefore(statement.sql, position - 1)
      : (plpgsqlLine(statement, details.where) ?? statement.startLine);
    const sqlstate = details.sqlstate;
    const cancelled = sqlstate === '57014' && this.cancelRequested;
    const timeout = sqlstate === '55P03' && /lock timeout/i.test(details.message)
      ? 'lock_timeout'
      : sqlstate === '57014' && !cancelled && /statement timeout/i.test(details.message)
        ? 'statement_timeout'
        : undefined;
    const lost = isConnectionLoss(error, this.client);
    if (lost) this.connectionBroken = true;
    let why = '';
    if (cancelled) why = ' (cancelled by a person)';
    else if (timeout === 'statement_timeout') why = ` (the step's statement_timeout is ${this.step.statementTimeoutMs} ms)`;
    else if (sqlstate === '55P03') why = ` (the step's lock_timeout is ${this.step.lockTimeoutMs} ms${extra.blockers.length ? `; blocked by ${blockersInWords(extra.blockers)}` : ''})`;
    else if (sqlstate === '25001' && this.step.transactional) why = ' (it cannot run inside a transaction block: put it in a step of its own with transactional: false)';
    const code = sqlstate ? ` with SQLSTATE ${sqlstate}` : '';
    const note = !lost
      ? this.rollbackNote()
      : this.mode.kind === 'own' && !this.step.transactional
        ? '; the connection broke, so whether the statement took effect is unknown'
        : '; the connection broke, and the server rolls back its open transaction';
    return {
      statementIndex: statement.index,
      line,
      during: 'statement',
      ...(sqlstate ? { sqlstate } : {}),
      message: details.message,
      ...(details.detail ? { detail: details.detail } : {}),
      ...(details.hint ? { hint: details.hint } : {}),
      ...(details.where ? { where: details.where } : {}),
      ...(hasPosition ? { position } : {}),
      summary: `Statement ${statement.index + 1} of step ${this.step.id}, line ${line}, failed${code}: ${details.message}${why}${note}`,
      blockers: extra.blockers,
      cancelled,
      ...(timeout ? { timeout } : {}),
      ...(lost && this.mode.kind === 'own' && !this.step.transactional ? { outcomeUnknown: true } : {}),
      durationMs: extra.durationMs,
      notices: extra.notices,
    };
  }

  private setupFailure(error: unknown, what: string): StepFailure {
    return this.phaseFailure(error, 'setup', what);
  }

  private phaseFailure(error: unknown, during: StepPhase, what: string, statement?: SqlStatement): StepFailure {
    const details = serverError(error);
    if (isConnectionLoss(error, this.client)) this.connectionBroken = true;
    return {
      statementIndex: statement?.index ?? -1,
      line: statement?.startLine ?? 0,
      during,
      ...(details.sqlstate ? { sqlstate: details.sqlstate } : {}),
      message: details.message,
      ...(details.detail ? { detail: details.detail } : {}),
      ...(details.hint ? { hint: details.hint } : {}),
      summary: `Step ${this.step.id}: ${what}${details.sqlstate ? ` (SQLSTATE ${details.sqlstate})` : ''}: ${details.message}`,
      blockers: [],
      cancelled: false,
    };
  }

  private async rollback(): Promise<void> {
    if (this.connectionBroken) return;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.client.query('rollback');
        return;
      } catch (error) {
        // A late pg_cancel_backend can land on the ROLLBACK itself: try once more.
        if (sqlstateOf(error) === '57014' && attempt === 0) continue;
        this.connectionBroken = true;
        return;
      }
    }
  }
}

/** The fields of pg's NoticeMessage that a notice keeps (pg does not export the type). */
interface NoticeFields {
  severity?: string;
  message?: string;
  detail?: string;
  hint?: string;
  code?: string;
  where?: string;
}

function noticeInfo(notice: NoticeFields): NoticeInfo {
  return {
    severity: notice.severity ?? 'NOTICE',
    message: notice.message ?? '',
    ...(notice.detail ? { detail: notice.detail } : {}),
    ...(notice.hint ? { hint: notice.hint } : {}),
    ...(notice.code ? { sqlstate: notice.code } : {}),
    ...(notice.where ? { where: notice.where } : {}),
  };
}

interface ServerErrorDetails {
  sqlstate?: string;
  message: string;
  detail?: string;
  hint?: string;
  where?: string;
  position?: string;
}

function serverError(error: unknown): ServerErrorDetails {
  const fields = (error ?? {}) as { detail?: unknown; hint?: unknown; where?: unknown; position?: unknown };
  const text = (value: unknown) => (typeof value === 'string' && value ? value : undefined);
  const sqlstate = sqlstateOf(error);
  const detail = text(fields.detail);
  const hint = text(fields.hint);
  const where = text(fields.where);
  const position = text(fields.position);
  return {
    ...(sqlstate ? { sqlstate } : {}),
    message: error instanceof Error ? error.message : String(error),
    ...(detail ? { detail } : {}),
    ...(hint ? { hint } : {}),
    ...(where ? { where } : {}),
    ...(position ? { position } : {}),
  };
}

function sqlstateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The session is gone: pg closed the client, the server sent a FATAL error (pg_terminate_backend:
 * 57P01) or a connection-class SQLSTATE. What was in flight may or may not have taken effect.
 */
function isConnectionLoss(error: unknown, client: pg.ClientBase): boolean {
  const code = sqlstateOf(error);
  const severity = (error as { severity?: unknown } | undefined)?.severity;
  return (
    !isQueryable(client) ||
    severity === 'FATAL' ||
    severity === 'PANIC' ||
    code?.startsWith('08') === true ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03'
  );
}

/** pg marks a client that lost its connection; a pooled client without the flag counts as usable. */
function isQueryable(client: pg.ClientBase): boolean {
  const state = client as unknown as { _queryable?: boolean; _ending?: boolean; _ended?: boolean };
  return state._queryable !== false && state._ending !== true && state._ended !== true;
}

/** Newlines among the first `codePoints` characters: PostgreSQL counts its error position in characters. */
function newlinesBefore(text: string, codePoints: number): number {
  let count = 0;
  let seen = 0;
  for (const char of text) {
    if (seen++ >= codePoints) break;
    if (char === '\n') count++;
  }
  return count;
}

/**
 * An error inside a DO block carries no position, but its context says "PL/pgSQL function
 * inline_code_block line N": line 1 is the line where the block's body (its string) opens.
 */
function plpgsqlLine(statement: SqlStatement, where: string | undefined): number | undefined {
  if (statement.kind !== 'DoStmt' || !where) return undefined;
  const match = /inline_code_block line (\d+)/.exec(where);
  if (!match) return undefined;
  try {
    const body = scanSync(statement.sql).tokens.find((token) => token.tokenName === 'SCONST');
    if (!body) return undefined;
    const bodyIndex = Buffer.from(statement.sql, 'utf8').subarray(0, body.start).toString('utf8').length;
    return statement.startLine + newlinesBefore(statement.sql.slice(0, bodyIndex), Number.MAX_SAFE_INTEGER) + Number(match[1]) - 1;
  } catch {
    return undefined;
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
