/**
 * Splits a SQL file into statements the way psql would, with PostgreSQL's own scanner and parser
 * (libpg-query): a `;` inside a string, an E'' string, a dollar quote or a nested comment does
 * not end a statement, and a DO block is one statement. psql meta-commands (`\set`, `\i`) are not
 * SQL; the parser would reject the whole file, so the scanner finds them first and they are
 * reported with their line. Bad input is returned as errors, never thrown.
 */
import { loadModule, parsePlPgSQLSync, parseSync, scanSync, type ScanToken } from 'libpg-query';

export interface SqlStatement {
  /** 0-based position in the file. */
  index: number;
  /** The statement's exact text, trimmed, without its terminating `;`. */
  sql: string;
  /** 1-based line of the statement's first token (leading comments are not part of it). */
  startLine: number;
  /** 1-based line of the statement's last character. */
  endLine: number;
  /** Where the statement starts in the file, as a JavaScript string index: `source.slice(startOffset)`. */
  startOffset: number;
  /** The parse tree's top-level node, e.g. "CreateStmt", "DoStmt", "TransactionStmt". */
  kind: string;
  /** For a TransactionStmt: libpg-query's kind, e.g. "TRANS_STMT_COMMIT". */
  transactionKind?: string;
  /**
   * The statement is one PostgreSQL refuses inside a transaction block (SQLSTATE 25001), named as
   * SQL spells it: "CREATE INDEX CONCURRENTLY", "DROP INDEX CONCURRENTLY", "VACUUM", …
   */
  outsideTransactionOnly?: string;
  /**
   * For a PL/pgSQL DO block: its COMMIT and ROLLBACK statements with their file lines. PostgreSQL
   * runs them only when the DO is not inside a transaction block (else SQLSTATE 2D000).
   */
  blockTransactionControl?: { command: 'COMMIT' | 'ROLLBACK'; line: number }[];
}

export interface SqlSplitError {
  /** 1-based line in the file. */
  line: number;
  message: string;
}

export type SqlSplitResult = { ok: true; statements: SqlStatement[] } | { ok: false; errors: SqlSplitError[] };

export interface TransactionControl {
  statement: SqlStatement;
  /** What the statement does, in SQL words: "BEGIN", "COMMIT", "SAVEPOINT", … */
  command: string;
  line: number;
}

const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);

/** A scanner token with this text is a backslash outside strings, comments and dollar quotes. */
const BACKSLASH = '\\';

