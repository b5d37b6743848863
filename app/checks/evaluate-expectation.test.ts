import { describe, expect, it } from 'vitest';
import { ExpectationSchema, type Expectation } from '../plans/plan-schema';
import { evaluateExpectation, readPath, valuesEqual } from './evaluate-expectation';

const rows = (list: Record<string, unknown>[]) => ({ rows: list, fields: Object.keys(list[0] ?? {}) });
const parse = (value: unknown): Expectation => ExpectationSchema.parse(value);

describe('evaluateExpectation: rows', () => {
  it('no_rows passes on none and names what came back otherwise', () => {
    expect(evaluateExpectation(parse({ type: 'no_rows' }), { rows: [], fields: ['column_name'] })).toMatchObject({ passed: true });
    const result = evaluateExpectation(
      parse({ type: 'no_rows' }),
      rows([{ column_name: 'a' }, { column_name: 'b' }, { column_name: 'c' }, { column_name: 'd' }]),
    );
    expect(result.passed).toBe(false);
    expect(result.reason).toBe('expected no rows, got 4: {"column_name":"a"}, {"column_name":"b"}, {"column_name":"c"}, … (1 more)');
    expect(result.actual).toMatchObject({ rowCount: 4 });
  });

  it('exists needs a row', () => {
    expect(evaluateExpectation(parse({ type: 'exists' }), rows([{ x: 1 }])).passed).toBe(true);
    expect(evaluateExpectation(parse({ type: 'exists' }), { rows: [], fields: ['x'] })).toMatchObject({
      passed: false,
      reason: 'expected at least one row, got none',
    });
  });

  it('rows compares exactly, in order, values as normalised text', () => {
    const expectation = parse({
      type: 'rows',
      rows: [
        { column_name: 'active_org_id', data_type: 'uuid', is_nullable: 'YES' },
        { column_name: 'n', data_type: 'numeric', is_nullable: 'NO' },
      ],
    });
    const good = rows([
      { column_name: 'active_org_id', data_type: 'uuid', is_nullable: 'YES' },
      { column_name: 'n', data_type: 'numeric', is_nullable: 'NO' },
    ]);
    expect(evaluateExpectation(expectation, good).passed).toBe(true);

    const swapped = rows([good.rows[1]!, good.rows[0]!]);
    expect(evaluateExpectation(expectation, swapped).reason).toBe("row 1: column_name expected 'active_org_id', got 'n'");

    const short = rows([good.rows[0]!]);
    expect(evaluateExpectation(expectation, short).reason).toMatch(/^expected 2 rows, got 1: /);

    const extra = rows([{ ...good.rows[0]!, extra: 1 }, good.rows[1]!]);
    expect(evaluateExpectation(expectation, extra).reason).toBe('row 1: unexpected column extra (expected columns: column_name, data_type, is_nullable)');

    const missing = { rows: [{ column_name: 'active_org_id', data_type: 'uuid' }, good.rows[1]!], fields: ['column_name', 'data_type'] };
    expect(evaluateExpectation(expectation, missing).reason).toBe('row 1: column is_nullable not in the result (columns: column_name, data_type)');
  });

  it('numbers equal numeric strings from pg', () => {
    const expectation = parse({ type: 'rows', rows: [{ total: 1000, pct: 100, flag: true, none: null }] });
    expect(evaluateExpectation(expectation, rows([{ total: '1000', pct: '100.00', flag: true, none: null }])).passed).toBe(true);
    expect(evaluateExpectation(expectation, rows([{ total: '1000', pct: '99.99', flag: true, none: null }])).reason).toBe(
      "row 1: pct expected 100, got '99.99'",
    );
    expect(valuesEqual('100.00', 100)).toBe(true);
    expect(valuesEqual('-0.0', 0)).toBe(true);
    expect(valuesEqual('007', '7')).toBe(false);
    expect(valuesEqual('12345678901234567890', '12345678901234567891')).toBe(false);
    expect(valuesEqual(null, 'null')).toBe(false);
    expect(valuesEqual(new Date('2025-01-01T00:00:00Z'), '2025-01-01T00:00:00.000Z')).toBe(true);
  });

  it('value compares the named or first column', () => {
    const pct = rows([{ total_users: '1000', backfill_percentage: '99.50' }]);
    expect(evaluateExpectation(parse({ type: 'value', column: 'backfill_percentage', op: '>=', value: 99.5 }), pct)).toMatchObject({
      passed: true,
      actual: '99.50',
    });
    expect(evaluateExpectation(parse({ type: 'value', column: 'backfill_percentage', op: '>=', value: 100 }), pct).reason).toBe(
      "expected backfill_percentage >= 100, got '99.50'",
    );
    expect(evaluateExpectation(parse({ type: 'value', op: '=', value: 1000 }), pct).passed).toBe(true);
    expect(evaluateExpectation(parse({ type: 'value', op: '>', value: '999' }), pct).passed).toBe(true);
    expect(evaluateExpectation(parse({ type: 'value', op: '<', value: 2 }), rows([{ n: '10' }])).passed).toBe(false);
    expect(evaluateExpectation(parse({ type: 'value', op: '=', value: null }), rows([{ n: null }])).passed).toBe(true);
    expect(evaluateExpectation(parse({ type: 'value', op: '>', value: 0 }), rows([{ n: null }])).reason).toMatch(/cannot be compared/);
    expect(evaluateExpectation(parse({ type: 'value', column: 'nope', op: '=', value: 1 }), pct).reason).toBe(
      'column nope not in the result (columns: total_users, backfill_percentage)',
    );
    expect(evaluateExpectation(parse({ type: 'value', op: '=', value: 1 }), { rows: [], fields: ['n'] }).reason).toBe(
      'expected n = 1, got no rows',
    );
  });

  it('record always passes and keeps the rows', () => {
    const result = evaluateExpectation(parse({ type: 'record' }), rows([{ user_count: '3', at: new Date('2025-01-01T00:00:00Z') }]));
    expect(result).toEqual({ passed: true, actual: { rowCount: 1, rows: [{ user_count: '3', at: '2025-01-01T00:00:00.000Z' }] } });
  });
});

