/**
 * A batched_backfill step with `until: no_rows` (docs/decisions/026): the file's UPDATE takes the
 * next `:batch_size` rows that still need it and runs again until a batch changes nothing.
 *
 *   UPDATE s.t SET c = … WHERE id IN (
 *     SELECT id FROM s.t WHERE <needs it> LIMIT :batch_size FOR UPDATE SKIP LOCKED)
 *
 * Sound against its traps:
 * - "needs it" must be a condition the UPDATE itself makes false. The loader requires it to read a
 *   column the UPDATE sets, on every branch of an OR (analyseNoRowsUpdate); and at run time each
 *   batch counts, inside its own transaction, how many of the rows it changed still need it. A
 *   batch that took no row out of the condition is "no progress"; the second in a row is rolled
 *   back and stops the step, naming it (rows changed over and over would otherwise loop forever).
 *   A concurrent writer adding rows that need it never looks like "no progress": only the batch's
 *   own rows are counted.
 * - Rows another session held locked are skipped by SKIP LOCKED; when the walk ends, a final pass
 *   runs the same UPDATE without SKIP LOCKED (waiting at most the step's lock_timeout per batch,
 *   retried like any batch), until a batch changes nothing.
 * - Progress: rows done, and the rows still to do from the planner's estimate (EXPLAIN, as fresh
 *   as the table's statistics), marked as an estimate; or exact from the plan's `remaining_sql`.
 *
 * The data is the cursor: a stopped walk (failure, cancel, killed process) goes on in a new run
 * with the rows that still need it. Pause, resume, cancel, retries after lock_timeout and progress
 * events are the keyset walk's (batched-backfill.server.ts, backfill-pause.server.ts).
 */
import { performance } from 'node:perf_hooks';
import { loadModule, parseSync, scanSync } from 'libpg-query';
import pg from 'pg';
import type { BatchedBackfillStep } from '../plans/plan-schema';
import { BlockerSampler } from '../targets/lock-waits.server';
import { NO_ROWS_PLACEHOLDERS, translateBatchTemplate } from './batch-template.server';
import { BackfillPauseGate } from './backfill-pause.server';
import type { BlockerInfo, ExecuteStepHooks, ExecuteStepOptions, StatementEvent, StepFailure, StepToRun } from './execute-step.server';
import { splitOrProblems } from './sql-step.server';
import { backfillFailure } from './backfill-failure.server';
import { retryDelayMs, sleepUnlessCancelled, type KindOutcome, type StepKindContext, type StepSqlProblem } from './step-kind';

const PROGRESS_EVERY_MS = 1_000;
const CONNECTION_CHECK_INTERVAL_MS = 2_000;
/** Batches in a row that took no row out of "needs it" before the step stops. */
const NO_PROGRESS_LIMIT = 2;
/** Keys quoted when a batch is named. */
const KEYS_NAMED = 5;

const SHAPE =
  'UPDATE <schema>.<table> SET … WHERE <key> IN (SELECT <key> FROM <schema>.<table> WHERE <needs it> LIMIT :batch_size FOR UPDATE SKIP LOCKED)';

/** What the engine sends for an until-no-rows step, derived from the file once (the loader derives the same). */
export interface NoRowsStatements {
  /** The UPDATE as written, with RETURNING of the changed rows' keys. */
  walkSql: string;
  /** The same without SKIP LOCKED (the final pass waits for locked rows, under lock_timeout). */
  finalPassSql: string;
  /** Of the keys given ($1), those that still need it (inside the batch's transaction). */
  stillNeededSql: string;
  /** EXPLAIN of the rows that still need it: the planner's estimate of what is left. */
  estimateSql: string;
  /** The "needs it" condition, as written. */
  condition: string;
  line: number;
  endLine: number;
}

type Node = Record<string, unknown>;
const asNode = (value: unknown): Node | undefined => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Node) : undefined);
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const child = (node: Node | undefined, key: string): Node | undefined => asNode(node?.[key]);

/** A column reference's names, e.g. ["s", "slug"]. */
function columnRefNames(node: Node | undefined): string[] | undefined {
  const ref = child(node, 'ColumnRef');
  if (!ref) return undefined;
  return asList(ref.fields).map((field) => String(child(asNode(field), 'String')?.sval ?? '*'));
}

