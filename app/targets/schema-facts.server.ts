/**
 * Schema facts: the live state, on the target, of the objects a plan creates (its `objects`).
 * Every lookup names the schema (the seed's Step 6 found its index by table name only, and other
 * schemas have `users` tables too). Identifiers come from the plan, which is reviewed data; they
 * are still passed as bind parameters, and quoted with escapeIdentifier where one must be in the
 * SQL text (the backfill count).
 */
import pg from 'pg';
import type { PlanObjects } from '../plans/plan-schema';
import type { PlanLedgerState } from './ledger.server';

export interface ColumnFact {
  schema: string;
  table: string;
  column: string;
  exists: boolean;
  /** format_type(), e.g. "uuid", "character varying(255)". */
  dataType: string | null;
  nullable: boolean | null;
  /** Exists with the plan's type and nullability. */
  matchesPlan: boolean;
}

export interface IndexFact {
  schema: string;
  name: string;
  table: string;
  exists: boolean;
  /** pg_index.indisvalid: false after a failed CREATE INDEX CONCURRENTLY. */
  valid: boolean | null;
  ready: boolean | null;
  /** The partial index's WHERE, or null. */
  predicate: string | null;
  definition: string | null;
  /** Exists on the plan's table, valid, and partial when the plan says so. */
  matchesPlan: boolean;
}

export interface FunctionFact {
  schema: string;
  name: string;
  exists: boolean;
  /** regprocedure of every overload, e.g. "platform.set_user_active_org(uuid,uuid)". */
  signatures: string[];
  /** md5 over pg_get_functiondef of every overload (in signature order): changes when a body does. */
  definitionHash: string | null;
}

export interface ConstraintFact {
  schema: string;
  name: string;
  table: string;
  exists: boolean;
  /** pg_get_constraintdef, e.g. "FOREIGN KEY (active_org_id) REFERENCES platform.organizations(id) ON DELETE SET NULL". */
  definition: string | null;
}

export interface BackfillFact {
  schema: string;
  table: string;
  column: string;
  /** False when the table or column is missing: then the counts are null. */
  columnExists: boolean;
  total: number | null;
  withValue: number | null;
  /** ROUND(100.0 * COUNT(column) / COUNT(*), 2), as the seed's Step 4; null when there are no rows. */
  percentage: number | null;
}

export interface SchemaFacts {
  columns: ColumnFact[];
  indexes: IndexFact[];
  functions: FunctionFact[];
  constraints: ConstraintFact[];
  backfill?: BackfillFact;
  /** Columns, indexes, functions and constraints the plan names (the backfill is not an object). */
  objectCount: number;
  presentCount: number;
  /** Every object exists (true when the plan names none). */
  allPresent: boolean;
  /** No object exists (true when the plan names none). */
  nonePresent: boolean;
}

type Queryable = pg.Pool | pg.ClientBase;

export async function readSchemaFacts(pool: Queryable, objects: PlanObjects): Promise<SchemaFacts> {
  const [columns, indexes, functions, constraints, backfill] = await Promise.all([
    readColumns(pool, objects.columns),
    readIndexes(pool, objects.indexes),
    readFunctions(pool, objects.functions),
    readConstraints(pool, objects.constraints),
    objects.backfill ? readBackfill(pool, objects.backfill) : Promise.resolve(undefined),
  ]);
  const all = [...columns, ...indexes, ...functions, ...constraints];
  const presentCount = all.filter((fact) => fact.exists).length;
  return {
    columns,
    indexes,
    functions,
    constraints,
    ...(backfill ? { backfill } : {}),
    objectCount: all.length,
    presentCount,
    allPresent: presentCount === all.length,
    nonePresent: presentCount === 0,
  };
}

// ---- The catalog reader -------------------------------------------------------------------------
// One reader of columns, indexes, constraints and functions by schema-qualified name, shared by the
// facts panel (readSchemaFacts) and the `object` check kind (app/checks/object-check.server.ts), so
// the two never disagree about what the target holds. Names travel as bind parameters.

/** A column as the catalog has it; `typeMatches` compares with the type asked for (null when none was, or the column is missing). */
export interface ColumnCatalogEntry {
  schema: string;
  table: string;
  column: string;
  exists: boolean;
  dataType: string | null;
  nullable: boolean | null;
  typeMatches: boolean | null;
}

