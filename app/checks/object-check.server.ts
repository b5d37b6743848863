/**
 * Reads what an `object` check names from the target's catalog, with the facts panel's own reader
 * (app/targets/schema-facts.server.ts): one definition of "is there an index, valid, unique…".
 * Returns the entry and the SQL that ran (with its parameters), which the result keeps.
 */
import type pg from 'pg';
import type { ObjectCheck } from '../plans/plan-schema';
import {
  COLUMN_CATALOG_SQL,
  CONSTRAINT_CATALOG_SQL,
  FUNCTION_CATALOG_SQL,
  INDEX_CATALOG_SQL,
  readColumnCatalog,
  readConstraintCatalog,
  readFunctionCatalog,
  readIndexCatalog,
} from '../targets/schema-facts.server';
import type { FoundObject } from './object-expectation';

/** The catalog query with its parameters, as the result shows it. */
const withParameters = (sql: string, parameters: (string | null)[]): string =>
  `${sql}\n-- ${parameters.map((value, index) => `$${index + 1} = {${value === null ? 'NULL' : JSON.stringify(value)}}`).join(', ')}`;

export async function readObject(client: pg.ClientBase, check: ObjectCheck): Promise<{ found: FoundObject; sql: string }> {
  if (check.column) {
    const { schema, table, name, type } = check.column;
    const [entry] = await readColumnCatalog(client, [{ schema, table, column: name, type: type ?? null }]);
    return { found: entry!, sql: withParameters(COLUMN_CATALOG_SQL, [schema, table, name, type ?? null]) };
  }
  if (check.index) {
    const { schema, name, table } = check.index;
    const [entry] = await readIndexCatalog(client, [{ schema, name, ...(table !== undefined ? { table } : {}) }]);
    return { found: entry!, sql: withParameters(INDEX_CATALOG_SQL, [schema, name]) };
  }
  if (check.constraint) {
    const { schema, table, name } = check.constraint;
    const [entry] = await readConstraintCatalog(client, [{ schema, table, name }]);
    return { found: entry!, sql: withParameters(CONSTRAINT_CATALOG_SQL, [schema, name, table]) };
  }
  const { schema, name, args } = check.function!;
  const [entry] = await readFunctionCatalog(client, [{ schema, name, ...(args !== undefined ? { args } : {}) }]);
  return { found: entry!, sql: withParameters(FUNCTION_CATALOG_SQL, [schema, name, args ?? null]) };
}