/** Every node of a given type under `value` (the parse tree is plain JSON). */
function nodesOf(value: unknown, type: string, found: Node[] = []): Node[] {
  if (Array.isArray(value)) for (const item of value) nodesOf(item, type, found);
  else if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value as Node)) {
      if (key === type && asNode(item)) found.push(item as Node);
      nodesOf(item, type, found);
    }
  }
  return found;
}

/**
 * Whether the UPDATE's own change can make the condition false: a column it sets is read by the
 * condition, in at least one operand of an AND, and in every operand of an OR (a branch that reads
 * none of them would keep its rows "needing it" however often they are updated).
 */
function readsAssignedColumn(condition: unknown, assigned: ReadonlySet<string>): boolean {
  const bool = child(asNode(condition), 'BoolExpr');
  if (bool) {
    const args = asList(bool.args);
    if (bool.boolop === 'OR_EXPR') return args.every((arg) => readsAssignedColumn(arg, assigned));
    return args.some((arg) => readsAssignedColumn(arg, assigned));
  }
  return nodesOf(condition, 'ColumnRef').some((ref) => {
    const names = asList(ref.fields).map((field) => String(child(asNode(field), 'String')?.sval ?? '*'));
    return assigned.has(names.at(-1)!);
  });
}

interface Token {
  start: number;
  end: number;
  text: string;
  keyword: boolean;
}

const isKeyword = (token: Token | undefined, word: string) => token?.keyword === true && token.text.toUpperCase() === word;

type Analysis = { ok: true; statements: NoRowsStatements } | { ok: false; problems: StepSqlProblem[] };

/** The loader's check of an until-no-rows step: its file (with :batch_size), and its remaining_sql. */
export async function validateUntilNoRows(step: Record<string, unknown>, fileSql: string): Promise<StepSqlProblem[]> {
  const template = await translateBatchTemplate(fileSql, NO_ROWS_PLACEHOLDERS);
  if (!template.ok) return template.errors.map((error) => ({ line: error.line, message: error.message }));
  if (!template.uses.includes('batch_size')) {
    const split = await splitOrProblems(template.sql);
    const line = split.ok ? split.statements.statements[0]?.startLine : undefined;
    return [{ line, message: `The UPDATE does not use :batch_size: until no rows are left, each batch takes the next :batch_size rows that still need it (${SHAPE}); the size is sent as a bind parameter.` }];
  }
  const analysed = await analyseNoRowsStatement(step, template.sql);
  const problems = analysed.ok ? [] : [...analysed.problems];
  if (typeof step.remaining_sql === 'string') {
    const split = await splitOrProblems(step.remaining_sql);
    const count = split.ok ? split.statements.statements : [];
    if (!split.ok || count.length !== 1 || count[0]!.kind !== 'SelectStmt') {
      problems.push({ message: `remaining_sql is one read-only query whose first column counts the rows that still need the update (e.g. SELECT count(*) FROM … WHERE <needs it>)${split.ok ? `, not ${count.length} statement(s)${count[0] ? ` starting with a ${count[0].kind}` : ''}` : `: ${split.problems.map((problem) => problem.message).join(' ')}`}.` });
    }
  }
  return problems;
}

/** The outcome of an until-no-rows step whose file the engine would not run (the loader refuses it too). */
export function refusedUntilNoRows(step: BatchedBackfillStep, problems: StepSqlProblem[]): KindOutcome {
  const message = problems.map((problem) => problem.message).join(' ');
  return {
    stepId: step.id,
    ok: false,
    mode: 'own',
    transactional: false,
    statements: [],
    completedCount: 0,
    committed: false,
    durationMs: 0,
    connectionBroken: false,
    attempts: 0,
    failure: { statementIndex: -1, line: problems[0]?.line ?? 0, during: 'prepare', message, summary: `Step ${step.id} was not run: ${message}`, blockers: [], cancelled: false },
  };
}

/**
 * Checks an until-no-rows UPDATE (its placeholder already $1) against the shape it must have and
 * derives what the engine sends. The loader (validateUntilNoRows) and the engine (run) both call
 * this, so a file that loads is one the engine runs, and the engine runs none the loader refuses.
 */
