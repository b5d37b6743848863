/**
 * Evaluates a check's expectation against what the check produced. Pure: no database, no clock,
 * so the same outcome always gives the same verdict (and the tests need no server).
 */
import type { Expectation } from '../plans/plan-schema';

export interface SqlErrorInfo {
  sqlstate?: string;
  message: string;
}

/** What running a check produced: rows, a database error, or an HTTP response. */
export type CheckOutcome =
  | { rows: Record<string, unknown>[]; fields: string[] }
  | { error: SqlErrorInfo }
  | { http: { status: number; json: unknown } };

export interface Evaluation {
  passed: boolean;
  /** JSON-safe: what the server saw, recorded beside the expectation. */
  actual: unknown;
  /** Why it did not pass (absent when it passed). */
  reason?: string;
}

/** Rows kept in `actual` and quoted in a reason: enough to see what is wrong, never a table dump. */
const MAX_ROWS_RECORDED = 50;
const MAX_ROWS_QUOTED = 3;

export function evaluateExpectation(expectation: Expectation, outcome: CheckOutcome): Evaluation {
  if ('error' in outcome) return evaluateError(expectation, outcome.error);
  if ('http' in outcome) return evaluateHttp(expectation, outcome.http);
  return evaluateRows(expectation, outcome.rows.map(jsonSafeRow), outcome.fields);
}

function evaluateError(expectation: Expectation, error: SqlErrorInfo): Evaluation {
  const actual = { sqlstate: error.sqlstate ?? null, message: error.message };
  if (expectation.type === 'sqlstate') {
    if (error.sqlstate === expectation.sqlstate) return { passed: true, actual };
    return {
      passed: false,
      actual,
      reason: `expected SQLSTATE ${expectation.sqlstate}, got ${error.sqlstate ?? 'an error without SQLSTATE'}: ${error.message}`,
    };
  }
  return { passed: false, actual, reason: `failed${error.sqlstate ? ` with SQLSTATE ${error.sqlstate}` : ''}: ${error.message}` };
}

function evaluateRows(expectation: Expectation, rows: Record<string, unknown>[], fields: string[]): Evaluation {
  const recorded = { rowCount: rows.length, rows: rows.slice(0, MAX_ROWS_RECORDED), ...(rows.length > MAX_ROWS_RECORDED ? { truncated: true } : {}) };
  switch (expectation.type) {
    case 'no_rows':
      if (rows.length === 0) return { passed: true, actual: recorded };
      return { passed: false, actual: recorded, reason: `expected no rows, got ${rows.length}: ${quoteRows(rows)}` };
    case 'exists':
      if (rows.length > 0) return { passed: true, actual: recorded };
      return { passed: false, actual: recorded, reason: 'expected at least one row, got none' };
    case 'record':
      return { passed: true, actual: recorded };
    case 'rows':
      return evaluateExactRows(expectation.rows, rows, fields, recorded);
    case 'value':
      return evaluateValue(expectation, rows, fields);
    case 'sqlstate':
      return {
        passed: false,
        actual: recorded,
        reason: `expected SQLSTATE ${expectation.sqlstate}, but the statement succeeded (${plural(rows.length, 'row')})`,
      };
    case 'http':
      return { passed: false, actual: recorded, reason: 'an http expectation needs an HTTP response, but the check returned rows' };
  }
}

function evaluateExactRows(
  expected: Record<string, Scalar>[],
  rows: Record<string, unknown>[],
  fields: string[],
  recorded: unknown,
): Evaluation {
  const fail = (reason: string): Evaluation => ({ passed: false, actual: recorded, reason });
  if (rows.length !== expected.length) {
    return fail(`expected ${plural(expected.length, 'row')}, got ${rows.length}${rows.length ? `: ${quoteRows(rows)}` : ''}`);
  }
  for (const [index, want] of expected.entries()) {
    const got = rows[index]!;
    const wantColumns = Object.keys(want);
    const missing = wantColumns.filter((column) => !(column in got));
    if (missing.length) return fail(`row ${index + 1}: column ${missing.join(', ')} not in the result (columns: ${fields.join(', ')})`);
    const extra = Object.keys(got).filter((column) => !(column in want));
    if (extra.length) return fail(`row ${index + 1}: unexpected column ${extra.join(', ')} (expected columns: ${wantColumns.join(', ')})`);
    for (const column of wantColumns) {
      if (!valuesEqual(got[column], want[column]!)) {
        return fail(`row ${index + 1}: ${column} expected ${show(want[column])}, got ${show(got[column])}`);
      }
    }
  }
  return { passed: true, actual: recorded };
}

