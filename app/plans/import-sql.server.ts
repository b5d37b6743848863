/**
 * What the runbook importer needs to know about each SQL statement it finds, read from
 * PostgreSQL's own parse tree (libpg-query), never from the text: whether it only reads (a
 * check) or changes something (a step), whether it cannot run inside a transaction
 * (CONCURRENTLY), which objects it creates (the plan's `objects`), and whether, as a check, it
 * probably does not prove what it says (a count over a join, a catalog look-up without schema).
 */
import { loadModule, parseSync } from 'libpg-query';
import { splitSql, type SqlSplitError, type SqlStatement } from '../sql/split-sql.server';
import type { PlanObjects } from './plan-schema';

type Node = Record<string, unknown>;

export interface AnalysedStatement extends SqlStatement {
  /** A SELECT (or SHOW) that writes nothing: it can be a check. */
  readOnly: boolean;
  /** BEGIN, COMMIT, … */
  transactionControl: boolean;
  /** Cannot run inside a transaction: its step runs statement by statement. */
  outsideTransaction: boolean;
  /** A CREATE INDEX CONCURRENTLY and what it builds. */
  concurrentIndex?: { schema?: string; name?: string; table?: string; ifNotExists: boolean };
  /** Objects the statement creates, for the plan's `objects` (schema-qualified ones only). */
  creates: Partial<{ [K in 'columns' | 'indexes' | 'functions' | 'constraints']: PlanObjects[K] }>;
  /** Why the statement, used as a check, may not prove what it claims. */
  doubts: string[];
}

export type AnalysedSql = { ok: true; statements: AnalysedStatement[] } | { ok: false; errors: SqlSplitError[] };

export async function analyseSql(sql: string): Promise<AnalysedSql> {
  const split = await splitSql(sql);
  if (!split.ok) return split;
  await loadModule();
  return { ok: true, statements: split.statements.map(analyse) };
}

function analyse(statement: SqlStatement): AnalysedStatement {
  let node: Node = {};
  try {
    node = ((parseSync(statement.sql) as { stmts?: { stmt?: Node }[] }).stmts?.[0]?.stmt ?? {}) as Node;
  } catch {
    // splitSql parsed the whole file; a statement that does not parse alone (never seen) is treated as a write.
  }
  const kind = statement.kind;
  const body = (node[kind] ?? {}) as Node;
  const analysed: AnalysedStatement = {
    ...statement,
    readOnly: kind === 'VariableShowStmt' || (kind === 'SelectStmt' && selectOnlyReads(body)),
    transactionControl: kind === 'TransactionStmt',
    outsideTransaction: false,
    creates: {},
    doubts: [],
  };
  switch (kind) {
    case 'IndexStmt': {
      const relation = body.relation as { schemaname?: string; relname?: string } | undefined;
      if (body.concurrent === true) {
        analysed.outsideTransaction = true;
        analysed.concurrentIndex = { schema: relation?.schemaname, name: body.idxname as string | undefined, table: relation?.relname, ifNotExists: body.if_not_exists === true };
      }
      if (relation?.schemaname && typeof body.idxname === 'string' && relation.relname) {
        analysed.creates.indexes = [{ schema: relation.schemaname, name: body.idxname, table: relation.relname, partial: body.whereClause !== undefined }];
      }
      break;
    }
    case 'DropStmt':
    case 'VacuumStmt':
    case 'CreatedbStmt':
    case 'DropdbStmt':
    case 'AlterSystemStmt':
      analysed.outsideTransaction = kind !== 'DropStmt' || body.concurrent === true;
      break;
    case 'ReindexStmt':
      analysed.outsideTransaction = ((body.params as Node[] | undefined) ?? []).some((param) => (param.DefElem as Node | undefined)?.defname === 'concurrently');
      break;
    case 'AlterTableStmt':
      describeAlterTable(body, analysed);
      break;
    case 'CreateFunctionStmt': {
      const names = stringsOf(body.funcname);
      if (names.length === 2) analysed.creates.functions = [{ schema: names[0]!, name: names[1]! }];
      break;
    }
  }
  if (analysed.readOnly) analysed.doubts.push(...countOverJoin(body), ...catalogLookupWithoutSchema(body));
  return analysed;
}

