/**
 * The create_index_concurrently step: a failed CREATE INDEX CONCURRENTLY leaves an INVALID
 * index behind (queries ignore it, writes still maintain it), and a second run with IF NOT
 * EXISTS then "succeeds" without building anything. So the index's pg_index.indisvalid is read
 * by schema-qualified name before and after the build: an INVALID leftover is dropped (DROP
 * INDEX CONCURRENTLY) before building, and a build that does not end valid fails the step.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { CreateIndexConcurrentlyStep } from '../plans/plan-schema';
import { executeStep, type ExecuteStepHooks, type ExecuteStepOptions, type StepFailure, type StepOutcome, type StepToRun } from './execute-step.server';
import { indexTargetOf } from './batch-template.server';
import { splitOrProblems } from './sql-step.server';
import { refusedInTransaction, withLockTimeoutRetries, type KindOutcome, type StepKind, type StepKindContext } from './step-kind';

export interface IndexState {
  exists: boolean;
  /** A relation of that name exists but is not an index (a table, a sequence…). */
  notAnIndex: boolean;
  valid: boolean;
  ready: boolean;
  table: string | null;
  definition: string | null;
}

/** The index by schema and name (never by table name alone: other schemas have tables of the same name). */
export async function readIndexState(executor: pg.ClientBase | pg.Pool, index: { schema: string; name: string }): Promise<IndexState> {
  const { rows } = await executor.query<{ relkind: string; indisvalid: boolean | null; indisready: boolean | null; table_name: string | null; definition: string | null }>(
    `select c.relkind::text as relkind, i.indisvalid, i.indisready,
            tn.nspname || '.' || t.relname as table_name,
            case when c.relkind in ('i', 'I') then pg_catalog.pg_get_indexdef(c.oid) end as definition
       from pg_catalog.pg_class as c
       join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
       left join pg_catalog.pg_index as i on i.indexrelid = c.oid
       left join pg_catalog.pg_class as t on t.oid = i.indrelid
       left join pg_catalog.pg_namespace as tn on tn.oid = t.relnamespace
      where n.nspname = $1 and c.relname = $2`,
    [index.schema, index.name],
  );
  const row = rows[0];
  if (!row) return { exists: false, notAnIndex: false, valid: false, ready: false, table: null, definition: null };
  const isIndex = row.relkind === 'i' || row.relkind === 'I';
  return { exists: true, notAnIndex: !isIndex, valid: row.indisvalid === true, ready: row.indisready === true, table: row.table_name, definition: row.definition };
}

export async function createIndexConcurrentlyOnce(
  context: StepKindContext,
  step: CreateIndexConcurrentlyStep,
  spec: StepToRun,
  hooks: ExecuteStepHooks,
  options: ExecuteStepOptions,
): Promise<KindOutcome> {
  const started = performance.now();
  const name = `${step.index.schema}.${step.index.name}`;
  const refuse = (message: string, extra: Partial<StepFailure> = {}): KindOutcome => ({
    stepId: step.id,
    ok: false,
    mode: 'own',
    transactional: false,
    statements: [],
    completedCount: 0,
    committed: false,
    durationMs: Math.round(performance.now() - started),
    connectionBroken: false,
    attempts: 1,
    failure: { statementIndex: -1, line: 0, during: 'setup', message, summary: `Step ${step.id}: ${message}`, blockers: [], cancelled: false, ...extra },
  });

  let before: IndexState;
  try {
    before = await readIndexState(context.client, step.index);
  } catch (error) {
    return refuse(`could not read pg_index for ${name} before the build: ${(error as Error).message}`);
  }
  if (before.notAnIndex) return refuse(`${name} exists and is not an index: IF NOT EXISTS would skip the build and leave no index. Rename one of them.`);
  if (before.exists && before.valid) {
    await context.log({ type: 'index.already_valid', payload: { stepId: step.id, index: name, definition: before.definition, note: 'IF NOT EXISTS leaves it as it is; the verification checks its definition' } });
  }
  if (before.exists && !before.valid) {
    await context.log({ type: 'index.invalid_found', payload: {
      stepId: step.id,
      index: name,
      definition: before.definition,
      note: 'left INVALID by a failed CREATE INDEX CONCURRENTLY (IF NOT EXISTS would skip it and build nothing): dropped with DROP INDEX CONCURRENTLY before building again',
    } });
    const drop = await executeStep(
      context.client,
      { ...spec, sql: `DROP INDEX CONCURRENTLY IF EXISTS ${pg.escapeIdentifier(step.index.schema)}.${pg.escapeIdentifier(step.index.name)}` },
      { kind: 'own' },
      {},
      options,
    );
    if (!drop.ok) {
      const failure = drop.failure!;
      return { ...drop, attempts: 1, leftover: true, failure: { ...failure, summary: `Step ${step.id}: the INVALID index ${name} could not be dropped: ${failure.summary}` } };
    }
    await context.log({ type: 'index.dropped', payload: { stepId: step.id, index: name, durationMs: drop.durationMs } });
  }

  const outcome: StepOutcome = await executeStep(context.client, spec, { kind: 'own' }, hooks, options);
  let after: IndexState | undefined;
  try {
    after = outcome.connectionBroken ? undefined : await readIndexState(context.client, step.index);
  } catch {
    after = undefined;
  }
  const invalidNote =
    'pg_index.indisvalid is false: queries do not use the index, but every write still maintains it. The next attempt (a retry, or a new run) drops it and builds it again; a rollback drops it.';
  if (!outcome.ok) {
    if (!after?.exists || after.valid) return { ...outcome, attempts: 1 };
    await context.log({ type: 'index.invalid', payload: { stepId: step.id, index: name, sqlstate: outcome.failure?.sqlstate ?? null, definition: after.definition, note: invalidNote } });
    const failure = outcome.failure!;
    return {
      ...outcome,
      attempts: 1,
      leftover: true,
      detail: { index: name, valid: false },
      failure: { ...failure, summary: `${failure.summary}; it left the index ${name} INVALID (${invalidNote})` },
    };
  }
  if (!after?.exists || !after.valid) {
    const message = after
      ? after.exists
        ? `CREATE INDEX CONCURRENTLY ended without an error but ${name} is INVALID (${invalidNote})`
        : `CREATE INDEX CONCURRENTLY ended without an error but there is no index ${name}: the statement builds another index than the step names`
      : `CREATE INDEX CONCURRENTLY ended, but pg_index could not be read to confirm ${name} is valid`;
    if (after?.exists) await context.log({ type: 'index.invalid', payload: { stepId: step.id, index: name, sqlstate: null, definition: after.definition, note: invalidNote } });
    return {
      ...outcome,
      ok: false,
      committed: false,
      attempts: 1,
      leftover: after?.exists ?? true,
      detail: { index: name, valid: false },
      failure: { statementIndex: 0, line: outcome.statements[0]?.line ?? 0, during: 'statement', message, summary: `Step ${step.id}: ${message}`, blockers: [], cancelled: false },
    };
  }
  await context.log({ type: 'index.valid', payload: { stepId: step.id, index: name, table: after.table, definition: after.definition } });
  return { ...outcome, attempts: 1, detail: { index: name, valid: true, definition: after.definition } };
}