export const COLUMN_CATALOG_SQL = `select w.ord,
       format_type(a.atttypid, a.atttypmod) as data_type,
       not a.attnotnull as nullable,
       case
         when a.attnum is null or w.type is null then null
         when position('(' in w.type) = 0 then a.atttypid = to_regtype(w.type)
         -- A type with modifiers ("varchar(255)", "numeric(10,2)"): the base type and the modifiers.
         else a.atttypid = to_regtype(w.type)
           and format_type(a.atttypid, a.atttypmod) in (
             format_type(a.atttypid, null) || regexp_replace(substring(w.type from '\\(.*\\)'), '\\s', '', 'g'),
             regexp_replace(lower(trim(w.type)), '\\s+', ' ', 'g'))
       end as type_matches
  from unnest($1::text[], $2::text[], $3::text[], $4::text[]) with ordinality as w(schema, tbl, col, type, ord)
  left join pg_namespace n on n.nspname = w.schema
  left join pg_class c on c.relnamespace = n.oid and c.relname = w.tbl
  left join pg_attribute a on a.attrelid = c.oid and a.attname = w.col and a.attnum > 0 and not a.attisdropped
 order by w.ord`;

export async function readColumnCatalog(db: Queryable, wanted: readonly { schema: string; table: string; column: string; type?: string | null }[]): Promise<ColumnCatalogEntry[]> {
  if (wanted.length === 0) return [];
  const { rows } = await db.query<{ ord: string; data_type: string | null; nullable: boolean | null; type_matches: boolean | null }>(COLUMN_CATALOG_SQL, [
    wanted.map((c) => c.schema),
    wanted.map((c) => c.table),
    wanted.map((c) => c.column),
    wanted.map((c) => c.type ?? null),
  ]);
  return wanted.map((want, index) => {
    const row = rows[index];
    const exists = row?.data_type != null;
    return {
      schema: want.schema,
      table: want.table,
      column: want.column,
      exists,
      dataType: exists ? row!.data_type : null,
      nullable: exists ? row!.nullable : null,
      typeMatches: exists ? row!.type_matches : null,
    };
  });
}

/** An index as the catalog has it. With a table asked for, an index of that name on another table does not exist. */
export interface IndexCatalogEntry {
  schema: string;
  name: string;
  exists: boolean;
  /** The table it is on (when it exists). */
  table: string | null;
  /** pg_index.indisvalid: false after a failed CREATE INDEX CONCURRENTLY. */
  valid: boolean | null;
  ready: boolean | null;
  unique: boolean | null;
  /** The partial index's WHERE, or null. */
  predicate: string | null;
  definition: string | null;
}

export const INDEX_CATALOG_SQL = `select w.ord,
       i.indexrelid is not null as found,
       t.relname as table_name,
       i.indisvalid as valid,
       i.indisready as ready,
       i.indisunique as is_unique,
       pg_get_expr(i.indpred, i.indrelid) as predicate,
       pg_get_indexdef(i.indexrelid) as definition
  from unnest($1::text[], $2::text[]) with ordinality as w(schema, name, ord)
  left join pg_namespace n on n.nspname = w.schema
  left join pg_class ic on ic.relnamespace = n.oid and ic.relname = w.name and ic.relkind in ('i', 'I')
  left join pg_index i on i.indexrelid = ic.oid
  left join pg_class t on t.oid = i.indrelid
 order by w.ord`;

export async function readIndexCatalog(db: Queryable, wanted: readonly { schema: string; name: string; table?: string }[]): Promise<IndexCatalogEntry[]> {
  if (wanted.length === 0) return [];
  const { rows } = await db.query<{
    ord: string;
    found: boolean;
    table_name: string | null;
    valid: boolean | null;
    ready: boolean | null;
    is_unique: boolean | null;
    predicate: string | null;
    definition: string | null;
  }>(INDEX_CATALOG_SQL, [wanted.map((i) => i.schema), wanted.map((i) => i.name)]);
  return wanted.map((want, index) => {
    const row = rows[index];
    // Index names are unique per schema; one on another table is not the index asked for.
    const exists = row?.found === true && (want.table === undefined || row.table_name === want.table);
    return {
      schema: want.schema,
      name: want.name,
      exists,
      table: exists ? row!.table_name : null,
      valid: exists ? row!.valid : null,
      ready: exists ? row!.ready : null,
      unique: exists ? row!.is_unique : null,
      predicate: exists ? row!.predicate : null,
      definition: exists ? row!.definition : null,
    };
  });
}

/** A function (every overload of a name) as the catalog has it; with `args`, the one overload they name. */
export interface FunctionCatalogEntry {
  schema: string;
  name: string;
  /** Some overload exists (with `args`: that overload). */
  exists: boolean;
  /** regprocedure of every overload, e.g. "platform.set_user_active_org(uuid,uuid)". */
  signatures: string[];
  /** md5 over pg_get_functiondef of every overload (in signature order): changes when a body does. */
  definitionHash: string | null;
  /** With `args`: the overload they name (regprocedure), or null when there is none. */
  overload: string | null;
}