type Scalar = string | number | boolean | null;
type ValueExpectation = Extract<Expectation, { type: 'value' }>;

function evaluateValue(expectation: ValueExpectation, rows: Record<string, unknown>[], fields: string[]): Evaluation {
  const column = expectation.column ?? fields[0];
  const wanted = `${column ?? '(first column)'} ${expectation.op} ${show(expectation.value)}`;
  if (column === undefined) return { passed: false, actual: null, reason: `expected ${wanted}, but the query returned no columns` };
  const first = rows[0];
  if (!first) return { passed: false, actual: null, reason: `expected ${wanted}, got no rows` };
  if (!(column in first)) {
    return { passed: false, actual: null, reason: `column ${column} not in the result (columns: ${fields.join(', ')})` };
  }
  const actual = first[column];
  const verdict = compare(actual, expectation.op, expectation.value);
  if (verdict === true) return { passed: true, actual };
  if (verdict === 'incomparable') {
    return { passed: false, actual, reason: `expected ${wanted}, got ${show(actual)}, which cannot be compared with ${expectation.op}` };
  }
  return { passed: false, actual, reason: `expected ${wanted}, got ${show(actual)}` };
}

function compare(actual: unknown, op: ValueExpectation['op'], wanted: Scalar): boolean | 'incomparable' {
  if (op === '=') return valuesEqual(actual, wanted);
  if (op === '!=') return !valuesEqual(actual, wanted);
  // Like SQL: an ordering against NULL is never true.
  if (actual === null || actual === undefined || wanted === null) return 'incomparable';
  const a = asDecimal(actual);
  const b = asDecimal(wanted);
  let order: number;
  if (a !== undefined && b !== undefined) order = compareDecimals(a, b);
  else if (typeof actual === 'string' && typeof wanted === 'string') order = actual < wanted ? -1 : actual > wanted ? 1 : 0;
  else return 'incomparable';
  switch (op) {
    case '<':
      return order < 0;
    case '<=':
      return order <= 0;
    case '>':
      return order > 0;
    case '>=':
      return order >= 0;
  }
}

function evaluateHttp(expectation: Expectation, response: { status: number; json: unknown }): Evaluation {
  const actual = { status: response.status, json: jsonSafe(response.json) };
  if (expectation.type !== 'http') {
    return { passed: false, actual, reason: `a ${expectation.type} expectation cannot be evaluated on an HTTP response` };
  }
  const reasons: string[] = [];
  if (response.status !== expectation.status) reasons.push(`expected status ${expectation.status}, got ${response.status}`);
  const jsonHas = expectation.json_has ?? [];
  const jsonEquals = Object.entries(expectation.json_equals ?? {});
  if ((jsonHas.length || jsonEquals.length) && response.json === undefined) {
    reasons.push('the response body is not JSON');
  } else {
    for (const path of jsonHas) {
      if (!readPath(response.json, path).found) reasons.push(`json field ${path} missing`);
    }
    for (const [path, want] of jsonEquals) {
      const got = readPath(response.json, path);
      if (!got.found) reasons.push(`json field ${path} missing (expected ${show(want)})`);
      else if (!valuesEqual(got.value, want)) reasons.push(`json field ${path} expected ${show(want)}, got ${show(got.value)}`);
    }
  }
  return reasons.length ? { passed: false, actual, reason: reasons.join('; ') } : { passed: true, actual };
}

/** `a.b.0.c`: object keys and array indexes, separated by dots. */
export function readPath(value: unknown, path: string): { found: boolean; value?: unknown } {
  let current = value;
  for (const segment of path.split('.')) {
    if (Array.isArray(current) && /^\d+$/.test(segment) && Number(segment) < current.length) {
      current = current[Number(segment)];
    } else if (current !== null && typeof current === 'object' && !Array.isArray(current) && Object.hasOwn(current, segment)) {
      current = (current as Record<string, unknown>)[segment];
    } else {
      return { found: false };
    }
  }
  return { found: true, value: current };
}