export async function analyseNoRowsStatement(step: { table?: unknown; key?: unknown }, translatedSql: string): Promise<Analysis> {
  const fail = (problems: StepSqlProblem[]) => ({ ok: false as const, problems });
  const split = await splitOrProblems(translatedSql);
  if (!split.ok) return fail(split.problems);
  const statements = split.statements.statements;
  if (statements.length !== 1 || statements[0]!.kind !== 'UpdateStmt') {
    return fail([
      {
        line: statements[1]?.startLine ?? statements[0]?.startLine,
        message: `A batched_backfill step's file is exactly one UPDATE statement, run once per batch (found ${statements.length} statement(s)${statements[0] ? `, the first a ${statements[0].kind}` : ''}). Until no rows are left, it reads: ${SHAPE}.`,
      },
    ]);
  }
  const statement = statements[0]!;
  const line = statement.startLine;
  const problem = (message: string, at = line) => fail([{ line: at, message }]);

  await loadModule();
  const text = statement.sql;
  const bytes = Buffer.from(text, 'utf8');
  const lineAt = (byte: number) => line + (bytes.subarray(0, byte).toString('utf8').match(/\n/g)?.length ?? 0);
  const tree = parseSync(text) as { stmts?: { stmt?: { UpdateStmt?: Node } }[] };
  const update = tree.stmts?.[0]?.stmt?.UpdateStmt ?? {};
  const relation = child(update, 'relation');
  const table = asNode(step.table) ?? {};
  const key = typeof step.key === 'string' ? step.key : undefined;
  const schemaName = relation?.schemaname as string | undefined;
  const tableName = relation?.relname as string | undefined;
  if (typeof table.schema === 'string' && typeof table.name === 'string' && (schemaName !== table.schema || tableName !== table.name)) {
    return problem(`The UPDATE updates ${tableName ? `${schemaName ?? '(no schema)'}.${tableName}` : 'an unknown table'}, but the step walks ${table.schema}.${table.name}: update the step's table, schema-qualified.`);
  }
  if (update.withClause) return problem('The UPDATE has a WITH clause: until no rows are left, the UPDATE is one plain statement (' + SHAPE + ').');
  if (asList(update.fromClause).length > 0) {
    return problem(`The UPDATE has a FROM clause: each batch must change exactly the rows its subquery took, so read other tables in the SET (a scalar subquery) instead (${SHAPE}).`);
  }
  if (update.returningClause || asList(update.returningList).length > 0) return problem('The UPDATE has a RETURNING clause: Runsheet adds its own, to count which rows still need it. Remove it.');

  const sublink = child(child(update, 'whereClause'), 'SubLink');
  const operator = asList(sublink?.operName).map((name) => child(asNode(name), 'String')?.sval);
  const select = child(child(sublink, 'subselect'), 'SelectStmt');
  const shapeProblem = (what: string) => problem(`The UPDATE's WHERE ${what}: until no rows are left it is exactly ${SHAPE}.`);
  if (!sublink || sublink.subLinkType !== 'ANY_SUBLINK' || !(operator.length === 0 || (operator.length === 1 && operator[0] === '=')) || !select) {
    return shapeProblem('is not "<key> IN (SELECT …)"');
  }
  const tested = columnRefNames(child(sublink, 'testexpr'));
  if (!tested || (key !== undefined && tested.at(-1) !== key)) return shapeProblem(`does not test the step's key${key ? ` ${key}` : ''} ("${key ?? '<key>'} IN (SELECT ${key ?? '<key>'} …)")`);
  const from = asList(select.fromClause).map((item) => child(asNode(item), 'RangeVar'));
  const source = from[0];
  if (from.length !== 1 || !source || source.schemaname !== schemaName || source.relname !== tableName) {
    return shapeProblem(`subquery does not read the UPDATE's own table, schema-qualified (FROM ${schemaName ?? '<schema>'}.${tableName ?? '<table>'})`);
  }
  const picked = asList(select.targetList).map((target) => columnRefNames(child(child(asNode(target), 'ResTarget'), 'val')));
  if (picked.length !== 1 || !picked[0] || (key !== undefined && picked[0].at(-1) !== key)) return shapeProblem(`subquery does not select the key alone (SELECT ${key ?? '<key>'})`);
  if (select.op !== 'SETOP_NONE' || select.withClause || asList(select.distinctClause).length > 0 || asList(select.groupClause).length > 0 || select.havingClause || asList(select.windowClause).length > 0 || select.limitOffset) {
    return shapeProblem('subquery has more than WHERE, ORDER BY, LIMIT and FOR UPDATE (no DISTINCT, GROUP BY, HAVING, WINDOW, OFFSET, WITH or set operation)');
  }
  if (!select.whereClause) return shapeProblem('subquery has no WHERE: it must say which rows still need the update');
  if (child(child(select, 'limitCount'), 'ParamRef')?.number !== 1) return shapeProblem('subquery\'s LIMIT is not :batch_size');
  if (nodesOf(update, 'ParamRef').length !== 1) return problem(':batch_size is used outside the subquery\'s LIMIT: it is the batch size, and only that.');
  const locking = asList(select.lockingClause).map((clause) => child(asNode(clause), 'LockingClause'));
  const lock = locking[0];
  if (locking.length !== 1 || !lock || !['LCS_FORUPDATE', 'LCS_FORNOKEYUPDATE'].includes(String(lock.strength)) || lock.waitPolicy !== 'LockWaitSkip' || asList(lock.lockedRels).length > 0) {
    return shapeProblem('subquery does not end with FOR UPDATE SKIP LOCKED (or FOR NO KEY UPDATE SKIP LOCKED): rows another session holds must be skipped, not waited for (the final pass takes them)');
  }

  const assigned = new Set(asList(update.targetList).map((target) => String(child(asNode(target), 'ResTarget')?.name ?? '')));
  const updateRef = (child(relation, 'alias')?.aliasname as string | undefined) ?? tableName!;
  const sourceAlias = child(source, 'alias')?.aliasname as string | undefined;
  const condition = select.whereClause;

  // Where the condition sits in the text: the subquery's WHERE … up to its ORDER BY, LIMIT or FOR.
  let tokens: Token[];
  try {
    tokens = scanSync(text).tokens.map((token) => ({ start: token.start, end: token.end, text: token.text, keyword: token.keywordName !== 'NO_KEYWORD' }));
  } catch {
    return shapeProblem('cannot be read by the scanner');
  }
  const sublinkAt = Number(sublink.location ?? 0);
  const open = tokens.findIndex((token) => token.start >= sublinkAt && token.text === '(');
  let depth = 0;
  let whereToken: Token | undefined;
  let conditionEnd: Token | undefined;
  let skip: Token | undefined;
  let locked: Token | undefined;
  for (let index = open; index >= 0 && index < tokens.length; index++) {
    const token = tokens[index]!;
    if (token.text === '(') depth++;
    if (token.text === ')') depth--;
    if (depth === 0) {
      conditionEnd ??= token;
      break;
    }
    if (depth !== 1) continue;
    if (!whereToken && isKeyword(token, 'WHERE')) whereToken = token;
    else if (whereToken && !conditionEnd && ['ORDER', 'LIMIT', 'FOR', 'OFFSET', 'FETCH'].some((word) => isKeyword(token, word))) conditionEnd = token;
    if (isKeyword(token, 'SKIP') && isKeyword(tokens[index + 1], 'LOCKED')) {
      skip = token;
      locked = tokens[index + 1];
    }
  }
  if (!whereToken || !conditionEnd || !skip || !locked) return shapeProblem('cannot be read');
  const conditionText = bytes.subarray(whereToken.end, conditionEnd.start).toString('utf8').trim();
  const conditionLine = lineAt(whereToken.start);

  if (!readsAssignedColumn(condition, assigned)) {
    return problem(
      `The "needs it" condition (${conditionText}) does not read a column the UPDATE sets (${[...assigned].join(', ')})${
        child(asNode(condition), 'BoolExpr')?.boolop === 'OR_EXPR' ? ' in every branch of its OR' : ''
      }: the rows a batch changes would still need it, and the walk would never end. Write the condition the UPDATE makes false, e.g. WHERE slug IS NULL for SET slug = ….`,
      conditionLine,
    );
  }
  const sourceName = sourceAlias ?? tableName!;
  const readsOuterRow = nodesOf(condition, 'ColumnRef').some((ref) => {
    const names = columnRefNames({ ColumnRef: ref }) ?? [];
    return names.length >= 2 && names.at(-2) === updateRef;
  });
  if (updateRef !== sourceName && readsOuterRow) {
    return problem(`The "needs it" condition refers to the UPDATE's ${updateRef}: it must read the subquery's own rows (qualify its columns with ${sourceName}, or leave them unqualified).`, conditionLine);
  }

  const blanked = Buffer.from(bytes);
  blanked.fill(' ', skip.start, locked.end);
  const keyColumn = pg.escapeIdentifier(tested.at(-1)!);
  const returning = `\nRETURNING (${pg.escapeIdentifier(updateRef)}.${keyColumn})::text AS runsheet_key`;
  const qualified = `${pg.escapeIdentifier(schemaName!)}.${pg.escapeIdentifier(tableName!)}`;
  const fromSql = sourceAlias ? `${qualified} AS ${pg.escapeIdentifier(sourceAlias)}` : qualified;
  const sourceRef = sourceAlias ? pg.escapeIdentifier(sourceAlias) : qualified;
  return {
    ok: true,
    statements: {
      walkSql: `${text}${returning}`,
      finalPassSql: `${blanked.toString('utf8')}${returning}`,
      // $1 is inferred as an array of the key's type: the keys go back exactly as the UPDATE returned them.
      stillNeededSql: `SELECT (${sourceRef}.${keyColumn})::text AS runsheet_key FROM ${fromSql}\nWHERE ${sourceRef}.${keyColumn} = ANY ($1) AND (\n${conditionText}\n)\nORDER BY 1`,
      estimateSql: `EXPLAIN (FORMAT JSON) SELECT 1 FROM ${fromSql}\nWHERE ${conditionText}`,
      condition: conditionText,
      line,
      endLine: statement.endLine,
    },
  };
}