export async function splitSql(source: string): Promise<SqlSplitResult> {
  if (source.trim() === '') return { ok: true, statements: [] };
  await loadModule();
  const text = new SourceText(source);

  let tokens: ScanToken[];
  try {
    tokens = scanSync(source).tokens;
  } catch (scanError) {
    // The scanner fails on what the parser also refuses (an unterminated quote or comment), but
    // only the parser reports where.
    try {
      parseSync(source);
    } catch (parseError) {
      return { ok: false, errors: [parseErrorOf(parseError, text)] };
    }
    return { ok: false, errors: [{ line: 1, message: `PostgreSQL's scanner refused the file: ${String(scanError)}` }] };
  }

  const metaCommands = findMetaCommands(tokens, text);
  const errors: SqlSplitError[] = metaCommands.map(({ line, command }) => ({
    line,
    message:
      `psql meta-command ${command} on line ${line}: Runsheet sends SQL to the server itself, without psql, ` +
      `so meta-commands cannot run. Remove it, or write what it does in SQL (e.g. a SET statement).`,
  }));

  // Blank out the meta-commands so the parser can still report a syntax error elsewhere in the
  // file: every error of the file in one answer. One space per character keeps the parser's error
  // position (counted in characters) pointing at the same line and column.
  let parseable = source;
  for (const meta of [...metaCommands].reverse()) {
    const start = text.indexOfByte(meta.startByte);
    const end = text.indexOfByte(meta.endByte);
    parseable = parseable.slice(0, start) + ' '.repeat(end - start) + parseable.slice(end);
  }

  let stmts: { stmt?: Record<string, unknown>; stmt_location?: number; stmt_len?: number }[];
  try {
    stmts = parseSync(parseable).stmts ?? [];
  } catch (error) {
    errors.push(parseErrorOf(error, text));
    errors.sort((a, b) => a.line - b.line);
    return { ok: false, errors };
  }
  if (errors.length > 0) return { ok: false, errors };

  // Statements and tokens both come in file order: one pass over the tokens finds each
  // statement's first and last token, so comments around a statement are not part of its text.
  const statements: SqlStatement[] = [];
  let next = 0;
  for (const stmt of stmts) {
    // Protobuf JSON leaves out zero values: no location is 0, no length is "to the end of the input".
    const locationByte = stmt.stmt_location ?? 0;
    const endByte = stmt.stmt_len ? locationByte + stmt.stmt_len : text.byteLength;
    while (next < tokens.length && tokens[next]!.start < locationByte) next++;
    let first: ScanToken | undefined;
    let last: ScanToken | undefined;
    for (; next < tokens.length && tokens[next]!.start < endByte; next++) {
      const token = tokens[next]!;
      if (COMMENT_TOKENS.has(token.tokenName)) continue;
      first ??= token;
      // The last statement's range runs to the end of the file, over its terminating `;`.
      if (token.text !== ';') last = token;
    }
    if (!first || !last) continue;
    const start = text.indexOfByte(first.start);
    const end = text.indexOfByte(last.end);
    const node = stmt.stmt ?? {};
    const kind = Object.keys(node)[0] ?? 'Unknown';
    const transactionKind = kind === 'TransactionStmt' ? (node[kind] as { kind?: string } | undefined)?.kind : undefined;
    const outsideTransactionOnly = outsideTransactionOnlyCommand(kind, node[kind]);
    const blockTransactionControl = kind === 'DoStmt' ? doBlockTransactionControl(source.slice(start, end), node[kind], text) : [];
    statements.push({
      index: statements.length,
      sql: source.slice(start, end),
      startLine: text.lineOfIndex(start),
      endLine: text.lineOfIndex(end - 1),
      startOffset: start,
      kind,
      ...(transactionKind ? { transactionKind } : {}),
      ...(outsideTransactionOnly ? { outsideTransactionOnly } : {}),
      ...(blockTransactionControl.length > 0 ? { blockTransactionControl } : {}),
    });
  }
  return { ok: true, statements };
}

export interface SqlComment {
  /** 1-based line of the comment's first character. */
  line: number;
  /** The comment without its markers (a leading "--", or the slash-star pair around it), trimmed. */
  text: string;
}

/**
 * The comments of a SQL text, found by PostgreSQL's scanner (never inside a string or a dollar
 * quote), in order. A text the scanner refuses has none.
 */
export async function findSqlComments(source: string): Promise<SqlComment[]> {
  if (source.trim() === '') return [];
  await loadModule();
  let tokens: ScanToken[];
  try {
    tokens = scanSync(source).tokens;
  } catch {
    return [];
  }
  const text = new SourceText(source);
  return tokens
    .filter((token) => COMMENT_TOKENS.has(token.tokenName))
    .map((token) => ({
      line: text.lineOfIndex(text.indexOfByte(token.start)),
      text: (token.tokenName === 'SQL_COMMENT' ? token.text.replace(/^--/, '') : token.text.replace(/^\/\*/, '').replace(/\*\/$/, '')).trim(),
    }));
}

const TRANSACTION_COMMANDS: Record<string, string> = {
  TRANS_STMT_BEGIN: 'BEGIN',
  TRANS_STMT_START: 'START TRANSACTION',
  TRANS_STMT_COMMIT: 'COMMIT',
  TRANS_STMT_ROLLBACK: 'ROLLBACK',
  TRANS_STMT_SAVEPOINT: 'SAVEPOINT',
  TRANS_STMT_RELEASE: 'RELEASE SAVEPOINT',
  TRANS_STMT_ROLLBACK_TO: 'ROLLBACK TO SAVEPOINT',
  TRANS_STMT_PREPARE: 'PREPARE TRANSACTION',
  TRANS_STMT_COMMIT_PREPARED: 'COMMIT PREPARED',
  TRANS_STMT_ROLLBACK_PREPARED: 'ROLLBACK PREPARED',
};

/**
 * Statements that begin, end or split a transaction. In a transactional step Runsheet owns the
 * transaction (and writes its ledger row in it), so the step refuses them with their line.
 */