export const FUNCTION_CATALOG_SQL = `select w.ord,
       array_agg(p.oid::regprocedure::text order by p.oid::regprocedure::text) filter (where p.oid is not null) as signatures,
       md5(string_agg(case when p.prokind in ('f', 'p') then pg_get_functiondef(p.oid) else p.oid::regprocedure::text end,
                      E'\\n' order by p.oid::regprocedure::text)) as definition_hash,
       case when w.args is null then null
            else to_regprocedure(quote_ident(w.schema) || '.' || quote_ident(w.name) || '(' || w.args || ')')::text end as overload
  from unnest($1::text[], $2::text[], $3::text[]) with ordinality as w(schema, name, args, ord)
  left join pg_namespace n on n.nspname = w.schema
  left join pg_proc p on p.pronamespace = n.oid and p.proname = w.name
 group by w.ord, w.schema, w.name, w.args
 order by w.ord`;

export async function readFunctionCatalog(db: Queryable, wanted: readonly { schema: string; name: string; args?: string }[]): Promise<FunctionCatalogEntry[]> {
  if (wanted.length === 0) return [];
  const { rows } = await db.query<{ ord: string; signatures: string[] | null; definition_hash: string | null; overload: string | null }>(FUNCTION_CATALOG_SQL, [
    wanted.map((f) => f.schema),
    wanted.map((f) => f.name),
    wanted.map((f) => f.args ?? null),
  ]);
  return wanted.map((want, index) => {
    const signatures = rows[index]?.signatures ?? [];
    const overload = want.args === undefined ? null : (rows[index]?.overload ?? null);
    return {
      schema: want.schema,
      name: want.name,
      exists: want.args === undefined ? signatures.length > 0 : overload !== null,
      signatures,
      definitionHash: signatures.length > 0 ? (rows[index]?.definition_hash ?? null) : null,
      overload,
    };
  });
}

/** pg_constraint.contype in words. */
export const CONSTRAINT_TYPES = { c: 'check', f: 'foreign_key', p: 'primary_key', u: 'unique', x: 'exclusion', n: 'not_null', t: 'trigger' } as const;
export type ConstraintType = (typeof CONSTRAINT_TYPES)[keyof typeof CONSTRAINT_TYPES];

export interface ConstraintCatalogEntry {
  schema: string;
  table: string;
  name: string;
  exists: boolean;
  definition: string | null;
  /** pg_constraint.convalidated: false for a NOT VALID constraint not yet validated. */
  validated: boolean | null;
  type: ConstraintType | null;
}

export const CONSTRAINT_CATALOG_SQL = `select w.ord, pg_get_constraintdef(con.oid) as definition, con.convalidated as validated, con.contype::text as contype
  from unnest($1::text[], $2::text[], $3::text[]) with ordinality as w(schema, name, tbl, ord)
  left join pg_namespace n on n.nspname = w.schema
  left join pg_class t on t.relnamespace = n.oid and t.relname = w.tbl
  left join pg_constraint con on con.conrelid = t.oid and con.conname = w.name
 order by w.ord`;

export async function readConstraintCatalog(db: Queryable, wanted: readonly { schema: string; table: string; name: string }[]): Promise<ConstraintCatalogEntry[]> {
  if (wanted.length === 0) return [];
  const { rows } = await db.query<{ ord: string; definition: string | null; validated: boolean | null; contype: string | null }>(CONSTRAINT_CATALOG_SQL, [
    wanted.map((c) => c.schema),
    wanted.map((c) => c.name),
    wanted.map((c) => c.table),
  ]);
  return wanted.map((want, index) => {
    const row = rows[index];
    const exists = row?.definition != null;
    return {
      schema: want.schema,
      table: want.table,
      name: want.name,
      exists,
      definition: exists ? row!.definition : null,
      validated: exists ? row!.validated : null,
      type: exists ? (CONSTRAINT_TYPES[row!.contype as keyof typeof CONSTRAINT_TYPES] ?? null) : null,
    };
  });
}

// ---- The facts panel's view of the plan's objects ------------------------------------------------

async function readColumns(db: Queryable, wanted: PlanObjects['columns']): Promise<ColumnFact[]> {
  const entries = await readColumnCatalog(db, wanted);
  return entries.map((entry, index) => ({
    schema: entry.schema,
    table: entry.table,
    column: entry.column,
    exists: entry.exists,
    dataType: entry.dataType,
    nullable: entry.nullable,
    matchesPlan: entry.exists && entry.typeMatches === true && entry.nullable === wanted[index]!.nullable,
  }));
}