class BatchStopped extends Error {
  constructor(readonly failure: StepFailure) {
    super(failure.summary);
  }
}

interface Totals {
  /** Rows the batches took out of "needs it". */
  rowsDone: number;
  /** Rows the UPDATE changed (more than rowsDone when some still needed it afterwards). */
  rowsUpdated: number;
  batches: number;
}

/** Runs an until-no-rows step on the run's connection (its own transactions, one per batch). */
export async function runUntilNoRows(
  context: StepKindContext,
  step: BatchedBackfillStep,
  spec: StepToRun,
  statements: NoRowsStatements,
  hooks: ExecuteStepHooks,
  options: ExecuteStepOptions,
): Promise<KindOutcome> {
  return new NoRowsBackfill(context, step, spec, statements, hooks, options).run();
}

class NoRowsBackfill {
  private readonly started = performance.now();
  private readonly startedAt = new Date().toISOString();
  private readonly retries: number;
  private readonly pauseGate: BackfillPauseGate;
  private totals: Totals = { rowsDone: 0, rowsUpdated: 0, batches: 0 };
  private finalPassRows = 0;
  private remaining: number | null = null;
  /** The first estimate, and rows done since: the estimate falls with the rows done while the statistics are stale. */
  private firstEstimate: { remaining: number; rowsDone: number } | null = null;
  private noProgressStreak: { batch: number; rows: number; keys: string[] }[] = [];
  private lastProgressAt = 0;
  private connectionBroken = false;
  private pid?: number;
  private attempts = 1;
  private pass: 'walk' | 'final' = 'walk';