describe('evaluateExpectation: errors', () => {
  it('sqlstate passes on the expected code only', () => {
    const expectation = parse({ type: 'sqlstate', sqlstate: '23503' });
    expect(evaluateExpectation(expectation, { error: { sqlstate: '23503', message: 'violates foreign key' } }).passed).toBe(true);
    expect(evaluateExpectation(expectation, { error: { sqlstate: '23505', message: 'duplicate key' } }).reason).toBe(
      'expected SQLSTATE 23503, got 23505: duplicate key',
    );
    expect(evaluateExpectation(expectation, { rows: [], fields: [] }).reason).toBe('expected SQLSTATE 23503, but the statement succeeded (0 rows)');
  });

  it('an error fails any other expectation with its SQLSTATE', () => {
    const result = evaluateExpectation(parse({ type: 'record' }), { error: { sqlstate: '42P01', message: 'relation "x" does not exist' } });
    expect(result).toEqual({
      passed: false,
      actual: { sqlstate: '42P01', message: 'relation "x" does not exist' },
      reason: 'failed with SQLSTATE 42P01: relation "x" does not exist',
    });
  });
});

describe('evaluateExpectation: http', () => {
  const expectation = parse({
    type: 'http',
    status: 200,
    json_has: ['user.activeOrgId', 'orgs.0.id'],
    json_equals: { success: true, 'user.activeOrgId': 'org-1' },
  });

  it('passes when status and fields match', () => {
    const json = { success: true, user: { activeOrgId: 'org-1' }, orgs: [{ id: 'org-1' }] };
    expect(evaluateExpectation(expectation, { http: { status: 200, json } })).toEqual({ passed: true, actual: { status: 200, json } });
  });

  it('names every difference', () => {
    const json = { success: false, user: {}, orgs: [] };
    const result = evaluateExpectation(expectation, { http: { status: 403, json } });
    expect(result.passed).toBe(false);
    expect(result.reason).toBe(
      'expected status 200, got 403; json field user.activeOrgId missing; json field orgs.0.id missing; ' +
        "json field success expected true, got false; json field user.activeOrgId missing (expected 'org-1')",
    );
  });

  it('a null field is present, a missing one is not', () => {
    const loner = parse({ type: 'http', status: 200, json_has: ['activeOrgId'], json_equals: { activeOrgId: null } });
    expect(evaluateExpectation(loner, { http: { status: 200, json: { activeOrgId: null } } }).passed).toBe(true);
    expect(evaluateExpectation(loner, { http: { status: 200, json: {} } }).reason).toBe(
      'json field activeOrgId missing; json field activeOrgId missing (expected null)',
    );
    expect(evaluateExpectation(loner, { http: { status: 200, json: undefined } }).reason).toBe('the response body is not JSON');
  });

  it('paths read keys and array indexes', () => {
    expect(readPath({ a: [{ b: 1 }] }, 'a.0.b')).toEqual({ found: true, value: 1 });
    expect(readPath({ a: [] }, 'a.0')).toEqual({ found: false });
    expect(readPath({ a: 'text' }, 'a.length')).toEqual({ found: false });
  });

  it('a rows expectation cannot be met by a response, and the reverse', () => {
    expect(evaluateExpectation(parse({ type: 'exists' }), { http: { status: 200, json: {} } }).reason).toBe(
      'a exists expectation cannot be evaluated on an HTTP response',
    );
    expect(evaluateExpectation(expectation, { rows: [], fields: [] }).passed).toBe(false);
  });
});