async function readIndexes(db: Queryable, wanted: PlanObjects['indexes']): Promise<IndexFact[]> {
  const entries = await readIndexCatalog(db, wanted);
  return entries.map((entry, index) => {
    const plan = wanted[index]!;
    return {
      schema: entry.schema,
      name: entry.name,
      table: plan.table,
      exists: entry.exists,
      valid: entry.valid,
      ready: entry.ready,
      predicate: entry.predicate,
      definition: entry.definition,
      matchesPlan: entry.exists && entry.valid === true && (entry.predicate !== null) === plan.partial,
    };
  });
}

async function readFunctions(db: Queryable, wanted: PlanObjects['functions']): Promise<FunctionFact[]> {
  const entries = await readFunctionCatalog(db, wanted);
  return entries.map((entry) => ({ schema: entry.schema, name: entry.name, exists: entry.exists, signatures: entry.signatures, definitionHash: entry.definitionHash }));
}

async function readConstraints(db: Queryable, wanted: PlanObjects['constraints']): Promise<ConstraintFact[]> {
  const entries = await readConstraintCatalog(db, wanted);
  return entries.map((entry) => ({ schema: entry.schema, name: entry.name, table: entry.table, exists: entry.exists, definition: entry.definition }));
}

async function readBackfill(db: Queryable, wanted: NonNullable<PlanObjects['backfill']>): Promise<BackfillFact> {
  const base = { schema: wanted.schema, table: wanted.table, column: wanted.column };
  const present = await db.query<{ present: boolean }>(
    `select exists (
       select 1 from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = $1 and c.relname = $2 and a.attname = $3 and a.attnum > 0 and not a.attisdropped
     ) as present`,
    [wanted.schema, wanted.table, wanted.column],
  );
  if (!present.rows[0]?.present) return { ...base, columnExists: false, total: null, withValue: null, percentage: null };
  const column = pg.escapeIdentifier(wanted.column);
  const table = `${pg.escapeIdentifier(wanted.schema)}.${pg.escapeIdentifier(wanted.table)}`;
  const { rows } = await db.query<{ total: string; with_value: string; percentage: string | null }>(
    `select count(*) as total,
            count(${column}) as with_value,
            round(100.0 * count(${column}) / nullif(count(*), 0), 2) as percentage
       from ${table}`,
  );
  const row = rows[0]!;
  return {
    ...base,
    columnExists: true,
    total: Number(row.total),
    withValue: Number(row.with_value),
    percentage: row.percentage === null ? null : Number(row.percentage),
  };
}

export type PlanStateOnTarget = 'not_applied' | 'applied' | 'rolled_back' | 'drift';

type LedgerSide = Pick<PlanLedgerState, 'state'>;
type FactsSide = Pick<SchemaFacts, 'objectCount' | 'presentCount' | 'allPresent' | 'nonePresent'>;

/**
 * The plan's state on a target from its two witnesses, the ledger and the live schema. They must
 * agree; where they do not, the answer is drift, never the ledger's word alone.
 */
export function planStateOnTarget(ledger: LedgerSide, facts: FactsSide): PlanStateOnTarget {
  return explainPlanStateOnTarget(ledger, facts).state;
}

export function explainPlanStateOnTarget(ledger: LedgerSide, facts: FactsSide): { state: PlanStateOnTarget; reason: string } {
  const objects = `${facts.presentCount} of ${facts.objectCount} of the plan's objects present`;
  // A plan that names no objects cannot be cross-checked: the ledger is all there is.
  if (facts.objectCount === 0) return { state: ledger.state, reason: 'the plan names no objects; state from the ledger alone' };
  switch (ledger.state) {
    case 'not_applied':
      return facts.nonePresent
        ? { state: 'not_applied', reason: 'no ledger row and none of the plan\'s objects present' }
        : { state: 'drift', reason: `no ledger row, but ${objects}: the change was made outside Runsheet` };
    case 'applied':
      return facts.allPresent
        ? { state: 'applied', reason: 'the ledger records it applied and every object is present' }
        : { state: 'drift', reason: `the ledger records it applied, but only ${objects}` };
    case 'rolled_back':
      return facts.nonePresent
        ? { state: 'rolled_back', reason: 'the ledger records it rolled back and none of its objects remain' }
        : { state: 'drift', reason: `the ledger records it rolled back, but ${objects}` };
  }
}
