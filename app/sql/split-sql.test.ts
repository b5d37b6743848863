import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findTransactionControl, splitSql, type SqlStatement } from './split-sql.server';
import { createTestDatabase, type TestDatabase } from '../../tests/support/databases';

async function statementsOf(source: string): Promise<SqlStatement[]> {
  const result = await splitSql(source);
  if (!result.ok) throw new Error(`expected statements, got errors: ${JSON.stringify(result.errors)}`);
  return result.statements;
}

describe('splitSql', () => {
  it('keeps a ; inside single-quoted, E and dollar-quoted strings in its statement', async () => {
    const statements = await statementsOf(
      [
        "SELECT 'a;b' AS plain;",
        "SELECT E'it\\'s; fine' AS escaped;",
        'SELECT $$x; y$$ AS dollar;',
      ].join('\n'),
    );
    expect(statements.map((statement) => statement.sql)).toEqual([
      "SELECT 'a;b' AS plain",
      "SELECT E'it\\'s; fine' AS escaped",
      'SELECT $$x; y$$ AS dollar',
    ]);
  });

  it('keeps nested dollar quotes as one statement', async () => {
    const source = [
      'CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $outer$',
      'BEGIN',
      "  EXECUTE $inner$ SELECT 'a;b'; $inner$;",
      "  RETURN 'done;';",
      'END',
      '$outer$;',
      'SELECT 2;',
    ].join('\n');
    const statements = await statementsOf(source);
    expect(statements).toHaveLength(2);
    expect(statements[0]).toMatchObject({ kind: 'CreateFunctionStmt', startLine: 1, endLine: 6 });
    expect(statements[0]!.sql.endsWith('$outer$')).toBe(true);
    expect(statements[1]).toMatchObject({ sql: 'SELECT 2', startLine: 7, endLine: 7 });
  });

  it('ignores ; in nested block comments and -- comments, and leaves comments out of the statement', async () => {
    const source = [
      '/* outer /* inner; */ still comment; */',
      'SELECT 1 -- trailing; comment',
      ';',
      '-- SELECT 2;',
      'SELECT 3;',
    ].join('\n');
    const statements = await statementsOf(source);
    expect(statements.map(({ sql, startLine, endLine }) => ({ sql, startLine, endLine }))).toEqual([
      { sql: 'SELECT 1', startLine: 2, endLine: 2 },
      { sql: 'SELECT 3', startLine: 5, endLine: 5 },
    ]);
  });

  it('takes a DO block as one statement and reports its lines', async () => {
    const source = [
      'SET lock_timeout = 5000;',
      '',
      'DO $$',
      'BEGIN',
      '  IF NOT EXISTS (SELECT 1) THEN',
      '    RAISE NOTICE \'nothing; to do\';',
      '  END IF;',
      'END',
      '$$;',
      'SELECT 1',
    ].join('\n');
    const statements = await statementsOf(source);
    expect(statements.map(({ index, kind, startLine, endLine }) => ({ index, kind, startLine, endLine }))).toEqual([
      { index: 0, kind: 'VariableSetStmt', startLine: 1, endLine: 1 },
      { index: 1, kind: 'DoStmt', startLine: 3, endLine: 9 },
      { index: 2, kind: 'SelectStmt', startLine: 10, endLine: 10 },
    ]);
  });

  it('keeps offsets and lines right after multi-byte UTF-8 text', async () => {
    const source = "-- Ünïcödé 🚀 comment\nSELECT 'é;ü' AS a;\nSELECT '🚀' AS b;";
    const statements = await statementsOf(source);
    expect(statements.map((statement) => statement.sql)).toEqual(["SELECT 'é;ü' AS a", "SELECT '🚀' AS b"]);
    for (const statement of statements) {
      expect(source.slice(statement.startOffset, statement.startOffset + statement.sql.length)).toBe(statement.sql);
    }
    expect(statements.map((statement) => statement.startLine)).toEqual([2, 3]);
  });

  it('reports a psql meta-command with its line', async () => {
    const result = await splitSql('SELECT 1;\n\n  \\set ON_ERROR_STOP on\nSELECT 2;\n');
    expect(result).toEqual({ ok: false, errors: [expect.objectContaining({ line: 3 })] });
    if (!result.ok) expect(result.errors[0]!.message).toContain('\\set');
  });

  it('does not take a backslash inside a string, comment or dollar quote for a meta-command', async () => {
    const statements = await statementsOf("SELECT '\\set x';\n-- \\i file.sql\nSELECT $$\n\\echo$$;");
    expect(statements).toHaveLength(2);
  });

  it('reports a syntax error with its line, after multi-byte text', async () => {
    const result = await splitSql("SELECT 'é🚀';\n\nSELECT 1;\nSELEC 2;\n");
    expect(result).toEqual({ ok: false, errors: [expect.objectContaining({ line: 4 })] });
    if (!result.ok) expect(result.errors[0]!.message).toMatch(/syntax error/);
  });

  it('reports both a meta-command and a syntax error of one file', async () => {
    const result = await splitSql('\\i other.sql\nSELECT 1;\nSELECT FROM FROM;\n');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.map((error) => error.line)).toEqual([1, 3]);
  });

  it('reports an unterminated string or comment with its line instead of throwing', async () => {
    const unterminatedString = await splitSql("SELECT 1;\nSELECT 'oops;\n");
    expect(unterminatedString).toEqual({ ok: false, errors: [expect.objectContaining({ line: 2 })] });
    const unterminatedComment = await splitSql('SELECT 1;\n\n/* never closed\n');
    expect(unterminatedComment).toEqual({ ok: false, errors: [expect.objectContaining({ line: 3 })] });
  });

  it('returns no statements for an empty or comment-only file', async () => {
    expect(await splitSql('')).toEqual({ ok: true, statements: [] });
    expect(await splitSql('-- nothing here\n/* really */\n')).toEqual({ ok: true, statements: [] });
  });
});