export const createIndexConcurrentlyStepKind: StepKind<CreateIndexConcurrentlyStep> = {
  kind: 'create_index_concurrently',
  async validate(step, fileSql) {
    const split = await splitOrProblems(fileSql);
    if (!split.ok) return split.problems;
    const statements = split.statements.statements;
    if (statements.length !== 1 || statements[0]!.kind !== 'IndexStmt') {
      return [
        {
          line: statements[1]?.startLine ?? statements[0]?.startLine,
          message: `A create_index_concurrently step's file is exactly one CREATE INDEX CONCURRENTLY statement (found ${statements.length} statement(s)${statements[0] ? `, the first a ${statements[0].kind}` : ''}): put other statements in their own steps.`,
        },
      ];
    }
    const statement = statements[0]!;
    const target = indexTargetOf(statement.sql);
    const index = (step.index ?? {}) as Record<string, unknown>;
    const problems: string[] = [];
    if (!target?.concurrent) problems.push('it lacks CONCURRENTLY (a plain CREATE INDEX blocks writes to the table while it builds)');
    if (!target?.ifNotExists) problems.push('it lacks IF NOT EXISTS (a retry after a valid build must change nothing)');
    if (!target?.schema) problems.push("its table is not schema-qualified (ON <schema>.<table>): the index lands in the table's schema, and the step looks it up there");
    if (typeof index.name === 'string' && target?.name !== index.name) problems.push(`it builds "${target?.name ?? '(no name)'}", not the step's index "${index.name}" (name the index in the statement)`);
    if (typeof index.schema === 'string' && target?.schema && target.schema !== index.schema) problems.push(`its table is in schema "${target.schema}", not the step's "${index.schema}"`);
    return problems.length > 0 ? [{ line: statement.startLine, message: `The CREATE INDEX on line ${statement.startLine} does not fit a create_index_concurrently step: ${problems.join('; ')}.` }] : [];
  },
  describe: (step) => `CREATE INDEX CONCURRENTLY ${step.index.schema}.${step.index.name}, outside any transaction`,
  startFacts: (step) => ({ kind: step.kind, index: `${step.index.schema}.${step.index.name}` }),
  sqlToRun: async (_step, fileSql) => fileSql,
  partialLedgerFirst: true,
  run: (input) =>
    input.mode.kind !== 'own'
      ? Promise.resolve(refusedInTransaction(input.step, input.spec))
      : withLockTimeoutRetries(input, () => createIndexConcurrentlyOnce(input.context, input.step, input.spec, input.hooks, input.options), () => true),
};
