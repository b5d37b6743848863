/**
 * The UPDATE of a batched_backfill step is written with named placeholders: walking by key,
 * `:batch_start` and `:batch_end` (the batch's first and last key, both inclusive); until no rows
 * are left, `:batch_size` (the LIMIT of the rows that still need it). They become the bind
 * parameters $1, $2… in the order listed: found with PostgreSQL's own scanner (so never inside a
 * string, a comment or a dollar quote) and replaced in place, padded to the same width, so every
 * line and column of the file (errors, lint findings) stays where it was. The values always travel
 * as parameters; a placeholder of the other walk is refused with its line.
 */
import { loadModule, parseSync, scanSync, type ScanToken } from 'libpg-query';

/** The keyset walk's placeholders ($1, $2). */
export const BATCH_PLACEHOLDERS = ['batch_start', 'batch_end'] as const;
/** The until-no-rows walk's placeholder ($1). */
export const NO_ROWS_PLACEHOLDERS = ['batch_size'] as const;
const ALL_PLACEHOLDERS = [...BATCH_PLACEHOLDERS, ...NO_ROWS_PLACEHOLDERS] as const;
export type BatchPlaceholder = (typeof ALL_PLACEHOLDERS)[number];

export type BatchTemplate =
  | {
      ok: true;
      /** The file with each allowed placeholder as its parameter, e.g. `:batch_start` → `$1` (same length, same lines). */
      sql: string;
      /** The placeholders the file uses, in the order they were allowed. */
      uses: BatchPlaceholder[];
    }
  | { ok: false; errors: { line: number; message: string }[] };

export async function translateBatchTemplate(source: string, allowed: readonly BatchPlaceholder[] = BATCH_PLACEHOLDERS): Promise<BatchTemplate> {
  const parameterOf = (name: BatchPlaceholder) => `$${allowed.indexOf(name) + 1}`;
  await loadModule();
  let tokens: ScanToken[];
  try {
    tokens = scanSync(source).tokens;
  } catch {
    // An unterminated quote or comment: the splitter reports where.
    return { ok: true, sql: source, uses: [] };
  }
  const bytes = Buffer.from(source, 'utf8');
  const lineOfByte = (byte: number) => bytes.subarray(0, byte).toString('utf8').split('\n').length;
  const errors: { line: number; message: string }[] = [];
  const uses = new Set<BatchPlaceholder>();
  for (const [position, token] of tokens.entries()) {
    if (token.text !== ':') continue;
    const next = tokens[position + 1];
    if (!next || next.start !== token.end) continue;
    if (next.tokenName === 'IDENT' && (ALL_PLACEHOLDERS as readonly string[]).includes(next.text)) {
      const name = next.text as BatchPlaceholder;
      if (!allowed.includes(name)) {
        const line = lineOfByte(token.start);
        errors.push({
          line,
          message: (NO_ROWS_PLACEHOLDERS as readonly string[]).includes(name)
            ? `:${name} on line ${line} belongs to a backfill that runs until no rows are left (until: no_rows); this one walks the key in ranges: use :batch_start and :batch_end, or set until: no_rows`
            : `:${name} on line ${line} belongs to a backfill that walks the key in ranges; this one runs until no rows are left (until: no_rows): take the next rows that still need it with LIMIT :batch_size … FOR UPDATE SKIP LOCKED`,
        });
        continue;
      }
      uses.add(name);
      const replacement = Buffer.from(parameterOf(name).padEnd(next.end - token.start, ' '), 'utf8');
      replacement.copy(bytes, token.start);
    } else if (/^['"]/.test(next.text) && (ALL_PLACEHOLDERS as readonly string[]).includes(next.text.slice(1, -1))) {
      errors.push({
        line: lineOfByte(token.start),
        message: `:${next.text} on line ${lineOfByte(token.start)} is psql's quoted variable syntax: write :${next.text.slice(1, -1)} bare (placeholders are sent as bind parameters, never spliced)`,
      });
    }
  }
  if (errors.length > 0) return { ok: false, errors };
  const sql = bytes.toString('utf8');
  return { ok: true, sql, uses: allowed.filter((name) => uses.has(name)) };
}

export interface UpdateTarget {
  schema: string | undefined;
  table: string;
}

/** The table an UPDATE statement (already translated) updates, from PostgreSQL's parse tree; undefined for anything else. */
export function updateTargetOf(sql: string): UpdateTarget | undefined {
  try {
    const tree = parseSync(sql) as { stmts?: { stmt?: { UpdateStmt?: { relation?: { schemaname?: string; relname?: string } } } }[] };
    const relation = tree.stmts?.[0]?.stmt?.UpdateStmt?.relation;
    if (!relation?.relname) return undefined;
    return { schema: relation.schemaname, table: relation.relname };
  } catch {
    return undefined;
  }
}

export interface IndexTarget {
  name: string | undefined;
  schema: string | undefined;
  table: string | undefined;
  concurrent: boolean;
  ifNotExists: boolean;
  unique: boolean;
}

/** What a CREATE INDEX statement builds, from PostgreSQL's parse tree; undefined for anything else. */
export function indexTargetOf(sql: string): IndexTarget | undefined {
  try {
    const tree = parseSync(sql) as {
      stmts?: { stmt?: { IndexStmt?: { idxname?: string; relation?: { schemaname?: string; relname?: string }; concurrent?: boolean; if_not_exists?: boolean; unique?: boolean } } }[];
    };
    const index = tree.stmts?.[0]?.stmt?.IndexStmt;
    if (!index) return undefined;
    return {
      name: index.idxname,
      schema: index.relation?.schemaname,
      table: index.relation?.relname,
      concurrent: index.concurrent === true,
      ifNotExists: index.if_not_exists === true,
      unique: index.unique === true,
    };
  } catch {
    return undefined;
  }
}