describe('findTransactionControl', () => {
  it('finds BEGIN, COMMIT, END, SAVEPOINT and friends with their lines', async () => {
    const statements = await statementsOf(
      ['BEGIN;', 'UPDATE t SET a = 1;', 'SAVEPOINT s1;', 'ROLLBACK TO SAVEPOINT s1;', 'COMMIT;', 'START TRANSACTION;', 'END;', "PREPARE TRANSACTION 'x';"].join('\n'),
    );
    expect(findTransactionControl(statements).map(({ command, line }) => ({ command, line }))).toEqual([
      { command: 'BEGIN', line: 1 },
      { command: 'SAVEPOINT', line: 3 },
      { command: 'ROLLBACK TO SAVEPOINT', line: 4 },
      { command: 'COMMIT', line: 5 },
      { command: 'START TRANSACTION', line: 6 },
      { command: 'END', line: 7 },
      { command: 'PREPARE TRANSACTION', line: 8 },
    ]);
  });

  it('does not take a COMMIT inside a string or function body for transaction control', async () => {
    const statements = await statementsOf("SELECT 'COMMIT;';\nDO $$ BEGIN RAISE NOTICE 'commit'; END $$;\n");
    expect(findTransactionControl(statements)).toEqual([]);
  });
});

describe('outsideTransactionOnly: what PostgreSQL refuses inside a transaction block', () => {
  let db: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    db = await createTestDatabase('split_sql');
    client = new pg.Client({ connectionString: db.url });
    await client.connect();
    await client.query(`create table t (a int, b int);
      create index t_a on t (a);
      create table p (a int) partition by list (a);
      create table p1 partition of p for values in (1);
      create materialized view mv as select 1 as a;
      create unique index mv_a on mv (a);`);
  });

  afterAll(async () => {
    await client.end();
    await db.drop();
  });

  /** Sent inside BEGIN … ROLLBACK: the SQLSTATE it failed with, or null when it ran. */
  async function inTransactionBlock(sql: string): Promise<string | null> {
    await client.query('begin');
    try {
      await client.query(sql);
      return null;
    } catch (error) {
      return (error as { code?: string }).code ?? 'unknown';
    } finally {
      await client.query('rollback');
    }
  }

  // The rule is read from the parse tree; the real server is the judge of whether it is right.
  const cases: [string, string | undefined][] = [
    ['CREATE INDEX CONCURRENTLY t_b ON t (b)', 'CREATE INDEX CONCURRENTLY'],
    ['create unique index concurrently if not exists t_ab on public.t (a, b)', 'CREATE UNIQUE INDEX CONCURRENTLY'],
    ['DROP INDEX CONCURRENTLY IF EXISTS t_a', 'DROP INDEX CONCURRENTLY'],
    ['REINDEX INDEX CONCURRENTLY t_a', 'REINDEX CONCURRENTLY'],
    ['REINDEX (CONCURRENTLY) TABLE t', 'REINDEX CONCURRENTLY'],
    ['REINDEX (CONCURRENTLY true, VERBOSE) TABLE t', 'REINDEX CONCURRENTLY'],
    ['ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY', 'ALTER TABLE … DETACH PARTITION … CONCURRENTLY'],
    ['VACUUM t', 'VACUUM'],
    ['VACUUM (ANALYZE) t', 'VACUUM'],
    ['CREATE INDEX t_b ON t (b)', undefined],
    ['DROP INDEX IF EXISTS t_a', undefined],
    ['REINDEX (CONCURRENTLY false) TABLE t', undefined],
    ['REINDEX TABLE t', undefined],
    ['ALTER TABLE p DETACH PARTITION p1', undefined],
    ['ANALYZE t', undefined],
    ['REFRESH MATERIALIZED VIEW CONCURRENTLY mv', undefined],
  ];

  it.each(cases)('%s', async (sql, expected) => {
    const [statement] = await statementsOf(`${sql};`);
    expect(statement!.outsideTransactionOnly).toBe(expected);
    expect(await inTransactionBlock(sql)).toBe(expected ? '25001' : null);
  });

  it('finds COMMIT and ROLLBACK inside a DO block with their file lines (PostgreSQL refuses them there in a transaction block: 2D000)', async () => {
    const block = ['DO LANGUAGE plpgsql $body$', 'BEGIN', '  PERFORM 1;', '  IF true THEN', '    COMMIT;', '  ELSE', '    ROLLBACK;', '  END IF;', 'END', '$body$'].join('\n');
    const [first, statement] = await statementsOf(`SELECT 1;\n${block};\n`);
    expect(first!.blockTransactionControl).toBeUndefined();
    expect(statement!.blockTransactionControl).toEqual([
      { command: 'COMMIT', line: 6 },
      { command: 'ROLLBACK', line: 8 },
    ]);
    expect(await inTransactionBlock(block)).toBe('2D000');
    // A COMMIT only in a string is not one.
    const [quiet] = await statementsOf("DO $$ BEGIN RAISE NOTICE 'commit;'; EXECUTE 'select 1'; END $$;");
    expect(quiet!.blockTransactionControl).toBeUndefined();
  });
});