/**
 * Equality "as text", normalised for what node-postgres returns: numeric and bigint arrive as
 * strings ('100.00'), so when either side is a number both are compared as decimals. Two strings
 * are compared exactly ('007' is not '7').
 */
export function valuesEqual(actual: unknown, expected: unknown): boolean {
  const a = jsonSafe(actual);
  const b = jsonSafe(expected);
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  if (typeof a === 'number' || typeof b === 'number') {
    const x = asDecimal(a);
    const y = asDecimal(b);
    return x !== undefined && y !== undefined && compareDecimals(x, y) === 0;
  }
  if (typeof a === 'boolean' || typeof b === 'boolean') return asBooleanText(a) === asBooleanText(b);
  if (typeof a === 'object' || typeof b === 'object') return JSON.stringify(a) === JSON.stringify(b);
  return String(a) === String(b);
}

function asBooleanText(value: unknown): string {
  if (value === true || value === 't') return 'true';
  if (value === false || value === 'f') return 'false';
  return String(value);
}

interface Decimal {
  negative: boolean;
  integer: string;
  fraction: string;
}

const DECIMAL = /^([+-])?(\d+)(?:\.(\d*))?$/;

function asDecimal(value: unknown): Decimal | undefined {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return undefined;
    text = String(value);
    // 1e21 and 1e-7 print in exponent form; such values do not come back from pg as text anyway.
    if (/e/i.test(text)) text = value.toFixed(20).replace(/0+$/, '');
  } else if (typeof value === 'bigint') {
    text = value.toString();
  } else if (typeof value === 'string') {
    text = value.trim();
  } else {
    return undefined;
  }
  const match = DECIMAL.exec(text);
  if (!match) return undefined;
  const integer = match[2]!.replace(/^0+(?=\d)/, '');
  const fraction = (match[3] ?? '').replace(/0+$/, '');
  const zero = /^0*$/.test(integer) && fraction === '';
  return { negative: match[1] === '-' && !zero, integer, fraction };
}

function compareDecimals(a: Decimal, b: Decimal): number {
  if (a.negative !== b.negative) return a.negative ? -1 : 1;
  const sign = a.negative ? -1 : 1;
  if (a.integer.length !== b.integer.length) return sign * (a.integer.length < b.integer.length ? -1 : 1);
  if (a.integer !== b.integer) return sign * (a.integer < b.integer ? -1 : 1);
  const length = Math.max(a.fraction.length, b.fraction.length);
  const fa = a.fraction.padEnd(length, '0');
  const fb = b.fraction.padEnd(length, '0');
  return fa === fb ? 0 : sign * (fa < fb ? -1 : 1);
}

/** Values as JSON can store them: Dates as ISO text, bytea as \x hex, bigints as text. */
export function jsonSafe(value: unknown): unknown {
  if (value === undefined) return undefined;
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? String(value) : value.toISOString();
  if (typeof Buffer !== 'undefined' && Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (Array.isArray(value)) return value.map((item) => jsonSafe(item) ?? null);
  if (typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      const safe = jsonSafe(item);
      if (safe !== undefined) out[key] = safe;
    }
    return out;
  }
  return String(value);
}

function jsonSafeRow(row: Record<string, unknown>): Record<string, unknown> {
  return jsonSafe(row) as Record<string, unknown>;
}

function show(value: unknown): string {
  const safe = jsonSafe(value);
  if (safe === undefined) return 'nothing';
  return typeof safe === 'string' ? `'${safe}'` : JSON.stringify(safe);
}

function quoteRows(rows: Record<string, unknown>[]): string {
  const quoted = rows.slice(0, MAX_ROWS_QUOTED).map((row) => JSON.stringify(jsonSafe(row)));
  return quoted.join(', ') + (rows.length > MAX_ROWS_QUOTED ? `, … (${rows.length - MAX_ROWS_QUOTED} more)` : '');
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}