  constructor(
    private readonly context: StepKindContext,
    private readonly step: BatchedBackfillStep,
    private readonly spec: StepToRun,
    private readonly sql: NoRowsStatements,
    private readonly hooks: ExecuteStepHooks,
    private readonly options: ExecuteStepOptions,
  ) {
    this.retries = step.retries ?? context.planRetries;
    this.pauseGate = new BackfillPauseGate(context, step.id);
  }

  private get exact(): boolean {
    return this.step.remaining_sql !== undefined;
  }

  async run(): Promise<KindOutcome> {
    const { client } = this.context;
    try {
      this.pid = Number((await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]?.pid);
      await client.query(`select set_config('client_connection_check_interval', $1, false)`, [String(CONNECTION_CHECK_INTERVAL_MS)]).catch(() => {});
      const table = `${pg.escapeIdentifier(this.step.table.schema)}.${pg.escapeIdentifier(this.step.table.name)}`;
      const present = await client.query<{ oid: string | null }>('select to_regclass($1)::oid::text as oid', [table]);
      if (!present.rows[0]?.oid) throw new BatchStopped(this.failureOf(new Error(`the table ${this.step.table.schema}.${this.step.table.name} does not exist`), 'setup', 'could not prepare the backfill'));
      await this.measureRemaining();
    } catch (error) {
      if (error instanceof BatchStopped) return this.finish(error.failure);
      return this.finish(this.failureOf(error, 'setup', 'could not prepare the backfill'));
    }
    await this.context.log({
      type: 'backfill.started',
      payload: {
        stepId: this.step.id,
        table: `${this.step.table.schema}.${this.step.table.name}`,
        key: this.step.key,
        batchSize: this.step.batch_size,
        pauseMs: this.step.pause,
        lockTimeoutMs: this.step.lock_timeout,
        statementTimeoutMs: this.step.statement_timeout,
        retries: this.retries,
        lastKey: null,
        rowsDone: 0,
        total: this.remaining,
        ...(this.exact ? {} : { totalEstimated: true }),
        until: 'no_rows',
        condition: this.sql.condition,
      },
    });
    await this.reportProgress(true);
    try {
      await this.walk(this.sql.walkSql);
      this.pass = 'final';
      this.noProgressStreak = [];
      await this.context.log({
        type: 'backfill.final_pass',
        payload: {
          stepId: this.step.id,
          rowsDone: this.totals.rowsDone,
          lockTimeoutMs: this.step.lock_timeout,
          note: 'no unlocked row needs the update any more: the same UPDATE runs again without SKIP LOCKED, waiting for rows other sessions held (at most lock_timeout per batch), until a batch changes nothing',
        },
      });
      const before = this.totals.rowsDone;
      await this.walk(this.sql.finalPassSql);
      this.finalPassRows = this.totals.rowsDone - before;
    } catch (error) {
      if (error instanceof BatchStopped) return this.finish(error.failure);
      return this.finish(this.failureOf(error, 'statement', 'the backfill stopped'));
    }
    this.remaining = 0;
    await this.reportProgress(true, false);
    await this.context.log({
      type: 'backfill.completed',
      payload: {
        stepId: this.step.id,
        rowsDone: this.totals.rowsDone,
        rowsUpdated: this.totals.rowsUpdated,
        batches: this.totals.batches,
        lastKey: null,
        durationMs: this.elapsed(),
        pausedMs: Math.round(this.pauseGate.pausedMs),
        finalPassRows: this.finalPassRows,
      },
    });
    await this.hooks.onStatement?.(this.statementEvent());
    return this.finish(undefined);
  }