/** A SELECT without INTO, FOR UPDATE/SHARE or a data-modifying WITH. */
function selectOnlyReads(select: Node): boolean {
  if (select.intoClause || select.lockingClause) return false;
  const ctes = ((select.withClause as Node | undefined)?.ctes as Node[] | undefined) ?? [];
  return ctes.every((cte) => {
    const query = ((cte.CommonTableExpr as Node | undefined)?.ctequery ?? {}) as Node;
    return !('InsertStmt' in query || 'UpdateStmt' in query || 'DeleteStmt' in query || 'MergeStmt' in query);
  });
}

function describeAlterTable(body: Node, analysed: AnalysedStatement): void {
  const relation = body.relation as { schemaname?: string; relname?: string } | undefined;
  if (!relation?.schemaname || !relation.relname) return;
  const { schemaname: schema, relname: table } = relation;
  for (const command of (body.cmds as Node[] | undefined) ?? []) {
    const cmd = (command.AlterTableCmd ?? {}) as Node;
    const def = (cmd.def ?? {}) as Node;
    if (cmd.subtype === 'AT_AddColumn' && def.ColumnDef) {
      const column = def.ColumnDef as Node;
      const constraints = ((column.constraints as Node[] | undefined) ?? []).map((entry) => (entry.Constraint ?? {}) as Node);
      const notNull = column.is_not_null === true || constraints.some((constraint) => constraint.contype === 'CONSTR_NOTNULL' || constraint.contype === 'CONSTR_PRIMARY');
      const type = typeText(column.typeName as Node | undefined);
      if (typeof column.colname === 'string' && type) {
        (analysed.creates.columns ??= []).push({ schema, table, column: column.colname, type, nullable: !notNull });
      }
      for (const constraint of constraints) {
        if (typeof constraint.conname === 'string') (analysed.creates.constraints ??= []).push({ schema, name: constraint.conname, table });
      }
    }
    if (cmd.subtype === 'AT_AddConstraint' && def.Constraint) {
      const constraint = def.Constraint as Node;
      if (typeof constraint.conname === 'string') (analysed.creates.constraints ??= []).push({ schema, name: constraint.conname, table });
    }
  }
}

/** A column type as PostgreSQL's to_regtype reads it back: "pg_catalog.bpchar(3)", "text", "integer[]". */
function typeText(typeName: Node | undefined): string | undefined {
  if (!typeName) return undefined;
  const names = stringsOf(typeName.names);
  if (names.length === 0) return undefined;
  const modifiers = ((typeName.typmods as Node[] | undefined) ?? []).map((modifier) => ((modifier.A_Const as Node | undefined)?.ival as { ival?: number } | undefined)?.ival);
  const modifierText = modifiers.length > 0 && modifiers.every((value) => typeof value === 'number') ? `(${modifiers.join(',')})` : '';
  const arrayText = '[]'.repeat(((typeName.arrayBounds as unknown[] | undefined) ?? []).length);
  return `${names.join('.')}${modifierText}${arrayText}`;
}

function stringsOf(list: unknown): string[] {
  return ((list as Node[] | undefined) ?? []).flatMap((entry) => {
    const value = (entry.String as { sval?: string } | undefined)?.sval;
    return typeof value === 'string' ? [value] : [];
  });
}

function relationName(range: Node): string {
  const schema = typeof range.schemaname === 'string' ? `${range.schemaname}.` : '';
  return `${schema}${String(range.relname)}`;
}

const JOIN_WORDS: Record<string, string> = { JOIN_INNER: 'JOIN', JOIN_LEFT: 'LEFT JOIN', JOIN_RIGHT: 'RIGHT JOIN', JOIN_FULL: 'FULL JOIN' };

/**
 * `SELECT count(*) … FROM a JOIN b` counts one row per matching pair, not rows of `a`: the seed's
 * snapshot counted users × memberships as "user_count". Only the top level is judged.
 */