export function findTransactionControl(statements: SqlStatement[]): TransactionControl[] {
  return statements
    .filter((statement) => statement.kind === 'TransactionStmt')
    .map((statement) => {
      // END and ABORT parse as COMMIT and ROLLBACK; name them as the file spells them.
      const spelled = statement.sql.split(/\s/, 1)[0]!.toUpperCase();
      const command = spelled === 'END' || spelled === 'ABORT' ? spelled : TRANSACTION_COMMANDS[statement.transactionKind ?? ''];
      return { statement, command: command ?? 'transaction control', line: statement.startLine };
    });
}

type ParseNode = Record<string, unknown> | undefined;

const isOn = (option: unknown): boolean => {
  // `REINDEX (CONCURRENTLY)` has no argument; `(CONCURRENTLY false)` turns it off.
  const arg = (option as { DefElem?: { arg?: Record<string, { boolval?: boolean; sval?: string; ival?: number }> } }).DefElem?.arg;
  if (!arg) return true;
  const value = Object.values(arg)[0] ?? {};
  return value.boolval === true || value.ival === 1 || ['true', 'on', '1'].includes(String(value.sval).toLowerCase());
};

/**
 * What PostgreSQL refuses to run inside a transaction block (SQLSTATE 25001), read from the parse
 * tree: the CONCURRENTLY forms of index and partition DDL, and VACUUM. A transactional step would
 * send it inside its BEGIN … COMMIT and fail there, after earlier steps committed. (REFRESH
 * MATERIALIZED VIEW CONCURRENTLY is not here: PostgreSQL runs it inside a transaction.)
 */
function outsideTransactionOnlyCommand(kind: string, node: unknown): string | undefined {
  const tree = node as ParseNode;
  if (!tree) return undefined;
  switch (kind) {
    case 'IndexStmt':
      return tree.concurrent === true ? `CREATE ${tree.unique === true ? 'UNIQUE ' : ''}INDEX CONCURRENTLY` : undefined;
    case 'DropStmt':
      return tree.concurrent === true ? 'DROP INDEX CONCURRENTLY' : undefined;
    case 'ReindexStmt':
      return ((tree.params as unknown[] | undefined) ?? []).some((option) => (option as { DefElem?: { defname?: string } }).DefElem?.defname === 'concurrently' && isOn(option))
        ? 'REINDEX CONCURRENTLY'
        : undefined;
    case 'AlterTableStmt':
      return ((tree.cmds as unknown[] | undefined) ?? []).some((cmd) => {
        const command = (cmd as { AlterTableCmd?: { subtype?: string; def?: { PartitionCmd?: { concurrent?: boolean } } } }).AlterTableCmd;
        return command?.subtype === 'AT_DetachPartition' && command.def?.PartitionCmd?.concurrent === true;
      })
        ? 'ALTER TABLE … DETACH PARTITION … CONCURRENTLY'
        : undefined;
    case 'VacuumStmt':
      // ANALYZE alone parses as a VacuumStmt too, and runs inside a transaction.
      return tree.is_vacuumcmd === true ? 'VACUUM' : undefined;
    default:
      return undefined;
  }
}

/**
 * COMMIT and ROLLBACK inside a DO block, from PL/pgSQL's own parser. Its line numbers count from
 * the line where the block's body (the dollar-quoted string) starts. A body PL/pgSQL cannot parse
 * is left to the server, which reports it with its line when the statement runs.
 */
function doBlockTransactionControl(statementSql: string, node: unknown, text: SourceText): { command: 'COMMIT' | 'ROLLBACK'; line: number }[] {
  const bodyOption = ((node as { args?: unknown[] } | undefined)?.args ?? [])
    .map((option) => (option as { DefElem?: { defname?: string; location?: number } }).DefElem)
    .find((option) => option?.defname === 'as');
  if (bodyOption?.location === undefined) return [];
  let tree: unknown;
  try {
    tree = parsePlPgSQLSync(statementSql);
  } catch {
    return [];
  }
  const bodyLine = text.lineOfIndex(text.indexOfByte(bodyOption.location));
  const found: { command: 'COMMIT' | 'ROLLBACK'; line: number }[] = [];
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (value === null || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value)) {
      const command = key === 'PLpgSQL_stmt_commit' ? 'COMMIT' : key === 'PLpgSQL_stmt_rollback' ? 'ROLLBACK' : undefined;
      if (command) found.push({ command, line: bodyLine + ((child as { lineno?: number }).lineno ?? 1) - 1 });
      visit(child);
    }
  };
  visit(tree);
  return found.sort((a, b) => a.line - b.line);
}