  /** Batches until one changes nothing. */
  private async walk(sql: string): Promise<void> {
    for (;;) {
      this.stopIfCancelled();
      await this.pauseGate.hold(() => ({ lastKey: null, ...this.totals }), { paused: () => this.reportProgress(true), stopIfCancelled: () => this.stopIfCancelled() });
      const rows = await this.batchWithRetries(sql);
      if (rows === 0) return;
      await this.reportProgress(false);
      if (this.step.pause > 0 && (await sleepUnlessCancelled(this.step.pause, this.context))) this.stopIfCancelled();
    }
  }

  private async batchWithRetries(sql: string): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.batch(sql);
      } catch (error) {
        if (!(error instanceof BatchStopped) || error.failure.sqlstate !== '55P03' || attempt > this.retries || this.connectionBroken) throw error;
        const delayMs = retryDelayMs(attempt);
        this.attempts++;
        await this.context.log({
          type: 'step.retry',
          payload: {
            stepId: this.step.id,
            attempt,
            retries: this.retries,
            delayMs,
            sqlstate: '55P03',
            message: error.failure.message,
            line: error.failure.line,
            blockers: error.failure.blockers,
            summary: error.failure.summary,
          },
        });
        if (await sleepUnlessCancelled(delayMs, this.context)) this.stopIfCancelled();
      }
    }
  }

  /** One batch in its own transaction: the UPDATE, then how many of its rows still need it; the rows it changed (0: done). */
  private async batch(sql: string): Promise<number> {
    const { client } = this.context;
    const number = this.totals.batches + 1;
    try {
      await client.query('begin');
    } catch (error) {
      throw new BatchStopped(this.failureOf(error, 'setup', 'BEGIN of a batch failed'));
    }
    let sampler: BlockerSampler | undefined;
    try {
      await client.query(`select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`, [String(this.step.lock_timeout), String(this.step.statement_timeout)]);
      sampler = this.options.blockerProbe && this.pid !== undefined ? new BlockerSampler(this.options.blockerProbe, this.pid) : undefined;
      let updated: pg.QueryResult<{ runsheet_key: string }>;
      try {
        updated = await client.query<{ runsheet_key: string }>({ text: sql, values: [this.step.batch_size] });
      } catch (error) {
        const blockers = (await sampler?.stop()) ?? [];
        sampler = undefined;
        throw new BatchStopped(this.failureOf(error, 'statement', `batch ${number} failed`, blockers));
      }
      await sampler?.stop();
      sampler = undefined;
      const keys = updated.rows.map((row) => row.runsheet_key);
      if (keys.length === 0) {
        await client.query('commit');
        return 0;
      }
      const still = (await client.query<{ runsheet_key: string }>({ text: this.sql.stillNeededSql, values: [keys] })).rows.map((row) => row.runsheet_key);
      if (still.length < keys.length) this.noProgressStreak = [];
      else {
        this.noProgressStreak.push({ batch: number, rows: keys.length, keys: keys.slice(0, KEYS_NAMED) });
        if (this.noProgressStreak.length >= NO_PROGRESS_LIMIT) throw await this.noProgress();
      }
      await client.query('commit');
      this.totals = { rowsDone: this.totals.rowsDone + (keys.length - still.length), rowsUpdated: this.totals.rowsUpdated + keys.length, batches: number };
      return keys.length;
    } catch (error) {
      await sampler?.stop();
      if (!this.connectionBroken) await client.query('rollback').catch(() => (this.connectionBroken = true));
      if (error instanceof BatchStopped) throw error;
      throw new BatchStopped(this.failureOf(error, 'statement', `batch ${number} failed`));
    }
  }

  /** The second batch in a row that left every row it changed still needing it: logged, rolled back, and the step stops naming it. */
  private async noProgress(): Promise<BatchStopped> {
    const [first, last] = [this.noProgressStreak[0]!, this.noProgressStreak.at(-1)!];
    const keys = (entry: { rows: number; keys: string[] }) => `${entry.keys.join(', ')}${entry.rows > entry.keys.length ? ', …' : ''}`;
    const message =
      `no progress: batch ${last.batch} (${last.rows} row(s), keys ${keys(last)}) changed rows that all still match "${this.sql.condition}", as batch ${first.batch} did (keys ${keys(first)}); ` +
      'the UPDATE does not make its own condition false for these rows, so the walk would never end. Batch ' +
      `${last.batch} was rolled back; fix the UPDATE or the condition, then run again (the rows already done stay done)`;
    await this.context.log({
      type: 'backfill.no_progress',
      payload: { stepId: this.step.id, batch: last.batch, rows: last.rows, keys: last.keys, previousBatch: first.batch, condition: this.sql.condition, rolledBack: true, note: message },
    });
    return new BatchStopped({
      statementIndex: 0,
      line: this.sql.line,
      during: 'statement',
      message,
      summary: `Step ${this.step.id}: ${message}`,
      blockers: [],
      cancelled: false,
    });
  }

  /** The rows still to do: the plan's exact count, else the planner's estimate (falling with the rows done while the statistics lag). */
  private async measureRemaining(): Promise<void> {
    const { client } = this.context;
    if (this.step.remaining_sql !== undefined) {
      await client.query('begin transaction read only');
      try {
        await client.query(`select set_config('statement_timeout', $1, true)`, [String(this.step.statement_timeout)]);
        const { rows, fields } = await client.query(this.step.remaining_sql);
        const value = Number(rows[0]?.[fields[0]?.name ?? '']);
        this.remaining = Number.isFinite(value) ? Math.max(0, Math.round(value)) : null;
      } finally {
        await client.query('rollback').catch(() => {});
      }
      return;
    }
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] }>(this.sql.estimateSql);
    const planned = Math.max(0, Math.round(Number(rows[0]?.['QUERY PLAN']?.[0]?.Plan?.['Plan Rows'] ?? 0)));
    if (!this.firstEstimate) this.firstEstimate = { remaining: planned, rowsDone: this.totals.rowsDone };
    const falling = Math.max(0, this.firstEstimate.remaining - (this.totals.rowsDone - this.firstEstimate.rowsDone));
    this.remaining = Math.min(planned, falling);
  }

  private async reportProgress(force: boolean, measure = true): Promise<void> {
    const now = performance.now();
    if (!force && now - this.lastProgressAt < PROGRESS_EVERY_MS) return;
    this.lastProgressAt = now;
    // Between batches (no transaction open): a failed estimate keeps the last one.
    if (measure) await this.measureRemaining().catch(() => {});
    const activeMs = Math.max(1, this.elapsed() - this.pauseGate.pausedMs);
    const rate = this.totals.rowsDone > 0 ? (this.totals.rowsDone * 1000) / activeMs : null;
    const remaining = this.remaining;
    await this.context.log({
      type: 'progress',
      payload: {
        stepId: this.step.id,
        done: this.totals.rowsDone,
        total: remaining === null ? null : this.totals.rowsDone + remaining,
        rate: rate === null ? null : Math.round(rate * 10) / 10,
        etaMs: rate && remaining !== null ? Math.round((remaining / rate) * 1000) : null,
        updated: this.totals.rowsUpdated,
        batches: this.totals.batches,
        lastKey: null,
        ...(this.exact ? {} : { totalEstimated: true }),
        remaining,
        ...(this.pass === 'final' ? { finalPass: true } : {}),
      },
    });
  }

  private stopIfCancelled(): void {
    const by = this.context.cancelledBy();
    if (!by) return;
    const message = `cancelled by ${by} before batch ${this.totals.batches + 1}`;
    throw new BatchStopped({
      statementIndex: 0,
      line: this.sql.line,
      during: 'statement',
      message,
      summary: `Step ${this.step.id} was ${message}; ${this.totals.batches} batch(es) had committed and stay committed (a new run takes the rows that still need it)`,
      blockers: [],
      cancelled: true,
    });
  }

  private statementEvent(): StatementEvent {
    return {
      stepId: this.step.id,
      index: 0,
      line: this.sql.line,
      endLine: this.sql.endLine,
      sql: this.spec.sql,
      durationMs: this.elapsed(),
      rowCount: this.totals.rowsUpdated,
      command: 'UPDATE',
      notices: [],
      startedAt: this.startedAt,
    };
  }

  private finish(failure: StepFailure | undefined): KindOutcome {
    const ok = failure === undefined;
    return {
      stepId: this.step.id,
      ok,
      mode: 'own',
      transactional: false,
      statements: ok ? [this.statementEvent()] : [],
      completedCount: ok ? 1 : 0,
      ...(failure ? { failure } : {}),
      committed: ok,
      durationMs: this.elapsed(),
      ...(this.pid !== undefined ? { backendPid: this.pid } : {}),
      connectionBroken: this.connectionBroken,
      attempts: this.attempts,
      leftover: this.totals.batches > 0,
      detail: {
        backfill: {
          table: `${this.step.table.schema}.${this.step.table.name}`,
          key: this.step.key,
          until: 'no_rows',
          rowsDone: this.totals.rowsDone,
          rowsUpdated: this.totals.rowsUpdated,
          batches: this.totals.batches,
          finalPassRows: this.finalPassRows,
          complete: ok,
        },
      },
    };
  }

  private failureOf(error: unknown, during: StepFailure['during'], what: string, blockers: BlockerInfo[] = []): StepFailure {
    const { failure, connectionLost } = backfillFailure({
      error,
      during,
      what,
      blockers,
      cancelledBy: this.context.cancelledBy(),
      step: this.step,
      statementLine: this.sql.line,
      finalPass: this.pass === 'final',
      kept: `${this.totals.batches} batch(es) had committed and stay committed; a new run takes the rows that still need it`,
    });
    if (connectionLost) this.connectionBroken = true;
    return failure;
  }

  private elapsed(): number {
    return Math.round(performance.now() - this.started);
  }
}