function countOverJoin(select: Node): string[] {
  const join = ((select.fromClause as Node[] | undefined) ?? []).map((item) => item.JoinExpr as Node | undefined).find(Boolean);
  if (!join) return [];
  const counted = ((select.targetList as Node[] | undefined) ?? []).flatMap((entry) => {
    const target = (entry.ResTarget ?? {}) as Node;
    const call = ((target.val ?? {}) as Node).FuncCall as Node | undefined;
    if (!call || call.agg_star !== true || call.agg_distinct === true || call.over) return [];
    if (stringsOf(call.funcname).at(-1) !== 'count') return [];
    return [typeof target.name === 'string' ? target.name : 'count'];
  });
  if (counted.length === 0) return [];
  const left = (join.larg as Node | undefined)?.RangeVar as Node | undefined;
  const right = (join.rarg as Node | undefined)?.RangeVar as Node | undefined;
  const joinWord = JOIN_WORDS[String(join.jointype)] ?? 'JOIN';
  const over = left && right ? `${relationName(left)} ${joinWord} ${relationName(right)}` : `a ${joinWord}`;
  const leftName = left ? relationName(left) : 'the first table';
  return [
    `COUNT(*) as ${counted.join(', ')} over ${over} counts one row per ${leftName} row and matching row${joinWord === 'LEFT JOIN' ? ` (plus ${leftName} rows with none)` : ''}, not ${leftName} rows: ` +
      `wherever a row has several matches the number is too high. Count what the column's name says (a count of each table on its own, or count(DISTINCT …) of the key)`,
  ];
}

/** Catalog views that hold objects of every schema, and the columns that name an object and its schema. */
const CATALOG_LOOKUPS: Record<string, { names: string[]; schema: string; what: string }> = {
  pg_indexes: { names: ['tablename', 'indexname'], schema: 'schemaname', what: 'index' },
  pg_tables: { names: ['tablename'], schema: 'schemaname', what: 'table' },
  pg_views: { names: ['viewname'], schema: 'schemaname', what: 'view' },
  columns: { names: ['table_name'], schema: 'table_schema', what: 'table' },
  tables: { names: ['table_name'], schema: 'table_schema', what: 'table' },
  routines: { names: ['routine_name'], schema: 'routine_schema', what: 'function' },
  table_constraints: { names: ['table_name', 'constraint_name'], schema: 'table_schema', what: 'constraint' },
};

/** `… FROM pg_indexes WHERE tablename = 'users'` also finds another schema's users table (the seed's Step 6). */
function catalogLookupWithoutSchema(select: Node): string[] {
  const doubts: string[] = [];
  const referenced = new Set(columnNames(select.whereClause));
  for (const item of (select.fromClause as Node[] | undefined) ?? []) {
    const range = item.RangeVar as Node | undefined;
    if (!range) continue;
    const lookup = CATALOG_LOOKUPS[String(range.relname)];
    const schemaOk = range.relname === 'columns' || range.relname === 'tables' || range.relname === 'routines' || range.relname === 'table_constraints' ? range.schemaname === 'information_schema' : range.schemaname === undefined || range.schemaname === 'pg_catalog';
    if (!lookup || !schemaOk) continue;
    const byName = lookup.names.filter((name) => referenced.has(name));
    if (byName.length === 0 || referenced.has(lookup.schema)) continue;
    doubts.push(
      `It looks ${relationName(range)} up by ${byName.join(' and ')} without ${lookup.schema}: ${/^[aeiou]/.test(lookup.what) ? 'an' : 'a'} ${lookup.what} of that name in another schema passes it too. Add ${lookup.schema} = '<schema>'`,
    );
  }
  return doubts;
}

/** The last name of every column reference under a node. */
function columnNames(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(columnNames);
  if (node === null || typeof node !== 'object') return [];
  const record = node as Node;
  if (record.ColumnRef) {
    const last = stringsOf((record.ColumnRef as Node).fields).at(-1);
    return last ? [last] : [];
  }
  return Object.values(record).flatMap(columnNames);
}