interface MetaCommand {
  line: number;
  /** e.g. "\set" */
  command: string;
  startByte: number;
  /** End of the meta-command: psql reads one to the end of its line. */
  endByte: number;
}

/**
 * psql takes any backslash outside quotes and comments as the start of a meta-command that runs
 * to the end of the line (a backslash is never valid SQL there), so every backslash token counts,
 * not only one at the start of a line.
 */
function findMetaCommands(tokens: ScanToken[], text: SourceText): MetaCommand[] {
  const found: MetaCommand[] = [];
  for (const [position, token] of tokens.entries()) {
    if (token.text !== BACKSLASH) continue;
    if (found.length > 0 && found[found.length - 1]!.endByte > token.start) continue;
    const index = text.indexOfByte(token.start);
    const line = text.lineOfIndex(index);
    const lineEnd = text.endOfLine(index);
    const next = tokens[position + 1];
    const name = next && next.start === token.end ? next.text : '';
    found.push({ line, command: `\\${name}`, startByte: token.start, endByte: text.byteOfIndex(lineEnd) });
  }
  return found;
}

function parseErrorOf(error: unknown, text: SourceText): SqlSplitError {
  const details = (error as { sqlDetails?: { cursorPosition?: number } }).sqlDetails;
  const message = error instanceof Error ? error.message : String(error);
  // PostgreSQL counts its error position in characters (code points), not bytes.
  const index = details?.cursorPosition !== undefined ? text.indexOfCodePoint(details.cursorPosition) : 0;
  return { line: text.lineOfIndex(index), message };
}

/**
 * One file's text with conversions between the three ways positions are counted: UTF-8 bytes
 * (libpg-query's statement and token locations), code points (PostgreSQL's error cursor) and
 * JavaScript string indexes (UTF-16 code units, for slicing).
 */
class SourceText {
  /** byteAt[i]: the UTF-8 byte offset of string index i (one extra entry for the end). */
  private readonly byteAt: Uint32Array;
  /** String indexes where each line starts. */
  private readonly lineStarts: number[];

  constructor(private readonly source: string) {
    this.byteAt = new Uint32Array(source.length + 1);
    this.lineStarts = [0];
    let bytes = 0;
    for (let index = 0; index < source.length; index++) {
      this.byteAt[index] = bytes;
      const code = source.charCodeAt(index);
      if (code === 0x0a) this.lineStarts.push(index + 1);
      // A surrogate pair is one 4-byte code point: count it on its high half.
      if (code < 0x80) bytes += 1;
      else if (code < 0x800) bytes += 2;
      else if (code >= 0xd800 && code <= 0xdbff) bytes += 4;
      else if (code >= 0xdc00 && code <= 0xdfff) bytes += 0;
      else bytes += 3;
    }
    this.byteAt[source.length] = bytes;
  }

  get byteLength(): number {
    return this.byteAt[this.source.length]!;
  }

  byteOfIndex(index: number): number {
    return this.byteAt[Math.min(Math.max(index, 0), this.source.length)]!;
  }

  /** The string index of a byte offset (the first index at or after it). */
  indexOfByte(byte: number): number {
    let low = 0;
    let high = this.source.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.byteAt[middle]! < byte) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  indexOfCodePoint(codePoints: number): number {
    let index = 0;
    for (let count = 0; count < codePoints && index < this.source.length; count++) {
      const code = this.source.charCodeAt(index);
      index += code >= 0xd800 && code <= 0xdbff ? 2 : 1;
    }
    return index;
  }

  lineOfIndex(index: number): number {
    let low = 0;
    let high = this.lineStarts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if (this.lineStarts[middle]! <= index) low = middle;
      else high = middle - 1;
    }
    return low + 1;
  }

  endOfLine(index: number): number {
    const newline = this.source.indexOf('\n', index);
    return newline === -1 ? this.source.length : newline;
  }
}
